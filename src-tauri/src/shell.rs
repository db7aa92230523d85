//! Adapters and one-line commands. The session life cycle and every decision are the
//! [`Desk`]'s (`crates/desktop`); this file gives it the computer — the keychain, the
//! notification service, the tray and the window — and hands the page's commands to it.

use std::sync::Arc;

use chrono::{FixedOffset, Local};
use regsync_client::{Endpoint, keychain};
use regsync_desktop::desk::{Desk, Host, LiveView};
use regsync_desktop::notify::Notification;
use regsync_desktop::session::SessionView;
use regsync_desktop::tray::{TrayIcon, TraySummary};
use regsync_desktop::updates::UpdateNotice;
use regsync_desktop::words::{Problem, ProblemCode};
use regsync_protocol::sync::JobSummary;
use serde::Serialize;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager, State, WindowEvent};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_notification::NotificationExt;
use uuid::Uuid;

/// What the login entry passes, so a start at login opens in the tray rather than on screen.
pub const HIDDEN_ARG: &str = "--hidden";

/// Every failure the page sees: a stable code and plain words (`crates/desktop` chooses them).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct UiError(Problem);

impl From<Problem> for UiError {
    fn from(problem: Problem) -> Self {
        UiError(problem)
    }
}

pub(crate) type Answer<T> = Result<T, UiError>;

// ---- the computer, for the desk -----------------------------------------------------------------

/// The desk's [`Host`] on a desktop: the OS keychain, system notifications, the tray, the page.
struct Computer {
    app: AppHandle,
}

impl Host for Computer {
    fn store_token(&self, url: &str, email: &str, token: &str) -> Result<(), String> {
        keychain::store(url, email, token).map_err(|e| e.to_string())
    }

    fn load_token(&self, url: &str, email: &str) -> Result<Option<String>, String> {
        keychain::load(url, email).map_err(|e| e.to_string())
    }

    fn delete_token(&self, url: &str, email: &str) -> Result<(), String> {
        keychain::delete(url, email).map_err(|e| e.to_string())
    }

    fn notify(&self, note: &Notification) {
        let shown = self
            .app
            .notification()
            .builder()
            .title(&note.title)
            .body(&note.body)
            .show();
        if let Err(error) = shown {
            tracing::warn!(%error, "cannot show a notification");
        }
    }

    fn show_tray(&self, summary: &TraySummary) {
        if let Some(items) = self.app.try_state::<TrayItems>() {
            items.show(summary);
        }
        if let Some(tray) = self.app.tray_by_id("main") {
            let _ = tray.set_icon(icon(summary.icon));
            let _ = tray.set_tooltip(Some(&summary.status));
        }
    }

    fn publish(&self, view: &LiveView) {
        let _ = self.app.emit("live", view);
    }

    fn signed_out(&self) {
        let _ = self.app.emit("signed_out", ());
    }

    fn publish_update(&self, notice: &UpdateNotice) {
        let _ = self.app.emit("update", notice);
    }

    fn zone(&self) -> FixedOffset {
        *Local::now().offset()
    }
}

// ---- commands: one line of work each ------------------------------------------------------------

/// The page's first question when it loads (once per load: the log shows a reload).
#[tauri::command]
async fn session(desk: State<'_, Arc<Desk>>) -> Answer<Option<SessionView>> {
    tracing::info!("the page loaded");
    Ok(desk.session().await)
}

#[tauri::command]
async fn sign_in(
    desk: State<'_, Arc<Desk>>,
    url: String,
    email: String,
    password: String,
    remember: bool,
    allow_http: Option<bool>,
) -> Answer<SessionView> {
    // Only ever true when the manager ticked the choice; a page that does not offer it sends none.
    let allow_http = allow_http.unwrap_or(false);
    let endpoint = Endpoint::new(url).allow_plain_http(allow_http);
    Ok(desk.sign_in(endpoint, &email, &password, remember).await?)
}

#[tauri::command]
async fn sign_out(desk: State<'_, Arc<Desk>>) -> Answer<()> {
    Ok(desk.sign_out().await?)
}

#[tauri::command]
async fn live(desk: State<'_, Arc<Desk>>) -> Answer<LiveView> {
    Ok(desk.live().await)
}

#[tauri::command]
async fn sync_register(
    desk: State<'_, Arc<Desk>>,
    register_id: Uuid,
    retry_when_free: bool,
) -> Answer<JobSummary> {
    Ok(desk.sync_register(register_id, retry_when_free).await?)
}

/// "Sync online registers at all my sites".
#[tauri::command]
async fn sync_all(
    desk: State<'_, Arc<Desk>>,
    queue_offline: Option<bool>,
) -> Answer<regsync_protocol::sync::SyncGroup> {
    Ok(desk.sync_all(queue_offline.unwrap_or(false)).await?)
}

#[tauri::command]
async fn sync_site(
    desk: State<'_, Arc<Desk>>,
    site_id: Uuid,
    retry_when_free: bool,
    queue_offline: Option<bool>,
) -> Answer<JobSummary> {
    let queue_offline = queue_offline.unwrap_or(false);
    Ok(desk
        .sync_site(site_id, retry_when_free, queue_offline)
        .await?)
}

#[tauri::command]
async fn set_current_site(desk: State<'_, Arc<Desk>>, site_id: Uuid) -> Answer<()> {
    desk.set_current_site(site_id).await;
    Ok(())
}

/// What the tray shows now (for tests: trays cannot be read back on every desktop).
#[tauri::command]
async fn tray_state(desk: State<'_, Arc<Desk>>) -> Answer<Option<TraySummary>> {
    Ok(desk.tray_state().await)
}

/// The manager's choices for this PC, as the settings page shows them.
#[derive(Debug, Serialize)]
struct SettingsView {
    notifications: bool,
    start_at_login: bool,
    automatic_updates: bool,
}

fn settings_view(app: &AppHandle, desk: &Desk) -> SettingsView {
    SettingsView {
        notifications: desk.notifications(),
        start_at_login: app.autolaunch().is_enabled().unwrap_or(false),
        automatic_updates: desk.automatic_updates(),
    }
}

#[tauri::command]
async fn settings(app: AppHandle, desk: State<'_, Arc<Desk>>) -> Answer<SettingsView> {
    Ok(settings_view(&app, &desk))
}

#[tauri::command]
async fn set_notifications(
    app: AppHandle,
    desk: State<'_, Arc<Desk>>,
    on: bool,
) -> Answer<SettingsView> {
    desk.set_notifications(on)?;
    Ok(settings_view(&app, &desk))
}

#[tauri::command]
async fn set_start_at_login(
    app: AppHandle,
    desk: State<'_, Arc<Desk>>,
    on: bool,
) -> Answer<SettingsView> {
    let autolaunch = app.autolaunch();
    let changed = if on {
        autolaunch.enable()
    } else {
        autolaunch.disable()
    };
    changed.map_err(|e| {
        Problem::new(
            ProblemCode::Settings,
            format!("Couldn't change starting at login: {e}"),
        )
    })?;
    Ok(settings_view(&app, &desk))
}

#[tauri::command]
async fn set_automatic_updates(
    app: AppHandle,
    desk: State<'_, Arc<Desk>>,
    on: bool,
) -> Answer<SettingsView> {
    desk.set_automatic_updates(on)?;
    if on {
        // Turned back on: check now rather than tomorrow.
        let (app, desk) = (app.clone(), desk.inner().clone());
        tauri::async_runtime::spawn(async move { crate::updates::check(&app, &desk).await });
    }
    Ok(settings_view(&app, &desk))
}

/// A register's own page.
#[tauri::command]
async fn register_activity(
    desk: State<'_, Arc<Desk>>,
    register_id: Uuid,
) -> Answer<regsync_protocol::sync::RegisterActivity> {
    Ok(desk.register_activity(register_id).await?)
}

/// A history item opened: its job's registers and how each ended.
#[tauri::command]
async fn job(desk: State<'_, Arc<Desk>>, job_id: Uuid) -> Answer<regsync_protocol::sync::Job> {
    Ok(desk.job(job_id).await?)
}

// ---- the tray and the window --------------------------------------------------------------------

struct TrayItems {
    menu: Menu<tauri::Wry>,
    status: MenuItem<tauri::Wry>,
    updated: MenuItem<tauri::Wry>,
    sync: MenuItem<tauri::Wry>,
    /// "Sync online registers at all 5 sites": in the menu only with more than one site.
    sync_all: MenuItem<tauri::Wry>,
    sync_all_shown: std::sync::atomic::AtomicBool,
    /// "Version X is ready — restart to update": in the menu only while an update waits.
    update: MenuItem<tauri::Wry>,
    update_shown: std::sync::atomic::AtomicBool,
}

/// Where the update item goes: after the status and "Updated" lines.
const UPDATE_ITEM_POSITION: usize = 2;
/// Where "Sync online registers at all sites" goes: after "Sync online registers" (without the
/// update item).
const SYNC_ALL_POSITION: usize = 4;

impl TrayItems {
    fn show(&self, summary: &TraySummary) {
        let _ = self.status.set_text(&summary.status);
        let _ = self
            .updated
            .set_text(summary.updated.as_deref().unwrap_or(""));
        let sync = summary
            .sync_item
            .as_deref()
            .unwrap_or("Sync online registers");
        let _ = self.sync.set_text(sync);
        let _ = self.sync.set_enabled(summary.sync_item.is_some());
        self.show_sync_all(summary.sync_all_item.as_deref());
        self.show_update(summary.update_item.as_deref());
    }

    /// Right after "Sync online registers" (after the update item, when it shows).
    fn show_sync_all(&self, item: Option<&str>) {
        use std::sync::atomic::Ordering;
        match item {
            Some(text) => {
                let _ = self.sync_all.set_text(text);
                if !self.sync_all_shown.swap(true, Ordering::Relaxed) {
                    let at =
                        SYNC_ALL_POSITION + usize::from(self.update_shown.load(Ordering::Relaxed));
                    let _ = self.menu.insert(&self.sync_all, at);
                }
            }
            None => {
                if self.sync_all_shown.swap(false, Ordering::Relaxed) {
                    let _ = self.menu.remove(&self.sync_all);
                }
            }
        }
    }

    fn show_update(&self, item: Option<&str>) {
        use std::sync::atomic::Ordering;
        match item {
            Some(text) => {
                let _ = self.update.set_text(text);
                if !self.update_shown.swap(true, Ordering::Relaxed) {
                    let _ = self.menu.insert(&self.update, UPDATE_ITEM_POSITION);
                }
            }
            None => {
                if self.update_shown.swap(false, Ordering::Relaxed) {
                    let _ = self.menu.remove(&self.update);
                }
            }
        }
    }
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

fn build_tray(app: &AppHandle) -> tauri::Result<()> {
    let status = MenuItem::with_id(app, "status", "Starting…", false, None::<&str>)?;
    let updated = MenuItem::with_id(app, "updated", "", false, None::<&str>)?;
    let open = MenuItem::with_id(app, "open", "Open Register Sync", true, None::<&str>)?;
    let sync = MenuItem::with_id(app, "sync", "Sync online registers", false, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let update = MenuItem::with_id(app, "update", "", true, None::<&str>)?;
    let sync_all = MenuItem::with_id(app, "sync_all", "", true, None::<&str>)?;
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
            "update" => {
                let app = app.clone();
                tauri::async_runtime::spawn(async move {
                    if let Err(message) = crate::updates::restart_into(&app).await {
                        tracing::warn!(%message, "restarting into the update from the tray failed");
                    }
                });
            }
            "sync" => {
                let desk = app.state::<Arc<Desk>>().inner().clone();
                tauri::async_runtime::spawn(async move {
                    if let Err(problem) = desk.sync_current_site().await {
                        tracing::warn!(message = %problem.message, "sync from the tray failed");
                    }
                });
            }
            "sync_all" => {
                let desk = app.state::<Arc<Desk>>().inner().clone();
                tauri::async_runtime::spawn(async move {
                    if let Err(problem) = desk.sync_all(false).await {
                        tracing::warn!(message = %problem.message, "syncing all sites from the tray failed");
                    }
                });
            }
            _ => {}
        })
        .build(app)?;
    app.manage(TrayItems {
        menu,
        status,
        updated,
        sync,
        sync_all,
        sync_all_shown: false.into(),
        update,
        update_shown: false.into(),
    });
    Ok(())
}

/// WebKitGTK runs the page in a process of its own; if that process dies (a graphics driver
/// crash, seen under software rendering after hours of updates), the window would stay blank
/// until the app restarts. The page is loaded again instead, and says where it is.
#[cfg(target_os = "linux")]
fn reload_when_the_page_process_dies(window: &tauri::WebviewWindow) {
    let watched = window.with_webview(|webview| {
        use webkit2gtk::WebViewExt as _;
        webview
            .inner()
            .connect_web_process_terminated(|view, reason| {
                tracing::warn!(?reason, "the page's process ended; loading the page again");
                view.reload();
            });
    });
    if let Err(error) = watched {
        tracing::warn!(%error, "cannot watch the page's process");
    }
}

fn show_window(app: &AppHandle) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}

// ---- start-up -----------------------------------------------------------------------------------

/// The demo's Back Office and registers, kept as long as the app runs.
#[derive(Default)]
struct DemoHolder(
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
    std::sync::Mutex<Option<Box<dyn std::any::Any + Send>>>,
);

#[cfg(not(feature = "demo"))]
async fn start_demo(_desk: &Arc<Desk>, _holder: &DemoHolder) -> anyhow::Result<()> {
    anyhow::bail!("this build has no demo; build with `--features demo` (scripts/demo does)")
}

#[cfg(feature = "demo")]
async fn start_demo(desk: &Arc<Desk>, holder: &DemoHolder) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (demo, _server) = regsync_demo::Demo::start(listener, None, std::future::pending()).await?;
    let url = demo.url.clone();
    *holder.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(demo));
    let (client, _) = regsync_client::Client::login(
        &url,
        regsync_demo::MANAGER_EMAIL,
        regsync_demo::MANAGER_PASSWORD,
    )
    .await?;
    let session = SessionView::of(&client, true, false)
        .ok_or_else(|| anyhow::anyhow!("no user in the demo session"))?;
    tracing::info!(%url, "demo Back Office running; signed in as its manager");
    desk.start(client, session).await;
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
        .plugin(tauri_plugin_clipboard_manager::init())
        .plugin(tauri_plugin_updater::Builder::new().build())
        .plugin(
            tauri_plugin_autostart::Builder::new()
                .arg(HIDDEN_ARG)
                .build(),
        )
        .setup(move |app| {
            crate::support::start_logging(app.handle());
            let computer = Arc::new(Computer {
                app: app.handle().clone(),
            });
            let desk = Desk::new(
                computer,
                &app.path().app_data_dir()?,
                &app.path().app_config_dir()?,
                std::env::var("REGSYNC_NOTIFICATIONS").is_ok_and(|v| v == "0"),
            );
            app.manage(desk.clone());
            app.manage(DemoHolder::default());
            app.manage(crate::updates::Pending::default());
            let tray = build_tray(app.handle());
            if let Err(error) = &tray {
                // No tray host (a bare X server, some desktops): the window still works.
                tracing::warn!(%error, "no system tray");
            }
            #[cfg(target_os = "linux")]
            if let Some(window) = app.get_webview_window("main") {
                reload_when_the_page_process_dies(&window);
            }
            // The window starts hidden (tauri.conf.json) so a start at login can stay in the tray.
            if !(hidden && tray.is_ok()) {
                show_window(app.handle());
            }
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                if demo {
                    let holder = handle.state::<DemoHolder>();
                    if let Err(error) = start_demo(&desk, &holder).await {
                        tracing::error!(%error, "the demo could not start");
                    }
                } else {
                    desk.resume_saved().await;
                }
                desk.started().await;
                crate::updates::keep_up_to_date(handle, desk);
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
            sync_all,
            set_current_site,
            tray_state,
            settings,
            set_notifications,
            set_start_at_login,
            crate::support::copy_diagnostics,
            crate::support::open_log_folder,
            set_automatic_updates,
            crate::updates::update_state,
            crate::updates::restart_to_update,
            crate::support::export_history,
            job,
            register_activity,
            crate::schedules::schedules,
            crate::schedules::save_schedule,
            crate::schedules::remove_schedule,
            crate::schedules::set_time_zone
        ])
        .run(tauri::generate_context!())
        .unwrap_or_else(|error| {
            tracing::error!(%error, "Register Sync could not start");
            std::process::exit(1);
        });
}
