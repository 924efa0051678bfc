//! The transparency-log side of the device: accept the log's tree head only as a C2SP
//! checkpoint cosigned by enough configured witnesses, recently, that extends the last one this
//! device saw (every new entry fetched and checked, so revocations cannot be hidden); accept a
//! release manifest only with a valid inclusion proof and no revocation in the log. A fork, a
//! stale head or a revoked release leaves an evidence file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pp_translog::evidence::Evidence;
use pp_translog::{Checkpoint, DeviceError, DeviceLogState, InclusionProof, merkle};
use reproducible::manifest::Manifest;

use crate::config;
use crate::evidence;
use crate::key_history::KeyHistory;
use crate::reads::Reader;

/// The device's state file for the log (the checkpoint, the tree's frontier, revocations).
pub const STATE_FILE: &str = "log-checkpoint.json";

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
    state_dir: PathBuf,
    log_vkey: String,
    keys: KeyHistory,
    reader: Reader,
}

impl LogClient {
    /// Fetches the log's checkpoint and accepts it (see the module documentation); the state
    /// is kept in `state_dir`. Every read of the log (and of the CDN, through [`Self::reader`])
    /// goes through `reader`.
    pub fn sync(log: &config::Log, state_dir: &Path, reader: Reader) -> Result<Self> {
        let policy = log.trust_policy()?;
        let log_vkey = policy.log.to_vkey();
        let witness_vkeys: Vec<String> = policy.witnesses.iter().map(|w| w.to_vkey()).collect();
        let max_age_secs = policy.max_age_secs;
        let mut state = DeviceLogState::open(state_dir.join(STATE_FILE), policy)?;
        let url = log.url.trim_end_matches('/').to_string();
        let note = reader.get(&format!("{url}/checkpoint"))?;
        let now = pp_translog::checkpoint::unix_now();
        // The new entries, checked against the signed root by `update`, also feed the issuer
        // key summary.
        let mut fetched = std::collections::HashMap::new();
        // Whole entry tiles, from the one holding the last accepted entry: the requests name
        // tile indexes, not this device's size.
        let mut fetch_tile = |path: &str| {
            reader
                .get(&format!("{url}/{path}"))
                .map_err(|e| format!("{e:#}"))
        };
        let mut keep = |i: u64, bytes: &[u8]| {
            fetched.insert(i, bytes.to_vec());
        };
        if let Err(e) = state.update(&note, now, &mut fetch_tile, &mut keep) {
            let pointer = match &e {
                DeviceError::Fork {
                    remembered,
                    offered,
                    ..
                } => Some(evidence::record(
                    state_dir,
                    Evidence::LogFork {
                        log_vkey: log_vkey.clone(),
                        remembered: remembered.clone(),
                        offered: offered.clone(),
                    },
                )),
                DeviceError::Checkpoint {
                    reason: pp_translog::CheckpointError::Stale { .. },
                    note: Some(note),
                } => Some(evidence::record(
                    state_dir,
                    Evidence::StaleCheckpoint {
                        log_vkey: log_vkey.clone(),
                        witness_vkeys,
                        checkpoint: note.clone(),
                        observed_at: now,
                        max_age_secs,
                    },
                )),
                DeviceError::Inconsistent {
                    remembered,
                    offered,
                    recomputed,
                    ..
                } => Some(evidence::record(
                    state_dir,
                    Evidence::InconsistentHeads(Box::new(
                        pp_translog::evidence::InconsistentHeads {
                            log_vkey: log_vkey.clone(),
                            remembered: remembered.clone(),
                            offered: offered.clone(),
                            recomputed_root: hex::encode(recomputed),
                        },
                    )),
                )),
                _ => None,
            };
            // The pointer to the evidence ends the message, after what was caught.
            let err = match pointer {
                Some(p) => anyhow::anyhow!("{e}; {p}"),
                None => anyhow::Error::new(e),
            };
            return Err(err.context(
                "the transparency log is not consistent with what this device saw before, or its tree head is not witnessed and fresh",
            ));
        }
        let mut client = Self {
            url,
            state,
            state_dir: state_dir.to_path_buf(),
            log_vkey,
            keys: KeyHistory::open(state_dir)?,
            reader,
        };
        let size = client.tree_head().size;
        client.keys = client.keys.catch_up(size, |i| match fetched.remove(&i) {
            Some(bytes) => Ok(bytes),
            // Accepted by an earlier sync that stopped before this summary was saved.
            None => client.entry_at(i),
        })?;
        Ok(client)
    }

    /// How this device reads the log and the key CDN (through the relay, for `pp`).
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// The issuer keys the log holds (every entry up to the accepted checkpoint).
    pub fn issuer_keys(&self) -> &KeyHistory {
        &self.keys
    }

    /// The checkpoint all proofs are checked against.
    pub fn tree_head(&self) -> &Checkpoint {
        &self
            .state
            .current()
            .expect("sync accepted a checkpoint")
            .checkpoint
    }

    /// The accepted checkpoint note, with its witnesses' cosignatures.
    pub fn cosigned_note(&self) -> &str {
        &self
            .state
            .current()
            .expect("sync accepted a checkpoint")
            .note
    }

    /// The log's id (SHA-256 of its key).
    pub fn log_id(&self) -> [u8; 32] {
        pp_translog::checkpoint::log_id(&self.state.policy().log.public_key)
    }

    /// Checks that `bytes` (a release manifest) is in the log and not revoked there, and
    /// parses it.
    pub fn logged_release(&self, bytes: Vec<u8>) -> Result<LoggedRelease> {
        let log_index = self
            .prove_included(&bytes)
            .context("the release manifest is not in the transparency log")?;
        let text = std::str::from_utf8(&bytes).context("the release manifest is not UTF-8")?;
        let manifest = Manifest::from_json(text)?;
        self.check_not_revoked(&manifest.release_ref)?;
        Ok(LoggedRelease {
            manifest,
            bytes,
            log_index,
        })
    }

    /// Refuses a release the log revoked, writing the revocation with its inclusion proof as
    /// evidence.
    pub fn check_not_revoked(&self, release_ref: &str) -> Result<()> {
        let Some(r) = self.state.revocation_of(release_ref) else {
            return Ok(());
        };
        let pointer = match self.inclusion(r.entry.as_bytes()) {
            Ok(proof) => evidence::record(
                &self.state_dir,
                Evidence::RevokedRelease {
                    log_vkey: self.log_vkey.clone(),
                    checkpoint: self.cosigned_note().to_string(),
                    entry: r.entry.clone(),
                    index: proof.leaf_index,
                    proof: proof.path.iter().map(hex::encode).collect(),
                },
            ),
            Err(e) => format!("no evidence written: {e:#}"),
        };
        anyhow::bail!(
            "release {release_ref} was revoked in the log at index {}: {}; {pointer}",
            r.index,
            r.reason
        )
    }

    /// Checks that the log entry `bytes` (of any kind: see [`pp_translog::entry`]) is in the log
    /// under the current checkpoint, with an inclusion proof fetched from the log; returns its
    /// index.
    pub fn prove_included(&self, bytes: &[u8]) -> Result<u64> {
        Ok(self.inclusion(bytes)?.leaf_index)
    }

    /// [`Self::prove_included`], returning the verified proof (its index and path are kept in
    /// receipts).
    pub fn inclusion(&self, bytes: &[u8]) -> Result<InclusionProof> {
        let tree = self.tree_head();
        let leaf = merkle::leaf_hash(bytes);
        let body = self
            .reader
            .get(&format!(
                "{}/proof/inclusion?hash={}&size={}",
                self.url,
                hex::encode(leaf),
                tree.size
            ))
            .context("the entry is not in the transparency log")?;
        let proof =
            InclusionProof::from_json(&body).context("the log's inclusion proof is malformed")?;
        anyhow::ensure!(
            proof.tree_size == tree.size,
            "the log answered for another tree size"
        );
        pp_translog::device::verify_inclusion(bytes, proof.leaf_index, &proof.path, tree)
            .context("the log's inclusion proof for the entry does not verify")?;
        Ok(proof)
    }

    /// Fetches the log entry at `index` and proves it is that leaf under the current checkpoint
    /// (an entry whose bytes also sit at an earlier index is refused: the proof names the first).
    pub fn entry_at(&self, index: u64) -> Result<Vec<u8>> {
        let bytes = self.reader.get(&format!("{}/entries/{index}", self.url))?;
        let at = self.prove_included(&bytes)?;
        anyhow::ensure!(
            at == index,
            "the log served the entry at index {at} as entry {index}"
        );
        Ok(bytes)
    }
}
