//! A typed client for Back Office, for everything that talks to it as a manager: the desktop app
//! builds on it, and IT staff script with the `regsync` CLI built on it.
//!
//! It signs in, keeps the session fresh (refreshing the access token inside, once even when many
//! calls need it at the same moment, and handing each rotated refresh token to the caller to
//! store), and turns every failure into an [`Error`] a caller can act on. [`Client::subscribe`]
//! follows Back Office's live events and reconnects by itself without missing a change.

pub mod endpoint;
mod error;
pub mod events;
pub mod keychain;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use regsync_protocol::api::MAX_JOB_WAIT_SECS;
use regsync_protocol::api::{
    CatalogRevision, Health, LoginRequest, Me, RefreshRequest, Register, ReplaceCatalog, Session,
    Site,
};
use regsync_protocol::schedule::{Schedule, ScheduleRequest, SiteSchedules, TimeZoneRequest};
use regsync_protocol::sync::{Job, JobSummary, SyncGroup, SyncRequest};
use regsync_protocol::{CatalogEdit, ErrorCode};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub use endpoint::Endpoint;
pub(crate) use endpoint::transport_error;
pub use events::{Subscription, Update};
pub use regsync_transport::Trust;

pub use error::Error;
pub(crate) use wire::error_from;
use wire::{Empty, send};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Called with each new refresh token, so the caller can store it (the old one no longer works).
pub type OnRefresh = Arc<dyn Fn(&str) + Send + Sync>;

/// How long a request may take; event streams have no overall limit but must show life.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Refresh a little before the access token runs out rather than after a failed call: 30 s
/// before, or a quarter of its lifetime for tokens that live less than two minutes.
const REFRESH_MARGIN: chrono::Duration = chrono::Duration::seconds(30);

fn refresh_due(obtained: DateTime<Utc>, expires: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let margin = REFRESH_MARGIN.min((expires - obtained) / 4);
    expires - margin <= now
}

struct Tokens {
    access: Option<String>,
    /// When the access token was obtained and when it runs out.
    access_obtained_at: DateTime<Utc>,
    access_expires_at: Option<DateTime<Utc>>,
    refresh: Option<String>,
    /// Bumped on every refresh: a caller that saw an older one knows someone refreshed already.
    generation: u64,
}

struct Inner {
    base: String,
    http: reqwest::Client,
    timeout: Duration,
    tokens: tokio::sync::Mutex<Tokens>,
    on_refresh: std::sync::Mutex<Option<OnRefresh>>,
    me: std::sync::Mutex<Option<Me>>,
}

/// A signed-in connection to one Back Office. Cheap to clone; clones share the session.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Signs in with email and password.
    pub async fn login(
        endpoint: impl Into<Endpoint>,
        email: &str,
        password: &str,
    ) -> Result<(Client, Session)> {
        Client::login_with_timeout(endpoint, email, password, REQUEST_TIMEOUT).await
    }

    /// Signs in; every request of this client may take at most `timeout`.
    pub async fn login_with_timeout(
        endpoint: impl Into<Endpoint>,
        email: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<(Client, Session)> {
        let (base, http) = endpoint.into().open()?;
        let body = LoginRequest {
            email: email.to_owned(),
            password: password.to_owned(),
        };
        let session: Session = send(
            &http,
            &base,
            timeout,
            Method::POST,
            "/v1/auth/login",
            None,
            Some(&body),
        )
        .await?;
        let client = Client::from_session(base, http, &session, timeout);
        Ok((client, session))
    }

    fn from_session(
        base: String,
        http: reqwest::Client,
        session: &Session,
        timeout: Duration,
    ) -> Client {
        Client {
            inner: Arc::new(Inner {
                base,
                http,
                timeout,
                tokens: tokio::sync::Mutex::new(Tokens {
                    access: Some(session.access_token.clone()),
                    access_obtained_at: Utc::now(),
                    access_expires_at: Some(session.access_expires_at),
                    refresh: Some(session.refresh_token.clone()),
                    generation: 0,
                }),
                on_refresh: std::sync::Mutex::new(None),
                me: std::sync::Mutex::new(Some(session.me.clone())),
            }),
        }
    }

    /// Resumes a sign-in from a stored refresh token. `on_refresh` is told every new refresh
    /// token (starting with the one this exchange returns), to store in place of the old.
    pub async fn resume(
        endpoint: impl Into<Endpoint>,
        refresh_token: &str,
        on_refresh: Option<OnRefresh>,
    ) -> Result<Client> {
        let (base, http) = endpoint.into().open()?;
        let client = Client {
            inner: Arc::new(Inner {
                base,
                http,
                timeout: REQUEST_TIMEOUT,
                tokens: tokio::sync::Mutex::new(Tokens {
                    access: None,
                    access_obtained_at: Utc::now(),
                    access_expires_at: None,
                    refresh: Some(refresh_token.to_owned()),
                    generation: 0,
                }),
                on_refresh: std::sync::Mutex::new(on_refresh),
                me: std::sync::Mutex::new(None),
            }),
        };
        client.refresh_after(0).await?;
        Ok(client)
    }

    /// Calls `on_refresh` with every refresh token from now on (all clones share it).
    pub fn set_on_refresh(&self, on_refresh: OnRefresh) {
        *self
            .inner
            .on_refresh
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(on_refresh);
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The signed-in user as of the last sign-in or refresh.
    pub fn me_cached(&self) -> Option<Me> {
        self.inner
            .me
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The current refresh token (to store after signing in).
    pub async fn refresh_token(&self) -> Option<String> {
        self.inner.tokens.lock().await.refresh.clone()
    }

    /// The access token to use now, refreshing first if it is about to run out.
    async fn access(&self) -> Result<(String, u64)> {
        let (access, obtained, expires, generation) = {
            let tokens = self.inner.tokens.lock().await;
            (
                tokens.access.clone(),
                tokens.access_obtained_at,
                tokens.access_expires_at,
                tokens.generation,
            )
        };
        match (access, expires) {
            (Some(access), Some(expires)) if !refresh_due(obtained, expires, Utc::now()) => {
                Ok((access, generation))
            }
            _ => self.refresh_after(generation).await,
        }
    }

    /// Refreshes unless someone already did since `seen_generation`; one refresh at a time, so
    /// concurrent callers share one rotation instead of spending the token twice (which Back
    /// Office would take for theft and end the session).
    async fn refresh_after(&self, seen_generation: u64) -> Result<(String, u64)> {
        let mut tokens = self.inner.tokens.lock().await;
        if tokens.generation != seen_generation
            && let Some(access) = &tokens.access
        {
            return Ok((access.clone(), tokens.generation));
        }
        let Some(refresh) = tokens.refresh.clone() else {
            return Err(Error::NotSignedIn {
                code: ErrorCode::NotSignedIn,
                message: "not signed in".into(),
            });
        };
        let body = RefreshRequest {
            refresh_token: refresh,
        };
        let result: Result<Session> = send(
            &self.inner.http,
            &self.inner.base,
            self.inner.timeout,
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(&body),
        )
        .await;
        let session = match result {
            Ok(session) => session,
            Err(error @ Error::NotSignedIn { .. }) => {
                tokens.access = None;
                tokens.refresh = None;
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        tokens.access = Some(session.access_token.clone());
        tokens.access_obtained_at = Utc::now();
        tokens.access_expires_at = Some(session.access_expires_at);
        tokens.refresh = Some(session.refresh_token.clone());
        tokens.generation += 1;
        *self.inner.me.lock().unwrap_or_else(|e| e.into_inner()) = Some(session.me.clone());
        let on_refresh = self
            .inner
            .on_refresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(on_refresh) = on_refresh {
            on_refresh(&session.refresh_token);
        }
        tracing::debug!("access token refreshed");
        Ok((session.access_token, tokens.generation))
    }

    /// Sends an authenticated request; on an expired or unknown access token, refreshes once and
    /// tries again.
    async fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        self.call_within(method, path, body, self.inner.timeout)
            .await
    }

    /// [`Client::call`] for a request Back Office may hold open for longer than usual.
    async fn call_within<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<T> {
        let (status, bytes) = self.call_bytes(method, path, body, timeout).await?;
        wire::parse_json(status, &bytes)
    }

    /// A call whose answer is not JSON: its status and body. Signed in as [`Client::call`] is:
    /// an access token that expired is refreshed once and the request made again.
    async fn call_bytes<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<(reqwest::StatusCode, Vec<u8>)> {
        let (access, generation) = self.access().await?;
        let http = &self.inner.http;
        let base = &self.inner.base;
        match wire::send_bytes(
            http,
            base,
            timeout,
            method.clone(),
            path,
            Some(&access),
            body,
        )
        .await
        {
            Err(Error::NotSignedIn { code, .. }) if code.refresh_may_help() => {
                let (access, _) = self.refresh_after(generation).await?;
                wire::send_bytes(http, base, timeout, method, path, Some(&access), body).await
            }
            other => other,
        }
    }

    /// A bearer token for a request made outside this client (the event stream).
    pub(crate) async fn bearer(&self) -> Result<(String, u64)> {
        self.access().await
    }

    pub(crate) async fn bearer_after_rejection(&self, generation: u64) -> Result<(String, u64)> {
        self.refresh_after(generation).await
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// Signs out: this session's tokens stop working everywhere.
    pub async fn logout(&self) -> Result<()> {
        let result: Result<Empty> = self
            .call(Method::POST, "/v1/auth/logout", None::<&()>)
            .await;
        let mut tokens = self.inner.tokens.lock().await;
        tokens.access = None;
        tokens.refresh = None;
        match result {
            Ok(_) | Err(Error::NotSignedIn { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    pub async fn health(&self) -> Result<Health> {
        send(
            &self.inner.http,
            &self.inner.base,
            self.inner.timeout,
            Method::GET,
            "/v1/health",
            None,
            None::<&()>,
        )
        .await
    }

    pub async fn me(&self) -> Result<Me> {
        self.call(Method::GET, "/v1/auth/me", None::<&()>).await
    }

    pub async fn sites(&self) -> Result<Vec<Site>> {
        self.call(Method::GET, "/v1/sites", None::<&()>).await
    }

    pub async fn site(&self, site_id: Uuid) -> Result<Site> {
        self.call(Method::GET, &format!("/v1/sites/{site_id}"), None::<&()>)
            .await
    }

    pub async fn registers(&self, site_id: Uuid) -> Result<Vec<Register>> {
        self.call(
            Method::GET,
            &format!("/v1/sites/{site_id}/registers"),
            None::<&()>,
        )
        .await
    }

    pub async fn register(&self, register_id: Uuid) -> Result<Register> {
        self.call(
            Method::GET,
            &format!("/v1/registers/{register_id}"),
            None::<&()>,
        )
        .await
    }

    pub async fn catalog(&self, site_id: Uuid) -> Result<CatalogRevision> {
        self.call(
            Method::GET,
            &format!("/v1/sites/{site_id}/catalog"),
            None::<&()>,
        )
        .await
    }

    pub async fn replace_catalog(
        &self,
        site_id: Uuid,
        request: &ReplaceCatalog,
    ) -> Result<CatalogRevision> {
        self.call(
            Method::PUT,
            &format!("/v1/sites/{site_id}/catalog"),
            Some(request),
        )
        .await
    }

    pub async fn edit_catalog(&self, site_id: Uuid, edit: &CatalogEdit) -> Result<CatalogRevision> {
        self.call(
            Method::PATCH,
            &format!("/v1/sites/{site_id}/catalog"),
            Some(edit),
        )
        .await
    }

    /// Syncs one register; answers the job as saved (follow it with [`Client::job`] or events).
    pub async fn sync_register(&self, register_id: Uuid, request: &SyncRequest) -> Result<Job> {
        self.call(
            Method::POST,
            &format!("/v1/registers/{register_id}/sync"),
            Some(request),
        )
        .await
    }

    /// "Sync online registers" of a site.
    pub async fn sync_site(&self, site_id: Uuid, request: &SyncRequest) -> Result<Job> {
        self.call(
            Method::POST,
            &format!("/v1/sites/{site_id}/sync"),
            Some(request),
        )
        .await
    }

    /// "Sync online registers at all my sites": one job per site with registers, as a group.
    pub async fn sync_all(&self, request: &SyncRequest) -> Result<SyncGroup> {
        self.call(Method::POST, "/v1/sync", Some(request)).await
    }

    /// An all-sites sync once nothing is left in flight at any site, or as it is after
    /// `within`.
    pub async fn wait_for_group(&self, group_id: Uuid, within: Duration) -> Result<SyncGroup> {
        const HOLD: Duration = Duration::from_secs(MAX_JOB_WAIT_SECS as u64);
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let secs = left.min(HOLD).as_millis().div_ceil(1000) as u64;
            let group: SyncGroup = self
                .call_within(
                    Method::GET,
                    &format!("/v1/sync/{group_id}?wait_secs={secs}"),
                    None::<&()>,
                    self.inner.timeout + Duration::from_secs(secs),
                )
                .await?;
            let c = &group.counts;
            let settled = c.queued + c.delivered + c.waiting == 0;
            if settled || tokio::time::Instant::now() >= deadline {
                return Ok(group);
            }
        }
    }

    /// A site's schedules (soonest first) and its time zone.
    pub async fn schedules(&self, site_id: Uuid) -> Result<SiteSchedules> {
        self.call(
            Method::GET,
            &format!("/v1/sites/{site_id}/schedules"),
            None::<&()>,
        )
        .await
    }

    /// Adds a schedule to a site.
    pub async fn add_schedule(&self, site_id: Uuid, request: &ScheduleRequest) -> Result<Schedule> {
        self.call(
            Method::POST,
            &format!("/v1/sites/{site_id}/schedules"),
            Some(request),
        )
        .await
    }

    /// Changes a schedule's days and time.
    pub async fn change_schedule(
        &self,
        schedule_id: Uuid,
        request: &ScheduleRequest,
    ) -> Result<Schedule> {
        self.call(
            Method::PUT,
            &format!("/v1/schedules/{schedule_id}"),
            Some(request),
        )
        .await
    }

    pub async fn remove_schedule(&self, schedule_id: Uuid) -> Result<()> {
        let _: Empty = self
            .call(
                Method::DELETE,
                &format!("/v1/schedules/{schedule_id}"),
                None::<&()>,
            )
            .await?;
        Ok(())
    }

    /// Sets a site's time zone (an IANA name); answers its schedules with their new next runs.
    pub async fn set_time_zone(&self, site_id: Uuid, time_zone: &str) -> Result<SiteSchedules> {
        let request = TimeZoneRequest {
            time_zone: time_zone.to_owned(),
        };
        self.call(
            Method::PUT,
            &format!("/v1/sites/{site_id}/time_zone"),
            Some(&request),
        )
        .await
    }

    pub async fn job(&self, job_id: Uuid) -> Result<Job> {
        self.call(Method::GET, &format!("/v1/jobs/{job_id}"), None::<&()>)
            .await
    }

    /// A register's own page: its recent syncs, and when it went online and offline.
    pub async fn register_activity(
        &self,
        register_id: Uuid,
    ) -> Result<regsync_protocol::sync::RegisterActivity> {
        self.call(
            Method::GET,
            &format!("/v1/registers/{register_id}/activity"),
            None::<&()>,
        )
        .await
    }

    /// A site's recent jobs, newest first.
    pub async fn jobs(&self, site_id: Uuid, limit: u32) -> Result<Vec<JobSummary>> {
        self.call(
            Method::GET,
            &format!("/v1/sites/{site_id}/jobs?limit={limit}"),
            None::<&()>,
        )
        .await
    }

    /// A site's syncs as CSV, one line per register of each job created from `from` to `to`
    /// (RFC 3339 times or dates; Back Office's defaults, the last 30 days, when absent).
    pub async fn jobs_csv(
        &self,
        site_id: Uuid,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<String> {
        let mut query = vec![];
        for (name, value) in [("from", from), ("to", to)] {
            if let Some(value) = value {
                query.push(format!("{name}={}", query_value(value)));
            }
        }
        let path = format!("/v1/sites/{site_id}/jobs.csv?{}", query.join("&"));
        let (status, bytes) = self
            .call_bytes(Method::GET, &path, None::<&()>, self.inner.timeout)
            .await?;
        String::from_utf8(bytes).map_err(|_| Error::BadResponse {
            status: status.as_u16(),
            detail: "the CSV export is not UTF-8".into(),
        })
    }

    /// The job once it has finished, or as it is after `within`. Back Office holds each request
    /// until the job finishes (up to 25 s), so the answer comes as soon as it is done.
    pub async fn wait_for_job(&self, job_id: Uuid, within: Duration) -> Result<Job> {
        const HOLD: Duration = Duration::from_secs(MAX_JOB_WAIT_SECS as u64);
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let hold = left.min(HOLD);
            // Whole seconds, rounded up, so a short wait still waits.
            let secs = hold.as_millis().div_ceil(1000) as u64;
            let asked = tokio::time::Instant::now();
            let job: Job = self
                .call_within(
                    Method::GET,
                    &format!("/v1/jobs/{job_id}?wait_secs={secs}"),
                    None::<&()>,
                    self.inner.timeout + Duration::from_secs(secs),
                )
                .await?;
            // Registers queued until they reconnect may take a day: what is in flight is the
            // outcome for now.
            let counts = &job.summary.counts;
            let settled = counts.open() == counts.awaiting_reconnect;
            if job.summary.finished_at.is_some()
                || settled
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(job);
            }
            if asked.elapsed() < hold / 2 {
                // Back Office held it for less than asked (a short request timeout): don't spin.
                tokio::time::sleep(Duration::from_millis(200).min(left)).await;
            }
        }
    }

    /// Follows live events; see [`Subscription`].
    pub fn subscribe(&self) -> Subscription {
        events::subscribe(self.clone())
    }
}

/// A query value with what a query gives meaning to escaped (`+` would read as a space).
fn query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '%' => out.push_str("%25"),
            '+' => out.push_str("%2B"),
            '&' => out.push_str("%26"),
            '#' => out.push_str("%23"),
            '=' => out.push_str("%3D"),
            ' ' => out.push_str("%20"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_are_due_near_the_end_of_a_tokens_life() {
        let t0 = Utc::now();
        let minutes = |m| chrono::Duration::minutes(m);
        assert!(!refresh_due(t0, t0 + minutes(15), t0 + minutes(14)));
        assert!(refresh_due(
            t0,
            t0 + minutes(15),
            t0 + minutes(15) - chrono::Duration::seconds(20)
        ));
        let second = chrono::Duration::seconds(1);
        assert!(!refresh_due(t0, t0 + second, t0 + second / 2));
        assert!(refresh_due(t0, t0 + second, t0 + second));
    }
}
