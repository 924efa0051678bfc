//! The transparency-log side of the device: keep the log's tree head current (refusing forks and
//! rollbacks), and accept a release manifest only with a valid inclusion proof.

use std::path::Path;

use anyhow::{Context, Result};
use pp_translog::{DeviceLogState, InclusionProof, LogVerifier, SignedTreeHead, merkle};
use reproducible::manifest::Manifest;

use crate::fetch;

/// A release manifest proven to be in the log.
#[derive(Debug, Clone)]
pub struct LoggedRelease {
    pub manifest: Manifest,
    pub bytes: Vec<u8>,
    pub log_index: u64,
}

/// The device's view of the log.
pub struct LogClient {
    url: String,
    state: DeviceLogState,
    sth: SignedTreeHead,
    sth_text: String,
}

impl LogClient {
    /// Fetches the log's current tree head and checks it extends the last one this device saw
    /// (kept in `state_file`), with a consistency proof from the log.
    pub fn sync(url: &str, public_key_hex: &str, state_file: &Path) -> Result<Self> {
        let key: [u8; 32] = hex::decode(public_key_hex)
            .ok()
            .and_then(|k| k.try_into().ok())
            .context("log.public_key in the configuration is not 64 hex digits")?;
        let mut state = DeviceLogState::open(state_file, LogVerifier::new(key))?;
        let sth_bytes = fetch::get(&format!("{url}/sth"))?;
        let sth =
            SignedTreeHead::from_json(&sth_bytes).context("the log's tree head is malformed")?;
        let sth_text = String::from_utf8(sth_bytes).context("the log's tree head is not UTF-8")?;
        let proof = match state.current() {
            Some(old) if old.size > 0 && old.size < sth.size => {
                let body = fetch::get(&format!(
                    "{url}/proof/consistency?from={}&to={}",
                    old.size, sth.size
                ))?;
                pp_translog::ConsistencyProof::from_json(&body)
                    .context("the log's consistency proof is malformed")?
                    .path
            }
            _ => Vec::new(),
        };
        state
            .update(&sth, &proof)
            .context("the transparency log is not consistent with what this device saw before")?;
        Ok(Self {
            url: url.to_string(),
            state,
            sth,
            sth_text,
        })
    }

    /// The tree head all proofs are checked against.
    pub fn tree_head(&self) -> &SignedTreeHead {
        &self.sth
    }

    /// The log's id (SHA-256 of its key).
    pub fn log_id(&self) -> [u8; 32] {
        self.state.verifier().log_id()
    }

    /// Checks that `bytes` (a release manifest) is in the log, and parses it.
    pub fn logged_release(&self, bytes: Vec<u8>) -> Result<LoggedRelease> {
        let log_index = self
            .prove_included(&bytes)
            .context("the release manifest is not in the transparency log")?;
        let text = std::str::from_utf8(&bytes).context("the release manifest is not UTF-8")?;
        let manifest = Manifest::from_json(text)?;
        Ok(LoggedRelease {
            manifest,
            bytes,
            log_index,
        })
    }

    /// Checks that the log entry `bytes` (of any kind: see [`pp_translog::entry`]) is in the log
    /// under the current tree head, with an inclusion proof fetched from the log; returns its
    /// index.
    pub fn prove_included(&self, bytes: &[u8]) -> Result<u64> {
        Ok(self.inclusion(bytes)?.0)
    }

    /// [`Self::prove_included`], also returning the verified inclusion path (kept in receipts).
    pub fn inclusion(&self, bytes: &[u8]) -> Result<(u64, Vec<merkle::Hash>)> {
        let leaf = merkle::leaf_hash(bytes);
        let body = fetch::get(&format!(
            "{}/proof/inclusion?hash={}&size={}",
            self.url,
            hex::encode(leaf),
            self.sth.size
        ))
        .context("the entry is not in the transparency log")?;
        let proof =
            InclusionProof::from_json(&body).context("the log's inclusion proof is malformed")?;
        anyhow::ensure!(
            proof.tree_size == self.sth.size,
            "the log answered for another tree size"
        );
        self.state
            .verifier()
            .verify_inclusion(bytes, proof.leaf_index, &proof.path, &self.sth)
            .context("the log's inclusion proof for the entry does not verify")?;
        Ok((proof.leaf_index, proof.path))
    }

    /// Fetches the log entry at `index` and proves it is that leaf under the current tree head
    /// (an entry whose bytes also sit at an earlier index is refused: the proof names the first).
    pub fn entry_at(&self, index: u64) -> Result<Vec<u8>> {
        let bytes = fetch::get(&format!("{}/entries/{index}", self.url))?;
        let at = self.prove_included(&bytes)?;
        anyhow::ensure!(
            at == index,
            "the log served the entry at index {at} as entry {index}"
        );
        Ok(bytes)
    }

    /// The log's tree head as the log serialized it (kept verbatim in receipts).
    pub fn tree_head_text(&self) -> &str {
        &self.sth_text
    }
}
