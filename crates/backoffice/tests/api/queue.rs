//! Offline registers queued until they reconnect (`queue_offline`): real agents, a real Back
//! Office, and its restart in between.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use regsync_protocol::register::banner_text;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Banners, FAST, RawRegister, Scene, assert_error, state_of, target};

fn done(job: &Value) -> bool {
    !job["finished_at"].is_null()
}

fn at(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_offline_register_queued_by_a_site_sync_is_synced_when_it_reconnects() {
    let Scene {
        mut bo,
        venue,
        token,
    } = Scene::start(FAST).await;
    let (bar1, kitchen) = (&venue.registers[0], &venue.registers[2]);
    let _bar1 = bo.agent(&bar1.credential);
    bo.wait_online(&token, bar1.register.id, true).await;

    let asked = Utc::now();
    let body = json!({ "queue_offline": true, "queue_minutes": 90 });
    let path = format!("/v1/sites/{}/sync", venue.site.id);
    let (status, job) = bo.call(Method::POST, &path, Some(&token), Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    // Bar 2 and the Kitchen are offline: queued until 90 minutes from now, not skipped.
    for name in ["Bar 2", "Kitchen"] {
        assert_eq!(state_of(&job, name), "awaiting_reconnect", "{job}");
        let until = at(&target(&job, name)["wait_expires_at"]);
        let queue = until - asked;
        assert!(
            queue > TimeDelta::minutes(89) && queue <= TimeDelta::minutes(91),
            "queued for {queue}"
        );
    }

    // Waiting on the job answers once Bar 1 is done: the queued ones may take a day.
    let started = Instant::now();
    let (status, waited) = bo
        .get(
            &format!("/v1/jobs/{}?wait_secs=20", job["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed().as_secs() < 15,
        "held {:?} although only queued registers were left",
        started.elapsed()
    );
    assert_eq!(state_of(&waited, "Bar 1"), "synced");
    assert_eq!(waited["counts"]["awaiting_reconnect"], 2);
    assert!(!done(&waited), "the job goes on while registers are queued");

    // Back Office crashes in between: the queue is kept.
    bo.crash_and_restart().await;

    let banners = Arc::new(Banners::default());
    let agent = bo.agent_with(&kitchen.credential, None, banners.clone());
    let job = bo
        .wait_job(&token, &job, "the Kitchen synced on reconnecting", |job| {
            state_of(job, "Kitchen") == "synced"
        })
        .await;
    assert_eq!(agent.applied_revision(), 1);
    assert_eq!(*banners.0.lock().unwrap(), [banner_text("Harbour manager")]);
    assert_eq!(state_of(&job, "Bar 2"), "awaiting_reconnect");
    assert!(!done(&job));
    let register = bo.register(&token, kitchen.register.id).await;
    assert_eq!(register["up_to_date"], true);
    assert_eq!(register["last_synced_by"], "Harbour manager");

    let _bar2 = bo.agent(&venue.registers[1].credential);
    let job = bo.wait_job(&token, &job, "the job to finish", done).await;
    assert_eq!(job["counts"]["synced"], 3);
}

#[tokio::test]
async fn a_queued_register_that_comes_back_in_a_sale_syncs_when_the_sale_ends() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let kitchen = &venue.registers[2];
    let body = json!({ "queue_offline": true });
    let path = format!("/v1/registers/{}/sync", kitchen.register.id);
    let (status, job) = bo.call(Method::POST, &path, Some(&token), Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let until = at(&target(&job, "Kitchen")["wait_expires_at"]);
    let queue = until - Utc::now();
    assert!(
        queue > TimeDelta::hours(23),
        "a day by default, not {queue}"
    );

    // The register comes back with a sale open: it is sent the sync, says busy, and the sync
    // waits for the sale to end.
    let (mut raw, _) = RawRegister::hello(&bo, &kitchen.credential, true, json!([])).await;
    let command = raw.recv().await.expect("the queued sync, on reconnecting");
    assert_eq!(command["type"], "sync", "{command}");
    assert_eq!(command["requested_by"], "Harbour manager", "{command}");
    let target_id = command["target_id"].clone();
    raw.send(
        json!({ "type": "sync_result", "target_id": target_id, "outcome": { "status": "busy" } }),
    )
    .await;
    let job = bo
        .wait_job(&token, &job, "the Kitchen to wait for its sale", |job| {
            state_of(job, "Kitchen") == "waiting"
        })
        .await;
    assert!(!done(&job));

    raw.send(json!({ "type": "sale_ended" })).await;
    let again = raw
        .recv()
        .await
        .expect("the sync again once the sale ended");
    assert_eq!(again["target_id"], target_id);
    raw.send(json!({
        "type": "sync_result", "target_id": target_id,
        "outcome": { "status": "applied", "revision": 1, "applied_at": Utc::now() }
    }))
    .await;
    let job = bo.wait_job(&token, &job, "the job to finish", done).await;
    assert_eq!(state_of(&job, "Kitchen"), "synced");
}

#[tokio::test]
async fn queue_lengths_out_of_range_are_refused_and_nothing_is_made() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let path = format!("/v1/sites/{}/sync", venue.site.id);
    for body in [
        json!({ "queue_offline": true, "queue_minutes": 0 }),
        json!({ "queue_offline": true, "queue_minutes": 4321 }),
        json!({ "queue_minutes": 60 }),
        json!({ "queue_offline": "yes" }),
    ] {
        let answer = bo
            .call(Method::POST, &path, Some(&token), Some(body.clone()))
            .await;
        assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{body}: {}", answer.1);
        if body["queue_offline"] != "yes" {
            assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_field");
            assert!(
                answer.1["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("queue_minutes"),
                "{}",
                answer.1
            );
        }
    }
    let (_, history) = bo
        .get(&format!("/v1/sites/{}/jobs", venue.site.id), &token)
        .await;
    assert_eq!(history, json!([]), "no job was made");
    // Three days is the most.
    let body = json!({ "queue_offline": true, "queue_minutes": 4320 });
    let (status, _) = bo.call(Method::POST, &path, Some(&token), Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}
