//! "Sync online registers at all my sites": one group of site jobs, seen as one, and only over
//! the sites the manager sees.

use regsync_backoffice::admin;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{FAST, Scene, assert_error, state_of};

fn group_done(group: &Value) -> bool {
    !group["finished_at"].is_null()
}

#[tokio::test]
async fn one_sync_covers_every_site_with_registers_and_breaks_down_by_site() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let db = bo.db().await;
    let company = venue.company.id.to_string();
    let terrace = admin::create_site(&db, &company, "Terrace").await.unwrap();
    let patio = admin::create_register(&db, &terrace, "Patio")
        .await
        .unwrap();
    // A site without registers is left out.
    admin::create_site(&db, &company, "Warehouse")
        .await
        .unwrap();
    let _bar1 = bo.agent(&venue.registers[0].credential);
    let _patio = bo.agent(&patio.credential);
    bo.wait_online(&token, venue.registers[0].register.id, true)
        .await;
    bo.wait_online(&token, patio.register.id, true).await;

    let (status, group) = bo.call(Method::POST, "/v1/sync", Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{group}");
    let jobs = group["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "Main Bar and Terrace: {group}");
    assert_eq!(group["requested_by"], "Harbour manager");
    for job in jobs {
        assert_eq!(job["group"]["id"], group["id"]);
        assert_eq!(job["group"]["jobs"], 2);
        assert_eq!(job["kind"], "site_online");
    }

    let path = format!("/v1/sync/{}?wait_secs=20", group["id"].as_str().unwrap());
    let (status, group) = bo.get(&path, &token).await;
    assert_eq!(status, StatusCode::OK, "{group}");
    assert!(group_done(&group), "{group}");
    assert_eq!(group["counts"]["synced"], 2);
    assert_eq!(group["counts"]["skipped_offline"], 2);
    // The breakdown, by site name: Main Bar (1 synced, 2 offline), then Terrace (1 synced).
    let breakdown: Vec<(Value, Value)> = group["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["site_id"].clone(), j["counts"]["synced"].clone()))
        .collect();
    assert_eq!(
        breakdown,
        [
            (json!(venue.site.id.to_string()), json!(1)),
            (json!(terrace.id.to_string()), json!(1))
        ]
    );
    // Each site's history has its part; each part opens to its registers.
    let (_, history) = bo
        .get(&format!("/v1/sites/{}/jobs", terrace.id), &token)
        .await;
    assert_eq!(history[0]["group"]["id"], group["id"]);
    let part = bo.job(&token, &history[0]["id"]).await;
    assert_eq!(state_of(&part, "Patio"), "synced");
}

#[tokio::test]
async fn a_manager_of_some_sites_syncs_and_sees_only_those() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let db = bo.db().await;
    let terrace = admin::create_site(&db, &venue.company.id.to_string(), "Terrace")
        .await
        .unwrap();
    admin::create_register(&db, &terrace, "Patio")
        .await
        .unwrap();
    let (_, everything) = bo.call(Method::POST, "/v1/sync", Some(&token), None).await;
    assert_eq!(everything["jobs"].as_array().unwrap().len(), 2);

    admin::set_user_sites(&db, &venue.manager, Some(&["Main Bar".to_owned()]))
        .await
        .unwrap();
    let limited = bo.login(&venue.manager).await.access_token;
    let (status, mine) = bo
        .call(Method::POST, "/v1/sync", Some(&limited), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{mine}");
    let jobs = mine["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["site_id"], venue.site.id.to_string());
    // The earlier group shows them their site's part only.
    let path = format!("/v1/sync/{}", everything["id"].as_str().unwrap());
    let (_, seen) = bo.get(&path, &limited).await;
    assert_eq!(seen["jobs"].as_array().unwrap().len(), 1, "{seen}");

    // Another company: 404, as for an id that does not exist; bad input: a clear 400.
    let other = crate::harness::Venue::seed(&db, "Lighthouse").await;
    let stranger = bo.login(&other.manager).await.access_token;
    assert_error(
        &bo.get(&path, &stranger).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let unknown = format!("/v1/sync/{}", uuid::Uuid::now_v7());
    assert_error(
        &bo.get(&unknown, &limited).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let body = json!({ "queue_minutes": 10 });
    let answer = bo
        .call(Method::POST, "/v1/sync", Some(&limited), Some(body))
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_field");
    // A company whose sites have no registers: 409.
    let empty = crate::harness::Venue::seed(&db, "Empty").await;
    for register in &empty.registers {
        regsync_backoffice::on_db!(&db, |pool| sqlx::query(
            "DELETE FROM registers WHERE id = $1"
        )
        .bind(register.register.id)
        .execute(pool)
        .await
        .map(|_| ()))
        .unwrap();
    }
    let nobody = bo.login(&empty.manager).await.access_token;
    let answer = bo.call(Method::POST, "/v1/sync", Some(&nobody), None).await;
    assert_error(&answer, StatusCode::CONFLICT, "no_registers");
}
