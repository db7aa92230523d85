//! The client against a real Back Office process on loopback, with real register agents, and
//! against a raw TCP server that answers badly.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use regsync_client::{Client, Error, Update};
use regsync_protocol::sync::{Event, SyncRequest, TargetState};
use regsync_protocol::{CatalogEdit, ErrorCode};
use regsync_testkit::{BackOffice, FAST, PASSWORD, Venue, WAIT, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn every_manager_route_works_through_the_client() {
    let bo = BackOffice::start(FAST).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let (client, session) = Client::login(&bo.url, &venue.manager, PASSWORD)
        .await
        .unwrap();
    assert_eq!(session.me.user.display_name, "Harbour manager");
    assert!(client.health().await.unwrap().status == "ok");
    assert_eq!(client.me().await.unwrap().company.name, "Harbour");

    let sites = client.sites().await.unwrap();
    assert_eq!(sites.len(), 1);
    let site = client.site(sites[0].id).await.unwrap();
    let registers = client.registers(site.id).await.unwrap();
    assert_eq!(registers.len(), 3);
    let bar1 = client
        .register(venue.registers[0].register.id)
        .await
        .unwrap();
    assert_eq!(bar1.name, "Bar 1");

    let edit = CatalogEdit {
        set_settings: [("footer".to_owned(), "Cheers".to_owned())].into(),
        ..Default::default()
    };
    let catalog = client.edit_catalog(site.id, &edit).await.unwrap();
    assert_eq!(catalog.revision, 2);
    assert_eq!(client.catalog(site.id).await.unwrap(), catalog);

    let agent = bo.agent(&venue.registers[0].credential);
    bo.wait_online(&session.access_token, bar1.id, true).await;
    let job = client
        .sync_register(bar1.id, &SyncRequest::default())
        .await
        .unwrap();
    let job = client.wait_for_job(job.summary.id, WAIT).await.unwrap();
    assert_eq!(job.targets[0].state, TargetState::Synced);
    assert_eq!(agent.applied_revision(), 2);

    let job = client
        .sync_site(
            site.id,
            &SyncRequest {
                retry_when_free: false,
                ..SyncRequest::default()
            },
        )
        .await
        .unwrap();
    let job = client.wait_for_job(job.summary.id, WAIT).await.unwrap();
    assert_eq!(job.summary.counts.synced, 1);
    assert_eq!(job.summary.counts.skipped_offline, 2);
    let history = client.jobs(site.id, 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].id, job.summary.id);

    client.logout().await.unwrap();
    assert!(matches!(
        client.sites().await,
        Err(Error::NotSignedIn { .. })
    ));
}

#[tokio::test]
async fn failures_come_back_as_errors_a_caller_can_act_on() {
    let bo = BackOffice::start(&["--login-failures-per-account", "2"]).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;

    let wrong = Client::login(&bo.url, &venue.manager, "wrong password")
        .await
        .unwrap_err();
    assert!(
        matches!(
            &wrong,
            Error::NotSignedIn {
                code: ErrorCode::InvalidCredentials,
                ..
            }
        ),
        "{wrong:?}"
    );
    Client::login(&bo.url, &venue.manager, "wrong password")
        .await
        .unwrap_err();
    match Client::login(&bo.url, &venue.manager, PASSWORD)
        .await
        .unwrap_err()
    {
        Error::RateLimited { retry_after, .. } => assert!(retry_after.unwrap() > Duration::ZERO),
        other => panic!("{other:?}"),
    }

    let (staff, _) = Client::login(&bo.url, &venue.staff, PASSWORD)
        .await
        .unwrap();
    let site = venue.site.id;
    assert!(matches!(
        staff.registers(site).await,
        Err(Error::Forbidden { .. })
    ));
    let (admin, _) = Client::login(&bo.url, &venue.admin, PASSWORD)
        .await
        .unwrap();
    assert!(matches!(
        admin.registers(uuid::Uuid::now_v7()).await,
        Err(Error::NotFound { .. })
    ));
    let bad = CatalogEdit {
        remove_products: vec!["none".into()],
        expected_revision: Some(99),
        ..Default::default()
    };
    match admin.edit_catalog(site, &bad).await.unwrap_err() {
        Error::Api {
            status: 409, code, ..
        } => assert_eq!(code, ErrorCode::RevisionConflict),
        other => panic!("{other:?}"),
    }

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let error = Client::login(&format!("http://{closed}"), &venue.manager, PASSWORD)
        .await
        .unwrap_err();
    assert!(error.is_unreachable(), "{error:?}");
}

#[tokio::test]
async fn concurrent_calls_share_one_token_refresh() {
    // Access tokens last 1 s, so every call must refresh first: twenty at once must spend the
    // refresh token once, or Back Office would see it reused and end the session.
    let bo = BackOffice::start(&["--access-ttl-secs", "1"]).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let (client, session) = Client::login(&bo.url, &venue.manager, PASSWORD)
        .await
        .unwrap();
    let refreshes = Arc::new(AtomicUsize::new(0));
    let counter = refreshes.clone();
    client.set_on_refresh(Arc::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    }));

    // Until the first access token has run out (a known instant, not a guess).
    let expired = session.access_expires_at + chrono::Duration::milliseconds(50);
    tokio::time::sleep((expired - chrono::Utc::now()).to_std().unwrap_or_default()).await;
    let start = Arc::new(tokio::sync::Barrier::new(20));
    let calls = (0..20).map(|_| {
        let client = client.clone();
        let start = start.clone();
        tokio::spawn(async move {
            start.wait().await;
            client.sites().await
        })
    });
    for call in futures::future::join_all(calls).await {
        assert_eq!(call.unwrap().unwrap().len(), 1);
    }
    assert_eq!(
        refreshes.load(Ordering::SeqCst),
        1,
        "one refresh for the whole burst"
    );
    // The session is intact afterwards.
    assert_eq!(client.sites().await.unwrap().len(), 1);
    let stored = client.refresh_token().await.unwrap();
    let resumed = Client::resume(&bo.url, &stored, None).await.unwrap();
    assert_eq!(resumed.me().await.unwrap().user.email, venue.manager);
}

#[tokio::test]
async fn the_event_stream_resumes_after_back_office_restarts_and_misses_nothing() {
    let mut bo = BackOffice::start(FAST).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let (client, _) = Client::login(&bo.url, &venue.manager, PASSWORD)
        .await
        .unwrap();
    let mut events = client.subscribe();
    assert_eq!(next(&mut events).await, Update::Connected);
    assert!(matches!(
        next(&mut events).await,
        Update::Event(Event::Snapshot { .. })
    ));

    bo.crash().await;
    assert!(matches!(
        next(&mut events).await,
        Update::Disconnected { .. }
    ));
    bo.restart().await;
    // A change made before the stream is back...
    let edit = CatalogEdit {
        set_settings: [("while".to_owned(), "away".to_owned())].into(),
        ..Default::default()
    };
    eventually(WAIT, "Back Office back", || async {
        client.edit_catalog(venue.site.id, &edit).await.ok()
    })
    .await;

    // ...is in what the stream shows once reconnected.
    let revision = tokio::time::timeout(WAIT, async {
        loop {
            match events.next().await.unwrap() {
                Update::Event(Event::Snapshot { sites, .. }) if sites[0].catalog_revision == 2 => {
                    return 2;
                }
                Update::Event(Event::Site { site }) if site.catalog_revision == 2 => return 2,
                _ => {}
            }
        }
    })
    .await
    .expect("the change arrives");
    assert_eq!(revision, 2);

    // And live changes keep flowing.
    let _agent = bo.agent(&venue.registers[0].credential);
    let id = venue.registers[0].register.id;
    tokio::time::timeout(WAIT, async {
        loop {
            if let Update::Event(Event::Register { register }) = events.next().await.unwrap()
                && register.id == id
                && register.online
            {
                return;
            }
        }
    })
    .await
    .expect("the register's connection arrives live");
    events.close();
}

async fn next(events: &mut regsync_client::Subscription) -> Update {
    tokio::time::timeout(WAIT, events.next())
        .await
        .expect("an update in time")
        .expect("the stream goes on")
}

/// A TCP server that answers every connection with `reply` (then closes), or never answers.
async fn bad_server(reply: Option<&'static [u8]>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                match reply {
                    Some(reply) => {
                        let _ = socket.write_all(reply).await;
                        let _ = socket.shutdown().await;
                    }
                    None => {
                        // Hold the connection open, silent.
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn garbage_html_truncated_and_slow_answers_give_typed_errors() {
    let html = bad_server(Some(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 20\r\n\r\n<html>portal</html>\n")).await;
    match Client::login(&html, "a@b.c", "password1")
        .await
        .unwrap_err()
    {
        Error::BadResponse {
            status: 200,
            detail,
        } => assert!(detail.contains("JSON"), "{detail}"),
        other => panic!("html: {other:?}"),
    }

    let error_page = bad_server(Some(
        b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 11\r\n\r\nBad Gateway",
    ))
    .await;
    match Client::login(&error_page, "a@b.c", "password1")
        .await
        .unwrap_err()
    {
        Error::BadResponse { status: 502, .. } => {}
        other => panic!("502 page: {other:?}"),
    }

    let garbage = bad_server(Some(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")).await;
    match Client::login(&garbage, "a@b.c", "password1")
        .await
        .unwrap_err()
    {
        Error::BadResponse { .. } => {}
        other => panic!("garbage: {other:?}"),
    }

    let truncated = bad_server(Some(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n{\"access_token\":\"rsa_")).await;
    match Client::login(&truncated, "a@b.c", "password1")
        .await
        .unwrap_err()
    {
        Error::BadResponse { .. } => {}
        other => panic!("truncated: {other:?}"),
    }

    let slow = bad_server(None).await;
    let started = std::time::Instant::now();
    match Client::login_with_timeout(&slow, "a@b.c", "password1", Duration::from_millis(500))
        .await
        .unwrap_err()
    {
        Error::TimedOut(_) => {}
        other => panic!("slow: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10), "no hang");
}
