//! The issuer directory (RFC 9578 §4), served at `/.well-known/private-token-issuer-directory`
//! with media type `application/private-token-issuer-directory`:
//!
//! ```json
//! { "issuer-request-uri": "https://issuer.example/request",
//!   "token-keys": [ { "token-type": 2, "token-key": "<base64url SPKI>", "not-before": 1700000000 } ] }
//! ```
//!
//! `token-key` is written with padding as §4 says (an RSA-2048 SPKI is 342 bytes, which needs
//! none) and read with or without it. Keys are listed in order of preference. Unknown fields are
//! ignored; sizes and counts are bounded before anything is decoded.

use serde::{Deserialize, Serialize};

use crate::TOKEN_TYPE_BLIND_RSA;
use crate::key_entry::{IssuerKeyEntry, MAX_ENTRY_LEN};
use crate::keys::{IssuerPublicKey, MAX_SPKI_LEN};
use crate::wire::{b64url_decode_any_pad, b64url_encode, b64url_encode_padded};

/// Largest directory document parsed.
pub const MAX_DIRECTORY_LEN: usize = 64 * 1024;
/// Most keys accepted in one directory.
pub const MAX_DIRECTORY_KEYS: usize = 16;
/// Longest `issuer-request-uri` accepted.
pub const MAX_URI_LEN: usize = 2048;
/// Longest decoded `pp-log-entry`.
const MAX_LOG_ENTRY_B64: usize = MAX_ENTRY_LEN;
/// Media type of the directory document.
pub const DIRECTORY_MEDIA_TYPE: &str = "application/private-token-issuer-directory";

/// Why a directory document was refused. Carries no peer data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// Over [`MAX_DIRECTORY_LEN`] bytes or [`MAX_DIRECTORY_KEYS`] keys.
    #[error("directory too large")]
    TooLarge,
    /// Not JSON of the directory's shape.
    #[error("malformed directory")]
    Malformed,
    /// A `token-key` that is not base64url.
    #[error("malformed token-key")]
    BadKey,
}

/// One `token-keys` entry. `token_key` holds the decoded key bytes (an SPKI for type 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryKey {
    /// The token type the key is for.
    pub token_type: u16,
    /// The decoded `token-key`.
    pub token_key: Vec<u8>,
    /// Seconds since the Unix epoch before which the key is not to be used.
    pub not_before: Option<u64>,
    /// This deployment's extension `pp-log-entry`: the key's `pp-issuer-key/1` transparency-log
    /// entry (exact bytes, base64url), so a device can prove the key is logged. Other clients
    /// ignore it.
    pub log_entry: Option<Vec<u8>>,
}

/// An issuer directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerDirectory {
    /// Where token requests are posted (absolute or relative URL).
    pub issuer_request_uri: String,
    /// The issuer's keys, most preferred first.
    pub token_keys: Vec<DirectoryKey>,
}

#[derive(Serialize, Deserialize)]
struct JsonDirectory {
    #[serde(rename = "issuer-request-uri")]
    issuer_request_uri: String,
    #[serde(rename = "token-keys")]
    token_keys: Vec<JsonKey>,
}

#[derive(Serialize, Deserialize)]
struct JsonKey {
    #[serde(rename = "token-type")]
    token_type: u16,
    #[serde(rename = "token-key")]
    token_key: String,
    #[serde(
        rename = "not-before",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    not_before: Option<u64>,
    #[serde(
        rename = "pp-log-entry",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    log_entry: Option<String>,
}

impl IssuerDirectory {
    /// A directory advertising `keys` (most preferred first) with their optional `not-before`.
    pub fn new(issuer_request_uri: &str, keys: &[(&IssuerPublicKey, Option<u64>)]) -> Self {
        Self {
            issuer_request_uri: issuer_request_uri.to_owned(),
            token_keys: keys
                .iter()
                .map(|(key, not_before)| DirectoryKey {
                    token_type: TOKEN_TYPE_BLIND_RSA,
                    token_key: key.spki().to_vec(),
                    not_before: *not_before,
                    log_entry: None,
                })
                .collect(),
        }
    }

    /// A directory advertising logged keys (most preferred first), each with its
    /// `pp-issuer-key/1` entry and the entry's `not_before`.
    pub fn with_log_entries(issuer_request_uri: &str, entries: &[&IssuerKeyEntry]) -> Self {
        Self {
            issuer_request_uri: issuer_request_uri.to_owned(),
            token_keys: entries
                .iter()
                .map(|e| DirectoryKey {
                    token_type: TOKEN_TYPE_BLIND_RSA,
                    token_key: e.key.spki().to_vec(),
                    not_before: Some(e.not_before),
                    log_entry: Some(e.to_vec()),
                })
                .collect(),
        }
    }

    /// The JSON document.
    pub fn to_json(&self) -> String {
        let doc = JsonDirectory {
            issuer_request_uri: self.issuer_request_uri.clone(),
            token_keys: self
                .token_keys
                .iter()
                .map(|k| JsonKey {
                    token_type: k.token_type,
                    token_key: b64url_encode_padded(&k.token_key),
                    not_before: k.not_before,
                    log_entry: k.log_entry.as_deref().map(b64url_encode),
                })
                .collect(),
        };
        serde_json::to_string(&doc).expect("plain strings and integers serialize")
    }

    /// Parse a JSON document, bounding its size, the URI length and the number of keys.
    pub fn from_json(text: &str) -> Result<Self, DirectoryError> {
        if text.len() > MAX_DIRECTORY_LEN {
            return Err(DirectoryError::TooLarge);
        }
        let doc: JsonDirectory =
            serde_json::from_str(text).map_err(|_| DirectoryError::Malformed)?;
        if doc.issuer_request_uri.is_empty() || doc.issuer_request_uri.len() > MAX_URI_LEN {
            return Err(DirectoryError::Malformed);
        }
        if doc.token_keys.len() > MAX_DIRECTORY_KEYS {
            return Err(DirectoryError::TooLarge);
        }
        let token_keys = doc
            .token_keys
            .into_iter()
            .map(|k| {
                Ok(DirectoryKey {
                    token_type: k.token_type,
                    token_key: b64url_decode_any_pad(&k.token_key, MAX_SPKI_LEN)
                        .map_err(|_| DirectoryError::BadKey)?,
                    not_before: k.not_before,
                    log_entry: k
                        .log_entry
                        .map(|e| b64url_decode_any_pad(&e, MAX_LOG_ENTRY_B64))
                        .transpose()
                        .map_err(|_| DirectoryError::BadKey)?,
                })
            })
            .collect::<Result<_, DirectoryError>>()?;
        Ok(Self {
            issuer_request_uri: doc.issuer_request_uri,
            token_keys,
        })
    }

    /// The type 0x0002 keys usable at time `now` (Unix seconds), most preferred first. Entries
    /// whose key does not parse are skipped.
    pub fn blind_rsa_keys(&self, now: u64) -> Vec<IssuerPublicKey> {
        self.token_keys
            .iter()
            .filter(|k| k.token_type == TOKEN_TYPE_BLIND_RSA)
            .filter(|k| k.not_before.is_none_or(|t| t <= now))
            .filter_map(|k| IssuerPublicKey::from_spki(&k.token_key).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kat::vector_public_key_spki;

    #[test]
    fn round_trip() {
        let key = IssuerPublicKey::from_spki(&vector_public_key_spki()).unwrap();
        let dir = IssuerDirectory::new("https://issuer.example/request", &[(&key, Some(100))]);
        let json = dir.to_json();
        assert!(json.contains("\"token-type\":2"));
        assert!(json.contains("\"not-before\":100"));
        assert!(json.contains(&key.to_base64url()));
        let back = IssuerDirectory::from_json(&json).unwrap();
        assert_eq!(back, dir);
        assert_eq!(back.blind_rsa_keys(100), vec![key]);
        assert!(back.blind_rsa_keys(99).is_empty());
    }

    #[test]
    fn parses_other_writers() {
        let key = IssuerPublicKey::from_spki(&vector_public_key_spki()).unwrap();
        let json = format!(
            r#"{{"issuer-request-uri":"/request","extra":true,"token-keys":[
                {{"token-type":1,"token-key":"AAAA"}},
                {{"token-type":2,"token-key":"{}","future-field":"x"}}]}}"#,
            key.to_base64url()
        );
        let dir = IssuerDirectory::from_json(&json).unwrap();
        assert_eq!(dir.token_keys.len(), 2);
        assert_eq!(dir.blind_rsa_keys(0), vec![key]);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            IssuerDirectory::from_json("{}"),
            Err(DirectoryError::Malformed)
        );
        assert_eq!(
            IssuerDirectory::from_json(r#"{"issuer-request-uri":"","token-keys":[]}"#),
            Err(DirectoryError::Malformed)
        );
        assert_eq!(
            IssuerDirectory::from_json(
                r#"{"issuer-request-uri":"/r","token-keys":[{"token-type":2,"token-key":"!!"}]}"#
            ),
            Err(DirectoryError::BadKey)
        );
        assert_eq!(
            IssuerDirectory::from_json(
                r#"{"issuer-request-uri":"/r","token-keys":[{"token-type":70000,"token-key":""}]}"#
            ),
            Err(DirectoryError::Malformed)
        );
        let many = format!(
            r#"{{"issuer-request-uri":"/r","token-keys":[{}]}}"#,
            vec![r#"{"token-type":2,"token-key":""}"#; MAX_DIRECTORY_KEYS + 1].join(",")
        );
        assert_eq!(
            IssuerDirectory::from_json(&many),
            Err(DirectoryError::TooLarge)
        );
        let huge = " ".repeat(MAX_DIRECTORY_LEN + 1);
        assert_eq!(
            IssuerDirectory::from_json(&huge),
            Err(DirectoryError::TooLarge)
        );
    }
}
