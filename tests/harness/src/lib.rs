//! Test harness shared by the workspace's end-to-end tests: the real `regsync-backoffice` binary
//! on `127.0.0.1:0` with a fresh SQLite file, driven over HTTP; real register agents over real
//! sockets; hand-driven register connections and event streams for what well-behaved peers never
//! do. Venues are seeded in-process through `admin` on the same file (WAL lets both use it at
//! once), so each test sets up only what it needs.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_debug_implementations
)]

mod backoffice;
mod chaos;
mod cluster;
mod desktop;
mod keyring;
pub mod postgres;
mod raw;
mod sync;
pub mod tls;
mod tray;
mod venue;

pub use backoffice::{BackOffice, FAST, assert_error, on_postgres};
pub use chaos::{chaos, chaos_args};
pub use cluster::{Balancer, Cluster};
pub use desktop::{Desktop, Window, home_env};
pub use keyring::PrivateKeyring;
pub use postgres::Postgres;
pub use raw::{EventStream, RawRegister};
pub use regsync_register::Agent;
pub use sync::{Banners, state_of, target};
pub use tray::{Notifications, TrayEntry, TrayHost, TrayItem, rgba};
pub use venue::{PASSWORD, Scene, Venue};

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `check` until it returns `Some`, failing after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A binary of the workspace (a package and binary of the same name), built once per test
/// process so it is never stale, whichever package's tests are running.
pub fn workspace_binary(name: &str) -> PathBuf {
    binary_of(name, name)
}

/// The binary `name` of the workspace's `package`, built as [`workspace_binary`] builds.
pub fn binary_of(package: &str, name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    // Test executables live in `<target>/<profile>/deps/`; binaries one level up.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mut built = BUILT.lock().unwrap();
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "--quiet", "-p", package, "--bin", name]);
        // Cargo sets these for the test process; some build scripts (ring's) rerun when they
        // change, which would rebuild half the tree here and again on the next `cargo test`.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let set_for_tests = [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_CFG_",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
            ];
            if set_for_tests.iter().any(|p| key.starts_with(p)) {
                build.env_remove(key.as_ref());
            }
        }
        if dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        if let Some(target) = dir.parent() {
            build.env("CARGO_TARGET_DIR", target);
        }
        let status = build.status().unwrap();
        assert!(status.success(), "building {name}");
        built.push(name.to_owned());
    }
    assert!(path.exists(), "{} missing", path.display());
    path
}

/// A loopback port free right now (another process may take it before it is used).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
