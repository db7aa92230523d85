//! Signing in, refreshing, signing out, expiry and the limits on failed attempts.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{BackOffice, PASSWORD, Venue, assert_error, eventually};

#[tokio::test]
async fn manager_signs_in_and_sees_who_they_are() {
    let bo = BackOffice::start(&[]).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;

    // Emails are matched regardless of case and surrounding spaces.
    let (status, session) = bo
        .try_login(&format!("  {} ", venue.manager.to_uppercase()), PASSWORD)
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["me"]["user"]["display_name"], "Harbour manager");
    assert_eq!(session["me"]["company"]["name"], "Harbour");
    assert_eq!(session["me"]["permissions"], json!(["sites"]));
    assert_eq!(session["me"]["can_manage_sites"], true);

    let token = session["access_token"].as_str().unwrap();
    let (status, me) = bo.get("/v1/auth/me", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"]["email"], venue.manager);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_are_refused_alike() {
    let bo = BackOffice::start(&[]).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;

    let wrong_password = bo.try_login(&venue.manager, "not the password").await;
    let unknown_email = bo.try_login("nobody@harbour.example", PASSWORD).await;
    assert_error(
        &wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    // Same answer: whether an email has an account is not revealed.
    assert_eq!(wrong_password, unknown_email);
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401() {
    let bo = BackOffice::start(&[]).await;
    let (status, body) = bo.call(Method::GET, "/v1/sites", None, None).await;
    assert_error(&(status, body), StatusCode::UNAUTHORIZED, "not_signed_in");

    let answer = bo.get("/v1/sites", "rsa_made-up-token").await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_token");

    let response = bo
        .raw()
        .get(format!("{}/v1/auth/me", bo.url))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn a_refresh_token_works_once_and_reusing_it_ends_the_session() {
    let bo = BackOffice::start(&[]).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let first = bo.login(&venue.manager).await;

    let (status, second) = bo.refresh(&first.refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
    let second_access = second["access_token"].as_str().unwrap().to_owned();
    assert_ne!(
        second_refresh, first.refresh_token,
        "the refresh token rotates"
    );
    assert_eq!(
        bo.get("/v1/auth/me", &second_access).await.0,
        StatusCode::OK
    );

    // The first refresh token was copied by someone: presenting it again ends the session...
    assert_error(
        &bo.refresh(&first.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
    );
    // ...for the legitimate holder of the newer tokens too.
    assert_error(
        &bo.refresh(&second_refresh).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    );
    assert_error(
        &bo.get("/v1/auth/me", &second_access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    assert_error(
        &bo.get("/v1/auth/me", &first.access_token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );

    // Other sessions of the same user are unaffected.
    let other = bo.login(&venue.manager).await;
    assert_eq!(
        bo.get("/v1/auth/me", &other.access_token).await.0,
        StatusCode::OK
    );

    assert_error(
        &bo.refresh("rsr_never-issued").await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    );
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_let_at_most_one_through() {
    let bo = BackOffice::start(&[]).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let session = bo.login(&venue.manager).await;
    let attempts = (0..8).map(|_| bo.refresh(&session.refresh_token));
    let answers = futures::future::join_all(attempts).await;
    let ok = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert!(ok <= 1, "{ok} refreshes succeeded with one token");
    assert!(
        answers
            .iter()
            .all(|(s, _)| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED)
    );
}

#[tokio::test]
async fn signing_out_revokes_the_access_and_the_refresh_token() {
    let bo = BackOffice::start(&[]).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let session = bo.login(&venue.manager).await;
    let other_device = bo.login(&venue.manager).await;

    let (status, _) = bo
        .call(
            Method::POST,
            "/v1/auth/logout",
            Some(&session.access_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    assert_error(
        &bo.get("/v1/sites", &session.access_token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    let refreshed = bo.refresh(&session.refresh_token).await;
    assert_error(&refreshed, StatusCode::UNAUTHORIZED, "session_revoked");
    // Signing out on one PC leaves the manager signed in on another.
    assert_eq!(
        bo.get("/v1/sites", &other_device.access_token).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_expired_access_token_is_refused_and_refreshing_recovers() {
    let bo = BackOffice::start(&["--access-ttl-secs", "1"]).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let session = bo.login(&venue.manager).await;

    eventually(
        Duration::from_secs(10),
        "the access token to expire",
        || async {
            let answer = bo.get("/v1/auth/me", &session.access_token).await;
            (answer.0 == StatusCode::UNAUTHORIZED).then_some(answer)
        },
    )
    .await;
    assert_error(
        &bo.get("/v1/auth/me", &session.access_token).await,
        StatusCode::UNAUTHORIZED,
        "token_expired",
    );

    let (status, fresh) = bo.refresh(&session.refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    let (status, _) = bo
        .get("/v1/auth/me", fresh["access_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_account_with_retry_after() {
    let bo = BackOffice::start(&["--login-failures-per-account", "3"]).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;

    for _ in 0..3 {
        let answer = bo.try_login(&venue.manager, "guess").await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let response = bo
        .raw()
        .post(format!("{}/v1/auth/login", bo.url))
        .json(&json!({ "email": venue.manager, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    // Locked: even the right password waits until the window has passed.
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=900).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    // Another account is not held back by this one's failures.
    assert_eq!(bo.try_login(&venue.staff, PASSWORD).await.0, StatusCode::OK);
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_client_address() {
    let bo = BackOffice::start(&["--login-failures-per-address", "4"]).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;

    // Spraying one password over many accounts from one address.
    for i in 0..4 {
        let answer = bo
            .try_login(&format!("user{i}@harbour.example"), "Summer2026")
            .await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let answer = bo.try_login(&venue.manager, PASSWORD).await;
    assert_error(&answer, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[tokio::test]
async fn a_successful_sign_in_clears_the_account_failures() {
    let bo = BackOffice::start(&["--login-failures-per-account", "3"]).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    for _ in 0..2 {
        bo.try_login(&venue.manager, "typo").await;
    }
    bo.login(&venue.manager).await;
    for _ in 0..2 {
        bo.try_login(&venue.manager, "typo").await;
    }
    // Four failures in all, but never three in a row: still allowed.
    bo.login(&venue.manager).await;
}

/// Answers to a burst of sign-ins sent at once: how many were checked (401) and how many were
/// held back, each of those with Retry-After.
async fn burst(bo: &BackOffice, attempts: Vec<(String, &str)>) -> (usize, usize) {
    let calls = attempts.iter().map(|(email, password)| {
        bo.raw()
            .post(format!("{}/v1/auth/login", bo.url))
            .json(&json!({ "email": email, "password": password }))
            .send()
    });
    let (mut checked, mut held) = (0, 0);
    for response in futures::future::join_all(calls).await {
        let response = response.unwrap();
        match response.status() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                assert!(response.headers().contains_key("retry-after"));
                held += 1;
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    (checked, held)
}

#[tokio::test]
async fn wrong_passwords_sent_at_once_cannot_pass_the_account_limit() {
    let bo = BackOffice::start(&[]).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let attempts = (0..40).map(|_| (venue.manager.clone(), "guess")).collect();
    let (checked, held) = burst(&bo, attempts).await;
    assert!(
        checked <= 10,
        "{checked} wrong passwords were checked; the limit is 10"
    );
    assert_eq!(checked + held, 40);
}

/// An unauthenticated burst from one address: at most the address limit is checked, and the
/// hashing it triggers cannot take Back Office's memory with it (19 MiB a hash).
#[tokio::test]
async fn a_burst_of_sign_ins_keeps_to_the_address_limit_and_bounded_memory() {
    let bo = BackOffice::start(&[]).await;
    let attempts = (0..150)
        .map(|i| (format!("nobody{i}@harbour.example"), "Summer2026"))
        .collect();
    let (checked, held) = burst(&bo, attempts).await;
    assert!(
        checked <= 100,
        "{checked} attempts were checked; the limit is 100"
    );
    assert_eq!(checked + held, 150);
    let status = std::fs::read_to_string(format!("/proc/{}/status", bo.pid())).unwrap();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(
        peak_kb < 400 * 1024,
        "Back Office peaked at {} MiB",
        peak_kb / 1024
    );
}
