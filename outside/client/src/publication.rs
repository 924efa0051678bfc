//! Publication evidence: what the operator fetches from each enclave instance and puts on the key
//! CDN, and what the device checks before it picks an instance (docs/protocol.md §5).
//!
//! The enclave signs `REPORT_DATA = publication_report_data(release_ref, key_config)`: no session,
//! no nonce, so this evidence is not fresh. It says "an enclave with this measurement, built as
//! this release, holds this HPKE key configuration". Freshness comes later, from the evidence the
//! same enclave sends inside the device's own session, which must name the same key configuration.

use std::io::{Read, Write};

use pp_protocol::evidence::{self as bundle, EvidenceRepr};
use pp_protocol::frame::{FrameRepr, FrameType};
use pp_verifier::Verdict;

use crate::{ClientError, parse, tls, view, wire};

/// Asks the enclave at the other end of `stream` for publication evidence and returns the
/// encoded evidence bundle, unverified (the operator publishes it; devices verify it with
/// [`Publication::verify`]). Set timeouts on `stream` first.
pub fn fetch_publication<S: Read + Write>(stream: S) -> Result<Vec<u8>, ClientError> {
    let mut stream = tls::handshake(stream)?;
    wire::write_frame(&mut stream, &FrameRepr::PublicationRequest)?;
    let frame = wire::read_frame(&mut stream, |t| {
        (t == FrameType::Evidence).then_some(bundle::MAX_LEN)
    })?;
    let frame = view(&frame)?;
    let bundle = match parse(&frame)? {
        FrameRepr::Evidence { bundle } => bundle.to_vec(),
        other => return Err(ClientError::UnexpectedFrame(other.frame_type())),
    };
    stream.conn.send_close_notify();
    let _ = stream.flush();
    Ok(bundle)
}

/// What verified publication evidence says about an enclave instance. Made only by
/// [`Publication::verify`] (it cannot be built by hand outside this crate), so an expectation
/// passed to `connect_published` is always a verified one.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Published {
    /// The attested RFC 9458 key configuration of the instance.
    pub key_config: Vec<u8>,
    /// The release the instance states it was built as (signed in `REPORT_DATA`).
    pub release_ref: [u8; 32],
    /// The instance's launch measurement (verified against the policy).
    pub measurement: [u8; 48],
    /// Every check and its outcome.
    pub verdict: Verdict,
}

/// A publication evidence bundle, parsed once: first read for the release it *claims* (to find
/// the logged release whose policy verifies it), then verified.
#[derive(Clone, Debug)]
pub struct Publication<'a> {
    evidence: EvidenceRepr<'a>,
}

impl<'a> Publication<'a> {
    /// Parses an encoded bundle (bounded by `pp_protocol::evidence::MAX_LEN`); verifies nothing.
    pub fn parse(bundle: &'a [u8]) -> Result<Self, ClientError> {
        if bundle.len() > bundle::MAX_LEN {
            return Err(ClientError::FrameTooLarge);
        }
        let evidence = EvidenceRepr::from_bytes(bundle).map_err(ClientError::Evidence)?;
        Ok(Self { evidence })
    }

    /// The release reference the bundle claims, unverified: use it only to choose the policy.
    pub fn claimed_release(&self) -> [u8; 32] {
        self.evidence.release_ref
    }

    /// Verifies the bundle against `policy`: the AMD chain and report signature, TCB, guest
    /// policy, the measurement in the policy's allowed set, and `REPORT_DATA` naming the
    /// bundle's release reference and key configuration; the certificates' validity periods
    /// against the device's clock (`SystemTime::now()`).
    pub fn verify(&self, policy: &pp_verifier::Policy) -> Result<Published, ClientError> {
        let evidence = &self.evidence;
        let expected =
            pp_attestation::publication_report_data(&evidence.release_ref, evidence.key_config);
        let (verdict, measurement) = crate::check_evidence(evidence, policy, &expected, None)?;
        Ok(Published {
            key_config: evidence.key_config.to_vec(),
            release_ref: evidence.release_ref,
            measurement,
            verdict,
        })
    }
}

/// Parses and verifies an encoded publication bundle in one step ([`Publication`]).
pub fn verify_publication(
    bundle: &[u8],
    policy: &pp_verifier::Policy,
) -> Result<Published, ClientError> {
    Publication::parse(bundle)?.verify(policy)
}
