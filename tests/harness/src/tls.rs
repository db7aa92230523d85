//! A certificate authority made in the test, and certificates it signs, as PEM files.

use std::path::{Path, PathBuf};

/// A test CA. Nothing outside the test trusts it.
pub struct TestCa {
    key: rcgen::KeyPair,
    certificate: rcgen::Certificate,
}

/// A certificate and its key, as PEM files for `--tls-cert` / `--tls-key`.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Issued {
    /// The flags that make Back Office serve HTTPS with this certificate.
    pub fn flags(&self) -> [String; 4] {
        [
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().expect("a key pair");
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let certificate = params.self_signed(&key).expect("a self-signed CA");
        TestCa { key, certificate }
    }

    /// The CA's certificate, PEM: what a client is told to trust.
    pub fn pem(&self) -> String {
        self.certificate.pem()
    }

    /// Writes the CA's certificate into `dir`; answers its path.
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.pem()).expect("writing the CA");
        path
    }

    /// A server certificate for `names`, signed by this CA, written into `dir`.
    pub fn issue(&self, dir: &Path, names: &[&str]) -> Issued {
        let key = rcgen::KeyPair::generate().expect("a key pair");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let certificate = rcgen::CertificateParams::new(names)
            .expect("certificate parameters")
            .signed_by(&key, &self.certificate, &self.key)
            .expect("a signed certificate");
        let issued = Issued {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&issued.cert, certificate.pem()).expect("writing the certificate");
        std::fs::write(&issued.key, key.serialize_pem()).expect("writing the key");
        issued
    }
}
