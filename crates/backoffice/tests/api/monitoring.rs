//! What IT's monitoring sees: `/v1/health` following the database, and `/metrics` in
//! Prometheus' text format on its own address, with real registers connected and synced.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::harness::{BackOffice, FAST, Postgres, Scene, WAIT, eventually};

/// The value of the sample `series` (name and labels exactly as written), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(bo: &BackOffice) -> String {
    let url = bo.metrics_url.as_deref().expect("metrics are served");
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_registers_jobs_targets_and_request_latency() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let (bar1, bar2) = (&venue.registers[0], &venue.registers[1]);
    let _agent1 = bo.agent(&bar1.credential);
    let _agent2 = bo.agent(&bar2.credential);
    bo.wait_online(&token, bar1.register.id, true).await;
    bo.wait_online(&token, bar2.register.id, true).await;

    let job = bo.sync_register(&token, bar1.register.id, true).await;
    bo.wait_job(&token, &job, "the sync to finish", |job| {
        !job["finished_at"].is_null()
    })
    .await;

    let text = scrape(&bo).await;
    assert_eq!(sample(&text, "regsync_database_up"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "regsync_registers_connected"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"regsync_sync_jobs{state="finished"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"regsync_sync_targets{state="synced"}"#),
        Some(1.0),
        "{text}"
    );
    // Requests by route template (never an id), status and method; streams left out.
    let sync_route = r#"method="POST",route="/v1/registers/{register_id}/sync",status="202""#;
    let count = format!("regsync_http_request_duration_seconds_count{{{sync_route}}}");
    assert_eq!(sample(&text, &count), Some(1.0), "{text}");
    assert!(!text.contains(&bar1.register.id.to_string()), "{text}");
    assert!(!text.contains("/v1/registers/connect"), "{text}");
    assert!(text.contains("# TYPE regsync_http_request_duration_seconds histogram"));

    // One register goes away: the gauge follows.
    drop(_agent2);
    bo.wait_online(&token, bar2.register.id, false).await;
    let text = scrape(&bo).await;
    assert_eq!(
        sample(&text, "regsync_registers_connected"),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_are_not_served_on_the_api_address() {
    let bo = BackOffice::start(&[]).await;
    let metrics = bo.metrics_url.clone().unwrap();
    assert!(metrics.starts_with("http://127.0.0.1:"), "{metrics}");
    assert!(!metrics.starts_with(&bo.url), "{metrics} beside {}", bo.url);
    let (status, _) = bo.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let bo = BackOffice::start(&["--metrics-listen", "off"]).await;
    assert_eq!(bo.metrics_url, None);
    assert!(!bo.log().contains("metrics"), "{}", bo.log());
}

#[tokio::test]
async fn health_is_503_while_the_database_is_down_and_ok_when_it_is_back() {
    let server = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let database = server.fresh_database().await;
    let bo = BackOffice::start_on(dir.path(), &database, vec![]).await;
    let (status, health) = bo.call(Method::GET, "/v1/health", None, None).await;
    assert_eq!(
        (status, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );

    server.stop();
    eventually(WAIT, "health to say the database is down", || async {
        let (status, health) = bo.call(Method::GET, "/v1/health", None, None).await;
        (status == StatusCode::SERVICE_UNAVAILABLE).then_some(health)
    })
    .await;
    let (_, health) = bo.call(Method::GET, "/v1/health", None, None).await;
    assert_eq!(health["status"], "database unavailable");
    let text = scrape(&bo).await;
    assert_eq!(sample(&text, "regsync_database_up"), Some(0.0), "{text}");

    server.restart();
    eventually(
        WAIT + Duration::from_secs(10),
        "health to be ok again",
        || async {
            let (status, _) = bo.call(Method::GET, "/v1/health", None, None).await;
            (status == StatusCode::OK).then_some(())
        },
    )
    .await;
}
