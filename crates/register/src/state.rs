//! What a register keeps: its menu, the revision it applied, and the syncs it applied recently
//! (so it can report results lost with a connection). Written atomically: a crash mid-write
//! leaves the previous file whole.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use regsync_protocol::Catalog;
use regsync_protocol::register::AppliedTarget;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How many applied syncs a register remembers for reporting after a reconnect.
pub const RECENT: usize = 64;

const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub applied_revision: i64,
    pub catalog: Catalog,
    pub recent: VecDeque<AppliedTarget>,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    #[serde(flatten)]
    stored: Stored,
}

impl Stored {
    pub fn remembered(&self, target_id: Uuid) -> Option<&AppliedTarget> {
        self.recent.iter().find(|t| t.target_id == target_id)
    }

    pub fn remember(&mut self, target_id: Uuid, revision: i64, applied_at: DateTime<Utc>) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(AppliedTarget {
            target_id,
            revision,
            applied_at,
        });
    }
}

/// Where the state lives: a file, or nowhere (simulations and benchmarks).
#[derive(Debug, Clone)]
pub struct Store {
    path: Option<PathBuf>,
}

impl Store {
    pub fn new(path: Option<PathBuf>) -> Self {
        Self { path }
    }

    /// Loads the saved state. A missing file is a new register; an unreadable one is logged and
    /// replaced by a fresh state (the register then simply syncs again), never a crash.
    pub fn load(&self) -> Stored {
        let Some(path) = &self.path else {
            return Stored::default();
        };
        match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<File>(&bytes) {
                Ok(file) if file.version == FORMAT_VERSION => file.stored,
                Ok(file) => {
                    tracing::warn!(path = %path.display(), version = file.version, "register state file has an unknown version; starting fresh");
                    Stored::default()
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "register state file is unreadable; starting fresh");
                    Stored::default()
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read the register state file; starting fresh");
                Stored::default()
            }
        }
    }

    /// Writes to a temporary file beside the target, then renames it over the target.
    pub fn save(&self, stored: &Stored) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut temp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(
            &mut temp,
            &File {
                version: FORMAT_VERSION,
                stored: stored.clone(),
            },
        )?;
        temp.as_file().sync_all()?;
        temp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(Some(dir.path().join("register.json")));
        assert_eq!(store.load(), Stored::default());
        let mut stored = Stored {
            applied_revision: 4,
            ..Default::default()
        };
        stored.remember(Uuid::nil(), 4, Utc::now());
        store.save(&stored).unwrap();
        assert_eq!(store.load(), stored);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_corrupt_file_starts_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("register.json");
        std::fs::write(&path, b"{\"version\":1,\"applied_rev").unwrap();
        assert_eq!(Store::new(Some(path)).load(), Stored::default());
    }

    #[test]
    fn remembers_only_the_most_recent() {
        let mut stored = Stored::default();
        for i in 0..(RECENT as u128 + 10) {
            stored.remember(Uuid::from_u128(i), 1, Utc::now());
        }
        assert_eq!(stored.recent.len(), RECENT);
        assert!(stored.remembered(Uuid::from_u128(0)).is_none());
        assert!(
            stored
                .remembered(Uuid::from_u128(RECENT as u128 + 9))
                .is_some()
        );
    }
}
