//! A private session bus with gnome-keyring: the real Secret Service, not the user's.

use std::process::Stdio;
use std::time::Duration;

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
