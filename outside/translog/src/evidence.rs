//! Tamper-evidence files: what a device writes when it catches the log misbehaving, in a form
//! anyone can check offline (`pp check-evidence FILE`), with no trust in the device.
//!
//! JSON: `{"schema": "pp-evidence/1", "evidence": {"kind": ..., ...}}`, kinds:
//!
//! | kind | holds | proves |
//! |---|---|---|
//! | `log-fork` | the log's vkey, two checkpoint notes | the log signed two roots for one size |
//! | `revoked-release` | the log's vkey, a checkpoint note, the revocation entry, its index and inclusion proof | the log holds that revocation |
//! | `stale-checkpoint` | the log's and witnesses' vkeys, the note, the device's clock and bound | the note's cosignature times (the device's clock is its own claim) |
//! | `inconsistent-heads` | the log's vkey, two cosigned notes of different sizes, the root the device rebuilt | nothing offline (both heads are signed; consistency proofs are not): with the log's answer, that it cannot prove one extends the other ([`crate::evidence_heads`]) |
//! | `swapped-enclave` | a session's evidence bundle, nonce and exporter, the instance id, a cosigned checkpoint, the logged CDN index and release manifest with inclusion proofs | a genuine report bound to a logged instance's key configuration whose measurement, release or policy is not the logged release's ([`crate::evidence_swap`]; checked by `pp check-evidence` with trusted roots) |

use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, ALG_COSIGNATURE_V1, ALG_ED25519, NoteKey};
use crate::hexfield;
use crate::merkle::Hash;
use crate::revocation::Revocation;

pub use crate::evidence_heads::InconsistentHeads;
pub use crate::evidence_swap::{LoggedEntry, SwappedEnclave};

/// The schema string of an evidence file.
pub const SCHEMA: &str = "pp-evidence/1";
/// Largest evidence file read.
pub const MAX_EVIDENCE_LEN: usize = 256 * 1024;

/// An evidence file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceFile {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// What was seen.
    pub evidence: Evidence,
}

/// What a device saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Evidence {
    /// Two log-signed checkpoints of one size with different roots.
    LogFork {
        /// The log's verifier key (type 0x01).
        log_vkey: String,
        /// The checkpoint the device had accepted.
        remembered: String,
        /// The conflicting checkpoint.
        offered: String,
    },
    /// A revocation entry, proven in a log-signed checkpoint.
    RevokedRelease {
        /// The log's verifier key.
        log_vkey: String,
        /// The checkpoint note the proof is for.
        checkpoint: String,
        /// The revocation entry's bytes (JSON text).
        entry: String,
        /// Its index.
        index: u64,
        /// The inclusion proof, hex hashes.
        proof: Vec<String>,
    },
    /// A checkpoint whose witness cosignatures were too old for the device.
    StaleCheckpoint {
        /// The log's verifier key.
        log_vkey: String,
        /// The witnesses' verifier keys (type 0x04) the device trusted.
        witness_vkeys: Vec<String>,
        /// The note served.
        checkpoint: String,
        /// The device's clock when it refused the note (Unix seconds; the device's claim).
        observed_at: u64,
        /// The device's bound.
        max_age_secs: u64,
    },
    /// A session whose attestation report contradicts what the log says the instance runs.
    SwappedEnclave(Box<SwappedEnclave>),
    /// A larger head the log's entries did not rebuild from the one the device kept.
    InconsistentHeads(Box<InconsistentHeads>),
}

/// Why an evidence file proves nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the evidence does not hold: {0}")]
pub struct EvidenceError(String);

fn fail(reason: impl std::fmt::Display) -> EvidenceError {
    EvidenceError(reason.to_string())
}

impl EvidenceFile {
    /// Wraps `evidence`.
    pub fn new(evidence: Evidence) -> Self {
        Self {
            schema: SCHEMA.into(),
            evidence,
        }
    }

    /// The file's text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses a file (strictly) without checking what it claims.
    pub fn from_json(text: &[u8]) -> Result<Self, EvidenceError> {
        if text.len() > MAX_EVIDENCE_LEN {
            return Err(fail("the file is too large to be evidence"));
        }
        let f: Self = serde_json::from_slice(text).map_err(fail)?;
        if f.schema != SCHEMA {
            return Err(fail(format!("schema is not {SCHEMA}")));
        }
        Ok(f)
    }

    /// Checks every signature and proof in the file; returns what it proves, in words. A
    /// `swapped-enclave` file is not checked here: its report needs trusted attestation roots
    /// (`pp check-evidence` checks it, with [`SwappedEnclave::check_log`] for its log half).
    pub fn check(&self) -> Result<String, EvidenceError> {
        match &self.evidence {
            Evidence::InconsistentHeads(heads) => {
                let log = NoteKey::parse_vkey(&heads.log_vkey, ALG_ED25519).map_err(fail)?;
                let (old, new) = heads.heads(&log).map_err(fail)?;
                Err(fail(format!(
                    "sizes {} and {}: {}",
                    old.size,
                    new.size,
                    crate::evidence_heads::OFFLINE
                )))
            }
            Evidence::SwappedEnclave(_) => Err(fail(
                "a swapped-enclave file holds an attestation report: it is checked with trusted \
                 roots by `pp check-evidence`",
            )),
            Evidence::LogFork {
                log_vkey,
                remembered,
                offered,
            } => {
                let log = NoteKey::parse_vkey(log_vkey, ALG_ED25519).map_err(fail)?;
                let (a, _) = checkpoint::open_log_signed(remembered.as_bytes(), &log)
                    .map_err(|e| fail(format!("first checkpoint: {e}")))?;
                let (b, _) = checkpoint::open_log_signed(offered.as_bytes(), &log)
                    .map_err(|e| fail(format!("second checkpoint: {e}")))?;
                if a.size != b.size || a.root == b.root {
                    return Err(fail(format!(
                        "the two checkpoints (sizes {} and {}) do not conflict",
                        a.size, b.size
                    )));
                }
                Ok(format!(
                    "PROVEN: log {:?} (key {}) signed two different trees of size {}: root {} and root {}. \
                     A log that keeps one append-only history never does this: it showed different \
                     parties different histories.",
                    log.name,
                    log.to_vkey(),
                    a.size,
                    hex::encode(a.root),
                    hex::encode(b.root)
                ))
            }
            Evidence::RevokedRelease {
                log_vkey,
                checkpoint: note,
                entry,
                index,
                proof,
            } => {
                let log = NoteKey::parse_vkey(log_vkey, ALG_ED25519).map_err(fail)?;
                let (cp, _) = checkpoint::open_log_signed(note.as_bytes(), &log).map_err(fail)?;
                let proof: Vec<Hash> = proof
                    .iter()
                    .map(|h| hexfield::decode("proof", h))
                    .collect::<Result<_, _>>()
                    .map_err(fail)?;
                crate::device::verify_inclusion(entry.as_bytes(), *index, &proof, &cp)
                    .map_err(fail)?;
                let r = Revocation::parse(entry.as_bytes())
                    .map_err(fail)?
                    .ok_or_else(|| fail("the entry is not a revocation"))?;
                Ok(format!(
                    "PROVEN: log {:?} holds at index {index} (in its signed tree of size {}) a revocation of release {}: {}",
                    log.name, cp.size, r.release_ref, r.reason
                ))
            }
            Evidence::StaleCheckpoint {
                log_vkey,
                witness_vkeys,
                checkpoint: note,
                observed_at,
                max_age_secs,
            } => {
                let log = NoteKey::parse_vkey(log_vkey, ALG_ED25519).map_err(fail)?;
                let witnesses: Vec<NoteKey> = witness_vkeys
                    .iter()
                    .map(|k| NoteKey::parse_vkey(k, ALG_COSIGNATURE_V1))
                    .collect::<Result<_, _>>()
                    .map_err(fail)?;
                let (cp, parsed) =
                    checkpoint::open_log_signed(note.as_bytes(), &log).map_err(fail)?;
                let cosigned = checkpoint::cosignatures(&parsed, &witnesses).map_err(fail)?;
                let newest = cosigned.iter().map(|(_, t)| *t).max();
                Ok(match newest {
                    Some(t) => format!(
                        "PROVEN: log {:?} signed tree size {} and its newest witness cosignature is from Unix time {t}. \
                         The device says it was served this at Unix time {observed_at} ({} s later; its bound is {max_age_secs} s): \
                         that time is the device's own claim.",
                        log.name,
                        cp.size,
                        observed_at.saturating_sub(t)
                    ),
                    None => format!(
                        "PROVEN: log {:?} signed tree size {}, with no cosignature from the listed witnesses.",
                        log.name, cp.size
                    ),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Log;
    use crate::testutil::ORIGIN;

    #[test]
    fn a_real_fork_is_proven_and_a_doctored_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pk8");
        let mut a = Log::open(&dir.path().join("a.log"), &key).unwrap();
        let mut b = Log::open(&dir.path().join("b.log"), &key).unwrap();
        a.append(b"one").unwrap();
        b.append(b"uno").unwrap();
        let vkey = a.vkey(ORIGIN).unwrap();
        let fork = |remembered: String, offered: String| {
            EvidenceFile::new(Evidence::LogFork {
                log_vkey: vkey.clone(),
                remembered,
                offered,
            })
        };
        let (na, nb) = (
            a.checkpoint_note(ORIGIN).unwrap(),
            b.checkpoint_note(ORIGIN).unwrap(),
        );
        let file = fork(na.clone(), nb.clone());
        let back = EvidenceFile::from_json(file.to_json().as_bytes()).unwrap();
        assert!(
            back.check()
                .unwrap()
                .contains("signed two different trees of size 1")
        );
        // The same checkpoint twice proves nothing; nor does one whose root was edited.
        assert!(fork(na.clone(), na.clone()).check().is_err());
        let mut lines: Vec<&str> = nb.split('\n').collect();
        let edited = format!("A{}", &lines[2][1..]);
        let edited = if edited == lines[2] {
            format!("B{}", &lines[2][1..])
        } else {
            edited
        };
        lines[2] = &edited;
        assert!(fork(na.clone(), lines.join("\n")).check().is_err());
        // Nor a fork "signed" by another key.
        let c = Log::open(&dir.path().join("c.log"), &dir.path().join("other.pk8")).unwrap();
        assert!(
            fork(na, c.checkpoint_note(ORIGIN).unwrap())
                .check()
                .is_err()
        );
        // A revocation, proven by its inclusion proof; with another index it is not.
        let r = Revocation::new(&"cd".repeat(32), "bulletin", 1).unwrap();
        a.append(r.to_json().as_bytes()).unwrap();
        a.append(b"three").unwrap();
        let proof: Vec<String> = a
            .inclusion_proof(1, 3)
            .unwrap()
            .iter()
            .map(hex::encode)
            .collect();
        let revoked = |index| {
            EvidenceFile::new(Evidence::RevokedRelease {
                log_vkey: vkey.clone(),
                checkpoint: a.checkpoint_note(ORIGIN).unwrap(),
                entry: r.to_json(),
                index,
                proof: proof.clone(),
            })
        };
        assert!(
            revoked(1)
                .check()
                .unwrap()
                .contains("revocation of release cdcd")
        );
        assert!(revoked(2).check().is_err());
    }
}
