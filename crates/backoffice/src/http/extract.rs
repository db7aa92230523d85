//! Extractors that turn malformed input into clear 4xx answers in the one error shape, instead
//! of axum's plain-text rejections.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use regsync_protocol::ErrorCode;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::Error;

/// A JSON body. Unlike axum's `Json`, every failure is a 4xx in our error shape, and a field of
/// the wrong type is named by its path (`catalog.products[2].price_cents: invalid type…`).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Error> {
        if !is_json(request.headers()) {
            return Err(Error::UnsupportedMediaType {
                message: "send the body as JSON, with `Content-Type: application/json`".into(),
            });
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Error::PayloadTooLarge {
                        limit: state.settings.body_limit,
                    }
                } else {
                    Error::bad_request(ErrorCode::UnreadableBody, rejection.body_text())
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Like [`ApiJson`], but an empty body or `null` means `T::default()`: for requests whose options
/// are all optional.
#[derive(Debug)]
pub struct ApiJsonOrDefault<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for ApiJsonOrDefault<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Error> {
        let empty = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0")
            || (!request.headers().contains_key(header::CONTENT_LENGTH)
                && !request.headers().contains_key(header::TRANSFER_ENCODING));
        if empty {
            return Ok(ApiJsonOrDefault(T::default()));
        }
        ApiJson::<Option<T>>::from_request(request, state)
            .await
            .map(|ApiJson(value)| ApiJsonOrDefault(value.unwrap_or_default()))
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let malformed = |error: serde_json::Error| {
        Error::bad_request(
            ErrorCode::MalformedJson,
            format!("the body is not valid JSON: {error}"),
        )
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data if path == "." => {
                Error::bad_request(ErrorCode::InvalidField, inner.to_string())
            }
            serde_json::error::Category::Data => Error::invalid_field(&path, inner),
            _ => malformed(inner),
        }
    })?;
    deserializer.end().map_err(malformed)?;
    Ok(value)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

/// A path parameter; one that does not parse (a malformed id) is a 400 naming it.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection: PathRejection| {
                Error::bad_request(ErrorCode::InvalidPath, rejection.body_text())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        email: String,
        nested: Vec<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        price: i64,
    }

    fn message(e: Error) -> (&'static str, String) {
        (e.code().as_str(), e.to_string())
    }

    #[test]
    fn wrong_types_name_the_field() {
        let (code, msg) =
            message(parse_json::<Body>(br#"{"email":"a","nested":[{"price":"x"}]}"#).unwrap_err());
        assert_eq!(code, "invalid_field");
        assert!(msg.starts_with("nested[0].price: invalid type"), "{msg}");
    }

    #[test]
    fn missing_fields_are_named() {
        let (code, msg) = message(parse_json::<Body>(br#"{"nested":[]}"#).unwrap_err());
        assert_eq!(code, "invalid_field");
        assert!(msg.contains("missing field `email`"), "{msg}");
    }

    #[test]
    fn syntax_errors_and_trailing_garbage_are_malformed() {
        for body in [&br#"{"email":"#[..], br#"{"email":"a","nested":[]} x"#, b""] {
            let (code, _) = message(parse_json::<Body>(body).unwrap_err());
            assert_eq!(code, "malformed_json", "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn json_content_types() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(is_json(&headers));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&headers));
    }
}
