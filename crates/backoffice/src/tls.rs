//! HTTPS and WSS served by Back Office itself (rustls), so a small venue needs no proxy: a
//! certificate chain and its key, both PEM. Plain HTTP stays for loopback and for running behind
//! a proxy that terminates TLS.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use crate::error::{Error, Result};

/// Reads the certificate chain and key, and makes the acceptor for incoming connections. The
/// errors name the file and what is wrong with it, for the operator who set them.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let unreadable = |path: &Path, what: &str, e: &dyn std::fmt::Display| {
        Error::Internal(format!("{what} {}: {e}", path.display()))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| unreadable(cert, "cannot read the TLS certificate", &e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| unreadable(cert, "the TLS certificate is not valid PEM", &e))?;
    if chain.is_empty() {
        return Err(Error::Internal(format!(
            "no certificate in {} (expected PEM: -----BEGIN CERTIFICATE-----)",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| unreadable(key, "cannot read the TLS key", &e))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::Internal(format!("the TLS certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
