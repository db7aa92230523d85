//! Each site's catalog (the menu) and its revision: what a sync delivers to registers.
//!
//! Every change bumps the revision by one; a register is "out of date" while its applied revision
//! is below it. Writes are optimistic: read the revision, write only if it is unchanged, retry
//! otherwise — or answer 409 when the caller pinned the revision it expected.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use regsync_protocol::ErrorCode;
use regsync_protocol::api::{CatalogRevision, ErrorBody, ReplaceCatalog};
use regsync_protocol::{Catalog, CatalogEdit};
use uuid::Uuid;

use crate::auth::SiteAccess;
use crate::db::Tx;
use crate::error::{Error, Result};
use crate::http::ApiJson;
use crate::{AppState, Db, on_db, on_tx};

#[derive(sqlx::FromRow)]
struct CatalogRow {
    site_id: Uuid,
    revision: i64,
    content: String,
    updated_at: DateTime<Utc>,
    updated_by: Option<String>,
}

impl CatalogRow {
    fn into_revision(self) -> Result<CatalogRevision> {
        let catalog: Catalog = serde_json::from_str(&self.content).map_err(|e| {
            Error::Internal(format!(
                "stored catalog of site {} is unreadable: {e}",
                self.site_id
            ))
        })?;
        Ok(CatalogRevision {
            site_id: self.site_id,
            revision: self.revision,
            updated_at: self.updated_at,
            updated_by: self.updated_by,
            catalog,
        })
    }
}

/// The current catalog of a site, whichever company it belongs to (callers check that).
pub async fn load(db: &Db, site_id: Uuid) -> Result<CatalogRevision> {
    let row: Option<CatalogRow> = on_db!(db, |pool| {
        sqlx::query_as(
        "SELECT site_id, revision, content, updated_at, updated_by FROM catalogs WHERE site_id = $1"
    )
    .bind(site_id)
    .fetch_optional(pool)
    .await
    })?;
    row.ok_or(Error::NotFound("site"))?.into_revision()
}

/// Gives a new site its first, empty catalog at revision 1.
pub async fn create_empty(tx: &mut Tx, site_id: Uuid) -> Result<()> {
    let content =
        serde_json::to_string(&Catalog::default()).map_err(|e| Error::Internal(e.to_string()))?;
    let now = crate::db::now();
    for table in ["catalogs", "catalog_revisions"] {
        let sql = format!(
            "INSERT INTO {table} (site_id, revision, content, updated_at) VALUES ($1, 1, $2, $3)"
        );
        on_tx!(tx, |conn| sqlx::query(&sql)
            .bind(site_id)
            .bind(&content)
            .bind(now)
            .execute(conn)
            .await
            .map(drop))?;
    }
    Ok(())
}

/// Days a menu's past revisions are kept (a register's page says what it is missing).
pub const REVISIONS_KEPT_DAYS: i64 = 90;

/// The menu of `site_id` at `revision`, if it is still kept.
pub async fn at_revision(db: &Db, site_id: Uuid, revision: i64) -> Result<Option<Catalog>> {
    let content: Option<String> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT content FROM catalog_revisions WHERE site_id = $1 AND revision = $2"
    )
    .bind(site_id)
    .bind(revision)
    .fetch_optional(pool)
    .await)?;
    content
        .map(|content| {
            serde_json::from_str(&content)
                .map_err(|e| Error::Internal(format!("reading a past menu: {e}")))
        })
        .transpose()
}

/// Applies `change` to the current catalog and stores the result as the next revision.
///
/// A change that leaves the catalog as it was stores nothing and keeps the revision, so registers
/// are not sent a sync that changes nothing.
pub async fn update(
    db: &Db,
    site_id: Uuid,
    expected_revision: Option<i64>,
    updated_by: Option<&str>,
    change: impl Fn(&Catalog) -> Catalog + Send + Sync + 'static,
) -> Result<CatalogRevision> {
    let change = std::sync::Arc::new(change);
    const ATTEMPTS: usize = 10;
    for _ in 0..ATTEMPTS {
        let current = load(db, site_id).await?;
        if let Some(expected) = expected_revision
            && expected != current.revision
        {
            return Err(revision_conflict(expected, current.revision));
        }
        // A big menu takes real CPU to edit, check and serialize: not on the async workers,
        // where it would stall every other request.
        let change = change.clone();
        let (current, next, content) = tokio::task::spawn_blocking(move || {
            let next = change(&current.catalog);
            next.validate().map_err(|problem| {
                Error::invalid_field(&format!("catalog.{}", problem.field), &problem.message)
            })?;
            if next == current.catalog {
                return Ok((current, next, None));
            }
            let content =
                serde_json::to_string(&next).map_err(|e| Error::Internal(e.to_string()))?;
            Ok::<_, Error>((current, next, Some(content)))
        })
        .await
        .map_err(|e| Error::Internal(format!("editing a catalog: {e}")))??;
        let Some(content) = content else {
            return Ok(current);
        };
        let now = crate::db::now();
        // The new revision and its copy in the history, together or not at all.
        let mut tx = db.begin().await?;
        let written = on_tx!(&mut tx, |conn| sqlx::query(
            "UPDATE catalogs SET revision = revision + 1, content = $1, updated_at = $2,
                updated_by = $3
             WHERE site_id = $4 AND revision = $5"
        )
        .bind(&content)
        .bind(now)
        .bind(updated_by)
        .bind(site_id)
        .bind(current.revision)
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
        if written == 1 {
            on_tx!(&mut tx, |conn| sqlx::query(
                "INSERT INTO catalog_revisions (site_id, revision, content, updated_at, updated_by)
                 VALUES ($1, $2, $3, $4, $5)"
            )
            .bind(site_id)
            .bind(current.revision + 1)
            .bind(&content)
            .bind(now)
            .bind(updated_by)
            .execute(conn)
            .await
            .map(drop))?;
        }
        tx.commit().await?;
        if written == 1 {
            tracing::info!(%site_id, revision = current.revision + 1, "catalog changed");
            return Ok(CatalogRevision {
                site_id,
                revision: current.revision + 1,
                updated_at: now,
                updated_by: updated_by.map(str::to_owned),
                catalog: next,
            });
        }
        // Someone else changed it between our read and write.
        if let Some(expected) = expected_revision {
            let now_at = load(db, site_id).await?.revision;
            return Err(revision_conflict(expected, now_at));
        }
    }
    Err(Error::Conflict {
        code: ErrorCode::Busy,
        message: "the menu is being changed by others right now; try again".into(),
    })
}

/// A new menu revision changes the site and whether each of its registers is up to date.
async fn report_change(app: &AppState, site_id: Uuid) -> Result<()> {
    let registers: Vec<Uuid> = on_db!(&app.db, |pool| sqlx::query_scalar(
        "SELECT id FROM registers WHERE site_id = $1"
    )
    .bind(site_id)
    .fetch_all(pool)
    .await)?;
    app.events.report(crate::events::Changed {
        sites: [site_id].into(),
        registers: registers.into_iter().collect(),
        ..Default::default()
    });
    // Managers watching on other nodes hear of it too.
    if let (crate::Db::Postgres(pool), Some(node)) = (&app.db, app.node) {
        let notice = crate::cluster::Notice {
            node,
            sites: [site_id].into(),
            ..Default::default()
        };
        crate::cluster::publish(pool, &notice).await?;
    }
    Ok(())
}

fn revision_conflict(expected: i64, current: i64) -> Error {
    Error::Conflict {
        code: ErrorCode::RevisionConflict,
        message: format!(
            "the menu changed since you read it (you expected revision {expected}, it is now at \
             {current}); reload it and apply your change again"
        ),
    }
}

/// A site's catalog and revision. Needs the Sites permission.
#[utoipa::path(
    get, path = "/v1/sites/{site_id}/catalog", tag = "catalog",
    security(("bearer" = ["sites"])),
    responses(
        (status = 200, body = CatalogRevision),
    )
)]
pub async fn get_catalog(
    State(app): State<AppState>,
    SiteAccess { site_id, .. }: SiteAccess,
) -> Result<Json<CatalogRevision>> {
    Ok(Json(load(&app.db, site_id).await?))
}

/// Replace a site's whole catalog; the revision goes up by one if anything changed.
#[utoipa::path(
    put, path = "/v1/sites/{site_id}/catalog", tag = "catalog",
    security(("bearer" = ["sites"])),
    request_body = ReplaceCatalog,
    responses(
        CatalogChange,
        (status = 400, description = "Malformed or invalid catalog; the message names the field", body = ErrorBody),
    )
)]
pub async fn replace_catalog(
    State(app): State<AppState>,
    access: SiteAccess,
    ApiJson(ReplaceCatalog {
        expected_revision,
        catalog,
    }): ApiJson<ReplaceCatalog>,
) -> Result<Json<CatalogRevision>> {
    let change = move |_: &Catalog| catalog.clone();
    change_by(&app, access, expected_revision, change).await
}

/// Change part of a site's catalog (add, change or remove products, categories and settings);
/// the revision goes up by one if anything changed.
#[utoipa::path(
    patch, path = "/v1/sites/{site_id}/catalog", tag = "catalog",
    security(("bearer" = ["sites"])),
    request_body = CatalogEdit,
    responses(
        CatalogChange,
        (status = 400, description = "Malformed edit, or the result is invalid; the message names the field", body = ErrorBody),
    )
)]
pub async fn edit_catalog(
    State(app): State<AppState>,
    access: SiteAccess,
    ApiJson(edit): ApiJson<CatalogEdit>,
) -> Result<Json<CatalogRevision>> {
    let expected = edit.expected_revision;
    let change = move |current: &Catalog| current.edited(&edit);
    change_by(&app, access, expected, change).await
}

/// What a change to the menu answers, beside a 400 that names what is wrong with it.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only described: the handlers answer through `Result`.
enum CatalogChange {
    /// The catalog now
    #[response(status = 200)]
    Saved(CatalogRevision),
    /// expected_revision is not the current one
    #[response(status = 409)]
    Conflict(ErrorBody),
}

/// A manager's change to a site's menu: saved as one revision, then told to the site's followers.
async fn change_by(
    app: &AppState,
    SiteAccess { caller, site_id }: SiteAccess,
    expected_revision: Option<i64>,
    change: impl Fn(&Catalog) -> Catalog + Send + Sync + 'static,
) -> Result<Json<CatalogRevision>> {
    let author = Some(caller.display_name.as_str());
    let updated = update(&app.db, site_id, expected_revision, author, change).await?;
    report_change(app, site_id).await?;
    Ok(Json(updated))
}
