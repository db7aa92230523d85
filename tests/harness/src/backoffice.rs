//! The real `regsync-backoffice` binary on `127.0.0.1:0` with a fresh SQLite file, driven over
//! HTTP; crashed and restarted at will.

use crate::{PASSWORD, workspace_binary};
use std::path::{Path, PathBuf};
use std::process::Stdio;
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
    pub args: Vec<String>,
    http: reqwest::Client,
    _temp: Option<tempfile::TempDir>,
}

impl BackOffice {
    /// A fresh database in a new temporary folder, with `args` added to `serve`.
    pub async fn start(args: &[&str]) -> BackOffice {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let mut bo = Self::start_in(&dir, args.iter().map(|a| a.to_string()).collect()).await;
        bo._temp = Some(temp);
        bo
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("backoffice.db")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("backoffice.log")
    }

    pub async fn start_in(dir: &Path, args: Vec<String>) -> BackOffice {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("backoffice.log"))
            .unwrap();
        let listen = if args.iter().any(|a| a == "--listen") {
            vec![]
        } else {
            vec!["--listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(workspace_binary("regsync-backoffice"))
            .arg("serve")
            .args(listen)
            .arg("--database")
            .arg(dir.join("backoffice.db"))
            .args(&args)
            .env("REGSYNC_LOG", "debug,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("Back Office listening on ") {
                    return url.to_owned();
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
            args,
            http: reqwest::Client::new(),
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
        let address = self.url.trim_start_matches("http://").to_owned();
        let mut args = self.args.clone();
        args.extend(["--listen".to_owned(), address]);
        let mut restarted = Self::start_in(&self.dir.clone(), args).await;
        restarted.args = self.args.clone();
        *self = restarted;
        self._temp = temp;
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
        db::open(&self.db_path().to_string_lossy()).await.unwrap()
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
