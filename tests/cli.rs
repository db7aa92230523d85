//! The `regsync` binary as IT staff use it: against a real Back Office with register agents, with
//! the real Secret Service (a private gnome-keyring on a private session bus).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use regsync_testkit::{BackOffice, FAST, PASSWORD, PrivateKeyring, Venue, WAIT, eventually};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::process::Command;

/// One user's machine: a home with config and data folders, and a keychain.
struct Desk {
    keyring: PrivateKeyring,
    home: tempfile::TempDir,
}

impl Desk {
    fn new() -> Desk {
        Desk {
            keyring: PrivateKeyring::start(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let home = self.home.path();
        let mut command = Command::new(regsync_testkit::binary_of("regsync-client", "regsync"));
        command
            .args(args)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.keyring.bus_address)
            .env_remove("REGSYNC_CONFIG_DIR")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self.command(args).stdin(Stdio::piped()).spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).await.unwrap();
        }
        drop(input);
        tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("regsync finished in time")
            .unwrap()
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend(args);
        let output = self.run(&all, None).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    async fn login(&self, bo: &BackOffice, email: &str) {
        let output = self
            .run(
                &[
                    "login",
                    "--url",
                    &bo.url,
                    "--email",
                    email,
                    "--password-stdin",
                ],
                Some(&format!("{PASSWORD}\n")),
            )
            .await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn stored_token(&self, bo: &BackOffice, email: &str) -> Option<String> {
        self.keyring
            .lookup("register-sync", &format!("{email} at {}", bo.url))
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

#[tokio::test]
async fn login_keeps_only_the_refresh_token_in_the_keychain_and_logout_removes_it() {
    let bo = BackOffice::start(FAST).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let desk = Desk::new();

    let wrong = desk
        .run(
            &[
                "login",
                "--url",
                &bo.url,
                "--email",
                &venue.manager,
                "--password-stdin",
            ],
            Some("nope\n"),
        )
        .await;
    assert_eq!(code(&wrong), Some(2), "a wrong password is exit 2");
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong email or password"));
    assert_eq!(desk.stored_token(&bo, &venue.manager), None);

    desk.login(&bo, &venue.manager).await;
    let token = desk
        .stored_token(&bo, &venue.manager)
        .expect("the refresh token is in the keychain");
    assert!(token.starts_with("rsr_"));

    // The config file names the Back Office and the email; no file holds the token.
    let files = files_under(desk.home.path());
    assert!(!files.is_empty());
    let mut config = None;
    for file in &files {
        let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
        assert!(!text.contains(&token), "{} holds the token", file.display());
        assert!(
            !text.contains(PASSWORD),
            "{} holds the password",
            file.display()
        );
        if file.ends_with("config.json") {
            config = Some(text);
        }
    }
    let config: Value = serde_json::from_str(&config.expect("a config file")).unwrap();
    assert_eq!(
        config,
        serde_json::json!({ "url": bo.url, "email": venue.manager })
    );

    let me = desk.json(&["whoami"]).await;
    assert_eq!(me["user"]["display_name"], "Harbour manager");
    // Every use rotates the refresh token; the keychain keeps the newest.
    let rotated = desk.stored_token(&bo, &venue.manager).unwrap();
    assert_ne!(rotated, token);

    let out = desk.run(&["logout"], None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        desk.stored_token(&bo, &venue.manager),
        None,
        "the keychain entry is gone"
    );
    let after = desk.run(&["sites"], None).await;
    assert_eq!(code(&after), Some(2), "not signed in is exit 2");
}

#[tokio::test]
async fn every_command_against_back_office_with_registers() {
    let bo = BackOffice::start(FAST).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let desk = Desk::new();
    desk.login(&bo, &venue.manager).await;
    let token = bo.login(&venue.manager).await.access_token;
    let _bar1 = bo.agent(&venue.registers[0].credential);
    let bar2 = bo.agent(&venue.registers[1].credential);
    for register in &venue.registers[..2] {
        bo.wait_online(&token, register.register.id, true).await;
    }

    let sites = desk.json(&["sites"]).await;
    assert_eq!(sites[0]["name"], "Main Bar");
    let table = desk.run(&["registers", "--site", "main bar"], None).await;
    let table = String::from_utf8(table.stdout).unwrap();
    for expected in ["Bar 1", "● online", "Kitchen", "○ offline", "1 behind"] {
        assert!(table.contains(expected), "`{expected}` missing:\n{table}");
    }

    // One register, waited for: synced, exit 0.
    let job = desk.json(&["sync", "Bar 1"]).await;
    assert_eq!(job["targets"][0]["state"], "synced");

    // Every online register, one in a sale and not asked to wait, one offline: exit 4.
    bar2.start_sale().unwrap();
    let output = desk
        .run(
            &[
                "--json",
                "sync",
                "--online",
                "--site",
                "Main Bar",
                "--no-retry",
            ],
            None,
        )
        .await;
    assert_eq!(
        code(&output),
        Some(4),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let job: Value = serde_json::from_slice(&output.stdout).unwrap();
    let states: Vec<&str> = job["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["synced", "skipped_busy", "skipped_offline"]);
    let human = desk.run(&["sync", "Kitchen", "--no-wait"], None).await;
    assert_eq!(code(&human), Some(0));
    assert!(String::from_utf8_lossy(&human.stdout).contains("skipped — offline"));

    let jobs = desk.json(&["jobs", "--site", "Main Bar"]).await;
    assert_eq!(jobs.as_array().unwrap().len(), 3);
    assert_eq!(jobs[0]["requested_by"], "Harbour manager");

    // The history to take away: every job's registers as CSV lines, oldest first.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let csv = desk
        .run(&["jobs", "--csv", "--from", &yesterday], None)
        .await;
    assert_eq!(
        code(&csv),
        Some(0),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    let csv = String::from_utf8(csv.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("job_id,job_created_at,"), "{csv}");
    assert_eq!(
        lines.len(),
        1 + 1 + 3 + 1,
        "a header, then 1, 3 and 1 registers:\n{csv}"
    );
    assert!(
        lines[1].contains(",register,back_office,Harbour manager,"),
        "{csv}"
    );
    assert!(
        lines[2..5]
            .iter()
            .any(|l| l.contains(",Bar 2,skipped_busy,")),
        "{csv}"
    );
    let empty = desk
        .run(
            &[
                "jobs",
                "--csv",
                "--from",
                "2020-01-01",
                "--to",
                "2020-01-02",
            ],
            None,
        )
        .await;
    assert_eq!(String::from_utf8(empty.stdout).unwrap().lines().count(), 1);
    let backwards = desk
        .run(
            &[
                "jobs",
                "--csv",
                "--from",
                "2026-01-02",
                "--to",
                "2026-01-01",
            ],
            None,
        )
        .await;
    assert_eq!(code(&backwards), Some(1));
    assert!(String::from_utf8_lossy(&backwards.stderr).contains("from: must be before to"));

    // watch: a live line for a change.
    let mut watch = desk
        .command(&["--json", "watch"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(first["type"], "snapshot");
    bar2.end_sale().unwrap();
    let seen = tokio::time::timeout(regsync_testkit::WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let event: Value = serde_json::from_str(&line).unwrap();
            if event["type"] == "register"
                && event["register"]["name"] == "Bar 2"
                && event["register"]["in_sale"] == false
            {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(seen);
    watch.kill().await.unwrap();
}

#[tokio::test]
async fn sync_queues_offline_registers_until_they_reconnect_when_asked() {
    let bo = BackOffice::start(FAST).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let desk = Desk::new();
    desk.login(&bo, &venue.manager).await;
    let token = bo.login(&venue.manager).await.access_token;
    let _bar1 = bo.agent(&venue.registers[0].credential);
    bo.wait_online(&token, venue.registers[0].register.id, true)
        .await;

    let started = std::time::Instant::now();
    let args = [
        "sync",
        "--online",
        "--site",
        "Main Bar",
        "--queue-offline",
        "--queue-for",
        "2h",
    ];
    let output = desk.run(&args, None).await;
    let text = String::from_utf8_lossy(&output.stdout);
    // Not all synced yet (exit 4), but nothing is left to wait for now but the queued ones.
    assert_eq!(code(&output), Some(4), "{text}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "waited {:?} for registers that are offline",
        started.elapsed()
    );
    let until = (chrono::Local::now() + chrono::Duration::hours(2)).format("%H:%M");
    for name in ["Bar 2", "Kitchen"] {
        let line = text.lines().find(|l| l.contains(name)).unwrap_or_default();
        assert!(
            line.contains("queued — offline, syncs when it reconnects, until"),
            "{name}: {text}"
        );
    }
    assert!(
        text.contains(&until.to_string())
            || text.contains(
                &(chrono::Local::now() + chrono::Duration::minutes(119))
                    .format("%H:%M")
                    .to_string()
            ),
        "until two hours from now: {text}"
    );
    assert!(text.contains("2 queued until they reconnect"), "{text}");

    // A queue longer than three days is refused before anything is asked.
    let output = desk
        .run(
            &["sync", "Kitchen", "--queue-offline", "--queue-for", "4d"],
            None,
        )
        .await;
    assert_eq!(code(&output), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("three days"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = desk
        .run(&["sync", "Kitchen", "--queue-for", "1h"], None)
        .await;
    assert_eq!(code(&output), Some(2), "--queue-for needs --queue-offline");

    // The Kitchen reconnects: its queued sync lands.
    let kitchen = bo.agent(&venue.registers[2].credential);
    eventually(WAIT, "the Kitchen synced on reconnecting", || async {
        (kitchen.applied_revision() == 1).then_some(())
    })
    .await;
    let jobs = desk.json(&["jobs", "--site", "Main Bar"]).await;
    assert_eq!(jobs[0]["counts"]["synced"], 2, "{jobs}");
    assert_eq!(jobs[0]["counts"]["awaiting_reconnect"], 1, "{jobs}");
}

#[tokio::test]
async fn schedules_are_added_listed_changed_and_removed_in_the_site_s_time_zone() {
    let bo = BackOffice::start(FAST).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let desk = Desk::new();
    desk.login(&bo, &venue.manager).await;

    let set = desk
        .json(&[
            "schedule",
            "time-zone",
            "--site",
            "Main Bar",
            "Europe/London",
        ])
        .await;
    assert_eq!(set["time_zone"], "Europe/London");
    let added = desk
        .json(&["schedule", "add", "--site", "main bar", "--at", "05:30"])
        .await;
    assert_eq!(
        added["days"].as_array().unwrap().len(),
        7,
        "every day unless told"
    );
    assert_eq!(added["time"], "05:30");
    let id = added["id"].as_str().unwrap().to_owned();
    let weekly = desk
        .run(
            &[
                "schedule",
                "add",
                "--site",
                "Main Bar",
                "--at",
                "6:00",
                "--days",
                "monday,fri",
            ],
            None,
        )
        .await;
    let text = String::from_utf8_lossy(&weekly.stdout);
    assert_eq!(code(&weekly), Some(0), "{text}");
    assert!(
        text.contains("schedule added: mon, fri at 06:00 (Europe/London); next run"),
        "{text}"
    );

    let list = desk.run(&["schedule", "list"], None).await;
    let text = String::from_utf8_lossy(&list.stdout);
    for expected in [
        "every day at 05:30 (Europe/London)",
        "mon, fri at 06:00",
        &id,
    ] {
        assert!(text.contains(expected), "`{expected}` missing:\n{text}");
    }

    let changed = desk
        .json(&[
            "schedule", "change", &id, "--at", "04:45", "--days", "sat,sun",
        ])
        .await;
    assert_eq!(changed["time"], "04:45");
    assert_eq!(changed["days"], serde_json::json!(["sat", "sun"]));
    let removed = desk.run(&["schedule", "remove", &id], None).await;
    assert_eq!(code(&removed), Some(0));
    let sites = desk.json(&["schedule", "list"]).await;
    assert_eq!(sites[0]["schedules"].as_array().unwrap().len(), 1);

    // Bad input is refused before anything is asked; an unknown zone by Back Office.
    for args in [
        &["schedule", "add", "--site", "Main Bar", "--at", "25:00"][..],
        &[
            "schedule", "add", "--site", "Main Bar", "--at", "05:30", "--days", "someday",
        ][..],
    ] {
        let output = desk.run(args, None).await;
        assert_eq!(code(&output), Some(2), "{args:?}");
    }
    let output = desk
        .run(
            &[
                "schedule",
                "time-zone",
                "--site",
                "Main Bar",
                "Mars/Olympus",
            ],
            None,
        )
        .await;
    assert_eq!(code(&output), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a time zone"));
}

#[tokio::test]
async fn sync_all_covers_every_site_with_a_line_each_and_one_history_line() {
    let bo = BackOffice::start(FAST).await;
    let db = bo.db().await;
    let venue = Venue::seed(&db, "Harbour").await;
    let company = venue.company.id.to_string();
    let terrace = regsync_backoffice::admin::create_site(&db, &company, "Terrace")
        .await
        .unwrap();
    let patio = regsync_backoffice::admin::create_register(&db, &terrace, "Patio")
        .await
        .unwrap();
    let desk = Desk::new();
    desk.login(&bo, &venue.manager).await;
    let token = bo.login(&venue.manager).await.access_token;
    let _bar1 = bo.agent(&venue.registers[0].credential);
    let _patio = bo.agent(&patio.credential);
    bo.wait_online(&token, patio.register.id, true).await;
    bo.wait_online(&token, venue.registers[0].register.id, true)
        .await;

    let output = desk.run(&["sync", "--all"], None).await;
    let text = String::from_utf8_lossy(&output.stdout);
    // Bar 2 and the Kitchen are offline: not everything synced.
    assert_eq!(code(&output), Some(4), "{text}");
    let main_bar = text
        .lines()
        .find(|l| l.contains("Main Bar"))
        .unwrap_or_default();
    let terrace_line = text
        .lines()
        .find(|l| l.contains("Terrace"))
        .unwrap_or_default();
    assert!(
        main_bar.contains(" 1 ") && main_bar.contains(" 2 "),
        "{text}"
    );
    assert!(terrace_line.contains(" 1 "), "{text}");
    assert!(
        text.contains("2 sites: 2 synced · 2 skipped · 0 failed or expired"),
        "{text}"
    );

    let history = desk.run(&["jobs"], None).await;
    let text = String::from_utf8_lossy(&history.stdout);
    assert_eq!(
        text.matches("online registers at 2 sites").count(),
        1,
        "one line for the whole sync:\n{text}"
    );
    let output = desk
        .run(&["sync", "--all", "--site", "Terrace"], None)
        .await;
    assert_eq!(code(&output), Some(2), "--all takes no site");
}

#[tokio::test]
async fn an_unreachable_back_office_is_its_own_exit_code() {
    let mut bo = BackOffice::start(FAST).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let desk = Desk::new();
    desk.login(&bo, &venue.manager).await;
    bo.crash().await;
    let output = desk.run(&["sites"], None).await;
    assert_eq!(
        code(&output),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot reach Back Office"));
    // Nothing was lost: back up, the stored session still works.
    bo.restart().await;
    assert_eq!(desk.json(&["sites"]).await[0]["name"], "Main Bar");
}

#[tokio::test]
async fn https_with_its_own_authority_and_no_password_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let ca = regsync_testkit::tls::TestCa::new("Register Sync test CA");
    let mut args: Vec<String> = ca.issue(dir.path(), &["localhost"]).flags().into();
    args.extend(FAST.iter().map(|a| a.to_string()));
    let bo = BackOffice::start(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let url = bo.url.replace("127.0.0.1", "localhost");
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let desk = Desk::new();
    let password = Some(format!("{PASSWORD}\n"));
    let login = |url: &str, extra: &[&str]| {
        let mut all = vec![
            "login",
            "--url",
            url,
            "--email",
            &venue.manager,
            "--password-stdin",
        ];
        all.extend_from_slice(extra);
        all.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };

    // http:// to another computer: refused before the password is even read.
    let plain = desk
        .run(&strs(&login("http://bo.harbour.example", &[])), None)
        .await;
    assert_eq!(code(&plain), Some(1));
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(stderr.contains("is not encrypted"), "{stderr}");

    // The test CA is not trusted by default: exit 3, in plain words.
    let untrusted = desk
        .run(&strs(&login(&url, &[])), password.as_deref())
        .await;
    assert_eq!(code(&untrusted), Some(3));
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        stderr.contains("The certificate of localhost is not trusted"),
        "{stderr}"
    );

    // Given the CA, sign-in works and later commands remember it.
    let ca_file = ca.write_pem(dir.path());
    let ca_arg = ca_file.display().to_string();
    let trusted = desk
        .run(
            &strs(&login(&url, &["--ca-cert", &ca_arg])),
            password.as_deref(),
        )
        .await;
    assert_eq!(
        code(&trusted),
        Some(0),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let sites = desk.json(&["sites"]).await;
    assert_eq!(sites[0]["name"], "Main Bar");
}

#[tokio::test]
async fn a_register_s_page_says_what_it_is_missing_and_a_site_can_be_narrowed() {
    let bo = BackOffice::start(FAST).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let desk = Desk::new();
    desk.login(&bo, &venue.manager).await;
    let token = bo.login(&venue.manager).await.access_token;
    let _bar1 = bo.agent(&venue.registers[0].credential);
    bo.wait_online(&token, venue.registers[0].register.id, true)
        .await;

    // Bar 1 takes the menu; then the menu moves on without it.
    let output = desk.run(&["sync", "Bar 1"], None).await;
    assert_eq!(code(&output), Some(0), "{output:?}");
    let menu = format!("/v1/sites/{}/catalog", venue.site.id);
    let edit = serde_json::json!({
        "upsert_categories": [{ "id": "hot", "name": "Hot drinks" }],
        "upsert_products": [{ "id": "fw", "name": "Flat white", "price_cents": 460, "category_id": "hot" }]
    });
    let (status, body) = bo
        .call(reqwest::Method::PATCH, &menu, Some(&token), Some(edit))
        .await;
    assert!(status.is_success(), "{body}");

    let output = desk.run(&["register", "bar 1"], None).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(code(&output), Some(0), "{text}");
    assert!(text.contains("1 behind (revision 1 of 2)"), "{text}");
    assert!(
        text.contains("What it is missing (revision 1 → 2)"),
        "{text}"
    );
    assert!(text.contains("Added: Flat white"), "{text}");
    assert!(text.contains("Categories: Hot drinks"), "{text}");
    let synced = text
        .lines()
        .find(|l| l.contains("Harbour manager"))
        .unwrap_or_default();
    assert!(
        synced.contains("synced"),
        "who asked and how it ended: {text}"
    );
    assert!(text.contains("came online"), "{text}");
    let output = desk.run(&["--json", "register", "Bar 1"], None).await;
    let activity: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(activity["missing"]["diff"]["added"][0], "Flat white");
    let output = desk.run(&["register", "Till 9"], None).await;
    assert_ne!(code(&output), Some(0));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no register named `Till 9`"));

    // A big site's filters: offline ones, and by name.
    let names = |output: &Output| {
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        ["Bar 1", "Bar 2", "Kitchen"]
            .into_iter()
            .filter(|name| text.contains(name))
            .collect::<Vec<_>>()
    };
    let offline = desk.run(&["registers", "--show", "offline"], None).await;
    assert_eq!(names(&offline), ["Bar 2", "Kitchen"]);
    let found = desk
        .run(&["registers", "--find", "BAR", "--show", "behind"], None)
        .await;
    assert_eq!(names(&found), ["Bar 1", "Bar 2"]);
    let none = desk.run(&["registers", "--show", "sale"], None).await;
    assert_eq!(names(&none), Vec::<&str>::new());
}
