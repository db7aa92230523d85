//! Back Office over HTTPS with its own certificate: a test CA made here, no proxy.

use reqwest::StatusCode;
use serde_json::json;

use regsync_testkit::tls::TestCa;

use crate::harness::{BackOffice, PASSWORD, Venue};

#[tokio::test]
async fn back_office_serves_https_with_its_own_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Register Sync test CA");
    let flags = ca.issue(dir.path(), &["localhost"]).flags();
    let bo = BackOffice::start(&flags.each_ref().map(String::as_str)).await;
    let ca = ca.pem();
    assert!(bo.url.starts_with("https://127.0.0.1:"), "{}", bo.url);
    let url = bo.url.replace("127.0.0.1", "localhost");
    let venue = Venue::seed(&bo.db().await, "Harbour").await;

    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let health = trusting
        .get(format!("{url}/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        health.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let login = trusting
        .post(format!("{url}/v1/auth/login"))
        .json(&json!({ "email": venue.manager, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);

    // Refused: a client that does not trust the CA, and a name the certificate is not for.
    let untrusting = reqwest::Client::new();
    let error = untrusting
        .get(format!("{url}/v1/health"))
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{error:?}").to_lowercase().contains("certificate"),
        "{error:?}"
    );
    let wrong_name = trusting
        .get(format!("{}/v1/health", bo.url))
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{wrong_name:?}")
            .to_lowercase()
            .contains("certificate"),
        "{wrong_name:?}"
    );
    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(bo.url.replace("https://", "http://") + "/v1/health")
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()));
}

#[tokio::test]
async fn a_certificate_file_that_is_not_pem_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    let output =
        tokio::process::Command::new(crate::harness::workspace_binary("regsync-backoffice"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--database"])
            .arg(dir.path().join("b.db"))
            .arg("--tls-cert")
            .arg(dir.path().join("cert.pem"))
            .arg("--tls-key")
            .arg(dir.path().join("key.pem"))
            .output()
            .await
            .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cert.pem"), "{stderr}");
}
