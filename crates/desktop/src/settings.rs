//! The manager's choices for this PC, kept across restarts and sign-outs.
//!
//! Only what the app itself decides lives here. Whether the app starts at login is the OS's to
//! know (the entry can be removed from the desktop's own settings), so it is read from there.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::write_atomically;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// System notifications when syncs finish, are skipped, wait, fail or expire.
    pub notifications: bool,
    /// Check for a new version of the app at start and daily (off where IT deploys updates).
    pub automatic_updates: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            notifications: true,
            automatic_updates: true,
        }
    }
}

/// The settings file.
#[derive(Debug, Clone)]
pub struct SettingsFile {
    path: PathBuf,
}

impl SettingsFile {
    pub fn new(path: impl Into<PathBuf>) -> SettingsFile {
        SettingsFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved settings; the defaults when there are none, or when the file is unreadable (with
    /// a log line: a bad settings file must never keep the app from starting).
    pub fn load(&self) -> Settings {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Settings::default(),
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot read the settings; using the defaults");
                return Settings::default();
            }
        };
        serde_json::from_slice(&bytes).unwrap_or_else(|error| {
            tracing::warn!(path = %self.path.display(), %error, "the settings file is unreadable; using the defaults");
            Settings::default()
        })
    }

    pub fn save(&self, settings: &Settings) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(settings)?;
        write_atomically(&self.path, &bytes)
    }
}
