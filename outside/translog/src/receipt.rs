//! The receipt a device keeps per request: which logged release (by measurement) it talked to,
//! where that release sits in the log, and the checkpoint it was checked against.
//!
//! JSON: `{"measurement_hex", "log_index", "tree_size", "tree_root_hex", "log_id_hex"}`, byte
//! fields as lowercase hex. [`Receipt::from_json`] refuses unknown fields, bad hex, wrong
//! lengths and an index outside the tree.

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::hexfield::{self, HexFieldError};
use crate::merkle::Hash;

/// Length of an SEV-SNP launch measurement (SHA-384), in bytes.
pub const MEASUREMENT_LEN: usize = 48;

/// Largest JSON text [`Receipt::from_json`] reads.
pub const MAX_RECEIPT_JSON_LEN: usize = 4096;

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
    /// A hex field is malformed.
    #[error("receipt: {0}")]
    Field(#[from] HexFieldError),
    /// `log_index` is not below `tree_size`.
    #[error("receipt places entry {index} in a tree of size {size}: the receipt is corrupt")]
    IndexOutOfRange {
        /// The index.
        index: u64,
        /// The tree size.
        size: u64,
    },
}

/// Proof of which logged release served a request, as the device recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The enclave's launch measurement, 48 bytes as lowercase hex.
    pub measurement_hex: String,
    /// Index of the release manifest in the log.
    pub log_index: u64,
    /// Size of the tree the inclusion was checked against.
    pub tree_size: u64,
    /// Root of that tree, 32 bytes as lowercase hex.
    pub tree_root_hex: String,
    /// The log's id (SHA-256 of its public key), 32 bytes as lowercase hex.
    pub log_id_hex: String,
}

impl Receipt {
    /// A receipt for the release with `measurement` at `log_index`, checked against the
    /// checkpoint `tree` of the log `log_id`.
    pub fn new(
        measurement: &[u8; MEASUREMENT_LEN],
        log_index: u64,
        tree: &Checkpoint,
        log_id: &Hash,
    ) -> Self {
        Self {
            measurement_hex: hex::encode(measurement),
            log_index,
            tree_size: tree.size,
            tree_root_hex: hex::encode(tree.root),
            log_id_hex: hex::encode(log_id),
        }
    }

    /// The JSON form.
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

    /// Checks field lengths, hex and `log_index < tree_size`.
    pub fn validate(&self) -> Result<(), ReceiptError> {
        hexfield::decode::<MEASUREMENT_LEN>("measurement_hex", &self.measurement_hex)?;
        hexfield::decode::<32>("tree_root_hex", &self.tree_root_hex)?;
        hexfield::decode::<32>("log_id_hex", &self.log_id_hex)?;
        if self.log_index >= self.tree_size {
            return Err(ReceiptError::IndexOutOfRange {
                index: self.log_index,
                size: self.tree_size,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Receipt {
        let tree = Checkpoint {
            origin: "pp.example/log".into(),
            size: 9,
            root: [0x11; 32],
        };
        Receipt::new(&[0xa5; MEASUREMENT_LEN], 4, &tree, &[0x22; 32])
    }

    #[test]
    fn json_round_trip() {
        let r = sample();
        let text = r.to_json();
        assert!(text.starts_with(r#"{"measurement_hex":"a5a5"#), "{text}");
        assert_eq!(Receipt::from_json(text.as_bytes()).unwrap(), r);
    }

    #[test]
    fn refuses_bad_receipts() {
        let text = sample().to_json();
        let cases = [
            text.replace("a5a5", "A5A5"),
            text.replace(&"11".repeat(32), &"11".repeat(31)),
            text.replace("\"log_index\":4", "\"log_index\":9"),
            text.replacen('{', "{\"extra\":0,", 1),
            text.replace("\"tree_size\":9,", ""),
        ];
        assert!(matches!(
            Receipt::from_json(cases[0].as_bytes()),
            Err(ReceiptError::Field(HexFieldError::NotLowercaseHex { .. }))
        ));
        assert!(matches!(
            Receipt::from_json(cases[1].as_bytes()),
            Err(ReceiptError::Field(HexFieldError::WrongLength { .. }))
        ));
        assert!(matches!(
            Receipt::from_json(cases[2].as_bytes()),
            Err(ReceiptError::IndexOutOfRange { index: 9, size: 9 })
        ));
        for bad in &cases[3..] {
            assert!(matches!(
                Receipt::from_json(bad.as_bytes()),
                Err(ReceiptError::Json(_))
            ));
        }
    }
}
