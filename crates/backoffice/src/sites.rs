//! Sites: the venues of a company, each with its registers and its menu.

use axum::Json;
use axum::extract::State;
use regsync_protocol::api::Site;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::http::ApiPath;
use crate::{AppState, Db};

#[derive(sqlx::FromRow)]
struct SiteRow {
    id: Uuid,
    company_id: Uuid,
    name: String,
    register_count: i64,
    catalog_revision: i64,
}

impl From<SiteRow> for Site {
    fn from(row: SiteRow) -> Self {
        Site {
            id: row.id,
            name: row.name,
            register_count: row.register_count,
            catalog_revision: row.catalog_revision,
        }
    }
}

const SELECT_SITES: &str = "SELECT s.id, s.company_id, s.name,
        (SELECT COUNT(*) FROM registers r WHERE r.site_id = s.id) AS register_count,
        COALESCE(c.revision, 0) AS catalog_revision
     FROM sites s LEFT JOIN catalogs c ON c.site_id = s.id";

/// Sites by id, each with its company, for live events.
pub async fn load_many(
    db: &Db,
    ids: &std::collections::BTreeSet<Uuid>,
) -> Result<Vec<(Uuid, Site)>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let row: Option<SiteRow> = sqlx::query_as(&format!("{SELECT_SITES} WHERE s.id = ?"))
            .bind(id)
            .fetch_optional(db)
            .await?;
        out.extend(row.map(|row| (row.company_id, row.into())));
    }
    Ok(out)
}

/// A company's sites, by name.
pub async fn for_company(db: &Db, company_id: Uuid) -> Result<Vec<Site>> {
    let rows: Vec<SiteRow> = sqlx::query_as(&format!(
        "{SELECT_SITES} WHERE s.company_id = ? ORDER BY s.name COLLATE NOCASE"
    ))
    .bind(company_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Site::from).collect())
}

/// `NotFound` unless the site exists *in this company*: another company's site is
/// indistinguishable from one that does not exist.
pub async fn ensure_in_company(db: &Db, company_id: Uuid, site_id: Uuid) -> Result<()> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM sites WHERE id = ? AND company_id = ?")
            .bind(site_id)
            .bind(company_id)
            .fetch_optional(db)
            .await?;
    found.map(|_| ()).ok_or(Error::NotFound("site"))
}

/// The caller's sites, by name. Any signed-in user of the company may list them.
#[utoipa::path(
    get, path = "/v1/sites", tag = "sites",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Site>),
    )
)]
pub async fn list_sites(State(app): State<AppState>, caller: Caller) -> Result<Json<Vec<Site>>> {
    Ok(Json(for_company(&app.db, caller.company_id).await?))
}

/// One of the caller's sites.
#[utoipa::path(
    get, path = "/v1/sites/{site_id}", tag = "sites",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Site),
    )
)]
pub async fn get_site(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(site_id): ApiPath<Uuid>,
) -> Result<Json<Site>> {
    let row: Option<SiteRow> = sqlx::query_as(&format!(
        "{SELECT_SITES} WHERE s.company_id = ? AND s.id = ?"
    ))
    .bind(caller.company_id)
    .bind(site_id)
    .fetch_optional(&app.db)
    .await?;
    row.map(|row| Json(row.into()))
        .ok_or(Error::NotFound("site"))
}
