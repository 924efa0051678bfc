//! Tamper evidence for a swapped enclave: a session whose attestation report is genuine and bound
//! to a logged instance's key configuration, yet whose measurement, release or launch policy is
//! not the logged release's ([`pp_translog::evidence::SwappedEnclave`]). The device builds the
//! file when a session is refused, checks it exactly as `pp check-evidence` will, and writes it
//! only if it proves something: a report that does not verify under the trusted roots, or one
//! for another key configuration, proves nothing about the log's instance and is not kept.

use std::path::Path;

use anyhow::{Context, Result};
use pp_client::{NotAttested, SessionBinding};
use pp_protocol::evidence::EvidenceRepr;
use pp_translog::TrustPolicy;
use pp_translog::evidence::{Evidence, LoggedEntry, SwappedEnclave};
use pp_verifier::{CheckName, Outcome, Verdict};
use reproducible::manifest::Manifest;
use sha2::{Digest, Sha256};

use crate::check_receipt::{listed, verify_session};
use crate::instances::{Candidate, Roots};
use crate::releases::{LogClient, LoggedRelease};

/// The checks that make a report genuine and bound to the session: its chain to a trusted root,
/// its signature, its certificates valid and unrevoked, and its `REPORT_DATA` this session's.
const GENUINE: [CheckName; 13] = [
    CheckName::ReportFormat,
    CheckName::ArkSelfSigned,
    CheckName::ArkTrusted,
    CheckName::AskSignedByArk,
    CheckName::VcekSignedByAsk,
    CheckName::ReportSignature,
    CheckName::TcbMatchesReport,
    CheckName::ChipId,
    CheckName::ReportData,
    CheckName::CertificatesValid,
    CheckName::CaConstraints,
    CheckName::ProductAgreement,
    CheckName::NotRevoked,
];

/// The checks of what the enclave is, against the logged release.
const DIFFERS: [CheckName; 4] = [
    CheckName::Measurement,
    CheckName::TcbMinimum,
    CheckName::GuestPolicy,
    CheckName::Vmpl,
];

/// What the device needs to keep a refused session as evidence.
pub struct Keeper<'a> {
    /// The device's state folder (evidence goes to `evidence/` in it).
    pub state_dir: &'a Path,
    /// The log the device synced, for the checkpoint and the inclusion proofs.
    pub log: &'a LogClient,
    /// The attestation roots.
    pub roots: &'a Roots,
    /// The configured log and witnesses.
    pub trust: &'a TrustPolicy,
}

impl Keeper<'_> {
    /// For a session with `chosen` refused with `failed`: builds the evidence, checks it, and
    /// writes it only if it proves a swapped enclave. Returns the sentence that ends the
    /// device's error: the evidence pointer, or why no file was written.
    pub fn record(&self, chosen: &Candidate, failed: &NotAttested) -> String {
        let Some(binding) = &failed.binding else {
            return "no evidence file was written: no session evidence was kept".into();
        };
        let observed_at = pp_translog::checkpoint::unix_now();
        let file = match build(chosen, binding, self.log, self.trust, observed_at) {
            Ok(f) => f,
            Err(e) => return format!("no evidence file was written: {e:#}"),
        };
        match check(&file, self.roots, self.trust) {
            Ok(_) => {
                crate::evidence::record(self.state_dir, Evidence::SwappedEnclave(Box::new(file)))
            }
            Err(why) => format!(
                "no evidence file was written, as this refusal proves nothing about the logged \
                 instance: {why}"
            ),
        }
    }
}

/// The evidence of a session with `chosen` verified with `binding`, under `log`'s tree head.
pub fn build(
    chosen: &Candidate,
    binding: &SessionBinding,
    log: &LogClient,
    trust: &TrustPolicy,
    observed_at: u64,
) -> Result<SwappedEnclave> {
    let logged = |bytes: &[u8], what: &str| -> Result<LoggedEntry> {
        let proof = log.inclusion(bytes)?;
        Ok(LoggedEntry {
            entry: String::from_utf8(bytes.to_vec())
                .with_context(|| format!("the logged {what} is not UTF-8"))?,
            log_index: proof.leaf_index,
            inclusion_path: proof.path.iter().map(hex::encode).collect(),
        })
    };
    Ok(SwappedEnclave {
        log_vkey: trust.log.to_vkey(),
        checkpoint: log.cosigned_note().to_string(),
        observed_at,
        instance: chosen.id.clone(),
        evidence_hex: hex::encode(&binding.evidence),
        nonce_hex: hex::encode(binding.nonce),
        exporter_hex: hex::encode(binding.exporter),
        index: logged(&chosen.index.bytes, "CDN index")?,
        release: logged(&chosen.release.bytes, "release manifest")?,
    })
}

/// Checks a swapped-enclave file offline with the checker's `roots` and log `trust`: the
/// witnessed checkpoint and both inclusion proofs, the index listing the instance with the
/// report's key configuration and naming the logged release, the report genuine under `roots`
/// and bound to the session, and something of it not the logged release's. `Ok` says what it
/// proves (and what not); `Err` why it proves nothing.
pub fn check(
    file: &SwappedEnclave,
    roots: &Roots,
    trust: &TrustPolicy,
) -> std::result::Result<String, String> {
    check_inner(file, roots, trust).map_err(|e| format!("{e:#}"))
}

fn check_inner(file: &SwappedEnclave, roots: &Roots, trust: &TrustPolicy) -> Result<String> {
    let cp = file.check_log(trust)?;
    let session = file.session()?;
    let evidence = EvidenceRepr::from_bytes(&session.bundle)
        .map_err(|e| anyhow::anyhow!("the session's evidence bundle is malformed: {e}"))?;
    let listing = listed(
        file.index.entry.as_bytes(),
        &file.instance,
        evidence.key_config,
    )?;
    let manifest = Manifest::from_json(&file.release.entry)
        .context("the logged release manifest does not parse")?;
    anyhow::ensure!(
        listing.release_ref == manifest.release_ref,
        "the file's release manifest ({}) is not the one the logged index names for instance {} \
         ({})",
        manifest.release_ref,
        file.instance,
        listing.release_ref
    );
    let logged_ref = manifest.release_ref.clone();
    let allowed = manifest.accepted_measurements()?;
    let release = LoggedRelease {
        manifest,
        bytes: file.release.entry.clone().into_bytes(),
        log_index: file.release.log_index,
    };
    let verdict = verify_session(
        roots,
        &release,
        &evidence,
        &session.exporter,
        &session.nonce,
        file.observed_at,
    )?;
    let not_genuine: Vec<String> = GENUINE
        .iter()
        .filter(|name| verdict.outcome(**name) != Some(Outcome::Pass))
        .map(|name| outcome_line(&verdict, *name))
        .collect();
    anyhow::ensure!(
        not_genuine.is_empty(),
        "the report is not a genuine SEV-SNP report bound to this session under the trusted \
         roots ({})",
        not_genuine.join("; ")
    );
    let mut differs: Vec<String> = Vec::new();
    let report = pp_attestation::report::Report::new_checked(evidence.report)
        .map_err(|_| anyhow::anyhow!("the attestation report is malformed"))?;
    if verdict.outcome(CheckName::Measurement) != Some(Outcome::Pass) {
        differs.push(format!(
            "measurement {}; the logged release {logged_ref} has {}",
            hex::encode(report.measurement()),
            allowed
                .iter()
                .map(hex::encode)
                .collect::<Vec<_>>()
                .join(" or ")
        ));
    }
    if evidence.release_ref != release.manifest.release_ref_bytes()? {
        differs.push(format!(
            "release {}; the logged index lists release {logged_ref} for the instance",
            hex::encode(evidence.release_ref)
        ));
    }
    for name in &DIFFERS[1..] {
        if verdict.outcome(*name) != Some(Outcome::Pass) {
            differs.push(format!(
                "{} against the logged release {logged_ref}",
                outcome_line(&verdict, *name)
            ));
        }
    }
    anyhow::ensure!(
        !differs.is_empty(),
        "the report agrees with the logged release {logged_ref}: nothing differs"
    );
    let key_hash = hex::encode(Sha256::digest(evidence.key_config));
    let roots_named = match roots.test_label() {
        Some(_) => "the configured TEST root (not AMD's)",
        None => "AMD's root",
    };
    Ok(format!(
        "PROVEN: a genuine SEV-SNP report (chained to {roots_named}), bound to the session's nonce \
         and TLS exporter and to logged instance {}'s key configuration (SHA-256 {key_hash}, listed \
         in the CDN index at log index {} of the log's witnessed tree of size {}), shows {}. \
         The logged release is at log index {}. Not proven by this file: which network path \
         served the session (that the operator's gateway connected the device to it when asked \
         for instance {} at Unix time {} is the device's statement), nor that the enclave holds \
         the private key of the key configuration it attests.",
        file.instance,
        file.index.log_index,
        cp.size,
        differs.join("; and "),
        file.release.log_index,
        file.instance,
        file.observed_at
    ))
}

/// One check's verdict line (`FAIL  name: reason`).
fn outcome_line(verdict: &Verdict, name: CheckName) -> String {
    verdict
        .checks()
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.to_string().trim().to_string())
        .unwrap_or_else(|| format!("{name} not checked"))
}

#[cfg(all(test, feature = "test-root"))]
#[path = "swap_evidence_tests.rs"]
mod tests;
