//! The `swapped-enclave` evidence kind: an attested session whose report contradicts what the
//! log says the instance runs. This module holds the file's fields and checks its log half (the
//! witnessed checkpoint and both inclusion proofs); the attestation half (the report's chain to
//! trusted roots, its `REPORT_DATA` binding, what differs from the logged release) needs the
//! device's verifier and is checked by `pp check-evidence`.

use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, TrustPolicy};
use crate::hexfield;
use crate::merkle::Hash;
use crate::receipt::MAX_PATH_LEN;

/// A log entry, verbatim, with its index and inclusion path under the file's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggedEntry {
    /// The entry's exact bytes (JSON text).
    pub entry: String,
    /// Its index in the log.
    pub log_index: u64,
    /// The RFC 9162 inclusion path, each hash 32 bytes as lowercase hex.
    pub inclusion_path: Vec<String>,
}

/// What a device saw when the enclave at the end of its session was not the one the log says
/// the instance runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwappedEnclave {
    /// The log's verifier key (type 0x01).
    pub log_vkey: String,
    /// The cosigned checkpoint the device had accepted, verbatim.
    pub checkpoint: String,
    /// The device's clock when it refused the session (Unix seconds; the device's claim): the
    /// certificates and the checkpoint's witness times are checked at this time.
    pub observed_at: u64,
    /// The instance id the device asked the gateway for.
    pub instance: String,
    /// The session's encoded evidence bundle (report, VCEK, ASK, ARK, key configuration,
    /// release_ref), hex.
    pub evidence_hex: String,
    /// The device's nonce for the session, 32 bytes hex (the device's word: nothing in the file
    /// shows the device drew it).
    pub nonce_hex: String,
    /// The session's TLS exporter value bound into the report, 32 bytes hex.
    pub exporter_hex: String,
    /// The instance's publication evidence bundle (report, VCEK, ASK, ARK, key configuration,
    /// release_ref), hex: the one the logged index names by `evidence_sha256`. A session report
    /// says something only next to it (same chip, same key configuration), and then only about
    /// chip C: not when the report was made nor who ran the guest.
    pub publication_hex: String,
    /// The logged CDN index that lists the instance.
    pub index: LoggedEntry,
    /// The logged release manifest the index names for the instance.
    pub release: LoggedEntry,
}

/// Why the log half of a swapped-enclave file does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LogPartError(String);

impl LoggedEntry {
    fn path(&self, what: &str) -> Result<Vec<Hash>, LogPartError> {
        if self.inclusion_path.len() > MAX_PATH_LEN {
            return Err(LogPartError(format!(
                "the {what}'s inclusion path is too long"
            )));
        }
        self.inclusion_path
            .iter()
            .map(|h| hexfield::decode("inclusion_path", h))
            .collect::<Result<_, _>>()
            .map_err(|e| LogPartError(format!("the {what}'s inclusion path: {e}")))
    }

    fn verify(&self, what: &str, cp: &Checkpoint) -> Result<(), LogPartError> {
        crate::device::verify_inclusion(
            self.entry.as_bytes(),
            self.log_index,
            &self.path(what)?,
            cp,
        )
        .map_err(|e| {
            LogPartError(format!(
                "the {what}'s inclusion proof does not verify against the checkpoint: {e}"
            ))
        })
    }
}

impl SwappedEnclave {
    /// Checks the log half under `policy` (the checker's configured log and witnesses): the
    /// checkpoint is signed by the log, cosigned by enough witnesses no longer than the policy's
    /// age before [`Self::observed_at`], and both entries are included in it. Returns the tree
    /// head.
    pub fn check_log(&self, policy: &TrustPolicy) -> Result<Checkpoint, LogPartError> {
        let cp = policy
            .verify(self.checkpoint.as_bytes(), self.observed_at)
            .map_err(|e| {
                LogPartError(format!(
                    "the checkpoint is not one of the configured log, witnessed when the device \
                     saw it: {e}"
                ))
            })?
            .checkpoint;
        self.index.verify("CDN index", &cp)?;
        self.release.verify("release manifest", &cp)?;
        Ok(cp)
    }

    /// The instance's publication bundle, decoded.
    pub fn publication(&self) -> Result<Vec<u8>, LogPartError> {
        hex::decode(&self.publication_hex)
            .map_err(|_| LogPartError("publication_hex is not hex".into()))
    }

    /// The evidence bundle, nonce and exporter, decoded.
    pub fn session(&self) -> Result<SessionParts, LogPartError> {
        let bad = |e: crate::HexFieldError| LogPartError(e.to_string());
        Ok(SessionParts {
            bundle: hex::decode(&self.evidence_hex)
                .map_err(|_| LogPartError("evidence_hex is not hex".into()))?,
            nonce: hexfield::decode("nonce_hex", &self.nonce_hex).map_err(bad)?,
            exporter: hexfield::decode("exporter_hex", &self.exporter_hex).map_err(bad)?,
        })
    }
}

/// A swapped-enclave file's session fields, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParts {
    /// The encoded evidence bundle.
    pub bundle: Vec<u8>,
    /// The device's nonce.
    pub nonce: [u8; 32],
    /// The TLS exporter value.
    pub exporter: [u8; 32],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{ALG_COSIGNATURE_V1, ALG_ED25519, NoteKey, cosignature_line};
    use crate::evidence::{Evidence, EvidenceFile};
    use crate::log::Log;
    use crate::testutil::{ORIGIN, new_key, now};
    use ring::signature::KeyPair;

    /// A log holding an index and a release, a witnessed checkpoint, and a file naming both.
    fn fixture(dir: &std::path::Path) -> (SwappedEnclave, TrustPolicy) {
        let mut log = Log::open(&dir.join("log"), &dir.join("key.pk8")).unwrap();
        log.append(b"{\"first\":0}").unwrap();
        let release = log.append(b"{\"release\":1}").unwrap();
        let index = log.append(b"{\"index\":2}").unwrap();
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size: log.size(),
            root: log.root_at(log.size()).unwrap(),
        };
        let witness = new_key();
        let at = now();
        let note = format!(
            "{}{}",
            log.checkpoint_note(ORIGIN).unwrap(),
            cosignature_line("w", &witness, cp.body().as_bytes(), at - 60).unwrap()
        );
        let policy = TrustPolicy {
            log: NoteKey::new(ORIGIN, ALG_ED25519, *log.public_key()).unwrap(),
            witnesses: vec![
                NoteKey::new(
                    "w",
                    ALG_COSIGNATURE_V1,
                    witness.public_key().as_ref().try_into().unwrap(),
                )
                .unwrap(),
            ],
            threshold: 1,
            max_age_secs: 3600,
        };
        let entry = |text: &str, at| LoggedEntry {
            entry: text.into(),
            log_index: at,
            inclusion_path: log
                .inclusion_proof(at, cp.size)
                .unwrap()
                .iter()
                .map(hex::encode)
                .collect(),
        };
        let file = SwappedEnclave {
            log_vkey: log.vkey(ORIGIN).unwrap(),
            checkpoint: note,
            observed_at: at,
            instance: "i-0123456789abcdef".into(),
            evidence_hex: "00".into(),
            nonce_hex: "11".repeat(32),
            exporter_hex: "22".repeat(32),
            publication_hex: "33".into(),
            index: entry("{\"index\":2}", index),
            release: entry("{\"release\":1}", release),
        };
        (file, policy)
    }

    #[test]
    fn the_log_half_checks_and_doctored_copies_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let (file, policy) = fixture(dir.path());
        assert_eq!(file.check_log(&policy).unwrap().size, 3);
        // Round trip through the file's JSON, as a kind of its own.
        let wrapped = EvidenceFile::new(Evidence::SwappedEnclave(Box::new(file.clone())));
        let text = wrapped.to_json();
        assert!(text.contains("\"kind\": \"swapped-enclave\""), "{text}");
        assert_eq!(EvidenceFile::from_json(text.as_bytes()).unwrap(), wrapped);
        let extra = text.replacen("\"log_vkey\"", "\"extra\": 1, \"log_vkey\"", 1);
        assert!(EvidenceFile::from_json(extra.as_bytes()).is_err());

        type Alter = fn(&mut SwappedEnclave);
        let cases: [(Alter, &str); 5] = [
            (|f| f.index.entry.push(' '), "CDN index's inclusion proof"),
            (
                |f| f.release.log_index = 0,
                "release manifest's inclusion proof",
            ),
            (
                |f| f.release.inclusion_path[0].replace_range(0..2, "ff"),
                "release manifest's inclusion proof",
            ),
            (
                |f| f.checkpoint = f.checkpoint.replacen("\n3\n", "\n4\n", 1),
                "not one of the configured log",
            ),
            (|f| f.observed_at += 7200, "not one of the configured log"),
        ];
        for (alter, needle) in cases {
            let mut bad = file.clone();
            alter(&mut bad);
            let err = bad.check_log(&policy).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }
}
