//! One exchange with Back Office: the request, and its answer read as the API documents it —
//! or as the [`Error`] that says why not.

use std::time::Duration;

use regsync_protocol::api::ErrorBody;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result, transport_error};

pub(crate) struct Empty;

impl<'de> serde::Deserialize<'de> for Empty {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Empty)
    }
}

/// Maps an error response to an [`Error`], from its status and (if it has our shape) its body.
pub(crate) fn error_from(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> Error {
    let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) else {
        let preview: String = String::from_utf8_lossy(&body[..body.len().min(120)])
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        return Error::BadResponse {
            status: status.as_u16(),
            detail: if preview.is_empty() {
                "an empty error body".into()
            } else {
                format!("not Back Office's error shape: {preview}")
            },
        };
    };
    match status {
        StatusCode::UNAUTHORIZED => Error::NotSignedIn {
            code: error.code,
            message: error.message,
        },
        StatusCode::FORBIDDEN => Error::Forbidden {
            message: error.message,
        },
        StatusCode::NOT_FOUND => Error::NotFound {
            message: error.message,
        },
        StatusCode::TOO_MANY_REQUESTS => Error::RateLimited {
            retry_after: headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .map(Duration::from_secs),
            message: error.message,
        },
        _ => Error::Api {
            status: status.as_u16(),
            code: error.code,
            message: error.message,
        },
    }
}

pub(crate) async fn send<T: DeserializeOwned, B: Serialize>(
    http: &reqwest::Client,
    base: &str,
    timeout: Duration,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<&B>,
) -> Result<T> {
    let (status, bytes) = send_bytes(http, base, timeout, method, path, bearer, body).await?;
    parse_json(status, &bytes)
}

/// [`send`] for an answer that is not JSON (a CSV export): its status and body, once it is a
/// success; failures are the same errors.
pub(crate) async fn send_bytes<B: Serialize>(
    http: &reqwest::Client,
    base: &str,
    timeout: Duration,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<&B>,
) -> Result<(StatusCode, Vec<u8>)> {
    let mut request = http
        .request(method, format!("{base}{path}"))
        .timeout(timeout);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .map_err(|e| transport_error(base, timeout, e))?;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| transport_error(base, timeout, e))?;
    if !status.is_success() {
        return Err(error_from(status, &headers, &bytes));
    }
    Ok((status, bytes.to_vec()))
}

/// A successful answer's JSON body (an empty body reads as `null`).
pub(crate) fn parse_json<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> Result<T> {
    let bytes = if bytes.is_empty() {
        &b"null"[..]
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| Error::BadResponse {
        status: status.as_u16(),
        detail: format!("not the documented JSON: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_map_to_actionable_errors() {
        let body = br#"{"error":{"code":"rate_limited","message":"too many"}}"#;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "42".parse().unwrap());
        match error_from(StatusCode::TOO_MANY_REQUESTS, &headers, body) {
            Error::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(42)))
            }
            other => panic!("{other:?}"),
        }
        match error_from(
            StatusCode::BAD_GATEWAY,
            &headers,
            b"<html>Bad gateway</html>",
        ) {
            Error::BadResponse { status, detail } => {
                assert_eq!(status, 502);
                assert!(detail.contains("<html>"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
}
