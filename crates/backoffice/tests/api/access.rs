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

/// A manager limited to Main Bar, and a Terrace site of the same company with a register and a
/// sync job of its own (asked for by the admin, who sees every site).
struct TwoSites {
    bo: BackOffice,
    venue: Venue,
    terrace: regsync_backoffice::admin::SiteRecord,
    terrace_register: Uuid,
    terrace_job: String,
    manager: regsync_protocol::api::Session,
    admin: String,
}

async fn two_sites() -> TwoSites {
    let bo = BackOffice::start(crate::harness::FAST).await;
    let db = bo.db().await;
    let venue = Venue::seed(&db, "Harbour").await;
    let company = venue.company.id.to_string();
    let terrace = regsync_backoffice::admin::create_site(&db, &company, "Terrace")
        .await
        .unwrap();
    let register = regsync_backoffice::admin::create_register(&db, &terrace, "Terrace 1")
        .await
        .unwrap();
    let admin = bo.login(&venue.admin).await.access_token;
    let (status, job) = bo
        .call(
            Method::POST,
            &format!("/v1/sites/{}/sync", terrace.id),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let limited = regsync_backoffice::admin::set_user_sites(
        &db,
        &venue.manager,
        Some(&["Main Bar".to_owned()]),
    )
    .await
    .unwrap();
    assert_eq!(limited, ["Main Bar"]);
    let manager = bo.login(&venue.manager).await;
    TwoSites {
        bo,
        terrace_register: register.register.id,
        terrace,
        terrace_job: job["id"].as_str().unwrap().to_owned(),
        venue,
        manager,
        admin,
    }
}

#[tokio::test]
async fn a_manager_limited_to_some_sites_gets_404_for_the_others_as_for_another_company() {
    let TwoSites {
        bo,
        venue,
        terrace,
        terrace_register,
        terrace_job,
        manager,
        ..
    } = two_sites().await;
    let token = &manager.access_token;
    let (_, sites) = bo.get("/v1/sites", token).await;
    let names: Vec<&str> = sites
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Main Bar"]);
    assert_eq!(
        bo.get(&format!("/v1/sites/{}/registers", venue.site.id), token)
            .await
            .0,
        StatusCode::OK
    );

    let site = terrace.id;
    let nowhere = Uuid::now_v7();
    let reads = [
        (format!("/v1/sites/{site}"), format!("/v1/sites/{nowhere}")),
        (
            format!("/v1/sites/{site}/registers"),
            format!("/v1/sites/{nowhere}/registers"),
        ),
        (
            format!("/v1/registers/{terrace_register}"),
            format!("/v1/registers/{nowhere}"),
        ),
        (
            format!("/v1/sites/{site}/catalog"),
            format!("/v1/sites/{nowhere}/catalog"),
        ),
        (
            format!("/v1/sites/{site}/jobs"),
            format!("/v1/sites/{nowhere}/jobs"),
        ),
        (
            format!("/v1/jobs/{terrace_job}"),
            format!("/v1/jobs/{nowhere}"),
        ),
    ];
    for (existing, missing) in reads {
        let answer = bo.get(&existing, token).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
        assert_eq!(answer, bo.get(&missing, token).await, "{existing}");
    }
    let writes = [
        (Method::POST, format!("/v1/sites/{site}/sync"), json!({})),
        (
            Method::POST,
            format!("/v1/registers/{terrace_register}/sync"),
            json!({}),
        ),
        (
            Method::PATCH,
            format!("/v1/sites/{site}/catalog"),
            json!({ "set_settings": { "x": "y" } }),
        ),
        (
            Method::PUT,
            format!("/v1/sites/{site}/catalog"),
            json!({ "catalog": { "settings": {} } }),
        ),
    ];
    for (method, path, body) in writes {
        let answer = bo
            .call(method.clone(), &path, Some(token), Some(body))
            .await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    }
    let csv = reqwest::Client::new()
        .get(format!("{}/v1/sites/{site}/jobs.csv", bo.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_limited_managers_live_events_hold_only_their_sites() {
    let TwoSites {
        bo,
        venue,
        terrace,
        terrace_register,
        manager,
        admin,
        ..
    } = two_sites().await;
    let mut events = crate::harness::EventStream::open(&bo, &manager.access_token).await;
    let (kind, snapshot) = events.next().await.unwrap();
    assert_eq!(kind, "snapshot");
    let text = snapshot.to_string();
    assert!(!text.contains(&terrace.id.to_string()), "{text}");
    assert!(!text.contains(&terrace_register.to_string()), "{text}");
    assert_eq!(snapshot["sites"].as_array().unwrap().len(), 1);

    // The admin syncs the Terrace, then a Main Bar register: only the second reaches the manager.
    let (status, _) = bo
        .call(
            Method::POST,
            &format!("/v1/sites/{}/sync", terrace.id),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let bar1 = venue.registers[0].register.id;
    let (status, _) = bo
        .call(
            Method::POST,
            &format!("/v1/registers/{bar1}/sync"),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    loop {
        let (kind, event) = events.next().await.unwrap();
        let text = event.to_string();
        assert!(
            !text.contains(&terrace.id.to_string()),
            "leaked: {kind} {text}"
        );
        assert!(
            !text.contains(&terrace_register.to_string()),
            "leaked: {kind} {text}"
        );
        if kind == "job" && event["job"]["site_id"] == venue.site.id.to_string() {
            break;
        }
    }
}

#[tokio::test]
async fn admins_set_who_sees_which_sites_through_the_api_and_it_holds_at_once() {
    let TwoSites {
        bo,
        venue,
        terrace,
        manager,
        admin,
        ..
    } = two_sites().await;
    let (_, me) = bo.get("/v1/auth/me", &manager.access_token).await;
    let user = me["user"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/users/{user}/sites");
    let (status, access) = bo.get(&path, &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        access,
        json!({ "all_sites": false, "site_ids": [venue.site.id] })
    );

    // Only an admin may change it; a manager may not, even their own.
    let all = json!({ "all_sites": true, "site_ids": [] });
    let (status, _) = bo
        .call(
            Method::PUT,
            &path,
            Some(&manager.access_token),
            Some(all.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Given the Terrace too: the old access token stops, a refresh brings the new list.
    let both = json!({ "all_sites": false, "site_ids": [venue.site.id, terrace.id] });
    let (status, access) = bo.call(Method::PUT, &path, Some(&admin), Some(both)).await;
    assert_eq!(status, StatusCode::OK, "{access}");
    assert_eq!(access["site_ids"].as_array().unwrap().len(), 2);
    assert_error(
        &bo.get("/v1/sites", &manager.access_token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    let (status, refreshed) = bo.refresh(&manager.refresh_token).await;
    assert_eq!(status, StatusCode::OK);
    let token = refreshed["access_token"].as_str().unwrap();
    assert_eq!(
        bo.get("/v1/sites", token).await.1.as_array().unwrap().len(),
        2
    );

    // A site of another company cannot be given; another company's user is not found.
    let rival = Venue::seed(&bo.db().await, "Rival").await;
    let theirs = json!({ "all_sites": false, "site_ids": [rival.site.id] });
    let answer = bo
        .call(Method::PUT, &path, Some(&admin), Some(theirs))
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_field");
    let rival_admin = bo.login(&rival.admin).await.access_token;
    let answer = bo.get(&path, &rival_admin).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    let answer = bo
        .call(
            Method::PUT,
            &path,
            Some(&admin),
            Some(json!({ "all_sites": true, "site_ids": [terrace.id] })),
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_field");
}
