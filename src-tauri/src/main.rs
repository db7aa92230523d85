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

mod shell;

fn main() {
    // Logging itself starts once the app knows its log folder (shell::run); a panic is logged
    // whenever it happens.
    regsync_log::log_panics();
    let demo = std::env::args().any(|a| a == "--demo")
        || std::env::var("REGSYNC_DEMO").is_ok_and(|v| v == "1");
    let hidden = std::env::args().any(|a| a == shell::HIDDEN_ARG);
    shell::run(demo, hidden);
}
