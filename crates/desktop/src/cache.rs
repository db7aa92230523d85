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
        match read(&bytes, account) {
            Ok(picture) => Some(picture),
            Err(why) => {
                tracing::warn!(path = %path.display(), %why, "discarding the cached picture");
                discard(&path);
                None
            }
        }
    }
}

/// Why a cache file's bytes are not a usable picture.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("it is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("it is of version {0}, not {VERSION}")]
    Outdated(u32),
    #[error("it is another account's")]
    Foreign,
}

/// The picture in a cache file's bytes, for `account`. Whatever the bytes (the file comes from
/// disk, where anything can happen to it), this answers and never panics: fuzzed in `fuzz/`.
pub fn read(bytes: &[u8], account: &str) -> Result<Picture, Unusable> {
    let file: File = serde_json::from_slice(bytes)?;
    if file.version != VERSION {
        return Err(Unusable::Outdated(file.version));
    }
    if file.account != account {
        return Err(Unusable::Foreign);
    }
    Ok(file.picture)
}

fn discard(path: &Path) {
    if let Err(error) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), %error, "cannot remove the discarded cache file");
    }
}
