//! Signed tree heads: the log's Ed25519 signature over (size, root), and their JSON form.
//!
//! The signed message is fixed-length, 91 bytes, with a domain label so that a signature made
//! here can never be mistaken for one over anything else the key might sign:
//!
//! ```text
//! "pp-translog/sth/v1\0" (19 bytes) || log_id (32 bytes) || size (u64, big-endian) || root (32 bytes)
//! ```
//!
//! `log_id` is SHA-256 of the 32-byte Ed25519 public key: binding it in means a tree head from
//! one log never verifies as another's, even if a key were reused.
//!
//! JSON: `{"size": 5, "root": "<64 lowercase hex>", "signature": "<128 lowercase hex>"}`; unknown
//! fields, duplicate fields, uppercase hex and wrong lengths are refused.

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::hexfield::{self, HexFieldError};
use crate::merkle::Hash;

/// The domain label that starts every signed tree head message.
pub const STH_DOMAIN: &[u8; 19] = b"pp-translog/sth/v1\0";

/// Length of the signed message: label, log id, size, root.
pub const STH_MESSAGE_LEN: usize = STH_DOMAIN.len() + 32 + 8 + 32;

/// Largest JSON text [`SignedTreeHead::from_json`] reads; a tree head is about 250 bytes.
pub const MAX_STH_JSON_LEN: usize = 4096;

/// Why a tree head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SthError {
    /// The JSON text is longer than any tree head.
    #[error("tree head JSON is {len} bytes, more than the {max} allowed: this is not a tree head")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The text is not a JSON tree head (syntax, missing, unknown or duplicate fields).
    #[error(
        "tree head JSON is malformed ({0}): expected {{\"size\", \"root\", \"signature\"}} only"
    )]
    Json(String),
    /// A hex field is malformed.
    #[error("tree head: {0}")]
    Field(#[from] HexFieldError),
    /// The signature does not verify under the log's public key.
    #[error(
        "tree head signature does not verify under the log's key: the head was altered or comes from another log"
    )]
    BadSignature,
}

/// SHA-256 of the log's 32-byte Ed25519 public key: the log's identity in tree heads and
/// receipts.
pub fn log_id(public_key: &[u8; 32]) -> Hash {
    Sha256::digest(public_key).into()
}

/// A tree head signed by the log: the log held `size` entries whose Merkle root is `root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignedTreeHead {
    /// Number of entries in the tree.
    pub size: u64,
    /// RFC 9162 Merkle tree hash of the first `size` entries.
    pub root: Hash,
    /// Ed25519 signature over [`SignedTreeHead::signed_message`].
    pub signature: [u8; 64],
}

/// The JSON shape, hex strings for byte fields.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SthJson {
    size: u64,
    root: String,
    signature: String,
}

impl SignedTreeHead {
    /// The exact bytes signed for (`log_id`, `size`, `root`); see the module documentation.
    pub fn signed_message(log_id: &Hash, size: u64, root: &Hash) -> [u8; STH_MESSAGE_LEN] {
        let mut msg = [0u8; STH_MESSAGE_LEN];
        let (label, rest) = msg.split_at_mut(STH_DOMAIN.len());
        label.copy_from_slice(STH_DOMAIN);
        let (id, rest) = rest.split_at_mut(32);
        id.copy_from_slice(log_id);
        let (sz, rt) = rest.split_at_mut(8);
        sz.copy_from_slice(&size.to_be_bytes());
        rt.copy_from_slice(root);
        msg
    }

    /// Signs (`size`, `root`) with the log's key.
    pub fn sign(key: &Ed25519KeyPair, size: u64, root: Hash) -> Self {
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(key.public_key().as_ref());
        let msg = Self::signed_message(&log_id(&public_key), size, &root);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(key.sign(&msg).as_ref());
        Self {
            size,
            root,
            signature,
        }
    }

    /// Checks the signature under the log's 32-byte Ed25519 `public_key`.
    pub fn verify(&self, public_key: &[u8; 32]) -> Result<(), SthError> {
        let msg = Self::signed_message(&log_id(public_key), self.size, &self.root);
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(&msg, &self.signature)
            .map_err(|_| SthError::BadSignature)
    }

    /// The JSON form (see the module documentation).
    pub fn to_json(&self) -> String {
        // Serialising a struct of a number and two strings cannot fail.
        serde_json::to_string(&self.to_repr()).unwrap_or_default()
    }

    /// Parses the JSON form strictly. Does not check the signature: see [`Self::verify`].
    pub fn from_json(text: &[u8]) -> Result<Self, SthError> {
        if text.len() > MAX_STH_JSON_LEN {
            return Err(SthError::TooLarge {
                len: text.len(),
                max: MAX_STH_JSON_LEN,
            });
        }
        let repr: SthJson =
            serde_json::from_slice(text).map_err(|e| SthError::Json(e.to_string()))?;
        Self::from_repr(repr)
    }

    fn to_repr(self) -> SthJson {
        SthJson {
            size: self.size,
            root: hex::encode(self.root),
            signature: hex::encode(self.signature),
        }
    }

    fn from_repr(repr: SthJson) -> Result<Self, SthError> {
        Ok(Self {
            size: repr.size,
            root: hexfield::decode("root", &repr.root)?,
            signature: hexfield::decode("signature", &repr.signature)?,
        })
    }
}

impl Serialize for SignedTreeHead {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_repr().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SignedTreeHead {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = SthJson::deserialize(deserializer)?;
        Self::from_repr(repr).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn key() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn public(key: &Ed25519KeyPair) -> [u8; 32] {
        key.public_key().as_ref().try_into().unwrap()
    }

    #[test]
    fn message_layout() {
        let msg = SignedTreeHead::signed_message(&[0xaa; 32], 0x0102_0304_0506_0708, &[0xbb; 32]);
        assert_eq!(msg.len(), 91);
        assert_eq!(&msg[..19], b"pp-translog/sth/v1\0");
        assert_eq!(msg[19..51], [0xaa; 32]);
        assert_eq!(msg[51..59], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(msg[59..], [0xbb; 32]);
    }

    #[test]
    fn sign_verify_and_tamper() {
        let k = key();
        let pk = public(&k);
        let sth = SignedTreeHead::sign(&k, 7, [3; 32]);
        sth.verify(&pk).unwrap();
        for i in 0..64 {
            let mut bad = sth;
            bad.signature[i] ^= 1;
            assert_eq!(bad.verify(&pk), Err(SthError::BadSignature));
        }
        for i in 0..32 {
            let mut bad = sth;
            bad.root[i] ^= 0x80;
            assert_eq!(bad.verify(&pk), Err(SthError::BadSignature));
        }
        let bad = SignedTreeHead { size: 8, ..sth };
        assert_eq!(bad.verify(&pk), Err(SthError::BadSignature));
        assert_eq!(sth.verify(&public(&key())), Err(SthError::BadSignature));
    }

    #[test]
    fn json_round_trip() {
        let sth = SignedTreeHead::sign(&key(), 42, [0xab; 32]);
        let text = sth.to_json();
        assert_eq!(SignedTreeHead::from_json(text.as_bytes()).unwrap(), sth);
        let via_serde: SignedTreeHead = serde_json::from_str(&text).unwrap();
        assert_eq!(via_serde, sth);
        assert_eq!(serde_json::to_string(&sth).unwrap(), text);
    }

    #[test]
    fn json_strictness() {
        let root = "ab".repeat(32);
        let sig = "cd".repeat(64);
        let doc = |size: &str, root: &str, sig: &str, extra: &str| {
            format!(r#"{{"size":{size},"root":"{root}","signature":"{sig}"{extra}}}"#)
        };
        let parse = |t: String| SignedTreeHead::from_json(t.as_bytes());
        assert!(parse(doc("1", &root, &sig, "")).is_ok());
        assert!(matches!(
            parse(doc("1", &root[2..], &sig, "")),
            Err(SthError::Field(HexFieldError::WrongLength {
                field: "root",
                ..
            }))
        ));
        assert!(matches!(
            parse(doc("1", &root, &format!("{sig}00"), "")),
            Err(SthError::Field(HexFieldError::WrongLength {
                field: "signature",
                ..
            }))
        ));
        assert!(matches!(
            parse(doc("1", &root.to_uppercase(), &sig, "")),
            Err(SthError::Field(HexFieldError::NotLowercaseHex {
                field: "root"
            }))
        ));
        let zz = format!("zz{}", &root[2..]);
        assert!(matches!(
            parse(doc("1", &zz, &sig, "")),
            Err(SthError::Field(HexFieldError::NotLowercaseHex { .. }))
        ));
        for bad in [
            doc("-1", &root, &sig, ""),
            doc("1.5", &root, &sig, ""),
            doc("18446744073709551616", &root, &sig, ""),
            doc("1", &root, &sig, r#","extra":1"#),
            doc("1", &root, &sig, r#","size":2"#),
            format!(r#"{{"size":1,"root":"{root}"}}"#),
            format!("{} x", doc("1", &root, &sig, "")),
            String::new(),
            "null".into(),
        ] {
            assert!(
                matches!(parse(bad.clone()), Err(SthError::Json(_))),
                "{bad}"
            );
        }
        let huge = vec![b' '; MAX_STH_JSON_LEN + 1];
        assert!(matches!(
            SignedTreeHead::from_json(&huge),
            Err(SthError::TooLarge { .. })
        ));
    }
}
