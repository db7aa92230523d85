//! What a failure means to a manager, in plain words, with a stable code the page can act on.

use regsync_client::Error;
use serde::Serialize;

/// A failure as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub code: &'static str,
    pub message: String,
}

impl Problem {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            code,
            message: message.into(),
        }
    }
}

impl From<&Error> for Problem {
    fn from(error: &Error) -> Self {
        let (code, message) = match error {
            Error::NotSignedIn { code, .. } if code == "invalid_credentials" => {
                ("wrong_password", "Wrong email or password.".to_owned())
            }
            Error::NotSignedIn { .. } => (
                "not_signed_in",
                "You are signed out; sign in again.".to_owned(),
            ),
            Error::Forbidden { .. } => (
                "forbidden",
                "Your account can't do this. Ask an admin for the Sites permission.".to_owned(),
            ),
            Error::NotFound { message } => ("not_found", message.clone()),
            Error::RateLimited { retry_after, .. } => (
                "rate_limited",
                match retry_after {
                    Some(wait) => format!(
                        "Too many attempts; try again in {} s.",
                        wait.as_secs().max(1)
                    ),
                    None => "Too many attempts; try again in a while.".to_owned(),
                },
            ),
            Error::Unreachable { url, .. } => (
                "unreachable",
                format!("Can't reach Back Office at {url}. Check the address and the network."),
            ),
            Error::Certificate { message, .. } => ("certificate", message.clone()),
            Error::Unencrypted { url } => (
                "unencrypted",
                format!(
                    "{url} is not encrypted: your password and everything else would cross the \
                     network readable by anyone on it. Use an https:// address, or allow an \
                     unencrypted connection below."
                ),
            ),
            Error::Address(message) => ("bad_address", message.clone()),
            Error::TimedOut(_) => (
                "unreachable",
                "Back Office did not answer in time.".to_owned(),
            ),
            Error::Api { message, .. } => ("back_office", message.clone()),
            Error::BadResponse { .. } => (
                "bad_response",
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
        assert_eq!(plain.code, "unencrypted");
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
        assert_eq!(certificate.code, "certificate");
        assert_eq!(
            certificate.message,
            "The certificate of bo.example is for another name."
        );
    }

    #[test]
    fn failures_read_as_plain_words() {
        let wrong = Error::NotSignedIn {
            code: "invalid_credentials".into(),
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
        assert_eq!(Problem::from(&away).code, "unreachable");
        assert!(Problem::from(&away).message.contains("http://bo.example"));
    }
}
