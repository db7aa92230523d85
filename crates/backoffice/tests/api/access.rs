//! Who may see what: the Sites permission, and companies that never see each other.

use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::harness::{BackOffice, Scene, Venue, assert_error};

#[tokio::test]
async fn a_manager_sees_the_sites_and_registers_of_their_company() {
    let Scene { bo, venue, token } = Scene::start(&[]).await;

    let (status, sites) = bo.get("/v1/sites", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sites.as_array().unwrap().len(), 1);
    assert_eq!(sites[0]["name"], "Main Bar");
    assert_eq!(sites[0]["register_count"], 3);
    assert_eq!(sites[0]["catalog_revision"], 1);

    let site = venue.site.id;
    let (status, registers) = bo.get(&format!("/v1/sites/{site}/registers"), &token).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = registers
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Bar 1", "Bar 2", "Kitchen"]);
    // A register that never connected or synced: offline, never synced, one revision behind
    // (the site's empty menu is revision 1).
    let bar1 = &registers[0];
    assert_eq!(bar1["online"], false);
    assert_eq!(bar1["in_sale"], false);
    assert_eq!(bar1["last_synced_at"], serde_json::Value::Null);
    assert_eq!(bar1["applied_revision"], 0);
    assert_eq!(bar1["site_revision"], 1);
    assert_eq!(bar1["revisions_behind"], 1);
    assert_eq!(bar1["up_to_date"], false);

    let id = venue.registers[2].register.id;
    let (status, kitchen) = bo.get(&format!("/v1/registers/{id}"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kitchen["name"], "Kitchen");
    assert_eq!(kitchen["site_id"], site.to_string());

    let (status, one) = bo.get(&format!("/v1/sites/{site}"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one, sites[0]);
}

#[tokio::test]
async fn staff_without_the_sites_permission_get_403_on_registers_and_menu() {
    let bo = BackOffice::start(&[]).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let token = bo.login(&venue.staff).await.access_token;
    let site = venue.site.id;
    let register = venue.registers[0].register.id;

    // They may know which sites exist (they work at them)...
    assert_eq!(bo.get("/v1/sites", &token).await.0, StatusCode::OK);
    // ...but not see registers nor read or change the menu.
    for path in [
        format!("/v1/sites/{site}/registers"),
        format!("/v1/registers/{register}"),
        format!("/v1/sites/{site}/catalog"),
    ] {
        assert_error(
            &bo.get(&path, &token).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    let edit = bo
        .call(
            Method::PATCH,
            &format!("/v1/sites/{site}/catalog"),
            Some(&token),
            Some(json!({ "set_settings": { "tax": "incl" } })),
        )
        .await;
    assert_error(&edit, StatusCode::FORBIDDEN, "forbidden");

    // Admins may do everything a manager may.
    let admin = bo.login(&venue.admin).await.access_token;
    assert_eq!(
        bo.get(&format!("/v1/sites/{site}/registers"), &admin)
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn another_company_cannot_read_or_learn_of_our_sites_registers_or_menu() {
    let bo = BackOffice::start(&[]).await;
    let db = bo.db().await;
    let ours = Venue::seed(&db, "Harbour").await;
    let theirs = Venue::seed(&db, "Rival").await;
    let rival = bo.login(&theirs.admin).await.access_token;

    let (_, their_sites) = bo.get("/v1/sites", &rival).await;
    assert_eq!(their_sites.as_array().unwrap().len(), 1);
    assert_ne!(their_sites[0]["id"], ours.site.id.to_string());

    let site = ours.site.id;
    let register = ours.registers[0].register.id;
    let nowhere = Uuid::now_v7();
    let pairs = [
        (format!("/v1/sites/{site}"), format!("/v1/sites/{nowhere}")),
        (
            format!("/v1/sites/{site}/registers"),
            format!("/v1/sites/{nowhere}/registers"),
        ),
        (
            format!("/v1/registers/{register}"),
            format!("/v1/registers/{nowhere}"),
        ),
        (
            format!("/v1/sites/{site}/catalog"),
            format!("/v1/sites/{nowhere}/catalog"),
        ),
    ];
    for (existing, missing) in pairs {
        let answer = bo.get(&existing, &rival).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
        // Indistinguishable from an id that exists nowhere.
        assert_eq!(answer, bo.get(&missing, &rival).await, "{existing}");
    }

    let before = bo
        .get(
            &format!("/v1/sites/{site}/catalog"),
            &bo.login(&ours.manager).await.access_token,
        )
        .await;
    for method in [Method::PUT, Method::PATCH] {
        let body = if method == Method::PUT {
            json!({ "catalog": { "settings": { "owned": "by rival" } } })
        } else {
            json!({ "set_settings": { "owned": "by rival" } })
        };
        let answer = bo
            .call(
                method,
                &format!("/v1/sites/{site}/catalog"),
                Some(&rival),
                Some(body),
            )
            .await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    }
    let after = bo
        .get(
            &format!("/v1/sites/{site}/catalog"),
            &bo.login(&ours.manager).await.access_token,
        )
        .await;
    assert_eq!(before, after, "our menu is untouched");
}
