//! What can go wrong in a session. No variant carries bytes of a request or a response: at most
//! a frame type, an error code, or for [`ClientError::NotAttested`] the verdict and the public
//! attestation evidence that failed it (kept so that the device can write it as tamper evidence).

use pp_protocol::frame::{ErrorCode, FrameType};
use pp_verifier::Verdict;

use crate::SessionBinding;

/// Evidence that did not verify: the verdict, and what it was checked against.
#[derive(Clone)]
pub struct NotAttested {
    /// Every check and its outcome.
    pub verdict: Verdict,
    /// The session's evidence bundle, nonce and TLS exporter, as verified; `None` when the
    /// evidence was a publication bundle (no session, [`crate::Publication::verify`]).
    pub binding: Option<SessionBinding>,
}

impl core::fmt::Debug for NotAttested {
    /// The verdict only: the evidence bytes are of no use in a log line.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NotAttested")
            .field("verdict", &self.verdict)
            .field("binding", &self.binding.as_ref().map(|_| "…"))
            .finish()
    }
}

/// Why a session could not be made, or why a request failed. After any error other than
/// [`ClientError::RequestTooLarge`] the session is over: later requests return
/// [`ClientError::SessionClosed`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server name is not a valid DNS name or IP address.
    #[error("invalid server name")]
    InvalidServerName,
    /// The TLS layer failed: handshake (including a TLS 1.2-only peer or a bad CertificateVerify
    /// signature), record protection, or the keying-material exporter.
    #[error("TLS: {0}")]
    Tls(rustls::Error),
    /// The transport failed (including a timeout the caller set on the socket).
    #[error("I/O: {0}")]
    Io(std::io::ErrorKind),
    /// The system random generator failed; no nonce, so no session.
    #[error("no randomness for the nonce")]
    Random,
    /// The enclave closed the connection between frames.
    #[error("connection closed by the peer")]
    Closed,
    /// The connection ended inside a frame.
    #[error("frame truncated")]
    Truncated,
    /// A frame header announced more than the bound for that frame (at most 1 MiB): refused
    /// from the header alone, before reading the payload.
    #[error("frame larger than its bound")]
    FrameTooLarge,
    /// A frame did not parse (bad magic, version, nonce size, empty payload …).
    #[error("malformed frame: {0}")]
    Frame(pp_protocol::Error),
    /// A frame of a type that is not expected at this point of the session.
    #[error("unexpected frame: {0:?}")]
    UnexpectedFrame(FrameType),
    /// The enclave answered with an `Error` frame (and closes the connection).
    #[error("refused by the enclave: {0:?}")]
    Refused(ErrorCode),
    /// The evidence bundle did not parse.
    #[error("malformed evidence bundle: {0}")]
    Evidence(pp_protocol::Error),
    /// The evidence did not verify: every check and its outcome, and (for a session) the
    /// evidence, nonce and exporter it was checked with. Nothing was sent after the attestation
    /// request.
    #[error("enclave not attested:\n{}", .0.verdict)]
    NotAttested(Box<NotAttested>),
    /// The attested key configuration is not one this device seals to (RFC 9458 key
    /// configuration with X25519-HKDF-SHA256 and HKDF-SHA256 with AES-128-GCM or
    /// ChaCha20-Poly1305).
    #[error("unsupported key configuration")]
    KeyConfigUnsupported,
    /// The request body is larger than a sealed request frame can carry. Nothing was sent; the
    /// session stays usable.
    #[error("request too large")]
    RequestTooLarge,
    /// Sealing the request failed.
    #[error("sealing the request failed")]
    Seal,
    /// The response is larger than [`crate::Limits::max_response`].
    #[error("response larger than the limit")]
    ResponseTooLarge,
    /// The sealed response did not open: not sealed for this request, or altered.
    #[error("the response did not open")]
    Open,
    /// The opened response is not padded as `pp_protocol::padding` requires (length not a size
    /// bucket, length field past the end, or non-zero padding).
    #[error("the response is not padded to a size bucket with zero bytes")]
    Padding,
    /// An earlier error ended this session.
    #[error("session closed after an earlier error")]
    SessionClosed,
}

impl From<std::io::Error> for ClientError {
    /// rustls reports TLS failures through `std::io::Error`; keep them typed.
    fn from(e: std::io::Error) -> Self {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => Self::Tls(tls.clone()),
            None => Self::Io(e.kind()),
        }
    }
}

impl From<rustls::Error> for ClientError {
    fn from(e: rustls::Error) -> Self {
        Self::Tls(e)
    }
}
