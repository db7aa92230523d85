//! The packages IT installs, installed for real (as root, as CI runs) or, for a person without
//! root, unpacked into a scratch folder:
//!
//! - the desktop app's `.deb`: its desktop entry passes `desktop-file-validate`, the *installed*
//!   binary starts under Xvfb and shows the sign-in page, and the start-at-login entry it writes
//!   points at the installed path; its `.rpm` holds the same files;
//! - Back Office's `.deb`: its own system user, state and settings folders with the right owners,
//!   a systemd unit `systemd-analyze verify` accepts, the service's command answering health as
//!   that user; removing keeps the data, purging keeps nothing.
//!
//! `scripts/package` builds the packages (scripts/test does, before the tests); a test builds
//! what is missing. Installing is serialized across test processes by a lock file, since two runs
//! on one machine share its package database.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use regsync_testkit::{Desktop, FAST, PASSWORD, PrivateKeyring, Scene, WAIT, eventually, home_env};

const APP_PACKAGE: &str = "register-sync";
const BACKOFFICE_PACKAGE: &str = "regsync-backoffice";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where cargo puts build output for these tests (the packages are under it).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // <target>/<profile>/deps/<test>
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned()
}

fn running_as_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}

/// Runs `command`; panics with its output unless it succeeds; answers its standard output.
fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert_ok(command, &output);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_ok(command: &Command, output: &Output) {
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The one package file matching `dir/*suffix`, built with `scripts/package what` if missing.
fn package(dir: &Path, suffix: &str, what: &str) -> PathBuf {
    let find = || {
        std::fs::read_dir(dir).ok().and_then(|entries| {
            entries
                .map(|entry| entry.unwrap().path())
                .find(|path| path.to_string_lossy().ends_with(suffix))
        })
    };
    if let Some(found) = find() {
        return found;
    }
    run(Command::new(root().join("scripts/package"))
        .arg(what)
        .env("CARGO_TARGET_DIR", target_dir()));
    find().unwrap_or_else(|| {
        panic!(
            "scripts/package {what} made no {suffix} in {}",
            dir.display()
        )
    })
}

/// Holds an exclusive lock on the machine's package installs while alive.
struct InstallLock(#[allow(dead_code)] std::fs::File);

fn install_lock() -> InstallLock {
    let file = std::fs::File::create("/tmp/regsync-package-tests.lock").unwrap();
    file.lock().unwrap();
    InstallLock(file)
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

/// Purges `package` (if installed) now and when dropped, so a failed test leaves nothing.
struct Purge(&'static str);

impl Purge {
    fn now(&self) {
        let _ = Command::new("dpkg")
            .args(["--purge", self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Purge {
    fn drop(&mut self) {
        self.now();
    }
}

// ---- the desktop app ----------------------------------------------------------------------------

fn app_deb() -> PathBuf {
    package(&target_dir().join("dist/bundle/deb"), "_amd64.deb", "app")
}

/// The installed app's files: under `/` when installed, or under a scratch folder when unpacked.
struct AppFiles {
    prefix: PathBuf,
}

impl AppFiles {
    fn binary(&self) -> PathBuf {
        self.prefix.join("usr/bin/register-sync")
    }
    fn desktop_entry(&self) -> PathBuf {
        self.prefix
            .join("usr/share/applications/Register Sync.desktop")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_package_installs_starts_from_its_installed_path_and_removes() {
    let deb = app_deb();
    let fields = run(Command::new("dpkg-deb").args(["-f"]).arg(&deb));
    assert!(fields.contains("Package: register-sync"), "{fields}");
    for needed in [
        "libwebkit2gtk-4.1-0",
        "libgtk-3-0",
        "libayatana-appindicator3-1",
        "libdbus-1-3",
    ] {
        assert!(fields.contains(needed), "Depends lacks {needed}:\n{fields}");
    }
    assert!(fields.contains("Section: misc"), "{fields}");

    let scratch = tempfile::tempdir().unwrap();
    let as_root = running_as_root();
    let _lock = as_root.then(install_lock);
    let purge = Purge(APP_PACKAGE);
    let files = if as_root {
        purge.now();
        run(Command::new("dpkg").arg("--install").arg(&deb));
        assert!(installed(APP_PACKAGE));
        AppFiles { prefix: "/".into() }
    } else {
        run(Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(scratch.path()));
        AppFiles {
            prefix: scratch.path().to_owned(),
        }
    };

    // The desktop entry: valid, in the Business category, starting the installed binary.
    let entry = std::fs::read_to_string(files.desktop_entry()).unwrap();
    run(Command::new("desktop-file-validate").arg(files.desktop_entry()));
    assert!(entry.contains("Categories=Office;"), "{entry}");
    assert!(entry.contains("Exec=register-sync"), "{entry}");
    assert!(entry.contains("Icon=register-sync"), "{entry}");
    for size in ["32x32", "128x128"] {
        let icon = files.prefix.join(format!(
            "usr/share/icons/hicolor/{size}/apps/register-sync.png"
        ));
        assert!(icon.exists(), "{} missing", icon.display());
    }

    // The installed binary starts and shows the sign-in page.
    let keyring = PrivateKeyring::start();
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join(".config");
    let mut env = home_env(&keyring, home.path());
    env.push(("REGSYNC_NOTIFICATIONS", "0".into()));
    let desktop = Desktop::start(&env).await;
    let window = desktop.launch(&files.binary()).await;
    window.find("#sign-in").await;
    window.wait_for_text("Stay signed in on this PC").await;

    // It signs in to a real Back Office and shows the registers.
    let Scene { bo, venue, .. } = Scene::start(FAST).await;
    window.type_into("#url", &bo.url).await;
    window.type_into("#email", &venue.manager).await;
    window.type_into("#password", PASSWORD).await;
    window.click("#sign-in").await;
    window.wait_for_text("Kitchen").await;

    // "Start at login" writes an entry that starts this installed binary, in the tray.
    window.click("#settings").await;
    window.click("#setting-start-at-login").await;
    let autostart = config.join("autostart/Register Sync.desktop");
    let login_entry = eventually(WAIT, "the start-at-login entry", || async {
        // Once it is whole: the file exists a moment before its lines are in it.
        std::fs::read_to_string(&autostart)
            .ok()
            .filter(|text| text.contains("Exec="))
    })
    .await;
    let exec = format!("Exec={} --hidden", files.binary().display());
    assert!(login_entry.contains(&exec), "{login_entry}");
    window.close().await;

    if as_root {
        run(Command::new("dpkg").args(["--remove", APP_PACKAGE]));
        assert!(!files.binary().exists(), "the binary is gone");
        assert!(!files.desktop_entry().exists(), "the menu entry is gone");
    }
}

#[test]
fn the_rpm_holds_the_same_app() {
    let rpm = package(&target_dir().join("dist/bundle/rpm"), ".x86_64.rpm", "app");
    let info = run(Command::new("rpm").args(["-qip"]).arg(&rpm));
    assert!(info.contains("Name        : register-sync"), "{info}");
    let files = run(Command::new("rpm").args(["-qlp"]).arg(&rpm));
    for wanted in [
        "/usr/bin/register-sync",
        "/usr/share/applications/Register Sync.desktop",
        "/usr/share/icons/hicolor/128x128/apps/register-sync.png",
    ] {
        assert!(
            files.lines().any(|l| l == wanted),
            "{wanted} not in:\n{files}"
        );
    }
    let requires = run(Command::new("rpm").args(["-qpR"]).arg(&rpm));
    assert!(requires.contains("libwebkit2gtk-4.1.so.0"), "{requires}");
}

// ---- Back Office --------------------------------------------------------------------------------

fn backoffice_deb() -> PathBuf {
    package(&target_dir().join("debian"), "_amd64.deb", "backoffice")
}

const UNIT: &str = "/usr/lib/systemd/system/regsync-backoffice.service";

/// The `KEY=value` lines of an environment file, comments left out.
fn environment_file(path: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// Starts `ExecStart` as the unit would (its user, folder and environment; on free ports), waits
/// for `/v1/health` to say ok, stops it.
async fn serve_as_the_service() {
    // setpriv execs the program (runuser would stay its parent, and survive a kill).
    let mut command = tokio::process::Command::new("setpriv");
    command
        .args(["--reuid=regsync", "--regid=regsync", "--init-groups", "--"])
        .args(["/usr/bin/regsync-backoffice", "serve"])
        .current_dir("/var/lib/regsync")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("REGSYNC_DATABASE", "/var/lib/regsync/regsync.db")
        .envs(environment_file("/etc/regsync/backoffice.env"))
        .env("REGSYNC_LISTEN", "127.0.0.1:0")
        .env("REGSYNC_METRICS_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("Back Office listening on ") {
                return url.to_owned();
            }
        }
        panic!("the service's command exited before listening");
    })
    .await
    .unwrap();
    let health: serde_json::Value = reqwest::get(format!("{url}/v1/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    child.kill().await.unwrap();
}

fn owner_and_mode(path: &str) -> String {
    run(Command::new("stat").args(["-c", "%U:%G %a", path]))
        .trim()
        .to_owned()
}

#[tokio::test]
async fn the_back_office_package_installs_a_hardened_service_and_removes_cleanly() {
    let deb = backoffice_deb();
    if !running_as_root() {
        // Installing a system service needs root; without it, check what the package holds.
        let scratch = tempfile::tempdir().unwrap();
        run(Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(scratch.path()));
        let unit = scratch.path().join(UNIT.trim_start_matches('/'));
        let text = std::fs::read_to_string(unit).unwrap();
        assert!(text.contains("ProtectSystem=strict"), "{text}");
        eprintln!("not root: unpacked the Back Office package only; CI installs it");
        return;
    }
    let _lock = install_lock();
    let purge = Purge(BACKOFFICE_PACKAGE);
    purge.now();

    run(Command::new("dpkg").arg("--install").arg(&deb));
    assert!(installed(BACKOFFICE_PACKAGE));
    let user = run(Command::new("getent").args(["passwd", "regsync"]));
    let uid: u32 = user.split(':').nth(2).unwrap().parse().unwrap();
    assert!(uid < 1000, "a system user: {user}");
    assert!(
        user.trim_end()
            .ends_with(":/var/lib/regsync:/usr/sbin/nologin"),
        "{user}"
    );
    assert_eq!(owner_and_mode("/var/lib/regsync"), "regsync:regsync 750");
    assert_eq!(
        owner_and_mode("/etc/regsync/backoffice.env"),
        "root:regsync 640"
    );

    // The unit: hardened, and systemd's own checker has nothing to say.
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for line in [
        "User=regsync",
        "StateDirectory=regsync",
        "EnvironmentFile=/etc/regsync/backoffice.env",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "{line} missing from the unit"
        );
    }
    let mut verify = Command::new("systemd-analyze");
    verify.args(["verify", UNIT]);
    let verified = verify.output().unwrap();
    assert_ok(&verify, &verified);
    let complaints = String::from_utf8_lossy(&verified.stderr);
    assert!(
        !complaints.contains("regsync-backoffice"),
        "systemd-analyze verify: {complaints}"
    );
    let enabled = "/etc/systemd/system/multi-user.target.wants/regsync-backoffice.service";
    assert!(Path::new(enabled).exists(), "enabled at boot");

    // What the service runs works as its user, in its folder, with its settings.
    serve_as_the_service().await;
    run(Command::new("runuser").args([
        "-u",
        "regsync",
        "--",
        "/usr/bin/regsync-backoffice",
        "--database",
        "/var/lib/regsync/regsync.db",
        "company",
        "create",
        "Harbour Hospitality",
    ]));
    assert_eq!(
        owner_and_mode("/var/lib/regsync/regsync.db")
            .split(' ')
            .next(),
        Some("regsync:regsync")
    );

    // Remove: the program goes, the data and the settings stay.
    run(Command::new("dpkg").args(["--remove", BACKOFFICE_PACKAGE]));
    assert!(!Path::new("/usr/bin/regsync-backoffice").exists());
    assert!(!Path::new(UNIT).exists());
    assert!(
        Path::new("/var/lib/regsync/regsync.db").exists(),
        "data kept"
    );
    assert!(
        Path::new("/etc/regsync/backoffice.env").exists(),
        "settings kept"
    );

    // Installed again, it finds its data.
    run(Command::new("dpkg").arg("--install").arg(&deb));
    let listed = run(Command::new("runuser").args([
        "-u",
        "regsync",
        "--",
        "/usr/bin/regsync-backoffice",
        "--database",
        "/var/lib/regsync/regsync.db",
        "list",
    ]));
    assert!(listed.contains("Harbour Hospitality"), "{listed}");

    // Purge: nothing of it is left.
    run(Command::new("dpkg").args(["--purge", BACKOFFICE_PACKAGE]));
    for gone in ["/var/lib/regsync", "/etc/regsync", UNIT, enabled] {
        assert!(!Path::new(gone).exists(), "{gone} left after purge");
    }
    let user = Command::new("getent")
        .args(["passwd", "regsync"])
        .output()
        .unwrap();
    assert!(!user.status.success(), "the regsync user is gone");
    assert!(!installed(BACKOFFICE_PACKAGE));
}
