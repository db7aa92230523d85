//! The demo binary as a newcomer starts it: it prints the sign-in details, serves the demo
//! company, and its simulated registers come online.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use regsync_testkit::WAIT;
use serde_json::json;
use tokio::process::Command;

#[tokio::test]
async fn the_demo_seeds_a_company_and_serves_it() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_regsync-demo"))
        .args(["--listen", "127.0.0.1:0"])
        .env("REGSYNC_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if let Some(url) = line.strip_prefix("Back Office listening on ") {
                return url.to_owned();
            }
        }
        panic!("demo exited: {printed}");
    })
    .await
    .unwrap();
    assert!(printed.contains(regsync_demo::MANAGER_EMAIL), "{printed}");

    let http = reqwest::Client::new();
    let session: serde_json::Value = http
        .post(format!("{url}/v1/auth/login"))
        .json(&json!({
            "email": regsync_demo::MANAGER_EMAIL,
            "password": regsync_demo::MANAGER_PASSWORD,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["access_token"]
        .as_str()
        .expect("the demo manager signs in");
    let sites: serde_json::Value = http
        .get(format!("{url}/v1/sites"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = sites
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Main Bar", "Terrace"]);

    // The simulated registers connect by themselves.
    let site = sites[0]["id"].as_str().unwrap();
    regsync_testkit::eventually(WAIT, "a simulated register online", || async {
        let registers: serde_json::Value = http
            .get(format!("{url}/v1/sites/{site}/registers"))
            .bearer_auth(token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        registers
            .as_array()?
            .iter()
            .any(|r| r["online"] == true)
            .then_some(())
    })
    .await;
    child.kill().await.unwrap();
}
