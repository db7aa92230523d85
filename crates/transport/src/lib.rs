//! How the app, `regsync` and the register agent reach Back Office.
//!
//! Three rules live here, once, so the three clients cannot disagree:
//! - **Which URL.** A bare host name means `https://`; only a loopback host (`localhost`,
//!   `127.x.x.x`, `::1`) gets `http://`, because nothing on the network can read it.
//! - **No password in clear by accident.** `http://` to a host that is not loopback is refused
//!   unless the user explicitly allowed it (a flag; in the app a clearly worded choice).
//! - **Whom to trust.** The public authorities (Mozilla's list), the ones installed on the computer
//!   (a company's own authority usually is), and an extra authority given as a PEM file
//!   (`--ca-cert`, or `REGSYNC_CA_CERT`) for a Back Office with a certificate of its own making.
//!
//! A certificate that fails is described in words a venue manager can act on ("The certificate of
//! bo.example is not trusted") instead of rustls's names for it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{CertificateError, ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The environment variable naming an extra certificate authority (PEM) to trust.
pub const CA_CERT_ENV: &str = "REGSYNC_CA_CERT";

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// `http://` to a host that is not this computer, and the user did not allow it.
    #[error(
        "{url} is not encrypted: the password and everything else would cross the network \
         readable by anyone on it. Use https://, or allow an unencrypted connection explicitly."
    )]
    Unencrypted { url: String },
    /// The URL cannot be a Back Office address.
    #[error("{url} is not a Back Office address: {reason}")]
    BadUrl { url: String, reason: String },
    /// The extra certificate authority could not be read.
    #[error("cannot use the certificate authority in {}: {reason}", path.display())]
    BadCaFile { path: PathBuf, reason: String },
}

/// Turns what a user typed into a Back Office base URL: trims, drops a trailing slash, and gives
/// a bare host `https://` (or `http://` when it is this computer).
pub fn normalize(url: &str) -> String {
    let url = url.trim();
    for scheme in ["https://", "http://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            return format!("{scheme}{}", rest.trim_end_matches('/'));
        }
    }
    let url = url.trim_end_matches('/');
    let scheme = if is_loopback(host_of(url)) {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{url}")
}

/// Normalizes `url` and refuses plain `http://` to a host that is not loopback, unless
/// `allow_plain_http`.
pub fn checked(url: &str, allow_plain_http: bool) -> Result<String, TransportError> {
    let url = normalize(url);
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        if !allow_plain_http && !is_loopback(host_of(rest)) {
            return Err(TransportError::Unencrypted { url });
        }
        rest
    } else {
        unreachable!("normalize always gives a scheme")
    };
    if host_of(rest).is_empty() || rest.contains(char::is_whitespace) {
        return Err(TransportError::BadUrl {
            url: url.clone(),
            reason: "it has no host name".into(),
        });
    }
    Ok(url)
}

/// The host of `host[:port][/path]` (no scheme), without brackets around an IPv6 address.
pub fn host_of(authority_and_path: &str) -> &str {
    let authority = authority_and_path
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    if let Some(bracketed) = authority.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or_default();
    }
    authority.split(':').next().unwrap_or_default()
}

/// The host of a full URL such as `https://bo.example:8443/x`.
pub fn host_of_url(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    host_of(rest)
}

/// Whether `host` is this computer: nothing on the network sees traffic to it.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Whom a client trusts: the public and installed authorities, plus extra ones.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    extra: Vec<CertificateDer<'static>>,
}

impl Trust {
    /// The public and installed authorities, plus the one named by `REGSYNC_CA_CERT` if set.
    pub fn from_env() -> Result<Trust, TransportError> {
        match std::env::var_os(CA_CERT_ENV) {
            Some(path) if !path.is_empty() => Trust::default().with_ca_file(Path::new(&path)),
            _ => Ok(Trust::default()),
        }
    }

    /// Also trusts the certificate authorities in a PEM file.
    pub fn with_ca_file(self, path: &Path) -> Result<Trust, TransportError> {
        let bad = |reason: String| TransportError::BadCaFile {
            path: path.to_owned(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        self.with_ca_pem(&pem).map_err(|e| match e {
            TransportError::BadCaFile { reason, .. } => bad(reason),
            other => other,
        })
    }

    /// Also trusts the certificate authorities in PEM text.
    pub fn with_ca_pem(mut self, pem: &[u8]) -> Result<Trust, TransportError> {
        let bad = |reason: &str| TransportError::BadCaFile {
            path: PathBuf::from("(PEM)"),
            reason: reason.to_owned(),
        };
        let certificates = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("it is not PEM"))?;
        if certificates.is_empty() {
            return Err(bad("it holds no certificate"));
        }
        self.extra.extend(certificates);
        Ok(self)
    }

    /// A TLS client configuration trusting these authorities.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let installed = rustls_native_certs::load_native_certs();
        let (added, ignored) = roots.add_parsable_certificates(installed.certs);
        if !installed.errors.is_empty() || ignored > 0 {
            tracing::debug!(
                added,
                ignored,
                errors = installed.errors.len(),
                "some of the computer's certificate authorities could not be used"
            );
        }
        for certificate in &self.extra {
            if let Err(error) = roots.add(certificate.clone()) {
                tracing::warn!(%error, "an extra certificate authority could not be used");
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

/// Describes a failed certificate check in plain words, if `error` (or what caused it) is one.
/// `host` is the name the user asked for.
pub fn describe_certificate_error(
    error: &(dyn std::error::Error + 'static),
    host: &str,
) -> Option<String> {
    let problem = find_certificate_error(error)?;
    Some(match problem {
        CertificateError::NotValidForName => {
            format!("The certificate of {host} is for another name.")
        }
        CertificateError::NotValidForNameContext { presented, .. } => {
            if presented.is_empty() {
                format!("The certificate of {host} is for another name.")
            } else {
                let names: Vec<&str> = presented.iter().map(|n| bare_name(n)).collect();
                format!(
                    "The certificate of {host} is for another name ({}).",
                    names.join(", ")
                )
            }
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("The certificate of {host} has expired.")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!(
                "The certificate of {host} is not valid yet (check this computer's date and time)."
            )
        }
        CertificateError::Revoked => format!("The certificate of {host} has been revoked."),
        _ => format!(
            "The certificate of {host} is not trusted: no certificate authority this computer \
             trusts vouches for it. If your Back Office has a certificate of its own making, \
             give its authority with --ca-cert or {CA_CERT_ENV}."
        ),
    })
}

/// rustls presents names as `DnsName("bo.example")` or `IpAddress(…)`: keep what a person reads.
fn bare_name(presented: &str) -> &str {
    match (presented.find('"'), presented.rfind('"')) {
        (Some(start), Some(end)) if end > start => &presented[start + 1..end],
        _ => presented,
    }
}

/// Walks an error's causes for rustls's certificate verdict. `io::Error` hides the error it
/// wraps from `source()`, so each one is opened too.
fn find_certificate_error<'a>(
    mut error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a CertificateError> {
    loop {
        if let Some(rustls::Error::InvalidCertificate(problem)) =
            error.downcast_ref::<rustls::Error>()
        {
            return Some(problem);
        }
        if let Some(inner) = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(found) = find_certificate_error(inner)
        {
            return Some(found);
        }
        error = error.source()?;
    }
}

#[cfg(test)]
mod tests;
