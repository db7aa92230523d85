//! `regsync-backoffice backup` and `restore` on the SQLite database, with the real binary: a
//! backup taken while syncs run restores to a Back Office that works and shows the same
//! registers and jobs; a file that is not a backup is refused and the database left as it was.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;

use regsync_testkit::{BackOffice, FAST, Scene, state_of, workspace_binary};
use tokio::process::Command;

/// Runs an admin command of the binary; answers (success, stdout, stderr).
async fn admin(database: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(workspace_binary("regsync-backoffice"))
        .arg("--database")
        .arg(database)
        .args(args)
        .env("REGSYNC_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test]
async fn a_backup_taken_while_syncs_run_restores_to_a_working_back_office() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let agents: Vec<_> = venue
        .registers
        .iter()
        .map(|r| bo.agent(&r.credential))
        .collect();
    for r in &venue.registers {
        bo.wait_online(&token, r.register.id, true).await;
    }
    // Load: site syncs one after another while the backup is taken.
    let mut jobs = Vec::new();
    for _ in 0..3 {
        jobs.push(bo.sync_site(&token, venue.site.id, true).await);
    }
    let backup = bo.dir.join("backup.db");
    let backup_path = backup.to_str().unwrap();
    let (ok, out, err) = admin(&bo.database, &["backup", "--to", backup_path]).await;
    assert!(ok, "{err}");
    assert!(out.contains("backed up"), "{out}");
    for _ in 0..3 {
        jobs.push(bo.sync_site(&token, venue.site.id, true).await);
    }
    for job in &jobs {
        bo.wait_job(&token, job, "the job finished", |j| {
            j["finished_at"].is_string()
        })
        .await;
    }
    let (ok, _, err) = admin(&bo.database, &["backup", "--to", backup_path]).await;
    assert!(!ok && err.contains("exists already"), "{err}");

    // Restored in a new place, Back Office starts on it and has what was there at the backup.
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("backoffice.db");
    let target = target.to_str().unwrap();
    let (ok, out, err) = admin(target, &["restore", "--from", backup_path]).await;
    assert!(ok, "{err}");
    assert!(out.contains("restored"), "{out}");
    let restored = BackOffice::start_in(
        elsewhere.path(),
        FAST.iter().map(|a| a.to_string()).collect(),
    )
    .await;
    let token2 = restored.login(&venue.manager).await.access_token;
    let path = format!("/v1/sites/{}/registers", venue.site.id);
    let (_, before) = bo.get(&path, &token).await;
    let (_, after) = restored.get(&path, &token2).await;
    let names = |list: &serde_json::Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&after), names(&before));
    let (_, history) = restored
        .get(&format!("/v1/sites/{}/jobs", venue.site.id), &token2)
        .await;
    let restored_jobs = history.as_array().unwrap();
    assert!(
        restored_jobs.len() >= 3,
        "the jobs asked before the backup are in it: {history}"
    );
    for job in restored_jobs {
        let original = bo.job(&token, &job["id"]).await;
        assert_eq!(job["site_id"], original["site_id"]);
        assert_eq!(job["created_at"], original["created_at"]);
    }
    // And it works: a register connects to the restored Back Office and syncs.
    for agent in agents {
        agent.shutdown().await;
    }
    let bar1 = &venue.registers[0];
    let agent = restored.agent(&bar1.credential);
    restored.wait_online(&token2, bar1.register.id, true).await;
    let job = restored
        .sync_register(&token2, bar1.register.id, true)
        .await;
    let done = restored
        .wait_job(&token2, &job, "the sync on the restored Back Office", |j| {
            j["finished_at"].is_string()
        })
        .await;
    assert_eq!(state_of(&done, "Bar 1"), "synced");
    agent.shutdown().await;
}

#[tokio::test]
async fn a_file_that_is_not_a_backup_is_refused_and_the_database_kept() {
    let mut bo = BackOffice::start(&[]).await;
    // Restoring is for a stopped Back Office.
    bo.crash().await;
    let before = std::fs::read(&bo.database).unwrap();
    let bogus = bo.dir.join("notes.txt");
    std::fs::write(&bogus, "this is not a database").unwrap();
    let (ok, _, err) = admin(
        &bo.database,
        &["restore", "--from", bogus.to_str().unwrap()],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("not a") || err.contains("database"), "{err}");
    assert_eq!(
        std::fs::read(&bo.database).unwrap(),
        before,
        "the database is untouched"
    );
}
