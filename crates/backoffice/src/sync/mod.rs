//! Syncs: asking registers to take the latest menu, and the history of those requests.
//!
//! The HTTP routes check who may ask and hand the request to the [`engine`], which owns every
//! state change; reads (a job, a site's history, live events) come straight from the database.

pub mod core;
pub mod driver;
pub mod engine;
pub mod group;
pub mod history;
pub mod store;

use regsync_protocol::ErrorCode;
use regsync_protocol::api::MAX_JOB_WAIT_SECS;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use regsync_protocol::api::{ErrorBody, SyncSource};
use regsync_protocol::sync::{
    Job, JobCounts, JobGroupRef, JobKind, JobSummary, SyncRequest, Target, TargetState,
};
use serde::Deserialize;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::auth::{Caller, SiteAccess};
use crate::db::{Ids, by_name};
use crate::error::{Error, Result};
use crate::http::{ApiJsonOrDefault, ApiPath};
use crate::{AppState, Db, on_db, on_tx};
use engine::{JobRequest, JobTarget};

pub fn kind_str(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Register => "register",
        JobKind::SiteOnline => "site_online",
    }
}

pub(crate) fn parse_kind(stored: &str) -> JobKind {
    match stored {
        "register" => JobKind::Register,
        _ => JobKind::SiteOnline,
    }
}

/// Targets with their register's name and their job's company, as one JSON array
/// ([`Db::json_rows`]), followed by a `WHERE` the caller writes.
fn targets_json(db: &Db, filter: &str) -> String {
    let fields = [
        ("id", "t.id"),
        ("job_id", "t.job_id"),
        ("register_id", "t.register_id"),
        ("register_name", "r.name"),
        ("state", "t.state"),
        ("revision", "t.revision"),
        ("reason", "t.reason"),
        ("updated_at", "t.updated_at"),
        ("wait_expires_at", "t.wait_expires_at"),
        ("company_id", "j.company_id"),
        ("site_id", "j.site_id"),
    ];
    let from = format!(
        "FROM sync_targets t
         JOIN registers r ON r.id = t.register_id
         JOIN sync_jobs j ON j.id = t.job_id
         WHERE {filter}"
    );
    db.json_rows(&fields, &from)
}

#[derive(Deserialize)]
struct TargetJson {
    #[serde(flatten)]
    target: Target,
    company_id: Uuid,
    site_id: Uuid,
}

/// Targets with their company and site.
fn parse_targets(json: &str) -> Result<Vec<(Uuid, Uuid, Target)>> {
    let rows: Vec<TargetJson> = serde_json::from_str(json)
        .map_err(|e| Error::Internal(format!("reading sync targets: {e}")))?;
    Ok(rows
        .into_iter()
        .map(|r| (r.company_id, r.site_id, r.target))
        .collect())
}

/// Targets by id, each with its company and site.
pub async fn load_targets(db: &Db, ids: &BTreeSet<Uuid>) -> Result<Vec<(Uuid, Uuid, Target)>> {
    let ids: Vec<Uuid> = ids.iter().copied().collect();
    let sql = targets_json(db, &db.in_ids("t.id", 1));
    let json: String = on_db!(db, |pool| sqlx::query_scalar(&sql)
        .bind(Ids(&ids))
        .fetch_one(pool)
        .await)?;
    parse_targets(&json)
}

/// A job as stored (in either database).
#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    pub id: Uuid,
    pub company_id: Uuid,
    pub site_id: Uuid,
    kind: String,
    source: String,
    requested_by_name: Option<String>,
    retry_when_free: bool,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    group_id: Option<Uuid>,
    group_size: Option<i64>,
}

impl JobRow {
    pub(crate) fn summary(self, counts: JobCounts) -> JobSummary {
        JobSummary {
            id: self.id,
            site_id: self.site_id,
            kind: parse_kind(&self.kind),
            source: crate::registers::parse_source(&self.source).unwrap_or(SyncSource::BackOffice),
            requested_by: self.requested_by_name,
            retry_when_free: self.retry_when_free,
            created_at: self.created_at,
            finished_at: self.finished_at,
            counts,
            group: self.group_id.map(|id| JobGroupRef {
                id,
                jobs: self
                    .group_size
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(1),
            }),
        }
    }

    /// The job with its targets, sorted by register name as the manager reads them.
    pub(crate) fn with_targets(self, mut targets: Vec<Target>) -> Job {
        targets.sort_by(|a, b| by_name(&a.register_name, &b.register_name));
        let counts: JobCounts = targets.iter().map(|t| t.state).collect();
        Job {
            summary: self.summary(counts),
            targets,
        }
    }
}

pub(crate) const SELECT_JOBS: &str =
    "SELECT id, company_id, site_id, kind, source, requested_by_name,
        retry_when_free, created_at, finished_at, group_id, CAST(group_size AS BIGINT) AS group_size
     FROM sync_jobs";

async fn counts(db: &Db, job_ids: &[Uuid]) -> Result<HashMap<Uuid, JobCounts>> {
    let sql = format!(
        "SELECT job_id, state, COUNT(*) FROM sync_targets WHERE {}
         GROUP BY job_id, state",
        db.in_ids("job_id", 1)
    );
    let rows: Vec<(Uuid, String, i64)> = on_db!(db, |pool| sqlx::query_as(&sql)
        .bind(Ids(job_ids))
        .fetch_all(pool)
        .await)?;
    let mut out: HashMap<Uuid, JobCounts> = HashMap::new();
    for (job_id, state, n) in rows {
        if let Some(state) = TargetState::parse(&state) {
            let counts = out.entry(job_id).or_default();
            for _ in 0..n {
                counts.add(state);
            }
        }
    }
    Ok(out)
}

pub(crate) async fn summaries(db: &Db, rows: Vec<JobRow>) -> Result<Vec<(Uuid, JobSummary)>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut counts = counts(db, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let job_counts = counts.remove(&row.id).unwrap_or_default();
            (row.company_id, row.summary(job_counts))
        })
        .collect())
}

pub async fn load_summaries(db: &Db, ids: &BTreeSet<Uuid>) -> Result<Vec<(Uuid, JobSummary)>> {
    let ids: Vec<Uuid> = ids.iter().copied().collect();
    let sql = format!("{SELECT_JOBS} WHERE {}", db.in_ids("id", 1));
    let rows: Vec<JobRow> = on_db!(db, |pool| sqlx::query_as(&sql)
        .bind(Ids(&ids))
        .fetch_all(pool)
        .await)?;
    summaries(db, rows).await
}

/// For a snapshot: jobs still open, and the company's most recent ones.
pub async fn recent_and_open(db: &Db, company_id: Uuid) -> Result<Vec<JobSummary>> {
    let sql = format!(
        "{SELECT_JOBS} WHERE company_id = $1 AND (finished_at IS NULL OR id IN (
            SELECT id FROM sync_jobs WHERE company_id = $1 ORDER BY created_at DESC LIMIT 20))
         ORDER BY created_at DESC"
    );
    let rows: Vec<JobRow> = on_db!(db, |pool| sqlx::query_as(&sql)
        .bind(company_id)
        .fetch_all(pool)
        .await)?;
    Ok(summaries(db, rows)
        .await?
        .into_iter()
        .map(|(_, job)| job)
        .collect())
}

/// A job with its targets, if it belongs to `company_id`, read from one snapshot so the job, its
/// counts and its targets always agree.
pub async fn get(db: &Db, company_id: Uuid, job_id: Uuid) -> Result<Job> {
    let mut snapshot = db.begin_snapshot().await?;
    let sql = format!("{SELECT_JOBS} WHERE id = $1 AND company_id = $2");
    let row: Option<JobRow> = on_tx!(&mut snapshot, |conn| sqlx::query_as(&sql)
        .bind(job_id)
        .bind(company_id)
        .fetch_optional(conn)
        .await)?;
    let row = row.ok_or(Error::NotFound("sync job"))?;
    let sql = targets_json(db, "t.job_id = $1");
    let json: String = on_tx!(&mut snapshot, |conn| sqlx::query_scalar(&sql)
        .bind(job_id)
        .fetch_one(conn)
        .await)?;
    let targets = parse_targets(&json)?
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    snapshot.rollback().await?;
    Ok(row.with_targets(targets))
}

/// Sync one register. A register offline is reported `skipped_offline`, or with `queue_offline`
/// waits (`awaiting_reconnect`) to be synced when it reconnects; one in a sale waits for the sale
/// to end (or is skipped, with `retry_when_free: false`). Answers once the job is saved.
#[utoipa::path(
    post, path = "/v1/registers/{register_id}/sync", tag = "sync",
    security(("bearer" = ["sites"])),
    request_body(content = Option<SyncRequest>, description = "Optional; `retry_when_free` defaults to true, `queue_offline` to false"),
    responses(
        (status = 202, description = "The job, as saved; follow it at /v1/jobs/{id} or on /v1/events", body = Job),
    )
)]
pub async fn sync_register(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(register_id): ApiPath<Uuid>,
    ApiJsonOrDefault(request): ApiJsonOrDefault<SyncRequest>,
) -> Result<(StatusCode, Json<Job>)> {
    caller.require_sites()?;
    if caller.sites != crate::auth::SiteScope::All {
        let site = crate::registers::site_of(&app.db, caller.company_id, register_id).await?;
        caller.see_site(site.ok_or(Error::NotFound("register"))?, "register")?;
    }
    start(&app, &caller, JobTarget::Register(register_id), &request).await
}

/// Hands a manager's sync to the engine; answers 202 with the job once it is saved.
async fn start(
    app: &AppState,
    caller: &Caller,
    target: JobTarget,
    request: &SyncRequest,
) -> Result<(StatusCode, Json<Job>)> {
    let queue_minutes = request
        .queue_for()
        .map_err(|problem| Error::bad_request(ErrorCode::InvalidField, problem))?;
    let job = app
        .engine
        .create_job(JobRequest {
            company_id: caller.company_id,
            scope: target,
            source: SyncSource::BackOffice,
            requested_by: Some((caller.user_id, caller.display_name.clone())),
            retry_when_free: request.retry_when_free,
            queue_offline: queue_minutes.map(|m| chrono::TimeDelta::minutes(i64::from(m))),
            group: None,
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Sync every online register of a site ("Sync online registers"). Offline registers are listed
/// as `skipped_offline`, so the manager sees which ones did not get the menu; with
/// `queue_offline` they wait (`awaiting_reconnect`) and are synced when they reconnect, until
/// `queue_minutes` (a day by default) runs out.
#[utoipa::path(
    post, path = "/v1/sites/{site_id}/sync", tag = "sync",
    security(("bearer" = ["sites"])),
    request_body(content = Option<SyncRequest>, description = "Optional; `retry_when_free` defaults to true, `queue_offline` to false"),
    responses(
        (status = 202, description = "The job, as saved", body = Job),
        (status = 409, description = "The site has no registers", body = ErrorBody),
    )
)]
pub async fn sync_site(
    State(app): State<AppState>,
    SiteAccess { caller, site_id }: SiteAccess,
    ApiJsonOrDefault(request): ApiJsonOrDefault<SyncRequest>,
) -> Result<(StatusCode, Json<Job>)> {
    start(&app, &caller, JobTarget::SiteOnline(site_id), &request).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Wait up to this many seconds (at most 25) for the job to finish before answering; the
    /// answer is the job as it is then, finished or not. Without it, the job as it is now.
    // `maximum` is MAX_JOB_WAIT_SECS (an attribute takes a literal; a test compares the two).
    #[param(minimum = 0, maximum = 25, nullable = false)]
    pub(crate) wait_secs: Option<u32>,
}

/// One sync job with each register's state; with `wait_secs`, answered as soon as it finishes,
/// or has nothing left in flight but offline registers queued until they reconnect.
#[utoipa::path(
    get, path = "/v1/jobs/{job_id}", tag = "sync",
    security(("bearer" = ["sites"])),
    params(JobQuery),
    responses(
        (status = 200, body = Job),
        (status = 400, description = "`wait_secs` is not a whole number from 0 to 25", body = ErrorBody),
    )
)]
pub async fn get_job(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(job_id): ApiPath<Uuid>,
    query: std::result::Result<Query<JobQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Job>> {
    caller.require_sites()?;
    let wait = hold_for(&app, query)?;
    // Listening starts before the first read, so a job finishing in between is not missed.
    let mut changes = app.engine.job_changes();
    let site_id: Option<Uuid> = on_db!(&app.db, |pool| sqlx::query_scalar(
        "SELECT site_id FROM sync_jobs WHERE id = $1 AND company_id = $2"
    )
    .bind(job_id)
    .bind(caller.company_id)
    .fetch_optional(pool)
    .await)?;
    caller.see_site(site_id.ok_or(Error::NotFound("sync job"))?, "sync job")?;
    if wait.is_zero() || settled(&app.db, job_id).await? {
        return Ok(Json(get(&app.db, caller.company_id, job_id).await?));
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, changes.recv()).await {
            Ok(Ok(id)) if id != job_id => continue,
            // It changed, or some changes were missed: look rather than guess.
            Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) => {
                if settled(&app.db, job_id).await? {
                    break;
                }
            }
            // Time is up, or Back Office is stopping.
            _ => break,
        }
    }
    Ok(Json(get(&app.db, caller.company_id, job_id).await?))
}

/// How long a `wait_secs` query asks to hold the answer: at most 25 s, and less than the
/// request timeout.
pub(crate) fn hold_for(
    app: &AppState,
    query: std::result::Result<Query<JobQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Duration> {
    let Query(query) =
        query.map_err(|r| Error::bad_request(ErrorCode::InvalidQuery, r.body_text()))?;
    let wait_secs = query.wait_secs.unwrap_or(0);
    if wait_secs > MAX_JOB_WAIT_SECS {
        return Err(Error::bad_request(
            ErrorCode::InvalidQuery,
            format!("wait_secs: must be at most {MAX_JOB_WAIT_SECS}"),
        ));
    }
    Ok(Duration::from_secs(wait_secs.into()).min(
        app.settings
            .request_timeout
            .saturating_sub(Duration::from_secs(1)),
    ))
}

/// Whether a job has nothing in flight: finished, or left with only registers queued until they
/// reconnect (which may take a day). One small query.
pub(crate) async fn settled(db: &Db, job_id: Uuid) -> Result<bool> {
    let settled: bool = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT finished_at IS NOT NULL OR NOT EXISTS (
             SELECT 1 FROM sync_targets
             WHERE job_id = $1 AND state IN ('queued', 'delivered', 'waiting'))
         FROM sync_jobs WHERE id = $1"
    )
    .bind(job_id)
    .fetch_one(pool)
    .await)?;
    Ok(settled)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// How many jobs, newest first (default 20, at most 200).
    #[param(minimum = 1, maximum = 200, nullable = false)]
    limit: Option<u32>,
}

/// A site's recent sync jobs, newest first: who asked, when, and how each ended.
#[utoipa::path(
    get, path = "/v1/sites/{site_id}/jobs", tag = "sync",
    security(("bearer" = ["sites"])),
    params(HistoryQuery),
    responses(
        (status = 200, body = Vec<JobSummary>),
        (status = 400, description = "A malformed site id, or `limit` not a whole number from 1 to 200", body = ErrorBody),
    )
)]
pub async fn list_site_jobs(
    State(app): State<AppState>,
    SiteAccess { site_id, .. }: SiteAccess,
    query: std::result::Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<JobSummary>>> {
    let Query(query) =
        query.map_err(|r| Error::bad_request(ErrorCode::InvalidQuery, r.body_text()))?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=200).contains(&limit) {
        return Err(Error::bad_request(
            ErrorCode::InvalidQuery,
            "limit: must be from 1 to 200",
        ));
    }
    let sql = format!("{SELECT_JOBS} WHERE site_id = $1 ORDER BY created_at DESC LIMIT $2");
    let rows: Vec<JobRow> = on_db!(&app.db, |pool| sqlx::query_as(&sql)
        .bind(site_id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await)?;
    Ok(Json(
        summaries(&app.db, rows)
            .await?
            .into_iter()
            .map(|(_, job)| job)
            .collect(),
    ))
}
