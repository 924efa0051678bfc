//! `pp check-receipt FILE`: re-verify a receipt offline (no network), from the receipt, the files
//! kept beside it and the configuration's log and witness keys and trusted roots. Checked: the
//! tree head, a C2SP checkpoint signed by the configured log key and cosigned by enough configured
//! witnesses no longer than `log.max_age_secs` before the receipt's time; the release manifest's and the CDN index's inclusion
//! proofs against it; the report's certificate chain to the trusted root at the receipt's time,
//! its signature, TCB and policy, its measurement one of the logged manifest's; its
//! `REPORT_DATA` binding (exporter, nonce, release, key configuration; for a one-shot receipt the
//! publication binding of release and key configuration, and the index's age at the receipt's
//! time); the report and
//! certificate hashes; and that the logged index lists the instance with this key configuration.

use std::path::Path;

use anyhow::{Context, Result, bail};
use pp_protocol::cdn_index::{CdnIndex, CdnInstance, instance_id};
use pp_protocol::evidence::EvidenceRepr;
use pp_translog::device::verify_inclusion;
use pp_translog::receipt::ReceiptPath;
use pp_translog::{Receipt, TrustPolicy};
use pp_verifier::EvidenceRef;
use reproducible::manifest::Manifest;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::instances::Roots;
use crate::releases::LoggedRelease;

/// What a receipt that checks says, for the command's output.
#[derive(Debug)]
pub struct Checked {
    /// The instance id.
    pub instance: String,
    /// The release's `release_ref` (hex) and its log index.
    pub release_ref: String,
    /// The release manifest's log index.
    pub release_index: u64,
    /// The CDN index's log index.
    pub index_index: u64,
    /// The attestation verdict, every check passed.
    pub verdict: pp_verifier::Verdict,
    /// The path the request took (which evidence was verified).
    pub path: ReceiptPath,
}

/// Re-verifies the receipt at `path` with `config`'s log key and trust roots.
pub fn check(path: &Path, config: &Config) -> Result<Checked> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let receipt = Receipt::from_json(&text).context("not a receipt")?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let beside = |name: &str| -> Result<Vec<u8>> {
        let file = dir.join(name);
        std::fs::read(&file)
            .with_context(|| format!("reading {} (kept beside the receipt)", file.display()))
    };
    let roots = Roots::from_config(&config.trust)?;
    check_parts(&receipt, beside, &roots, &config.log.trust_policy()?)
}

/// [`check`] on a parsed receipt, reading companion files through `beside`.
pub fn check_parts(
    receipt: &Receipt,
    beside: impl Fn(&str) -> Result<Vec<u8>>,
    roots: &Roots,
    log: &TrustPolicy,
) -> Result<Checked> {
    // The tree head, verbatim as the device accepted it: signed by the configured log key and
    // cosigned by enough configured witnesses, fresh at the receipt's time.
    let sth = log
        .verify(receipt.tree_head.as_bytes(), receipt.checked_at)
        .context("the receipt's tree head is not a checkpoint of the configured log, witnessed when the receipt was made")?
        .checkpoint;
    anyhow::ensure!(
        hex::encode(pp_translog::checkpoint::log_id(&log.log.public_key)) == receipt.log_id_hex,
        "the receipt names another log (log_id_hex) than the configured one"
    );
    // Both entries are in the log under that head.
    let manifest_bytes = beside(&receipt.release.file)?;
    verify_inclusion(
        &manifest_bytes,
        receipt.release.log_index,
        &receipt.release.path()?,
        &sth,
    )
    .context("the release manifest's inclusion proof does not verify against the tree head")?;
    let index_bytes = beside(&receipt.index.file)?;
    verify_inclusion(
        &index_bytes,
        receipt.index.log_index,
        &receipt.index.path()?,
        &sth,
    )
    .context("the CDN index's inclusion proof does not verify against the tree head")?;

    // The evidence kept beside is the one the receipt names.
    let bundle = beside(&receipt.evidence_file)?;
    let evidence = EvidenceRepr::from_bytes(&bundle)
        .map_err(|e| anyhow::anyhow!("the evidence kept beside the receipt is malformed: {e}"))?;
    let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
    for (what, bytes, named) in [
        (
            "attestation report",
            evidence.report,
            &receipt.report_sha256,
        ),
        ("VCEK certificate", evidence.vcek, &receipt.vcek_sha256),
        ("ASK certificate", evidence.ask, &receipt.ask_sha256),
        ("ARK certificate", evidence.ark, &receipt.ark_sha256),
    ] {
        anyhow::ensure!(
            &sha(bytes) == named,
            "the {what} kept beside the receipt is not the one the receipt names (its SHA-256 differs)"
        );
    }

    // The instance is in the logged index, with this key configuration and release.
    let listed = listed(&index_bytes, &receipt.instance, evidence.key_config)?;
    anyhow::ensure!(
        listed.release_ref == hex::encode(evidence.release_ref),
        "the session's release is not the one the logged index lists for instance {}",
        receipt.instance
    );

    // The report: chain to the trusted root at the receipt's time, measurement of the logged
    // manifest, REPORT_DATA bound to this session's exporter, nonce, release and key.
    let text = std::str::from_utf8(&manifest_bytes).context("the release manifest is not UTF-8")?;
    let manifest = Manifest::from_json(text)?;
    anyhow::ensure!(
        manifest.release_ref_bytes()? == evidence.release_ref,
        "the session's release_ref is not the logged manifest's"
    );
    let release = LoggedRelease {
        manifest,
        bytes: manifest_bytes,
        log_index: receipt.release.log_index,
    };
    let verdict = match receipt.path {
        ReceiptPath::Session => {
            let hex32 = |h: Option<&String>| -> Result<[u8; 32]> {
                h.and_then(|h| hex::decode(h).ok())
                    .and_then(|b| b.try_into().ok())
                    .context("a session receipt's nonce or exporter is not 32 bytes of hex")
            };
            verify_session(
                roots,
                &release,
                &evidence,
                &hex32(receipt.exporter_hex.as_ref())?,
                &hex32(receipt.nonce_hex.as_ref())?,
                receipt.checked_at,
            )?
        }
        ReceiptPath::Oneshot => {
            check_oneshot_age(&index_bytes, receipt.checked_at)?;
            let policy = roots.policy(&release)?;
            let expected =
                pp_attestation::publication_report_data(&evidence.release_ref, evidence.key_config);
            verify_at(&policy, &evidence, &expected, receipt.checked_at)
        }
    };
    if !verdict.accepted() {
        bail!("the receipt's attestation report does not verify:\n{verdict}");
    }
    let report = pp_attestation::report::Report::new_checked(evidence.report)
        .map_err(|_| anyhow::anyhow!("the attestation report is malformed"))?;
    anyhow::ensure!(
        hex::encode(report.measurement()) == receipt.measurement_hex,
        "the receipt's measurement is not the report's"
    );
    Ok(Checked {
        instance: receipt.instance.clone(),
        release_ref: release.manifest.release_ref.clone(),
        release_index: receipt.release.log_index,
        index_index: receipt.index.log_index,
        verdict,
        path: receipt.path,
    })
}

/// A one-shot request relied on a logged index no older than the key period plus slack when the
/// receipt was made ([`crate::oneshot::check_fresh`]), as the device checked before sealing.
fn check_oneshot_age(index_bytes: &[u8], checked_at: u64) -> Result<()> {
    let index = CdnIndex::parse(index_bytes)
        .map_err(|e| anyhow::anyhow!("the logged CDN index is malformed: {e}"))?;
    crate::oneshot::check_fresh(&index, checked_at)
        .context("the one-shot receipt relied on an index too old for its time")
}

/// The logged CDN index (its bytes) lists `instance` with the key configuration `key_config`
/// (by SHA-256, the id derived from it). Returns the listing.
pub fn listed(index_bytes: &[u8], instance: &str, key_config: &[u8]) -> Result<CdnInstance> {
    let index = CdnIndex::parse(index_bytes)
        .map_err(|e| anyhow::anyhow!("the logged CDN index is malformed: {e}"))?;
    let key_hash: [u8; 32] = Sha256::digest(key_config).into();
    let Some(listed) = index.instances.into_iter().find(|i| i.id == instance) else {
        bail!("the logged CDN index does not list instance {instance}");
    };
    anyhow::ensure!(
        listed.id == instance_id(&key_hash) && listed.key_config_sha256 == hex::encode(key_hash),
        "the session's key configuration is not the one the logged index lists for instance {instance}"
    );
    Ok(listed)
}

/// Verifies a session's evidence offline under the policy of the logged `release` (its
/// measurements, TCB floor and guest policy, `roots`), at `at` (Unix seconds), with the
/// `REPORT_DATA` of this session's exporter and nonce and the bundle's release and key
/// configuration. Returns the whole verdict, accepted or not.
pub fn verify_session(
    roots: &Roots,
    release: &LoggedRelease,
    evidence: &EvidenceRepr<'_>,
    exporter: &[u8; 32],
    nonce: &[u8; 32],
    at: u64,
) -> Result<pp_verifier::Verdict> {
    let policy = roots.policy(release)?;
    let expected = pp_attestation::report_data_for(
        exporter,
        nonce,
        &evidence.release_ref,
        evidence.key_config,
    );
    Ok(verify_at(&policy, evidence, &expected, at))
}

/// Verifies `evidence` under `policy` with the expected `REPORT_DATA`, at `at` (Unix seconds).
pub fn verify_at(
    policy: &pp_verifier::Policy,
    evidence: &EvidenceRepr<'_>,
    expected: &[u8; 64],
    at: u64,
) -> pp_verifier::Verdict {
    pp_verifier::verify(
        EvidenceRef {
            report: evidence.report,
            vcek_der: evidence.vcek,
            ask_der: evidence.ask,
            ark_der: evidence.ark,
        },
        policy,
        expected,
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(at),
    )
}

#[cfg(all(test, feature = "test-root"))]
#[path = "check_receipt_tests.rs"]
mod tests;
