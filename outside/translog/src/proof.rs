//! JSON forms of inclusion and consistency proofs, for carrying them from the log to devices.
//!
//! `{"leaf_index": 3, "tree_size": 7, "path": ["<64 hex>", ...]}` and
//! `{"old_size": 3, "new_size": 7, "path": [...]}`. Parsing is strict (unknown fields, bad hex,
//! wrong lengths, more than [`MAX_PROOF_LEN`] elements are refused); whether a proof proves
//! anything is for [`crate::merkle`] or [`crate::device`] to decide.

use serde::{Deserialize, Serialize};

use crate::hexfield::{self, HexFieldError};
use crate::merkle::Hash;

/// Most elements a proof may have: a tree of 2^64 leaves needs at most 64 for inclusion and 65
/// for consistency.
pub const MAX_PROOF_LEN: usize = 65;

/// Largest JSON text the parsers read.
pub const MAX_PROOF_JSON_LEN: usize = 8192;

/// Why a proof's JSON was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The text is longer than any proof.
    #[error("proof JSON is {len} bytes, more than the {max} allowed: this is not a proof")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Not a JSON proof (syntax, missing, unknown or duplicate fields).
    #[error("proof JSON is malformed ({0})")]
    Json(String),
    /// More path elements than any tree needs.
    #[error("proof has {0} path elements, more than the {MAX_PROOF_LEN} any tree needs")]
    TooManyElements(usize),
    /// A path element is malformed.
    #[error("proof: {0}")]
    Field(#[from] HexFieldError),
}

/// An inclusion proof of entry `leaf_index` in the tree of `tree_size` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// Index of the entry.
    pub leaf_index: u64,
    /// Size of the tree the proof is for.
    pub tree_size: u64,
    /// The audit path, bottom up.
    pub path: Vec<Hash>,
}

/// A consistency proof from the tree of `old_size` entries to that of `new_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The older, smaller size.
    pub old_size: u64,
    /// The newer size.
    pub new_size: u64,
    /// The proof's hashes, in RFC 9162 order.
    pub path: Vec<Hash>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionJson {
    leaf_index: u64,
    tree_size: u64,
    path: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyJson {
    old_size: u64,
    new_size: u64,
    path: Vec<String>,
}

fn parse_json<'a, T: Deserialize<'a>>(text: &'a [u8]) -> Result<T, ProofError> {
    if text.len() > MAX_PROOF_JSON_LEN {
        return Err(ProofError::TooLarge {
            len: text.len(),
            max: MAX_PROOF_JSON_LEN,
        });
    }
    serde_json::from_slice(text).map_err(|e| ProofError::Json(e.to_string()))
}

fn decode_path(path: &[String]) -> Result<Vec<Hash>, ProofError> {
    if path.len() > MAX_PROOF_LEN {
        return Err(ProofError::TooManyElements(path.len()));
    }
    path.iter()
        .map(|h| Ok(hexfield::decode("path", h)?))
        .collect()
}

fn encode_path(path: &[Hash]) -> Vec<String> {
    path.iter().map(hex::encode).collect()
}

impl InclusionProof {
    /// The JSON form.
    pub fn to_json(&self) -> String {
        let repr = InclusionJson {
            leaf_index: self.leaf_index,
            tree_size: self.tree_size,
            path: encode_path(&self.path),
        };
        serde_json::to_string(&repr).unwrap_or_default()
    }

    /// Parses the JSON form strictly.
    pub fn from_json(text: &[u8]) -> Result<Self, ProofError> {
        let repr: InclusionJson = parse_json(text)?;
        Ok(Self {
            leaf_index: repr.leaf_index,
            tree_size: repr.tree_size,
            path: decode_path(&repr.path)?,
        })
    }
}

impl ConsistencyProof {
    /// The JSON form.
    pub fn to_json(&self) -> String {
        let repr = ConsistencyJson {
            old_size: self.old_size,
            new_size: self.new_size,
            path: encode_path(&self.path),
        };
        serde_json::to_string(&repr).unwrap_or_default()
    }

    /// Parses the JSON form strictly.
    pub fn from_json(text: &[u8]) -> Result<Self, ProofError> {
        let repr: ConsistencyJson = parse_json(text)?;
        Ok(Self {
            old_size: repr.old_size,
            new_size: repr.new_size,
            path: decode_path(&repr.path)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_strictness() {
        let p = InclusionProof {
            leaf_index: 3,
            tree_size: 7,
            path: vec![[1; 32], [2; 32]],
        };
        let text = p.to_json();
        assert_eq!(InclusionProof::from_json(text.as_bytes()).unwrap(), p);
        let c = ConsistencyProof {
            old_size: 3,
            new_size: 7,
            path: vec![[3; 32]],
        };
        let ctext = c.to_json();
        assert_eq!(ConsistencyProof::from_json(ctext.as_bytes()).unwrap(), c);

        assert!(matches!(
            InclusionProof::from_json(ctext.as_bytes()),
            Err(ProofError::Json(_))
        ));
        let short = text.replace(&"01".repeat(32), &"01".repeat(31));
        assert!(matches!(
            InclusionProof::from_json(short.as_bytes()),
            Err(ProofError::Field(_))
        ));
        let long = format!(
            r#"{{"old_size":1,"new_size":2,"path":[{}]}}"#,
            vec![format!("\"{}\"", "00".repeat(32)); MAX_PROOF_LEN + 1].join(",")
        );
        assert!(matches!(
            ConsistencyProof::from_json(long.as_bytes()),
            Err(ProofError::TooManyElements(66))
        ));
    }
}
