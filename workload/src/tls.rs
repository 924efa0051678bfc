//! TLS 1.3 with rustls on ring, under a key pair made at start from the platform's randomness.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The server configuration and the SHA-256 of the certificate (lowercase hex), which the
/// serial log shows so a client can pin it.
pub struct TlsIdentity {
    pub config: Arc<ServerConfig>,
    pub cert_sha256: String,
}

/// Make a fresh ECDSA P-256 key (ring's `SystemRandom`: RDRAND/RDSEED inside Hermit) and a
/// self-signed certificate for it, and build a TLS-1.3-only server configuration.
pub fn fresh_identity() -> Result<TlsIdentity, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| format!("key generation failed: {e}"))?;
    let params = rcgen::CertificateParams::new(vec!["pp-enclave".to_string()])
        .map_err(|e| format!("certificate parameters: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("self-signing failed: {e}"))?;
    let cert_der: CertificateDer<'static> = cert.der().clone();
    let digest = ring::digest::digest(&ring::digest::SHA256, &cert_der);
    let cert_sha256 = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key_der)
        .map_err(|e| format!("TLS certificate: {e}"))?;
    Ok(TlsIdentity {
        config: Arc::new(config),
        cert_sha256,
    })
}
