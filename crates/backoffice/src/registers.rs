//! Registers as the registers page shows them: online, in a sale, last synced, up to date.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use regsync_protocol::api::{ErrorBody, Register, SyncSource};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::http::ApiPath;
use crate::{AppState, sites};

#[derive(sqlx::FromRow)]
struct RegisterRow {
    id: Uuid,
    site_id: Uuid,
    name: String,
    applied_revision: i64,
    last_seen_at: Option<DateTime<Utc>>,
    last_synced_at: Option<DateTime<Utc>>,
    last_synced_source: Option<String>,
    last_synced_by: Option<String>,
    site_revision: i64,
}

pub fn parse_source(stored: &str) -> Option<SyncSource> {
    match stored {
        "back_office" => Some(SyncSource::BackOffice),
        "register" => Some(SyncSource::Register),
        _ => None,
    }
}

impl From<RegisterRow> for Register {
    fn from(row: RegisterRow) -> Self {
        let revisions_behind = (row.site_revision - row.applied_revision).max(0);
        Register {
            id: row.id,
            site_id: row.site_id,
            name: row.name,
            // Connection state arrives with the register gateway; until a register has
            // connected it is offline and not selling.
            online: false,
            in_sale: false,
            last_seen_at: row.last_seen_at,
            last_synced_at: row.last_synced_at,
            last_synced_source: row.last_synced_source.as_deref().and_then(parse_source),
            last_synced_by: row.last_synced_by,
            applied_revision: row.applied_revision,
            site_revision: row.site_revision,
            revisions_behind,
            up_to_date: revisions_behind == 0,
        }
    }
}

const SELECT_REGISTERS: &str = "SELECT r.id, r.site_id, r.name, r.applied_revision,
        r.last_seen_at, r.last_synced_at, r.last_synced_source, r.last_synced_by,
        COALESCE(c.revision, 0) AS site_revision
     FROM registers r
     JOIN sites s ON s.id = r.site_id
     LEFT JOIN catalogs c ON c.site_id = r.site_id";

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
    Ok(Json(rows.into_iter().map(Register::from).collect()))
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
    row.map(|row| Json(row.into()))
        .ok_or(Error::NotFound("register"))
}
