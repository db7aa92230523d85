//! A real PostgreSQL server for a test: Debian's `postgresql` binaries, a cluster made with
//! `initdb` in a temporary folder, started with `pg_ctl` on a free loopback port (as the
//! `postgres` user when the test runs as root, since PostgreSQL refuses root), stopped and
//! removed when dropped. Nothing is downloaded; `fsync` is off, as nothing here must survive a
//! power cut. Each test takes a fresh database from it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// The server's options (`pg_ctl -o`), to start it again as it was.
    options: String,
}

static DATABASES: AtomicU32 = AtomicU32::new(0);

impl Postgres {
    /// Makes and starts a cluster; panics with what is missing when PostgreSQL is not installed.
    pub fn start() -> Postgres {
        let bin = binaries();
        let root = running_as_root();
        // The server's user must reach the folder: under `/tmp` when that user is `postgres`.
        let parent = if root {
            "/tmp".into()
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("regsync-pg-")
            .tempdir_in(parent)
            .unwrap();
        if root {
            // The server runs as `postgres`: it must own its folder.
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()));
        }
        let data = dir.path().join("data");
        let initdb = bin.join("initdb");
        run(as_server_user(&initdb).arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]));
        // A port free now may be taken before the server binds it: try a few.
        for _ in 0..5 {
            let port = crate::free_port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                dir.path().display()
            );
            if pg_ctl_start(&bin, dir.path(), &options).status.success() {
                return Postgres {
                    dir,
                    bin,
                    port,
                    options,
                };
            }
        }
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        panic!("PostgreSQL did not start:\n{log}");
    }

    /// Stops the server at once, as a crash or a network cut would look to its clients.
    pub fn stop(&self) {
        run(as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"]));
    }

    /// Starts the server again after [`Postgres::stop`], on the same port with its data.
    pub fn restart(&self) {
        let started = pg_ctl_start(&self.bin, self.dir.path(), &self.options);
        assert!(
            started.status.success(),
            "PostgreSQL did not start again: {}",
            String::from_utf8_lossy(&started.stderr)
        );
    }

    /// The URL of a new, empty database on this server.
    pub async fn fresh_database(&self) -> String {
        let n = DATABASES.fetch_add(1, Ordering::Relaxed);
        let name = format!("regsync_{}_{n}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        self.url(&name)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The cluster's data folder: every byte PostgreSQL keeps.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Starts the cluster in `dir/data` with `options`, logging to `dir/server.log`.
fn pg_ctl_start(bin: &Path, dir: &Path, options: &str) -> Output {
    as_server_user(&bin.join("pg_ctl"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-o", options, "-l"])
        .arg(dir.join("server.log"))
        .args(["-w", "-t", "30", "start"])
        .output()
        .unwrap()
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// `REGSYNC_PG_BIN`, or the newest `/usr/lib/postgresql/*/bin` (Debian and Ubuntu keep the
/// server binaries there, off `PATH`).
fn binaries() -> PathBuf {
    if let Some(dir) = std::env::var_os("REGSYNC_PG_BIN") {
        return dir.into();
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "PostgreSQL's server is not installed (sudo apt-get install postgresql), \
             or set REGSYNC_PG_BIN to the folder of its initdb and pg_ctl"
        )
    })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn as_server_user(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) -> Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
