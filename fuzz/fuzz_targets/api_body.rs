//! A request body as Back Office reads it (`http::parse_json`, the one parser every route uses),
//! and then what it does with a menu: check it, and apply an edit to a menu. The first byte picks
//! the request; the rest is the body. Any bytes: a 4xx or a result, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use regsync_backoffice::http::parse_json;
use regsync_protocol::api::{LoginRequest, RefreshRequest, ReplaceCatalog};
use regsync_protocol::sync::SyncRequest;
use regsync_protocol::{Catalog, CatalogEdit, Category, Product};

fn menu() -> Catalog {
    Catalog {
        categories: vec![Category {
            id: "drinks".into(),
            name: "Drinks".into(),
        }],
        products: vec![Product {
            id: "1".into(),
            name: "Lager".into(),
            price_cents: 550,
            category_id: Some("drinks".into()),
        }],
        settings: [("footer".to_owned(), "Cheers".to_owned())].into(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            let _ = parse_json::<LoginRequest>(body);
        }
        1 => {
            let _ = parse_json::<RefreshRequest>(body);
        }
        2 => {
            let _ = parse_json::<Option<SyncRequest>>(body);
        }
        3 => {
            if let Ok(replace) = parse_json::<ReplaceCatalog>(body) {
                let valid = replace.catalog.validate().is_ok();
                // What was accepted is stored as JSON and read back by every register.
                let stored = serde_json::to_string(&replace.catalog).unwrap();
                let back: Catalog = serde_json::from_str(&stored).unwrap();
                assert_eq!(back, replace.catalog);
                assert_eq!(back.validate().is_ok(), valid);
            }
        }
        _ => {
            if let Ok(edit) = parse_json::<CatalogEdit>(body) {
                let before = menu();
                let after = before.edited(&edit);
                let _ = after.validate();
                // Removals come first, then upserts: every upserted id is there, once.
                for product in &edit.upsert_products {
                    assert_eq!(
                        after.products.iter().filter(|p| p.id == product.id).count(),
                        1
                    );
                }
                for category in &edit.upsert_categories {
                    let found = after.categories.iter().filter(|c| c.id == category.id);
                    assert_eq!(found.count(), 1);
                }
                if edit.is_empty() {
                    assert_eq!(after, before);
                }
            }
        }
    }
});
