//! The OpenAPI document and the server agree: what the document allows is accepted, what it
//! forbids is refused, and every answer the server can give is documented. schemathesis checks
//! the same from outside (`scripts/api-contract`); these are the cases it found, kept as tests.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{BackOffice, FAST, Scene, assert_error};

#[tokio::test]
async fn requests_the_document_allows_are_accepted() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let catalog = format!("/v1/sites/{}/catalog", venue.site.id);

    // A whole number written with a fraction of zero is a whole number (JSON Schema's integer).
    let whole = json!({
        "expected_revision": 1.0,
        "catalog": { "products": [{ "id": "tea", "name": "Tea", "price_cents": 6390.0 }] }
    });
    let (status, body) = bo
        .call(Method::PUT, &catalog, Some(&token), Some(whole))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["catalog"]["products"][0]["price_cents"], 6390);
    let fraction = json!({ "catalog": { "products": [{ "id": "tea", "name": "Tea", "price_cents": 6390.5 }] } });
    let answer = bo
        .call(Method::PUT, &catalog, Some(&token), Some(fraction))
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_field");

    // An edit that changes nothing changes nothing.
    let (status, body) = bo
        .call(Method::PATCH, &catalog, Some(&token), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revision"], 2);

    // A sync body of `null` is documented as allowed: the defaults.
    let sync = format!("/v1/registers/{}/sync", venue.registers[0].register.id);
    let (status, body) = bo
        .call(Method::POST, &sync, Some(&token), Some(Value::Null))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["retry_when_free"], true);

    // An email of spaces is nobody's: the same answer as any unknown email. A password of 1,024
    // characters is allowed, whatever their bytes.
    let (status, _) = bo.try_login("   ", "secret").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = bo.try_login(&venue.manager, &"é".repeat(1024)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = bo.try_login(&venue.manager, &"é".repeat(1025)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn query_bounds_are_the_documented_ones() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let job = bo
        .sync_register(&token, venue.registers[0].register.id, true)
        .await;
    let job = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
    let jobs = format!("/v1/sites/{}/jobs", venue.site.id);

    for ok in [
        format!("{job}?wait_secs=0"),
        format!("{jobs}?limit=1"),
        format!("{jobs}?limit=200"),
    ] {
        assert_eq!(bo.get(&ok, &token).await.0, StatusCode::OK, "{ok}");
    }
    for refused in [
        format!("{job}?wait_secs=26"),
        format!("{job}?wait_secs=2147483648"),
        format!("{job}?wait_secs=-1"),
        format!("{jobs}?limit=0"),
        format!("{jobs}?limit=201"),
        format!("{jobs}?limit=2147483648"),
    ] {
        let answer = bo.get(&refused, &token).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_query");
    }
}

#[tokio::test]
async fn the_document_says_every_answer_and_header_the_server_gives() {
    let bo = BackOffice::start(&[]).await;
    let (_, document) = bo.call(Method::GET, "/v1/openapi.json", None, None).await;
    let paths = document["paths"].as_object().unwrap();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            for status in ["400", "408"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path}: no {status}"
                );
            }
            let roles = &operation["security"][0]["bearer"];
            if roles.is_array() {
                assert!(responses.contains_key("401"), "{method} {path}: no 401");
            }
            if roles == &json!(["sites"]) {
                assert!(responses.contains_key("403"), "{method} {path}: no 403");
            }
            if operation.get("requestBody").is_some() {
                for status in ["413", "415"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path}: no {status}"
                    );
                }
            }
            for (status, response) in responses {
                if response.get("$ref").is_some() {
                    continue;
                }
                let headers = &response["headers"];
                assert!(
                    headers["x-request-id"].is_object(),
                    "{method} {path} {status}: no x-request-id"
                );
                match status.as_str() {
                    "401" => assert!(headers["WWW-Authenticate"].is_object(), "{method} {path}"),
                    "429" | "503" => {
                        assert!(headers["Retry-After"].is_object(), "{method} {path}")
                    }
                    _ => {}
                }
            }
        }
    }

    let connect = &paths["/v1/registers/connect"]["get"];
    assert_eq!(connect["security"], json!([{ "device": [] }]));
    assert!(document["components"]["securitySchemes"]["device"].is_object());

    let stream = &paths["/v1/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]["schema"]
        ["properties"]["data"];
    assert_eq!(stream["contentMediaType"], "application/json");
    assert_eq!(
        stream["contentSchema"]["$ref"],
        "#/components/schemas/Event"
    );

    let parameter = |path: &str, name: &str| {
        paths[path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    let wait = parameter("/v1/jobs/{job_id}", "wait_secs");
    assert_eq!(
        (&wait["in"], &wait["required"]),
        (&json!("query"), &json!(false))
    );
    let wait = &wait["schema"];
    assert_eq!(
        (wait["minimum"].as_f64(), wait["maximum"].as_f64()),
        (Some(0.0), Some(25.0))
    );
    let limit = parameter("/v1/sites/{site_id}/jobs", "limit");
    assert_eq!(limit["in"], "query");
    let limit = &limit["schema"];
    assert_eq!(
        (limit["minimum"].as_f64(), limit["maximum"].as_f64()),
        (Some(1.0), Some(200.0))
    );
}
