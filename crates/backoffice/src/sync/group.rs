//! "Sync online registers at all my sites": one job per site the caller sees that has
//! registers, made together as a group and followed as one. Each is an ordinary site job (the
//! engine, the history and access per site are the same as for a site's own sync); the group is
//! the id they share.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use regsync_protocol::ErrorCode;
use regsync_protocol::api::{ErrorBody, SyncSource};
use regsync_protocol::sync::{JobGroupRef, SyncGroup, SyncRequest};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::driver::JobRequest;
use super::store::Scope;
use super::{JobQuery, JobRow, SELECT_JOBS, hold_for, settled, summaries};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::http::{ApiJsonOrDefault, ApiPath};
use crate::{AppState, on_db};

/// Sync the online registers of every site the caller sees, as one group of site jobs (a site
/// without registers is left out). Offline registers are skipped, or queued with `queue_offline`,
/// as for one site.
#[utoipa::path(
    post, path = "/v1/sync", tag = "sync",
    security(("bearer" = ["sites"])),
    request_body(content = Option<SyncRequest>, description = "Optional; as for one site"),
    responses(
        (status = 202, description = "The group with each site's job, as saved; follow it at /v1/sync/{id}", body = SyncGroup),
        (status = 409, description = "No site the caller sees has registers", body = ErrorBody),
    )
)]
pub async fn sync_all(
    State(app): State<AppState>,
    caller: Caller,
    ApiJsonOrDefault(request): ApiJsonOrDefault<SyncRequest>,
) -> Result<(StatusCode, Json<SyncGroup>)> {
    caller.require_sites()?;
    let queue_minutes = request
        .queue_for()
        .map_err(|problem| Error::bad_request(ErrorCode::InvalidField, problem))?;
    let mut sites = crate::sites::for_company(&app.db, caller.company_id).await?;
    sites.retain(|site| caller.sites.allows(site.id) && site.register_count > 0);
    if sites.is_empty() {
        return Err(Error::Conflict {
            code: ErrorCode::NoRegisters,
            message: "none of your sites has registers".into(),
        });
    }
    let group = JobGroupRef {
        id: Uuid::now_v7(),
        jobs: u32::try_from(sites.len()).unwrap_or(u32::MAX),
    };
    let mut jobs = Vec::with_capacity(sites.len());
    for site in &sites {
        let made = app
            .engine
            .create_job(JobRequest {
                company_id: caller.company_id,
                scope: Scope::SiteOnline(site.id),
                source: SyncSource::BackOffice,
                requested_by: Some((caller.user_id, caller.display_name.clone())),
                retry_when_free: request.retry_when_free,
                queue_offline: queue_minutes.map(|m| chrono::TimeDelta::minutes(i64::from(m))),
                group: Some(group),
            })
            .await;
        match made {
            Ok(job) => jobs.push(job.summary),
            // Its registers were removed a moment ago: the others go on.
            Err(Error::Conflict { .. }) => {
                tracing::warn!(site_id = %site.id, "a site of an all-sites sync has no registers now");
            }
            Err(error) => return Err(error),
        }
    }
    tracing::info!(group = %group.id, sites = jobs.len(), "all sites asked to sync");
    Ok((StatusCode::ACCEPTED, Json(SyncGroup::of(group.id, jobs))))
}

/// An all-sites sync with each site's job (the sites the caller sees); with `wait_secs`,
/// answered as soon as every site's job has nothing left in flight.
#[utoipa::path(
    get, path = "/v1/sync/{group_id}", tag = "sync",
    security(("bearer" = ["sites"])),
    params(JobQuery),
    responses(
        (status = 200, body = SyncGroup),
        (status = 400, description = "`wait_secs` is not a whole number from 0 to 25", body = ErrorBody),
        (status = 404, description = "No such group among the caller's sites", body = ErrorBody),
    )
)]
pub async fn get_group(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(group_id): ApiPath<Uuid>,
    query: std::result::Result<Query<JobQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SyncGroup>> {
    caller.require_sites()?;
    let wait = hold_for(&app, query)?;
    let mut changes = app.engine.job_changes();
    let ids = visible_jobs(&app, &caller, group_id).await?;
    if !wait.is_zero() {
        let deadline = tokio::time::Instant::now() + wait;
        'waiting: loop {
            for id in &ids {
                if !settled(&app.db, *id).await? {
                    // Wait for a change of one of them, then look again.
                    loop {
                        match tokio::time::timeout_at(deadline, changes.recv()).await {
                            Ok(Ok(changed)) if !ids.contains(&changed) => continue,
                            Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) => {
                                continue 'waiting;
                            }
                            _ => break 'waiting,
                        }
                    }
                }
            }
            break;
        }
    }
    Ok(Json(load(&app, &caller, group_id).await?))
}

/// The ids of the group's jobs the caller may see; `NotFound` when none.
async fn visible_jobs(app: &AppState, caller: &Caller, group_id: Uuid) -> Result<Vec<Uuid>> {
    let rows: Vec<(Uuid, Uuid)> = on_db!(&app.db, |pool| sqlx::query_as(
        "SELECT id, site_id FROM sync_jobs WHERE group_id = $1 AND company_id = $2"
    )
    .bind(group_id)
    .bind(caller.company_id)
    .fetch_all(pool)
    .await)?;
    let ids: Vec<Uuid> = rows
        .into_iter()
        .filter(|(_, site)| caller.sites.allows(*site))
        .map(|(id, _)| id)
        .collect();
    if ids.is_empty() {
        return Err(Error::NotFound("sync"));
    }
    Ok(ids)
}

async fn load(app: &AppState, caller: &Caller, group_id: Uuid) -> Result<SyncGroup> {
    let sql = format!("{SELECT_JOBS} WHERE group_id = $1 AND company_id = $2");
    let rows: Vec<JobRow> = on_db!(&app.db, |pool| sqlx::query_as(&sql)
        .bind(group_id)
        .bind(caller.company_id)
        .fetch_all(pool)
        .await)?;
    let rows: Vec<JobRow> = rows
        .into_iter()
        .filter(|row| caller.sites.allows(row.site_id))
        .collect();
    if rows.is_empty() {
        return Err(Error::NotFound("sync"));
    }
    let names: std::collections::HashMap<Uuid, String> =
        crate::sites::for_company(&app.db, caller.company_id)
            .await?
            .into_iter()
            .map(|site| (site.id, site.name))
            .collect();
    let mut jobs: Vec<_> = summaries(&app.db, rows)
        .await?
        .into_iter()
        .map(|(_, job)| job)
        .collect();
    jobs.sort_by(|a, b| {
        let name = |id| names.get(id).map(String::as_str).unwrap_or_default();
        crate::db::by_name(name(&a.site_id), name(&b.site_id))
    });
    Ok(SyncGroup::of(group_id, jobs))
}
