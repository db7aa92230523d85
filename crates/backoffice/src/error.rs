//! What can go wrong in Back Office, and how each failure is answered over HTTP.
//!
//! Every error response has the same shape, `{"error": {"code", "message"}}`, with a stable code.
//! Failures of the database or of Back Office itself become a generic 500 that names the request
//! id; the cause is logged (inside the request's span, so with that id), never echoed.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use regsync_protocol::ErrorCode;
use regsync_protocol::api::{ErrorBody, ErrorDetail};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or a field is invalid; the message names the field.
    #[error("{message}")]
    BadRequest { code: ErrorCode, message: String },
    #[error("{message}")]
    UnsupportedMediaType { message: String },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// No valid credentials; `code` tells a client whether refreshing can help.
    #[error("{message}")]
    Unauthenticated { code: ErrorCode, message: String },
    #[error("{0}")]
    Forbidden(String),
    /// Also the answer for things that exist in another company: their existence is not revealed.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    #[error("too many failed attempts; try again in {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    /// Too much of something costly at once (password hashing): try again shortly.
    #[error("Back Office is busy checking other sign-ins; try again in {} s", retry_after.as_secs().max(1))]
    Overloaded { retry_after: Duration },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A field that parsed but is not acceptable.
    pub fn invalid_field(field: &str, problem: impl std::fmt::Display) -> Self {
        Error::bad_request(ErrorCode::InvalidField, format!("{field}: {problem}"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Error::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Database(_) | Error::Migration(_) | Error::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Error::BadRequest { code, .. }
            | Error::Unauthenticated { code, .. }
            | Error::Conflict { code, .. } => *code,
            Error::UnsupportedMediaType { .. } => ErrorCode::UnsupportedMediaType,
            Error::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::Overloaded { .. } => ErrorCode::Busy,
            Error::Database(_) | Error::Migration(_) | Error::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() && !matches!(self, Error::Overloaded { .. }) {
            // The span around the request carries its id; the response header repeats it.
            tracing::error!(error = %self, "request failed");
            "Back Office ran into a problem; the request id in the x-request-id header identifies \
             it in the server log"
                .to_owned()
        } else {
            self.to_string()
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        match &self {
            Error::RateLimited { retry_after } | Error::Overloaded { retry_after } => {
                // Round up: retrying a moment early would only fail again.
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            Error::Unauthenticated { .. } => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"regsync\""),
                );
            }
            _ => {}
        }
        response
    }
}
