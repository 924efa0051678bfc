//! Publication evidence: what the operator fetches from each enclave instance and puts on the key
//! CDN, and what the device checks before it picks an instance (docs/protocol.md §5).
//!
//! The enclave signs `REPORT_DATA = publication_report_data(release_ref, key_config)`: no session,
//! no nonce, so this evidence is not fresh. It says "an enclave with this measurement, built as
//! this release, holds this HPKE key configuration". Freshness comes later, from the evidence the
//! same enclave sends inside the device's own session, which must name the same key configuration.

use std::io::{Read, Write};

use pp_attestation::Report;
use pp_protocol::evidence::{Evidence, EvidenceRepr};
use pp_protocol::frame::{FrameRepr, FrameType};
use pp_verifier::Verdict;

use crate::{ClientError, MAX_EVIDENCE, parse, tls, view, wire};

/// Asks the enclave at the other end of `stream` for publication evidence and returns the
/// encoded evidence bundle, unverified (the operator publishes it; devices verify it with
/// [`verify_publication`]). Set timeouts on `stream` first.
pub fn fetch_publication<S: Read + Write>(
    stream: S,
    server_name: &str,
) -> Result<Vec<u8>, ClientError> {
    let mut stream = tls::handshake(stream, server_name)?;
    wire::write_frame(&mut stream, &FrameRepr::PublicationRequest)?;
    let frame = wire::read_frame(&mut stream, |t| {
        (t == FrameType::Evidence).then_some(MAX_EVIDENCE)
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

/// What verified publication evidence says about an enclave instance.
#[derive(Clone, Debug)]
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

/// Verifies an encoded publication evidence bundle against `policy`: the AMD chain and report
/// signature, TCB, guest policy, the measurement in the policy's allowed set, and `REPORT_DATA`
/// naming the bundle's release reference and key configuration.
pub fn verify_publication(
    bundle: &[u8],
    policy: &pp_verifier::Policy,
) -> Result<Published, ClientError> {
    if bundle.len() > MAX_EVIDENCE {
        return Err(ClientError::FrameTooLarge);
    }
    let view = Evidence::new_checked(bundle).map_err(ClientError::Evidence)?;
    let evidence = EvidenceRepr::parse(&view).map_err(ClientError::Evidence)?;
    let expected =
        pp_attestation::publication_report_data(&evidence.manifest_sha256, evidence.key_config);
    let (verdict, measurement) = crate::check_evidence(&evidence, policy, &expected)?;
    Ok(Published {
        key_config: evidence.key_config.to_vec(),
        release_ref: evidence.manifest_sha256,
        measurement,
        verdict,
    })
}

/// Reads the release reference and measurement a bundle *claims*, without verifying anything:
/// the device uses it only to find which logged release to build the policy from, then verifies
/// with [`verify_publication`].
pub fn claimed_release(bundle: &[u8]) -> Result<([u8; 32], [u8; 48]), ClientError> {
    let view = Evidence::new_checked(bundle).map_err(ClientError::Evidence)?;
    let evidence = EvidenceRepr::parse(&view).map_err(ClientError::Evidence)?;
    let report = Report::new_checked(evidence.report)
        .map_err(|_| ClientError::Evidence(pp_protocol::Error::Malformed))?;
    Ok((evidence.manifest_sha256, report.measurement()))
}
