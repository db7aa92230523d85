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

pub mod tls;

pub use regsync_register::Agent;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use regsync_backoffice::admin::{self, NewUser};
use regsync_backoffice::{Db, db};
use regsync_protocol::api::{Permission, Session};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const PASSWORD: &str = "correct horse battery";

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

/// A company with one site of three registers, a manager (Sites), an admin and a member of
/// staff (no permission).
pub struct Venue {
    pub company: admin::CompanyRecord,
    pub site: admin::SiteRecord,
    pub registers: Vec<admin::NewRegister>,
    pub manager: String,
    pub admin: String,
    pub staff: String,
}

impl Venue {
    pub async fn seed(db: &Db, name: &str) -> Venue {
        let slug = name.to_lowercase().replace(' ', "-");
        let company = admin::create_company(db, name).await.unwrap();
        let company_ref = company.id.to_string();
        let site = admin::create_site(db, &company_ref, "Main Bar")
            .await
            .unwrap();
        let mut registers = Vec::new();
        for register in ["Bar 1", "Bar 2", "Kitchen"] {
            registers.push(admin::create_register(db, &site, register).await.unwrap());
        }
        let mut emails = Vec::new();
        for (who, permissions) in [
            ("manager", &[Permission::Sites][..]),
            ("admin", &[Permission::Admin][..]),
            ("staff", &[][..]),
        ] {
            let email = format!("{who}@{slug}.example");
            admin::create_user(
                db,
                NewUser {
                    company: &company_ref,
                    email: &email,
                    display_name: &format!("{name} {who}"),
                    password: PASSWORD,
                    permissions,
                },
            )
            .await
            .unwrap();
            emails.push(email);
        }
        let [manager, admin, staff] = <[String; 3]>::try_from(emails).unwrap();
        Venue {
            company,
            site,
            registers,
            manager,
            admin,
            staff,
        }
    }
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

pub const WAIT: Duration = Duration::from_secs(20);

/// Banners a register showed, in order.
#[derive(Default)]
pub struct Banners(pub std::sync::Mutex<Vec<String>>);

impl regsync_register::AgentHooks for Banners {
    fn banner(&self, text: &str) {
        self.0.lock().unwrap().push(text.to_owned());
    }
}

impl BackOffice {
    /// A register agent (in this process, talking over a real socket), its menu in memory.
    pub fn agent(&self, credential: &str) -> regsync_register::Agent {
        self.agent_with(
            credential,
            None,
            std::sync::Arc::new(regsync_register::NoHooks),
        )
    }

    pub fn agent_with(
        &self,
        credential: &str,
        state_path: Option<PathBuf>,
        hooks: std::sync::Arc<dyn regsync_register::AgentHooks>,
    ) -> regsync_register::Agent {
        let mut config = regsync_register::AgentConfig::new(self.url.clone(), credential);
        config.state_path = state_path;
        config.reconnect_max = Duration::from_millis(500);
        regsync_register::Agent::start(config, hooks)
    }

    pub async fn register(&self, token: &str, register_id: uuid::Uuid) -> Value {
        let (status, register) = self
            .get(&format!("/v1/registers/{register_id}"), token)
            .await;
        assert_eq!(status, StatusCode::OK, "{register}");
        register
    }

    /// Waits until Back Office shows the register online (or offline).
    pub async fn wait_online(&self, token: &str, register_id: uuid::Uuid, online: bool) -> Value {
        eventually(
            WAIT,
            &format!("register {register_id} online={online}"),
            || async {
                let register = self.register(token, register_id).await;
                (register["online"] == online).then_some(register)
            },
        )
        .await
    }

    pub async fn sync_register(
        &self,
        token: &str,
        register_id: uuid::Uuid,
        retry_when_free: bool,
    ) -> Value {
        self.start_sync(
            &format!("/v1/registers/{register_id}/sync"),
            token,
            retry_when_free,
        )
        .await
    }

    pub async fn sync_site(
        &self,
        token: &str,
        site_id: uuid::Uuid,
        retry_when_free: bool,
    ) -> Value {
        self.start_sync(&format!("/v1/sites/{site_id}/sync"), token, retry_when_free)
            .await
    }

    /// Asks for a sync; answers the job, which must be accepted.
    async fn start_sync(&self, path: &str, token: &str, retry_when_free: bool) -> Value {
        let body = serde_json::json!({ "retry_when_free": retry_when_free });
        let (status, job) = self.call(Method::POST, path, Some(token), Some(body)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        job
    }

    pub async fn job(&self, token: &str, job_id: &Value) -> Value {
        let (status, job) = self
            .get(&format!("/v1/jobs/{}", job_id.as_str().unwrap()), token)
            .await;
        assert_eq!(status, StatusCode::OK, "{job}");
        job
    }

    /// Waits until the job satisfies `done`; answers it.
    pub async fn wait_job(
        &self,
        token: &str,
        job: &Value,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually(WAIT, what, || async {
            let job = self.job(token, &job["id"]).await;
            done(&job).then_some(job)
        })
        .await
    }
}

/// The target of `register` in a job.
pub fn target<'a>(job: &'a Value, register: &str) -> &'a Value {
    job["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["register_name"] == register)
        .unwrap_or_else(|| panic!("no target for {register} in {job}"))
}

pub fn state_of(job: &Value, register: &str) -> String {
    target(job, register)["state"].as_str().unwrap().to_owned()
}

/// A hand-driven register connection, for what a well-behaved agent never does.
pub struct RawRegister {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl RawRegister {
    pub async fn connect(
        bo: &BackOffice,
        credential: &str,
    ) -> Result<RawRegister, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!(
            "{}/v1/registers/connect",
            bo.url.replace("http://", "ws://")
        );
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {credential}").parse().unwrap(),
        );
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(RawRegister { ws })
    }

    /// Connects and says hello; answers the welcome.
    pub async fn hello(
        bo: &BackOffice,
        credential: &str,
        in_sale: bool,
        recent: Value,
    ) -> (RawRegister, Value) {
        Self::hello_at(bo, credential, 0, in_sale, recent).await
    }

    /// Connects and says hello holding `applied_revision`; answers the welcome.
    pub async fn hello_at(
        bo: &BackOffice,
        credential: &str,
        applied_revision: i64,
        in_sale: bool,
        recent: Value,
    ) -> (RawRegister, Value) {
        let mut raw = Self::connect(bo, credential).await.unwrap();
        raw.send(serde_json::json!({
            "type": "hello", "protocol_version": 1, "applied_revision": applied_revision,
            "in_sale": in_sale, "recent": recent
        }))
        .await;
        let welcome = raw.recv().await.expect("a welcome");
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        (raw, welcome)
    }

    pub async fn send(&mut self, value: Value) {
        use futures::SinkExt;
        self.send_text(&value.to_string()).await;
        let _ = &mut self.ws.flush().await;
    }

    pub async fn send_text(&mut self, text: &str) {
        use futures::SinkExt;
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
            .await
            .unwrap();
    }

    /// The next JSON message, or `None` when the connection closes first.
    pub async fn recv(&mut self) -> Option<Value> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message in time")
            {
                Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Waits for the close frame; answers its reason.
    pub async fn closed_reason(&mut self) -> String {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("closed in time")
            {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|f| f.reason.to_string()).unwrap_or_default();
                }
                None | Some(Err(_)) => return String::new(),
                Some(Ok(_)) => continue,
            }
        }
    }
}

/// A subscriber to `/v1/events`, parsing the server-sent events as they arrive.
pub struct EventStream {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl EventStream {
    pub async fn open(bo: &BackOffice, token: &str) -> EventStream {
        let response = bo
            .raw()
            .get(format!("{}/v1/events", bo.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        EventStream {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event as (kind, JSON).
    pub async fn next(&mut self) -> Option<(String, Value)> {
        use futures::StreamExt;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut kind = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        kind = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                match kind {
                    Some(kind) => return Some((kind, serde_json::from_str(&data).unwrap())),
                    None => continue, // a keep-alive comment
                }
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .ok()??
                .ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads events until one satisfies `wanted`; answers it.
    pub async fn until(&mut self, what: &str, wanted: impl Fn(&str, &Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (kind, event) = tokio::time::timeout(left, self.next())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for event: {what}"))
                .unwrap_or_else(|| panic!("the stream ended before: {what}"));
            if wanted(&kind, &event) {
                return event;
            }
        }
    }
}

/// A binary of the workspace (a package and binary of the same name), built once per test
/// process so it is never stale, whichever package's tests are running.
pub fn workspace_binary(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    // Test executables live in `<target>/<profile>/deps/`; binaries one level up.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let mut built = BUILT.lock().unwrap();
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "--quiet", "-p", name, "--bin", name]);
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

/// A private Secret Service: its own session bus and gnome-keyring, unlocked, with a fresh
/// keyring folder, so tests use the real OS keychain without touching the user's.
pub struct PrivateKeyring {
    bus: std::process::Child,
    keyring: std::process::Child,
    pub bus_address: String,
    _dir: tempfile::TempDir,
}

impl PrivateKeyring {
    pub fn start() -> PrivateKeyring {
        use std::io::{BufRead, Write};
        let dir = tempfile::tempdir().unwrap();
        let runtime = dir.path().join("run");
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::create_dir_all(&runtime).unwrap();
        // gnome-keyring puts its control socket in XDG_RUNTIME_DIR only if that is private;
        // otherwise it falls back to a shared place, and parallel tests' daemons collide.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let mut bus = std::process::Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (Debian package dbus) is needed; scripts/test installs it");
        let mut address = String::new();
        std::io::BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let bus_address = address.trim().to_owned();
        let mut keyring = std::process::Command::new("gnome-keyring-daemon")
            .args(["--unlock", "--components=secrets", "--foreground"])
            .env("DBUS_SESSION_BUS_ADDRESS", &bus_address)
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("HOME", dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("gnome-keyring.log")).unwrap())
            .spawn()
            .expect("gnome-keyring-daemon (Debian package gnome-keyring) is needed; scripts/test installs it");
        let mut stdin = keyring.stdin.take().unwrap();
        stdin.write_all(b"test keyring password").unwrap();
        drop(stdin);
        let keyring = PrivateKeyring {
            bus,
            keyring,
            bus_address,
            _dir: dir,
        };
        // Ready once our daemon owns the Secret Service name. Asking the service anything before
        // that would make the bus start another gnome-keyring by D-Bus activation, with a locked
        // keyring, and ours would give way to it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !keyring.owns_secret_service() {
            if std::time::Instant::now() > deadline {
                let log = keyring._dir.path().join("gnome-keyring.log");
                panic!(
                    "the private Secret Service did not start; gnome-keyring said: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        keyring.store("regsync-test", "probe", "ready");
        assert_eq!(
            keyring.lookup("regsync-test", "probe").as_deref(),
            Some("ready"),
            "the private keychain stores and reads back"
        );
        keyring
    }

    /// Whether a process owns `org.freedesktop.secrets` on our bus (asking does not activate it).
    fn owns_secret_service(&self) -> bool {
        self.owns("org.freedesktop.secrets")
    }

    /// Whether a process owns the bus name `name` (asking does not activate it).
    pub fn owns(&self, name: &str) -> bool {
        std::process::Command::new("dbus-send")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus_address)
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                &format!("string:{name}"),
            ])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
    }

    fn secret_tool(&self) -> std::process::Command {
        let mut command = std::process::Command::new("secret-tool");
        command.env("DBUS_SESSION_BUS_ADDRESS", &self.bus_address);
        command
    }

    pub fn store(&self, service: &str, account: &str, secret: &str) {
        use std::io::Write;
        let Ok(mut child) = self
            .secret_tool()
            .args([
                "store",
                "--label=test",
                "service",
                service,
                "username",
                account,
            ])
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        else {
            panic!(
                "secret-tool (Debian package libsecret-tools) is needed; scripts/test installs it"
            );
        };
        let _ = child.stdin.take().unwrap().write_all(secret.as_bytes());
        let _ = child.wait();
    }

    /// What the keychain holds for keyring-rs's `service` and `username`, as `secret-tool` reads it.
    pub fn lookup(&self, service: &str, account: &str) -> Option<String> {
        let output = self
            .secret_tool()
            .args(["lookup", "service", service, "username", account])
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Drop for PrivateKeyring {
    fn drop(&mut self) {
        let _ = self.keyring.kill();
        let _ = self.keyring.wait();
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

/// A display and a WebDriver for the real app window: Xvfb, then tauri-driver (which starts
/// WebKitWebDriver, which starts the app). One session at a time.
pub struct Desktop {
    xvfb: std::process::Child,
    driver: std::process::Child,
    pub display: String,
    port: u16,
    http: reqwest::Client,
    /// tauri-driver's and the app's output, shown if the test fails.
    log: tempfile::NamedTempFile,
    /// What the app processes get, for launching one without WebDriver.
    env: Vec<(String, String)>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Desktop {
    /// Starts a display and tauri-driver whose app processes get `env` (and inherit the rest).
    pub async fn start(env: &[(&str, String)]) -> Desktop {
        // Xvfb picks a free display and tells us which (two test runs at once must not share one).
        let mut xvfb = std::process::Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (Debian package xvfb) is needed; scripts/test installs it");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(xvfb.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let display = format!(":{}", line.trim());
        assert!(display.len() > 1, "Xvfb did not say which display it took");
        let port = free_port();
        let native = free_port();
        let driver_bin = std::env::var("TAURI_DRIVER").unwrap_or_else(|_| "tauri-driver".into());
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut driver = std::process::Command::new(driver_bin);
        driver
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native.to_string(),
            ])
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap());
        let mut app_env = vec![
            ("DISPLAY".to_owned(), display.clone()),
            ("NO_AT_BRIDGE".to_owned(), "1".to_owned()),
            (
                "REGSYNC_LOG".to_owned(),
                "info,regsync_client=debug".to_owned(),
            ),
        ];
        app_env.extend(env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        driver.envs(app_env.iter().map(|(k, v)| (k, v)));
        let driver = driver.spawn().expect(
            "tauri-driver is needed (cargo install tauri-driver --locked; scripts/test does)",
        );
        let desktop = Desktop {
            xvfb,
            driver,
            display,
            port,
            // WebDriver calls answer in seconds; a stalled one fails the test instead of hanging.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            log,
            env: app_env,
        };
        let status = format!("http://127.0.0.1:{port}/status");
        eventually(WAIT, "tauri-driver", || async {
            desktop.http.get(&status).send().await.ok().map(|_| ())
        })
        .await;
        desktop
    }

    /// Launches the app; the window is ready once its page answers.
    pub async fn launch(&self, application: &Path) -> Window {
        let body = serde_json::json!({
            "capabilities": { "alwaysMatch": { "tauri:options": { "application": application } } }
        });
        let base = format!("http://127.0.0.1:{}", self.port);
        let response: Value = self
            .http
            .post(format!("{base}/session"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {response}"))
            .to_owned();
        Window {
            http: self.http.clone(),
            url: format!("{base}/session/{session}"),
        }
    }
}

impl Desktop {
    /// Runs the app as a person would (not through WebDriver), with the same display, bus and
    /// home, and waits for it to exit. For what happens on a second launch.
    pub async fn run_app(&self, application: &Path, args: &[&str]) -> std::process::ExitStatus {
        let mut app = tokio::process::Command::new(application);
        app.args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(self.log.reopen().unwrap())
            .stderr(self.log.reopen().unwrap())
            .kill_on_drop(true);
        let mut child = app.spawn().unwrap();
        tokio::time::timeout(WAIT, child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} is still running", application.display()))
            .unwrap()
    }

    /// The map state of each top-level window titled `title`: "viewable" or "unmapped".
    pub fn window_states(&self, title: &str) -> Vec<String> {
        self.xwin(title, "state")
    }

    /// Closes the windows titled `title` the way a window manager's close button does
    /// (WM_DELETE_WINDOW): the app decides what closing means. (WebDriver cannot: closing its
    /// last window ends the session, and tauri-driver then ends the app.)
    pub fn request_close(&self, title: &str) {
        self.xwin(title, "close");
    }

    fn xwin(&self, title: &str, action: &str) -> Vec<String> {
        let output = std::process::Command::new("/usr/bin/python3")
            .args(["-c", XWIN, &self.display, title, action])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Everything tauri-driver and the apps it started have logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("--- the app's last log lines ---");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = self.xvfb.kill();
        let _ = self.xvfb.wait();
    }
}

/// The app's window, driven over WebDriver.
pub struct Window {
    http: reqwest::Client,
    url: String,
}

impl Window {
    async fn command(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request.send().await.unwrap().json().await.unwrap();
        response["value"].clone()
    }

    /// Runs JavaScript in the page; answers its return value.
    pub async fn script(&self, script: &str) -> Value {
        self.command(
            Method::POST,
            "/execute/sync",
            Some(serde_json::json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.script("return document.body.innerText")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the page's text contains `wanted`; on timeout, says what it showed instead.
    pub async fn wait_for_text(&self, wanted: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let text = self.text().await;
            if text.contains(wanted) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for the window to show `{wanted}`; it shows:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for an element matching `css`; answers its WebDriver id.
    pub async fn find(&self, css: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let found = self
                .command(
                    Method::POST,
                    "/element",
                    Some(serde_json::json!({ "using": "css selector", "value": css })),
                )
                .await;
            // W3C WebDriver names an element by this key; anything else is an error.
            if let Some(id) = found["element-6066-11e4-a52e-4f735466cecf"].as_str() {
                return id.to_owned();
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "no element `{css}` appeared: {found}; the window shows:\n{}",
                    self.text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.command(
            Method::POST,
            &format!("/element/{element}/click"),
            Some(serde_json::json!({})),
        )
        .await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.command(
            Method::POST,
            &format!("/element/{element}/clear"),
            Some(serde_json::json!({})),
        )
        .await;
        self.command(
            Method::POST,
            &format!("/element/{element}/value"),
            Some(serde_json::json!({ "text": text })),
        )
        .await;
    }

    /// Saves a screenshot of the window as PNG.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let data = self.command(Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Calls one of the app's commands from the page, as the UI does; answers its result.
    pub async fn invoke(&self, command: &str) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];\n\
             window.__TAURI_INTERNALS__.invoke('{command}').then(done, (e) => done({{ failed: String(e) }}));"
        );
        self.command(
            Method::POST,
            "/execute/async",
            Some(serde_json::json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Ends the session; the app quits.
    pub async fn close(self) {
        let _ = self.http.delete(&self.url).send().await;
    }
}

/// Desktop notifications captured on a private session bus: python-dbusmock's notification
/// daemon, which logs every `Notify` call (app, title, body).
pub struct Notifications {
    daemon: std::process::Child,
    log: tempfile::NamedTempFile,
}

impl Notifications {
    pub fn start(bus: &PrivateKeyring) -> Notifications {
        let log = tempfile::NamedTempFile::new().unwrap();
        // Debian's python3, which has python3-dbusmock (not another python earlier on PATH).
        let daemon = std::process::Command::new("/usr/bin/python3")
            .args(["-m", "dbusmock", "--session", "-t", "notification_daemon"])
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.bus_address)
            .stdout(log.reopen().unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3-dbusmock is needed; scripts/test installs it");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !bus.owns("org.freedesktop.Notifications") {
            assert!(
                std::time::Instant::now() < deadline,
                "the notification daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Notifications { daemon, log }
    }

    /// Every Notify call so far, as dbusmock logged it.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.log.path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" Notify "))
            .map(str::to_owned)
            .collect()
    }

    /// Waits for a notification whose logged call contains every one of `parts`.
    pub async fn wait_for(&self, parts: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(call) = self
                .calls()
                .into_iter()
                .find(|c| parts.iter().all(|p| c.contains(p)))
            {
                return call;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no notification with {parts:?}; got: {:#?}",
                self.calls()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Notifications {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// A system tray host, as desktops have one: a StatusNotifierWatcher (python3-dbusmock) on the
/// private bus. The app registers its tray item there, and the item — its icon and its menu — is
/// read and clicked over D-Bus the way a desktop's tray does (libayatana-appindicator's
/// StatusNotifierItem and com.canonical.dbusmenu), with `gdbus`.
pub struct TrayHost {
    daemon: std::process::Child,
    log: tempfile::NamedTempFile,
    bus: String,
}

/// One entry of the tray menu as the desktop shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayEntry {
    pub id: i32,
    pub label: String,
    pub enabled: bool,
}

const WATCHER: &str = "org.kde.StatusNotifierWatcher";

impl TrayHost {
    pub fn start(bus: &PrivateKeyring) -> TrayHost {
        let log = tempfile::NamedTempFile::new().unwrap();
        let daemon = std::process::Command::new("/usr/bin/python3")
            .args([
                "-m",
                "dbusmock",
                "--session",
                WATCHER,
                "/StatusNotifierWatcher",
                WATCHER,
            ])
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.bus_address)
            .stdout(log.reopen().unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3-dbusmock is needed; scripts/test installs it");
        let host = TrayHost {
            daemon,
            log,
            bus: bus.bus_address.clone(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !bus.owns(WATCHER) {
            assert!(
                std::time::Instant::now() < deadline,
                "the tray host did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mock = "org.freedesktop.DBus.Mock";
        for method in ["RegisterStatusNotifierItem", "RegisterStatusNotifierHost"] {
            host.gdbus(
                WATCHER,
                "/StatusNotifierWatcher",
                &format!("{mock}.AddMethod"),
                &["", method, "s", "", ""],
            )
            .expect("mocking the watcher");
        }
        for (property, value) in [
            ("IsStatusNotifierHostRegistered", "<true>"),
            ("ProtocolVersion", "<0>"),
            ("RegisteredStatusNotifierItems", "<@as []>"),
        ] {
            host.gdbus(
                WATCHER,
                "/StatusNotifierWatcher",
                &format!("{mock}.AddProperty"),
                &["", property, value],
            )
            .expect("mocking the watcher");
        }
        host
    }

    fn gdbus(&self, dest: &str, path: &str, method: &str, args: &[&str]) -> Option<String> {
        let output = std::process::Command::new("gdbus")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .args([
                "call",
                "--session",
                "-d",
                dest,
                "-o",
                path,
                "-m",
                method,
                "--",
            ])
            .args(args)
            .output()
            .expect("gdbus (Debian package libglib2.0-bin) is needed; scripts/test installs it");
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The item the app registered most recently, once it has.
    pub async fn item(&self) -> TrayItem<'_> {
        eventually(WAIT, "the app's tray item", || async { self.try_item() }).await
    }

    fn try_item(&self) -> Option<TrayItem<'_>> {
        let log = std::fs::read_to_string(self.log.path()).ok()?;
        let path = log
            .lines()
            .rev()
            .find(|l| l.contains("RegisterStatusNotifierItem"))?
            .split('"')
            .nth(1)?
            .to_owned();
        // The call does not say who registered: ask each connection for the item.
        let names = self.gdbus(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.ListNames",
            &[],
        )?;
        let unique = regex_lite::Regex::new(r"'(:[0-9.]+)'").unwrap();
        unique.captures_iter(&names).find_map(|c| {
            let owner = c[1].to_owned();
            let menu = self.gdbus(
                &owner,
                &path,
                "org.freedesktop.DBus.Properties.Get",
                &["org.kde.StatusNotifierItem", "Menu"],
            )?;
            let menu = menu.split('\'').nth(1)?.to_owned();
            Some(TrayItem {
                host: self,
                owner,
                path: path.clone(),
                menu,
            })
        })
    }
}

impl Drop for TrayHost {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// The app's tray item, as the desktop's tray sees it.
pub struct TrayItem<'a> {
    host: &'a TrayHost,
    owner: String,
    path: String,
    menu: String,
}

impl TrayItem<'_> {
    /// The menu's entries, in order (separators left out).
    pub fn menu(&self) -> Vec<TrayEntry> {
        let layout = self
            .host
            .gdbus(
                &self.owner,
                &self.menu,
                "com.canonical.dbusmenu.GetLayout",
                &["0", "-1", "[]"],
            )
            .expect("the tray menu's layout");
        let entry = regex_lite::Regex::new(r"<\((\d+), \{([^}]*)\}").unwrap();
        let label = regex_lite::Regex::new(r"'label': <'([^']*)'>").unwrap();
        entry
            .captures_iter(&layout)
            .filter(|c| !c[2].contains("separator"))
            .map(|c| TrayEntry {
                id: c[1].parse().unwrap(),
                label: label
                    .captures(&c[2])
                    .map(|l| l[1].to_owned())
                    .unwrap_or_default(),
                enabled: !c[2].contains("'enabled': <false>"),
            })
            .collect()
    }

    /// Waits until the entry at `index` reads `label`; answers the whole menu.
    pub async fn wait_for_entry(&self, index: usize, label: &str) -> Vec<TrayEntry> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let menu = self.menu();
            if menu.get(index).is_some_and(|e| e.label == label) {
                return menu;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the tray menu never showed `{label}` at {index}: {menu:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the menu entry whose label starts with `label`, as a person would.
    pub fn click(&self, label: &str) {
        let entry = self
            .menu()
            .into_iter()
            .find(|e| e.label.starts_with(label))
            .unwrap_or_else(|| panic!("no tray menu entry `{label}`: {:#?}", self.menu()));
        assert!(entry.enabled, "`{label}` is disabled");
        self.host
            .gdbus(
                &self.owner,
                &self.menu,
                "com.canonical.dbusmenu.Event",
                &[&entry.id.to_string(), "clicked", "<0>", "0"],
            )
            .expect("clicking the tray menu");
    }

    /// The icon shown now, as RGBA pixels (the app hands the tray a PNG file).
    pub fn icon(&self) -> Vec<u8> {
        let answer = self
            .host
            .gdbus(
                &self.owner,
                &self.path,
                "org.freedesktop.DBus.Properties.Get",
                &["org.kde.StatusNotifierItem", "IconName"],
            )
            .expect("the tray icon");
        let file = answer.split('\'').nth(1).expect("an icon file").to_owned();
        rgba(&std::fs::read(&file).unwrap())
    }
}

/// A PNG's pixels as RGBA.
pub fn rgba(png_bytes: &[u8]) -> Vec<u8> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    pixels.truncate(info.buffer_size());
    pixels
}

/// Top-level X windows by title, through libX11 (no window manager runs under Xvfb).
const XWIN: &str = r#"
# Finds the top-level X windows titled argv[2] on display argv[1]; argv[3] is "state" (prints
# each one's map state: viewable or unmapped) or "close" (sends WM_DELETE_WINDOW, what a window
# manager's close button sends).
import ctypes, sys
x = ctypes.cdll.LoadLibrary("libX11.so.6")
x.XOpenDisplay.restype = ctypes.c_void_p
x.XOpenDisplay.argtypes = [ctypes.c_char_p]
x.XDefaultRootWindow.restype = ctypes.c_ulong
x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
x.XQueryTree.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_ulong),
    ctypes.POINTER(ctypes.c_ulong), ctypes.POINTER(ctypes.POINTER(ctypes.c_ulong)), ctypes.POINTER(ctypes.c_uint)]
x.XFetchName.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_char_p)]
x.XInternAtom.restype = ctypes.c_ulong
x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
x.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
x.XFlush.argtypes = [ctypes.c_void_p]

class Attributes(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("width", ctypes.c_int), ("height", ctypes.c_int),
        ("border_width", ctypes.c_int), ("depth", ctypes.c_int), ("visual", ctypes.c_void_p),
        ("root", ctypes.c_ulong), ("class_", ctypes.c_int), ("bit_gravity", ctypes.c_int),
        ("win_gravity", ctypes.c_int), ("backing_store", ctypes.c_int), ("backing_planes", ctypes.c_ulong),
        ("backing_pixel", ctypes.c_ulong), ("save_under", ctypes.c_int), ("colormap", ctypes.c_ulong),
        ("map_installed", ctypes.c_int), ("map_state", ctypes.c_int), ("all_event_masks", ctypes.c_long),
        ("your_event_mask", ctypes.c_long), ("do_not_propagate_mask", ctypes.c_long),
        ("override_redirect", ctypes.c_int), ("screen", ctypes.c_void_p)]
x.XGetWindowAttributes.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(Attributes)]

class ClientMessage(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
        ("format", ctypes.c_int), ("data", ctypes.c_long * 5), ("pad", ctypes.c_long * 24)]

display = x.XOpenDisplay(sys.argv[1].encode())
if not display:
    sys.exit("cannot open display " + sys.argv[1])
root = x.XDefaultRootWindow(display)
r, p, children, n = ctypes.c_ulong(), ctypes.c_ulong(), ctypes.POINTER(ctypes.c_ulong)(), ctypes.c_uint()
x.XQueryTree(display, root, ctypes.byref(r), ctypes.byref(p), ctypes.byref(children), ctypes.byref(n))
found = []
for i in range(n.value):
    name = ctypes.c_char_p()
    if x.XFetchName(display, children[i], ctypes.byref(name)) and name.value == sys.argv[2].encode():
        found.append(children[i])
for window in found:
    if sys.argv[3] == "state":
        attributes = Attributes()
        x.XGetWindowAttributes(display, window, ctypes.byref(attributes))
        print({0: "unmapped", 1: "unviewable", 2: "viewable"}[attributes.map_state])
    else:
        event = ClientMessage(type=33, window=window, format=32,
            message_type=x.XInternAtom(display, b"WM_PROTOCOLS", 0))
        event.data[0] = x.XInternAtom(display, b"WM_DELETE_WINDOW", 0)
        x.XSendEvent(display, window, 0, 0, ctypes.byref(event))
        print("closed")
x.XFlush(display)
"#;
