use super::*;

#[test]
fn a_bare_host_means_https_and_this_computer_means_http() {
    assert_eq!(normalize(" bo.example:8443/ "), "https://bo.example:8443");
    assert_eq!(normalize("bo.example"), "https://bo.example");
    assert_eq!(normalize("localhost:8080"), "http://localhost:8080");
    assert_eq!(normalize("127.0.0.1:8080"), "http://127.0.0.1:8080");
    assert_eq!(normalize("[::1]:8080"), "http://[::1]:8080");
    assert_eq!(normalize("http://bo.example/"), "http://bo.example");
    assert_eq!(normalize("https://localhost"), "https://localhost");
}

#[test]
fn plain_http_to_another_computer_needs_permission() {
    let refused = checked("http://bo.example", false).unwrap_err();
    assert_eq!(
        refused,
        TransportError::Unencrypted {
            url: "http://bo.example".into()
        }
    );
    assert!(
        refused.to_string().contains("is not encrypted"),
        "{refused}"
    );
    assert_eq!(
        checked("http://bo.example", true).unwrap(),
        "http://bo.example"
    );
    // A look-alike of loopback is not loopback.
    assert!(checked("http://127.0.0.1.bo.example", false).is_err());
    assert!(checked("http://localhost@bo.example", false).is_err());
    for local in [
        "http://127.0.0.1:8080",
        "http://localhost",
        "http://[::1]:80",
        "127.0.0.2",
    ] {
        assert!(checked(local, false).is_ok(), "{local}");
    }
    assert_eq!(
        checked("https://bo.example", false).unwrap(),
        "https://bo.example"
    );
}

#[test]
fn an_address_without_a_host_is_refused() {
    assert!(matches!(
        checked("https://", false),
        Err(TransportError::BadUrl { .. })
    ));
    assert!(matches!(
        checked("https://bo example", false),
        Err(TransportError::BadUrl { .. })
    ));
}

#[test]
fn hosts_are_found_in_urls() {
    assert_eq!(host_of_url("https://bo.example:8443/v1"), "bo.example");
    assert_eq!(host_of_url("https://[::1]:8443"), "::1");
    assert_eq!(host_of_url("wss://user@bo.example/x"), "bo.example");
}

#[test]
fn an_extra_authority_is_read_from_pem_and_garbage_is_refused() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, ca.pem()).unwrap();
    let trust = Trust::default().with_ca_file(&path).unwrap();
    assert_eq!(trust.extra.len(), 1);
    let _ = trust.client_config();

    std::fs::write(&path, "not a certificate").unwrap();
    let refused = Trust::default().with_ca_file(&path).unwrap_err();
    assert!(
        refused.to_string().contains("holds no certificate"),
        "{refused}"
    );
    let missing = Trust::default()
        .with_ca_file(&dir.path().join("nope.pem"))
        .unwrap_err();
    assert!(missing.to_string().contains("nope.pem"), "{missing}");
}

#[test]
fn certificate_problems_are_said_in_plain_words_even_inside_io_errors() {
    let wrong_name = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
    );
    assert_eq!(
        describe_certificate_error(&wrong_name, "127.0.0.1").unwrap(),
        "The certificate of 127.0.0.1 is for another name."
    );
    let untrusted = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
    assert!(
        describe_certificate_error(&untrusted, "bo.example")
            .unwrap()
            .starts_with("The certificate of bo.example is not trusted")
    );
    assert_eq!(bare_name("DnsName(\"localhost\")"), "localhost");
    let other = std::io::Error::other("connection refused");
    assert_eq!(describe_certificate_error(&other, "bo.example"), None);
}
