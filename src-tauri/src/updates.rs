//! The app keeps itself up to date: tauri-plugin-updater reads the release manifest, downloads the
//! package and checks its minisign signature against the public key the app was built with
//! (`tauri.conf.json`, `plugins.updater`). At start and then daily, unless the manager turned
//! automatic checks off. A verified package waits in memory until the manager restarts into it.
//!
//! What the manager sees is the desk's (`regsync_desktop::updates`): "Version X is ready — restart
//! to update", or a plain line when a package or manifest does not check out. An update server
//! that cannot be reached is silent but for the log.
//!
//! `REGSYNC_UPDATE_ENDPOINT` points the app at another update server (IT's own mirror; HTTPS in
//! release builds). In debug builds only, `REGSYNC_UPDATE_PUBKEY` replaces the public key, so the
//! tests can sign their own releases; a release build trusts only the key it was built with.

use std::sync::Arc;
use std::time::Duration;

use regsync_desktop::desk::Desk;
use regsync_desktop::updates::{Refusal, UpdateNotice};
use regsync_desktop::words::{Problem, ProblemCode};
use tauri::{AppHandle, Manager, State};

use crate::shell::Answer;
use tauri_plugin_updater::{Update, Updater, UpdaterExt};

/// How often a running app checks again.
const CHECK_EVERY: Duration = Duration::from_secs(24 * 3600);
/// How long a check or a download may take.
const TIMEOUT: Duration = Duration::from_secs(120);

/// A verified update, waiting for the manager to restart into it.
#[derive(Default)]
pub struct Pending(std::sync::Mutex<Option<(Update, Vec<u8>)>>);

impl Pending {
    fn put(&self, update: Update, bytes: Vec<u8>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((update, bytes));
    }

    pub fn take(&self) -> Option<(Update, Vec<u8>)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Checks now and then daily, for as long as the app runs.
pub fn keep_up_to_date(app: AppHandle, desk: Arc<Desk>) {
    tauri::async_runtime::spawn(async move {
        loop {
            if desk.automatic_updates() {
                check(&app, &desk).await;
            } else {
                tracing::info!("automatic update checks are off");
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
    });
}

/// One check: an update found is downloaded and verified, then announced.
pub async fn check(app: &AppHandle, desk: &Desk) {
    let updater = match updater(app) {
        Ok(updater) => updater,
        Err(error) => {
            tracing::warn!(%error, "cannot check for updates");
            return;
        }
    };
    let update = match updater.check().await {
        Ok(Some(update)) => update,
        Ok(None) => {
            tracing::info!("no update: this is the latest version");
            return;
        }
        Err(error) => return report(desk, None, &error).await,
    };
    let version = update.version.clone();
    tracing::info!(%version, "an update was found; downloading it");
    match update.download(|_, _| {}, || {}).await {
        Ok(bytes) => {
            tracing::info!(%version, bytes = bytes.len(), "update downloaded and its signature verified");
            app.state::<Pending>().put(update, bytes);
            desk.set_update(UpdateNotice::ready(&version)).await;
        }
        Err(error) => report(desk, Some(&version), &error).await,
    }
}

fn updater(app: &AppHandle) -> tauri_plugin_updater::Result<Updater> {
    let mut builder = app.updater_builder().timeout(TIMEOUT);
    if let Ok(endpoint) = std::env::var("REGSYNC_UPDATE_ENDPOINT") {
        builder = builder.endpoints(vec![endpoint.parse()?])?;
    }
    #[cfg(debug_assertions)]
    if let Ok(pubkey) = std::env::var("REGSYNC_UPDATE_PUBKEY") {
        builder = builder.pubkey(pubkey);
    }
    builder.build()
}

/// A refusal is shown to the manager; a server that did not answer only goes to the log.
async fn report(desk: &Desk, version: Option<&str>, error: &tauri_plugin_updater::Error) {
    match refusal(error) {
        Some(why) => {
            tracing::warn!(%error, version, "an update was refused");
            desk.set_update(UpdateNotice::refused(version, why)).await;
        }
        None => {
            tracing::warn!(%error, "cannot check for updates: the update server did not answer")
        }
    }
}

fn refusal(error: &tauri_plugin_updater::Error) -> Option<Refusal> {
    use tauri_plugin_updater::Error;
    match error {
        Error::Minisign(_)
        | Error::Base64(_)
        | Error::SignatureUtf8(_)
        | Error::InvalidUpdaterFormat => Some(Refusal::Signature),
        Error::SignedVersionMismatch { .. } | Error::MissingSignedVersion => {
            Some(Refusal::OtherVersion)
        }
        Error::Serialization(_)
        | Error::Semver(_)
        | Error::TargetNotFound(_)
        | Error::TargetsNotFound(_) => Some(Refusal::Manifest),
        Error::Reqwest(error) if error.is_decode() => Some(Refusal::Manifest),
        _ => None,
    }
}

/// What there is to say about the app's own updates (the page asks when it loads).
#[tauri::command]
pub async fn update_state(desk: State<'_, Arc<Desk>>) -> Answer<UpdateNotice> {
    Ok(desk.update())
}

/// "Restart now".
#[tauri::command]
pub async fn restart_to_update(app: AppHandle) -> Answer<()> {
    restart_into(&app)
        .await
        .map_err(|message| Problem::new(ProblemCode::Settings, message).into())
}

/// Installs the verified update (the package manager on Linux, the installer on Windows) and
/// starts the new version.
pub async fn restart_into(app: &AppHandle) -> Result<(), String> {
    let Some((update, bytes)) = app.state::<Pending>().take() else {
        return Err("There is no update waiting.".into());
    };
    let version = update.version.clone();
    tracing::info!(%version, "installing the update");
    let installed = tauri::async_runtime::spawn_blocking(move || update.install(bytes))
        .await
        .map_err(|e| e.to_string())?;
    if let Err(error) = installed {
        tracing::error!(%error, %version, "the update could not be installed");
        return Err(format!("Couldn't install version {version}: {error}"));
    }
    tracing::info!(%version, "update installed; restarting");
    app.restart()
}
