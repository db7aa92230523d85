//! The real `regsync-backoffice` binary on `127.0.0.1:0` with a fresh database, driven over
//! HTTP; crashed and restarted at will. The database is a SQLite file, or with
//! `REGSYNC_TEST_DATABASE=postgres` a fresh database on a real PostgreSQL server the harness
//! starts, so the same tests run on both.

use crate::{PASSWORD, Postgres, workspace_binary};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use regsync_backoffice::{Db, db};
use regsync_protocol::api::Session;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running Back Office process and the folder holding its database and log.
pub struct BackOffice {
    child: Child,
    pub url: String,
    pub dir: PathBuf,
    /// What `--database` says: the SQLite file, or the PostgreSQL URL.
    pub database: String,
    pub args: Vec<String>,
    /// Where `/metrics` is served (`http://127.0.0.1:PORT/metrics`), unless `args` turned it off.
    pub metrics_url: Option<String>,
    http: reqwest::Client,
    postgres: Option<Arc<Postgres>>,
    _temp: Option<tempfile::TempDir>,
}

/// Whether the tests run Back Office on PostgreSQL (`REGSYNC_TEST_DATABASE=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("REGSYNC_TEST_DATABASE").is_ok_and(|db| db == "postgres")
}

impl BackOffice {
    /// A fresh database in a new temporary folder, with `args` added to `serve`.
    pub async fn start(args: &[&str]) -> BackOffice {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let args = args.iter().map(|a| a.to_string()).collect();
        let mut bo = if on_postgres() {
            let server = Arc::new(Postgres::start());
            let database = server.fresh_database().await;
            let mut bo = Self::start_on(&dir, &database, args).await;
            bo.postgres = Some(server);
            bo
        } else {
            Self::start_in(&dir, args).await
        };
        bo._temp = Some(temp);
        bo
    }

    /// The SQLite file in `dir`.
    pub async fn start_in(dir: &Path, args: Vec<String>) -> BackOffice {
        let database = dir.join("backoffice.db").to_string_lossy().into_owned();
        Self::start_on(dir, &database, args).await
    }

    /// The PostgreSQL server under this Back Office, when it runs on one.
    pub fn postgres(&self) -> Option<&Postgres> {
        self.postgres.as_deref()
    }

    /// Every byte the database keeps on disk: the SQLite file and its log, or PostgreSQL's
    /// data folder.
    pub fn stored_bytes(&self) -> Vec<u8> {
        let mut stored = Vec::new();
        let mut files = match &self.postgres {
            Some(server) => walk(&server.data_dir()),
            None => vec![
                PathBuf::from(&self.database),
                PathBuf::from(format!("{}-wal", self.database)),
            ],
        };
        files.sort();
        for file in files {
            stored.extend(std::fs::read(file).unwrap_or_default());
        }
        stored
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("backoffice.log")
    }

    /// A Back Office on `database` (a SQLite file or a PostgreSQL URL), its log in `dir`.
    pub async fn start_on(dir: &Path, database: &str, args: Vec<String>) -> BackOffice {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("backoffice.log"))
            .unwrap();
        let mut listen = vec![];
        if !args.iter().any(|a| a == "--listen") {
            listen.extend(["--listen", "127.0.0.1:0"]);
        }
        if !args.iter().any(|a| a == "--metrics-listen") {
            listen.extend(["--metrics-listen", "127.0.0.1:0"]);
        }
        let mut child = Command::new(workspace_binary("regsync-backoffice"))
            .arg("serve")
            .args(listen)
            .arg("--database")
            .arg(database)
            .args(&args)
            .env("REGSYNC_LOG", "debug,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let metrics_off = args
            .windows(2)
            .any(|pair| pair[0] == "--metrics-listen" && pair[1] == "off");
        let (url, metrics_url) = tokio::time::timeout(Duration::from_secs(30), async {
            let mut url = None;
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(listening) = line.strip_prefix("Back Office listening on ") {
                    url = Some(listening.to_owned());
                    if metrics_off {
                        return (listening.to_owned(), None);
                    }
                }
                if let (Some(url), Some(metrics)) = (&url, line.strip_prefix("Metrics on ")) {
                    return (url.clone(), Some(metrics.to_owned()));
                }
            }
            panic!(
                "Back Office exited before listening; see its log in {}",
                dir.display()
            );
        })
        .await
        .expect("Back Office did not start listening within 30 s");
        // Keep draining stdout so the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        BackOffice {
            child,
            url,
            dir: dir.to_owned(),
            database: database.to_owned(),
            args,
            metrics_url,
            http: reqwest::Client::new(),
            postgres: None,
            _temp: None,
        }
    }

    /// Kills the process outright (no graceful shutdown) and starts a new one on the same
    /// database and address, as after a crash or a power cut.
    pub async fn crash_and_restart(&mut self) {
        self.crash().await;
        self.restart().await;
    }

    /// Kills the process outright; [`BackOffice::restart`] brings it back.
    pub async fn crash(&mut self) {
        self.child.kill().await.unwrap();
        self.child.wait().await.unwrap();
    }

    pub async fn restart(&mut self) {
        let temp = self._temp.take();
        let postgres = self.postgres.take();
        let address = self.url.trim_start_matches("http://").to_owned();
        let mut args = self.args.clone();
        args.extend(["--listen".to_owned(), address]);
        let mut restarted = Self::start_on(&self.dir.clone(), &self.database, args).await;
        restarted.args = self.args.clone();
        *self = restarted;
        self._temp = temp;
        self.postgres = postgres;
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(within, self.child.wait())
            .await
            .expect("Back Office did not exit in time")
            .unwrap()
    }

    pub async fn db(&self) -> Db {
        db::open(&self.database).await.unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Sends a request with an optional bearer token and JSON body; answers status and JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{path} answered {status} with non-JSON ({e}): {text}"))
        };
        (status, json)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub fn raw(&self) -> &reqwest::Client {
        &self.http
    }

    /// Trades a refresh token for a new session; answers status and JSON.
    pub async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        let body = serde_json::json!({ "refresh_token": refresh_token });
        self.call(Method::POST, "/v1/auth/refresh", None, Some(body))
            .await
    }

    pub async fn try_login(&self, email: &str, password: &str) -> (StatusCode, Value) {
        let body = serde_json::json!({ "email": email, "password": password });
        self.call(Method::POST, "/v1/auth/login", None, Some(body))
            .await
    }

    pub async fn login(&self, email: &str) -> Session {
        let (status, body) = self.try_login(email, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "login as {email}: {body}");
        serde_json::from_value(body).unwrap()
    }
}

/// Asserts an error response: its status and stable code, in the one error shape.
#[track_caller]
pub fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    let (got_status, body) = answer;
    assert_eq!(*got_status, status, "body: {body}");
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "an error has a message: {body}"
    );
}

/// Timings short enough for tests: beats every second, offline after 3 s without one, 5 s to
/// answer a sync, 2 s to come back after dropping mid-sync.
pub const FAST: &[&str] = &[
    "--heartbeat-secs",
    "1",
    "--offline-after-secs",
    "3",
    "--result-timeout-secs",
    "5",
    "--offline-grace-secs",
    "2",
];

/// Every file below `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
