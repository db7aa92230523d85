//! What a failure means to a manager, in plain words, with a stable code the page can act on.

use regsync_client::Error;
use regsync_protocol::ErrorCode;
use serde::Serialize;

/// What kind of failure the page is shown: it acts on some (`Unencrypted` offers the choice to
/// connect anyway; `NotSignedIn` goes back to sign-in) and shows the message of all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    WrongPassword,
    NotSignedIn,
    Forbidden,
    NotFound,
    RateLimited,
    Unreachable,
    Certificate,
    Unencrypted,
    BadAddress,
    /// Back Office refused, with its own message.
    BackOffice,
    BadResponse,
    /// The OS keychain failed.
    Keychain,
    /// The app's config file could not be written.
    Config,
    /// A setting could not be changed.
    Settings,
    /// What the manager entered cannot be used (a range of days that runs backwards, say).
    InvalidInput,
    /// An export could not be written to its file.
    Export,
    Internal,
}

/// A failure as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub code: ProblemCode,
    pub message: String,
}

impl Problem {
    pub fn new(code: ProblemCode, message: impl Into<String>) -> Self {
        Problem {
            code,
            message: message.into(),
        }
    }
}

impl From<&Error> for Problem {
    fn from(error: &Error) -> Self {
        let (code, message) = match error {
            Error::NotSignedIn {
                code: ErrorCode::InvalidCredentials,
                ..
            } => (
                ProblemCode::WrongPassword,
                "Wrong email or password.".to_owned(),
            ),
            Error::NotSignedIn { .. } => (
                ProblemCode::NotSignedIn,
                "You are signed out; sign in again.".to_owned(),
            ),
            Error::Forbidden { .. } => (
                ProblemCode::Forbidden,
                "Your account can't do this. Ask an admin for the Sites permission.".to_owned(),
            ),
            Error::NotFound { message } => (ProblemCode::NotFound, message.clone()),
            Error::RateLimited { retry_after, .. } => (
                ProblemCode::RateLimited,
                match retry_after {
                    Some(wait) => format!(
                        "Too many attempts; try again in {} s.",
                        wait.as_secs().max(1)
                    ),
                    None => "Too many attempts; try again in a while.".to_owned(),
                },
            ),
            Error::Unreachable { url, .. } => (
                ProblemCode::Unreachable,
                format!("Can't reach Back Office at {url}. Check the address and the network."),
            ),
            Error::Certificate { message, .. } => (ProblemCode::Certificate, message.clone()),
            Error::Unencrypted { url } => (
                ProblemCode::Unencrypted,
                format!(
                    "{url} is not encrypted: your password and everything else would cross the \
                     network readable by anyone on it. Use an https:// address, or allow an \
                     unencrypted connection below."
                ),
            ),
            Error::Address(message) => (ProblemCode::BadAddress, message.clone()),
            Error::TimedOut(_) => (
                ProblemCode::Unreachable,
                "Back Office did not answer in time.".to_owned(),
            ),
            Error::Api { message, .. } => (ProblemCode::BackOffice, message.clone()),
            Error::BadResponse { .. } => (
                ProblemCode::BadResponse,
                "That address does not answer like a Back Office. Check the address.".to_owned(),
            ),
        };
        Problem { code, message }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_unencrypted_address_and_a_bad_certificate_say_what_to_do() {
        let plain = Problem::from(&Error::Unencrypted {
            url: "http://bo.example".into(),
        });
        assert_eq!(plain.code, ProblemCode::Unencrypted);
        assert!(
            plain
                .message
                .starts_with("http://bo.example is not encrypted")
        );
        assert!(
            plain
                .message
                .contains("allow an unencrypted connection below")
        );
        let certificate = Problem::from(&Error::Certificate {
            url: "https://bo.example".into(),
            message: "The certificate of bo.example is for another name.".into(),
        });
        assert_eq!(certificate.code, ProblemCode::Certificate);
        assert_eq!(
            certificate.message,
            "The certificate of bo.example is for another name."
        );
    }

    #[test]
    fn failures_read_as_plain_words() {
        let wrong = Error::NotSignedIn {
            code: ErrorCode::InvalidCredentials,
            message: "wrong email or password".into(),
        };
        assert_eq!(Problem::from(&wrong).message, "Wrong email or password.");
        let limited = Error::RateLimited {
            retry_after: Some(Duration::from_secs(42)),
            message: String::new(),
        };
        assert_eq!(
            Problem::from(&limited).message,
            "Too many attempts; try again in 42 s."
        );
        let away = Error::Unreachable {
            url: "http://bo.example".into(),
            reason: "refused".into(),
        };
        assert_eq!(Problem::from(&away).code, ProblemCode::Unreachable);
        assert!(Problem::from(&away).message.contains("http://bo.example"));
    }
}
