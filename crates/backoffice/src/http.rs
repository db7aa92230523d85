//! The HTTP edge: the `/v1` router, its middleware, the OpenAPI document and the extractors that
//! turn malformed input into clear 4xx answers instead of panics or 500s.

use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Error;
use crate::{AppState, auth, catalog, events, gateway, registers, sites, sync};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Register Sync Back Office",
        description = "Sites, registers, menus and syncs of a venue group. Errors always have the \
                       shape {\"error\": {\"code\", \"message\"}}."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign in, refresh, sign out"),
        (name = "sites", description = "Sites and their registers"),
        (name = "catalog", description = "The menu a sync delivers to registers"),
        (name = "sync", description = "Syncing registers, sync history and live events"),
        (name = "registers", description = "The channel registers connect on"),
        (name = "meta", description = "Health and this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(sites::list_sites))
        .routes(routes!(sites::get_site))
        .routes(routes!(registers::list_registers))
        .routes(routes!(registers::get_register))
        .routes(routes!(
            catalog::get_catalog,
            catalog::replace_catalog,
            catalog::edit_catalog
        ))
        .routes(routes!(sync::sync_register))
        .routes(routes!(sync::sync_site))
        .routes(routes!(sync::get_job))
        .routes(routes!(sync::list_site_jobs))
        .routes(routes!(events::events))
        .routes(routes!(gateway::connect))
        .routes(routes!(health))
}

pub fn router(app: AppState) -> Router {
    let (router, document) = api_router().split_for_parts();
    let document = std::sync::Arc::new(document);
    let settings = app.settings.clone();
    router
        .route(
            "/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move { Json(document.as_ref().clone()) }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(
            ServiceBuilder::new()
                // Every answer: never cached (tokens and private data, RFC 6749 §5.1), never
                // sniffed as something else, never framed, no referrer leaked.
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request| {
                            let request_id = request
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-");
                            // The path only: query strings are never logged.
                            tracing::info_span!(
                                "request",
                                request_id,
                                method = %request.method(),
                                path = request.uri().path(),
                            )
                        })
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(axum::middleware::map_response(timed_out))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    settings.request_timeout,
                )),
        )
        .with_state(app)
}

/// The timeout's bare 408, in the one error shape every other answer has.
async fn timed_out(response: axum::response::Response) -> axum::response::Response {
    if response.status() != StatusCode::REQUEST_TIMEOUT
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let body = regsync_protocol::api::ErrorBody {
        error: regsync_protocol::api::ErrorDetail {
            code: "request_timeout".into(),
            message: "the request took too long: Back Office stopped waiting for it".into(),
        },
    };
    (StatusCode::REQUEST_TIMEOUT, Json(body)).into_response()
}

async fn not_found() -> Error {
    Error::NotFound("route")
}

async fn method_not_allowed() -> impl IntoResponse {
    let body = regsync_protocol::api::ErrorBody {
        error: regsync_protocol::api::ErrorDetail {
            code: "method_not_allowed".into(),
            message: "this route does not take that method".into(),
        },
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body))
}

/// Back Office answers `ok` when its database does.
#[utoipa::path(
    get,
    path = "/v1/health",
    tag = "meta",
    responses((status = 200, body = regsync_protocol::api::Health))
)]
pub async fn health(
    axum::extract::State(app): axum::extract::State<AppState>,
) -> Result<Json<regsync_protocol::api::Health>, Error> {
    sqlx::query("SELECT 1").execute(&app.db).await?;
    Ok(Json(regsync_protocol::api::Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }))
}

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
                    Error::bad_request("unreadable_body", rejection.body_text())
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Like [`ApiJson`], but an empty body means `T::default()`: for requests whose options are all
/// optional.
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
        ApiJson::from_request(request, state)
            .await
            .map(|ApiJson(value)| ApiJsonOrDefault(value))
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let malformed = |error: serde_json::Error| {
        Error::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {error}"),
        )
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data if path == "." => {
                Error::bad_request("invalid_field", inner.to_string())
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
                Error::bad_request("invalid_path", rejection.body_text())
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
        (e.code(), e.to_string())
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
