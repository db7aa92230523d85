//! The app's own updates against a local update server, with a minisign key the test makes: a
//! newer version is found, downloaded, its signature verified, offered on the page and in the
//! tray, and installed when the manager restarts; a tampered package or manifest is refused with a
//! plain message (an older release announced as newer too); an unreachable server is silent but for the log; no update shows nothing; and
//! the setting turns checks off. The real app window (WebDriver under Xvfb), the real updater
//! plugin, real HTTP.
//!
//! The app trusts the test's key through `REGSYNC_UPDATE_PUBKEY`, which only debug builds read.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use regsync_testkit::{
    Desktop, FAST, PASSWORD, PrivateKeyring, Scene, WAIT, Window, eventually, free_port, home_env,
};

/// What the update server answers for the manifest.
#[derive(Clone)]
enum Manifest {
    Json(serde_json::Value),
    Text(&'static str),
}

struct Served {
    manifest: Mutex<Manifest>,
    package: Mutex<Vec<u8>>,
    manifest_requests: AtomicUsize,
}

/// A release server on loopback, and the key its releases are signed with.
struct UpdateServer {
    url: String,
    served: Arc<Served>,
    keys: minisign::KeyPair,
    _task: tokio::task::JoinHandle<()>,
}

impl UpdateServer {
    async fn start() -> UpdateServer {
        let served = Arc::new(Served {
            manifest: Mutex::new(Manifest::Text("{}")),
            package: Mutex::new(Vec::new()),
            manifest_requests: AtomicUsize::new(0),
        });
        let router = axum::Router::new()
            .route("/desktop/{target}/{arch}/{version}", get(manifest))
            .route("/package", get(package))
            .with_state(served.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        UpdateServer {
            url,
            served,
            keys: minisign::KeyPair::generate_unencrypted_keypair().unwrap(),
            _task: task,
        }
    }

    /// The endpoint as the app is told it (the updater fills in the placeholders).
    fn endpoint(&self) -> String {
        format!(
            "{}/desktop/{{{{target}}}}/{{{{arch}}}}/{{{{current_version}}}}",
            self.url
        )
    }

    /// The public key as Tauri's configuration holds it: the key file, in base64.
    fn pubkey(&self) -> String {
        let file = self.keys.pk.to_box().unwrap().to_string();
        base64::engine::general_purpose::STANDARD.encode(file)
    }

    /// The signature of `bytes` as a manifest carries it: the `.sig` file, in base64, bound to
    /// `version` in its trusted comment as `cargo tauri signer sign --app-version` binds it.
    fn sign(&self, bytes: &[u8], version: &str) -> String {
        let trusted = format!("timestamp:1795000000\tfile:register-sync\tversion:{version}");
        let signature = minisign::sign(
            Some(&self.keys.pk),
            &self.keys.sk,
            bytes,
            Some(&trusted),
            None,
        )
        .unwrap();
        base64::engine::general_purpose::STANDARD.encode(signature.to_string())
    }

    /// Releases `version` as `package`, with `signature` in the manifest.
    fn release(&self, version: &str, package: Vec<u8>, signature: String) {
        *self.served.package.lock().unwrap() = package;
        let platform = serde_json::json!({
            "signature": signature,
            "url": format!("{}/package", self.url),
        });
        self.answer(Manifest::Json(serde_json::json!({
            "version": version,
            "notes": "Faster syncs",
            "pub_date": "2026-11-28T12:00:00Z",
            "platforms": { "linux-x86_64": platform },
        })));
    }

    fn answer(&self, manifest: Manifest) {
        *self.served.manifest.lock().unwrap() = manifest;
    }

    fn manifest_requests(&self) -> usize {
        self.served.manifest_requests.load(Ordering::Relaxed)
    }
}

async fn manifest(State(served): State<Arc<Served>>) -> Response {
    served.manifest_requests.fetch_add(1, Ordering::Relaxed);
    match served.manifest.lock().unwrap().clone() {
        Manifest::Json(json) => axum::Json(json).into_response(),
        Manifest::Text(text) => {
            (StatusCode::OK, [("content-type", "application/json")], text).into_response()
        }
    }
}

async fn package(State(served): State<Arc<Served>>) -> Vec<u8> {
    served.package.lock().unwrap().clone()
}

/// The app's debug binary, copied into `dir` without its debug information (a tenth of the
/// size, so a release of it downloads and verifies in moments): an update installed by a test
/// replaces the copy, never the build output.
fn app_copy(dir: &Path) -> PathBuf {
    let built = regsync_testkit::binary_of("regsync-app", "register-sync");
    let copy = dir.join("register-sync");
    let stripped = std::process::Command::new("strip")
        .arg("-o")
        .arg(&copy)
        .arg(built)
        .status()
        .unwrap();
    assert!(stripped.success(), "strip (binutils) made no copy");
    copy
}

struct Office {
    desktop: Desktop,
    keyring: PrivateKeyring,
    _home: tempfile::TempDir,
}

/// A display, a private bus and home, and the app told of `endpoint` and trusting `pubkey`.
async fn office(endpoint: &str, pubkey: &str) -> Office {
    let keyring = PrivateKeyring::start();
    let home = tempfile::tempdir().unwrap();
    let mut env = home_env(&keyring, home.path());
    env.extend([
        ("REGSYNC_NOTIFICATIONS", "0".into()),
        ("REGSYNC_UPDATE_ENDPOINT", endpoint.to_owned()),
        ("REGSYNC_UPDATE_PUBKEY", pubkey.to_owned()),
    ]);
    let desktop = Desktop::start(&env).await;
    Office {
        desktop,
        keyring,
        _home: home,
    }
}

impl Office {
    async fn wait_for_log(&self, line: &str) {
        eventually(WAIT, line, || async {
            self.desktop.log().contains(line).then_some(())
        })
        .await;
    }

    async fn quit(&self, window: Window) {
        window.close().await;
        eventually(WAIT, "the app to quit", || async {
            (!self.keyring.owns("com.registersync.desktop.SingleInstance")).then_some(())
        })
        .await;
    }
}

/// Stops what still runs from `binary` (the app restarted into an update, outside WebDriver):
/// only processes of this test's own copy.
fn stop_processes_of(binary: &Path) {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let exe = std::fs::read_link(entry.path().join("exe")).unwrap_or_default();
        if exe == binary
            && let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../artifacts/screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_version_is_verified_offered_and_installed_on_restart() {
    let server = UpdateServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_copy(dir.path());
    // The "new version": the same program with bytes of its own at the end, so it still runs
    // and the test can tell it was installed.
    let mut package = std::fs::read(&app).unwrap();
    package.extend_from_slice(b"\nregister-sync 9.9.0 for the update test\n");
    server.release("9.9.0", package.clone(), server.sign(&package, "9.9.0"));

    let office = office(&server.endpoint(), &server.pubkey()).await;
    let window = office.desktop.launch(&app).await;
    window
        .wait_for_text("Version 9.9.0 is ready — restart to update")
        .await;
    office
        .wait_for_log("update downloaded and its signature verified")
        .await;
    let tray = window.invoke("tray_state").await;
    assert_eq!(
        tray["update_item"], "Version 9.9.0 is ready — restart to update",
        "{tray}"
    );
    window
        .screenshot(&screenshots().join("update-ready.png"))
        .await;

    // Restart: the package replaces the program, and the new one starts.
    window.click("#restart-to-update").await;
    eventually(WAIT, "the update to be installed", || async {
        (std::fs::read(&app).ok()? == package).then_some(())
    })
    .await;
    office.wait_for_log("update installed; restarting").await;
    eventually(WAIT, "the new version to start", || async {
        (office
            .desktop
            .log()
            .matches("Register Sync starting")
            .count()
            >= 2)
            .then_some(())
    })
    .await;
    stop_processes_of(&app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_package_or_manifest_is_refused_in_plain_words() {
    let server = UpdateServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_copy(dir.path());
    // Signed, then changed on the way.
    let package = std::fs::read(&app).unwrap();
    let signature = server.sign(&package, "9.9.0");
    let mut tampered = package.clone();
    tampered.extend_from_slice(b"something else");
    server.release("9.9.0", tampered, signature);

    let office = office(&server.endpoint(), &server.pubkey()).await;
    let window = office.desktop.launch(&app).await;
    let text = window
        .wait_for_text("The update to version 9.9.0 was refused: its signature does not match")
        .await;
    assert!(text.contains("Nothing was installed."), "{text}");
    assert!(!text.contains("restart to update"), "{text}");
    office.wait_for_log("an update was refused").await;
    window
        .screenshot(&screenshots().join("update-refused.png"))
        .await;
    let unchanged = std::fs::read(&app).unwrap();
    assert!(unchanged == package, "the program was left alone");

    // A signature that is not one, then an answer that is not a manifest: refused too. Turning
    // automatic checks off and on again checks at once.
    let _scene = sign_in(&window).await;
    server.release("9.9.1", package.clone(), "bm90IGEgc2lnbmF0dXJl".into());
    recheck(&window).await;
    window
        .wait_for_text("The update to version 9.9.1 was refused: its signature does not match")
        .await;
    // An older release, genuinely signed, announced as a newer one: refused.
    server.release("9.9.3", package.clone(), server.sign(&package, "0.0.9"));
    recheck(&window).await;
    window
        .wait_for_text(
            "The update to version 9.9.3 was refused: its package was signed for another version",
        )
        .await;
    server.answer(Manifest::Text(r#"{"version": "9.9.2", "platforms": 7}"#));
    recheck(&window).await;
    window
        .wait_for_text("An update was refused: the update server's answer could not be read")
        .await;
    office.quit(window).await;
}

/// Signs in to a real Back Office (the settings are behind sign-in); keep the scene alive.
async fn sign_in(window: &Window) -> Scene {
    let scene = Scene::start(FAST).await;
    window.type_into("#url", &scene.bo.url).await;
    window.type_into("#email", &scene.venue.manager).await;
    window.type_into("#password", PASSWORD).await;
    window.click("#sign-in").await;
    window.wait_for_text("Kitchen").await;
    scene
}

/// Settings → automatic checks off, then on: the app checks again now.
async fn recheck(window: &Window) {
    window.click("#settings").await;
    window.click("#setting-automatic-updates").await;
    window.click("#setting-automatic-updates").await;
    window.click("#settings").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_update_and_an_unreachable_server_show_nothing_and_checks_can_be_turned_off() {
    // Nothing listens on this port: the update server is down.
    let nowhere = format!(
        "http://127.0.0.1:{}/desktop/{{{{target}}}}/{{{{arch}}}}/{{{{current_version}}}}",
        free_port()
    );
    let server = UpdateServer::start().await;
    let office = office(&nowhere, &server.pubkey()).await;
    let app = regsync_testkit::binary_of("regsync-app", "register-sync");
    let window = office.desktop.launch(&app).await;
    window.find("#sign-in").await;
    office
        .wait_for_log("cannot check for updates: the update server did not answer")
        .await;
    assert!(
        !window.text().await.contains("update"),
        "nothing on the page"
    );
    office.quit(window).await;
    drop(office);

    // The server answers, with this very version: nothing to show.
    server.release("0.1.0", vec![1, 2, 3], server.sign(&[1, 2, 3], "0.1.0"));
    let office = office_for(&server).await;
    let window = office.desktop.launch(&app).await;
    office
        .wait_for_log("no update: this is the latest version")
        .await;
    assert_eq!(server.manifest_requests(), 1);
    assert!(
        !window.text().await.contains("update"),
        "nothing on the page"
    );
    assert!(window.invoke("tray_state").await["update_item"].is_null());

    // Turned off, the next start asks nothing.
    let _scene = sign_in(&window).await;
    window.click("#settings").await;
    window.click("#setting-automatic-updates").await;
    eventually(WAIT, "the setting to be saved off", || async {
        let checked = window
            .script("return document.getElementById('setting-automatic-updates').checked")
            .await;
        (checked == serde_json::json!(false)).then_some(())
    })
    .await;
    office.quit(window).await;
    let window = office.desktop.launch(&app).await;
    office.wait_for_log("automatic update checks are off").await;
    assert_eq!(
        server.manifest_requests(),
        1,
        "no check after it was turned off"
    );
    office.quit(window).await;
}

async fn office_for(server: &UpdateServer) -> Office {
    office(&server.endpoint(), &server.pubkey()).await
}
