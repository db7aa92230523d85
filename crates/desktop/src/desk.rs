//! The app's session life cycle, free of Tauri: signing in and out, resuming the saved session
//! (retrying while Back Office is away, the last-known picture on screen meanwhile), and following
//! live updates into the picture, the page, the tray, the notifications and the offline cache.
//!
//! It is written against a small [`Host`]: the shell gives it the OS keychain, the notification
//! service, the tray and the page; tests give it a fake one and a real Back Office.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{FixedOffset, Utc};
use regsync_client::{Client, Endpoint};
use regsync_protocol::sync::{JobSummary, SyncRequest};
use serde::Serialize;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::cache::{Cache, account};
use crate::notify::{Notification, for_change};
use crate::session::{self, SessionView};
use crate::settings::{Settings, SettingsFile};
use crate::state::{Connection, Live};
use crate::tray::{TraySummary, summarize};
use crate::updates::UpdateNotice;
use crate::words::{Problem, ProblemCode};

/// How often, at most, the offline picture is written while updates stream in.
const CACHE_EVERY: Duration = Duration::from_secs(5);
/// Resuming a saved session while Back Office is away: first retry, and the longest wait.
const RESUME_FIRST_RETRY: Duration = Duration::from_millis(500);
const RESUME_MAX_RETRY: Duration = Duration::from_secs(30);

/// What the desk needs from the computer it runs on.
pub trait Host: Send + Sync + 'static {
    /// The OS keychain. These may block (D-Bus, Keychain Services); the desk calls them off the
    /// async workers.
    fn store_token(&self, url: &str, email: &str, token: &str) -> Result<(), String>;
    fn load_token(&self, url: &str, email: &str) -> Result<Option<String>, String>;
    fn delete_token(&self, url: &str, email: &str) -> Result<(), String>;
    /// Shows a system notification.
    fn notify(&self, notification: &Notification);
    /// Shows the tray's summary; called when it changed.
    fn show_tray(&self, summary: &TraySummary);
    /// Hands the page a new picture.
    fn publish(&self, view: &LiveView);
    /// Tells the page the session ended without the user signing out.
    fn signed_out(&self);
    /// Tells the page what there is to say about the app's own updates.
    fn publish_update(&self, notice: &UpdateNotice);
    /// The local time zone, for the tray's clock.
    fn zone(&self) -> FixedOffset;
}

/// The picture as the page gets it, numbered: the page keeps the newest, whichever of a command's
/// answer and an event arrives last.
#[derive(Debug, Clone, Serialize)]
pub struct LiveView {
    pub version: u64,
    #[serde(flatten)]
    pub live: Live,
}

#[derive(Default)]
struct Inner {
    /// Bumped whenever the picture or the connection changes.
    version: u64,
    client: Option<Client>,
    session: Option<SessionView>,
    live: Live,
    follow: Option<JoinHandle<()>>,
    current_site: Option<Uuid>,
    tray: Option<TraySummary>,
}

/// The signed-in app: its session, its picture, and where it keeps them.
pub struct Desk {
    host: Arc<dyn Host>,
    inner: Mutex<Inner>,
    /// True once start-up (resuming a session, or the demo) is done; the page waits for it.
    ready: watch::Sender<bool>,
    cache: Cache,
    config: PathBuf,
    settings: SettingsFile,
    /// The manager's choice, from the settings file.
    notifications: AtomicBool,
    /// `REGSYNC_NOTIFICATIONS=0` silences notifications whatever the setting.
    notifications_forced_off: bool,
    /// The manager's choice: check for app updates at start and daily.
    automatic_updates: AtomicBool,
    /// What there is to say about the app's own updates.
    update: std::sync::Mutex<UpdateNotice>,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn not_signed_in() -> Problem {
    Problem::new(
        ProblemCode::NotSignedIn,
        "You are signed out; sign in again.",
    )
}

impl Desk {
    /// The desk for the app's folders: the offline cache under `data`, the config and settings
    /// files in `config_dir`.
    pub fn new(
        host: Arc<dyn Host>,
        data: &Path,
        config_dir: &Path,
        notifications_forced_off: bool,
    ) -> Arc<Desk> {
        let settings = SettingsFile::new(config_dir.join("settings.json"));
        let chosen = settings.load();
        Arc::new(Desk {
            host,
            inner: Mutex::new(Inner::default()),
            ready: watch::channel(false).0,
            cache: Cache::new(data.join("cache")),
            config: config_dir.join("config.json"),
            settings,
            notifications: AtomicBool::new(chosen.notifications),
            notifications_forced_off,
            automatic_updates: AtomicBool::new(chosen.automatic_updates),
            update: std::sync::Mutex::new(UpdateNotice::default()),
        })
    }

    /// The signed-in session, once start-up is done.
    pub async fn session(&self) -> Option<SessionView> {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|ready| *ready).await;
        self.inner.lock().await.session.clone()
    }

    /// Start-up is done: the page may ask who is signed in.
    pub async fn started(&self) {
        self.ready.send_replace(true);
        self.refresh_tray().await;
    }

    /// Signs in; with `remember`, keeps the refresh token in the keychain and the session in the
    /// config file, so the next start resumes it.
    pub async fn sign_in(
        self: &Arc<Self>,
        endpoint: Endpoint,
        email: &str,
        password: &str,
        remember: bool,
    ) -> Result<SessionView, Problem> {
        let allow_http = endpoint.allows_plain_http();
        let (client, _) = Client::login(endpoint, email, password)
            .await
            .map_err(|e| Problem::from(&e))?;
        let session = SessionView::of(&client, false, allow_http)
            .ok_or_else(|| Problem::new(ProblemCode::Internal, "no user in the session"))?;
        if remember {
            let token = client.refresh_token().await.unwrap_or_default();
            let (url, email) = (session.url.clone(), session.email.clone());
            self.keychain(move |host| host.store_token(&url, &email, &token))
                .await?;
            self.keep_rotated_tokens(&client, &session);
            session::save(&self.config, &session)
                .map_err(|e| Problem::new(ProblemCode::Config, e.to_string()))?;
        }
        tracing::info!(url = %session.url, remember, "signed in");
        self.start(client, session.clone()).await;
        Ok(session)
    }

    /// Signs out: the session ends on Back Office, and its token and config are forgotten.
    pub async fn sign_out(&self) -> Result<(), Problem> {
        let (client, session) = {
            let mut inner = self.inner.lock().await;
            if let Some(follow) = inner.follow.take() {
                follow.abort();
            }
            inner.live = Live::default();
            inner.version += 1;
            (inner.client.take(), inner.session.take())
        };
        if let Some(client) = client {
            let _ = client.logout().await;
            tracing::info!(url = %client.base_url(), "signed out");
        }
        if let Some(session) = session.filter(|s| !s.demo) {
            self.keychain(move |host| host.delete_token(&session.url, &session.email))
                .await?;
            let _ = std::fs::remove_file(&self.config);
        }
        self.refresh_tray().await;
        Ok(())
    }

    /// The picture now.
    pub async fn live(&self) -> LiveView {
        let inner = self.inner.lock().await;
        LiveView {
            version: inner.version,
            live: inner.live.clone(),
        }
    }

    /// What the tray shows now.
    pub async fn tray_state(&self) -> Option<TraySummary> {
        self.inner.lock().await.tray.clone()
    }

    /// "Copy diagnostics": the app, the computer, Back Office and whether it answers now, and the
    /// latest problems logged. Holds no secret.
    pub async fn diagnostics(&self, about: &crate::diagnostics::About) -> String {
        let (client, url) = {
            let inner = self.inner.lock().await;
            let url = inner.session.as_ref().map(|s| s.url.clone());
            (inner.client.clone(), url)
        };
        let reachable = crate::diagnostics::reachability(client.as_ref()).await;
        let problems = regsync_log::recent_problems();
        crate::diagnostics::report(about, url.as_deref(), &reachable, &problems)
    }

    /// The client, to read from Back Office (a reading that fails says why in its own words).
    async fn reading_client(&self) -> Result<Client, Problem> {
        self.inner
            .lock()
            .await
            .client
            .clone()
            .ok_or_else(not_signed_in)
    }

    /// The client, when Back Office can be asked to do something now.
    async fn acting_client(&self) -> Result<Client, Problem> {
        let inner = self.inner.lock().await;
        inner.live.can_act()?;
        inner.client.clone().ok_or_else(not_signed_in)
    }

    pub async fn sync_register(
        &self,
        register_id: Uuid,
        retry_when_free: bool,
    ) -> Result<JobSummary, Problem> {
        let client = self.acting_client().await?;
        let job = client
            .sync_register(
                register_id,
                &SyncRequest {
                    retry_when_free,
                    ..SyncRequest::default()
                },
            )
            .await
            .map_err(|e| Problem::from(&e))?;
        // The page follows the targets on the live picture; a site's thousand need not cross twice.
        Ok(job.summary)
    }

    /// "Sync online registers"; with `queue_offline`, offline ones are synced when they
    /// reconnect (within a day) instead of being skipped.
    pub async fn sync_site(
        &self,
        site_id: Uuid,
        retry_when_free: bool,
        queue_offline: bool,
    ) -> Result<JobSummary, Problem> {
        self.set_current_site(site_id).await;
        let client = self.acting_client().await?;
        let request = SyncRequest {
            retry_when_free,
            queue_offline,
            queue_minutes: None,
        };
        let job = client
            .sync_site(site_id, &request)
            .await
            .map_err(|e| Problem::from(&e))?;
        Ok(job.summary)
    }

    /// A register's own page: its recent syncs and when it went online and offline.
    pub async fn register_activity(
        &self,
        register_id: Uuid,
    ) -> Result<regsync_protocol::sync::RegisterActivity, Problem> {
        let client = self.reading_client().await?;
        client
            .register_activity(register_id)
            .await
            .map_err(|e| Problem::from(&e))
    }

    /// A job with its registers, for a history item opened.
    pub async fn job(&self, job_id: Uuid) -> Result<regsync_protocol::sync::Job, Problem> {
        let client = self.reading_client().await?;
        client.job(job_id).await.map_err(|e| Problem::from(&e))
    }

    /// A site's history from `from` to `to` (local days, both included) as CSV, for "Export…".
    pub async fn history_csv(
        &self,
        site_id: Uuid,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<String, Problem> {
        if from > to {
            return Err(Problem::new(
                ProblemCode::InvalidInput,
                "The first day is after the last one.",
            ));
        }
        let zone = self.host.zone();
        let midnight = |day: chrono::NaiveDate| {
            day.and_time(chrono::NaiveTime::MIN)
                .and_local_timezone(zone)
                .single()
                .map(|at| at.to_rfc3339())
        };
        let (Some(start), Some(end)) = (midnight(from), to.succ_opt().and_then(midnight)) else {
            return Err(Problem::new(
                ProblemCode::InvalidInput,
                "Those days are out of range.",
            ));
        };
        let client = self.reading_client().await?;
        client
            .jobs_csv(site_id, Some(&start), Some(&end))
            .await
            .map_err(|e| Problem::from(&e))
    }

    /// "Sync online registers" from the tray: the site on screen.
    pub async fn sync_current_site(&self) -> Result<(), Problem> {
        let site = {
            let inner = self.inner.lock().await;
            inner.live.picture.current_site(inner.current_site)
        };
        let site = site.ok_or_else(|| Problem::new(ProblemCode::NotFound, "no site to sync"))?;
        self.sync_site(site, true, false).await.map(|_| ())
    }

    /// The site on screen, which the tray's sync item names.
    pub async fn set_current_site(&self, site_id: Uuid) {
        self.inner.lock().await.current_site = Some(site_id);
        self.refresh_tray().await;
    }

    pub fn notifications(&self) -> bool {
        self.notifications.load(Ordering::Relaxed)
    }

    pub fn set_notifications(&self, on: bool) -> Result<(), Problem> {
        self.save_settings(|s| s.notifications = on)?;
        self.notifications.store(on, Ordering::Relaxed);
        Ok(())
    }

    pub fn automatic_updates(&self) -> bool {
        self.automatic_updates.load(Ordering::Relaxed)
    }

    pub fn set_automatic_updates(&self, on: bool) -> Result<(), Problem> {
        self.save_settings(|s| s.automatic_updates = on)?;
        self.automatic_updates.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// Saves the settings as they are with `change` made.
    fn save_settings(&self, change: impl FnOnce(&mut Settings)) -> Result<(), Problem> {
        let mut settings = Settings {
            notifications: self.notifications(),
            automatic_updates: self.automatic_updates(),
        };
        change(&mut settings);
        self.settings.save(&settings).map_err(|e| {
            Problem::new(
                ProblemCode::Settings,
                format!("Couldn't save the setting: {e}"),
            )
        })
    }

    /// What there is to say about the app's own updates now.
    pub fn update(&self) -> UpdateNotice {
        self.update
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// An update is ready, refused, or there is nothing to say: the page and the tray follow.
    pub async fn set_update(&self, notice: UpdateNotice) {
        *self.update.lock().unwrap_or_else(|e| e.into_inner()) = notice.clone();
        self.host.publish_update(&notice);
        self.refresh_tray().await;
    }

    /// Follows `client`'s session: the cached picture first if there is nothing newer.
    pub async fn start(self: &Arc<Self>, client: Client, session: SessionView) {
        let mut inner = self.inner.lock().await;
        if let Some(follow) = inner.follow.take() {
            follow.abort();
        }
        if inner.live.picture.as_of.is_none()
            && let Some(cached) = self.cache.load(&account(&session.url, &session.email))
        {
            inner.live = Live::from_cache(cached);
        }
        inner.client = Some(client.clone());
        inner.session = Some(session.clone());
        inner.follow = Some(tokio::spawn(self.clone().follow(client, session)));
    }

    /// Resumes the session saved by the last "Stay signed in": the last-known picture at once,
    /// then Back Office, retrying while it is away. A token that no longer works signs out.
    pub async fn resume_saved(self: &Arc<Self>) {
        let Some(session) = session::load(&self.config) else {
            return;
        };
        let (url, email) = (session.url.clone(), session.email.clone());
        let token = match self
            .keychain(move |host| host.load_token(&url, &email))
            .await
        {
            Ok(Some(token)) => token,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(message = %error.message, "cannot read the keychain; signed out");
                return;
            }
        };
        {
            let mut inner = self.inner.lock().await;
            if let Some(cached) = self.cache.load(&account(&session.url, &session.email)) {
                inner.live = Live::from_cache(cached);
            }
            inner.session = Some(session.clone());
        }
        self.started().await;
        self.resume(session, token).await;
    }

    async fn resume(self: &Arc<Self>, session: SessionView, token: String) {
        let mut wait = RESUME_FIRST_RETRY;
        loop {
            match Client::resume(session.endpoint(), &token, None).await {
                Ok(client) => {
                    self.keep_rotated_tokens(&client, &session);
                    if let Some(rotated) = client.refresh_token().await {
                        let (url, email) = (session.url.clone(), session.email.clone());
                        let _ = self
                            .keychain(move |host| host.store_token(&url, &email, &rotated))
                            .await;
                    }
                    let session =
                        SessionView::of(&client, false, session.allow_http).unwrap_or(session);
                    let _ = session::save(&self.config, &session);
                    self.start(client, session).await;
                    return;
                }
                Err(error) if error.is_unreachable() => {
                    tracing::info!(%error, "Back Office unreachable; showing the last-known picture and retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RESUME_MAX_RETRY);
                }
                Err(error) => {
                    tracing::info!(%error, "the saved session no longer works; signed out");
                    let (url, email) = (session.url.clone(), session.email.clone());
                    let _ = self
                        .keychain(move |host| host.delete_token(&url, &email))
                        .await;
                    self.inner.lock().await.session = None;
                    self.host.signed_out();
                    return;
                }
            }
        }
    }

    /// Applies live updates to the picture; tells the page, the tray and the notification service,
    /// and keeps the offline picture.
    async fn follow(self: Arc<Self>, client: Client, session: SessionView) {
        let mut updates = client.subscribe();
        let who = account(&session.url, &session.email);
        let mut saved: Option<Instant> = None;
        while let Some(first) = updates.next().await {
            let mut notes = Vec::new();
            let picture_for_cache = {
                let mut inner = self.inner.lock().await;
                // Everything that has arrived is applied before anyone is told: one repaint for a
                // burst.
                let mut next = Some(first);
                while let Some(update) = next {
                    let change = inner.live.apply(update, Utc::now());
                    notes.extend(for_change(&change, &inner.live.picture));
                    next = updates.try_next();
                }
                inner.version += 1;
                self.host.publish(&LiveView {
                    version: inner.version,
                    live: inner.live.clone(),
                });
                let due = saved.is_none_or(|at| at.elapsed() > CACHE_EVERY);
                (inner.live.connection == Connection::Live && due)
                    .then(|| inner.live.picture.clone())
            };
            if self.notifications() && !self.notifications_forced_off {
                for note in &notes {
                    self.host.notify(note);
                }
            }
            self.refresh_tray().await;
            if let Some(picture) = picture_for_cache {
                saved = Some(Instant::now());
                if let Err(error) = self.cache.save(&who, &picture) {
                    tracing::warn!(%error, "cannot save the offline picture");
                }
            }
        }
        tracing::info!("the session ended; signing out");
        let mut inner = self.inner.lock().await;
        inner.session = None;
        inner.client = None;
        drop(inner);
        self.host.signed_out();
    }

    /// Recomputes the tray's summary and shows it if it changed.
    pub async fn refresh_tray(&self) {
        let summary = {
            let mut inner = self.inner.lock().await;
            let current = inner.live.picture.current_site(inner.current_site);
            let zone = self.host.zone();
            let mut summary = summarize(inner.session.is_some(), &inner.live, current, &zone);
            summary.update_item = self.update().ready_words();
            if inner.tray.as_ref() == Some(&summary) {
                return;
            }
            inner.tray = Some(summary.clone());
            summary
        };
        self.host.show_tray(&summary);
    }

    /// Stores every refresh token the client rotates to, in place of the old one.
    fn keep_rotated_tokens(&self, client: &Client, session: &SessionView) {
        let (url, email) = (session.url.clone(), session.email.clone());
        let host = self.host.clone();
        client.set_on_refresh(Arc::new(move |token: &str| {
            if let Err(error) = host.store_token(&url, &email, token) {
                tracing::warn!(%error, "could not save the renewed session");
            }
        }));
    }

    /// Runs a keychain call off the async workers.
    async fn keychain<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn Host) -> Result<T, String> + Send + 'static,
    ) -> Result<T, Problem> {
        let host = self.host.clone();
        tokio::task::spawn_blocking(move || call(host.as_ref()))
            .await
            .map_err(|e| Problem::new(ProblemCode::Internal, e.to_string()))?
            .map_err(|e| Problem::new(ProblemCode::Keychain, e))
    }
}

mod all_sites;
mod schedules;
#[cfg(test)]
mod tests;
