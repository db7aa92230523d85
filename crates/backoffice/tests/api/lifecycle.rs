//! The process as an operator meets it: restarts, shutdown, the admin commands, the API document,
//! and no secret in the database file or the log.

use std::process::Stdio;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::harness::{BackOffice, Scene, Venue, workspace_binary};

#[tokio::test]
async fn data_and_sessions_survive_a_crash_and_restart() {
    let mut bo = BackOffice::start(&[]).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let session = bo.login(&venue.manager).await;
    let path = format!("/v1/sites/{}/catalog", venue.site.id);
    let (status, edited) = bo
        .call(
            Method::PATCH,
            &path,
            Some(&session.access_token),
            Some(json!({ "set_settings": { "footer": "See you soon" } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    bo.crash_and_restart().await;

    // The manager stays signed in: the access token still works, and so does the refresh token.
    let (status, after) = bo.get(&path, &session.access_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after, edited, "the menu and its revision survived");
    let (status, _) = bo.refresh(&session.refresh_token).await;
    assert_eq!(status, StatusCode::OK);
    bo.login(&venue.staff).await;
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let mut bo = BackOffice::start(&[]).await;
    let pid = Pid::from_raw(i32::try_from(bo.pid()).unwrap());
    kill(pid, Signal::SIGTERM).unwrap();
    let status = bo.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status}");
    assert!(bo.log().contains("shutting down"), "{}", bo.log());
}

#[tokio::test]
async fn health_answers_ok() {
    let bo = BackOffice::start(&[]).await;
    let (status, health) = bo.call(Method::GET, "/v1/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_each_is_served() {
    let bo = BackOffice::start(&[]).await;
    let (status, document) = bo.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    for expected in [
        "/v1/auth/login",
        "/v1/auth/refresh",
        "/v1/auth/logout",
        "/v1/auth/me",
        "/v1/sites",
        "/v1/sites/{site_id}",
        "/v1/sites/{site_id}/registers",
        "/v1/registers/{register_id}",
        "/v1/sites/{site_id}/catalog",
        "/v1/registers/{register_id}/sync",
        "/v1/sites/{site_id}/sync",
        "/v1/sites/{site_id}/jobs",
        "/v1/jobs/{job_id}",
        "/v1/events",
        "/v1/registers/connect",
        "/v1/health",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }
    assert!(document["components"]["schemas"]["ErrorBody"].is_object());
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());

    // Every documented operation is routed (none answers the router's own 404 or 405).
    let some_id = uuid::Uuid::now_v7().to_string();
    for (path, operations) in paths {
        let concrete = path
            .replace("{site_id}", &some_id)
            .replace("{register_id}", &some_id)
            .replace("{job_id}", &some_id);
        for method in operations.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let (status, body) = bo.call(method.clone(), &concrete, None, None).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            if status == StatusCode::NOT_FOUND {
                assert_ne!(
                    body["error"]["message"], "route not found",
                    "{method} {path}"
                );
            }
        }
    }
}

#[tokio::test]
async fn no_secret_lands_in_the_database_file_or_the_log() {
    let bo = BackOffice::start(&[]).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let session = bo.login(&venue.manager).await;
    let (_, refreshed) = bo.refresh(&session.refresh_token).await;
    bo.try_login(&venue.staff, "a wrong password").await;

    let secrets = [
        crate::harness::PASSWORD.to_owned(),
        "a wrong password".to_owned(),
        session.access_token.clone(),
        session.refresh_token.clone(),
        refreshed["access_token"].as_str().unwrap().to_owned(),
        refreshed["refresh_token"].as_str().unwrap().to_owned(),
        venue.registers[0].credential.clone(),
    ];
    let stored = bo.stored_bytes();
    assert!(!stored.is_empty(), "the database is on disk");
    let stored = String::from_utf8_lossy(&stored);
    let log = bo.log();
    assert!(log.contains("signed in"), "the log is being written: {log}");
    for secret in &secrets {
        assert!(
            !stored.contains(secret.as_str()),
            "a secret is in the database file"
        );
        assert!(!log.contains(secret.as_str()), "a secret is in the log");
    }
}

/// Runs the admin binary on a database, with optional stdin; answers (success, stdout, stderr).
async fn admin(
    db: impl AsRef<std::ffi::OsStr>,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut child = Command::new(workspace_binary("regsync-backoffice"))
        .arg("--database")
        .arg(db)
        .args(args)
        .env("REGSYNC_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test]
async fn an_operator_sets_up_a_venue_with_the_admin_commands() {
    let temp = tempfile::tempdir().unwrap();
    let db = temp.path().join("backoffice.db");

    let (ok, out, err) = admin(&db, &["company", "create", "Harbour"], None).await;
    assert!(ok, "{err}");
    assert!(out.contains("created company Harbour"), "{out}");
    let (ok, _, err) = admin(&db, &["company", "create", "Harbour"], None).await;
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");

    let (ok, _, err) = admin(
        &db,
        &["site", "create", "--company", "Harbour", "Main Bar"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    let (ok, _, err) = admin(
        &db,
        &["site", "create", "--company", "Nobody", "Main Bar"],
        None,
    )
    .await;
    assert!(!ok);
    assert!(err.contains("company not found"), "{err}");

    let user = [
        "user",
        "create",
        "--company",
        "Harbour",
        "--email",
        "alex@harbour.example",
        "--name",
        "Alex Manager",
        "--permission",
        "sites",
        "--password-stdin",
    ];
    let (ok, out, err) = admin(&db, &user, Some("first password\n")).await;
    assert!(ok, "{err}");
    assert!(out.contains("[sites]"), "{out}");
    let (ok, _, err) = admin(&db, &user, Some("short\n")).await;
    assert!(!ok);
    assert!(err.contains("password"), "{err}");
    let (ok, _, err) = admin(
        &db,
        &[
            "user",
            "create",
            "--company",
            "Harbour",
            "--email",
            "x@y.z",
            "--name",
            "X",
        ],
        None,
    )
    .await;
    assert!(
        !ok,
        "no password from a non-terminal without --password-stdin"
    );
    assert!(err.contains("--password-stdin"), "{err}");

    // Access per site: limited to Main Bar, then every site again.
    let email = user[user.iter().position(|a| *a == "--email").unwrap() + 1];
    let (ok, out, err) = admin(
        &db,
        &["user", "sites", "--email", email, "--site", "Main Bar"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("sees only: Main Bar"), "{out}");
    let (ok, _, err) = admin(
        &db,
        &["user", "sites", "--email", email, "--site", "Terrace"],
        None,
    )
    .await;
    assert!(!ok && err.contains("site"), "no such site: {err}");
    let (ok, out, err) = admin(&db, &["user", "sites", "--email", email, "--all"], None).await;
    assert!(ok, "{err}");
    assert!(out.contains("sees every site"), "{out}");

    let (ok, out, err) = admin(
        &db,
        &["register", "create", "--site", "Main Bar", "Bar 1"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    let credential = out
        .lines()
        .find_map(|l| l.strip_prefix("device credential (shown once, keep it safe): "))
        .expect("the credential is printed")
        .to_owned();
    assert!(credential.starts_with("rsd_"));

    let (ok, out, _) = admin(&db, &["list"], None).await;
    assert!(ok);
    for expected in [
        "Harbour",
        "alex@harbour.example",
        "[sites]",
        "site Main Bar",
        "register Bar 1",
    ] {
        assert!(out.contains(expected), "`{expected}` missing from:\n{out}");
    }
    assert!(
        !out.contains(&credential),
        "list never shows the credential again"
    );

    // The operator's setup is what Back Office serves; a reset password works at once.
    let (ok, _, err) = admin(
        &db,
        &[
            "user",
            "reset-password",
            "--email",
            "alex@harbour.example",
            "--password-stdin",
        ],
        Some("second password\n"),
    )
    .await;
    assert!(ok, "{err}");
    let bo = BackOffice::start_in(temp.path(), Vec::new()).await;
    assert_eq!(
        bo.try_login("alex@harbour.example", "first password")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, session) = bo
        .try_login("alex@harbour.example", "second password")
        .await;
    assert_eq!(status, StatusCode::OK);
    let token = session["access_token"].as_str().unwrap();
    let (_, sites) = bo.get("/v1/sites", token).await;
    let site = sites[0]["id"].as_str().unwrap();
    let (_, registers) = bo.get(&format!("/v1/sites/{site}/registers"), token).await;
    assert_eq!(registers[0]["name"], "Bar 1");
}

#[tokio::test]
async fn a_password_reset_signs_the_user_out_everywhere() {
    let bo = BackOffice::start(&[]).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let session = bo.login(&venue.manager).await;
    regsync_backoffice::admin::reset_password(&bo.db().await, &venue.manager, "a brand new one")
        .await
        .unwrap();
    assert_eq!(
        bo.get("/v1/auth/me", &session.access_token).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = bo.refresh(&session.refresh_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_simulator_runs_many_registers_from_a_credentials_file() {
    use crate::harness::FAST;
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let credentials = bo.dir.join("credentials.txt");
    let (ok, out, err) = admin(
        &bo.database,
        &[
            "register",
            "create",
            "--site",
            &venue.site.id.to_string(),
            "Sim",
            "--count",
            "3",
            "--credentials-out",
            credentials.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        !out.contains("rsd_"),
        "credentials go to the file, not the terminal: {out}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&credentials)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only the owner may read the credentials");
    }

    let mut simulator = Command::new(workspace_binary("regsync-register"))
        .args([
            "--back-office",
            &bo.url,
            "--credentials-file",
            credentials.to_str().unwrap(),
            "--count",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(simulator.stdout.take().unwrap()).lines();
    use tokio::io::AsyncBufReadExt;

    let (_, registers) = bo
        .get(&format!("/v1/sites/{}/registers", venue.site.id), &token)
        .await;
    let id_of = |name: &str| {
        let register = registers
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap();
        uuid::Uuid::parse_str(register["id"].as_str().unwrap()).unwrap()
    };
    bo.wait_online(&token, id_of("Sim 1"), true).await;
    bo.wait_online(&token, id_of("Sim 2"), true).await;
    assert_eq!(bo.register(&token, id_of("Sim 3")).await["online"], false);

    let job = bo.sync_register(&token, id_of("Sim 2"), true).await;
    bo.wait_job(&token, &job, "the simulated register to sync", |j| {
        !j["finished_at"].is_null()
    })
    .await;
    let banner = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("banner:") {
                return line;
            }
        }
        panic!("the simulator exited");
    })
    .await
    .unwrap();
    assert!(
        banner.ends_with("banner: Updated from Back Office by Harbour manager"),
        "{banner}"
    );
    simulator.kill().await.unwrap();
}
