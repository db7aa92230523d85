//! The menu: each change bumps the revision, and registers fall behind it until they sync.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Scene, WAIT, assert_error};

fn lager(price_cents: i64) -> Value {
    json!({ "id": "101", "name": "Harbour Lager", "price_cents": price_cents, "category_id": "beer" })
}

#[tokio::test]
async fn each_menu_change_bumps_the_revision_and_registers_fall_behind() {
    let Scene { bo, venue, token } = Scene::start(&[]).await;
    let path = format!("/v1/sites/{}/catalog", venue.site.id);

    let (status, first) = bo.get(&path, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["revision"], 1);
    assert_eq!(first["catalog"]["products"], json!([]));

    let replace = json!({ "catalog": {
        "categories": [{ "id": "beer", "name": "Beer" }],
        "products": [lager(850)],
        "settings": { "receipt_footer": "Cheers" }
    }});
    let (status, second) = bo
        .call(Method::PUT, &path, Some(&token), Some(replace.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["revision"], 2);
    assert_eq!(second["updated_by"], "Harbour manager");

    let edit = json!({ "upsert_products": [lager(900)], "expected_revision": 2 });
    let (status, third) = bo
        .call(Method::PATCH, &path, Some(&token), Some(edit))
        .await;
    assert_eq!(status, StatusCode::OK, "{third}");
    assert_eq!(third["revision"], 3);
    assert_eq!(third["catalog"]["products"][0]["price_cents"], 900);
    assert_eq!(third["catalog"]["settings"]["receipt_footer"], "Cheers");

    // What is read back is what was written.
    assert_eq!(bo.get(&path, &token).await.1, third);

    // Registers see how far behind they are; the site list shows the new revision.
    let (_, registers) = bo
        .get(&format!("/v1/sites/{}/registers", venue.site.id), &token)
        .await;
    assert_eq!(registers[0]["site_revision"], 3);
    assert_eq!(registers[0]["revisions_behind"], 3);
    let (_, sites) = bo.get("/v1/sites", &token).await;
    assert_eq!(sites[0]["catalog_revision"], 3);

    // Writing the same menu again changes nothing, so the revision stays.
    let (status, same) = bo
        .call(
            Method::PATCH,
            &path,
            Some(&token),
            Some(json!({ "upsert_products": [lager(900)] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same["revision"], 3);
}

#[tokio::test]
async fn a_stale_expected_revision_is_a_conflict_and_changes_nothing() {
    let Scene { bo, venue, token } = Scene::start(&[]).await;
    let path = format!("/v1/sites/{}/catalog", venue.site.id);
    bo.call(
        Method::PATCH,
        &path,
        Some(&token),
        Some(json!({ "set_settings": { "a": "1" } })),
    )
    .await;

    // A second manager edits what they read at revision 1.
    let stale = json!({ "set_settings": { "a": "2" }, "expected_revision": 1 });
    let answer = bo
        .call(Method::PATCH, &path, Some(&token), Some(stale))
        .await;
    assert_error(&answer, StatusCode::CONFLICT, "revision_conflict");
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("now at 2")
    );

    let (_, now) = bo.get(&path, &token).await;
    assert_eq!(now["revision"], 2);
    assert_eq!(now["catalog"]["settings"]["a"], "1");
}

#[tokio::test]
async fn concurrent_edits_each_get_their_own_revision() {
    let Scene { bo, venue, token } = Scene::start(&[]).await;
    let path = format!("/v1/sites/{}/catalog", venue.site.id);

    let edits = (0..6).map(|i| {
        bo.call(
            Method::PATCH,
            &path,
            Some(&token),
            Some(json!({ "set_settings": { format!("key{i}"): "x" } })),
        )
    });
    let answers = futures::future::join_all(edits).await;
    let mut revisions: Vec<i64> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::OK, "{body}");
            body["revision"].as_i64().unwrap()
        })
        .collect();
    revisions.sort();
    assert_eq!(
        revisions,
        [2, 3, 4, 5, 6, 7],
        "no edit was lost or shared a revision"
    );
    let (_, now) = bo.get(&path, &token).await;
    assert_eq!(now["catalog"]["settings"].as_object().unwrap().len(), 6);
}

#[tokio::test]
async fn an_invalid_menu_is_refused_naming_the_field_and_nothing_changes() {
    let Scene { bo, venue, token } = Scene::start(&[]).await;
    let path = format!("/v1/sites/{}/catalog", venue.site.id);

    let unknown_category = json!({ "upsert_products": [lager(850)] });
    let answer = bo
        .call(Method::PATCH, &path, Some(&token), Some(unknown_category))
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_field");
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("catalog.products[0].category_id"),
        "{}",
        answer.1
    );

    let negative =
        json!({ "catalog": { "products": [{ "id": "1", "name": "x", "price_cents": -5 }] } });
    let answer = bo
        .call(Method::PUT, &path, Some(&token), Some(negative))
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_field");
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("price_cents")
    );

    // An edit that changes nothing is allowed by the document, and changes nothing.
    let empty = bo
        .call(Method::PATCH, &path, Some(&token), Some(json!({})))
        .await;
    assert_eq!(empty.0, StatusCode::OK, "{}", empty.1);
    assert_eq!(empty.1["revision"], 1);

    assert_eq!(bo.get(&path, &token).await.1["revision"], 1);
}

/// A huge edit of a big menu neither takes minutes nor stalls anyone else meanwhile.
#[tokio::test]
async fn a_huge_edit_of_a_big_menu_stalls_nobody() {
    let Scene { bo, venue, token } = Scene::start(&[]).await;
    let path = format!("/v1/sites/{}/catalog", venue.site.id);
    let products: Vec<_> = (0..10_000)
        .map(|i| json!({ "id": format!("p{i}"), "name": format!("Product {i}"), "price_cents": 100 + i }))
        .collect();
    let answer = bo
        .call(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({ "catalog": { "products": products } })),
        )
        .await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);

    let removals: Vec<String> = (0..100_000).map(|i| format!("x{i}")).collect();
    let edit = json!({ "remove_products": removals, "set_settings": { "footer": "Hi" } });
    let edits = futures::future::join_all(
        (0..2).map(|_| bo.call(Method::PATCH, &path, Some(&token), Some(edit.clone()))),
    );
    let health = async {
        // Meanwhile Back Office answers at once.
        let mut slowest = std::time::Duration::ZERO;
        for _ in 0..10 {
            let started = std::time::Instant::now();
            let response = bo
                .raw()
                .get(format!("{}/v1/health", bo.url))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            slowest = slowest.max(started.elapsed());
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        slowest
    };
    let (edits, slowest) = tokio::time::timeout(3 * WAIT, futures::future::join(edits, health))
        .await
        .expect("the edits took minutes");
    for (status, body) in edits {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["catalog"]["products"].as_array().unwrap().len(),
            10_000
        );
    }
    assert!(
        slowest < std::time::Duration::from_secs(3),
        "/v1/health took {slowest:?}"
    );
}
