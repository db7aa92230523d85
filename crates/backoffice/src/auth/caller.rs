//! Who is asking: the signed-in user behind a request (from its bearer access token), the sites
//! of their company they see, and `SiteAccess` for routes on one site.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use regsync_protocol::ErrorCode;
use regsync_protocol::api::Permission;
use uuid::Uuid;

use super::{Revoked, can_manage_sites, parse_permissions, token};
use crate::error::{Error, Result};
use crate::http::ApiPath;
use crate::{AppState, Db, on_db};

/// The signed-in user behind a request, from its `Authorization: Bearer` access token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub company_id: Uuid,
    pub display_name: String,
    pub permissions: Vec<Permission>,
    /// Which of the company's sites this user sees: all, or only some (access per site).
    pub sites: SiteScope,
    pub(super) family_id: Uuid,
    /// The access token's digest and end: a long-lived answer (the event stream) ends with it.
    pub(super) token_hash: Vec<u8>,
    pub expires_at: DateTime<Utc>,
}

/// The sites of their company a user sees. A site outside it answers 404, exactly as a site of
/// another company or one that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteScope {
    All,
    Only(std::collections::HashSet<Uuid>),
}

impl SiteScope {
    pub fn allows(&self, site_id: Uuid) -> bool {
        match self {
            SiteScope::All => true,
            SiteScope::Only(sites) => sites.contains(&site_id),
        }
    }

    /// The scope of `user_id`, who sees all sites unless `all_sites` is false.
    pub async fn of_user(db: &Db, user_id: Uuid, all_sites: bool) -> Result<SiteScope> {
        if all_sites {
            return Ok(SiteScope::All);
        }
        let sites: Vec<Uuid> = on_db!(db, |pool| sqlx::query_scalar(
            "SELECT site_id FROM user_sites WHERE user_id = $1"
        )
        .bind(user_id)
        .fetch_all(pool)
        .await)?;
        Ok(SiteScope::Only(sites.into_iter().collect()))
    }
}

impl Caller {
    /// The site, if this caller may see it; else the same 404 as for a site that is nowhere.
    pub fn see_site(&self, site_id: Uuid, what: &'static str) -> Result<()> {
        if self.sites.allows(site_id) {
            Ok(())
        } else {
            Err(Error::NotFound(what))
        }
    }

    /// Whether this sign-in still holds: the access token neither expired nor revoked (signed
    /// out here or on another Back Office process, or by an admin).
    pub async fn still_valid(&self, db: &Db) -> Result<bool> {
        if self.expires_at <= Utc::now() {
            return Ok(false);
        }
        let found: Option<Uuid> = on_db!(db, |pool| sqlx::query_scalar(
            "SELECT family_id FROM access_tokens WHERE token_hash = $1"
        )
        .bind(&self.token_hash)
        .fetch_optional(pool)
        .await)?;
        Ok(found.is_some())
    }

    /// Whether `revoked` ends this caller's sign-in.
    pub fn ended_by(&self, revoked: Revoked) -> bool {
        match revoked {
            Revoked::Family(family) => family == self.family_id,
            Revoked::User(user) => user == self.user_id,
        }
    }

    /// Registers, the menu and syncs need the Sites permission (or Admin).
    pub fn require_sites(&self) -> Result<()> {
        if can_manage_sites(&self.permissions) {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "your account needs the Sites permission for this; ask an admin".into(),
            ))
        }
    }
}

/// A caller with the Sites permission, on a site of their company named in the path: what a
/// site's registers, menu and syncs need. A site of another company is 404, exactly as a site
/// that does not exist.
#[derive(Debug, Clone)]
pub struct SiteAccess {
    pub caller: Caller,
    pub site_id: Uuid,
}

impl FromRequestParts<AppState> for SiteAccess {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self> {
        let caller = Caller::from_request_parts(parts, app).await?;
        let ApiPath(site_id) = ApiPath::<Uuid>::from_request_parts(parts, app).await?;
        caller.require_sites()?;
        crate::sites::ensure_in_company(&app.db, caller.company_id, site_id).await?;
        caller.see_site(site_id, "site")?;
        Ok(SiteAccess { caller, site_id })
    }
}

#[derive(sqlx::FromRow)]
struct AccessRow {
    token_hash: Vec<u8>,
    family_id: Uuid,
    user_id: Uuid,
    expires_at: DateTime<Utc>,
    company_id: Uuid,
    display_name: String,
    permissions: String,
    all_sites: bool,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self> {
        let not_signed_in = || Error::Unauthenticated {
            code: ErrorCode::NotSignedIn,
            message: "sign in first: send `Authorization: Bearer <access token>`".into(),
        };
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(not_signed_in)?;
        let presented = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(not_signed_in)?;
        let digest = token::digest(presented);
        let row: Option<AccessRow> = on_db!(&app.db, |pool| sqlx::query_as(
            "SELECT a.token_hash, a.family_id, a.user_id, a.expires_at,
                    u.company_id, u.display_name, u.permissions, u.all_sites
             FROM access_tokens a JOIN users u ON u.id = a.user_id
             WHERE a.token_hash = $1"
        )
        .bind(&digest)
        .fetch_optional(pool)
        .await)?;
        let row = row
            .filter(|row| token::digests_match(&row.token_hash, &digest))
            .ok_or_else(|| Error::Unauthenticated {
                code: ErrorCode::InvalidToken,
                message: "this access token is not valid (signed out, or never issued); sign in \
                          again"
                    .into(),
            })?;
        if row.expires_at <= Utc::now() {
            return Err(Error::Unauthenticated {
                code: ErrorCode::TokenExpired,
                message: "the access token has expired; refresh it".into(),
            });
        }
        let sites = SiteScope::of_user(&app.db, row.user_id, row.all_sites).await?;
        Ok(Caller {
            user_id: row.user_id,
            company_id: row.company_id,
            display_name: row.display_name,
            permissions: parse_permissions(&row.permissions),
            sites,
            family_id: row.family_id,
            token_hash: row.token_hash,
            expires_at: row.expires_at,
        })
    }
}
