//! The desktop app's logic, free of Tauri, so all of it is tested without a window.
//!
//! It keeps the app's picture of sites, registers and sync jobs current from the client's live
//! events ([`state`]), decides what the tray shows ([`tray`]) and which system notification a
//! change deserves ([`notify`]), and keeps the last-known picture on disk for when Back Office
//! cannot be reached ([`cache`]), remembers who is signed in ([`session`]), keeps the manager's
//! choices ([`settings`]) and puts failures in plain words ([`words`]). `src-tauri` only wires these to the window, the tray, the notification
//! service and the keychain.

pub mod cache;
pub mod files;
pub mod notify;
pub mod session;
pub mod settings;
pub mod state;
pub mod tray;
pub mod words;

#[cfg(test)]
mod tests;
