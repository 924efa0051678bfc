//! One receipt per answered request, in `receipts/` of the state folder: the receipt
//! (`<stem>.json`, [`pp_translog::Receipt`]) and beside it the evidence bundle the request relied
//! on (the session's, or for a one-shot request the instance's logged publication evidence), the
//! logged release manifest and the logged CDN index, so that `pp check-receipt` re-verifies it
//! offline. Both paths end in the same receipt; its `path` says which. Each receipt is also appended as one line to `receipts.jsonl` (a list of them).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pp_client::SessionBinding;
use pp_protocol::evidence::EvidenceRepr;
use pp_translog::Receipt;
use pp_translog::receipt::{ProvenEntry, ReceiptPath, SCHEMA};
use sha2::{Digest, Sha256};

use crate::instances::Candidate;
use crate::releases::LogClient;

/// The folder of receipt files in the state folder.
pub const RECEIPTS_DIR: &str = "receipts";

/// The evidence a request relied on.
pub enum Relied<'a> {
    /// An attested session's evidence, nonce and exporter.
    Session(&'a SessionBinding),
    /// A one-shot request: the instance's publication evidence (`Candidate::publication`).
    Oneshot,
}

/// Builds the receipt for a request to `chosen` that relied on `relied`, under `log`'s tree
/// head, writes it and its companion files, and returns it with its path.
pub fn record(
    state_dir: &Path,
    chosen: &Candidate,
    relied: Relied<'_>,
    log: &LogClient,
) -> Result<(Receipt, PathBuf)> {
    // A user who opted out while the request ran keeps no receipt of it.
    crate::consent::require_opt_in(state_dir)
        .context("the user opted out while this request ran: its receipt is not kept")?;
    let (bundle, path, nonce, exporter) = match relied {
        Relied::Session(b) => (
            &b.evidence[..],
            ReceiptPath::Session,
            Some(hex::encode(b.nonce)),
            Some(hex::encode(b.exporter)),
        ),
        Relied::Oneshot => (&chosen.publication[..], ReceiptPath::Oneshot, None, None),
    };
    let evidence = EvidenceRepr::from_bytes(bundle)
        .map_err(|e| anyhow::anyhow!("the evidence relied on cannot be kept: {e}"))?;
    let checked_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    let mut rand = [0u8; 8];
    getrandom::fill(&mut rand).map_err(|_| anyhow::anyhow!("no randomness"))?;
    let stem = format!("r-{checked_at}-{}", hex::encode(rand));
    let proven = |file: String, bytes: &[u8]| -> Result<ProvenEntry> {
        let proof = log.inclusion(bytes)?;
        Ok(ProvenEntry {
            file,
            log_index: proof.leaf_index,
            inclusion_path: proof.path.iter().map(hex::encode).collect(),
        })
    };
    let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
    let receipt = Receipt {
        schema: SCHEMA.into(),
        checked_at,
        path,
        instance: chosen.id.clone(),
        measurement_hex: hex::encode(chosen.published.measurement),
        evidence_file: format!("{stem}.evidence.bin"),
        report_sha256: sha(evidence.report),
        vcek_sha256: sha(evidence.vcek),
        ask_sha256: sha(evidence.ask),
        ark_sha256: sha(evidence.ark),
        nonce_hex: nonce,
        exporter_hex: exporter,
        release: proven(format!("{stem}.release.json"), &chosen.release.bytes)?,
        index: proven(format!("{stem}.index.json"), &chosen.index.bytes)?,
        tree_head: log.cosigned_note().to_string(),
        log_id_hex: hex::encode(log.log_id()),
    };
    let dir = state_dir.join(RECEIPTS_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, bytes) in [
        (&receipt.evidence_file, bundle),
        (&receipt.release.file, &chosen.release.bytes[..]),
        (&receipt.index.file, &chosen.index.bytes[..]),
    ] {
        std::fs::write(dir.join(name), bytes)?;
    }
    let path = dir.join(format!("{stem}.json"));
    std::fs::write(&path, receipt.to_json())
        .with_context(|| format!("writing {}", path.display()))?;
    append(state_dir, &receipt)?;
    Ok((receipt, path))
}

/// Appends `receipt` as one JSON line to `receipts.jsonl`.
pub fn append(state_dir: &Path, receipt: &Receipt) -> Result<()> {
    let path = state_dir.join("receipts.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "{}", receipt.to_json())?;
    file.sync_all()?;
    Ok(())
}
