//! The device's (or a monitor's) side: check tree heads, inclusion and consistency against the
//! log's pinned public key, and remember the last verified tree head so that the log can never
//! show this device a history that contradicts what it showed before.
//!
//! [`DeviceLogState::update`] accepts a new tree head only if its signature verifies and it
//! extends the remembered one: same size needs the same root (else [`DeviceError::Fork`]), a
//! smaller size is a rollback, a larger size needs a valid consistency proof. The state file is
//! replaced atomically (temporary file, fsync, rename, fsync of the directory), and only after
//! every check passed: on any error neither the file nor the in-memory state changes.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hexfield;
use crate::merkle::{self, Hash, MerkleError};
use crate::sth::{self, SignedTreeHead, SthError};

/// Largest state file read, in bytes; the state is about 350 bytes.
const MAX_STATE_FILE_LEN: u64 = 16 * 1024;

/// Why the device refused what the log showed it.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// A tree head's signature does not verify under the pinned key.
    #[error("{0}")]
    Sth(#[from] SthError),
    /// Two signed tree heads of the same size with different roots: the log shows different
    /// histories to different parties.
    #[error(
        "fork: the log signed two different roots for tree size {size}; keep both tree heads as evidence and stop trusting this log"
    )]
    Fork {
        /// The tree size both heads claim.
        size: u64,
    },
    /// A tree head smaller than the one already verified.
    #[error(
        "rollback: the log offers tree size {offered} after this device verified size {remembered}; refuse it and report the log"
    )]
    Rollback {
        /// The size this device verified before.
        remembered: u64,
        /// The smaller size offered now.
        offered: u64,
    },
    /// A larger tree head whose consistency proof does not verify.
    #[error(
        "tree size {new_size} is not shown to extend verified size {old_size} ({reason}); fetch the consistency proof again, and if it still fails the log has forked"
    )]
    NotAnExtension {
        /// The size this device verified before.
        old_size: u64,
        /// The size offered now.
        new_size: u64,
        /// What failed.
        #[source]
        reason: MerkleError,
    },
    /// An inclusion proof does not verify.
    #[error(
        "entry {index} is not shown to be in the tree of size {size} ({reason}); the entry was not logged, or the proof is for another tree"
    )]
    NotIncluded {
        /// The claimed index.
        index: u64,
        /// The tree size.
        size: u64,
        /// What failed.
        #[source]
        reason: MerkleError,
    },
    /// Reading or writing the state file failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The state file cannot be used.
    #[error(
        "state file {path} is unusable ({reason}); restore it from a backup: deleting it makes the device trust the next tree head it sees"
    )]
    BadState {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DeviceError {
    let path = path.to_path_buf();
    move |source| DeviceError::Io {
        action,
        path,
        source,
    }
}

/// Verifies what the log serves, given the log's pinned Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogVerifier {
    /// The log's 32-byte Ed25519 public key.
    pub public_key: [u8; 32],
}

impl LogVerifier {
    /// A verifier for the log with this public key.
    pub fn new(public_key: [u8; 32]) -> Self {
        Self { public_key }
    }

    /// SHA-256 of the public key, as bound into tree heads and receipts.
    pub fn log_id(&self) -> Hash {
        sth::log_id(&self.public_key)
    }

    /// Checks a tree head's signature.
    pub fn verify_sth(&self, sth: &SignedTreeHead) -> Result<(), DeviceError> {
        Ok(sth.verify(&self.public_key)?)
    }

    /// Checks that `entry` is at `index` in the tree `sth` describes (signature included).
    pub fn verify_inclusion(
        &self,
        entry: &[u8],
        index: u64,
        proof: &[Hash],
        sth: &SignedTreeHead,
    ) -> Result<(), DeviceError> {
        self.verify_sth(sth)?;
        merkle::verify_inclusion(&merkle::leaf_hash(entry), index, sth.size, proof, &sth.root)
            .map_err(|reason| DeviceError::NotIncluded {
                index,
                size: sth.size,
                reason,
            })
    }

    /// Checks that `new` extends `old` (both signatures included): the fork and rollback rules
    /// of [`DeviceLogState::update`], without remembering anything.
    pub fn verify_consistency(
        &self,
        old: &SignedTreeHead,
        new: &SignedTreeHead,
        proof: &[Hash],
    ) -> Result<(), DeviceError> {
        self.verify_sth(old)?;
        self.verify_sth(new)?;
        if new.size < old.size {
            return Err(DeviceError::Rollback {
                remembered: old.size,
                offered: new.size,
            });
        }
        if new.size == old.size && new.root != old.root {
            return Err(DeviceError::Fork { size: new.size });
        }
        merkle::verify_consistency(old.size, new.size, &old.root, &new.root, proof).map_err(
            |reason| DeviceError::NotAnExtension {
                old_size: old.size,
                new_size: new.size,
                reason,
            },
        )
    }
}

/// What [`DeviceLogState::update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// No tree head was remembered: this one is trusted on first use and remembered.
    First,
    /// The same tree head as remembered: nothing written.
    Unchanged,
    /// The log grew from the remembered size; the new head is remembered.
    Grew {
        /// The size remembered before.
        from: u64,
    },
}

/// The state file's JSON: `{"log_id": "<64 hex>", "sth": {...}}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateJson {
    log_id: String,
    sth: SignedTreeHead,
}

/// The last tree head this device verified, kept in a small JSON file.
#[derive(Debug)]
pub struct DeviceLogState {
    path: PathBuf,
    verifier: LogVerifier,
    current: Option<SignedTreeHead>,
}

impl DeviceLogState {
    /// Loads the state at `path` (absent file: nothing verified yet). Refuses a file for another
    /// log or whose tree head does not verify under `verifier`'s key.
    pub fn open(path: impl Into<PathBuf>, verifier: LogVerifier) -> Result<Self, DeviceError> {
        let path = path.into();
        let current = match File::open(&path) {
            Ok(file) => {
                let mut text = Vec::new();
                file.take(MAX_STATE_FILE_LEN + 1)
                    .read_to_end(&mut text)
                    .map_err(io("read", &path))?;
                Some(parse_state(&path, &text, &verifier)?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("open", &path)(e)),
        };
        Ok(Self {
            path,
            verifier,
            current,
        })
    }

    /// The remembered tree head, if any.
    pub fn current(&self) -> Option<&SignedTreeHead> {
        self.current.as_ref()
    }

    /// The verifier this state checks with.
    pub fn verifier(&self) -> &LogVerifier {
        &self.verifier
    }

    /// Accepts `new` if it verifies and extends the remembered head (`proof` is the consistency
    /// proof from the remembered size to `new.size`; empty on first use or same size), and
    /// remembers it durably. On error nothing changes.
    pub fn update(&mut self, new: &SignedTreeHead, proof: &[Hash]) -> Result<Update, DeviceError> {
        self.verifier.verify_sth(new)?;
        let outcome = match &self.current {
            None => Update::First,
            Some(old) => {
                self.verifier.verify_consistency(old, new, proof)?;
                if old.size == new.size {
                    return Ok(Update::Unchanged);
                }
                Update::Grew { from: old.size }
            }
        };
        self.persist(new)?;
        self.current = Some(*new);
        Ok(outcome)
    }

    fn persist(&self, sth: &SignedTreeHead) -> Result<(), DeviceError> {
        let state = StateJson {
            log_id: hex::encode(self.verifier.log_id()),
            sth: *sth,
        };
        let text = serde_json::to_vec_pretty(&state).map_err(|e| DeviceError::BadState {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(io("write", &tmp))?;
        fs::rename(&tmp, &self.path).map_err(io("rename into", &self.path))?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync directory", dir))
    }
}

fn parse_state(
    path: &Path,
    text: &[u8],
    verifier: &LogVerifier,
) -> Result<SignedTreeHead, DeviceError> {
    let bad = |reason: String| DeviceError::BadState {
        path: path.to_path_buf(),
        reason,
    };
    if text.len() as u64 > MAX_STATE_FILE_LEN {
        return Err(bad(format!("larger than {MAX_STATE_FILE_LEN} bytes")));
    }
    let state: StateJson = serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
    let log_id: Hash = hexfield::decode("log_id", &state.log_id).map_err(|e| bad(e.to_string()))?;
    if log_id != verifier.log_id() {
        return Err(bad("it belongs to another log (log_id differs)".into()));
    }
    state
        .sth
        .verify(&verifier.public_key)
        .map_err(|e| bad(e.to_string()))?;
    Ok(state.sth)
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
