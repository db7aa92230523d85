//! What IT's monitoring scrapes: `/metrics` in Prometheus' text format, served on an address of
//! its own (loopback by default, `--metrics-listen`) so it is never exposed with the API.
//!
//! Kept by hand rather than through a metrics crate: a few gauges read when scraped (registers
//! connected, jobs and targets by state) and one histogram of request latency, by method, route
//! template and status. Streams (events, register connections) are left out of the histogram:
//! they last as long as a connection does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, http::header};

use crate::{AppState, on_db};

/// Upper bounds of the latency buckets, in seconds (Prometheus' `le`).
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Routes that hold a connection open: their "latency" is a connection's life.
const STREAMS: [&str; 2] = ["/v1/events", "/v1/registers/connect"];

/// How long a scrape waits for the database before saying it is down.
const DATABASE_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Counts per bucket, not cumulative (summed when written).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(bucket) = BUCKETS.iter().position(|&le| seconds <= le) {
            self.buckets[bucket] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// Request latencies since the process started.
#[derive(Debug, Default)]
pub struct Requests {
    by_key: Mutex<BTreeMap<Key, Histogram>>,
}

impl Requests {
    fn observe(&self, key: Key, took: Duration) {
        let mut by_key = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        by_key.entry(key).or_default().observe(took.as_secs_f64());
    }

    fn snapshot(&self) -> BTreeMap<Key, Histogram> {
        self.by_key
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Middleware on the API router: times each request by its route template (never the path
/// itself: ids would make a series per register).
pub async fn record(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    if !STREAMS.contains(&route.as_str()) {
        let key = Key {
            method,
            route,
            status: response.status().as_u16(),
        };
        app.requests.observe(key, started.elapsed());
    }
    response
}

/// The router served on the metrics address.
pub fn router(app: AppState) -> Router {
    Router::new().route("/metrics", get(scrape)).with_state(app)
}

async fn scrape(State(app): State<AppState>) -> Response {
    let counts = tokio::time::timeout(DATABASE_WAIT, counts(&app)).await;
    let counts = match counts {
        Ok(Ok(counts)) => Some(counts),
        Ok(Err(error)) => {
            tracing::warn!(%error, "metrics: the database did not answer");
            None
        }
        Err(_) => {
            tracing::warn!("metrics: the database took too long to answer");
            None
        }
    };
    let text = render(&app, counts.as_ref());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Jobs and targets by state, from the database (all companies).
#[derive(Debug)]
struct Counts {
    jobs: Vec<(String, i64)>,
    targets: Vec<(String, i64)>,
}

async fn counts(app: &AppState) -> sqlx::Result<Counts> {
    let jobs = on_db!(&app.db, |pool| sqlx::query_as(
        "SELECT CASE WHEN finished_at IS NULL THEN 'open' ELSE 'finished' END AS state, \
         COUNT(*) FROM sync_jobs GROUP BY 1 ORDER BY 1"
    )
    .fetch_all(pool)
    .await)?;
    let targets = on_db!(&app.db, |pool| sqlx::query_as(
        "SELECT state, COUNT(*) FROM sync_targets GROUP BY state ORDER BY state"
    )
    .fetch_all(pool)
    .await)?;
    Ok(Counts { jobs, targets })
}

fn render(app: &AppState, counts: Option<&Counts>) -> String {
    let mut out = String::new();
    let version = env!("CARGO_PKG_VERSION");
    gauge(&mut out, "regsync_build_info", "Back Office's version.");
    let _ = writeln!(out, "regsync_build_info{{version=\"{version}\"}} 1");
    gauge(
        &mut out,
        "regsync_database_up",
        "1 when the database answered this scrape.",
    );
    let _ = writeln!(out, "regsync_database_up {}", u8::from(counts.is_some()));
    gauge(
        &mut out,
        "regsync_registers_connected",
        "Registers connected to this node.",
    );
    let here = app.presence.connected_here_count();
    let _ = writeln!(out, "regsync_registers_connected {here}");
    gauge(
        &mut out,
        "regsync_registers_online",
        "Registers online on any node, as this node knows.",
    );
    let online = app.presence.online_count();
    let _ = writeln!(out, "regsync_registers_online {online}");
    if let Some(counts) = counts {
        gauge(&mut out, "regsync_sync_jobs", "Sync jobs by state.");
        for (state, count) in &counts.jobs {
            let _ = writeln!(out, "regsync_sync_jobs{{state=\"{state}\"}} {count}");
        }
        gauge(
            &mut out,
            "regsync_sync_targets",
            "Sync targets (one register in one job) by state.",
        );
        for (state, count) in &counts.targets {
            let state = escape(state);
            let _ = writeln!(out, "regsync_sync_targets{{state=\"{state}\"}} {count}");
        }
    }
    render_latency(&mut out, &app.requests.snapshot());
    out
}

fn render_latency(out: &mut String, histograms: &BTreeMap<Key, Histogram>) {
    let name = "regsync_http_request_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time to answer an API request, by method, route and status.\n\
         # TYPE {name} histogram"
    );
    for (key, histogram) in histograms {
        let labels = format!(
            "method=\"{}\",route=\"{}\",status=\"{}\"",
            escape(&key.method),
            escape(&key.route),
            key.status
        );
        let mut cumulative = 0;
        for (le, count) in BUCKETS.iter().zip(histogram.buckets) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let count = histogram.count;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", histogram.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

fn gauge(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_cumulative_and_ends_with_every_request() {
        let mut histograms = BTreeMap::new();
        let mut histogram = Histogram::default();
        for seconds in [0.0005, 0.003, 0.003, 20.0] {
            histogram.observe(seconds);
        }
        let key = Key {
            method: "GET".into(),
            route: "/v1/sites/{site_id}".into(),
            status: 200,
        };
        histograms.insert(key, histogram);
        let mut out = String::new();
        render_latency(&mut out, &histograms);
        let labels = r#"method="GET",route="/v1/sites/{site_id}",status="200""#;
        for line in [
            format!(r#"regsync_http_request_duration_seconds_bucket{{{labels},le="0.001"}} 1"#),
            format!(r#"regsync_http_request_duration_seconds_bucket{{{labels},le="0.005"}} 3"#),
            format!(r#"regsync_http_request_duration_seconds_bucket{{{labels},le="10"}} 3"#),
            format!(r#"regsync_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} 4"#),
            format!(r#"regsync_http_request_duration_seconds_count{{{labels}}} 4"#),
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
