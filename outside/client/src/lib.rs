//! The device SDK's session layer: attested TLS 1.3 into a Private Processing enclave, then
//! HPKE-sealed requests (docs/protocol.md, device side).
//!
//! [`connect`] runs the whole attestation and returns a [`Session`] only if the enclave is
//! attested; a `Session` is the "attested" state, so a request cannot be sent before it:
//!
//! 1. TLS 1.3 handshake (rustls, ring). The certificate is self-signed and accepted as such, but
//!    the `CertificateVerify` signature must verify under its key; TLS 1.2 is refused.
//! 2. `AttestRequest` with a fresh 32-byte random nonce: the only frame sent before step 5.
//!    With [`connect_published`] it also carries the key id of the published key configuration
//!    (33 bytes), so an enclave that has since rotated its keys binds the key the device expects
//!    while it still holds it (and answers `UnknownKey` once it does not).
//! 3. One frame back, bounded from its header (`pp_protocol::io`, the reader the enclave uses
//!    too): `Evidence` (an `Error` frame is [`ClientError::Refused`]). The bundle is parsed once,
//!    by `pp_protocol::evidence`, and the verifier reads its bytes in place.
//! 4. The expected `REPORT_DATA` from *this* session's TLS exporter, the nonce and the key
//!    configuration ([`pp_attestation::report_data_for`]), then [`pp_verifier::verify()`] with the
//!    device's clock (`SystemTime::now()` as the evidence is checked, for the certificates'
//!    validity periods); with
//!    [`connect_published`], also the checks that the key configuration, the measurement and the
//!    release are the ones the instance published ([`pp_verifier::CheckName::SESSION`]). Any failed check is
//!    [`ClientError::NotAttested`] with the whole verdict and the [`SessionBinding`] it was
//!    checked with (the device keeps it as tamper evidence), and nothing else is sent. The key
//!    configuration must be one this device seals to.
//! 5. [`Session::request`]: the body padded to its size bucket (`pp_protocol::padding`), RFC 9458
//!    encapsulation to the attested key configuration, `SealedRequest`, then `SealedResponse`,
//!    opened with the request's HPKE context and unpadded (its padding must be zero).
//!
//! [`oneshot`] seals and opens the same way without a session, to an instance's logged key
//! configuration (the one-shot path through the OHTTP relay).
//!
//! **Retries**: once a request's sealed bytes were handed to the transport, the enclave may have
//! read it, whatever failed next. [`Session::request_sent`] says so; a caller must not send the
//! same plaintext to another enclave then (a gateway could otherwise steer a request to the
//! instance it wants by failing the others after they received it).
//!
//! **Timeouts**: this crate sets none and never waits on a clock. Every read and write blocks as
//! long as the transport does, so set timeouts on the transport before [`connect`] (for a
//! `TcpStream`: `set_read_timeout`, `set_write_timeout`); an expired timeout surfaces as
//! [`ClientError::Io`] and ends the session.
//!
//! **Bounds**: every frame's length is checked from its header before its payload is read:
//! evidence up to the largest valid bundle, a response up to the size bucket of
//! [`Limits::max_response`] plus the sealing overhead, never more than
//! `pp_protocol::frame::MAX_PAYLOAD` (1 MiB).
//!
//! **Secrets**: the buffers this crate owns that hold request or response bytes (encoded
//! frames, sealed messages, the TLS exporter) are zeroized after use. The body passed to
//! [`Session::request`] and the response it returns belong to the caller, who should zeroize
//! them; buffers inside `rustls` and `ohttp` are outside this crate's reach.

mod error;
pub mod inner;
mod key_config;
pub mod oneshot;
mod publication;
mod tls;
mod wire;

use std::io::{Read, Write};

use pp_attestation::binding::{EXPORTER_LABEL, EXPORTER_LEN};
use pp_protocol::evidence::{self as bundle, EvidenceRepr};
use pp_protocol::frame::{Frame, FrameRepr, FrameType, NONCE_LEN};
use pp_protocol::padding;
use pp_verifier::{CheckName, EvidenceRef, FailReason, Verdict};
use rustls::{ClientConnection, StreamOwned};
use zeroize::Zeroizing;

pub use error::{ClientError, NotAttested};
pub use publication::{Publication, Published, fetch_publication, verify_publication};

/// The largest request body that fits a sealed request frame once padded.
pub const MAX_REQUEST: usize = padding::MAX_BODY;
/// The largest response body a sealed response frame can carry once padded.
pub const MAX_RESPONSE: usize = padding::MAX_BODY;

// The protocol's room for the sealing around a padded body covers both directions.
const _: () = assert!(
    key_config::REQUEST_OVERHEAD <= padding::SEAL_ROOM
        && key_config::RESPONSE_OVERHEAD <= padding::SEAL_ROOM
);

/// Bounds the caller chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest response body accepted; a `SealedResponse` frame announcing more (plus the
    /// sealing overhead) is refused from its header. Capped at [`MAX_RESPONSE`].
    pub max_response: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_response: MAX_RESPONSE,
        }
    }
}

/// An attested session: the enclave at the other end of this TLS connection proved its
/// measurement, and requests are sealed to the key configuration it attested.
pub struct Session<S: Read + Write> {
    stream: StreamOwned<ClientConnection, S>,
    verdict: Verdict,
    measurement: [u8; 48],
    release_ref: [u8; 32],
    key_config: Vec<u8>,
    binding: SessionBinding,
    limits: Limits,
    closed: bool,
    sent: bool,
}

/// What this session's evidence was checked against, kept for receipts (`pp check-receipt`
/// re-verifies the report from it offline): the evidence bundle as received, the device's nonce
/// and the TLS exporter value bound into `REPORT_DATA` (channel binding only: the exporter is not
/// a traffic key, and the session is over when a receipt is written).
#[derive(Debug, Clone)]
pub struct SessionBinding {
    /// The encoded `Evidence` bundle (report, VCEK, ASK, ARK, key configuration, release_ref).
    pub evidence: Vec<u8>,
    /// The nonce the device sent in `AttestRequest`.
    pub nonce: [u8; NONCE_LEN],
    /// The TLS exporter value (label `EXPORTER-pp-attestation`, 32 bytes).
    pub exporter: [u8; EXPORTER_LEN],
}

impl<S: Read + Write> core::fmt::Debug for Session<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("accepted", &self.verdict.accepted())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// Opens TLS 1.3 over `stream`, asks for evidence bound to this session and a fresh nonce,
/// and verifies it against `policy`. Returns a [`Session`] only if every check passed; on any
/// failure nothing but the attestation request has been sent, and the connection is dropped.
///
/// [`pp_protocol::ENCLAVE_SERVER_NAME`] is sent as SNI only: the enclave's certificate is not
/// checked against it. No timeouts are applied here: set them on `stream` first.
pub fn connect<S: Read + Write>(
    stream: S,
    policy: &pp_verifier::Policy,
    limits: Limits,
) -> Result<Session<S>, ClientError> {
    open(stream, policy, limits, None)
}

/// [`connect`] to an instance chosen from the key CDN: the session's evidence must also name the
/// key configuration, the measurement and the release of `published` (checks
/// `key-config-published`, `measurement-published` and `release-published` of the verdict), so a
/// gateway cannot route the device to another enclave.
pub fn connect_published<S: Read + Write>(
    stream: S,
    published: &Published,
    policy: &pp_verifier::Policy,
    limits: Limits,
) -> Result<Session<S>, ClientError> {
    open(stream, policy, limits, Some(published))
}

fn open<S: Read + Write>(
    stream: S,
    policy: &pp_verifier::Policy,
    limits: Limits,
    published: Option<&Published>,
) -> Result<Session<S>, ClientError> {
    let mut stream = tls::handshake(stream)?;

    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| ClientError::Random)?;
    // The key id is the first byte of an RFC 9458 key configuration.
    let key_id = published.and_then(|p| p.key_config.first().copied());
    wire::write_frame(&mut stream, &FrameRepr::AttestRequest { nonce, key_id })?;

    let frame = wire::read_frame(&mut stream, |t| {
        (t == FrameType::Evidence).then_some(bundle::MAX_LEN)
    })?;
    let frame = view(&frame)?;
    let bundle = match parse(&frame)? {
        FrameRepr::Evidence { bundle } => bundle,
        other => return Err(ClientError::UnexpectedFrame(other.frame_type())),
    };
    let evidence = EvidenceRepr::from_bytes(bundle).map_err(ClientError::Evidence)?;

    let exporter = Zeroizing::new(stream.conn.export_keying_material(
        [0u8; EXPORTER_LEN],
        EXPORTER_LABEL,
        None,
    )?);
    let expected = pp_attestation::report_data_for(
        &exporter,
        &nonce,
        &evidence.release_ref,
        evidence.key_config,
    );
    let binding = SessionBinding {
        evidence: bundle.to_vec(),
        nonce,
        exporter: *exporter,
    };
    let (verdict, measurement) =
        check_evidence(&evidence, policy, &expected, published).map_err(|e| match e {
            ClientError::NotAttested(mut failed) => {
                failed.binding = Some(binding.clone());
                ClientError::NotAttested(failed)
            }
            other => other,
        })?;
    Ok(Session {
        measurement,
        release_ref: evidence.release_ref,
        key_config: evidence.key_config.to_vec(),
        binding,
        verdict,
        limits,
        closed: false,
        sent: false,
        stream,
    })
}

/// Verifies parsed evidence against `policy` with `expected` as its `REPORT_DATA` (and, when
/// given, against what the instance published), and checks its key configuration is one this
/// device seals to. Returns the verdict (all passed) and the verified measurement.
pub(crate) fn check_evidence(
    evidence: &EvidenceRepr<'_>,
    policy: &pp_verifier::Policy,
    expected: &[u8; 64],
    published: Option<&Published>,
) -> Result<(Verdict, [u8; 48]), ClientError> {
    let mut verdict = pp_verifier::verify(
        EvidenceRef {
            report: evidence.report,
            vcek_der: evidence.vcek,
            ask_der: evidence.ask,
            ark_der: evidence.ark,
        },
        policy,
        expected,
        std::time::SystemTime::now(),
    );
    if let Some(published) = published {
        verdict.require(
            CheckName::KeyConfigPublished,
            evidence.key_config == published.key_config.as_slice(),
            FailReason::KeyConfigNotPublished,
        );
        verdict.require_measurement(&published.measurement);
        verdict.require(
            CheckName::ReleasePublished,
            evidence.release_ref == published.release_ref,
            FailReason::ReleaseNotPublished,
        );
    }
    let Some(measurement) = verdict.measurement() else {
        return Err(ClientError::NotAttested(Box::new(NotAttested {
            verdict,
            binding: None,
        })));
    };
    if !key_config::supported(evidence.key_config) {
        return Err(ClientError::KeyConfigUnsupported);
    }
    Ok((verdict, measurement))
}

/// Checks a frame that `wire::read_frame` bounded.
fn view(bytes: &[u8]) -> Result<Frame<&[u8]>, ClientError> {
    Frame::new_checked(bytes).map_err(ClientError::Frame)
}

/// Parses a checked frame; an `Error` frame becomes [`ClientError::Refused`].
fn parse<'a>(frame: &'a Frame<&'a [u8]>) -> Result<FrameRepr<'a>, ClientError> {
    match FrameRepr::parse(frame).map_err(ClientError::Frame)? {
        FrameRepr::Error { code } => Err(ClientError::Refused(code)),
        repr => Ok(repr),
    }
}

impl<S: Read + Write> Session<S> {
    /// Every check of the attestation and its outcome (all passed), for `--verbose`.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// The enclave's launch measurement, as verified against the policy.
    pub fn measurement(&self) -> [u8; 48] {
        self.measurement
    }

    /// The release the enclave states it was built as (`release_ref`, bound into the report's
    /// `REPORT_DATA`). The verified [`Self::measurement`] is what ties the enclave to a release:
    /// map it to a logged release manifest to rely on this.
    pub fn release_ref(&self) -> [u8; 32] {
        self.release_ref
    }

    /// The evidence, nonce and exporter this session was verified with (for receipts).
    pub fn binding(&self) -> &SessionBinding {
        &self.binding
    }

    /// The attested RFC 9458 key configuration requests are sealed to.
    pub fn key_config(&self) -> &[u8] {
        &self.key_config
    }

    /// Pads `body` to its size bucket, seals it to the attested key, sends it, and returns the
    /// opened, unpadded response. Any failure but [`ClientError::RequestTooLarge`] ends the
    /// session; after a failure, [`Self::request_sent`] says whether the request may have reached
    /// the enclave.
    pub fn request(&mut self, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        if self.closed {
            return Err(ClientError::SessionClosed);
        }
        if body.len() > MAX_REQUEST {
            return Err(ClientError::RequestTooLarge);
        }
        let result = self.exchange(body);
        if result.is_err() {
            self.closed = true;
        }
        result
    }

    /// True once bytes of a sealed request of this session were handed to the transport, even if
    /// the write then failed: the enclave may have received that request, so after a failure the
    /// caller must not send its plaintext to another enclave. False while nothing but the
    /// attestation request has left (for example after [`ClientError::RequestTooLarge`]).
    pub fn request_sent(&self) -> bool {
        self.sent
    }

    fn exchange(&mut self, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        let sealed = oneshot::seal(&self.key_config, body)?;
        self.sent = true;
        wire::write_frame(
            &mut self.stream,
            &FrameRepr::SealedRequest {
                encapsulated: sealed.bytes(),
            },
        )?;

        let max_sealed = oneshot::max_sealed_response(self.limits.max_response);
        let frame = wire::read_frame(&mut self.stream, |t| {
            (t == FrameType::SealedResponse).then_some(max_sealed)
        })?;
        let frame = view(&frame)?;
        let encapsulated = match parse(&frame)? {
            FrameRepr::SealedResponse { encapsulated } => encapsulated,
            other => return Err(ClientError::UnexpectedFrame(other.frame_type())),
        };
        sealed.open(encapsulated, self.limits.max_response)
    }

    /// Ends the session with a TLS `close_notify`.
    pub fn close(mut self) -> Result<(), ClientError> {
        self.stream.conn.send_close_notify();
        self.stream.flush()?;
        Ok(())
    }
}
