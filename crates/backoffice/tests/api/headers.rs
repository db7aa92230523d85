//! What every answer says about itself: never cached, never sniffed or framed, and one error
//! shape even when Back Office gives up on a slow request.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{BackOffice, FAST, PASSWORD, Venue};

#[tokio::test]
async fn token_answers_are_never_cached() {
    let bo = BackOffice::start(FAST).await;
    let venue = Venue::seed(&bo.db().await, "Harbour").await;
    let login = bo
        .raw()
        .post(format!("{}/v1/auth/login", bo.url))
        .json(&json!({ "email": venue.manager, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert_eq!(login.headers()["cache-control"], "no-store");
    let session: Value = login.json().await.unwrap();

    let refresh = bo
        .raw()
        .post(format!("{}/v1/auth/refresh", bo.url))
        .json(&json!({ "refresh_token": session["refresh_token"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status(), 200);
    assert_eq!(refresh.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn every_answer_carries_the_baseline_headers() {
    let bo = BackOffice::start(FAST).await;
    for path in ["/v1/health", "/v1/no-such-route", "/v1/sites"] {
        let response = bo
            .raw()
            .get(format!("{}{path}", bo.url))
            .send()
            .await
            .unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
    }
}

#[tokio::test]
async fn a_request_too_slow_to_arrive_gets_408_in_the_error_shape() {
    let bo = BackOffice::start(&["--request-timeout-secs", "2"]).await;
    let address = bo.url.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    // Headers promise 100 bytes; only a few ever come.
    let request = format!(
        "POST /v1/auth/login HTTP/1.1\r\nHost: {address}\r\ncontent-type: application/json\r\n\
         content-length: 100\r\n\r\n{{\"email\":"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buffer = [0u8; 4096];
        loop {
            let n = socket.read(&mut buffer).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..n]);
            if String::from_utf8_lossy(&answer).contains("request_timeout") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled request");
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 408"), "{answer}");
    assert!(
        answer.contains("content-type: application/json"),
        "{answer}"
    );
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let body: Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(body["error"]["code"], "request_timeout");
}

/// Reads until the server closes the connection (or `within` passes); answers what came and
/// whether it closed.
async fn read_until_closed(socket: &mut tokio::net::TcpStream, within: Duration) -> (String, bool) {
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buffer = [0u8; 4096];
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

#[tokio::test]
async fn headers_sent_a_line_at_a_time_are_cut_off() {
    let bo = BackOffice::start(&["--header-read-timeout-secs", "2"]).await;
    let address = bo.url.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let started = std::time::Instant::now();
    let head = format!("GET /v1/health HTTP/1.1\r\nHost: {address}\r\n");
    socket.write_all(head.as_bytes()).await.unwrap();
    // One more header line every half second, never the blank line that ends them.
    let mut cut_off = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if socket.write_all(b"x-slow: 1\r\n").await.is_err() {
            cut_off = true;
            break;
        }
        let mut probe = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(10), socket.read(&mut probe)).await;
        if matches!(read, Ok(Ok(0)) | Ok(Err(_))) {
            cut_off = true;
            break;
        }
    }
    assert!(
        cut_off,
        "a client trickling headers kept its connection for 10 s"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let bo = BackOffice::start(&["--header-read-timeout-secs", "2"]).await;
    let address = bo.url.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!("GET /v1/health HTTP/1.1\r\nHost: {address}\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let (answer, closed) = read_until_closed(&mut socket, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle kept-alive connection stayed open for 10 s");
}
