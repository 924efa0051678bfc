//! TLS 1.3 to an enclave whose certificate is self-signed and made at boot.
//!
//! The certificate means nothing by itself, so no chain, name or validity period is checked. What
//! *is* checked: the protocol is TLS 1.3 (TLS 1.2 is not offered and its signatures are refused),
//! and the `CertificateVerify` signature verifies under the certificate's key, so the peer holds
//! that key. Trust comes afterwards from the attestation, whose `REPORT_DATA` binds this session's
//! exporter: a report made for any other session (a relay, a replay) does not verify.

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// Accepts any certificate; verifies TLS 1.3 handshake signatures with its key.
#[derive(Debug)]
struct AttestedCertVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AttestedCertVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Self-signed at boot: the attestation, not a CA, vouches for this endpoint. The
        // certificate is still parsed, and its key used, by `verify_tls13_signature`.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Never reached (TLS 1.2 is not enabled), and refused if it were.
        Err(rustls::PeerIncompatible::Tls12NotOfferedOrEnabled.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A TLS 1.3-only client configuration (ring provider) with the verifier above, no session
/// resumption and no early data: every session is a full handshake with its own exporter.
pub(crate) fn client_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AttestedCertVerifier {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ClientConfig::builder_with_provider(Arc::<CryptoProvider>::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    config.enable_early_data = false;
    Ok(Arc::new(config))
}

/// Completes a TLS 1.3 handshake over `stream` with the enclave, sending
/// [`pp_protocol::ENCLAVE_SERVER_NAME`] as SNI (every device the same name; it is not checked).
pub(crate) fn handshake<S: std::io::Read + std::io::Write>(
    stream: S,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, S>, crate::ClientError> {
    let name = ServerName::try_from(pp_protocol::ENCLAVE_SERVER_NAME)
        .map_err(|_| crate::ClientError::InvalidServerName)?;
    let conn = rustls::ClientConnection::new(client_config()?, name)?;
    let mut stream = rustls::StreamOwned::new(conn, stream);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}
