//! What support and the manager take away from the app: its log files (rotating, in the OS log
//! folder), "Copy diagnostics", "Open log folder", and history exported as CSV.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use regsync_desktop::desk::Desk;
use regsync_desktop::diagnostics::About;
use regsync_desktop::words::{Problem, ProblemCode};
use serde::Serialize;
use tauri::{AppHandle, Manager, State};
use tauri_plugin_clipboard_manager::ClipboardExt as _;
use uuid::Uuid;

use crate::shell::Answer;

/// Logs to standard error and to rotating files in the OS log folder; standard error alone when
/// that folder cannot be written (the app must start all the same).
pub fn start_logging(app: &AppHandle) {
    const FILTER: &str = "info,sqlx=warn";
    let folder = log_folder(app);
    if let Err(error) = std::fs::create_dir_all(&folder)
        .map_err(|e| e.to_string())
        .and_then(|()| regsync_log::init_with_files(FILTER, &folder))
    {
        regsync_log::init(FILTER);
        tracing::warn!(%error, "logging to standard error only");
    }
    tracing::info!(
        version = %app.package_info().version,
        folder = %folder.display(),
        "Register Sync starting"
    );
}

/// What "Copy diagnostics" put on the clipboard (and whether it could).
#[derive(Debug, Serialize)]
pub struct Diagnostics {
    text: String,
    copied: bool,
}

/// "Copy diagnostics": onto the clipboard from here (a web view may not write it), and to the
/// page, which shows what was copied.
#[tauri::command]
pub async fn copy_diagnostics(app: AppHandle, desk: State<'_, Arc<Desk>>) -> Answer<Diagnostics> {
    let text = desk.diagnostics(&about(&app)).await;
    let copied = app.clipboard().write_text(text.clone());
    if let Err(error) = &copied {
        tracing::warn!(%error, "cannot copy the diagnostics");
    }
    Ok(Diagnostics {
        text,
        copied: copied.is_ok(),
    })
}

/// "Open log folder": opens it in the file manager and answers where it is, so the page can say
/// so even when no file manager opens.
#[tauri::command]
pub async fn open_log_folder(app: AppHandle) -> Answer<String> {
    let folder = about(&app).log_folder;
    let shown = folder.display().to_string();
    open_folder(&folder).map_err(|error| {
        tracing::warn!(%error, folder = %shown, "cannot open the log folder");
        Problem::new(
            ProblemCode::Settings,
            format!("Couldn't open the folder; the logs are in {shown}"),
        )
    })?;
    Ok(shown)
}

fn about(app: &AppHandle) -> About {
    About {
        version: app.package_info().version.to_string(),
        os: regsync_desktop::diagnostics::os_name(),
        log_folder: log_folder(app),
    }
}

/// The OS's log folder for the app (`~/.local/share/<id>/logs` on Linux, `~/Library/Logs/<id>`
/// on macOS, `%LOCALAPPDATA%\<id>\logs` on Windows).
fn log_folder(app: &AppHandle) -> PathBuf {
    app.path()
        .app_log_dir()
        .unwrap_or_else(|_| std::env::temp_dir().join("register-sync-logs"))
}

/// Opens `folder` with the desktop's file manager.
fn open_folder(folder: &Path) -> std::io::Result<()> {
    let opener = if cfg!(target_os = "windows") {
        "explorer"
    } else if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(folder)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(drop)
}

/// "Export…": a site's history over local days `from`..=`to` as a CSV file in the Downloads
/// folder; answers where it was saved.
#[tauri::command]
pub async fn export_history(
    app: AppHandle,
    desk: State<'_, Arc<Desk>>,
    site_id: Uuid,
    site_name: String,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Answer<String> {
    let csv = desk.history_csv(site_id, from, to).await?;
    let folder = app
        .path()
        .download_dir()
        .or_else(|_| app.path().home_dir())
        .map_err(|e| Problem::new(ProblemCode::Export, format!("No folder to save in: {e}")))?;
    let path = folder.join(regsync_desktop::files::export_name(&site_name, from, to));
    let written = std::fs::create_dir_all(&folder).and_then(|()| std::fs::write(&path, csv));
    written.map_err(|e| {
        Problem::new(
            ProblemCode::Export,
            format!("Couldn't save {}: {e}", path.display()),
        )
    })?;
    tracing::info!(path = %path.display(), "history exported");
    Ok(path.display().to_string())
}
