//! Requests and responses of Back Office's HTTP API under `/v1`.
//!
//! Secrets (passwords, tokens) never show in `Debug` output, so logging a request by accident
//! leaks nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Catalog, ErrorCode};

/// The longest `GET /v1/jobs/{id}?wait_secs=N` holds an answer: Back Office refuses more, and
/// clients wait in steps of at most this.
pub const MAX_JOB_WAIT_SECS: u32 = 25;

/// Back Office sends a keep-alive on the live event stream this often; a client that hears
/// nothing for a few of these takes the link as dead.
pub const EVENTS_KEEP_ALIVE_SECS: u64 = 15;

/// The one shape every error response has: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable and machine-readable (`invalid_credentials`, `token_expired`, …; [`ErrorCode`]):
    /// match on this.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "invalid_field"))]
    pub code: ErrorCode,
    /// For people; may change wording between versions.
    pub message: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub email: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshRequest {
    pub refresh_token: String,
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshRequest")
            .field("refresh_token", &"<redacted>")
            .finish()
    }
}

/// Answer to a login or a refresh. The refresh token works once: each refresh answers a new one,
/// and presenting a spent one ends the whole session.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
    pub me: Me,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access_token", &"<redacted>")
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_token", &"<redacted>")
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("me", &self.me)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Everything, in the user's own company.
    Admin,
    /// The registers page: see registers, edit the menu, sync.
    Sites,
}

impl Permission {
    pub const ALL: [Permission; 2] = [Permission::Admin, Permission::Sites];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Admin => "admin",
            Permission::Sites => "sites",
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Permission {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown permission `{s}` (known: admin, sites)"))
    }
}

/// Which sites of their company a user sees: every one, or only those listed. Everything else
/// answers 404, as another company's ids do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SiteAccessList {
    /// True: every site of the company, now and to come; `site_ids` is then empty.
    pub all_sites: bool,
    /// With `all_sites` false: the only sites the user sees (sites of the user's company).
    #[serde(default)]
    pub site_ids: Vec<Uuid>,
}

/// The signed-in user, their company and what they may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    pub user: User,
    pub company: Company,
    pub permissions: Vec<Permission>,
    /// True when the user may see registers and sync them (Sites or Admin).
    pub can_manage_sites: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: Uuid,
    pub email: String,
    /// Shown to staff in the register banner ("Updated from Back Office by …").
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Company {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Site {
    pub id: Uuid,
    pub name: String,
    pub register_count: i64,
    /// The menu revision registers of this site should have.
    pub catalog_revision: i64,
    /// Its IANA time zone ("Europe/London"), which its schedules follow.
    #[serde(default = "utc_zone")]
    pub time_zone: String,
    /// When its next scheduled sync runs, if it has a schedule.
    #[serde(default)]
    pub next_scheduled_sync: Option<DateTime<Utc>>,
}

fn utc_zone() -> String {
    "UTC".to_owned()
}

/// Who or what started a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SyncSource {
    /// A manager, from Back Office (the app, the CLI).
    BackOffice,
    /// Staff, on the register itself.
    Register,
    /// One of the site's schedules.
    Schedule,
}

/// One register, with everything the registers page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Register {
    pub id: Uuid,
    pub site_id: Uuid,
    pub name: String,
    /// Back Office can reach it: its connection is open and heartbeats arrive.
    pub online: bool,
    /// A sale is open on it (as last reported; the register itself has the final word).
    pub in_sale: bool,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_synced_source: Option<SyncSource>,
    /// Display name of the user who started the last sync from Back Office, if it was one.
    pub last_synced_by: Option<String>,
    /// The menu revision the register has applied (0: never synced).
    pub applied_revision: i64,
    /// The menu revision of its site.
    pub site_revision: i64,
    /// How many revisions behind the site it is; 0 when up to date.
    pub revisions_behind: i64,
    pub up_to_date: bool,
}

/// A site's catalog at a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogRevision {
    pub site_id: Uuid,
    /// Starts at 1 and goes up by one on every change.
    pub revision: i64,
    pub updated_at: DateTime<Utc>,
    /// Display name of the user who made the last change, if any user did.
    pub updated_by: Option<String>,
    pub catalog: Catalog,
}

/// Replace a site's whole catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReplaceCatalog {
    /// When given, refused with 409 unless the catalog is still at this revision.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::whole::optional"
    )]
    pub expected_revision: Option<i64>,
    pub catalog: Catalog,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok` when the database answers, `database unavailable` (with a 503) when it does not.
    pub status: String,
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let login = LoginRequest {
            email: "a@b.c".into(),
            password: "hunter22".into(),
        };
        assert!(!format!("{login:?}").contains("hunter22"));
        let refresh = RefreshRequest {
            refresh_token: "rt_secret".into(),
        };
        assert!(!format!("{refresh:?}").contains("rt_secret"));
    }

    #[test]
    fn permissions_round_trip_as_words() {
        assert_eq!(
            serde_json::to_string(&Permission::Sites).unwrap(),
            r#""sites""#
        );
        assert_eq!("admin".parse(), Ok(Permission::Admin));
        assert!("root".parse::<Permission>().is_err());
    }
}
