//! What an operator does to set up a venue without SQL: companies, sites, users, registers.
//!
//! The `regsync-backoffice` admin subcommands call these on the database directly (SQLite in WAL
//! mode lets them run beside a serving Back Office); the demo and the tests seed through them too.
//! Companies and sites are named by id or by name, whichever the operator has at hand.

use chrono::Utc;
use regsync_protocol::ErrorCode;
use regsync_protocol::api::Permission;
use uuid::Uuid;

use crate::auth::{format_permissions, normalize_email, parse_permissions, password, token};
use crate::error::{Error, Result};
use crate::{Db, catalog, on_db, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CompanyRecord {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SiteRecord {
    pub id: Uuid,
    pub company_id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: Uuid,
    pub company_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub permissions: Vec<Permission>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RegisterRecord {
    pub id: Uuid,
    pub site_id: Uuid,
    pub name: String,
}

/// A register just created, with the device credential it signs in with. The credential is
/// shown to the operator once; Back Office keeps only its hash.
pub struct NewRegister {
    pub register: RegisterRecord,
    pub credential: String,
}

impl std::fmt::Debug for NewRegister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRegister")
            .field("register", &self.register)
            .field("credential", &"<redacted>")
            .finish()
    }
}

fn required(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid_field(field, "must not be empty"));
    }
    Ok(value.to_owned())
}

/// A unique key refused the row: `message` says which already exists.
fn already_exists(message: String) -> impl FnOnce(sqlx::Error) -> Error {
    move |error| match error.as_database_error() {
        Some(db) if db.is_unique_violation() => Error::Conflict {
            code: ErrorCode::AlreadyExists,
            message,
        },
        _ => Error::Database(error),
    }
}

pub async fn create_company(db: &Db, name: &str) -> Result<CompanyRecord> {
    let name = required("name", name)?;
    let id = Uuid::now_v7();
    on_db!(db, |pool| sqlx::query(
        "INSERT INTO companies (id, name, created_at) VALUES ($1, $2, $3)"
    )
    .bind(id)
    .bind(&name)
    .bind(Utc::now())
    .execute(pool)
    .await
    .map(drop))
    .map_err(already_exists(format!(
        "a company named `{name}` already exists"
    )))?;
    Ok(CompanyRecord { id, name })
}

/// Finds a company by id or by exact name.
pub async fn find_company(db: &Db, reference: &str) -> Result<CompanyRecord> {
    let by_id = Uuid::parse_str(reference.trim()).ok();
    let found: Option<CompanyRecord> = on_db!(db, |pool| sqlx::query_as(
        "SELECT id, name FROM companies WHERE id = $1 OR name = $2"
    )
    .bind(by_id)
    .bind(reference.trim())
    .fetch_optional(pool)
    .await)?;
    found.ok_or(Error::NotFound("company"))
}

pub async fn create_site(db: &Db, company: &str, name: &str) -> Result<SiteRecord> {
    let company = find_company(db, company).await?;
    let name = required("name", name)?;
    let id = Uuid::now_v7();
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |conn| sqlx::query(
        "INSERT INTO sites (id, company_id, name, created_at) VALUES ($1, $2, $3, $4)"
    )
    .bind(id)
    .bind(company.id)
    .bind(&name)
    .bind(Utc::now())
    .execute(conn)
    .await
    .map(drop))
    .map_err(already_exists(format!(
        "{} already has a site named `{name}`",
        company.name
    )))?;
    catalog::create_empty(&mut tx, id).await?;
    tx.commit().await?;
    Ok(SiteRecord {
        id,
        company_id: company.id,
        name,
    })
}

/// Finds a site by id, or by name — within `company` when given, which a name shared by sites of
/// two companies needs.
pub async fn find_site(db: &Db, reference: &str, company: Option<&str>) -> Result<SiteRecord> {
    let company_id = match company {
        Some(company) => Some(find_company(db, company).await?.id),
        None => None,
    };
    let by_id = Uuid::parse_str(reference.trim()).ok();
    let sites: Vec<SiteRecord> = on_db!(db, |pool| sqlx::query_as(
        "SELECT id, company_id, name FROM sites
         WHERE (id = $1 OR name = $2) AND ($3 IS NULL OR company_id = $3)"
    )
    .bind(by_id)
    .bind(reference.trim())
    .bind(company_id)
    .fetch_all(pool)
    .await)?;
    match <[SiteRecord; 1]>::try_from(sites) {
        Ok([site]) => Ok(site),
        Err(sites) if sites.is_empty() => Err(Error::NotFound("site")),
        Err(_) => Err(Error::Conflict {
            code: ErrorCode::Ambiguous,
            message: format!(
                "several sites are named `{}`; give the site's id, or the company too",
                reference.trim()
            ),
        }),
    }
}

#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub company: &'a str,
    pub email: &'a str,
    pub display_name: &'a str,
    pub password: &'a str,
    pub permissions: &'a [Permission],
}

pub async fn create_user(db: &Db, user: NewUser<'_>) -> Result<UserRecord> {
    let company = find_company(db, user.company).await?;
    let email = normalize_email(user.email);
    if !email.contains('@') {
        return Err(Error::invalid_field("email", "is not an email address"));
    }
    let display_name = required("name", user.display_name)?;
    password::check_acceptable(user.password).map_err(|e| Error::invalid_field("password", e))?;
    let hash = password::hash_blocking(user.password.to_owned()).await?;
    let id = Uuid::now_v7();
    let permissions = format_permissions(user.permissions);
    on_db!(db, |pool| sqlx::query(
        "INSERT INTO users (id, company_id, email, display_name, password_hash, permissions,
            created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    .bind(id)
    .bind(company.id)
    .bind(&email)
    .bind(&display_name)
    .bind(&hash)
    .bind(&permissions)
    .bind(Utc::now())
    .execute(pool)
    .await
    .map(drop))
    .map_err(already_exists(format!(
        "a user with the email `{email}` already exists"
    )))?;
    Ok(UserRecord {
        id,
        company_id: company.id,
        email,
        display_name,
        permissions: parse_permissions(&permissions),
    })
}

/// Sets a new password and signs the user out everywhere.
pub async fn reset_password(db: &Db, email: &str, new_password: &str) -> Result<()> {
    let email = normalize_email(email);
    password::check_acceptable(new_password).map_err(|e| Error::invalid_field("password", e))?;
    let user_id: Option<Uuid> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT id FROM users WHERE email = $1"
    )
    .bind(&email)
    .fetch_optional(pool)
    .await)?;
    let user_id = user_id.ok_or(Error::NotFound("user"))?;
    let hash = password::hash_blocking(new_password.to_owned()).await?;
    on_db!(db, |pool| sqlx::query(
        "UPDATE users SET password_hash = $1 WHERE id = $2"
    )
    .bind(&hash)
    .bind(user_id)
    .execute(pool)
    .await
    .map(drop))?;
    crate::auth::revoke_user_sessions(db, user_id).await
}

/// Limits the user `email` to `sites` (names or ids of their company's sites), or with `None`
/// gives them every site. Answers the sites' names as they now are (empty: every site).
pub async fn set_user_sites(db: &Db, email: &str, sites: Option<&[String]>) -> Result<Vec<String>> {
    let email = normalize_email(email);
    let found: Option<(Uuid, Uuid)> = on_db!(db, |pool| sqlx::query_as(
        "SELECT u.id, u.company_id FROM users u WHERE u.email = $1"
    )
    .bind(&email)
    .fetch_optional(pool)
    .await)?;
    let (user_id, company_id) = found.ok_or(Error::NotFound("user"))?;
    let company = company_id.to_string();
    let mut ids = vec![];
    let mut names = vec![];
    for reference in sites.unwrap_or_default() {
        let site = find_site(db, reference, Some(&company)).await?;
        ids.push(site.id);
        names.push(site.name);
    }
    let access = regsync_protocol::api::SiteAccessList {
        all_sites: sites.is_none(),
        site_ids: ids,
    };
    crate::users::set_site_access(db, company_id, user_id, &access).await?;
    Ok(names)
}

/// Creates a register at a site and its device credential.
pub async fn create_register(db: &Db, site: &SiteRecord, name: &str) -> Result<NewRegister> {
    let name = required("name", name)?;
    let id = Uuid::now_v7();
    let credential = token::generate(token::DEVICE_PREFIX);
    let digest = token::digest(&credential);
    on_db!(db, |pool| sqlx::query(
        "INSERT INTO registers (id, site_id, name, credential_hash, created_at)
         VALUES ($1, $2, $3, $4, $5)"
    )
    .bind(id)
    .bind(site.id)
    .bind(&name)
    .bind(&digest)
    .bind(Utc::now())
    .execute(pool)
    .await
    .map(drop))
    .map_err(already_exists(format!(
        "{} already has a register named `{name}`",
        site.name
    )))?;
    Ok(NewRegister {
        register: RegisterRecord {
            id,
            site_id: site.id,
            name,
        },
        credential,
    })
}

/// Everything that exists, for `list`: companies with their sites, registers and users.
#[derive(Debug, Clone)]
pub struct CompanyOverview {
    pub company: CompanyRecord,
    pub users: Vec<UserRecord>,
    pub sites: Vec<(SiteRecord, Vec<RegisterRecord>)>,
}

pub async fn overview(db: &Db) -> Result<Vec<CompanyOverview>> {
    let companies: Vec<CompanyRecord> = on_db!(db, |pool| sqlx::query_as(
        "SELECT id, name FROM companies ORDER BY name"
    )
    .fetch_all(pool)
    .await)?;
    let mut all = Vec::with_capacity(companies.len());
    for company in companies {
        let users: Vec<(Uuid, String, String, String)> = on_db!(db, |pool| sqlx::query_as(
            "SELECT id, email, display_name, permissions FROM users WHERE company_id = $1
             ORDER BY email"
        )
        .bind(company.id)
        .fetch_all(pool)
        .await)?;
        let users = users
            .into_iter()
            .map(|(id, email, display_name, permissions)| UserRecord {
                id,
                company_id: company.id,
                email,
                display_name,
                permissions: parse_permissions(&permissions),
            })
            .collect();
        let site_rows: Vec<SiteRecord> = on_db!(db, |pool| sqlx::query_as(
            "SELECT id, company_id, name FROM sites WHERE company_id = $1 ORDER BY name"
        )
        .bind(company.id)
        .fetch_all(pool)
        .await)?;
        let mut sites = Vec::with_capacity(site_rows.len());
        for site in site_rows {
            let registers: Vec<RegisterRecord> = on_db!(db, |pool| sqlx::query_as(
                "SELECT id, site_id, name FROM registers WHERE site_id = $1 ORDER BY name"
            )
            .bind(site.id)
            .fetch_all(pool)
            .await)?;
            sites.push((site, registers));
        }
        all.push(CompanyOverview {
            company,
            users,
            sites,
        });
    }
    Ok(all)
}
