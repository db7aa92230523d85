//! Sites: the venues of a company, each with its registers and its menu.

use axum::Json;
use axum::extract::State;
use regsync_protocol::api::Site;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::http::ApiPath;
use crate::{AppState, Db, on_db};

#[derive(sqlx::FromRow)]
struct SiteRow {
    id: Uuid,
    company_id: Uuid,
    name: String,
    register_count: i64,
    catalog_revision: i64,
    time_zone: String,
    next_run_ms: Option<i64>,
}

impl From<SiteRow> for Site {
    fn from(row: SiteRow) -> Self {
        Site {
            id: row.id,
            name: row.name,
            register_count: row.register_count,
            catalog_revision: row.catalog_revision,
            time_zone: row.time_zone,
            next_scheduled_sync: row
                .next_run_ms
                .and_then(chrono::DateTime::from_timestamp_millis),
        }
    }
}

const SELECT_SITES: &str = "SELECT s.id, s.company_id, s.name,
        (SELECT COUNT(*) FROM registers r WHERE r.site_id = s.id) AS register_count,
        COALESCE(c.revision, 0) AS catalog_revision, s.time_zone,
        (SELECT MIN(sc.next_run_ms) FROM site_schedules sc WHERE sc.site_id = s.id) AS next_run_ms
     FROM sites s LEFT JOIN catalogs c ON c.site_id = s.id";

/// Sites by id, each with its company, for live events.
pub async fn load_many(
    db: &Db,
    ids: &std::collections::BTreeSet<Uuid>,
) -> Result<Vec<(Uuid, Site)>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let sql = format!("{SELECT_SITES} WHERE s.id = $1");
        let row: Option<SiteRow> = on_db!(db, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        out.extend(row.map(|row| (row.company_id, row.into())));
    }
    Ok(out)
}

/// A company's sites, by name.
pub async fn for_company(db: &Db, company_id: Uuid) -> Result<Vec<Site>> {
    let sql = format!("{SELECT_SITES} WHERE s.company_id = $1 ORDER BY lower(s.name)");
    let rows: Vec<SiteRow> = on_db!(db, |pool| sqlx::query_as(&sql)
        .bind(company_id)
        .fetch_all(pool)
        .await)?;
    Ok(rows.into_iter().map(Site::from).collect())
}

/// `NotFound` unless the site exists *in this company*: another company's site is
/// indistinguishable from one that does not exist.
pub async fn ensure_in_company(db: &Db, company_id: Uuid, site_id: Uuid) -> Result<()> {
    let found: Option<Uuid> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT id FROM sites WHERE id = $1 AND company_id = $2"
    )
    .bind(site_id)
    .bind(company_id)
    .fetch_optional(pool)
    .await)?;
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
    let mut sites = for_company(&app.db, caller.company_id).await?;
    sites.retain(|site| caller.sites.allows(site.id));
    Ok(Json(sites))
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
    caller.see_site(site_id, "site")?;
    let sql = format!("{SELECT_SITES} WHERE s.company_id = $1 AND s.id = $2");
    let row: Option<SiteRow> = on_db!(&app.db, |pool| sqlx::query_as(&sql)
        .bind(caller.company_id)
        .bind(site_id)
        .fetch_optional(pool)
        .await)?;
    row.map(|row| Json(row.into()))
        .ok_or(Error::NotFound("site"))
}
