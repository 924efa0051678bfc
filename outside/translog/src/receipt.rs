//! The receipt a device keeps per answered request: what it verified, so that a third party can
//! re-verify it offline (`pp check-receipt`). It names the session's attestation evidence (kept in
//! a file beside the receipt; the report's and each certificate's SHA-256 in the receipt), the
//! nonce and TLS exporter value bound into the report, the release manifest's and the CDN index's
//! positions in the log with their inclusion paths (the entries themselves in files beside), and
//! the tree head they were checked against — verbatim, as the log serialized it, so the receipt
//! does not depend on the tree head's format.
//!
//! JSON, byte fields as lowercase hex. [`Receipt::from_json`] refuses unknown fields, bad hex,
//! wrong lengths and file names that are not plain names in the receipt's folder.

use serde::{Deserialize, Serialize};

use crate::hexfield::{self, HexFieldError};

/// Identifies this receipt format.
pub const SCHEMA: &str = "pp-receipt/1";

/// Length of an SEV-SNP launch measurement (SHA-384), in bytes.
pub const MEASUREMENT_LEN: usize = 48;

/// Largest JSON text [`Receipt::from_json`] reads.
pub const MAX_RECEIPT_JSON_LEN: usize = 32 * 1024;

/// Most hashes in an inclusion path (a tree of 2^64 leaves).
pub const MAX_PATH_LEN: usize = 64;

/// Why a receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The JSON text is longer than any receipt.
    #[error("receipt JSON is {len} bytes, more than the {max} allowed: this is not a receipt")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Not a JSON receipt (syntax, missing, unknown or duplicate fields).
    #[error("receipt JSON is malformed ({0})")]
    Json(String),
    /// The schema is not [`SCHEMA`].
    #[error("the receipt's schema is not {SCHEMA}")]
    Schema,
    /// A hex field is malformed.
    #[error("receipt: {0}")]
    Field(#[from] HexFieldError),
    /// A file name is not a plain name (`[A-Za-z0-9._-]`, not starting with a dot).
    #[error("receipt: the file name in `{0}` is not a plain file name beside the receipt")]
    FileName(&'static str),
    /// A session receipt without its nonce and exporter, or a one-shot receipt with them.
    #[error(
        "receipt: a {0:?} receipt must hold nonce_hex and exporter_hex exactly when it is a session's"
    )]
    PathFields(ReceiptPath),
    /// An inclusion path is longer than any tree needs.
    #[error("receipt: the inclusion path in `{0}` has more than {MAX_PATH_LEN} hashes")]
    PathTooLong(&'static str),
}

/// A log entry the device proved included: the file beside the receipt holding its bytes, its
/// index and its inclusion path under the receipt's tree head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenEntry {
    /// File (beside the receipt) holding the entry's exact bytes.
    pub file: String,
    /// The entry's index in the log.
    pub log_index: u64,
    /// The RFC 9162 inclusion path, each hash 32 bytes as lowercase hex.
    pub inclusion_path: Vec<String>,
}

/// Which path a request took, and so which evidence its receipt holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptPath {
    /// An attested TLS session: the session's evidence, bound to the device's nonce and the
    /// session's TLS exporter (both in the receipt).
    #[default]
    Session,
    /// A one-shot request through the OHTTP relay: sealed to the key configuration of the
    /// instance's logged publication evidence (no session, no nonce, no exporter); the evidence
    /// file is that publication evidence.
    Oneshot,
}

impl ReceiptPath {
    fn is_session(&self) -> bool {
        *self == Self::Session
    }
}

/// What the device verified for one answered request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// When the device verified the session (Unix seconds): certificates are checked at this time.
    pub checked_at: u64,
    /// The path the request took (absent in session receipts, as before one-shot requests).
    #[serde(default, skip_serializing_if = "ReceiptPath::is_session")]
    pub path: ReceiptPath,
    /// The instance id the device chose (derived from its key configuration).
    pub instance: String,
    /// The enclave's launch measurement, 48 bytes as lowercase hex.
    pub measurement_hex: String,
    /// File (beside the receipt) holding the encoded evidence bundle relied on (the session's,
    /// or for a one-shot request the instance's publication evidence): report, VCEK, ASK, ARK,
    /// key configuration, release_ref.
    pub evidence_file: String,
    /// SHA-256 of the attestation report.
    pub report_sha256: String,
    /// SHA-256 of the VCEK certificate (DER): the chain's ids.
    pub vcek_sha256: String,
    /// SHA-256 of the ASK certificate (DER).
    pub ask_sha256: String,
    /// SHA-256 of the ARK certificate (DER).
    pub ark_sha256: String,
    /// The device's nonce for the session, 32 bytes (a session receipt only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce_hex: Option<String>,
    /// The session's TLS exporter value bound into the report, 32 bytes (a session receipt
    /// only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter_hex: Option<String>,
    /// The release manifest, proven in the log.
    pub release: ProvenEntry,
    /// The key CDN's index (`pp-cdn-index/1`) that listed the instance, proven in the log.
    pub index: ProvenEntry,
    /// The log's tree head both proofs were checked against, as the log serialized it.
    pub tree_head: String,
    /// The log's id (SHA-256 of its public key), 32 bytes as lowercase hex.
    pub log_id_hex: String,
}

/// Whether `name` is a plain file name (one segment of `[A-Za-z0-9._-]`, not starting with a dot).
pub fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl ProvenEntry {
    fn validate(&self, field: &'static str) -> Result<(), ReceiptError> {
        if !plain_file_name(&self.file) {
            return Err(ReceiptError::FileName(field));
        }
        if self.inclusion_path.len() > MAX_PATH_LEN {
            return Err(ReceiptError::PathTooLong(field));
        }
        self.path().map(|_| ())
    }

    /// The inclusion path, decoded.
    pub fn path(&self) -> Result<Vec<[u8; 32]>, ReceiptError> {
        self.inclusion_path
            .iter()
            .map(|h| hexfield::decode::<32>("inclusion_path", h).map_err(ReceiptError::from))
            .collect()
    }
}

impl Receipt {
    /// The JSON form (one line).
    pub fn to_json(&self) -> String {
        // Serialising numbers and strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses and checks the JSON form.
    pub fn from_json(text: &[u8]) -> Result<Self, ReceiptError> {
        if text.len() > MAX_RECEIPT_JSON_LEN {
            return Err(ReceiptError::TooLarge {
                len: text.len(),
                max: MAX_RECEIPT_JSON_LEN,
            });
        }
        let receipt: Self =
            serde_json::from_slice(text).map_err(|e| ReceiptError::Json(e.to_string()))?;
        receipt.validate()?;
        Ok(receipt)
    }

    /// Checks the schema, field lengths, hex, and file names.
    pub fn validate(&self) -> Result<(), ReceiptError> {
        if self.schema != SCHEMA {
            return Err(ReceiptError::Schema);
        }
        hexfield::decode::<MEASUREMENT_LEN>("measurement_hex", &self.measurement_hex)?;
        for (field, value) in [
            ("report_sha256", &self.report_sha256),
            ("vcek_sha256", &self.vcek_sha256),
            ("ask_sha256", &self.ask_sha256),
            ("ark_sha256", &self.ark_sha256),
            ("log_id_hex", &self.log_id_hex),
        ] {
            hexfield::decode::<32>(field, value)?;
        }
        match (self.path, &self.nonce_hex, &self.exporter_hex) {
            (ReceiptPath::Session, Some(nonce), Some(exporter)) => {
                hexfield::decode::<32>("nonce_hex", nonce)?;
                hexfield::decode::<32>("exporter_hex", exporter)?;
            }
            (ReceiptPath::Oneshot, None, None) => {}
            (path, ..) => return Err(ReceiptError::PathFields(path)),
        }
        if !plain_file_name(&self.evidence_file) {
            return Err(ReceiptError::FileName("evidence_file"));
        }
        self.release.validate("release")?;
        self.index.validate("index")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Receipt {
        let entry = |file: &str, log_index| ProvenEntry {
            file: file.into(),
            log_index,
            inclusion_path: vec!["33".repeat(32)],
        };
        Receipt {
            schema: SCHEMA.into(),
            checked_at: 1_780_272_000,
            instance: "i-0123456789abcdef".into(),
            measurement_hex: "a5".repeat(MEASUREMENT_LEN),
            evidence_file: "r1.evidence.bin".into(),
            report_sha256: "01".repeat(32),
            vcek_sha256: "02".repeat(32),
            ask_sha256: "03".repeat(32),
            ark_sha256: "04".repeat(32),
            path: ReceiptPath::Session,
            nonce_hex: Some("05".repeat(32)),
            exporter_hex: Some("06".repeat(32)),
            release: entry("r1.release.json", 0),
            index: entry("r1.index.json", 1),
            tree_head: "{\"size\":2}".into(),
            log_id_hex: "22".repeat(32),
        }
    }

    #[test]
    fn json_round_trip() {
        let r = sample();
        let text = r.to_json();
        assert!(text.starts_with(r#"{"schema":"pp-receipt/1""#), "{text}");
        assert_eq!(Receipt::from_json(text.as_bytes()).unwrap(), r);
    }

    #[test]
    fn a_oneshot_receipt_has_no_nonce_or_exporter() {
        let oneshot = Receipt {
            path: ReceiptPath::Oneshot,
            nonce_hex: None,
            exporter_hex: None,
            ..sample()
        };
        let text = oneshot.to_json();
        assert!(text.contains(r#""path":"oneshot""#), "{text}");
        assert!(!text.contains("nonce_hex"), "{text}");
        assert_eq!(Receipt::from_json(text.as_bytes()).unwrap(), oneshot);
        // A session receipt reads as before (no path field).
        assert!(!sample().to_json().contains("\"path\""));
        for bad in [
            Receipt {
                path: ReceiptPath::Oneshot,
                ..sample()
            },
            Receipt {
                nonce_hex: None,
                ..sample()
            },
        ] {
            assert!(matches!(
                Receipt::from_json(bad.to_json().as_bytes()),
                Err(ReceiptError::PathFields(_))
            ));
        }
    }

    #[test]
    fn refuses_bad_receipts() {
        let text = sample().to_json();
        let refused = |bad: String| Receipt::from_json(bad.as_bytes()).unwrap_err();
        assert!(matches!(
            refused(text.replace("a5a5", "A5A5")),
            ReceiptError::Field(HexFieldError::NotLowercaseHex { .. })
        ));
        assert!(matches!(
            refused(text.replace(&"22".repeat(32), &"22".repeat(31))),
            ReceiptError::Field(HexFieldError::WrongLength { .. })
        ));
        assert_eq!(
            refused(text.replace("r1.evidence.bin", "../r1.evidence.bin")),
            ReceiptError::FileName("evidence_file")
        );
        assert_eq!(
            refused(text.replace("r1.index.json", "/etc/passwd")),
            ReceiptError::FileName("index")
        );
        assert_eq!(
            refused(text.replace("pp-receipt/1", "pp-receipt/0")),
            ReceiptError::Schema
        );
        assert!(matches!(
            refused(text.replace(&"33".repeat(32), "zz")),
            ReceiptError::Field(_)
        ));
        for bad in [
            text.replacen('{', "{\"extra\":0,", 1),
            text.replace("\"checked_at\":1780272000,", ""),
        ] {
            assert!(matches!(refused(bad), ReceiptError::Json(_)));
        }
        assert!(matches!(
            refused(" ".repeat(MAX_RECEIPT_JSON_LEN + 1)),
            ReceiptError::TooLarge { .. }
        ));
    }
}
