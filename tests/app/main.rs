//! The real app window, driven by WebDriver (tauri-driver + WebKitWebDriver) under Xvfb, against
//! a real Back Office with register agents, keeping its session in the real Secret Service.
//! Screenshots of the main screens go to `artifacts/screenshots/`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use regsync_testkit::{
    Agent, BackOffice, Desktop, FAST, PASSWORD, PrivateKeyring, Scene, Venue, WAIT, eventually,
    home_env,
};

/// Waits until the app has quit: a new launch while the old one is still shutting down would be
/// handed to it by the single-instance guard (the old window comes forward, the new app exits).
async fn quit(keyring: &PrivateKeyring) {
    eventually(WAIT, "the app to quit", || async {
        (!keyring.owns("com.registersync.desktop.SingleInstance")).then_some(())
    })
    .await;
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../artifacts/screenshots")
}

/// Back Office with the Harbour venue, Bar 1 and Bar 2 connected (the Kitchen is off).
struct Harbour {
    bo: BackOffice,
    venue: Venue,
    token: String,
    bar1: Agent,
    bar2: Agent,
}

async fn harbour() -> Harbour {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = bo.agent(&venue.registers[0].credential);
    let bar2 = bo.agent(&venue.registers[1].credential);
    for register in &venue.registers[..2] {
        bo.wait_online(&token, register.register.id, true).await;
    }
    Harbour {
        bo,
        venue,
        token,
        bar1,
        bar2,
    }
}

/// A display and WebDriver for the app, on the private bus (keychain, notifications, tray), in a
/// home of its own.
async fn desktop(keyring: &PrivateKeyring, home: &std::path::Path, notify: bool) -> Desktop {
    let mut env = home_env(keyring, home);
    if !notify {
        env.push(("REGSYNC_NOTIFICATIONS", "0".into()));
    }
    Desktop::start(&env).await
}

async fn sign_in(window: &regsync_testkit::Window, bo: &BackOffice, venue: &Venue) {
    window.type_into("#url", &bo.url).await;
    window.type_into("#email", &venue.manager).await;
    window.type_into("#password", PASSWORD).await;
    window.click("#sign-in").await;
}

fn app() -> PathBuf {
    regsync_testkit::binary_of("regsync-app", "register-sync")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_signs_in_syncs_and_stays_signed_in_until_signing_out() {
    let Harbour {
        bo,
        venue,
        token: _,
        bar1: _bar1,
        bar2,
    } = harbour().await;
    let keyring = PrivateKeyring::start();
    let home = tempfile::tempdir().unwrap();
    let desktop = desktop(&keyring, home.path(), false).await;
    let app = app();

    // Sign in.
    let window = desktop.launch(&app).await;
    window.find("#sign-in").await;
    window.type_into("#url", &bo.url).await;
    window.type_into("#email", &venue.manager).await;
    window.type_into("#password", "not the password").await;
    let before = window.capture().await;
    window.click("#sign-in").await;
    window.wait_for_text("Wrong email or password.").await;
    window
        .screenshot_changed(&screenshots().join("sign-in.png"), &before)
        .await;
    window.type_into("#password", PASSWORD).await;
    window.click("#sign-in").await;

    // The registers, live.
    let text = window.wait_for_text("Kitchen").await;
    assert!(text.contains("● Live"), "{text}");
    assert!(
        text.contains("Offline"),
        "the Kitchen register is off: {text}"
    );
    window
        .screenshot(&screenshots().join("registers.png"))
        .await;
    let stored = keyring.lookup("register-sync", &format!("{} at {}", venue.manager, bo.url));
    let stored = stored.expect("the refresh token, in the keychain");
    assert!(stored.starts_with("rsr_"), "only the refresh token");
    // Windows Credential Manager keeps at most 2,560 bytes (UTF-16) per secret.
    let size = regsync_client::keychain::stored_size(&stored);
    assert!(
        size <= regsync_client::keychain::MAX_SECRET_BYTES,
        "{size} bytes"
    );

    // Sync one register.
    window.click("button[aria-label='Sync Bar 1']").await;
    window.wait_for_text("Synced").await;

    // Sync online registers with Bar 2 in a sale: waiting, then synced when the sale ends.
    bar2.start_sale().unwrap();
    window.wait_for_text("In a sale").await;
    window.click("#sync-online").await;
    window.wait_for_text("waiting for its sale to end").await;
    window
        .screenshot(&screenshots().join("sync-waiting.png"))
        .await;
    bar2.end_sale().unwrap();
    let text = window.wait_for_text("2 synced").await;
    assert!(!text.contains("waiting for its sale"), "{text}");
    window
        .screenshot(&screenshots().join("sync-result.png"))
        .await;

    // A register's own page: its syncs (who asked, how each ended) and when it came online.
    window
        .click("#registers tr[data-register='Bar 1'] th button")
        .await;
    window.find("#register-panel #register-syncs").await;
    let panel = window
        .script("return document.getElementById('register-panel').innerText")
        .await;
    let panel = panel.as_str().unwrap_or_default();
    assert!(panel.contains("Recent syncs"), "{panel}");
    assert!(
        panel.matches("Synced").count() >= 2,
        "two syncs of Bar 1: {panel}"
    );
    assert!(panel.contains("Harbour manager"), "{panel}");
    assert!(panel.contains("● Online"), "{panel}");
    window
        .screenshot(&screenshots().join("register-page.png"))
        .await;
    window.click("#register-panel .close").await;

    // Export…: the site's history as a CSV file, one line per register of each sync.
    window.click("#export-history").await;
    window.click("#export-save").await;
    let text = window.wait_for_text("Saved to ").await;
    let saved = text
        .lines()
        .find_map(|line| line.strip_prefix("Saved to "))
        .unwrap()
        .to_owned();
    assert!(
        saved.starts_with(&home.path().display().to_string()),
        "{saved}"
    );
    assert!(
        saved.ends_with(".csv") && saved.contains("Main Bar"),
        "{saved}"
    );
    let csv = std::fs::read_to_string(&saved).unwrap();
    assert!(csv.starts_with("job_id,job_created_at,"), "{csv}");
    assert_eq!(
        csv.lines().count(),
        1 + 1 + 3,
        "the one-register sync, then three:\n{csv}"
    );
    assert!(csv.contains(",Bar 2,synced,"), "{csv}");
    window.close().await;
    quit(&keyring).await;

    // Restart: still signed in, without typing anything.
    let window = desktop.launch(&app).await;
    window.wait_for_text("Kitchen").await;
    assert!(window.text().await.contains("Harbour manager"));

    // Launched again (from the menu, say): the running app's window comes forward; no second app.
    let status = desktop.run_app(&app, &[]).await;
    assert!(status.success(), "{status}");
    eventually(
        WAIT,
        "the running app to hear of the second launch",
        || async {
            desktop
                .log()
                .contains("launched again; bringing the window forward")
                .then_some(())
        },
    )
    .await;
    assert!(window.text().await.contains("Harbour manager"));

    // Support: "Copy diagnostics" says where Back Office is and that it answers, no secret.
    window.click("#settings").await;
    window.click("#copy-diagnostics").await;
    let text = window.wait_for_text("Back Office reachable: answers").await;
    assert!(text.contains(&format!("Back Office: {}", bo.url)), "{text}");
    assert!(text.contains("Register Sync 0.1.0"), "{text}");
    assert!(
        text.contains("Copied. Paste it into your message to support."),
        "{text}"
    );
    let copied = desktop.clipboard();
    assert!(copied.starts_with("Register Sync 0.1.0\n"), "{copied}");
    assert!(
        copied.contains("Back Office reachable: answers"),
        "{copied}"
    );
    window
        .screenshot(&screenshots().join("settings-diagnostics.png"))
        .await;
    // "Open log folder" says where the logs are, whether or not a file manager opened.
    window.click("#open-log-folder").await;
    window
        .wait_for_text(".local/share/com.registersync.desktop/logs")
        .await;
    window.click("#settings").await;

    // Sign out: the keychain entry is gone.
    window.click("#sign-out").await;
    window.find("#sign-in").await;
    assert_eq!(
        keyring.lookup("register-sync", &format!("{} at {}", venue.manager, bo.url)),
        None
    );
    let tray = window.invoke("tray_state").await;
    assert_eq!(tray["status"], "Signed out", "{tray}");
    assert_eq!(tray["icon"], "unreachable", "{tray}");
    assert!(tray["sync_item"].is_null(), "nothing to sync: {tray}");
    window.close().await;

    // The log files in the OS log folder tell what happened, and hold no password or token.
    let logs = home
        .path()
        .join(".local/share/com.registersync.desktop/logs");
    let written = log_files(&logs);
    assert!(written.contains("Register Sync starting"), "{written}");
    assert!(written.contains("signed in"), "{written}");
    for secret in [PASSWORD, "not the password", "rsa_", "rsr_", "rsd_"] {
        assert!(!written.contains(secret), "{secret:?} in the log files");
    }
}

/// Every log file the app wrote in `folder`, one after another.
fn log_files(folder: &std::path::Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(folder)
        .unwrap_or_else(|e| panic!("no log folder {}: {e}", folder.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no log file in {}", folder.display());
    files
        .iter()
        .map(|file| std::fs::read_to_string(file).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_the_tray_and_the_offline_view() {
    use regsync_testkit::Notifications;

    let Harbour {
        mut bo,
        venue,
        token: _,
        bar1: _bar1,
        bar2,
    } = harbour().await;
    let keyring = PrivateKeyring::start();
    let notifications = Notifications::start(&keyring);
    let home = tempfile::tempdir().unwrap();
    let desktop = desktop(&keyring, home.path(), true).await;
    let app = app();
    let window = desktop.launch(&app).await;
    sign_in(&window, &bo, &venue).await;
    window.wait_for_text("● Live").await;
    window.wait_for_text("Kitchen").await;

    // The tray sums it up.
    let tray = window.invoke("tray_state").await;
    assert_eq!(tray["icon"], "attention", "{tray}");
    assert_eq!(tray["status"], "1 offline · 3 out of date", "{tray}");
    assert_eq!(
        tray["sync_item"], "Sync online registers — Main Bar",
        "{tray}"
    );

    // One notification for the job, one when the waiting register syncs.
    bar2.start_sale().unwrap();
    window.wait_for_text("In a sale").await;
    window.click("#sync-online").await;
    notifications
        .wait_for(&[
            "Main Bar: 1 synced, 1 waiting",
            "Bar 2 is in a sale; it will sync when the sale ends.",
        ])
        .await;
    bar2.end_sale().unwrap();
    notifications
        .wait_for(&[
            "Bar 2 synced",
            "Its sale ended; it now has menu revision 1.",
        ])
        .await;
    assert_eq!(
        notifications.calls().len(),
        2,
        "one per job, plus the waiting register: {:#?}",
        notifications.calls()
    );

    // Notifications turned off in Settings: a finished sync raises none, and the choice is kept.
    let settings = home
        .path()
        .join(".config/com.registersync.desktop/settings.json");
    let saved = |on: bool| {
        let settings = settings.clone();
        async move {
            let text = std::fs::read_to_string(&settings).ok()?;
            text.contains(&format!("\"notifications\": {on}"))
                .then_some(())
        }
    };
    window.click("#settings").await;
    window.click("#setting-notifications").await;
    eventually(WAIT, "notifications off, saved", || saved(false)).await;
    window.screenshot(&screenshots().join("settings.png")).await;
    window.click("#settings").await;
    window.click("button[aria-label='Sync Bar 1']").await;
    window.wait_for_text("one register · 1 synced").await;
    // On again: the next sync is announced, and the one before it was not.
    window.click("#settings").await;
    window.click("#setting-notifications").await;
    eventually(WAIT, "notifications on, saved", || saved(true)).await;
    window.click("#settings").await;
    window.click("button[aria-label='Sync Bar 1']").await;
    notifications
        .wait_for(&["Bar 1 synced", "It now has menu revision 1."])
        .await;
    assert_eq!(
        notifications.calls().len(),
        3,
        "nothing while notifications were off: {:#?}",
        notifications.calls()
    );

    // Start at login: an XDG autostart entry that opens the app in the tray, and gone when off.
    let entry = home.path().join(".config/autostart/Register Sync.desktop");
    window.click("#settings").await;
    window.click("#setting-start-at-login").await;
    // Read once it is whole: the file exists a moment before its lines are in it.
    let text = eventually(WAIT, "the login entry", || async {
        std::fs::read_to_string(&entry)
            .ok()
            .filter(|text| text.contains("Exec="))
    })
    .await;
    assert!(
        text.contains(&format!("Exec={} --hidden", app.display())),
        "{text}"
    );
    window.click("#setting-start-at-login").await;
    eventually(WAIT, "the login entry removed", || async {
        (!entry.exists()).then_some(())
    })
    .await;
    window.click("#settings").await;

    // Back Office goes away: the last-known registers stay, marked offline; actions wait.
    let before = window.capture().await;
    bo.crash().await;
    let text = window.wait_for_text("Offline — as of").await;
    assert!(text.contains("Bar 2"), "{text}");
    let disabled = window
        .script("return document.querySelector('#sync-online').disabled")
        .await;
    assert_eq!(disabled, true);
    let tray = window.invoke("tray_state").await;
    assert_eq!(tray["icon"], "unreachable", "{tray}");
    assert!(
        tray["status"]
            .as_str()
            .unwrap()
            .starts_with("Back Office unreachable — as of"),
        "{tray}"
    );
    window
        .screenshot_changed(&screenshots().join("offline.png"), &before)
        .await;

    // It comes back: live again, by itself.
    bo.restart().await;
    window.wait_for_text("● Live").await;
    let tray = window.invoke("tray_state").await;
    assert_ne!(tray["icon"], "unreachable", "{tray}");
    window.close().await;
    quit(&keyring).await;

    // A corrupt cache file is set aside; the app starts normally.
    let cache = home
        .path()
        .join(".local/share/com.registersync.desktop/cache");
    let files: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        !files.is_empty(),
        "the app kept an offline picture in {}",
        cache.display()
    );
    for file in &files {
        std::fs::write(file, b"{\"version\":1,\"pict").unwrap();
    }
    let window = desktop.launch(&app).await;
    window.wait_for_text("● Live").await;
    window.wait_for_text("Kitchen").await;
    window.close().await;
    quit(&keyring).await;

    // Started while Back Office is down: the last-known registers at once, marked offline; then
    // live by itself when Back Office is back.
    bo.crash().await;
    let window = desktop.launch(&app).await;
    let text = window.wait_for_text("Offline — as of").await;
    assert!(text.contains("Bar 2"), "{text}");
    let tray = window.invoke("tray_state").await;
    assert_eq!(tray["icon"], "unreachable", "{tray}");
    bo.restart().await;
    window.wait_for_text("● Live").await;
    window.close().await;
    quit(&keyring).await;

    // Started while Back Office is down with nothing saved from before: it says so, and keeps
    // trying.
    for file in std::fs::read_dir(&cache).unwrap().flatten() {
        std::fs::remove_file(file.path()).unwrap();
    }
    bo.crash().await;
    let window = desktop.launch(&app).await;
    window.wait_for_text("Can't reach Back Office").await;
    window.wait_for_text("Register Sync keeps trying").await;
    bo.restart().await;
    window.wait_for_text("Kitchen").await;
    window.wait_for_text("● Live").await;
    window.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tray_as_the_desktop_shows_it() {
    use regsync_testkit::{TrayEntry, TrayHost, rgba};

    let Harbour {
        bo,
        venue,
        token,
        bar1: _bar1,
        bar2: _bar2,
    } = harbour().await;
    let keyring = PrivateKeyring::start();
    let host = TrayHost::start(&keyring);
    let home = tempfile::tempdir().unwrap();
    let desktop = desktop(&keyring, home.path(), false).await;
    let app = app();
    let labels = |menu: &[TrayEntry]| menu.iter().map(|e| e.label.clone()).collect::<Vec<_>>();

    // Signed out: nothing to sync.
    let window = desktop.launch(&app).await;
    let tray = host.item().await;
    let menu = tray.wait_for_entry(0, "Signed out").await;
    assert_eq!(
        labels(&menu),
        [
            "Signed out",
            "",
            "Open Register Sync",
            "Sync online registers",
            "Quit"
        ]
    );
    assert!(!menu[3].enabled, "nothing to sync when signed out");
    assert_eq!(
        tray.icon(),
        rgba(include_bytes!("../../icons/tray-unreachable.png"))
    );

    // Signed in: the site's state, when it was last known, and its sync.
    sign_in(&window, &bo, &venue).await;
    tray.wait_for_entry(0, "1 offline · 3 out of date").await;
    // The site comes from the page the window shows, which may settle a moment after the
    // status: wait for it rather than read the menu of that moment.
    let menu = tray
        .wait_for_entry(3, "Sync online registers — Main Bar")
        .await;
    assert_eq!(menu[0].label, "1 offline · 3 out of date");
    assert!(menu[1].label.starts_with("Updated "), "{menu:#?}");
    assert!(menu[3].enabled);
    assert_eq!(
        tray.icon(),
        rgba(include_bytes!("../../icons/tray-attention.png"))
    );

    // Sync from the tray: the two online registers sync; the Kitchen stays offline and behind.
    tray.click("Sync online registers");
    tray.wait_for_entry(0, "1 offline · 1 out of date").await;
    window.wait_for_text("online registers · 2 synced").await;

    // Closing the window keeps the app in the tray, still working; Open brings it back.
    let title = "Register Sync";
    assert_eq!(desktop.window_states(title), ["viewable"]);
    eventually(WAIT, "the window to hide on close", || async {
        desktop.request_close(title);
        (desktop.window_states(title) == ["unmapped"]).then_some(())
    })
    .await;
    let jobs = format!("/v1/sites/{}/jobs", venue.site.id);
    let before = bo.get(&jobs, &token).await.1.as_array().unwrap().len();
    tray.click("Sync online registers");
    eventually(
        WAIT,
        "a sync from the tray with the window closed",
        || async {
            let (_, now) = bo.get(&jobs, &token).await;
            (now.as_array()?.len() > before).then_some(())
        },
    )
    .await;
    tray.click("Open Register Sync");
    eventually(WAIT, "the window to come back", || async {
        (desktop.window_states(title) == ["viewable"]).then_some(())
    })
    .await;
    assert!(window.text().await.contains("Harbour manager"));

    // Quit from the tray.
    tray.click("Quit");
    quit(&keyring).await;
}

mod features;
mod window;
