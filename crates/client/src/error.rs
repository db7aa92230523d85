//! What went wrong, in terms a caller can act on.

use std::time::Duration;

use regsync_protocol::ErrorCode;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not signed in, or the sign-in ended (expired, signed out elsewhere, password changed):
    /// sign in again. `code` is Back Office's (`InvalidCredentials`, `SessionRevoked`, …).
    #[error("{message}")]
    NotSignedIn { code: ErrorCode, message: String },
    /// Signed in, but not allowed (for example, no Sites permission).
    #[error("{message}")]
    Forbidden { message: String },
    #[error("{message}")]
    NotFound { message: String },
    /// Too many attempts; try again after `retry_after`.
    #[error("{message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// Back Office could not be reached (refused, no route, DNS).
    #[error("cannot reach Back Office at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// Back Office's certificate failed the check; `message` says how, in plain words.
    #[error("{message}")]
    Certificate { url: String, message: String },
    /// `http://` to another computer without the user's explicit permission.
    #[error(
        "{url} is not encrypted: the password and everything else would cross the network \
         readable by anyone on it. Use https://, or allow an unencrypted connection explicitly."
    )]
    Unencrypted { url: String },
    /// The address cannot be used (no host, an unreadable certificate authority file).
    #[error("{0}")]
    Address(String),
    /// Back Office did not answer in time.
    #[error("Back Office did not answer within {} s", .0.as_secs())]
    TimedOut(Duration),
    /// Back Office answered with an error of its documented shape.
    #[error("{message}")]
    Api {
        status: u16,
        code: ErrorCode,
        message: String,
    },
    /// The answer is not what the API documents (not JSON, cut short, the wrong shape): usually
    /// the URL points at something that is not Back Office, or a proxy got in between.
    #[error("unexpected answer from Back Office (HTTP {status}): {detail}")]
    BadResponse { status: u16, detail: String },
}

impl Error {
    /// The error means the request never got an answer (or not from a Back Office whose
    /// certificate holds): the caller may show cached state.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Error::Unreachable { .. } | Error::TimedOut(_) | Error::Certificate { .. }
        )
    }
}
