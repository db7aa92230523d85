//! Live events: a snapshot, then every change, only to the company it belongs to.

use std::cell::Cell;

use serde_json::json;

use crate::harness::{BackOffice, EventStream, FAST, Scene, Venue};

#[tokio::test]
async fn a_subscriber_gets_a_snapshot_then_register_and_job_changes() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let mut events = EventStream::open(&bo, &token).await;

    let (kind, snapshot) = events.next().await.unwrap();
    assert_eq!(kind, "snapshot");
    assert_eq!(snapshot["sites"][0]["name"], "Main Bar");
    assert_eq!(snapshot["registers"].as_array().unwrap().len(), 3);
    assert!(
        snapshot["registers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["online"] == false)
    );

    let bar1 = &venue.registers[0];
    let agent = bo.agent(&bar1.credential);
    let id = bar1.register.id.to_string();
    events
        .until("Bar 1 online", |kind, e| {
            kind == "register" && e["register"]["id"] == id && e["register"]["online"] == true
        })
        .await;
    agent.start_sale().unwrap();
    events
        .until("Bar 1 in a sale", |kind, e| {
            kind == "register" && e["register"]["id"] == id && e["register"]["in_sale"] == true
        })
        .await;

    let job = bo.sync_register(&token, bar1.register.id, true).await;
    let job_id = job["id"].clone();
    events
        .until("the target waiting", |kind, e| {
            kind == "target" && e["target"]["job_id"] == job_id && e["target"]["state"] == "waiting"
        })
        .await;
    agent.end_sale().unwrap();
    // Within one batch of changes, events of different kinds may come in any order.
    let (synced, finished, up_to_date) = (Cell::new(false), Cell::new(None), Cell::new(false));
    events
        .until(
            "the target synced, the job finished and Bar 1 up to date",
            |kind, e| {
                match kind {
                    "target" if e["target"]["job_id"] == job_id => {
                        synced.set(e["target"]["state"] == "synced")
                    }
                    "job" if e["job"]["id"] == job_id && e["job"]["finished_at"].is_string() => {
                        finished.set(e["job"]["counts"]["synced"].as_u64())
                    }
                    "register" if e["register"]["id"] == id => up_to_date.set(
                        e["register"]["up_to_date"] == true
                            && e["register"]["last_synced_at"].is_string(),
                    ),
                    _ => {}
                }
                synced.get() && finished.get().is_some() && up_to_date.get()
            },
        )
        .await;
    assert_eq!(finished.get(), Some(1));

    // A menu change: the site's revision moves and the register falls behind.
    bo.call(
        reqwest::Method::PATCH,
        &format!("/v1/sites/{}/catalog", venue.site.id),
        Some(&token),
        Some(json!({ "set_settings": { "x": "y" } })),
    )
    .await;
    events
        .until("the site at revision 2", |kind, e| {
            kind == "site" && e["site"]["catalog_revision"] == 2
        })
        .await;
    events
        .until("Bar 1 one behind", |kind, e| {
            kind == "register"
                && e["register"]["id"] == id
                && e["register"]["revisions_behind"] == 1
        })
        .await;
}

#[tokio::test]
async fn a_subscriber_that_reconnects_misses_nothing() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let events = EventStream::open(&bo, &token).await;
    drop(events);

    // Changes while nobody listens...
    let _agent = bo.agent(&venue.registers[1].credential);
    bo.wait_online(&token, venue.registers[1].register.id, true)
        .await;
    let job = bo
        .sync_register(&token, venue.registers[1].register.id, true)
        .await;
    bo.wait_job(&token, &job, "the sync", |job| {
        !job["finished_at"].is_null()
    })
    .await;

    // ...are in the snapshot of the next subscription.
    let mut events = EventStream::open(&bo, &token).await;
    let (kind, snapshot) = events.next().await.unwrap();
    assert_eq!(kind, "snapshot");
    let bar2 = snapshot["registers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Bar 2")
        .unwrap();
    assert_eq!(bar2["online"], true);
    assert_eq!(bar2["up_to_date"], true);
    assert_eq!(snapshot["jobs"][0]["id"], job["id"]);
    assert!(snapshot["jobs"][0]["finished_at"].is_string());
}

#[tokio::test]
async fn a_company_sees_only_its_own_events() {
    let bo = BackOffice::start(FAST).await;
    let db = bo.db().await;
    let ours = Venue::seed(&db, "Harbour").await;
    let theirs = Venue::seed(&db, "Rival").await;
    let rival = bo.login(&theirs.manager).await.access_token;
    let mut rival_events = EventStream::open(&bo, &rival).await;
    let (_, snapshot) = rival_events.next().await.unwrap();
    let ours_id = ours.registers[0].register.id.to_string();
    assert!(
        snapshot["registers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != ours_id)
    );

    // Our register connects and syncs; then one of theirs connects.
    let manager = bo.login(&ours.manager).await.access_token;
    let _ours = bo.agent(&ours.registers[0].credential);
    bo.wait_online(&manager, ours.registers[0].register.id, true)
        .await;
    let job = bo
        .sync_register(&manager, ours.registers[0].register.id, true)
        .await;
    bo.wait_job(&manager, &job, "our sync", |job| {
        !job["finished_at"].is_null()
    })
    .await;
    let _theirs = bo.agent(&theirs.registers[0].credential);
    let theirs_id = theirs.registers[0].register.id.to_string();

    // Everything the rival sees until their own register's event is theirs alone.
    let our_site = ours.site.id.to_string();
    loop {
        let (kind, event) = rival_events.next().await.unwrap();
        let text = event.to_string();
        assert!(
            !text.contains(&ours_id) && !text.contains(&our_site),
            "leaked: {kind} {text}"
        );
        if kind == "register" && event["register"]["id"] == theirs_id {
            break;
        }
    }
}

/// A stream ends with its sign-in: nothing reaches a manager who signed out.
#[tokio::test]
async fn the_event_stream_ends_at_sign_out() {
    let bo = BackOffice::start(FAST).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let session = bo.login(&venue.manager).await;
    let mut events = EventStream::open(&bo, &session.access_token).await;
    events
        .until("the snapshot", |kind, _| kind == "snapshot")
        .await;

    let (status, _) = bo
        .call(
            reqwest::Method::POST,
            "/v1/auth/logout",
            Some(&session.access_token),
            None,
        )
        .await;
    assert_eq!(status, 204);
    // Something the stream would report: a register comes online.
    let _agent = bo.agent(&venue.registers[0].credential);
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
        .await
        .expect("the stream stayed open after sign-out");
    assert!(next.is_none(), "an event after sign-out: {next:?}");
}

/// And when its access token expires; the app then reconnects with a fresh one.
#[tokio::test]
async fn the_event_stream_ends_when_its_access_token_expires() {
    let args: Vec<&str> = FAST
        .iter()
        .copied()
        .chain(["--access-ttl-secs", "2"])
        .collect();
    let bo = BackOffice::start(&args).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let session = bo.login(&venue.manager).await;
    let mut events = EventStream::open(&bo, &session.access_token).await;
    events
        .until("the snapshot", |kind, _| kind == "snapshot")
        .await;
    let started = std::time::Instant::now();
    let _agent = bo.agent(&venue.registers[0].credential);
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some((kind, _)) = events.next().await {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(3),
                "a {kind} event after the token expired"
            );
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its token");
}
