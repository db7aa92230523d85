//! Registers as the registers page shows them: online, in a sale, last synced, up to date.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use regsync_protocol::api::{ErrorBody, Register, SyncSource};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::gateway::Presence;
use crate::http::ApiPath;
use crate::{AppState, Db, sites};

#[derive(sqlx::FromRow)]
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
    }
}

pub fn parse_source(stored: &str) -> Option<SyncSource> {
    match stored {
        "back_office" => Some(SyncSource::BackOffice),
        "register" => Some(SyncSource::Register),
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

const SELECT_REGISTERS: &str = "SELECT r.id, r.site_id, s.company_id, r.name, r.applied_revision,
        r.last_seen_at, r.last_synced_at, r.last_synced_source, r.last_synced_by,
        COALESCE(c.revision, 0) AS site_revision
     FROM registers r
     JOIN sites s ON s.id = r.site_id
     LEFT JOIN catalogs c ON c.site_id = r.site_id";

/// Registers by id, each with its company, for live events.
pub async fn load_many(
    db: &Db,
    presence: &Presence,
    ids: &std::collections::BTreeSet<Uuid>,
) -> Result<Vec<(Uuid, Register)>> {
    let ids: Vec<Uuid> = ids.iter().copied().collect();
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let sql = format!(
            "{SELECT_REGISTERS} WHERE r.id IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut query = sqlx::query_as::<_, RegisterRow>(&sql);
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(db).await? {
            out.push((row.company_id, row.into_register(presence)));
        }
    }
    Ok(out)
}

/// Every register of a company, for a snapshot.
pub async fn for_company(db: &Db, presence: &Presence, company_id: Uuid) -> Result<Vec<Register>> {
    let rows: Vec<RegisterRow> = sqlx::query_as(&format!(
        "{SELECT_REGISTERS} WHERE s.company_id = ? ORDER BY r.name COLLATE NOCASE"
    ))
    .bind(company_id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| row.into_register(presence))
        .collect())
}

/// A site's registers, by name. Needs the Sites permission.
#[utoipa::path(
    get,
    path = "/v1/sites/{site_id}/registers",
    tag = "sites",
    security(("bearer" = [])),
    params(("site_id" = Uuid, Path, description = "The site")),
    responses(
        (status = 200, body = Vec<Register>),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No Sites permission", body = ErrorBody),
        (status = 404, description = "No such site in your company", body = ErrorBody),
    )
)]
pub async fn list_registers(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(site_id): ApiPath<Uuid>,
) -> Result<Json<Vec<Register>>> {
    caller.require_sites()?;
    sites::ensure_in_company(&app.db, caller.company_id, site_id).await?;
    let rows: Vec<RegisterRow> = sqlx::query_as(&format!(
        "{SELECT_REGISTERS} WHERE s.company_id = ? AND r.site_id = ? ORDER BY r.name COLLATE NOCASE"
    ))
    .bind(caller.company_id)
    .bind(site_id)
    .fetch_all(&app.db)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| row.into_register(&app.presence))
            .collect(),
    ))
}

/// One register. Needs the Sites permission.
#[utoipa::path(
    get,
    path = "/v1/registers/{register_id}",
    tag = "sites",
    security(("bearer" = [])),
    params(("register_id" = Uuid, Path, description = "The register")),
    responses(
        (status = 200, body = Register),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No Sites permission", body = ErrorBody),
        (status = 404, description = "No such register in your company", body = ErrorBody),
    )
)]
pub async fn get_register(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(register_id): ApiPath<Uuid>,
) -> Result<Json<Register>> {
    caller.require_sites()?;
    let row: Option<RegisterRow> = sqlx::query_as(&format!(
        "{SELECT_REGISTERS} WHERE s.company_id = ? AND r.id = ?"
    ))
    .bind(caller.company_id)
    .bind(register_id)
    .fetch_optional(&app.db)
    .await?;
    row.map(|row| Json(row.into_register(&app.presence)))
        .ok_or(Error::NotFound("register"))
}
