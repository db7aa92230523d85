//! The desktop app's logic, free of Tauri, so all of it is tested without a window.
//!
//! It keeps the app's picture of sites, registers and sync jobs current from the client's live
//! events ([`state`]), decides what the tray shows ([`tray`]) and which system notification a
//! change deserves ([`notify`]), keeps the last-known picture on disk for when Back Office cannot
//! be reached ([`cache`]), remembers who is signed in ([`session`]), keeps the manager's choices
//! ([`settings`]), puts failures in plain words ([`words`]) and writes what support needs
//! ([`diagnostics`]). [`desk`] runs the session life
//! cycle over all of them, against a small `Host` trait; `src-tauri` only implements that trait
//! for the keychain, the notification service, the tray and the window.

pub mod cache;
pub mod desk;
pub mod diagnostics;
pub mod files;
pub mod notify;
pub mod session;
pub mod settings;
pub mod state;
pub mod tray;
pub mod updates;
pub mod words;

#[cfg(test)]
mod tests;
