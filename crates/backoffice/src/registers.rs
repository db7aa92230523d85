//! Registers as the registers page shows them: online, in a sale, last synced, up to date.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use regsync_protocol::api::{Register, SyncSource};
use uuid::Uuid;

use crate::auth::{Caller, SiteAccess};
use crate::db::{Ids, by_name};
use crate::error::{Error, Result};
use crate::gateway::Presence;
use crate::http::ApiPath;
use crate::{AppState, Db, on_db};

#[derive(serde::Deserialize)]
struct RegisterRow {
    id: Uuid,
    site_id: Uuid,
    company_id: Uuid,
    name: String,
    applied_revision: i64,
    last_seen_at: Option<DateTime<Utc>>,
    last_synced_at: Option<DateTime<Utc>>,
    last_synced_source: Option<String>,
    last_synced_by: Option<String>,
    site_revision: i64,
}

pub fn source_str(source: SyncSource) -> &'static str {
    match source {
        SyncSource::BackOffice => "back_office",
        SyncSource::Register => "register",
        SyncSource::Schedule => "schedule",
    }
}

pub fn parse_source(stored: &str) -> Option<SyncSource> {
    match stored {
        "back_office" => Some(SyncSource::BackOffice),
        "register" => Some(SyncSource::Register),
        "schedule" => Some(SyncSource::Schedule),
        _ => None,
    }
}

impl RegisterRow {
    /// Joins what the database knows with what the gateway sees right now.
    fn into_register(self, presence: &Presence) -> Register {
        let seen = presence.get(self.id);
        let revisions_behind = (self.site_revision - self.applied_revision).max(0);
        Register {
            id: self.id,
            site_id: self.site_id,
            name: self.name,
            online: seen.online,
            in_sale: seen.online && seen.in_sale,
            last_seen_at: if seen.online {
                seen.last_seen_at.or(self.last_seen_at)
            } else {
                self.last_seen_at.max(seen.last_seen_at)
            },
            last_synced_at: self.last_synced_at,
            last_synced_source: self.last_synced_source.as_deref().and_then(parse_source),
            last_synced_by: self.last_synced_by,
            applied_revision: self.applied_revision,
            site_revision: self.site_revision,
            revisions_behind,
            up_to_date: revisions_behind == 0,
        }
    }
}

/// Registers with their site's menu revision, as one JSON array ([`Db::json_rows`]), followed by
/// a `WHERE` the caller writes.
fn registers_json(db: &Db, filter: &str) -> String {
    let fields = [
        ("id", "r.id"),
        ("site_id", "r.site_id"),
        ("company_id", "s.company_id"),
        ("name", "r.name"),
        ("applied_revision", "r.applied_revision"),
        ("last_seen_at", "r.last_seen_at"),
        ("last_synced_at", "r.last_synced_at"),
        ("last_synced_source", "r.last_synced_source"),
        ("last_synced_by", "r.last_synced_by"),
        ("site_revision", "COALESCE(c.revision, 0)"),
    ];
    let from = format!(
        "FROM registers r
         JOIN sites s ON s.id = r.site_id
         LEFT JOIN catalogs c ON c.site_id = r.site_id
         WHERE {filter}"
    );
    db.json_rows(&fields, &from)
}

/// Rows of [`registers_json`], by name.
fn parse_rows(json: &str) -> Result<Vec<RegisterRow>> {
    let mut rows: Vec<RegisterRow> = serde_json::from_str(json)
        .map_err(|e| Error::Internal(format!("reading registers: {e}")))?;
    rows.sort_by(|a, b| by_name(&a.name, &b.name));
    Ok(rows)
}

/// Registers by id, each with its company, for live events.
pub async fn load_many(
    db: &Db,
    presence: &Presence,
    ids: &std::collections::BTreeSet<Uuid>,
) -> Result<Vec<(Uuid, Register)>> {
    let ids: Vec<Uuid> = ids.iter().copied().collect();
    let sql = registers_json(db, &db.in_ids("r.id", 1));
    let json: String = on_db!(db, |pool| sqlx::query_scalar(&sql)
        .bind(Ids(&ids))
        .fetch_one(pool)
        .await)?;
    Ok(parse_rows(&json)?
        .into_iter()
        .map(|row| (row.company_id, row.into_register(presence)))
        .collect())
}

/// Every register of a company, for a snapshot.
pub async fn for_company(db: &Db, presence: &Presence, company_id: Uuid) -> Result<Vec<Register>> {
    let sql = registers_json(db, "s.company_id = $1");
    let json: String = on_db!(db, |pool| sqlx::query_scalar(&sql)
        .bind(company_id)
        .fetch_one(pool)
        .await)?;
    Ok(parse_rows(&json)?
        .into_iter()
        .map(|row| row.into_register(presence))
        .collect())
}

/// A site's registers, by name. Needs the Sites permission.
#[utoipa::path(
    get, path = "/v1/sites/{site_id}/registers", tag = "sites",
    security(("bearer" = ["sites"])),
    responses(
        (status = 200, body = Vec<Register>),
    )
)]
pub async fn list_registers(
    State(app): State<AppState>,
    SiteAccess { caller, site_id }: SiteAccess,
) -> Result<Json<Vec<Register>>> {
    let sql = registers_json(&app.db, "s.company_id = $1 AND r.site_id = $2");
    let json: String = on_db!(&app.db, |pool| sqlx::query_scalar(&sql)
        .bind(caller.company_id)
        .bind(site_id)
        .fetch_one(pool)
        .await)?;
    Ok(Json(
        parse_rows(&json)?
            .into_iter()
            .map(|row| row.into_register(&app.presence))
            .collect(),
    ))
}

/// One register. Needs the Sites permission.
#[utoipa::path(
    get, path = "/v1/registers/{register_id}", tag = "sites",
    security(("bearer" = ["sites"])),
    responses(
        (status = 200, body = Register),
    )
)]
pub async fn get_register(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(register_id): ApiPath<Uuid>,
) -> Result<Json<Register>> {
    caller.require_sites()?;
    let sql = registers_json(&app.db, "s.company_id = $1 AND r.id = $2");
    let json: String = on_db!(&app.db, |pool| sqlx::query_scalar(&sql)
        .bind(caller.company_id)
        .bind(register_id)
        .fetch_one(pool)
        .await)?;
    let register = parse_rows(&json)?
        .pop()
        .map(|row| row.into_register(&app.presence))
        .ok_or(Error::NotFound("register"))?;
    caller.see_site(register.site_id, "register")?;
    Ok(Json(register))
}

/// The site of a register of `company_id`, if there is such a register.
pub async fn site_of(db: &Db, company_id: Uuid, register_id: Uuid) -> Result<Option<Uuid>> {
    Ok(on_db!(db, |pool| sqlx::query_scalar(
        "SELECT r.site_id FROM registers r JOIN sites s ON s.id = r.site_id
         WHERE r.id = $1 AND s.company_id = $2"
    )
    .bind(register_id)
    .bind(company_id)
    .fetch_optional(pool)
    .await)?)
}

/// Days a register's online and offline times are kept.
pub const PRESENCE_KEPT_DAYS: i64 = 30;
/// The most syncs and presence changes a register's page lists.
const ACTIVITY_SYNCS: i64 = 20;
const ACTIVITY_PRESENCE: i64 = 100;

/// Notes registers going online or offline (after the engine committed it). A note that cannot
/// be written is logged and lost: the register's page then misses one line, nothing else.
pub async fn log_presence(db: Db, went: Vec<(Uuid, bool)>, at: DateTime<Utc>) {
    for (register_id, online) in went {
        let written = on_db!(&db, |pool| sqlx::query(
            "INSERT INTO register_presence (register_id, online, at) VALUES ($1, $2, $3)"
        )
        .bind(register_id)
        .bind(online)
        .bind(at)
        .execute(pool)
        .await
        .map(drop));
        if let Err(error) = written {
            tracing::warn!(%error, %register_id, "cannot note a register going online or offline");
        }
    }
}

#[derive(sqlx::FromRow)]
struct SyncRow {
    job_id: Uuid,
    kind: String,
    source: String,
    requested_by: Option<String>,
    created_at: DateTime<Utc>,
    state: String,
    revision: Option<i64>,
    reason: Option<String>,
    updated_at: DateTime<Utc>,
}

/// A register's own page: its recent syncs, and when it went online and offline.
#[utoipa::path(
    get, path = "/v1/registers/{register_id}/activity", tag = "sites",
    security(("bearer" = ["sites"])),
    responses(
        (status = 200, body = regsync_protocol::sync::RegisterActivity),
    )
)]
pub async fn get_activity(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(register_id): ApiPath<Uuid>,
) -> Result<Json<regsync_protocol::sync::RegisterActivity>> {
    use regsync_protocol::sync::{PresenceChange, RegisterActivity, RegisterSync};
    caller.require_sites()?;
    let site = site_of(&app.db, caller.company_id, register_id).await?;
    caller.see_site(site.ok_or(Error::NotFound("register"))?, "register")?;
    let rows: Vec<SyncRow> = on_db!(&app.db, |pool| sqlx::query_as(
        "SELECT j.id AS job_id, j.kind, j.source, j.requested_by_name AS requested_by,
                j.created_at, t.state, t.revision, t.reason, t.updated_at
         FROM sync_targets t JOIN sync_jobs j ON j.id = t.job_id
         WHERE t.register_id = $1
         ORDER BY j.created_at DESC LIMIT $2"
    )
    .bind(register_id)
    .bind(ACTIVITY_SYNCS)
    .fetch_all(pool)
    .await)?;
    let syncs = rows
        .into_iter()
        .map(|row| -> Result<RegisterSync> {
            Ok(RegisterSync {
                job_id: row.job_id,
                kind: crate::sync::parse_kind(&row.kind),
                source: parse_source(&row.source).unwrap_or(SyncSource::BackOffice),
                requested_by: row.requested_by,
                created_at: row.created_at,
                state: crate::sync::store::stored_state(&row.state)?,
                revision: row.revision,
                reason: row.reason,
                updated_at: row.updated_at,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let since = Utc::now() - chrono::Duration::days(PRESENCE_KEPT_DAYS);
    let presence: Vec<(bool, DateTime<Utc>)> = on_db!(&app.db, |pool| sqlx::query_as(
        "SELECT online, at FROM register_presence
         WHERE register_id = $1 AND at >= $2 ORDER BY at DESC LIMIT $3"
    )
    .bind(register_id)
    .bind(since)
    .bind(ACTIVITY_PRESENCE)
    .fetch_all(pool)
    .await)?;
    let missing = missing_menu(&app.db, register_id).await?;
    Ok(Json(RegisterActivity {
        syncs,
        presence: presence
            .into_iter()
            .map(|(online, at)| PresenceChange { online, at })
            .collect(),
        missing,
    }))
}

/// What the menu gained and lost between the revision `register_id` holds and the latest.
async fn missing_menu(
    db: &Db,
    register_id: Uuid,
) -> Result<Option<regsync_protocol::sync::MissingMenu>> {
    use regsync_protocol::catalog::{Catalog, MenuDiff};
    let (held, site_id): (i64, Uuid) = on_db!(db, |pool| sqlx::query_as(
        "SELECT applied_revision, site_id FROM registers WHERE id = $1"
    )
    .bind(register_id)
    .fetch_one(pool)
    .await)?;
    let latest = crate::catalog::load(db, site_id).await?;
    if held >= latest.revision {
        return Ok(None);
    }
    let (old, known) = if held <= 0 {
        (Catalog::default(), true)
    } else {
        match crate::catalog::at_revision(db, site_id, held).await? {
            Some(old) => (old, true),
            None => (Catalog::default(), false),
        }
    };
    Ok(Some(regsync_protocol::sync::MissingMenu {
        from_revision: held,
        to_revision: latest.revision,
        known,
        diff: MenuDiff::between(&old, &latest.catalog),
    }))
}
