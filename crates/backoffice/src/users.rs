//! Users' access per site: the Sites permission limited to some sites of the company. Managed by
//! a company's admins through the API, and by `regsync-backoffice user sites` on the server.
//!
//! A change takes effect at once: the user's access tokens are revoked, so their next request
//! (and their live event stream, at its next check) signs in again through the refresh token,
//! with the new list.

use axum::Json;
use axum::extract::State;
use regsync_protocol::api::{ErrorBody, Permission, SiteAccessList};
use uuid::Uuid;

use crate::auth::Caller;
use crate::db::Ids;
use crate::error::{Error, Result};
use crate::http::{ApiJson, ApiPath};
use crate::{AppState, Db, on_db, on_tx};

/// The user's company, if `user_id` is a user of `company_id`.
async fn ensure_user_in_company(db: &Db, company_id: Uuid, user_id: Uuid) -> Result<()> {
    let found: Option<Uuid> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT id FROM users WHERE id = $1 AND company_id = $2"
    )
    .bind(user_id)
    .bind(company_id)
    .fetch_optional(pool)
    .await)?;
    found.map(|_| ()).ok_or(Error::NotFound("user"))
}

fn require_admin(caller: &Caller) -> Result<()> {
    if caller.permissions.contains(&Permission::Admin) {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "only an admin of your company may change who sees which sites".into(),
        ))
    }
}

/// The sites `user_id` sees.
pub async fn site_access(db: &Db, user_id: Uuid) -> Result<SiteAccessList> {
    let all_sites: bool = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT all_sites FROM users WHERE id = $1"
    )
    .bind(user_id)
    .fetch_one(pool)
    .await)?;
    let mut site_ids: Vec<Uuid> = if all_sites {
        vec![]
    } else {
        on_db!(db, |pool| sqlx::query_scalar(
            "SELECT site_id FROM user_sites WHERE user_id = $1"
        )
        .bind(user_id)
        .fetch_all(pool)
        .await)?
    };
    site_ids.sort();
    Ok(SiteAccessList {
        all_sites,
        site_ids,
    })
}

/// Sets the sites `user_id` (of `company_id`) sees; every listed site must be the company's.
pub async fn set_site_access(
    db: &Db,
    company_id: Uuid,
    user_id: Uuid,
    access: &SiteAccessList,
) -> Result<SiteAccessList> {
    if access.all_sites && !access.site_ids.is_empty() {
        return Err(Error::invalid_field(
            "site_ids",
            "must be empty when all_sites is true",
        ));
    }
    let mut site_ids = access.site_ids.clone();
    site_ids.sort();
    site_ids.dedup();
    let sql = format!(
        "SELECT COUNT(*) FROM sites WHERE company_id = $1 AND {}",
        db.in_ids("id", 2)
    );
    let known: i64 = on_db!(db, |pool| sqlx::query_scalar(&sql)
        .bind(company_id)
        .bind(Ids(&site_ids))
        .fetch_one(pool)
        .await)?;
    if usize::try_from(known).ok() != Some(site_ids.len()) {
        return Err(Error::invalid_field(
            "site_ids",
            "not all are sites of this company",
        ));
    }
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |conn| sqlx::query(
        "UPDATE users SET all_sites = $1 WHERE id = $2"
    )
    .bind(access.all_sites)
    .bind(user_id)
    .execute(conn)
    .await
    .map(drop))?;
    on_tx!(&mut tx, |conn| sqlx::query(
        "DELETE FROM user_sites WHERE user_id = $1"
    )
    .bind(user_id)
    .execute(conn)
    .await
    .map(drop))?;
    for site_id in &site_ids {
        on_tx!(&mut tx, |conn| sqlx::query(
            "INSERT INTO user_sites (user_id, site_id) VALUES ($1, $2)"
        )
        .bind(user_id)
        .bind(site_id)
        .execute(conn)
        .await
        .map(drop))?;
    }
    // The new list holds from the next request: access tokens end, refresh tokens stay.
    on_tx!(&mut tx, |conn| sqlx::query(
        "DELETE FROM access_tokens WHERE user_id = $1"
    )
    .bind(user_id)
    .execute(conn)
    .await
    .map(drop))?;
    tx.commit().await?;
    site_access(db, user_id).await
}

/// Which sites a user of your company sees (admins only).
#[utoipa::path(
    get, path = "/v1/users/{user_id}/sites", tag = "users",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, body = SiteAccessList),
        (status = 403, description = "Only an admin of the company may see it", body = ErrorBody),
    )
)]
pub async fn get_site_access(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(user_id): ApiPath<Uuid>,
) -> Result<Json<SiteAccessList>> {
    require_admin(&caller)?;
    ensure_user_in_company(&app.db, caller.company_id, user_id).await?;
    Ok(Json(site_access(&app.db, user_id).await?))
}

/// Limits a user of your company to some sites, or gives them all (admins only). Takes effect
/// at once: the user's next request signs in again with the new list.
#[utoipa::path(
    put, path = "/v1/users/{user_id}/sites", tag = "users",
    security(("bearer" = ["admin"])),
    request_body = SiteAccessList,
    responses(
        (status = 200, description = "The list as it now is", body = SiteAccessList),
        (status = 400, description = "A site that is not one of the company's, or site_ids with all_sites", body = ErrorBody),
        (status = 403, description = "Only an admin of the company may change it", body = ErrorBody),
    )
)]
pub async fn put_site_access(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(user_id): ApiPath<Uuid>,
    ApiJson(access): ApiJson<SiteAccessList>,
) -> Result<Json<SiteAccessList>> {
    require_admin(&caller)?;
    ensure_user_in_company(&app.db, caller.company_id, user_id).await?;
    let access = set_site_access(&app.db, caller.company_id, user_id, &access).await?;
    Ok(Json(access))
}
