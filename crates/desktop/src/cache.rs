//! The last-known picture on disk, per account, so the app shows something useful at start and
//! whenever Back Office cannot be reached. Written atomically; versioned; holds no secret (the
//! picture has none: sites, registers, jobs). A corrupt, outdated or foreign file is discarded
//! with a log line, never a crash.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::files::write_atomically;
use crate::state::Picture;

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    /// Which Back Office and user this is the picture of.
    account: String,
    saved_at: DateTime<Utc>,
    picture: Picture,
}

/// A folder of cached pictures, one file per account.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// Names the account a picture belongs to: Back Office's URL and the email.
pub fn account(url: &str, email: &str) -> String {
    format!("{email} at {url}")
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    /// The file for an account: a hash, so the folder does not list who uses the PC.
    pub fn path(&self, account: &str) -> PathBuf {
        let digest = Sha256::digest(account.as_bytes());
        let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("picture-{name}.json"))
    }

    pub fn save(&self, account: &str, picture: &Picture) -> std::io::Result<()> {
        let file = File {
            version: VERSION,
            account: account.to_owned(),
            saved_at: Utc::now(),
            picture: picture.clone(),
        };
        write_atomically(&self.path(account), &serde_json::to_vec(&file)?)
    }

    /// The saved picture, if there is a usable one.
    pub fn load(&self, account: &str) -> Option<Picture> {
        let path = self.path(account);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read the cached picture; starting without it");
                return None;
            }
        };
        match serde_json::from_slice::<File>(&bytes) {
            Ok(file) if file.version == VERSION && file.account == account => Some(file.picture),
            Ok(file) => {
                tracing::warn!(path = %path.display(), version = file.version, "cached picture is outdated or not this account's; discarding it");
                discard(&path);
                None
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cached picture is corrupt; discarding it");
                discard(&path);
                None
            }
        }
    }
}

fn discard(path: &Path) {
    if let Err(error) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), %error, "cannot remove the discarded cache file");
    }
}
