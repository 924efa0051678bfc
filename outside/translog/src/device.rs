//! The device's (or a monitor's) side: accept a tree head only as a C2SP checkpoint signed by
//! the log and cosigned by enough configured witnesses, recently; see every entry the log added
//! since the last accepted head (so no revocation can be hidden from this device); and remember
//! the head, the tree's frontier and the revoked releases in a small JSON file.
//!
//! [`DeviceLogState::update`] checks, in order: the log's signature and origin; against the
//! remembered head, a smaller size ([`DeviceError::Rollback`]) or the same size with another
//! root ([`DeviceError::Fork`], carrying both signed notes as evidence); the witnesses' k-of-n
//! cosignatures and their age ([`CheckpointError::TooFewCosignatures`],
//! [`CheckpointError::Stale`]); then it reads the entry tiles (C2SP `tlog-tiles` bundles, see
//! [`crate::tiles`]) from the one holding the last accepted entry to the new size, rebuilds the
//! tree from the remembered frontier at that tile's start, requires the re-read entries to give
//! the remembered frontier (a log that rewrites them forked) and the new ones the signed root
//! ([`DeviceError::NotAnExtension`]). Reading whole tiles from a tile boundary keeps the
//! device's accepted size out of its requests.
//! The state file is replaced atomically (temporary file, fsync, rename, fsync of the
//! directory), and only after every check passed: on any error nothing changes.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, CheckpointError, TrustPolicy, VerifiedCheckpoint};
use crate::frontier::{Frontier, FrontierJson};
use crate::merkle::{self, Hash, MerkleError};
use crate::revocation::Revocation;
use crate::tiles::{self, TILE_WIDTH};

/// `log2(TILE_WIDTH)`.
const TILE_BITS: u32 = TILE_WIDTH.trailing_zeros();

/// Largest state file read, in bytes.
const MAX_STATE_FILE_LEN: u64 = 8 * 1024 * 1024;
/// Most entries fetched in one update (a first sync reads the whole log).
pub const MAX_NEW_ENTRIES: u64 = 100_000;

/// Why the device refused what the log showed it.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The checkpoint's signatures, witnesses or age.
    #[error("{reason}")]
    Checkpoint {
        /// What failed (shown as this error's text, not as a separate cause).
        reason: CheckpointError,
        /// The note as received, when its log signature verified (evidence of a stale view).
        note: Option<String>,
    },
    /// Two log-signed checkpoints of the same size with different roots.
    #[error(
        "fork: the log signed two different roots for tree size {size}; both signed checkpoints are evidence, and this log cannot be trusted"
    )]
    Fork {
        /// The tree size both heads claim.
        size: u64,
        /// The note this device accepted before.
        remembered: String,
        /// The conflicting note.
        offered: String,
    },
    /// A checkpoint smaller than the one already verified.
    #[error(
        "rollback: the log offers tree size {offered} after this device verified size {remembered}; refuse it and report the log"
    )]
    Rollback {
        /// The size this device verified before.
        remembered: u64,
        /// The smaller size offered now.
        offered: u64,
    },
    /// The entries the log served do not extend the remembered tree to the signed root.
    #[error(
        "tree size {new_size} is not shown to extend verified size {old_size}: the log's entries {old_size}..{new_size} do not produce its signed root ({reason})"
    )]
    NotAnExtension {
        /// The size this device verified before.
        old_size: u64,
        /// The size offered now.
        new_size: u64,
        /// What failed.
        reason: String,
    },
    /// A larger witnessed checkpoint whose signed root the entries the log served do not rebuild
    /// from the tree this device kept: the two heads may be inconsistent (a split view), or the
    /// served entries were wrong. Both cosigned notes are kept for the evidence file.
    #[error(
        "tree size {new_size} is not shown to extend verified size {old_size}: the entries the log serves do not lead from the tree this device kept to the signed root (the recomputed root differs; the log rewrote its history or served wrong entries)"
    )]
    Inconsistent {
        /// The size this device verified before.
        old_size: u64,
        /// The size offered now.
        new_size: u64,
        /// The cosigned note this device accepted before.
        remembered: String,
        /// The cosigned note offered now.
        offered: String,
        /// The root rebuilt from the kept tree and the served entries.
        recomputed: Hash,
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
        "state file {path} is unusable ({reason}); restore it from a backup: deleting it makes the device trust the next witnessed checkpoint it sees"
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

/// Checks that `entry` is at `index` in the tree of checkpoint `cp`.
pub fn verify_inclusion(
    entry: &[u8],
    index: u64,
    proof: &[Hash],
    cp: &Checkpoint,
) -> Result<(), DeviceError> {
    merkle::verify_inclusion(&merkle::leaf_hash(entry), index, cp.size, proof, &cp.root).map_err(
        |reason| DeviceError::NotIncluded {
            index,
            size: cp.size,
            reason,
        },
    )
}

/// What [`DeviceLogState::update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// No checkpoint was remembered: this one (witnessed) is trusted on first use.
    First,
    /// The same tree as remembered (a fresher cosigned note is remembered).
    Unchanged,
    /// The log grew from the remembered size.
    Grew {
        /// The size remembered before.
        from: u64,
    },
}

/// A release the log revoked, as this device recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedRelease {
    /// The revoked `release_ref` (64 hex).
    pub release_ref: String,
    /// The operator's reason.
    pub reason: String,
    /// The revocation entry's index in the log.
    pub index: u64,
    /// The revocation entry's bytes, for evidence.
    pub entry: String,
}

/// The state file's JSON.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateJson {
    origin: String,
    note: String,
    frontier: FrontierJson,
    /// The frontier at the start of the last tile (absent in files from before tiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tile_base: Option<FrontierJson>,
    revoked: Vec<RevokedRelease>,
}

#[derive(Debug, Clone)]
struct Stored {
    verified: VerifiedCheckpoint,
    frontier: Frontier,
    /// The frontier at the start of the tile holding the last entry, where the next update
    /// starts reading.
    tile_base: Option<Frontier>,
    revoked: Vec<RevokedRelease>,
}

/// The last checkpoint this device accepted, the tree's frontier and the revoked releases.
#[derive(Debug)]
pub struct DeviceLogState {
    path: PathBuf,
    policy: TrustPolicy,
    current: Option<Stored>,
}

impl DeviceLogState {
    /// Loads the state at `path` (absent: nothing accepted yet). Refuses a file for another log
    /// or whose checkpoint is not signed by the log.
    pub fn open(path: impl Into<PathBuf>, policy: TrustPolicy) -> Result<Self, DeviceError> {
        let path = path.into();
        let current = match File::open(&path) {
            Ok(file) => {
                let mut text = Vec::new();
                file.take(MAX_STATE_FILE_LEN + 1)
                    .read_to_end(&mut text)
                    .map_err(io("read", &path))?;
                Some(parse_state(&path, &text, &policy)?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("open", &path)(e)),
        };
        Ok(Self {
            path,
            policy,
            current,
        })
    }

    /// The accepted checkpoint, if any.
    pub fn current(&self) -> Option<&VerifiedCheckpoint> {
        self.current.as_ref().map(|s| &s.verified)
    }

    /// The policy this state checks with.
    pub fn policy(&self) -> &TrustPolicy {
        &self.policy
    }

    /// The revocations seen in the log, oldest first.
    pub fn revoked(&self) -> &[RevokedRelease] {
        self.current.as_ref().map_or(&[], |s| &s.revoked)
    }

    /// The revocation of `release_ref`, if the log holds one.
    pub fn revocation_of(&self, release_ref: &str) -> Option<&RevokedRelease> {
        self.revoked().iter().find(|r| r.release_ref == release_ref)
    }

    /// Accepts the checkpoint `note` (see the module documentation) at time `now` (Unix
    /// seconds), reading entry bundles with `fetch_tile` (given the tile's path, see
    /// [`tiles::entries_path`]) and handing each new entry, by index, to `fetched`. On error
    /// nothing changes.
    pub fn update(
        &mut self,
        note: &[u8],
        now: u64,
        fetch_tile: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
        fetched: &mut dyn FnMut(u64, &[u8]),
    ) -> Result<Update, DeviceError> {
        let cerr = |reason, note: Option<&[u8]>| DeviceError::Checkpoint {
            reason,
            note: note.map(|n| String::from_utf8_lossy(n).into_owned()),
        };
        let (cp, _) = crate::checkpoint::open_log_signed(note, &self.policy.log)
            .map_err(|e| cerr(e, None))?;
        if let Some(old) = &self.current {
            let old_cp = &old.verified.checkpoint;
            if cp.size < old_cp.size {
                return Err(DeviceError::Rollback {
                    remembered: old_cp.size,
                    offered: cp.size,
                });
            }
            if cp.size == old_cp.size && cp.root != old_cp.root {
                return Err(DeviceError::Fork {
                    size: cp.size,
                    remembered: old.verified.note.clone(),
                    offered: String::from_utf8_lossy(note).into_owned(),
                });
            }
        }
        let verified = self
            .policy
            .verify(note, now)
            .map_err(|e| cerr(e, Some(note)))?;
        let (frontier, mut revoked, outcome) = match &self.current {
            None => (Frontier::new(), Vec::new(), Update::First),
            Some(old) if old.verified.checkpoint.size == cp.size => {
                (old.frontier.clone(), old.revoked.clone(), Update::Unchanged)
            }
            Some(old) => (
                old.frontier.clone(),
                old.revoked.clone(),
                Update::Grew {
                    from: old.verified.checkpoint.size,
                },
            ),
        };
        let old_size = frontier.size();
        let not_ext = |reason: String| DeviceError::NotAnExtension {
            old_size,
            new_size: cp.size,
            reason,
        };
        // Both heads are signed and the entries between them do not lead from one to the
        // other: with a kept head, evidence (`inconsistent-heads`); for a first sync, refused.
        let inconsistent = |recomputed: [u8; 32]| match &self.current {
            // The same head as before: one signed note, nothing two heads could prove.
            Some(_) if cp.size == old_size => not_ext(
                "the log served entries that differ from those accepted under this same head"
                    .into(),
            ),
            Some(old) if old_size > 0 => DeviceError::Inconsistent {
                old_size,
                new_size: cp.size,
                remembered: old.verified.note.clone(),
                offered: verified.note.clone(),
                recomputed,
            },
            _ => not_ext("the recomputed root differs".into()),
        };
        if cp.size - old_size > MAX_NEW_ENTRIES {
            return Err(not_ext(format!(
                "more than {MAX_NEW_ENTRIES} new entries at once"
            )));
        }
        // Read from the start of the tile holding the last accepted entry (re-reading the ones
        // already accepted), so the requests name tiles, not this device's size.
        let base = self
            .current
            .as_ref()
            .and_then(|s| s.tile_base.clone())
            .unwrap_or_else(|| frontier.floor_to_bits(TILE_BITS));
        let new_base_size = cp.size.saturating_sub(1) / TILE_WIDTH * TILE_WIDTH;
        let mut rebuilt = base;
        let mut new_base = (rebuilt.size() == new_base_size).then(|| rebuilt.clone());
        while rebuilt.size() < cp.size {
            let tile = rebuilt.size() / TILE_WIDTH;
            let first = tile * TILE_WIDTH;
            let width = (cp.size - first).min(TILE_WIDTH);
            let path = tiles::entries_path(tile, width);
            let entries = fetch_tile(&path)
                .and_then(|b| tiles::parse_bundle(&b, width))
                .map_err(|e| not_ext(format!("{path}: {e}")))?;
            // A tile read from a boundary starts where `rebuilt` stands; a legacy state file
            // without a stored boundary may stand inside the tile.
            let skip = rebuilt.size() - first;
            for (index, entry) in (first..).zip(entries).skip(skip as usize) {
                rebuilt.push(merkle::leaf_hash(&entry));
                if rebuilt.size() == new_base_size {
                    new_base = Some(rebuilt.clone());
                }
                if index < old_size {
                    if index + 1 == old_size && rebuilt != frontier {
                        // The entries the device accepted under its kept head are not the
                        // ones the log serves under the new one: both heads are signed.
                        return Err(inconsistent(rebuilt.root()));
                    }
                    continue;
                }
                match Revocation::parse(&entry) {
                    Ok(Some(r)) => revoked.push(RevokedRelease {
                        release_ref: r.release_ref,
                        reason: r.reason,
                        index,
                        entry: String::from_utf8_lossy(&entry).into_owned(),
                    }),
                    Ok(None) => {}
                    // A malformed revocation is still in the signed tree: refuse rather than
                    // skip something that may have been meant to stop this device.
                    Err(e) => return Err(not_ext(format!("entry {index}: {e}"))),
                }
                fetched(index, &entry);
            }
        }
        let frontier = rebuilt;
        if frontier.size() != cp.size || frontier.root() != cp.root {
            return Err(inconsistent(frontier.root()));
        }
        let stored = Stored {
            verified,
            frontier,
            tile_base: new_base,
            revoked,
        };
        self.persist(&stored)?;
        self.current = Some(stored);
        Ok(outcome)
    }

    fn persist(&self, s: &Stored) -> Result<(), DeviceError> {
        let state = StateJson {
            origin: self.policy.log.name.clone(),
            note: s.verified.note.clone(),
            frontier: s.frontier.to_json(),
            tile_base: s.tile_base.as_ref().map(Frontier::to_json),
            revoked: s.revoked.clone(),
        };
        let text = serde_json::to_vec_pretty(&state).map_err(|e| DeviceError::BadState {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        // Refused before anything is written, so that `open` can always read what was saved
        // (a log that floods revocations stops this device; it does not corrupt its state).
        if text.len() as u64 > MAX_STATE_FILE_LEN {
            return Err(DeviceError::BadState {
                path: self.path.clone(),
                reason: format!(
                    "the log's revocations would make it larger than {MAX_STATE_FILE_LEN} bytes; \
                     it was not changed"
                ),
            });
        }
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

fn parse_state(path: &Path, text: &[u8], policy: &TrustPolicy) -> Result<Stored, DeviceError> {
    let bad = |reason: String| DeviceError::BadState {
        path: path.to_path_buf(),
        reason,
    };
    if text.len() as u64 > MAX_STATE_FILE_LEN {
        return Err(bad(format!("larger than {MAX_STATE_FILE_LEN} bytes")));
    }
    let state: StateJson = serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
    if state.origin != policy.log.name {
        return Err(bad(format!(
            "it belongs to log {:?}, not the configured {:?}",
            state.origin, policy.log.name
        )));
    }
    let (checkpoint, parsed) =
        crate::checkpoint::open_log_signed(state.note.as_bytes(), &policy.log)
            .map_err(|e| bad(e.to_string()))?;
    let cosigned = crate::checkpoint::cosignatures(&parsed, &policy.witnesses)
        .map_err(|e| bad(e.to_string()))?;
    let frontier = Frontier::from_json(&state.frontier).map_err(bad)?;
    if frontier.size() != checkpoint.size || frontier.root() != checkpoint.root {
        return Err(bad("the frontier does not match the checkpoint".into()));
    }
    let tile_base = match &state.tile_base {
        Some(j) => {
            let base = Frontier::from_json(j).map_err(bad)?;
            if base.size() != checkpoint.size.saturating_sub(1) / TILE_WIDTH * TILE_WIDTH {
                return Err(bad(
                    "the tile frontier is not at the last tile's start".into()
                ));
            }
            Some(base)
        }
        None => None,
    };
    Ok(Stored {
        verified: VerifiedCheckpoint {
            checkpoint,
            note: state.note,
            cosigned,
        },
        frontier,
        tile_base,
        revoked: state.revoked,
    })
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
