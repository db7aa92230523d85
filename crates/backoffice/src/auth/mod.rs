//! Signing in: email and password for an access token and a rotating refresh token.
//!
//! A sign-in starts a *family*. Each refresh spends the refresh token and issues a new one in the
//! same family; a spent token presented again means it was copied, so the whole family is revoked
//! (ASVS). Sign-out revokes the family too. Failed sign-ins are capped per account and per client
//! address, and checked before any hashing, so a locked account costs no CPU.

mod caller;
pub mod limiter;
pub mod password;
pub mod token;

pub use caller::{Caller, SiteAccess, SiteScope};

use regsync_protocol::ErrorCode;
use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use regsync_protocol::api::{
    Company, ErrorBody, LoginRequest, Me, Permission, RefreshRequest, Session, User,
};
use uuid::Uuid;

use crate::db::Tx;
use crate::error::{Error, Result};
use crate::http::ApiJson;
use crate::{AppState, Db, on_db, on_tx};

/// Lower-cased and trimmed: `Alex@Example.com ` and `alex@example.com` are one account.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub fn parse_permissions(stored: &str) -> Vec<Permission> {
    let mut permissions: Vec<Permission> = stored
        .split(',')
        .filter_map(|word| word.trim().parse().ok())
        .collect();
    permissions.sort();
    permissions.dedup();
    permissions
}

pub fn format_permissions(permissions: &[Permission]) -> String {
    let mut words: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
    words.sort();
    words.dedup();
    words.join(",")
}

fn can_manage_sites(permissions: &[Permission]) -> bool {
    permissions
        .iter()
        .any(|p| matches!(p, Permission::Admin | Permission::Sites))
}

/// A sign-in that just ended in this process, so that streams opened under it end at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Family(Uuid),
    User(Uuid),
}

#[derive(sqlx::FromRow)]
struct MeRow {
    id: Uuid,
    email: String,
    display_name: String,
    permissions: String,
    company_id: Uuid,
    company_name: String,
}

pub async fn load_me(db: &Db, user_id: Uuid) -> Result<Me> {
    let row: Option<MeRow> = on_db!(db, |pool| sqlx::query_as(
        "SELECT u.id, u.email, u.display_name, u.permissions,
                c.id AS company_id, c.name AS company_name
         FROM users u JOIN companies c ON c.id = u.company_id
         WHERE u.id = $1"
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await)?;
    let row = row.ok_or(Error::NotFound("user"))?;
    let permissions = parse_permissions(&row.permissions);
    Ok(Me {
        user: User {
            id: row.id,
            email: row.email,
            display_name: row.display_name,
        },
        company: Company {
            id: row.company_id,
            name: row.company_name,
        },
        can_manage_sites: can_manage_sites(&permissions),
        permissions,
    })
}

/// Issues an access and a refresh token in `family_id`, inside the caller's transaction.
async fn issue_tokens(
    tx: &mut Tx,
    app: &AppState,
    user_id: Uuid,
    family_id: Uuid,
) -> Result<(String, DateTime<Utc>, String, DateTime<Utc>)> {
    let now = Utc::now();
    let access = token::generate(token::ACCESS_PREFIX);
    let access_expires_at = now + app.settings.access_ttl;
    let refresh = token::generate(token::REFRESH_PREFIX);
    let refresh_expires_at = now + app.settings.refresh_ttl;
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO access_tokens (token_hash, family_id, user_id, expires_at)
         VALUES ($1, $2, $3, $4)"
    )
    .bind(token::digest(&access))
    .bind(family_id)
    .bind(user_id)
    .bind(access_expires_at)
    .execute(conn)
    .await
    .map(drop))?;
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5)"
    )
    .bind(token::digest(&refresh))
    .bind(family_id)
    .bind(user_id)
    .bind(refresh_expires_at)
    .bind(now)
    .execute(conn)
    .await
    .map(drop))?;
    Ok((access, access_expires_at, refresh, refresh_expires_at))
}

/// Issues a session's tokens in `tx` (a sign-in's, or a refresh's after it spent the old token)
/// and commits it.
async fn issue_session(
    mut tx: Tx,
    app: &AppState,
    user_id: Uuid,
    family_id: Uuid,
) -> Result<Session> {
    let (access_token, access_expires_at, refresh_token, refresh_expires_at) =
        issue_tokens(&mut tx, app, user_id, family_id).await?;
    tx.commit().await?;
    Ok(Session {
        access_token,
        token_type: "Bearer".into(),
        access_expires_at,
        refresh_token,
        refresh_expires_at,
        me: load_me(&app.db, user_id).await?,
    })
}

/// Which sign-ins to end: one (its family of rotated tokens), or every one of a user's.
#[derive(Debug, Clone, Copy)]
enum Sessions {
    Family(Uuid),
    User(Uuid),
}

/// Ends sign-ins: their refresh tokens stop working and their access tokens are gone.
async fn revoke(tx: &mut Tx, which: Sessions) -> Result<()> {
    let (column, id) = match which {
        Sessions::Family(id) => ("family_id", id),
        Sessions::User(id) => ("user_id", id),
    };
    let revoke = format!(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE {column} = $2 AND revoked_at IS NULL"
    );
    on_tx!(tx, |conn| sqlx::query(&revoke)
        .bind(Utc::now())
        .bind(id)
        .execute(conn)
        .await
        .map(drop))?;
    let forget = format!("DELETE FROM access_tokens WHERE {column} = $1");
    on_tx!(tx, |conn| sqlx::query(&forget)
        .bind(id)
        .execute(conn)
        .await
        .map(drop))?;
    Ok(())
}

async fn revoke_family(tx: &mut Tx, family_id: Uuid) -> Result<()> {
    revoke(tx, Sessions::Family(family_id)).await
}

/// Signs out every session of a user (after a password reset).
pub async fn revoke_user_sessions(db: &Db, user_id: Uuid) -> Result<()> {
    let mut tx = db.begin().await?;
    revoke(&mut tx, Sessions::User(user_id)).await?;
    tx.commit().await?;
    Ok(())
}

/// Sign in with email and password.
#[utoipa::path(
    post, path = "/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = Session),
        (status = 401, description = "Wrong email or password", body = ErrorBody),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = ErrorBody),
        (status = 503, description = "Too many sign-ins being checked at once; see Retry-After", body = ErrorBody),
    )
)]
pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<Session>> {
    // What the document promises: a non-empty email, a password of 1 to 1,024 characters. An
    // email of only spaces is simply no one's: it goes on to the same 401 as any unknown one.
    if request.email.is_empty() {
        return Err(Error::invalid_field("email", "must not be empty"));
    }
    if request.password.is_empty() {
        return Err(Error::invalid_field("password", "must not be empty"));
    }
    if request.password.chars().count() > password::MAX_LENGTH {
        return Err(Error::invalid_field(
            "password",
            format!("must be at most {} characters", password::MAX_LENGTH),
        ));
    }
    let email = normalize_email(&request.email);
    let address = peer.ip().to_string();
    // Every attempt counts as a failure from the start, taken back if it succeeds: attempts
    // sent at once cannot all pass the limit.
    let now = Instant::now();
    if let Err(retry_after) = app.address_failures.begin(&address, now) {
        tracing::warn!(%address, "sign-in refused: too many failures from this address");
        return Err(Error::RateLimited { retry_after });
    }
    if let Err(retry_after) = app.account_failures.begin(&email, now) {
        app.address_failures.forgive(&address, now);
        tracing::warn!(%address, "sign-in refused: too many failures for this account");
        return Err(Error::RateLimited { retry_after });
    }
    let forgive = || {
        app.account_failures.forgive(&email, now);
        app.address_failures.forgive(&address, now);
    };

    let checked = async {
        let user: Option<(Uuid, String)> = on_db!(&app.db, |pool| sqlx::query_as(
            "SELECT id, password_hash FROM users WHERE email = $1"
        )
        .bind(&email)
        .fetch_optional(pool)
        .await)?;
        let (user_id, hash) = user.unzip();
        let matches = password::verify_blocking(request.password, hash).await?;
        Ok::<_, Error>(user_id.filter(|_| matches))
    }
    .await;
    let user_id = match checked {
        Ok(user_id) => user_id,
        Err(error) => {
            // Not the caller's failure (Back Office busy, or its database).
            forgive();
            return Err(error);
        }
    };
    let Some(user_id) = user_id else {
        tracing::info!(%address, "sign-in failed");
        return Err(Error::Unauthenticated {
            code: ErrorCode::InvalidCredentials,
            message: "wrong email or password".into(),
        });
    };
    app.account_failures.reset(&email);
    app.address_failures.forgive(&address, now);
    let tx = app.db.begin().await?;
    let session = issue_session(tx, &app, user_id, Uuid::now_v7()).await?;
    tracing::info!(%user_id, "signed in");
    Ok(Json(session))
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    family_id: Uuid,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
}

/// Trade a refresh token for a new access token and a new refresh token. The old refresh token
/// stops working; presenting it again ends the session.
#[utoipa::path(
    post, path = "/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = Session),
        (status = 401, description = "Refresh token unknown, expired, revoked or reused", body = ErrorBody),
    )
)]
pub async fn refresh(
    State(app): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<Json<Session>> {
    let digest = token::digest(request.refresh_token.trim());
    let now = Utc::now();
    let mut tx = app.db.begin().await?;
    // Spend the token first: a write as the first statement takes SQLite's write lock at once, so
    // two refreshes with the same token cannot both succeed.
    let spent: Option<(Uuid, Uuid)> = on_tx!(&mut tx, |conn| sqlx::query_as(
        "UPDATE refresh_tokens SET used_at = $1
         WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1
         RETURNING user_id, family_id"
    )
    .bind(now)
    .bind(&digest)
    .fetch_optional(conn)
    .await)?;
    if let Some((user_id, family_id)) = spent {
        return Ok(Json(issue_session(tx, &app, user_id, family_id).await?));
    }

    let row: Option<RefreshRow> = on_tx!(&mut tx, |conn| sqlx::query_as(
        "SELECT family_id, used_at, revoked_at, expires_at FROM refresh_tokens
         WHERE token_hash = $1"
    )
    .bind(&digest)
    .fetch_optional(conn)
    .await)?;
    let error = match row {
        None => Error::Unauthenticated {
            code: ErrorCode::InvalidRefreshToken,
            message: "this refresh token is not valid; sign in again".into(),
        },
        Some(row) if row.revoked_at.is_some() => Error::Unauthenticated {
            code: ErrorCode::SessionRevoked,
            message: "this session has been signed out; sign in again".into(),
        },
        Some(row) if row.used_at.is_some() => {
            revoke_family(&mut tx, row.family_id).await?;
            let _ = app.revoked.send(Revoked::Family(row.family_id));
            tracing::warn!(family_id = %row.family_id, "a spent refresh token was presented again; session revoked");
            Error::Unauthenticated {
                code: ErrorCode::RefreshTokenReused,
                message: "this refresh token was already used, so the session has been ended to \
                          keep the account safe; sign in again"
                    .into(),
            }
        }
        Some(row) => {
            debug_assert!(row.expires_at <= now);
            Error::Unauthenticated {
                code: ErrorCode::SessionExpired,
                message: "this session has expired; sign in again".into(),
            }
        }
    };
    tx.commit().await?;
    Err(error)
}

/// Sign out: the access token and the refresh token of this session stop working.
#[utoipa::path(
    post, path = "/v1/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
    )
)]
pub async fn logout(State(app): State<AppState>, caller: Caller) -> Result<StatusCode> {
    let mut tx = app.db.begin().await?;
    revoke_family(&mut tx, caller.family_id).await?;
    tx.commit().await?;
    let _ = app.revoked.send(Revoked::Family(caller.family_id));
    tracing::info!(user_id = %caller.user_id, "signed out");
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user, their company and permissions.
#[utoipa::path(
    get, path = "/v1/auth/me", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Me),
    )
)]
pub async fn me(State(app): State<AppState>, caller: Caller) -> Result<Json<Me>> {
    Ok(Json(load_me(&app.db, caller.user_id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized() {
        assert_eq!(normalize_email("  Alex@Example.COM "), "alex@example.com");
    }

    #[test]
    fn permissions_round_trip_and_ignore_unknown_words() {
        let parsed = parse_permissions("sites, admin,sites,root");
        assert_eq!(parsed, [Permission::Admin, Permission::Sites]);
        assert_eq!(format_permissions(&parsed), "admin,sites");
        assert!(parse_permissions("").is_empty());
        assert!(!can_manage_sites(&[]));
        assert!(can_manage_sites(&[Permission::Admin]));
    }
}
