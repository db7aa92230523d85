//! The one error vocabulary: the codes Back Office answers with, which the client, the CLI and
//! the app match on, and the CLI's exit codes beside them.

use serde::{Deserialize, Serialize};

/// The stable, machine-readable `code` of every error answer (`{"error": {"code", "message"}}`).
/// Match on these; the message is for people and may change wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // 400 — the request itself.
    /// The body is not JSON.
    MalformedJson,
    /// A field is missing, of the wrong type, or not acceptable; the message names it.
    InvalidField,
    /// A path parameter (an id) does not parse.
    InvalidPath,
    /// A query parameter does not parse or is out of its documented bounds.
    InvalidQuery,
    /// The body could not be read.
    UnreadableBody,
    /// The register channel was asked for without a WebSocket upgrade.
    NotAWebsocket,
    /// 415: the body is not sent as JSON.
    UnsupportedMediaType,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 408: the request took longer than Back Office waits.
    RequestTimeout,
    /// 405: the route does not take that method.
    MethodNotAllowed,

    // 401 — who is asking.
    /// No bearer token.
    NotSignedIn,
    /// The access token is not one Back Office issued (or it was revoked): refresh.
    InvalidToken,
    /// The access token ran out: refresh.
    TokenExpired,
    /// Wrong email or password.
    InvalidCredentials,
    /// The refresh token is unknown.
    InvalidRefreshToken,
    /// The sign-in was ended (signed out, or revoked).
    SessionRevoked,
    /// A spent refresh token was presented: the whole sign-in is revoked.
    RefreshTokenReused,
    /// The sign-in is older than refresh tokens live.
    SessionExpired,
    /// A register's device credential is unknown.
    InvalidDeviceCredential,

    /// 403: signed in, but without the permission (Sites or Admin).
    Forbidden,
    /// 404: no such thing in the caller's company (another company's ids answer the same).
    NotFound,

    // 409 — the state of things.
    /// `expected_revision` is not the menu's current revision.
    RevisionConflict,
    /// A site sync found no register to sync.
    NoRegisters,
    /// Admin: the name or email is taken.
    AlreadyExists,
    /// Admin: the name matches more than one thing.
    Ambiguous,

    /// 429: too many failed sign-ins; see `Retry-After`.
    RateLimited,
    /// 503 (sign-ins being checked) or 409 (the menu being changed by others): try again shortly.
    Busy,
    /// 500: Back Office failed; the `x-request-id` header names the request in its log.
    Internal,

    /// A code this build does not know, from a newer Back Office: read the message.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// As it is written on the wire.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            MalformedJson => "malformed_json",
            InvalidField => "invalid_field",
            InvalidPath => "invalid_path",
            InvalidQuery => "invalid_query",
            UnreadableBody => "unreadable_body",
            NotAWebsocket => "not_a_websocket",
            UnsupportedMediaType => "unsupported_media_type",
            PayloadTooLarge => "payload_too_large",
            RequestTimeout => "request_timeout",
            MethodNotAllowed => "method_not_allowed",
            NotSignedIn => "not_signed_in",
            InvalidToken => "invalid_token",
            TokenExpired => "token_expired",
            InvalidCredentials => "invalid_credentials",
            InvalidRefreshToken => "invalid_refresh_token",
            SessionRevoked => "session_revoked",
            RefreshTokenReused => "refresh_token_reused",
            SessionExpired => "session_expired",
            InvalidDeviceCredential => "invalid_device_credential",
            Forbidden => "forbidden",
            NotFound => "not_found",
            RevisionConflict => "revision_conflict",
            NoRegisters => "no_registers",
            AlreadyExists => "already_exists",
            Ambiguous => "ambiguous",
            RateLimited => "rate_limited",
            Busy => "busy",
            Internal => "internal",
            Unknown => "unknown",
        }
    }

    /// The access token is no good but the sign-in may be: a refresh can help.
    pub fn refresh_may_help(self) -> bool {
        matches!(self, ErrorCode::TokenExpired | ErrorCode::InvalidToken)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How `regsync` ends, for scripts (also in `regsync --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Done; every register synced.
    Done = 0,
    /// Something else went wrong: bad arguments, a Back Office error.
    Failed = 1,
    /// Not signed in, or not allowed.
    NotSignedIn = 2,
    /// Back Office unreachable, not answering, or its certificate refused.
    Unreachable = 3,
    /// Done, but some registers were not synced (skipped, failed, expired, still waiting).
    NotAllSynced = 4,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_written_as_their_names_and_unknown_ones_still_read() {
        for code in [
            ErrorCode::MalformedJson,
            ErrorCode::TokenExpired,
            ErrorCode::RevisionConflict,
            ErrorCode::Busy,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        assert_eq!(
            serde_json::from_str::<ErrorCode>("\"a_code_from_the_future\"").unwrap(),
            ErrorCode::Unknown
        );
    }
}
