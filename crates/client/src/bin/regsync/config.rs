//! The config file (Back Office's address, the email, the choices made at sign-in; never a
//! secret) and the keychain calls beside it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use regsync_client::{Endpoint, Error, Trust};
use serde::{Deserialize, Serialize};

use crate::Failure;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Config {
    pub(crate) url: String,
    pub(crate) email: String,
    /// The user allowed `http://` to another computer at sign-in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) allow_http: bool,
    /// An extra certificate authority to trust, as given at sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca_cert: Option<PathBuf>,
}

impl Config {
    pub(crate) fn endpoint(&self) -> Result<Endpoint, Failure> {
        endpoint(&self.url, self.allow_http, self.ca_cert.as_deref())
    }
}

pub(crate) fn endpoint(
    url: &str,
    allow_http: bool,
    ca_cert: Option<&Path>,
) -> Result<Endpoint, Failure> {
    let endpoint = Endpoint::new(url).allow_plain_http(allow_http);
    Ok(match ca_cert {
        Some(path) => endpoint.trust(Trust::default().with_ca_file(path).map_err(Error::from)?),
        None => endpoint,
    })
}

pub(crate) fn config_path(dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None => directories::ProjectDirs::from("com", "Register Sync", "regsync")
            .context("cannot find a config folder for this user")?
            .config_dir()
            .to_owned(),
    };
    Ok(dir.join("config.json"))
}

pub(crate) fn load_config(dir: Option<&Path>) -> anyhow::Result<Option<Config>> {
    let path = config_path(dir)?;
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a regsync config; delete it and sign in again",
                path.display()
            )
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub(crate) fn save_config(dir: Option<&Path>, config: &Config) -> anyhow::Result<()> {
    let path = config_path(dir)?;
    let parent = path.parent().context("config folder")?;
    std::fs::create_dir_all(parent)?;
    let mut file = tempfile::NamedTempFile::new_in(parent)?;
    serde_json::to_writer_pretty(&mut file, config)?;
    file.persist(&path).map_err(|e| e.error)?;
    Ok(())
}

/// Keychain calls block (D-Bus, Keychain Services): keep them off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}
