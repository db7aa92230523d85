//! The real app window: Xvfb, tauri-driver and WebKitWebDriver, and the window they drive.

use crate::{WAIT, eventually};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

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

/// What the app needs of a user's session besides a display: the private bus (keychain,
/// notifications, tray) and a home of its own, with its config and data folders.
pub fn home_env(keyring: &crate::PrivateKeyring, home: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("DBUS_SESSION_BUS_ADDRESS", keyring.bus_address.clone()),
        ("HOME", home.display().to_string()),
        (
            "XDG_CONFIG_HOME",
            home.join(".config").display().to_string(),
        ),
        (
            "XDG_DATA_HOME",
            home.join(".local/share").display().to_string(),
        ),
    ]
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
        let port = crate::free_port();
        let native = crate::free_port();
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
    /// The X display this desktop runs on (`:N`).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// What the display's clipboard holds now (xclip reads it as any other app would paste).
    pub fn clipboard(&self) -> String {
        let out = std::process::Command::new("xclip")
            .args(["-o", "-selection", "clipboard"])
            .env("DISPLAY", &self.display)
            .output()
            .expect("xclip (Debian package xclip) is needed; scripts/test installs it");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

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

    /// Runs JavaScript that calls its last argument with a result; answers that result.
    pub async fn script_async(&self, script: &str) -> Value {
        self.command(
            Method::POST,
            "/execute/async",
            Some(serde_json::json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// axe-core (from the UI's npm packages) run inside the window on the page as it is now:
    /// its violations, each with its rule, impact, help text and the elements it found.
    pub async fn axe(&self) -> Vec<Value> {
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../ui/node_modules/axe-core/axe.min.js");
        let source = std::fs::read_to_string(&source).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (npm ci in ui/ installs axe-core)",
                source.display()
            )
        });
        self.script(&format!("{source}\nwindow.axe = axe; return true;"))
            .await;
        let found = self
            .script_async(
                "const done = arguments[arguments.length - 1];
                 window.axe.run(document, { resultTypes: ['violations'] })
                   .then((r) => done(r.violations.map((v) => ({
                     id: v.id, impact: v.impact, help: v.help,
                     nodes: v.nodes.map((n) => n.target.join(' ') + ' — ' + n.failureSummary),
                   }))))
                   .catch((e) => done([{ id: 'axe-error', impact: 'critical', help: String(e), nodes: [] }]));",
            )
            .await;
        found.as_array().cloned().unwrap_or_else(|| {
            panic!("axe did not answer: {found}");
        })
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

    /// Waits until the page has painted what its DOM holds: two animation frames (the first runs
    /// before the next paint, the second after it). WebKit's screenshot is of the last painted
    /// frame, which on a busy machine can be older than the DOM a test just waited for.
    pub async fn painted(&self) {
        let script = "const done = arguments[arguments.length - 1];\n\
                      const late = setTimeout(() => done('not painted within 2 s'), 2000);\n\
                      requestAnimationFrame(() => requestAnimationFrame(() => {\n\
                        clearTimeout(late); done('painted');\n\
                      }));";
        let answer = self
            .command(
                Method::POST,
                "/execute/async",
                Some(serde_json::json!({ "script": script, "args": [] })),
            )
            .await;
        assert_eq!(answer, "painted", "the window did not paint");
    }

    /// The window as PNG, once it has painted what its DOM holds.
    pub async fn capture(&self) -> Vec<u8> {
        use base64::Engine;
        self.painted().await;
        let data = self.command(Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .unwrap()
    }

    /// Saves a screenshot of the window as PNG; answers it.
    pub async fn screenshot(&self, path: &Path) -> Vec<u8> {
        let png = self.capture().await;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, &png).unwrap();
        png
    }

    /// Saves a screenshot taken after a visible change, checking that it shows one: its pixels
    /// must differ from `before`, captured before the change.
    pub async fn screenshot_changed(&self, path: &Path, before: &[u8]) -> Vec<u8> {
        let before = crate::rgba(before);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let png = self.screenshot(path).await;
            if crate::rgba(&png) != before {
                return png;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} shows no change from the picture before it",
                path.display()
            );
        }
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

/// Top-level X windows by title, through libX11 (no window manager runs under Xvfb).
const XWIN: &str = include_str!("xwin.py");
