//! Bad input gets a clear 4xx in the one error shape, never a 500, and changes nothing.

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{BackOffice, Scene, assert_error};

async fn send_raw(
    bo: &BackOffice,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let mut request = bo
        .raw()
        .request(method, format!("{}{path}", bo.url))
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
    )
}

const JSON: Option<&str> = Some("application/json");

#[tokio::test]
async fn malformed_json_and_wrong_types_are_400_naming_the_problem() {
    let Scene { bo, venue, token } = Scene::start(&[]).await;
    let catalog = format!("/v1/sites/{}/catalog", venue.site.id);
    let post = reqwest::Method::POST;
    let patch = reqwest::Method::PATCH;

    let answer = send_raw(
        &bo,
        post.clone(),
        "/v1/auth/login",
        None,
        JSON,
        r#"{"email": "a@b.c", "#,
    )
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_json");

    let answer = send_raw(
        &bo,
        post.clone(),
        "/v1/auth/login",
        None,
        JSON,
        r#"{"email": 5, "password": "x"}"#,
    )
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_field");
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("email:"),
        "{}",
        answer.1
    );

    let answer = send_raw(
        &bo,
        post.clone(),
        "/v1/auth/login",
        None,
        JSON,
        r#"{"password": "x"}"#,
    )
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_field");
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("email"),
        "{}",
        answer.1
    );

    let answer = send_raw(
        &bo,
        post.clone(),
        "/v1/auth/login",
        None,
        JSON,
        r#"{"email": "", "password": "x"}"#,
    )
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_field");

    let wrong_type =
        r#"{"upsert_products": [{"id": "1", "name": "Lager", "price_cents": "cheap"}]}"#;
    let answer = send_raw(&bo, patch.clone(), &catalog, Some(&token), JSON, wrong_type).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_field");
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("upsert_products[0].price_cents:"),
        "{}",
        answer.1
    );

    let typo = r#"{"upsert_prodcts": []}"#;
    let answer = send_raw(&bo, patch.clone(), &catalog, Some(&token), JSON, typo).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_field");
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upsert_prodcts")
    );

    let answer = send_raw(&bo, post.clone(), "/v1/auth/login", None, None, r#"{}"#).await;
    assert_error(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    let answer = send_raw(
        &bo,
        post,
        "/v1/auth/login",
        None,
        JSON,
        vec![0xff, 0xfe, 0x00],
    )
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_json");

    // Nothing was changed by any of it.
    assert_eq!(bo.get(&catalog, &token).await.1["revision"], 1);
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let Scene { bo, venue, token } = Scene::start(&["--body-limit", "4096"]).await;
    let catalog = format!("/v1/sites/{}/catalog", venue.site.id);
    let huge = format!(
        r#"{{"set_settings": {{"footer": "{}"}}}}"#,
        "x".repeat(10_000)
    );
    let answer = send_raw(
        &bo,
        reqwest::Method::PATCH,
        &catalog,
        Some(&token),
        JSON,
        huge,
    )
    .await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(bo.get(&catalog, &token).await.1["revision"], 1);
}

#[tokio::test]
async fn malformed_ids_unknown_routes_and_wrong_methods_get_json_errors() {
    let Scene { bo, token, .. } = Scene::start(&[]).await;

    let answer = bo.get("/v1/sites/not-a-uuid/registers", &token).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_path");

    let answer = bo.get("/v1/no-such-thing", &token).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found");

    let answer = bo
        .call(reqwest::Method::DELETE, "/v1/sites", Some(&token), None)
        .await;
    assert_error(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

    let response = bo
        .raw()
        .get(format!("{}/v1/sites", bo.url))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("x-request-id"));
}
