//! The HTTP edge: the `/v1` router, its middleware, the OpenAPI document and the extractors that
//! turn malformed input into clear 4xx answers instead of panics or 500s.

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use regsync_protocol::ErrorCode;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Error;

mod extract;
mod openapi;

pub use extract::{ApiJson, ApiJsonOrDefault, ApiPath, parse_json};

use crate::{AppState, auth, catalog, events, gateway, on_db, registers, schedules, sites, sync};

/// The OpenAPI document served at `/v1/openapi.json`.
pub fn openapi() -> serde_json::Value {
    openapi::finish(api_router().split_for_parts().1)
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(sites::list_sites))
        .routes(routes!(sites::get_site))
        .routes(routes!(registers::list_registers))
        .routes(routes!(registers::get_register))
        .routes(routes!(registers::get_activity))
        .routes(routes!(
            catalog::get_catalog,
            catalog::replace_catalog,
            catalog::edit_catalog
        ))
        .routes(routes!(sync::sync_register))
        .routes(routes!(sync::sync_site))
        .routes(routes!(sync::get_job))
        .routes(routes!(sync::group::sync_all))
        .routes(routes!(sync::group::get_group))
        .routes(routes!(sync::list_site_jobs))
        .routes(routes!(sync::history::export_site_jobs))
        .routes(routes!(schedules::list, schedules::create))
        .routes(routes!(schedules::update, schedules::remove))
        .routes(routes!(schedules::set_time_zone))
        .routes(routes!(events::events))
        .routes(routes!(gateway::connect))
        .routes(routes!(
            crate::users::get_site_access,
            crate::users::put_site_access
        ))
        .routes(routes!(health))
}

pub fn router(app: AppState) -> Router {
    let (router, document) = api_router().split_for_parts();
    let document = std::sync::Arc::new(openapi::finish(document));
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
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::metrics::record,
        ))
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
            code: ErrorCode::RequestTimeout,
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
            code: ErrorCode::MethodNotAllowed,
            message: "this route does not take that method".into(),
        },
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body))
}

/// How long the health check waits for the database.
const HEALTH_DATABASE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Back Office answers `ok` when its database does, and 503 when it does not (or not within
/// three seconds), so a load balancer or a monitor takes the node out.
#[utoipa::path(
    get, path = "/v1/health", tag = "meta",
    responses(
        (status = 200, description = "Serving; the database answers", body = regsync_protocol::api::Health),
        (status = 503, description = "The database does not answer", body = regsync_protocol::api::Health),
    )
)]
pub async fn health(
    axum::extract::State(app): axum::extract::State<AppState>,
) -> (StatusCode, Json<regsync_protocol::api::Health>) {
    let check = async {
        on_db!(&app.db, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(drop))
    };
    let (code, status) = match tokio::time::timeout(HEALTH_DATABASE_WAIT, check).await {
        Ok(Ok(())) => (StatusCode::OK, "ok"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "health: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
        Err(_) => {
            tracing::warn!("health: the database took too long to answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    };
    let health = regsync_protocol::api::Health {
        status: status.into(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    (code, Json(health))
}
