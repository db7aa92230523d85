//! Where Back Office is and how to reach it safely: the URL rules and TLS trust of
//! [`regsync_transport`], turned into an HTTP client.

use std::time::Duration;

use regsync_transport::{TransportError, Trust};

use crate::{Error, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A Back Office address with the choices made about reaching it.
///
/// Built from what a user typed: a bare host means `https://` (loopback: `http://`), and plain
/// `http://` to another computer is refused unless [`Endpoint::allow_plain_http`] says so.
#[derive(Debug, Clone)]
pub struct Endpoint {
    url: String,
    allow_plain_http: bool,
    trust: Option<Trust>,
}

impl Endpoint {
    pub fn new(url: impl Into<String>) -> Endpoint {
        Endpoint {
            url: url.into(),
            allow_plain_http: false,
            trust: None,
        }
    }

    /// Allows `http://` to a host that is not this computer: the user chose it, knowing that
    /// the password and everything else cross the network unencrypted.
    pub fn allow_plain_http(mut self, allow: bool) -> Endpoint {
        self.allow_plain_http = allow;
        self
    }

    /// Whether the user allowed `http://` to another computer.
    pub fn allows_plain_http(&self) -> bool {
        self.allow_plain_http
    }

    /// Whom to trust; by default the public and installed authorities and `REGSYNC_CA_CERT`.
    pub fn trust(mut self, trust: Trust) -> Endpoint {
        self.trust = Some(trust);
        self
    }

    /// The checked base URL and an HTTP client trusting what this endpoint trusts.
    pub(crate) fn open(&self) -> Result<(String, reqwest::Client)> {
        let base = regsync_transport::checked(&self.url, self.allow_plain_http)?;
        let trust = match &self.trust {
            Some(trust) => trust.clone(),
            None => Trust::from_env()?,
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("regsync-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .use_preconfigured_tls((*trust.client_config()).clone())
            .build()
            .map_err(|e| Error::Unreachable {
                url: base.clone(),
                reason: format!("cannot set up HTTPS: {e}"),
            })?;
        Ok((base, http))
    }
}

impl From<&str> for Endpoint {
    fn from(url: &str) -> Endpoint {
        Endpoint::new(url)
    }
}

impl From<&String> for Endpoint {
    fn from(url: &String) -> Endpoint {
        Endpoint::new(url.as_str())
    }
}

impl From<String> for Endpoint {
    fn from(url: String) -> Endpoint {
        Endpoint::new(url)
    }
}

impl From<&Endpoint> for Endpoint {
    fn from(endpoint: &Endpoint) -> Endpoint {
        endpoint.clone()
    }
}

impl From<TransportError> for Error {
    fn from(error: TransportError) -> Error {
        match error {
            TransportError::Unencrypted { url } => Error::Unencrypted { url },
            other => Error::Address(other.to_string()),
        }
    }
}

/// Maps a failed request to an [`Error`]: a certificate problem in plain words, a timeout, an
/// unreachable host, or an answer that is not Back Office's.
pub(crate) fn transport_error(base: &str, timeout: Duration, error: reqwest::Error) -> Error {
    let host = regsync_transport::host_of_url(base);
    if let Some(message) = regsync_transport::describe_certificate_error(&error, host) {
        return Error::Certificate {
            url: base.to_owned(),
            message,
        };
    }
    if error.is_timeout() {
        return Error::TimedOut(timeout);
    }
    if error.is_connect() {
        let reason = std::error::Error::source(&error)
            .map(|s| s.to_string())
            .unwrap_or_else(|| error.to_string());
        return Error::Unreachable {
            url: base.to_owned(),
            reason,
        };
    }
    if error.is_body() || error.is_decode() {
        return Error::BadResponse {
            status: error.status().map_or(0, |s| s.as_u16()),
            detail: format!("the answer was cut short or unreadable: {error}"),
        };
    }
    // Something answered, but not in HTTP: not Back Office (or not only).
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>()
            && hyper.is_parse()
        {
            return Error::BadResponse {
                status: 0,
                detail: format!("not an HTTP answer: {hyper}"),
            };
        }
        source = cause.source();
    }
    Error::Unreachable {
        url: base.to_owned(),
        reason: error.to_string(),
    }
}
