//! The demo company: what a newcomer signs in to on the first run.
//!
//! Two sites with registers and a menu, a manager with the Sites permission and a member of
//! staff without it. The sign-in details are public on purpose (they are in the README).

use regsync_protocol::api::Permission;
use regsync_protocol::{Catalog, Category, Product};

use crate::admin::{self, NewRegister, NewUser};
use crate::error::Result;
use crate::{Db, catalog};

pub const COMPANY: &str = "Harbour Hospitality";
pub const MANAGER_EMAIL: &str = "manager@harbour.example";
pub const MANAGER_PASSWORD: &str = "harbour-manager";
pub const MANAGER_NAME: &str = "Alex Manager";
pub const STAFF_EMAIL: &str = "staff@harbour.example";
pub const STAFF_PASSWORD: &str = "harbour-staff";
pub const STAFF_NAME: &str = "Sam Staff";

pub const SITES: [(&str, &[&str]); 2] = [
    (
        "Main Bar",
        &["Bar 1", "Bar 2", "Bar 3", "Kitchen", "Cellar Door", "Patio"],
    ),
    ("Terrace", &["Terrace 1", "Terrace 2", "Kiosk"]),
];

/// The demo's registers with their device credentials, for simulated registers to sign in with.
#[derive(Debug)]
pub struct DemoVenue {
    pub registers: Vec<NewRegister>,
}

fn menu(site: &str) -> Catalog {
    let category = |id: &str, name: &str| Category {
        id: id.into(),
        name: name.into(),
    };
    let product = |id: &str, name: &str, price_cents, category_id: &str| Product {
        id: id.into(),
        name: name.into(),
        price_cents,
        category_id: Some(category_id.into()),
    };
    Catalog {
        categories: vec![category("beer", "Beer"), category("food", "Food")],
        products: vec![
            product("101", "Harbour Lager", 850, "beer"),
            product("102", "Pale Ale", 950, "beer"),
            product("201", "Fish & Chips", 2400, "food"),
            product("202", "Hot Chips", 900, "food"),
        ],
        settings: [(
            "receipt_footer".to_owned(),
            format!("Thanks for visiting {site}!"),
        )]
        .into(),
    }
}

/// Seeds the demo company. Run once on an empty database; a second run fails with a conflict.
pub async fn seed(db: &Db) -> Result<DemoVenue> {
    let company = admin::create_company(db, COMPANY).await?;
    let company_ref = company.id.to_string();
    admin::create_user(
        db,
        NewUser {
            company: &company_ref,
            email: MANAGER_EMAIL,
            display_name: MANAGER_NAME,
            password: MANAGER_PASSWORD,
            permissions: &[Permission::Sites],
        },
    )
    .await?;
    admin::create_user(
        db,
        NewUser {
            company: &company_ref,
            email: STAFF_EMAIL,
            display_name: STAFF_NAME,
            password: STAFF_PASSWORD,
            permissions: &[],
        },
    )
    .await?;
    let mut registers = Vec::new();
    for (site_name, register_names) in SITES {
        let site = admin::create_site(db, &company_ref, site_name).await?;
        let site_menu = menu(site_name);
        catalog::update(db, site.id, None, Some(MANAGER_NAME), |_| site_menu.clone()).await?;
        for name in register_names {
            registers.push(admin::create_register(db, &site, name).await?);
        }
    }
    Ok(DemoVenue { registers })
}
