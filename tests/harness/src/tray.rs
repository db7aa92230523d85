//! The desktop around the app on the private bus: a notification daemon and a tray host
//! (python3-dbusmock), read the way a desktop reads them.

use crate::{PrivateKeyring, WAIT, eventually};
use std::process::Stdio;
use std::time::Duration;

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
                // Another connection on the bus that never answers (probing each one for the
                // item) must not hold the test up for gdbus's default 25 s.
                "--timeout",
                "5",
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
