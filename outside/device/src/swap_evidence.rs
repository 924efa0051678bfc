//! Tamper evidence for a swapped enclave ([`pp_translog::evidence::SwappedEnclave`]): the
//! publication of a logged instance (a genuine report on chip C, measurement M of the logged
//! release R, the key configuration the logged index lists) and a session's report, genuine, on
//! the same chip C (at or above AMD's bulletin TCB floor, below which reports can be forged)
//! and bound to the same key configuration, with another measurement (or a TCB or guest policy
//! the launch policy of the file's manifest refuses). That shows a guest on chip C claiming the
//! instance's key: not when, not who ran it (a later owner of the chip, its provider or a
//! co-tenant can make such a report at any time), not that the operator's gateway served it
//! (nothing ties the report to a time or to the checkpoint; the nonce and exporter are the
//! file's word). The verdict says exactly that. Anyone's SNP guest can
//! bind the public key configuration in its `REPORT_DATA`, so a report from another chip, or a
//! publication that does not verify under the logged release and the checker's policy, proves
//! nothing about the operator: "attestation mismatch, does not implicate the operator", and no
//! file. The device builds the file when a session is refused, checks it exactly as
//! `pp check-evidence` will, and writes it only if it is proven.

use std::path::Path;

use anyhow::{Context, Result};
use pp_attestation::report::Report;
use pp_client::{NotAttested, SessionBinding};
use pp_protocol::evidence::EvidenceRepr;
use pp_translog::TrustPolicy;
use pp_translog::evidence::{Evidence, LoggedEntry, SwappedEnclave};
use pp_verifier::{CheckName, Outcome, Verdict};
use reproducible::manifest::Manifest;
use sha2::{Digest, Sha256};

use crate::check_receipt::{listed, verify_at};
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

/// The checks of what the enclave is, against the logged release, and how a failure of each
/// is named. Several logged manifests may share a `release_ref` with different launch policies
/// (and the device takes the one the CDN names), so a TCB or policy difference is only against
/// "this manifest", never "another launch": that is said of a measurement difference alone.
const DIFFERS: [(CheckName, &str); 4] = [
    (CheckName::Measurement, "measurement"),
    (CheckName::TcbMinimum, "TCB below the floor"),
    (CheckName::GuestPolicy, "guest policy other than the one"),
    (CheckName::Vmpl, "VMPL other than the one the policy"),
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
        publication_hex: hex::encode(chosen.publication.as_slice()),
        index: logged(&chosen.index.bytes, "CDN index")?,
        release: logged(&chosen.release.bytes, "release manifest")?,
    })
}

/// Checks a swapped-enclave file offline with the checker's `roots` and log `trust`: the
/// witnessed checkpoint and both inclusion proofs; the index listing the instance with the
/// report's key configuration, the file's publication (by `evidence_sha256`) and the logged
/// release; the publication verifying under that release's policy with these roots (as the
/// device's discovery requires); the session's report genuine, bound to the file's nonce and
/// exporter, at or above AMD's bulletin TCB floor and from the publication's chip; and its
/// measurement not the publication's (nor the release's), or its TCB or guest policy refused by
/// the launch policy the manifest states. `Ok` says what that shows (and what not); `Err` why it
/// proves nothing.
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

    // The instance's publication: the bundle the logged index names, genuine and of the logged
    // release under the checker's full policy (as the device's discovery requires), for the
    // same key configuration. Without it nothing ties a report to the operator's machines.
    let publication_bytes = file.publication()?;
    anyhow::ensure!(
        hex::encode(Sha256::digest(&publication_bytes)) == listing.evidence_sha256,
        "the file's publication evidence is not the one the logged index names for instance {} \
         (its SHA-256 differs from evidence_sha256)",
        file.instance
    );
    let publication = EvidenceRepr::from_bytes(&publication_bytes)
        .map_err(|e| anyhow::anyhow!("the instance's publication evidence is malformed: {e}"))?;
    anyhow::ensure!(
        publication.key_config == evidence.key_config
            && publication.release_ref == release.manifest.release_ref_bytes()?,
        "the instance's publication evidence is not of the logged key configuration and release"
    );
    let published = verify_at(
        &roots.policy(&release)?,
        &publication,
        &pp_attestation::publication_report_data(&publication.release_ref, publication.key_config),
        file.observed_at,
    );
    anyhow::ensure!(
        published.accepted(),
        "{MISMATCH}: the instance's publication evidence does not verify under the logged \
         release {logged_ref}'s policy and this checker's roots and TCB floor ({})",
        failures(&published).join("; ")
    );

    // The session's report: genuine and bound to this session; its differences are judged
    // against what the manifest states (not this checker's built-in floor).
    let policy = roots.stated_policy(&release)?;
    let report_data = pp_attestation::report_data_for(
        &session.exporter,
        &session.nonce,
        &evidence.release_ref,
        evidence.key_config,
    );
    let verdict = verify_at(&policy, &evidence, &report_data, file.observed_at);
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
    // A VCEK at a TCB AMD's bulletins declare compromised can sign any report: below this
    // checker's built-in floor a report is no one's, whatever the manifest states.
    let bulletins = verify_at(
        &roots.bulletin_policy()?,
        &evidence,
        &report_data,
        file.observed_at,
    );
    anyhow::ensure!(
        bulletins.outcome(CheckName::TcbMinimum) == Some(Outcome::Pass),
        "attestation mismatch, does not implicate anyone: the session's report is at a TCB \
         below AMD's bulletin floor, where reports can be forged ({})",
        outcome_line(&bulletins, CheckName::TcbMinimum)
    );
    let report = Report::new_checked(evidence.report)
        .map_err(|_| anyhow::anyhow!("the attestation report is malformed"))?;
    let published_report = Report::new_checked(publication.report)
        .map_err(|_| anyhow::anyhow!("the publication's attestation report is malformed"))?;
    let chip = hex::encode(published_report.chip_id());
    anyhow::ensure!(
        report.chip_id() == published_report.chip_id(),
        "{MISMATCH}: the session's report is from chip {}, the instance's publication from chip \
         {chip}: nothing ties the session's machine to the operator's",
        hex::encode(report.chip_id())
    );

    let published_measurement = published_report.measurement();
    let mut differs: Vec<String> = Vec::new();
    if report.measurement() != published_measurement && !allowed.contains(&report.measurement()) {
        differs.push(format!(
            "measurement {}, not the publication's {} (the logged release {logged_ref} has \
             {}): another launch than the published one",
            hex::encode(report.measurement()),
            hex::encode(published_measurement),
            allowed
                .iter()
                .map(hex::encode)
                .collect::<Vec<_>>()
                .join(" or ")
        ));
    }
    for (name, what) in &DIFFERS[1..] {
        if verdict.outcome(*name) != Some(Outcome::Pass) {
            differs.push(format!(
                "{}: at a {what} this manifest (log index {}) states, which the instance's \
                 publication meets",
                outcome_line(&verdict, *name),
                file.release.log_index
            ));
        }
    }
    anyhow::ensure!(
        !differs.is_empty(),
        "{MISMATCH}: the report agrees with the instance's publication and the logged release \
         {logged_ref}: nothing differs"
    );
    if evidence.release_ref != publication.release_ref {
        differs.push(format!(
            "(it also states release {})",
            hex::encode(evidence.release_ref)
        ));
    }
    let key_hash = hex::encode(Sha256::digest(evidence.key_config));
    let roots_named = match roots.test_label() {
        Some(_) => "the configured TEST root (not AMD's)",
        None => "AMD's root",
    };
    let revocation = if roots.crl_count() == 0 {
        " (revocation not checked: no trust.amd_crls)"
    } else {
        ""
    };
    Ok(format!(
        "PROVEN (what this file shows): a genuine SEV-SNP report on chip {chip} (chained to \
         {roots_named}{revocation}, at or above AMD's bulletin TCB floor) — the chip logged \
         instance {instance} was published from (its publication, of measurement {published}, \
         is listed by its SHA-256 in a CDN index at log index {index}, in the log's witnessed \
         tree of size {size}, not necessarily the newest index; it verifies under the logged \
         release {logged_ref} at log index {release_index}) — binds that instance's key \
         configuration (SHA-256 {key_hash}) and shows {differs}. Not shown by this file: when \
         the report was made, that the operator's gateway served it, or that the operator \
         (rather than anyone else who ran a guest on chip {chip}) made it; the nonce and \
         exporter are the ones the device states it drew (as is that it was served this report \
         when it asked for instance {instance} at Unix time {observed}). Nor does a report that \
         binds a key configuration show the enclave holds its private key.",
        instance = file.instance,
        index = file.index.log_index,
        size = cp.size,
        published = hex::encode(published_measurement),
        release_index = file.release.log_index,
        differs = differs.join("; and "),
        observed = file.observed_at,
    ))
}

/// The start of every refusal that is a mismatch but no proof against the operator.
const MISMATCH: &str = "attestation mismatch, does not implicate the operator";

/// The failed checks of `verdict`, one line each.
fn failures(verdict: &Verdict) -> Vec<String> {
    verdict
        .checks()
        .iter()
        .filter(|c| c.outcome != Outcome::Pass)
        .map(|c| c.to_string().trim().to_string())
        .collect()
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
