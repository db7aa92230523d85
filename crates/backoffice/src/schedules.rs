//! Scheduled syncs: each site's schedules in its own time zone, the API that manages them, and
//! the runner that starts each run as an ordinary job (source `schedule`).
//!
//! A schedule keeps its next run as an instant, worked out in the site's time zone when it is
//! made, changed, run, or its site's zone changes. Running is claiming: a compare-and-set moves
//! `next_run_ms` from the due instant to the next one after now, and only the claimer (one node of
//! several) starts the job. So a run missed while Back Office was down runs once when it starts,
//! not once per missed slot, and two nodes never both run it.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Datelike, LocalResult, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use regsync_protocol::ErrorCode;
use regsync_protocol::api::{ErrorBody, SyncSource};
use regsync_protocol::schedule::{
    Schedule, ScheduleRequest, SiteSchedules, TimeZoneRequest, days_mask, mask_days, parse_time,
    time_text,
};
use uuid::Uuid;

use crate::auth::{Caller, SiteAccess};
use crate::error::{Error, Result};
use crate::http::{ApiJson, ApiPath};
use crate::sync::driver::JobRequest;
use crate::sync::store::Scope;
use crate::{AppState, Db, db, on_db, on_tx};

/// A site may have this many schedules.
pub const MAX_PER_SITE: usize = 20;

/// The next time, strictly after `after`, that a schedule of `days` (bit 0: Monday) at `minute`
/// past local midnight runs in `zone`. A time the clocks skip that night runs when they have
/// jumped (02:30 in a gap from 02:00 to 03:00 runs at 03:00); a time that happens twice runs the
/// first time. `None` only for no days.
pub fn next_run(zone: Tz, days: u8, minute: u16, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let today = after.with_timezone(&zone).date_naive();
    (-1..=8)
        .filter_map(|offset| today.checked_add_signed(TimeDelta::days(offset)))
        .filter(|date| days & (1 << date.weekday().num_days_from_monday()) != 0)
        .filter_map(|date| local_instant(zone, date, minute))
        .find(|at| *at > after)
}

/// `minute` past midnight on `date` in `zone`, resolved through daylight-saving changes.
fn local_instant(zone: Tz, date: NaiveDate, minute: u16) -> Option<DateTime<Utc>> {
    let wanted = date.and_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0)?;
    match zone.from_local_datetime(&wanted) {
        LocalResult::Single(at) => Some(at.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        // In a gap: the first minute after it (gaps are an hour or less, never a day).
        LocalResult::None => (1..=24 * 60).find_map(|m| {
            let later = wanted + TimeDelta::minutes(m);
            zone.from_local_datetime(&later)
                .earliest()
                .map(|at| at.with_timezone(&Utc))
        }),
    }
}

/// A time zone by its IANA name, or an error naming the field.
fn zone(name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        Error::invalid_field(
            "time_zone",
            format!("`{name}` is not a time zone; use a name such as Europe/London"),
        )
    })
}

/// A site's stored zone; a name that no longer parses (a database edited by hand) counts as UTC.
fn stored_zone(name: &str) -> Tz {
    name.parse().unwrap_or_else(|_| {
        tracing::warn!(zone = name, "a site's time zone is unknown; using UTC");
        Tz::UTC
    })
}

/// Days and minute of a request, checked.
fn checked(request: &ScheduleRequest) -> Result<(u8, u16)> {
    if request.days.is_empty() {
        return Err(Error::invalid_field("days", "name at least one day"));
    }
    let minute = parse_time(&request.time).ok_or_else(|| {
        Error::invalid_field("time", "a time of day such as 05:30 (24-hour, HH:MM)")
    })?;
    Ok((days_mask(&request.days), minute))
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    site_id: Uuid,
    days: i64,
    minute: i64,
    next_run_ms: i64,
    last_run_ms: Option<i64>,
    created_by: Option<String>,
}

impl From<Row> for Schedule {
    fn from(row: Row) -> Schedule {
        Schedule {
            id: row.id,
            site_id: row.site_id,
            days: mask_days(u8::try_from(row.days).unwrap_or(0)),
            time: time_text(u16::try_from(row.minute).unwrap_or(0)),
            next_run_at: from_ms(row.next_run_ms),
            last_run_at: row.last_run_ms.map(from_ms),
            created_by: row.created_by,
        }
    }
}

const SELECT: &str = "SELECT id, site_id, CAST(days AS BIGINT) AS days,
        CAST(minute AS BIGINT) AS minute, next_run_ms, last_run_ms, created_by
     FROM site_schedules";

async fn site_zone(db: &Db, site_id: Uuid) -> Result<String> {
    let zone: Option<String> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT time_zone FROM sites WHERE id = $1"
    )
    .bind(site_id)
    .fetch_optional(pool)
    .await)?;
    zone.ok_or(Error::NotFound("site"))
}

async fn site_schedules(db: &Db, site_id: Uuid) -> Result<SiteSchedules> {
    let time_zone = site_zone(db, site_id).await?;
    let sql = format!("{SELECT} WHERE site_id = $1 ORDER BY next_run_ms, id");
    let rows: Vec<Row> = on_db!(db, |pool| sqlx::query_as(&sql)
        .bind(site_id)
        .fetch_all(pool)
        .await)?;
    Ok(SiteSchedules {
        site_id,
        time_zone,
        schedules: rows.into_iter().map(Schedule::from).collect(),
    })
}

/// A schedule of the caller's company and of a site they may see, with its site's zone.
async fn own_schedule(app: &AppState, caller: &Caller, id: Uuid) -> Result<(Row, String)> {
    caller.require_sites()?;
    let sql = format!("{SELECT} WHERE id = $1 AND company_id = $2");
    let row: Option<Row> = on_db!(&app.db, |pool| sqlx::query_as(&sql)
        .bind(id)
        .bind(caller.company_id)
        .fetch_optional(pool)
        .await)?;
    let row = row.ok_or(Error::NotFound("schedule"))?;
    caller.see_site(row.site_id, "schedule")?;
    let zone = site_zone(&app.db, row.site_id).await?;
    Ok((row, zone))
}

/// The site changed (its next scheduled sync): managers' pages follow, and the runner looks again.
fn changed(app: &AppState, site_id: Uuid) {
    app.events.report(crate::events::Changed {
        sites: BTreeSet::from([site_id]),
        ..Default::default()
    });
    app.schedules_changed.notify_one();
}

/// A site's schedules, soonest first, and its time zone.
#[utoipa::path(
    get, path = "/v1/sites/{site_id}/schedules", tag = "schedules",
    security(("bearer" = ["sites"])),
    responses((status = 200, body = SiteSchedules))
)]
pub async fn list(
    State(app): State<AppState>,
    SiteAccess { site_id, .. }: SiteAccess,
) -> Result<Json<SiteSchedules>> {
    Ok(Json(site_schedules(&app.db, site_id).await?))
}

/// Adds a schedule: the site's online registers are synced on these days at this time, in the
/// site's time zone, as a job of source `schedule`.
#[utoipa::path(
    post, path = "/v1/sites/{site_id}/schedules", tag = "schedules",
    security(("bearer" = ["sites"])),
    request_body = ScheduleRequest,
    responses(
        (status = 201, body = Schedule),
        (status = 409, description = "The site has 20 schedules already", body = ErrorBody),
    )
)]
pub async fn create(
    State(app): State<AppState>,
    SiteAccess { caller, site_id }: SiteAccess,
    ApiJson(request): ApiJson<ScheduleRequest>,
) -> Result<(StatusCode, Json<Schedule>)> {
    let (days, minute) = checked(&request)?;
    let zone = stored_zone(&site_zone(&app.db, site_id).await?);
    let now = db::now();
    let next = next_run(zone, days, minute, now).ok_or(Error::invalid_field("days", "empty"))?;
    let id = Uuid::now_v7();
    let count: i64 = on_db!(&app.db, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM site_schedules WHERE site_id = $1"
    )
    .bind(site_id)
    .fetch_one(pool)
    .await)?;
    if count >= MAX_PER_SITE as i64 {
        return Err(Error::Conflict {
            code: ErrorCode::AlreadyExists,
            message: format!("a site has at most {MAX_PER_SITE} schedules"),
        });
    }
    on_db!(&app.db, |pool| sqlx::query(
        "INSERT INTO site_schedules (id, company_id, site_id, days, minute, next_run_ms,
            created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )
    .bind(id)
    .bind(caller.company_id)
    .bind(site_id)
    .bind(i16::from(days))
    .bind(minute as i16)
    .bind(next.timestamp_millis())
    .bind(&caller.display_name)
    .bind(now)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))?;
    tracing::info!(schedule = %id, %site_id, time = %request.time, "a schedule was added");
    changed(&app, site_id);
    let schedule = Schedule {
        id,
        site_id,
        days: mask_days(days),
        time: time_text(minute),
        next_run_at: next,
        last_run_at: None,
        created_by: Some(caller.display_name.clone()),
    };
    Ok((StatusCode::CREATED, Json(schedule)))
}

/// Changes a schedule's days and time; its next run follows.
#[utoipa::path(
    put, path = "/v1/schedules/{schedule_id}", tag = "schedules",
    security(("bearer" = ["sites"])),
    request_body = ScheduleRequest,
    responses((status = 200, body = Schedule))
)]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(schedule_id): ApiPath<Uuid>,
    ApiJson(request): ApiJson<ScheduleRequest>,
) -> Result<Json<Schedule>> {
    let (row, zone) = own_schedule(&app, &caller, schedule_id).await?;
    let (days, minute) = checked(&request)?;
    let next = next_run(stored_zone(&zone), days, minute, db::now())
        .ok_or(Error::invalid_field("days", "empty"))?;
    on_db!(&app.db, |pool| sqlx::query(
        "UPDATE site_schedules SET days = $1, minute = $2, next_run_ms = $3 WHERE id = $4"
    )
    .bind(i16::from(days))
    .bind(minute as i16)
    .bind(next.timestamp_millis())
    .bind(schedule_id)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))?;
    changed(&app, row.site_id);
    Ok(Json(Schedule {
        days: mask_days(days),
        time: time_text(minute),
        next_run_at: next,
        ..Schedule::from(row)
    }))
}

/// Removes a schedule.
#[utoipa::path(
    delete, path = "/v1/schedules/{schedule_id}", tag = "schedules",
    security(("bearer" = ["sites"])),
    responses((status = 204, description = "Removed"))
)]
pub async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(schedule_id): ApiPath<Uuid>,
) -> Result<StatusCode> {
    let (row, _) = own_schedule(&app, &caller, schedule_id).await?;
    on_db!(&app.db, |pool| sqlx::query(
        "DELETE FROM site_schedules WHERE id = $1"
    )
    .bind(schedule_id)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))?;
    tracing::info!(schedule = %schedule_id, site_id = %row.site_id, "a schedule was removed");
    changed(&app, row.site_id);
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the site's time zone; its schedules' next runs follow.
#[utoipa::path(
    put, path = "/v1/sites/{site_id}/time_zone", tag = "schedules",
    security(("bearer" = ["sites"])),
    request_body = TimeZoneRequest,
    responses((status = 200, body = SiteSchedules))
)]
pub async fn set_time_zone(
    State(app): State<AppState>,
    SiteAccess { site_id, .. }: SiteAccess,
    ApiJson(request): ApiJson<TimeZoneRequest>,
) -> Result<Json<SiteSchedules>> {
    let tz = zone(request.time_zone.trim())?;
    let name = tz.name().to_owned();
    let now = db::now();
    let sql = format!("{SELECT} WHERE site_id = $1");
    let rows: Vec<Row> = on_db!(&app.db, |pool| sqlx::query_as(&sql)
        .bind(site_id)
        .fetch_all(pool)
        .await)?;
    // One transaction: the zone and every next run change together.
    let mut tx = app.db.begin().await?;
    on_tx!(&mut tx, |conn| sqlx::query(
        "UPDATE sites SET time_zone = $1 WHERE id = $2"
    )
    .bind(&name)
    .bind(site_id)
    .execute(conn)
    .await
    .map(|done| done.rows_affected()))?;
    for row in &rows {
        let next = reschedule(tz, row, now);
        on_tx!(&mut tx, |conn| sqlx::query(
            "UPDATE site_schedules SET next_run_ms = $1 WHERE id = $2"
        )
        .bind(next)
        .bind(row.id)
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
    }
    tx.commit().await?;
    tracing::info!(%site_id, zone = %name, "a site's time zone was set");
    changed(&app, site_id);
    Ok(Json(site_schedules(&app.db, site_id).await?))
}

/// A schedule's next run, after `now`, in zone `tz`.
fn reschedule(tz: Tz, row: &Row, now: DateTime<Utc>) -> i64 {
    let days = u8::try_from(row.days).unwrap_or(0);
    let minute = u16::try_from(row.minute).unwrap_or(0);
    next_run(tz, days, minute, now).map_or(row.next_run_ms, |at| at.timestamp_millis())
}

/// A due run: which schedule, its site and company, and the instant it was due.
#[derive(sqlx::FromRow)]
struct Due {
    id: Uuid,
    company_id: Uuid,
    site_id: Uuid,
    days: i64,
    minute: i64,
    next_run_ms: i64,
    time_zone: String,
}

/// Runs schedules as they fall due, for as long as Back Office runs. Each wakes at the soonest
/// next run (or when a schedule changes), and at least every `poll` (another node's changes, a
/// clock that jumped).
pub async fn run(app: AppState, poll: Duration) {
    loop {
        let wait = match run_due(&app).await {
            Ok(Some(next_ms)) => {
                let left = next_ms - Utc::now().timestamp_millis();
                Duration::from_millis(u64::try_from(left).unwrap_or(0)).min(poll)
            }
            Ok(None) => poll,
            Err(error) => {
                tracing::warn!(%error, "cannot look for scheduled syncs; trying again shortly");
                poll
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = app.schedules_changed.notified() => {}
        }
    }
}

/// Starts every run due now; answers when the next one is due.
async fn run_due(app: &AppState) -> Result<Option<i64>> {
    let now = db::now();
    let now_ms = now.timestamp_millis();
    let due: Vec<Due> = on_db!(&app.db, |pool| sqlx::query_as(
        "SELECT sc.id, sc.company_id, sc.site_id, CAST(sc.days AS BIGINT) AS days,
                CAST(sc.minute AS BIGINT) AS minute, sc.next_run_ms, s.time_zone
         FROM site_schedules sc JOIN sites s ON s.id = sc.site_id
         WHERE sc.next_run_ms <= $1 ORDER BY sc.next_run_ms"
    )
    .bind(now_ms)
    .fetch_all(pool)
    .await)?;
    for run in due {
        let zone = stored_zone(&run.time_zone);
        let days = u8::try_from(run.days).unwrap_or(0);
        let minute = u16::try_from(run.minute).unwrap_or(0);
        // The next run after now, however many were missed: a missed run runs once.
        let next = next_run(zone, days, minute, now).map_or(i64::MAX, |at| at.timestamp_millis());
        let claimed = on_db!(&app.db, |pool| sqlx::query(
            "UPDATE site_schedules SET next_run_ms = $1, last_run_ms = $2
             WHERE id = $3 AND next_run_ms = $4"
        )
        .bind(next)
        .bind(now_ms)
        .bind(run.id)
        .bind(run.next_run_ms)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?
            == 1;
        if !claimed {
            // Another node ran it, or it was changed meanwhile.
            continue;
        }
        let late = now_ms - run.next_run_ms;
        tracing::info!(schedule = %run.id, site_id = %run.site_id, late_ms = late, "a scheduled sync is due");
        let request = JobRequest {
            company_id: run.company_id,
            scope: Scope::SiteOnline(run.site_id),
            source: SyncSource::Schedule,
            requested_by: None,
            retry_when_free: true,
            queue_offline: None,
            group: None,
        };
        match app.engine.create_job(request).await {
            Ok(job) => {
                tracing::info!(schedule = %run.id, job = %job.summary.id, "scheduled sync started");
            }
            Err(error) => {
                tracing::warn!(schedule = %run.id, %error, "a scheduled sync could not start");
            }
        }
        app.events.report(crate::events::Changed {
            sites: BTreeSet::from([run.site_id]),
            ..Default::default()
        });
    }
    let next: Option<i64> = on_db!(&app.db, |pool| sqlx::query_scalar(
        "SELECT MIN(next_run_ms) FROM site_schedules"
    )
    .fetch_one(pool)
    .await)?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap_or_default()
    }

    const EVERY_DAY: u8 = 0b111_1111;
    const MONDAYS: u8 = 1;

    #[test]
    fn the_next_run_is_the_next_local_time_on_one_of_its_days() {
        let london: Tz = "Europe/London".parse().unwrap_or(Tz::UTC);
        // Saturday 28 November 2026, 12:00 in London (GMT): every day at 05:30 runs tomorrow.
        let noon = at("2026-11-28T12:00:00Z");
        assert_eq!(
            next_run(london, EVERY_DAY, 330, noon),
            Some(at("2026-11-29T05:30:00Z"))
        );
        // Mondays at 06:00: Monday 30 November.
        assert_eq!(
            next_run(london, MONDAYS, 360, noon),
            Some(at("2026-11-30T06:00:00Z"))
        );
        // In summer London is an hour ahead of UTC.
        let june = at("2026-06-01T12:00:00Z");
        assert_eq!(
            next_run(london, EVERY_DAY, 330, june),
            Some(at("2026-06-02T04:30:00Z"))
        );
        // Exactly at a run: the next one, not the same.
        let run = at("2026-11-29T05:30:00Z");
        assert_eq!(
            next_run(london, EVERY_DAY, 330, run),
            Some(at("2026-11-30T05:30:00Z"))
        );
        assert_eq!(next_run(london, 0, 330, noon), None);
    }

    /// Runs of "every day at `minute`" from `from`, `n` of them, each found after the last.
    fn runs(zone: Tz, minute: u16, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut after = from;
        for _ in 0..n {
            let Some(next) = next_run(zone, EVERY_DAY, minute, after) else {
                break;
            };
            out.push(next);
            after = next;
        }
        out
    }

    #[test]
    fn daylight_saving_neither_skips_nor_repeats_a_run() {
        let london: Tz = "Europe/London".parse().unwrap_or(Tz::UTC);
        // Spring forward, Sunday 29 March 2026: 01:00 GMT becomes 02:00 BST; 01:30 does not
        // exist that night. It runs once, when the clocks have jumped (02:00 BST = 01:00 UTC).
        let spring = runs(london, 90, at("2026-03-27T12:00:00Z"), 3);
        assert_eq!(
            spring,
            [
                at("2026-03-28T01:30:00Z"),
                at("2026-03-29T01:00:00Z"),
                at("2026-03-30T00:30:00Z"),
            ]
        );
        // Fall back, Sunday 25 October 2026: 02:00 BST becomes 01:00 GMT; 01:30 happens twice.
        // It runs the first time only.
        let autumn = runs(london, 90, at("2026-10-23T12:00:00Z"), 3);
        assert_eq!(
            autumn,
            [
                at("2026-10-24T00:30:00Z"),
                at("2026-10-25T00:30:00Z"),
                at("2026-10-26T01:30:00Z"),
            ]
        );
        // A whole year of a daily run: one a day, every local day, whatever the clocks do.
        let year = runs(london, 90, at("2026-01-01T00:00:00Z"), 365);
        let mut days: Vec<NaiveDate> = year
            .iter()
            .map(|at| at.with_timezone(&london).date_naive())
            .collect();
        days.dedup();
        assert_eq!(days.len(), 365, "one run per local day");
        // New York too (other dates, other offsets).
        let new_york: Tz = "America/New_York".parse().unwrap_or(Tz::UTC);
        let spring = runs(new_york, 150, at("2026-03-07T12:00:00Z"), 2);
        // 8 March 2026: 02:00 EST becomes 03:00 EDT; 02:30 runs at 03:00 EDT (07:00 UTC).
        assert_eq!(
            spring,
            [at("2026-03-08T07:00:00Z"), at("2026-03-09T06:30:00Z")]
        );
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert!(zone("Europe/London").is_ok());
        assert!(zone("Mars/Olympus").is_err());
        assert_eq!(stored_zone("nonsense"), Tz::UTC);
    }
}
