//! Adapters and one-line commands: the window, the tray, notifications, the keychain and the
//! config file, around the picture kept by `crates/desktop`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{Local, Utc};
use regsync_client::{Client, Endpoint, Error, keychain};
use regsync_desktop::cache::{Cache, account};
use regsync_desktop::notify::for_change;
use regsync_desktop::session::{self, SessionView};
use regsync_desktop::settings::{Settings, SettingsFile};
use regsync_desktop::state::{Connection, Live};
use regsync_desktop::tray::{TrayIcon, TraySummary, summarize};
use regsync_desktop::words::{Problem, ProblemCode};
use regsync_protocol::sync::{JobSummary, SyncRequest};
use serde::Serialize;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager, State, WindowEvent};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_notification::NotificationExt;
use tokio::sync::{Mutex, watch};
use uuid::Uuid;

/// Every failure the page sees: a stable code and plain words (`crates/desktop` chooses them).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct UiError(Problem);

impl From<Error> for UiError {
    fn from(error: Error) -> Self {
        UiError(Problem::from(&error))
    }
}

impl UiError {
    fn new(code: ProblemCode, message: impl Into<String>) -> Self {
        UiError(Problem::new(code, message))
    }
}

/// The picture as the page gets it, numbered: the page keeps the newest, whichever of a command's
/// answer and an event arrives last.
#[derive(Serialize)]
struct LiveView {
    version: u64,
    #[serde(flatten)]
    live: Live,
}

#[derive(Default)]
struct Inner {
    /// Bumped whenever the picture or the connection changes.
    version: u64,
    client: Option<Client>,
    session: Option<SessionView>,
    live: Live,
    follow: Option<tauri::async_runtime::JoinHandle<()>>,
    current_site: Option<Uuid>,
    tray: Option<TraySummary>,
}

/// The app's state, shared by commands and background tasks.
pub struct Shared {
    inner: Mutex<Inner>,
    /// True once start-up (resuming a session, or the demo) is done; the page waits for it.
    ready: watch::Sender<bool>,
    cache: Cache,
    config: PathBuf,
    settings: SettingsFile,
    /// The manager's choice, from the settings file.
    notifications: AtomicBool,
    /// `REGSYNC_NOTIFICATIONS=0` silences notifications whatever the setting (benchmarks, kiosks).
    notifications_forced_off: bool,
    /// The demo's Back Office and registers live as long as the app.
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
    demo: std::sync::Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, UiError> {
    tauri::async_runtime::spawn_blocking(f)
        .await
        .map_err(|e| UiError::new(ProblemCode::Internal, e.to_string()))?
        .map_err(|e| UiError::new(ProblemCode::Keychain, e.to_string()))
}

// ---- commands: one line of work each --------------------------------------------------------

#[tauri::command]
async fn session(state: State<'_, Arc<Shared>>) -> Result<Option<SessionView>, UiError> {
    let mut ready = state.ready.subscribe();
    let _ = ready.wait_for(|ready| *ready).await;
    Ok(state.inner.lock().await.session.clone())
}

#[tauri::command]
async fn sign_in(
    app: AppHandle,
    state: State<'_, Arc<Shared>>,
    url: String,
    email: String,
    password: String,
    remember: bool,
    allow_http: Option<bool>,
) -> Result<SessionView, UiError> {
    // Only ever true when the manager ticked the choice; a page that does not offer it sends none.
    let allow_http = allow_http.unwrap_or(false);
    let endpoint = Endpoint::new(url).allow_plain_http(allow_http);
    let (client, _) = Client::login(endpoint, &email, &password).await?;
    let session = SessionView::of(&client, false, allow_http)
        .ok_or_else(|| UiError::new(ProblemCode::Internal, "no user in the session"))?;
    if remember {
        let (u, e) = (session.url.clone(), session.email.clone());
        let token = client.refresh_token().await.unwrap_or_default();
        blocking(move || keychain::store(&u, &e, &token)).await?;
        keep_rotated_tokens(&client, &session);
        session::save(&state.config, &session)
            .map_err(|e| UiError::new(ProblemCode::Config, e.to_string()))?;
    }
    start(app, state.inner(), client, session.clone()).await;
    Ok(session)
}

#[tauri::command]
async fn sign_out(app: AppHandle, state: State<'_, Arc<Shared>>) -> Result<(), UiError> {
    let (client, session) = {
        let mut inner = state.inner.lock().await;
        if let Some(follow) = inner.follow.take() {
            follow.abort();
        }
        inner.live = Live::default();
        inner.version += 1;
        (inner.client.take(), inner.session.take())
    };
    if let Some(client) = client {
        let _ = client.logout().await;
    }
    if let Some(session) = session.filter(|s| !s.demo) {
        blocking(move || keychain::delete(&session.url, &session.email)).await?;
        let _ = std::fs::remove_file(&state.config);
    }
    refresh_tray(&app, state.inner()).await;
    Ok(())
}

#[tauri::command]
async fn live(state: State<'_, Arc<Shared>>) -> Result<LiveView, UiError> {
    let inner = state.inner.lock().await;
    Ok(LiveView {
        version: inner.version,
        live: inner.live.clone(),
    })
}

async fn acting_client(state: &Shared) -> Result<Client, UiError> {
    let inner = state.inner.lock().await;
    inner.live.can_act().map_err(UiError)?;
    inner.client.clone().ok_or_else(|| {
        UiError::new(
            ProblemCode::NotSignedIn,
            "You are signed out; sign in again.",
        )
    })
}

#[tauri::command]
async fn sync_register(
    state: State<'_, Arc<Shared>>,
    register_id: Uuid,
    retry_when_free: bool,
) -> Result<JobSummary, UiError> {
    let client = acting_client(&state).await?;
    let job = client
        .sync_register(register_id, &SyncRequest { retry_when_free })
        .await?;
    // The page follows the targets on the live picture; a site's thousand need not cross twice.
    Ok(job.summary)
}

#[tauri::command]
async fn sync_site(
    app: AppHandle,
    state: State<'_, Arc<Shared>>,
    site_id: Uuid,
    retry_when_free: bool,
) -> Result<JobSummary, UiError> {
    state.inner.lock().await.current_site = Some(site_id);
    refresh_tray(&app, state.inner()).await;
    let client = acting_client(&state).await?;
    let job = client
        .sync_site(site_id, &SyncRequest { retry_when_free })
        .await?;
    Ok(job.summary)
}

#[tauri::command]
async fn set_current_site(
    app: AppHandle,
    state: State<'_, Arc<Shared>>,
    site_id: Uuid,
) -> Result<(), UiError> {
    state.inner.lock().await.current_site = Some(site_id);
    refresh_tray(&app, state.inner()).await;
    Ok(())
}

/// The manager's choices for this PC, as the settings page shows them.
#[derive(Debug, Serialize)]
struct SettingsView {
    notifications: bool,
    start_at_login: bool,
}

fn settings_view(app: &AppHandle, shared: &Shared) -> SettingsView {
    SettingsView {
        notifications: shared.notifications.load(Ordering::Relaxed),
        start_at_login: app.autolaunch().is_enabled().unwrap_or(false),
    }
}

#[tauri::command]
async fn settings(app: AppHandle, state: State<'_, Arc<Shared>>) -> Result<SettingsView, UiError> {
    Ok(settings_view(&app, &state))
}

#[tauri::command]
async fn set_notifications(
    app: AppHandle,
    state: State<'_, Arc<Shared>>,
    on: bool,
) -> Result<SettingsView, UiError> {
    state
        .settings
        .save(&Settings { notifications: on })
        .map_err(|e| {
            UiError::new(
                ProblemCode::Settings,
                format!("Couldn't save the setting: {e}"),
            )
        })?;
    state.notifications.store(on, Ordering::Relaxed);
    Ok(settings_view(&app, &state))
}

#[tauri::command]
async fn set_start_at_login(
    app: AppHandle,
    state: State<'_, Arc<Shared>>,
    on: bool,
) -> Result<SettingsView, UiError> {
    let autolaunch = app.autolaunch();
    if on {
        autolaunch.enable()
    } else {
        autolaunch.disable()
    }
    .map_err(|e| {
        UiError::new(
            ProblemCode::Settings,
            format!("Couldn't change starting at login: {e}"),
        )
    })?;
    Ok(settings_view(&app, &state))
}

/// What the tray shows now (for tests: trays cannot be read back on every desktop).
#[tauri::command]
async fn tray_state(state: State<'_, Arc<Shared>>) -> Result<Option<TraySummary>, UiError> {
    Ok(state.inner.lock().await.tray.clone())
}

// ---- following Back Office ---------------------------------------------------------------------

fn keep_rotated_tokens(client: &Client, session: &SessionView) {
    let (url, email) = (session.url.clone(), session.email.clone());
    client.set_on_refresh(Arc::new(move |token: &str| {
        if let Err(error) = keychain::store(&url, &email, token) {
            tracing::warn!(%error, "could not save the renewed session");
        }
    }));
}

async fn start(app: AppHandle, shared: &Arc<Shared>, client: Client, session: SessionView) {
    let mut inner = shared.inner.lock().await;
    if let Some(follow) = inner.follow.take() {
        follow.abort();
    }
    if inner.live.picture.as_of.is_none()
        && let Some(cached) = shared.cache.load(&account(&session.url, &session.email))
    {
        inner.live = Live::from_cache(cached);
    }
    inner.client = Some(client.clone());
    inner.session = Some(session.clone());
    inner.follow = Some(tauri::async_runtime::spawn(follow(
        app,
        shared.clone(),
        client,
        session,
    )));
}

/// Applies live updates to the picture; tells the page, the tray and the notification service.
async fn follow(app: AppHandle, shared: Arc<Shared>, client: Client, session: SessionView) {
    let mut updates = client.subscribe();
    let who = account(&session.url, &session.email);
    let mut saved = Instant::now() - Duration::from_secs(60);
    while let Some(first) = updates.next().await {
        let mut notes = Vec::new();
        let picture_for_cache;
        {
            let mut inner = shared.inner.lock().await;
            // Everything that has arrived is applied before anyone is told: one repaint for a burst.
            let mut next = Some(first);
            while let Some(update) = next {
                let change = inner.live.apply(update, Utc::now());
                notes.extend(for_change(&change, &inner.live.picture));
                next = updates.try_next();
            }
            inner.version += 1;
            let view = LiveView {
                version: inner.version,
                live: inner.live.clone(),
            };
            let _ = app.emit("live", &view);
            picture_for_cache = (inner.live.connection == Connection::Live
                && saved.elapsed() > Duration::from_secs(5))
            .then(|| inner.live.picture.clone());
        }
        if shared.notifications.load(Ordering::Relaxed) && !shared.notifications_forced_off {
            for note in notes {
                if let Err(error) = app
                    .notification()
                    .builder()
                    .title(&note.title)
                    .body(&note.body)
                    .show()
                {
                    tracing::warn!(%error, "cannot show a notification");
                }
            }
        }
        refresh_tray(&app, &shared).await;
        if let Some(picture) = picture_for_cache {
            saved = Instant::now();
            if let Err(error) = shared.cache.save(&who, &picture) {
                tracing::warn!(%error, "cannot save the offline picture");
            }
        }
    }
    tracing::info!("the session ended; signing out");
    let mut inner = shared.inner.lock().await;
    inner.session = None;
    inner.client = None;
    drop(inner);
    let _ = app.emit("signed_out", ());
}

// ---- the tray -----------------------------------------------------------------------------------

struct TrayItems {
    status: MenuItem<tauri::Wry>,
    updated: MenuItem<tauri::Wry>,
    sync: MenuItem<tauri::Wry>,
}

fn icon(kind: TrayIcon) -> Option<Image<'static>> {
    let bytes: &'static [u8] = match kind {
        TrayIcon::AllGood => include_bytes!("../../icons/tray-all-good.png"),
        TrayIcon::Attention => include_bytes!("../../icons/tray-attention.png"),
        TrayIcon::Syncing => include_bytes!("../../icons/tray-syncing.png"),
        TrayIcon::Unreachable => include_bytes!("../../icons/tray-unreachable.png"),
    };
    Image::from_bytes(bytes).ok()
}

async fn refresh_tray(app: &AppHandle, shared: &Arc<Shared>) {
    let summary = {
        let mut inner = shared.inner.lock().await;
        let current = inner.live.picture.current_site(inner.current_site);
        let zone = *Local::now().offset();
        let summary = summarize(inner.session.is_some(), &inner.live, current, &zone);
        if inner.tray.as_ref() == Some(&summary) {
            return;
        }
        inner.tray = Some(summary.clone());
        summary
    };
    if let Some(items) = app.try_state::<TrayItems>() {
        let _ = items.status.set_text(&summary.status);
        let _ = items
            .updated
            .set_text(summary.updated.as_deref().unwrap_or(""));
        let _ = items.sync.set_text(
            summary
                .sync_item
                .as_deref()
                .unwrap_or("Sync online registers"),
        );
        let _ = items.sync.set_enabled(summary.sync_item.is_some());
    }
    if let Some(tray) = app.tray_by_id("main") {
        let _ = tray.set_icon(icon(summary.icon));
        let _ = tray.set_tooltip(Some(&summary.status));
    }
}

fn build_tray(app: &AppHandle) -> tauri::Result<()> {
    let status = MenuItem::with_id(app, "status", "Starting…", false, None::<&str>)?;
    let updated = MenuItem::with_id(app, "updated", "", false, None::<&str>)?;
    let open = MenuItem::with_id(app, "open", "Open Register Sync", true, None::<&str>)?;
    let sync = MenuItem::with_id(app, "sync", "Sync online registers", false, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let separator = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(app, &[&status, &updated, &open, &sync, &separator, &quit])?;
    let mut builder = TrayIconBuilder::with_id("main")
        .menu(&menu)
        .tooltip("Register Sync");
    if let Some(image) = icon(TrayIcon::Unreachable) {
        builder = builder.icon(image);
    }
    builder
        .on_menu_event(|app, event| match event.id.as_ref() {
            "open" => show_window(app),
            "quit" => app.exit(0),
            "sync" => {
                let app = app.clone();
                tauri::async_runtime::spawn(async move {
                    let shared = app.state::<Arc<Shared>>().inner().clone();
                    let site = {
                        let inner = shared.inner.lock().await;
                        inner.live.picture.current_site(inner.current_site)
                    };
                    if let (Some(site), Ok(client)) = (site, acting_client(&shared).await)
                        && let Err(error) = client.sync_site(site, &SyncRequest::default()).await
                    {
                        tracing::warn!(%error, "sync from the tray failed");
                    }
                });
            }
            _ => {}
        })
        .build(app)?;
    app.manage(TrayItems {
        status,
        updated,
        sync,
    });
    Ok(())
}

fn show_window(app: &AppHandle) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}

// ---- start-up -----------------------------------------------------------------------------------

/// What the login entry passes, so a start at login opens in the tray rather than on screen.
pub const HIDDEN_ARG: &str = "--hidden";

async fn resume_saved(app: AppHandle, shared: Arc<Shared>) {
    let Some(session) = session::load(&shared.config) else {
        return;
    };
    let (u, e) = (session.url.clone(), session.email.clone());
    let token = match blocking(move || keychain::load(&u, &e)).await {
        Ok(Some(token)) => token,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(message = %error.0.message, "cannot read the keychain; signed out");
            return;
        }
    };
    // Show the last-known picture at once, marked offline, until Back Office answers.
    {
        let mut inner = shared.inner.lock().await;
        if let Some(cached) = shared.cache.load(&account(&session.url, &session.email)) {
            inner.live = Live::from_cache(cached);
        }
        inner.session = Some(session.clone());
    }
    shared.ready.send_replace(true);
    refresh_tray(&app, &shared).await;
    let mut wait = Duration::from_millis(500);
    loop {
        match Client::resume(session.endpoint(), &token, None).await {
            Ok(client) => {
                keep_rotated_tokens(&client, &session);
                if let Some(rotated) = client.refresh_token().await {
                    let (u, e) = (session.url.clone(), session.email.clone());
                    let _ = blocking(move || keychain::store(&u, &e, &rotated)).await;
                }
                let session =
                    SessionView::of(&client, false, session.allow_http).unwrap_or(session);
                let _ = session::save(&shared.config, &session);
                start(app, &shared, client, session).await;
                return;
            }
            Err(error) if error.is_unreachable() => {
                tracing::info!(%error, "Back Office unreachable; showing the last-known picture and retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(error) => {
                tracing::info!(%error, "the saved session no longer works; signed out");
                let (u, e) = (session.url.clone(), session.email.clone());
                let _ = blocking(move || keychain::delete(&u, &e)).await;
                shared.inner.lock().await.session = None;
                let _ = app.emit("signed_out", ());
                return;
            }
        }
    }
}

#[cfg(not(feature = "demo"))]
async fn start_demo(_app: AppHandle, _shared: Arc<Shared>) -> anyhow::Result<()> {
    anyhow::bail!("this build has no demo; build with `--features demo` (scripts/demo does)")
}

#[cfg(feature = "demo")]
async fn start_demo(app: AppHandle, shared: Arc<Shared>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (demo, _server) = regsync_demo::Demo::start(listener, None, std::future::pending()).await?;
    let url = demo.url.clone();
    *shared.demo.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(demo));
    let (client, _) = Client::login(
        &url,
        regsync_demo::MANAGER_EMAIL,
        regsync_demo::MANAGER_PASSWORD,
    )
    .await?;
    let session = SessionView::of(&client, true, false)
        .ok_or_else(|| anyhow::anyhow!("no user in the demo session"))?;
    tracing::info!(%url, "demo Back Office running; signed in as its manager");
    start(app, &shared, client, session).await;
    Ok(())
}

/// `hidden`: started at login, so the app goes straight to the tray (when there is one).
pub fn run(demo: bool, hidden: bool) {
    tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            tracing::info!("launched again; bringing the window forward");
            show_window(app)
        }))
        .plugin(tauri_plugin_notification::init())
        .plugin(
            tauri_plugin_autostart::Builder::new()
                .arg(HIDDEN_ARG)
                .build(),
        )
        .setup(move |app| {
            let data = app.path().app_data_dir()?;
            let config_dir = app.path().app_config_dir()?;
            let config = config_dir.join("config.json");
            let settings = SettingsFile::new(config_dir.join("settings.json"));
            let chosen = settings.load();
            let shared = Arc::new(Shared {
                inner: Mutex::new(Inner::default()),
                ready: watch::channel(false).0,
                cache: Cache::new(data.join("cache")),
                config,
                settings,
                notifications: AtomicBool::new(chosen.notifications),
                notifications_forced_off: std::env::var("REGSYNC_NOTIFICATIONS")
                    .is_ok_and(|v| v == "0"),
                demo: std::sync::Mutex::new(None),
            });
            app.manage(shared.clone());
            let tray = build_tray(app.handle());
            if let Err(error) = &tray {
                // No tray host (a bare X server, some desktops): the window still works.
                tracing::warn!(%error, "no system tray");
            }
            // The window starts hidden (tauri.conf.json) so a start at login can stay in the tray.
            if !(hidden && tray.is_ok()) {
                show_window(app.handle());
            }
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                if demo {
                    if let Err(error) = start_demo(handle.clone(), shared.clone()).await {
                        tracing::error!(%error, "the demo could not start");
                    }
                } else {
                    resume_saved(handle.clone(), shared.clone()).await;
                }
                shared.ready.send_replace(true);
                refresh_tray(&handle, &shared).await;
            });
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing the window keeps the app in the tray; Quit is in the tray menu.
            if let WindowEvent::CloseRequested { api, .. } = event
                && window.app_handle().tray_by_id("main").is_some()
            {
                let _ = window.hide();
                api.prevent_close();
            }
        })
        .invoke_handler(tauri::generate_handler![
            session,
            sign_in,
            sign_out,
            live,
            sync_register,
            sync_site,
            set_current_site,
            tray_state,
            settings,
            set_notifications,
            set_start_at_login
        ])
        .run(tauri::generate_context!())
        .unwrap_or_else(|error| {
            tracing::error!(%error, "Register Sync could not start");
            std::process::exit(1);
        });
}
