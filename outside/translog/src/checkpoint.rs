//! Tree heads as C2SP signed notes: `tlog-checkpoint` bodies signed by the log (signed-note
//! Ed25519, type 0x01) and cosigned by witnesses (`tlog-cosignature`, `cosignature/v1`, type
//! 0x04, with a timestamp).
//!
//! A checkpoint body is exactly three lines: the log's origin, the tree size in decimal (no
//! leading zeroes) and the root in standard base64. This log writes no extension lines, and the
//! parser refuses them, so one tree head has one spelling. The note itself (text, blank line,
//! signature lines) is parsed by the `signed_note` crate; the key ids follow the specs:
//! `SHA-256(name || "\n" || type || public key)[:4]`.
//!
//! A cosignature's signed message is `"cosignature/v1\ntime <T>\n" || checkpoint body`; its
//! signature field is `T` (u64, big-endian) followed by the 64-byte Ed25519 signature. `T` is
//! the witness's clock when it checked the checkpoint extends what it saw before: the device
//! uses it as the freshness of the tree head.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use signed_note::{Note, NoteError, Signature, Verifier, VerifierList};

use crate::merkle::Hash;

/// Signature type of a log's Ed25519 note signature (c2sp.org/signed-note).
pub const ALG_ED25519: u8 = 0x01;
/// Signature type of an Ed25519 `cosignature/v1` (c2sp.org/tlog-cosignature).
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// The origin line a log uses when none is configured.
pub const DEFAULT_ORIGIN: &str = "pp.example/log";
/// The name a witness uses when none is configured.
pub const DEFAULT_WITNESS_NAME: &str = "pp.example/witness";
/// Largest signed note read, in bytes (a checkpoint with a few cosignatures is ~500 bytes).
pub const MAX_NOTE_LEN: usize = 16 * 1024;
/// How far in the future a cosignature's timestamp may be before it is refused (clock skew).
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// Why a checkpoint, a key or a note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The note or its body is not well formed.
    #[error("checkpoint is malformed: {0}")]
    Malformed(String),
    /// A verifier key string is not `name+id+base64` of the expected type.
    #[error("verifier key {key:?} is malformed: {reason}")]
    BadVkey {
        /// The key as given (public data).
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The note's origin line is not the log the device is configured for.
    #[error("checkpoint is for log {got:?}, not the configured {expected:?}")]
    WrongOrigin {
        /// The configured origin.
        expected: String,
        /// The origin in the note.
        got: String,
    },
    /// No signature line verifies under the log's key.
    #[error(
        "checkpoint is not signed by the log's key (or a signature line is invalid): the head was altered or comes from another log"
    )]
    BadLogSignature,
    /// A cosignature line by a configured witness key does not verify.
    #[error(
        "checkpoint carries a cosignature line from witness {0} that does not verify: the note was altered"
    )]
    BadCosignature(String),
    /// Fewer valid, current cosignatures than required.
    #[error(
        "checkpoint carries {have} valid witness cosignature(s) of the {need} required from the configured witnesses: the log's tree head is not witnessed (the witnesses may have refused it as inconsistent with what they saw)"
    )]
    TooFewCosignatures {
        /// Distinct configured witnesses whose cosignature verified.
        have: usize,
        /// The configured threshold.
        need: usize,
    },
    /// Enough cosignatures, but too old.
    #[error(
        "stale tree head: its newest witness cosignatures are {age_secs} s old, more than the {max_age_secs} s allowed; the log (or the network) is replaying an old view"
    )]
    Stale {
        /// Age of the k-th newest cosignature.
        age_secs: u64,
        /// The configured bound.
        max_age_secs: u64,
    },
}

fn malformed(reason: impl Into<String>) -> CheckpointError {
    CheckpointError::Malformed(reason.into())
}

/// A checkpoint body: the log `origin` held `size` entries with Merkle root `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (its name).
    pub origin: String,
    /// Number of entries.
    pub size: u64,
    /// RFC 9162 root of the first `size` entries.
    pub root: Hash,
}

impl Checkpoint {
    /// The body text, three newline-terminated lines.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a body strictly: three lines, canonical decimal and base64, no extension lines.
    pub fn parse_body(text: &[u8]) -> Result<Self, CheckpointError> {
        let text = std::str::from_utf8(text).map_err(|_| malformed("body is not UTF-8"))?;
        let lines: Vec<&str> = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed("body does not end in a newline"))?
            .split('\n')
            .collect();
        let [origin, size, root] = lines[..] else {
            return Err(malformed(format!(
                "body has {} lines, expected origin, size and root (no extension lines)",
                lines.len()
            )));
        };
        if origin.is_empty() || origin.chars().any(char::is_control) {
            return Err(malformed("origin line is empty or has control characters"));
        }
        let canonical = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size: u64 =
            size.parse().ok().filter(|_| canonical).ok_or_else(|| {
                malformed("size line is not a decimal number without leading zeroes")
            })?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| malformed("root line is not 32 bytes of base64"))?;
        let cp = Self {
            origin: origin.to_string(),
            size,
            root,
        };
        if cp.body() != text {
            return Err(malformed("body is not in canonical form"));
        }
        Ok(cp)
    }
}

/// A signed-note verifier key: a name, a signature type and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteKey {
    /// The key name (the log's origin, or the witness's name).
    pub name: String,
    /// [`ALG_ED25519`] or [`ALG_COSIGNATURE_V1`].
    pub alg: u8,
    /// The 32-byte Ed25519 public key.
    pub public_key: [u8; 32],
}

impl NoteKey {
    /// A key of type `alg` named `name`.
    pub fn new(name: &str, alg: u8, public_key: [u8; 32]) -> Result<Self, CheckpointError> {
        if !signed_note::is_key_name_valid(name) {
            return Err(CheckpointError::BadVkey {
                key: name.to_string(),
                reason: "the name is empty or has spaces or '+'".into(),
            });
        }
        Ok(Self {
            name: name.to_string(),
            alg,
            public_key,
        })
    }

    fn material(&self) -> Vec<u8> {
        let mut m = vec![self.alg];
        m.extend_from_slice(&self.public_key);
        m
    }

    /// The key id of the signed-note spec.
    pub fn key_id(&self) -> u32 {
        signed_note::key_id(&self.name, &self.material())
    }

    /// The `name+id+base64(type || key)` verifier key string.
    pub fn to_vkey(&self) -> String {
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id(),
            B64.encode(self.material())
        )
    }

    /// Parses a verifier key string and checks it is of type `alg` and its id matches.
    pub fn parse_vkey(vkey: &str, alg: u8) -> Result<Self, CheckpointError> {
        let bad = |reason: &str| CheckpointError::BadVkey {
            key: vkey.chars().take(200).collect(),
            reason: reason.to_string(),
        };
        // The name has no '+'; the base64 key may.
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected name+keyid+base64"));
        };
        let material = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
        let Some((&got_alg, pk)) = material.split_first() else {
            return Err(bad("the key is empty"));
        };
        if got_alg != alg {
            return Err(bad(&format!(
                "signature type 0x{got_alg:02x}, expected 0x{alg:02x}"
            )));
        }
        let public_key: [u8; 32] = pk
            .try_into()
            .map_err(|_| bad("not a 32-byte Ed25519 key"))?;
        let k = Self::new(name, alg, public_key)?;
        if id.len() != 8 || u32::from_str_radix(id, 16).ok() != Some(k.key_id()) {
            return Err(bad("the key id does not match the name and key"));
        }
        Ok(k)
    }

    fn verifier(&self) -> Box<dyn Verifier> {
        Box::new(KeyVerifier { key: self.clone() })
    }
}

/// Verifies one key's note signatures with ring (plain Ed25519, or cosignature/v1).
struct KeyVerifier {
    key: NoteKey,
}

impl Verifier for KeyVerifier {
    fn name(&self) -> &str {
        &self.key.name
    }
    fn key_id(&self) -> u32 {
        self.key.key_id()
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let pk = UnparsedPublicKey::new(&ED25519, &self.key.public_key);
        match self.key.alg {
            ALG_ED25519 => pk.verify(msg, sig).is_ok(),
            ALG_COSIGNATURE_V1 => {
                let Some((ts, sig)) = sig.split_first_chunk::<8>() else {
                    return false;
                };
                let ts = u64::from_be_bytes(*ts);
                ts <= i64::MAX as u64 && pk.verify(&cosigned_message(ts, msg), sig).is_ok()
            }
            _ => false,
        }
    }
}

/// The message a `cosignature/v1` signs: header, time line, checkpoint body.
pub fn cosigned_message(timestamp: u64, body: &[u8]) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    m.extend_from_slice(body);
    m
}

/// SHA-256 of the log's 32-byte Ed25519 public key: the log's id in receipts.
pub fn log_id(public_key: &[u8; 32]) -> Hash {
    use sha2::Digest;
    sha2::Sha256::digest(public_key).into()
}

fn public_key(key: &Ed25519KeyPair) -> [u8; 32] {
    let mut pk = [0u8; 32];
    pk.copy_from_slice(key.public_key().as_ref());
    pk
}

/// The log's verifier key (type 0x01) for `key` under the name `origin`.
pub fn log_note_key(origin: &str, key: &Ed25519KeyPair) -> Result<NoteKey, CheckpointError> {
    NoteKey::new(origin, ALG_ED25519, public_key(key))
}

/// A witness's verifier key (type 0x04) for `key` under the name `name`.
pub fn witness_note_key(name: &str, key: &Ed25519KeyPair) -> Result<NoteKey, CheckpointError> {
    NoteKey::new(name, ALG_COSIGNATURE_V1, public_key(key))
}

fn signature_line(name: &str, id: u32, sig: Vec<u8>) -> Result<String, CheckpointError> {
    let s = Signature::new(name.to_string(), id, sig).map_err(|e| malformed(e.to_string()))?;
    String::from_utf8(s.to_bytes()).map_err(|_| malformed("signature line is not UTF-8"))
}

/// Signs `cp` with the log's key: the whole note (body, blank line, one signature line).
pub fn sign_checkpoint(key: &Ed25519KeyPair, cp: &Checkpoint) -> Result<String, CheckpointError> {
    let nk = log_note_key(&cp.origin, key)?;
    let body = cp.body();
    let sig = key.sign(body.as_bytes()).as_ref().to_vec();
    Ok(format!(
        "{body}\n{}",
        signature_line(&nk.name, nk.key_id(), sig)?
    ))
}

/// A witness's `cosignature/v1` line over the checkpoint `body`, made at `timestamp`.
pub fn cosignature_line(
    name: &str,
    key: &Ed25519KeyPair,
    body: &[u8],
    timestamp: u64,
) -> Result<String, CheckpointError> {
    let nk = witness_note_key(name, key)?;
    let mut sig = timestamp.to_be_bytes().to_vec();
    sig.extend_from_slice(key.sign(&cosigned_message(timestamp, body)).as_ref());
    signature_line(&nk.name, nk.key_id(), sig)
}

/// Parses a note and checks the log's signature on it, and that its body is a checkpoint of
/// `log`'s origin. Cosignatures are not looked at.
pub fn open_log_signed(note: &[u8], log: &NoteKey) -> Result<(Checkpoint, Note), CheckpointError> {
    if note.len() > MAX_NOTE_LEN {
        return Err(malformed(format!("longer than {MAX_NOTE_LEN} bytes")));
    }
    let parsed = Note::from_bytes(note).map_err(|e| malformed(e.to_string()))?;
    let cp = Checkpoint::parse_body(parsed.text())?;
    if cp.origin != log.name {
        return Err(CheckpointError::WrongOrigin {
            expected: log.name.clone(),
            got: cp.origin,
        });
    }
    parsed
        .verify(&VerifierList::new(vec![log.verifier()]))
        .map_err(|_| CheckpointError::BadLogSignature)?;
    Ok((cp, parsed))
}

/// Who trusts a checkpoint when: the log's key, the witnesses' keys, how many must cosign, and
/// how old their cosignatures may be.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    /// The log's key; its name is the origin.
    pub log: NoteKey,
    /// The witnesses' `cosignature/v1` keys.
    pub witnesses: Vec<NoteKey>,
    /// Cosignatures required (k of the n witnesses).
    pub threshold: usize,
    /// Largest accepted age of a cosignature, in seconds.
    pub max_age_secs: u64,
}

/// A checkpoint whose log signature and cosignatures verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// The tree head.
    pub checkpoint: Checkpoint,
    /// The note as received (log signature and cosignatures), for evidence and receipts.
    pub note: String,
    /// The configured witnesses whose cosignature verified, with their timestamps.
    pub cosigned: Vec<(String, u64)>,
}

/// The valid cosignatures on `note` from `witnesses`: (name, timestamp). A line from a
/// configured key that does not verify is an error; lines from other keys are ignored.
pub fn cosignatures(
    note: &Note,
    witnesses: &[NoteKey],
) -> Result<Vec<(String, u64)>, CheckpointError> {
    let list = VerifierList::new(witnesses.iter().map(NoteKey::verifier).collect());
    match note.verify(&list) {
        Ok((verified, _)) => Ok(verified
            .iter()
            .filter_map(|s| {
                let ts = s.signature().first_chunk::<8>()?;
                Some((s.name().to_string(), u64::from_be_bytes(*ts)))
            })
            .collect()),
        Err(NoteError::UnverifiedNote) => Ok(Vec::new()),
        Err(NoteError::InvalidSignature { name, .. }) => Err(CheckpointError::BadCosignature(name)),
        Err(e) => Err(malformed(e.to_string())),
    }
}

impl TrustPolicy {
    /// Checks the log's signature, then that at least `threshold` configured witnesses
    /// cosigned, each within `max_age_secs` of `now` (Unix seconds) and not in the future.
    pub fn verify(&self, note: &[u8], now: u64) -> Result<VerifiedCheckpoint, CheckpointError> {
        let (checkpoint, parsed) = open_log_signed(note, &self.log)?;
        let cosigned = cosignatures(&parsed, &self.witnesses)?;
        let mut times: Vec<u64> = cosigned
            .iter()
            .map(|(_, t)| *t)
            .filter(|t| *t <= now.saturating_add(MAX_CLOCK_SKEW_SECS))
            .collect();
        if times.len() < self.threshold.max(1) {
            return Err(CheckpointError::TooFewCosignatures {
                have: times.len(),
                need: self.threshold.max(1),
            });
        }
        times.sort_unstable_by(|a, b| b.cmp(a));
        let kth = times[self.threshold.max(1) - 1];
        let age_secs = now.saturating_sub(kth);
        if age_secs > self.max_age_secs {
            return Err(CheckpointError::Stale {
                age_secs,
                max_age_secs: self.max_age_secs,
            });
        }
        Ok(VerifiedCheckpoint {
            checkpoint,
            note: String::from_utf8_lossy(note).into_owned(),
            cosigned,
        })
    }
}

/// Seconds since the Unix epoch on this machine's clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
