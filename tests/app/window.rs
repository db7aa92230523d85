//! The window itself: axe-core inside it in both schemes, and a page that survives its WebKit
//! process dying.

use super::*;

/// axe's serious and critical findings, as lines to read in a failure.
fn serious(violations: &[serde_json::Value]) -> Vec<String> {
    violations
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .map(|v| {
            format!(
                "{} ({}): {} — {}",
                v["id"], v["impact"], v["help"], v["nodes"]
            )
        })
        .collect()
}

/// axe-core inside the real window, on sign-in, the registers page, the result card, the
/// scheduled syncs, the settings and the overview of all sites with its result card, in the
/// light scheme and the dark one: nothing serious or critical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_passes_axe_in_light_and_dark() {
    let Harbour {
        bo,
        venue,
        token: _,
        bar1: _bar1,
        bar2: _bar2,
    } = harbour().await;
    // A second site, for the overview.
    let db = bo.db().await;
    let terrace =
        regsync_backoffice::admin::create_site(&db, &venue.company.id.to_string(), "Terrace")
            .await
            .unwrap();
    regsync_backoffice::admin::create_register(&db, &terrace, "Patio")
        .await
        .unwrap();
    for dark in [false, true] {
        let keyring = PrivateKeyring::start();
        let home = tempfile::tempdir().unwrap();
        let mut env = home_env(&keyring, home.path());
        env.push(("REGSYNC_NOTIFICATIONS", "0".into()));
        if dark {
            env.push(("GTK_THEME", "Adwaita:dark".into()));
        }
        let desktop = Desktop::start(&env).await;
        let window = desktop.launch(&app()).await;
        window.find("#sign-in").await;
        let scheme = window
            .script("return matchMedia('(prefers-color-scheme: dark)').matches")
            .await;
        assert_eq!(
            scheme,
            serde_json::json!(dark),
            "the window's colour scheme"
        );
        let mut found = vec![];
        let mut check = |page: &str, violations: Vec<serde_json::Value>| {
            let scheme = if dark { "dark" } else { "light" };
            found.extend(
                serious(&violations)
                    .into_iter()
                    .map(|v| format!("{page}, {scheme}: {v}")),
            );
        };
        check("sign-in", window.axe().await);

        sign_in(&window, &bo, &venue).await;
        window.wait_for_text("Kitchen").await;
        check("registers", window.axe().await);
        window.click("#sync-online").await;
        window.find("#site-result").await;
        window.wait_for_text("2 synced").await;
        check("result card", window.axe().await);
        window.click("#open-schedules").await;
        window.find("#schedule-form").await;
        check("scheduled syncs", window.axe().await);
        window.click("#open-schedules").await;
        window.click("#settings").await;
        window.find("#settings-panel input").await;
        check("settings", window.axe().await);
        let shot = if dark {
            "registers-dark.png"
        } else {
            "registers-light.png"
        };
        window.screenshot(&screenshots().join(shot)).await;
        window.click("#all-sites").await;
        window.click("#sync-all").await;
        window.find("#all-result").await;
        window.wait_for_text("Terrace: 1 skipped").await;
        check("all sites", window.axe().await);
        window.close().await;
        quit(&keyring).await;
        assert!(found.is_empty(), "axe found:\n{}", found.join("\n"));
    }
}

/// The pids of `app` processes on `display` (several test binaries may run the same build).
fn app_processes(app: &std::path::Path, display: &str) -> Vec<u32> {
    let mut found = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let exe = std::fs::read_link(entry.path().join("exe")).unwrap_or_default();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let on_display = environ
            .split(|b| *b == 0)
            .any(|var| var == format!("DISPLAY={display}").as_bytes());
        if exe == app && on_display {
            found.push(pid);
        }
    }
    found
}

/// WebKit runs the page in a process of its own. When it dies (a graphics driver crash, say),
/// the window does not stay blank: the page is loaded again and shows the registers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_comes_back_when_its_webkit_process_dies() {
    let Harbour {
        bo,
        venue,
        token: _,
        bar1: _bar1,
        bar2: _bar2,
    } = harbour().await;
    let keyring = PrivateKeyring::start();
    let home = tempfile::tempdir().unwrap();
    let desktop = desktop(&keyring, home.path(), false).await;
    let app = std::fs::canonicalize(app()).unwrap();
    let window = desktop.launch(&app).await;
    sign_in(&window, &bo, &venue).await;
    window.wait_for_text("Kitchen").await;

    let apps = app_processes(&app, desktop.display());
    assert_eq!(apps.len(), 1, "{apps:?}");
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", apps[0])).unwrap();
    let page = children
        .split_whitespace()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.starts_with("WebKitWebProces"))
        })
        .expect("the page's WebKit process")
        .to_owned();
    let loads = desktop.log().matches("the page loaded").count();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(page.parse().unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // WebDriver ends its session with the page's process; the app's own log and its processes
    // tell the rest: the page is loaded again, in a new process, and asks for the session.
    eventually(WAIT, "the page to be loaded again", || async {
        let log = desktop.log();
        (log.contains("the page's process ended; loading the page again")
            && log.matches("the page loaded").count() > loads)
            .then_some(())
    })
    .await;
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", apps[0])).unwrap();
    let pages: Vec<&str> = children
        .split_whitespace()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.starts_with("WebKitWebProces"))
        })
        .collect();
    assert!(
        !pages.is_empty() && !pages.contains(&page.as_str()),
        "a new page process: {pages:?}"
    );
    // The WebDriver session is gone with the old page: end the app as the desktop would.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(apps[0]).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    );
    quit(&keyring).await;
}
