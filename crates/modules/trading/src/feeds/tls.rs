//! The TLS client configuration for `wss://` feeds: ring as the crypto
//! provider (explicitly, never a process-wide default) and the system's root
//! certificates from its PEM bundle, unless the module injects its own
//! configuration ([`super::FeedConfig::tls`]).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Where Linux distributions and BSDs keep their CA bundle (the same list
/// Go's crypto/x509 tries), after `SSL_CERT_FILE`.
const BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/etc/ssl/cert.pem",
];

/// A client configuration with ring and the system's roots.
///
/// # Errors
/// A message when no root certificate could be loaded or rustls refuses the
/// protocol versions.
pub(crate) fn client_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let candidates =
        std::env::var_os("SSL_CERT_FILE").map(PathBuf::from).into_iter().chain(BUNDLES.iter().map(PathBuf::from));
    for path in candidates {
        let Ok(pem) = std::fs::read(&path) else { continue };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok).collect();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added > 0 {
            break;
        }
    }
    if roots.is_empty() {
        return Err("no tls root certificates found (set SSL_CERT_FILE or inject a tls configuration)".to_owned());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls configuration refused: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #[test]
    fn system_roots_load_when_a_bundle_is_there() {
        let bundle = super::BUNDLES.iter().any(|p| std::path::Path::new(p).exists());
        match super::client_config() {
            Ok(_) => {}
            Err(e) => assert!(!bundle && e.contains("no tls root certificates"), "{e}"),
        }
    }
}
