//! The `inconsistent-heads` evidence kind: two log-signed, witnessed checkpoints of different
//! sizes where the entries the log served did not rebuild the newer root from the older tree.
//! Two signed heads of different sizes prove nothing offline (consistency proofs are not
//! signed), so the file proves a split view only together with the log's own answer: asked for a
//! consistency proof between the two sizes, a log that kept one history gives a valid one, and
//! no valid one exists if it did not.

use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Checkpoint, NoteKey};
use crate::merkle;
use crate::proof::ConsistencyProof;

/// What a device saw when a newer head did not extend the one it kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InconsistentHeads {
    /// The log's verifier key (type 0x01).
    pub log_vkey: String,
    /// The checkpoint the device had accepted (cosigned note, verbatim).
    pub remembered: String,
    /// The larger checkpoint it was offered (cosigned note, verbatim).
    pub offered: String,
    /// The root the device rebuilt from its kept tree and the entries the log served for the
    /// sizes in between, hex (the device's statement: it differs from the offered root).
    pub recomputed_root: String,
}

/// The file's text when checked offline: always not proven.
pub const OFFLINE: &str = "both heads are signed by the log; an offline check cannot prove they \
    are inconsistent (consistency proofs are not signed): ask the log for a consistency proof \
    between the two sizes with `pp check-evidence --log-url URL FILE`";

impl InconsistentHeads {
    /// Both checkpoints, opened with `log`: (remembered, offered). Errors if a signature fails
    /// or the sizes do not grow.
    pub fn heads(&self, log: &NoteKey) -> Result<(Checkpoint, Checkpoint), String> {
        let (old, _) = checkpoint::open_log_signed(self.remembered.as_bytes(), log)
            .map_err(|e| format!("the remembered checkpoint: {e}"))?;
        let (new, _) = checkpoint::open_log_signed(self.offered.as_bytes(), log)
            .map_err(|e| format!("the offered checkpoint: {e}"))?;
        if old.size >= new.size {
            return Err(format!(
                "the checkpoints' sizes ({} then {}) do not grow: this is not an inconsistent \
                 extension",
                old.size, new.size
            ));
        }
        Ok((old, new))
    }

    /// Judges the log's `answer`, a consistency proof it served for the two heads signed by
    /// `log` (the caller asked for exactly their sizes and saw the log's current head, signed by
    /// `log`, at least as large): proven (`Ok`) only if the proof does not verify. A proof for
    /// other sizes proves nothing.
    pub fn judge(&self, log: &NoteKey, answer: &ConsistencyProof) -> Result<String, String> {
        let (old, new) = self.heads(log)?;
        let head = format!(
            "log {:?} signed tree size {} (root {}) and tree size {} (root {})",
            log.name,
            old.size,
            hex::encode(old.root),
            new.size,
            hex::encode(new.root)
        );
        if answer.old_size != old.size || answer.new_size != new.size {
            return Err(format!(
                "{head}; the log's answer is a proof for sizes {} to {} instead: it proves nothing",
                answer.old_size, answer.new_size
            ));
        }
        let why = match merkle::verify_consistency(
            old.size,
            new.size,
            &old.root,
            &new.root,
            &answer.path,
        ) {
            Ok(()) => {
                return Err(format!(
                    "{head}, and the log gives a valid consistency proof between them: the heads \
                     are consistent (the entries the device was served were wrong, not the heads)"
                ));
            }
            Err(e) => e,
        };
        Ok(format!(
            "PROVEN: {head}; asked at the log's URL for a consistency proof between them, the \
             answer was a proof for exactly these sizes that does not verify ({why}). A log that \
             keeps one append-only history can always give a valid one: it showed different \
             parties different histories. (The answer is from now and not signed: this is what \
             the checker received from the URL it trusts as the log's.)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::ALG_ED25519;
    use crate::log::Log;
    use crate::testutil::ORIGIN;

    #[test]
    fn proven_only_when_the_log_cannot_prove_consistency() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pk8");
        let mut a = Log::open(&dir.path().join("a.log"), &key).unwrap();
        let mut b = Log::open(&dir.path().join("b.log"), &key).unwrap();
        a.append(b"one").unwrap();
        b.append(b"uno").unwrap();
        let remembered = a.checkpoint_note(ORIGIN).unwrap();
        a.append(b"two").unwrap();
        b.append(b"dos").unwrap();
        let log = NoteKey::new(ORIGIN, ALG_ED25519, *a.public_key()).unwrap();
        let file = |offered: String| InconsistentHeads {
            log_vkey: a.vkey(ORIGIN).unwrap(),
            remembered: remembered.clone(),
            offered,
            recomputed_root: "00".repeat(32),
        };
        let proof = |log: &Log| ConsistencyProof {
            old_size: 1,
            new_size: 2,
            path: log.consistency_proof(1, 2).unwrap(),
        };
        // The honest extension: the log's proof verifies, nothing is proven.
        let honest = file(a.checkpoint_note(ORIGIN).unwrap());
        let why = honest.judge(&log, &proof(&a)).unwrap_err();
        assert!(why.contains("gives a valid consistency proof"), "{why}");
        // The other branch: neither branch's proof verifies.
        let split = file(b.checkpoint_note(ORIGIN).unwrap());
        for answer in [proof(&a), proof(&b)] {
            let text = split.judge(&log, &answer).unwrap();
            assert!(text.starts_with("PROVEN: log"), "{text}");
        }
        // A proof for other sizes is no proof.
        let other = ConsistencyProof {
            old_size: 0,
            new_size: 2,
            path: Vec::new(),
        };
        assert!(split.judge(&log, &other).unwrap_err().contains("instead"));
        // Heads under another key, or that do not grow, prove nothing.
        let c = Log::open(&dir.path().join("c.log"), &dir.path().join("other.pk8")).unwrap();
        assert!(
            file(c.checkpoint_note(ORIGIN).unwrap())
                .heads(&log)
                .is_err()
        );
        assert!(file(remembered.clone()).heads(&log).is_err());
    }
}
