//! A site's sync history as CSV, to take away: one line per register of each job created in a
//! time range (a job that reached no register is one line too), oldest first. Opened in a
//! spreadsheet by managers, so every text a person typed (register names, who asked, reasons) is
//! kept from being read as a formula.

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use regsync_protocol::ErrorCode;
use regsync_protocol::api::ErrorBody;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::SiteAccess;
use crate::error::{Error, Result};
use crate::{AppState, db, on_db};

/// The longest range one export covers.
pub const MAX_RANGE_DAYS: i64 = 366;
/// The range when none is given: the last 30 days.
const DEFAULT_DAYS: i64 = 30;

/// The columns, in order (the first line of every export).
pub const COLUMNS: [&str; 14] = [
    "job_id",
    "job_created_at",
    "job_finished_at",
    "kind",
    "source",
    "requested_by",
    "retry_when_free",
    "register_id",
    "register",
    "state",
    "revision",
    "reason",
    "target_updated_at",
    "site_id",
];

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Jobs created at or after this time: RFC 3339 (`2026-11-01T00:00:00+01:00`) or a date
    /// (`2026-11-01`, midnight UTC). Default: 30 days before `to`.
    #[param(nullable = false)]
    from: Option<String>,
    /// Jobs created before this time, same forms. Default: now.
    #[param(nullable = false)]
    to: Option<String>,
}

/// A time in the query: RFC 3339, or a date meaning its midnight UTC.
fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(Error::bad_request(
        ErrorCode::InvalidQuery,
        format!("{field}: not a date (2026-11-01) nor a time (2026-11-01T08:00:00Z)"),
    ))
}

/// The range asked for: checked to run forwards and to span at most [`MAX_RANGE_DAYS`].
fn range(query: &RangeQuery) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    // `?to=` with nothing after it is no `to` at all.
    let given = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    let query = RangeQuery {
        from: given(&query.from),
        to: given(&query.to),
    };
    let to = match &query.to {
        Some(to) => parse_time("to", to)?,
        None => db::now(),
    };
    let from = match &query.from {
        Some(from) => parse_time("from", from)?,
        None => to - chrono::Duration::days(DEFAULT_DAYS),
    };
    if from >= to {
        return Err(Error::bad_request(
            ErrorCode::InvalidQuery,
            "from: must be before to",
        ));
    }
    if to - from > chrono::Duration::days(MAX_RANGE_DAYS) {
        return Err(Error::bad_request(
            ErrorCode::InvalidQuery,
            format!("the range is longer than {MAX_RANGE_DAYS} days: export it in parts"),
        ));
    }
    Ok((from, to))
}

#[derive(Debug, sqlx::FromRow)]
struct Line {
    job_id: Uuid,
    job_created_at: DateTime<Utc>,
    job_finished_at: Option<DateTime<Utc>>,
    kind: String,
    source: String,
    requested_by: Option<String>,
    retry_when_free: bool,
    register_id: Option<Uuid>,
    register: Option<String>,
    state: Option<String>,
    revision: Option<i64>,
    reason: Option<String>,
    target_updated_at: Option<DateTime<Utc>>,
}

const SELECT_LINES: &str = "SELECT j.id AS job_id, j.created_at AS job_created_at,
        j.finished_at AS job_finished_at, j.kind, j.source,
        j.requested_by_name AS requested_by, j.retry_when_free,
        t.register_id, r.name AS register, t.state, t.revision, t.reason,
        t.updated_at AS target_updated_at
     FROM sync_jobs j
     LEFT JOIN sync_targets t ON t.job_id = j.id
     LEFT JOIN registers r ON r.id = t.register_id
     WHERE j.site_id = $1 AND j.created_at >= $2 AND j.created_at < $3
     ORDER BY j.created_at, j.id, r.name, t.id";

/// A site's syncs over a time range as CSV: one line per register of each job.
#[utoipa::path(
    get, path = "/v1/sites/{site_id}/jobs.csv", tag = "sync",
    security(("bearer" = ["sites"])),
    params(RangeQuery),
    responses(
        (status = 200, description = "CSV (RFC 4180) with a header line; columns: job_id, job_created_at, job_finished_at, kind, source, requested_by, retry_when_free, register_id, register, state, revision, reason, target_updated_at, site_id", content_type = "text/csv", body = String),
        (status = 400, description = "A malformed site id or time, a range that runs backwards or spans more than 366 days", body = ErrorBody),
        (status = 403, description = "Your account needs the Sites permission", body = ErrorBody),
    )
)]
pub async fn export_site_jobs(
    State(app): State<AppState>,
    SiteAccess { site_id, .. }: SiteAccess,
    query: std::result::Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response> {
    let Query(query) =
        query.map_err(|r| Error::bad_request(ErrorCode::InvalidQuery, r.body_text()))?;
    let (from, to) = range(&query)?;
    let lines: Vec<Line> = on_db!(&app.db, |pool| sqlx::query_as(SELECT_LINES)
        .bind(site_id)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await)?;
    let csv = render(site_id, &lines);
    let name = format!(
        "attachment; filename=\"sync-history-{}-to-{}.csv\"",
        from.format("%Y-%m-%d"),
        to.format("%Y-%m-%d")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, name),
        ],
        csv,
    )
        .into_response())
}

fn render(site_id: Uuid, lines: &[Line]) -> String {
    let mut out = String::new();
    let _ = write!(out, "{}\r\n", COLUMNS.join(","));
    let time = |at: &Option<DateTime<Utc>>| at.map(|at| at.to_rfc3339()).unwrap_or_default();
    for line in lines {
        let fields = [
            line.job_id.to_string(),
            line.job_created_at.to_rfc3339(),
            time(&line.job_finished_at),
            line.kind.clone(),
            line.source.clone(),
            text(line.requested_by.as_deref()),
            line.retry_when_free.to_string(),
            line.register_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            text(line.register.as_deref()),
            line.state.clone().unwrap_or_default(),
            line.revision.map(|r| r.to_string()).unwrap_or_default(),
            text(line.reason.as_deref()),
            time(&line.target_updated_at),
            site_id.to_string(),
        ];
        let quoted: Vec<String> = fields.iter().map(|f| quote(f)).collect();
        let _ = write!(out, "{}\r\n", quoted.join(","));
    }
    out
}

/// Text a person typed, kept from being taken for a formula by a spreadsheet (OWASP's advice
/// on CSV injection: a leading `'` before `=`, `+`, `-`, `@`, tab or carriage return).
fn text(value: Option<&str>) -> String {
    match value {
        Some(value) if value.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{value}"),
        Some(value) => value.to_owned(),
        None => String::new(),
    }
}

/// A field as RFC 4180 writes it: quoted when it holds a comma, a quote or a line break.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_as_rfc_4180_says_and_formulas_are_defused() {
        assert_eq!(quote("Bar 1"), "Bar 1");
        assert_eq!(quote("Bar, upstairs"), "\"Bar, upstairs\"");
        assert_eq!(quote("the \"big\" bar"), "\"the \"\"big\"\" bar\"");
        assert_eq!(quote("two\nlines"), "\"two\nlines\"");
        assert_eq!(text(Some("=HYPERLINK(\"x\")")), "'=HYPERLINK(\"x\")");
        assert_eq!(text(Some("-1")), "'-1");
        assert_eq!(text(Some("Alex")), "Alex");
        assert_eq!(text(None), "");
    }

    #[test]
    fn a_range_runs_forwards_spans_at_most_a_year_and_takes_dates_or_times() {
        let query = |from: &str, to: &str| RangeQuery {
            from: Some(from.into()),
            to: Some(to.into()),
        };
        let (from, to) = range(&query("2026-11-01", "2026-11-02T06:00:00+01:00")).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-11-01T00:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-11-02T05:00:00+00:00");
        assert!(range(&query("2026-11-02", "2026-11-01")).is_err());
        assert!(range(&query("2025-01-01", "2026-11-01")).is_err());
        assert!(range(&query("yesterday", "2026-11-01")).is_err());
        let empty = range(&query("", "")).unwrap();
        assert_eq!(
            (empty.1 - empty.0).num_days(),
            DEFAULT_DAYS,
            "empty means not given"
        );
        let default = range(&RangeQuery {
            from: None,
            to: None,
        })
        .unwrap();
        assert_eq!((default.1 - default.0).num_days(), DEFAULT_DAYS);
    }
}
