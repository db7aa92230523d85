//! Syncing registers: one scenario per rule and invariant of `docs/sync.md`, with
//! real register agents over real sockets.

use std::sync::Arc;

use regsync_protocol::register::banner_text;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{
    BackOffice, Banners, FAST, RawRegister, Scene, Venue, WAIT, assert_error, eventually, state_of,
    target,
};

fn done(job: &serde_json::Value) -> bool {
    !job["finished_at"].is_null()
}

#[tokio::test]
async fn a_register_online_syncs_and_staff_see_who_asked() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = &venue.registers[0];
    let banners = Arc::new(Banners::default());
    let agent = bo.agent_with(&bar1.credential, None, banners.clone());
    bo.wait_online(&token, bar1.register.id, true).await;

    let job = bo.sync_register(&token, bar1.register.id, true).await;
    assert_eq!(job["kind"], "register");
    assert_eq!(job["requested_by"], "Harbour manager");
    let job = bo.wait_job(&token, &job, "the sync to finish", done).await;
    assert_eq!(state_of(&job, "Bar 1"), "synced");
    assert_eq!(target(&job, "Bar 1")["revision"], 1);
    assert_eq!(job["counts"]["synced"], 1);

    assert_eq!(agent.applied_revision(), 1);
    assert_eq!(*banners.0.lock().unwrap(), [banner_text("Harbour manager")]);
    let register = bo.register(&token, bar1.register.id).await;
    assert_eq!(register["up_to_date"], true);
    assert_eq!(register["last_synced_source"], "back_office");
    assert_eq!(register["last_synced_by"], "Harbour manager");
    assert!(register["last_synced_at"].is_string());
}

#[tokio::test]
async fn a_register_in_a_sale_is_skipped_when_not_asked_to_wait() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = &venue.registers[0];
    let agent = bo.agent(&bar1.credential);
    bo.wait_online(&token, bar1.register.id, true).await;
    agent.start_sale().unwrap();
    eventually(WAIT, "Back Office to see the sale", || async {
        (bo.register(&token, bar1.register.id).await["in_sale"] == true).then_some(())
    })
    .await;

    let job = bo.sync_register(&token, bar1.register.id, false).await;
    let job = bo
        .wait_job(&token, &job, "the sync to be skipped", done)
        .await;
    assert_eq!(state_of(&job, "Bar 1"), "skipped_busy");
    assert_eq!(target(&job, "Bar 1")["reason"], "in a sale");
    assert_eq!(
        agent.applied_revision(),
        0,
        "nothing was applied during the sale"
    );
    let register = bo.register(&token, bar1.register.id).await;
    assert_eq!(register["last_synced_at"], serde_json::Value::Null);
    assert_eq!(register["up_to_date"], false);
}

#[tokio::test]
async fn a_register_in_a_sale_waits_and_syncs_when_the_sale_ends() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = &venue.registers[0];
    let banners = Arc::new(Banners::default());
    let agent = bo.agent_with(&bar1.credential, None, banners.clone());
    bo.wait_online(&token, bar1.register.id, true).await;
    agent.start_sale().unwrap();

    let job = bo.sync_register(&token, bar1.register.id, true).await;
    let waiting = bo
        .wait_job(&token, &job, "the sync to wait for the sale", |job| {
            state_of(job, "Bar 1") == "waiting"
        })
        .await;
    assert!(waiting["finished_at"].is_null());
    assert!(target(&waiting, "Bar 1")["wait_expires_at"].is_string());
    assert_eq!(agent.applied_revision(), 0);

    // The menu changes while it waits: the delivery carries the latest revision.
    let catalog = format!("/v1/sites/{}/catalog", venue.site.id);
    bo.call(
        Method::PATCH,
        &catalog,
        Some(&token),
        Some(json!({ "set_settings": { "happy_hour": "5pm" } })),
    )
    .await;

    agent.end_sale().unwrap();
    let job = bo
        .wait_job(&token, &job, "the sync after the sale", done)
        .await;
    assert_eq!(state_of(&job, "Bar 1"), "synced");
    assert_eq!(target(&job, "Bar 1")["revision"], 2);
    assert_eq!(agent.applied_revision(), 2);
    assert_eq!(agent.catalog().settings["happy_hour"], "5pm");
    assert_eq!(*banners.0.lock().unwrap(), [banner_text("Harbour manager")]);
}

#[tokio::test]
async fn a_wait_that_outlasts_its_expiry_ends_expired() {
    let mut args = FAST.to_vec();
    args.extend(["--wait-expiry-secs", "1"]);
    let Scene { bo, venue, token } = Scene::start(&args).await;
    let bar1 = &venue.registers[0];
    let agent = bo.agent(&bar1.credential);
    bo.wait_online(&token, bar1.register.id, true).await;
    agent.start_sale().unwrap();

    let job = bo.sync_register(&token, bar1.register.id, true).await;
    let job = bo.wait_job(&token, &job, "the wait to expire", done).await;
    assert_eq!(state_of(&job, "Bar 1"), "expired");
    assert_eq!(
        target(&job, "Bar 1")["reason"],
        "the sale did not end within 1 s"
    );

    // The sale ending later changes nothing: the target stays expired.
    agent.end_sale().unwrap();
    let later = bo.job(&token, &job["id"]).await;
    assert_eq!(state_of(&later, "Bar 1"), "expired");
}

#[tokio::test]
async fn sync_online_registers_reports_offline_ones_as_skipped() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    // Bar 1 and Bar 2 are connected; the Kitchen register is off.
    let _bar1 = bo.agent(&venue.registers[0].credential);
    let bar2 = bo.agent(&venue.registers[1].credential);
    for register in &venue.registers[..2] {
        bo.wait_online(&token, register.register.id, true).await;
    }
    bar2.start_sale().unwrap();

    let job = bo.sync_site(&token, venue.site.id, true).await;
    assert_eq!(job["kind"], "site_online");
    assert_eq!(state_of(&job, "Kitchen"), "skipped_offline");
    assert_eq!(target(&job, "Kitchen")["reason"], "offline");

    let job = bo
        .wait_job(&token, &job, "Bar 1 synced and Bar 2 waiting", |job| {
            state_of(job, "Bar 1") == "synced" && state_of(job, "Bar 2") == "waiting"
        })
        .await;
    assert_eq!(job["counts"]["synced"], 1);
    assert_eq!(job["counts"]["waiting"], 1);
    assert_eq!(job["counts"]["skipped_offline"], 1);

    bar2.end_sale().unwrap();
    let job = bo.wait_job(&token, &job, "the job to finish", done).await;
    assert_eq!(state_of(&job, "Bar 2"), "synced");

    // The history shows who asked and how it ended.
    let (status, history) = bo
        .get(&format!("/v1/sites/{}/jobs", venue.site.id), &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history[0]["id"], job["id"]);
    assert_eq!(history[0]["requested_by"], "Harbour manager");
    assert_eq!(history[0]["counts"]["synced"], 2);
}

#[tokio::test]
async fn syncing_an_offline_register_is_skipped_offline_at_once() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let job = bo
        .sync_register(&token, venue.registers[2].register.id, true)
        .await;
    assert_eq!(state_of(&job, "Kitchen"), "skipped_offline");
    assert!(
        done(&job),
        "a job with nothing left to do is finished when saved"
    );
}

#[tokio::test]
async fn a_sync_started_at_the_register_moves_last_synced() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = &venue.registers[0];
    let banners = Arc::new(Banners::default());
    let agent = bo.agent_with(&bar1.credential, None, banners.clone());
    bo.wait_online(&token, bar1.register.id, true).await;
    eventually(WAIT, "the agent to be connected", || async {
        agent.is_connected().then_some(())
    })
    .await;

    agent.request_sync().unwrap();
    let register = eventually(WAIT, "last synced to move", || async {
        let register = bo.register(&token, bar1.register.id).await;
        register["last_synced_at"].is_string().then_some(register)
    })
    .await;
    assert_eq!(register["last_synced_source"], "register");
    assert_eq!(register["last_synced_by"], serde_json::Value::Null);
    assert_eq!(register["up_to_date"], true);
    assert_eq!(agent.applied_revision(), 1);
    assert!(
        banners.0.lock().unwrap().is_empty(),
        "no manager banner for the staff's own sync"
    );

    let (_, history) = bo
        .get(&format!("/v1/sites/{}/jobs", venue.site.id), &token)
        .await;
    assert_eq!(history[0]["source"], "register");

    // A later sync from Back Office moves it forward again.
    let first = register["last_synced_at"].as_str().unwrap().to_owned();
    let job = bo.sync_register(&token, bar1.register.id, true).await;
    bo.wait_job(&token, &job, "the second sync", done).await;
    let register = bo.register(&token, bar1.register.id).await;
    assert!(register["last_synced_at"].as_str().unwrap() > first.as_str());
    assert_eq!(register["last_synced_source"], "back_office");
}

#[tokio::test]
async fn two_syncs_for_one_register_both_end_synced_and_apply_once() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = &venue.registers[0];
    let banners = Arc::new(Banners::default());
    let agent = bo.agent_with(&bar1.credential, None, banners.clone());
    bo.wait_online(&token, bar1.register.id, true).await;

    let first = bo.sync_register(&token, bar1.register.id, true).await;
    let second = bo.sync_site(&token, venue.site.id, true).await;
    for job in [first, second] {
        let job = bo
            .wait_job(&token, &job, "each job to finish", |job| {
                state_of(job, "Bar 1") == "synced"
            })
            .await;
        assert_eq!(target(&job, "Bar 1")["revision"], 1);
    }
    assert_eq!(
        banners.0.lock().unwrap().len(),
        1,
        "the menu was applied once"
    );
    assert_eq!(agent.applied_revision(), 1);
}

#[tokio::test]
async fn staff_without_the_sites_permission_cannot_sync_or_watch() {
    let bo = BackOffice::start(FAST).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let token = bo.login(&venue.staff).await.access_token;
    let register = venue.registers[0].register.id;
    for path in [
        format!("/v1/registers/{register}/sync"),
        format!("/v1/sites/{}/sync", venue.site.id),
    ] {
        let answer = bo.call(Method::POST, &path, Some(&token), None).await;
        assert_error(&answer, StatusCode::FORBIDDEN, "forbidden");
    }
    for path in [
        format!("/v1/sites/{}/jobs", venue.site.id),
        "/v1/events".to_owned(),
    ] {
        assert_error(
            &bo.get(&path, &token).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
}

#[tokio::test]
async fn another_company_cannot_sync_our_registers_or_read_our_jobs() {
    let bo = BackOffice::start(FAST).await;
    let db = bo.db().await;
    let ours = Venue::seed(&db, "Harbour").await;
    let theirs = Venue::seed(&db, "Rival").await;
    let manager = bo.login(&ours.manager).await.access_token;
    let rival = bo.login(&theirs.manager).await.access_token;
    let _agent = bo.agent(&ours.registers[0].credential);
    bo.wait_online(&manager, ours.registers[0].register.id, true)
        .await;

    let register = ours.registers[0].register.id;
    let answer = bo
        .call(
            Method::POST,
            &format!("/v1/registers/{register}/sync"),
            Some(&rival),
            None,
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    let answer = bo
        .call(
            Method::POST,
            &format!("/v1/sites/{}/sync", ours.site.id),
            Some(&rival),
            None,
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &bo.get(&format!("/v1/sites/{}/jobs", ours.site.id), &rival)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let job = bo.sync_register(&manager, register, true).await;
    let answer = bo
        .get(&format!("/v1/jobs/{}", job["id"].as_str().unwrap()), &rival)
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn an_unknown_credential_cannot_connect() {
    let bo = BackOffice::start(FAST).await;
    let error = RawRegister::connect(&bo, "rsd_not-a-real-credential")
        .await
        .err()
        .expect("refused");
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 401),
        other => panic!("expected a 401, got {other}"),
    }
}

#[tokio::test]
async fn a_malformed_message_closes_only_that_connection() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let _bar1 = bo.agent(&venue.registers[0].credential);
    bo.wait_online(&token, venue.registers[0].register.id, true)
        .await;

    let (mut raw, _) =
        RawRegister::hello(&bo, &venue.registers[1].credential, false, json!([])).await;
    bo.wait_online(&token, venue.registers[1].register.id, true)
        .await;
    raw.send_text(r#"{"type":"format_the_disk"}"#).await;
    let reason = raw.closed_reason().await;
    assert!(reason.starts_with("malformed message"), "{reason}");
    bo.wait_online(&token, venue.registers[1].register.id, false)
        .await;

    // The other register is undisturbed, and syncs.
    let register = bo.register(&token, venue.registers[0].register.id).await;
    assert_eq!(register["online"], true);
    let job = bo
        .sync_register(&token, venue.registers[0].register.id, true)
        .await;
    bo.wait_job(&token, &job, "Bar 1 to sync", done).await;

    // A first message that is not a hello is refused too.
    let mut raw = RawRegister::connect(&bo, &venue.registers[2].credential)
        .await
        .unwrap();
    raw.send(json!({ "type": "sale_started" })).await;
    assert!(raw.closed_reason().await.contains("hello"));
}

#[tokio::test]
async fn a_register_is_offline_at_once_on_close_and_after_missed_heartbeats() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = venue.registers[0].register.id;

    // Closing the connection: offline at once.
    let agent = bo.agent(&venue.registers[0].credential);
    bo.wait_online(&token, bar1, true).await;
    agent.shutdown().await;
    let register = bo.wait_online(&token, bar1, false).await;
    assert!(register["last_seen_at"].is_string());

    // Silence: a register that says hello and then never beats goes offline after 3 s.
    let (mut raw, welcome) =
        RawRegister::hello(&bo, &venue.registers[0].credential, false, json!([])).await;
    assert_eq!(welcome["heartbeat_secs"], 1);
    assert_eq!(welcome["register_name"], "Bar 1");
    bo.wait_online(&token, bar1, true).await;
    let reason = raw.closed_reason().await;
    assert!(reason.contains("no heartbeat"), "{reason}");
    bo.wait_online(&token, bar1, false).await;
}

#[tokio::test]
async fn one_late_heartbeat_does_not_make_a_register_flap() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = venue.registers[0].register.id;
    let (mut raw, _) =
        RawRegister::hello(&bo, &venue.registers[0].credential, false, json!([])).await;
    bo.wait_online(&token, bar1, true).await;
    // Beats 2 s apart against a 1 s interval: late every time, never 3 s silent.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(7);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        raw.send(json!({ "type": "heartbeat", "in_sale": false }))
            .await;
        assert_eq!(bo.register(&token, bar1).await["online"], true);
    }
}

#[tokio::test]
async fn a_sale_that_ends_before_the_busy_answer_arrives_still_wakes_the_sync() {
    // The lost wake-up: Back Office hears "sale ended" before the register's "busy". It must
    // re-deliver at once instead of waiting for a sale end that already happened.
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = venue.registers[0].register.id;
    let (mut raw, _) =
        RawRegister::hello(&bo, &venue.registers[0].credential, true, json!([])).await;
    bo.wait_online(&token, bar1, true).await;

    let job = bo.sync_register(&token, bar1, true).await;
    let command = raw.recv().await.unwrap();
    assert_eq!(command["type"], "sync");
    let target_id = command["target_id"].clone();
    raw.send(json!({ "type": "sale_ended" })).await;
    raw.send(
        json!({ "type": "sync_result", "target_id": target_id, "outcome": { "status": "busy" } }),
    )
    .await;

    let again = raw.recv().await.expect("the sync is sent again at once");
    assert_eq!(again["type"], "sync");
    assert_eq!(again["target_id"], target_id);
    raw.send(json!({
        "type": "sync_result", "target_id": target_id,
        "outcome": { "status": "applied", "revision": 1, "applied_at": chrono::Utc::now() }
    }))
    .await;
    let job = bo
        .wait_job(&token, &job, "the woken sync to finish", done)
        .await;
    assert_eq!(state_of(&job, "Bar 1"), "synced");
}

#[tokio::test]
async fn a_command_lost_with_the_connection_is_sent_again_and_applied_once() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = venue.registers[0].register.id;
    let credential = &venue.registers[0].credential;
    let (mut raw, _) = RawRegister::hello(&bo, credential, false, json!([])).await;
    bo.wait_online(&token, bar1, true).await;

    let job = bo.sync_register(&token, bar1, true).await;
    let command = raw.recv().await.unwrap();
    // The connection drops before the register answers.
    drop(raw);
    bo.wait_online(&token, bar1, false).await;

    // The real agent reconnects: Back Office sends the same target again (at least once), and it
    // is applied once.
    let banners = Arc::new(Banners::default());
    let agent = bo.agent_with(credential, None, banners.clone());
    let job = bo
        .wait_job(&token, &job, "the re-sent sync to finish", done)
        .await;
    assert_eq!(state_of(&job, "Bar 1"), "synced");
    assert_eq!(target(&job, "Bar 1")["id"], command["target_id"]);
    assert_eq!(agent.applied_revision(), 1);
    assert_eq!(banners.0.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_result_lost_with_the_connection_is_settled_by_the_next_hello() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = venue.registers[0].register.id;
    let credential = &venue.registers[0].credential;
    let (mut raw, _) = RawRegister::hello(&bo, credential, false, json!([])).await;
    bo.wait_online(&token, bar1, true).await;

    let job = bo.sync_register(&token, bar1, true).await;
    let command = raw.recv().await.unwrap();
    drop(raw); // applied, but the answer never left the register
    bo.wait_online(&token, bar1, false).await;

    let recent = json!([{ "target_id": command["target_id"], "revision": 1, "applied_at": chrono::Utc::now() }]);
    let (mut raw, _) = RawRegister::hello_at(&bo, credential, 1, false, recent).await;
    let job = bo
        .wait_job(&token, &job, "the hello to settle the sync", done)
        .await;
    assert_eq!(state_of(&job, "Bar 1"), "synced");
    let register = bo.register(&token, bar1).await;
    assert_eq!(register["applied_revision"], 1);
    assert!(register["last_synced_at"].is_string());
    // Nothing was sent again: the register already had it.
    raw.send(json!({ "type": "heartbeat", "in_sale": false }))
        .await;
    let next = tokio::time::timeout(std::time::Duration::from_millis(500), raw.recv()).await;
    assert!(next.is_err(), "no command was re-sent: {next:?}");
}

#[tokio::test]
async fn a_register_that_drops_mid_sync_and_stays_away_ends_failed() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = venue.registers[0].register.id;
    let (mut raw, _) =
        RawRegister::hello(&bo, &venue.registers[0].credential, false, json!([])).await;
    bo.wait_online(&token, bar1, true).await;
    let job = bo.sync_register(&token, bar1, true).await;
    raw.recv().await.unwrap();
    drop(raw);
    let job = bo.wait_job(&token, &job, "the sync to fail", done).await;
    assert_eq!(state_of(&job, "Bar 1"), "failed");
    assert_eq!(
        target(&job, "Bar 1")["reason"],
        "lost its connection during the sync"
    );
}

#[tokio::test]
async fn a_register_that_never_answers_ends_failed() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = venue.registers[0].register.id;
    let (mut raw, _) =
        RawRegister::hello(&bo, &venue.registers[0].credential, false, json!([])).await;
    bo.wait_online(&token, bar1, true).await;
    let job = bo.sync_register(&token, bar1, true).await;
    raw.recv().await.unwrap();
    // Keep beating, never answer.
    let beating = async {
        loop {
            raw.send(json!({ "type": "heartbeat", "in_sale": false }))
                .await;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    };
    let job = tokio::select! {
        job = bo.wait_job(&token, &job, "the sync to time out", done) => job,
        () = beating => unreachable!(),
    };
    assert_eq!(state_of(&job, "Bar 1"), "failed");
    assert_eq!(
        target(&job, "Bar 1")["reason"],
        "no answer from the register within 5 s"
    );
}

#[tokio::test]
async fn a_site_job_lists_its_registers_by_name_as_people_read_them() {
    let bo = BackOffice::start(FAST).await;
    let db = bo.db().await;
    let venue = Venue::seed(&db, "Harbour").await;
    for name in ["bar 3", "Annex", "kiosk"] {
        regsync_backoffice::admin::create_register(&db, &venue.site, name)
            .await
            .unwrap();
    }
    let token = bo.login(&venue.manager).await.access_token;
    let job = bo.sync_site(&token, venue.site.id, true).await;
    let names: Vec<&str> = job["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["register_name"].as_str().unwrap())
        .collect();
    // Case does not split the list: "bar 3" sits with "Bar 1" and "Bar 2".
    assert_eq!(
        names,
        ["Annex", "Bar 1", "Bar 2", "bar 3", "kiosk", "Kitchen"]
    );
    assert!(
        job["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "skipped_offline"),
        "none of them is connected: {job}"
    );
}

#[tokio::test]
async fn asking_for_a_job_with_wait_secs_answers_when_it_finishes() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = &venue.registers[0];
    let agent = bo.agent(&bar1.credential);
    bo.wait_online(&token, bar1.register.id, true).await;
    agent.start_sale().unwrap();
    let job = bo.sync_register(&token, bar1.register.id, true).await;
    let path = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
    bo.wait_job(&token, &job, "the sync to wait for the sale", |job| {
        state_of(job, "Bar 1") == "waiting"
    })
    .await;

    // Time runs out while the register is still in its sale: the job as it is, unfinished.
    let (status, held) = bo.get(&format!("{path}?wait_secs=1"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(held["finished_at"].is_null(), "{held}");
    assert_eq!(state_of(&held, "Bar 1"), "waiting");

    // Held open, it answers once the sale ends and the register has synced.
    // (Were the wait ignored, this would answer "waiting" before the sale ends.)
    let held = bo
        .raw()
        .get(format!("{}{path}?wait_secs=20", bo.url))
        .bearer_auth(&token)
        .send();
    let waiting = tokio::spawn(held);
    agent.end_sale().unwrap();
    let answer = waiting.await.unwrap().unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let finished: serde_json::Value = answer.json().await.unwrap();
    assert!(finished["finished_at"].is_string(), "{finished}");
    assert_eq!(state_of(&finished, "Bar 1"), "synced");

    assert_error(
        &bo.get(&format!("{path}?wait_secs=soon"), &token).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
}

/// At-least-once delivery must never make "last synced" report a sync that did not happen.
#[tokio::test]
async fn a_repeated_applied_answer_does_not_move_last_synced() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = venue.registers[0].register.id;
    let (mut raw, _) =
        RawRegister::hello(&bo, &venue.registers[0].credential, false, json!([])).await;
    bo.wait_online(&token, bar1, true).await;

    let job = bo.sync_register(&token, bar1, true).await;
    let command = raw.recv().await.unwrap();
    let applied_at = chrono::Utc::now() - chrono::TimeDelta::seconds(2);
    let answer = json!({
        "type": "sync_result", "target_id": command["target_id"],
        "outcome": { "status": "applied", "revision": 1, "applied_at": applied_at },
    });
    raw.send(answer.clone()).await;
    bo.wait_job(&token, &job, "the sync to settle", done).await;
    let first = bo.register(&token, bar1).await["last_synced_at"].clone();
    let first_at: chrono::DateTime<chrono::Utc> = serde_json::from_value(first.clone()).unwrap();
    // To the microsecond: what either database keeps.
    use chrono::SubsecRound;
    assert_eq!(
        first_at,
        applied_at.trunc_subsecs(6),
        "last synced is when the register applied it"
    );

    // The same answer again, a little later; then a sale, which is handled after it.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    raw.send(answer).await;
    raw.send(json!({ "type": "sale_started" })).await;
    eventually(WAIT, "the sale to show", || async {
        (bo.register(&token, bar1).await["in_sale"] == true).then_some(())
    })
    .await;
    let register = bo.register(&token, bar1).await;
    assert_eq!(
        register["last_synced_at"], first,
        "a repeated answer moved last synced"
    );
}

/// A reinstalled or restored register: its hello is the truth about what it holds.
#[tokio::test]
async fn a_register_reporting_a_lower_revision_is_shown_behind() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = venue.registers[0].register.id;
    let credential = &venue.registers[0].credential;
    let agent = bo.agent(credential);
    bo.wait_online(&token, bar1, true).await;
    let job = bo.sync_register(&token, bar1, true).await;
    bo.wait_job(&token, &job, "the sync to finish", done).await;
    let register = bo.register(&token, bar1).await;
    assert_eq!(
        (
            register["applied_revision"].clone(),
            register["up_to_date"].clone()
        ),
        (json!(1), json!(true))
    );
    agent.shutdown().await;
    bo.wait_online(&token, bar1, false).await;

    let (_raw, _) = RawRegister::hello_at(&bo, credential, 0, false, json!([])).await;
    let register = eventually(WAIT, "the register to show what it reports", || async {
        let register = bo.register(&token, bar1).await;
        (register["online"] == true && register["applied_revision"] == 0).then_some(register)
    })
    .await;
    assert_eq!(register["up_to_date"], false);
    assert_eq!(register["revisions_behind"], 1);
}

/// A register's own page: its recent syncs with who asked and how each ended, and when it went
/// online and offline.
#[tokio::test]
async fn a_registers_activity_lists_its_syncs_and_when_it_came_and_went() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = &venue.registers[0];
    let agent = bo.agent(&bar1.credential);
    bo.wait_online(&token, bar1.register.id, true).await;
    let first = bo.sync_register(&token, bar1.register.id, true).await;
    bo.wait_job(&token, &first, "the first sync", done).await;
    agent.start_sale().unwrap();
    eventually(WAIT, "Back Office to see the sale", || async {
        (bo.register(&token, bar1.register.id).await["in_sale"] == true).then_some(())
    })
    .await;
    let second = bo.sync_register(&token, bar1.register.id, false).await;
    bo.wait_job(&token, &second, "the second sync", done).await;
    drop(agent);
    bo.wait_online(&token, bar1.register.id, false).await;

    let path = format!("/v1/registers/{}/activity", bar1.register.id);
    let activity = eventually(WAIT, "the offline time to be noted", || async {
        let (status, activity) = bo.get(&path, &token).await;
        assert_eq!(status, StatusCode::OK, "{activity}");
        (activity["presence"].as_array().unwrap().len() == 2).then_some(activity)
    })
    .await;
    let syncs = activity["syncs"].as_array().unwrap();
    assert_eq!(syncs.len(), 2);
    assert_eq!(syncs[0]["job_id"], second["id"]);
    assert_eq!(syncs[0]["state"], "skipped_busy");
    assert_eq!(syncs[1]["state"], "synced");
    assert_eq!(syncs[1]["requested_by"], "Harbour manager");
    assert_eq!(syncs[1]["revision"], 1);
    let presence = activity["presence"].as_array().unwrap();
    assert_eq!(presence[0]["online"], false, "newest first: {activity}");
    assert_eq!(presence[1]["online"], true);

    // Up to date: nothing missing.
    assert!(activity["missing"].is_null(), "{activity}");

    // The menu moves on twice while Bar 1 holds revision 1: its page says what it lacks.
    let menu = format!("/v1/sites/{}/catalog", venue.site.id);
    for edit in [
        json!({ "upsert_products": [
            { "id": "1", "name": "Latte", "price_cents": 450 },
            { "id": "2", "name": "Mocha", "price_cents": 500 }
        ] }),
        json!({ "upsert_products": [
            { "id": "1", "name": "Latte", "price_cents": 480 },
            { "id": "3", "name": "Flat white", "price_cents": 460 }
        ], "remove_products": ["2"], "set_settings": { "footer": "See you" },
           "upsert_categories": [{ "id": "hot", "name": "Hot drinks" }] }),
    ] {
        let (status, body) = bo
            .call(Method::PATCH, &menu, Some(&token), Some(edit))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, activity) = bo.get(&path, &token).await;
    let missing = &activity["missing"];
    assert_eq!(missing["from_revision"], 1, "{activity}");
    assert_eq!(missing["to_revision"], 3);
    assert_eq!(missing["known"], true);
    assert_eq!(missing["diff"]["added"], json!(["Flat white", "Latte"]));
    assert_eq!(
        missing["diff"]["removed"],
        json!([]),
        "Mocha came and went after revision 1"
    );
    assert_eq!(missing["diff"]["settings"], json!(["footer"]));
    assert_eq!(missing["diff"]["categories"], json!(["Hot drinks"]));

    // Another company's manager: no such register.
    let other = Venue::seed(&bo.db().await, "Elsewhere").await;
    let theirs = bo.login(&other.manager).await.access_token;
    assert_error(
        &bo.get(&path, &theirs).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}
