//! Register Sync for the office PC: the Tauri shell.
//!
//! Thin on purpose: `crates/desktop`'s `Desk` owns the session life cycle and every decision; this
//! crate gives it the computer (the keychain, the notification service, the tray, the window) and
//! hands it the page's commands. Decisions are tested without a window, in that crate.
//!
//! `register-sync --demo` (or `REGSYNC_DEMO=1`) starts an embedded Back Office with the demo
//! company and simulated registers, and signs in as its manager. `--hidden` (what the login entry
//! passes when "Start at login" is on) starts it in the tray without opening the window.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod schedules;
mod shell;
mod support;
mod updates;

fn main() {
    // Logging itself starts once the app knows its log folder (shell::run); a panic is logged
    // whenever it happens.
    regsync_log::log_panics();
    #[cfg(windows)]
    windows_identity();
    let demo = std::env::args().any(|a| a == "--demo")
        || std::env::var("REGSYNC_DEMO").is_ok_and(|v| v == "1");
    let hidden = std::env::args().any(|a| a == shell::HIDDEN_ARG);
    shell::run(demo, hidden);
}

/// The identity Windows files this process under: its toasts, taskbar button and jump list. The
/// installer gives the Start menu shortcut the same AppUserModelID (the bundle identifier, see
/// `tauri.conf.json`); a start from the login entry has no shortcut, so the process says it
/// itself. Without it Windows drops the app's toast notifications.
#[cfg(windows)]
#[allow(unsafe_code)]
fn windows_identity() {
    const APP_USER_MODEL_ID: &str = "com.registersync.desktop";
    let wide: Vec<u16> = APP_USER_MODEL_ID.encode_utf16().chain(Some(0)).collect();
    // SAFETY: `wide` is a NUL-terminated UTF-16 string that outlives the call, which copies it.
    let result = unsafe {
        windows_sys::Win32::UI::Shell::SetCurrentProcessExplicitAppUserModelID(wide.as_ptr())
    };
    if result < 0 {
        tracing::warn!(result, "cannot set the AppUserModelID");
    }
}
