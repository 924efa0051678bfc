//! What a log entry is: one JSON object whose top-level `"schema"` string names its kind. The log
//! itself stores opaque bytes; readers dispatch on the schema and parse each kind in the one
//! module that owns it.
//!
//! | schema | what it records | parsed by |
//! |---|---|---|
//! | `pp-release-manifest/1` | a release the enclave may run | `reproducible::manifest` |
//! | `pp-issuer-key/1` | a Privacy Pass issuer token key, its epoch and validity window | `pp_tokens::key_entry` |
//! | `pp-cdn-index/1` | the key CDN's index of one epoch: each instance's derived id, key-configuration and evidence hashes, release | `pp_protocol::cdn_index` |
//! | `pp-revocation/1` | a release withdrawn by the operator | [`crate::revocation`] |
//!
//! An entry whose schema a reader does not know is skipped by that reader, never trusted.

use serde::Deserialize;

/// Largest entry whose schema [`schema_of`] reads (the log's own bound).
pub const MAX_ENTRY_LEN: usize = crate::log::MAX_ENTRY_LEN;

/// Why an entry's kind could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Longer than any entry the log accepts.
    #[error("log entry is {0} bytes, more than the log accepts")]
    TooLarge(usize),
    /// Not a JSON object with a string `"schema"` field.
    #[error("log entry is not a JSON object with a \"schema\" string")]
    NoSchema,
}

#[derive(Deserialize)]
struct Head {
    schema: String,
}

/// The schema string of a log entry, without parsing the rest of it.
pub fn schema_of(bytes: &[u8]) -> Result<String, EntryError> {
    if bytes.len() > MAX_ENTRY_LEN {
        return Err(EntryError::TooLarge(bytes.len()));
    }
    serde_json::from_slice::<Head>(bytes)
        .map(|h| h.schema)
        .map_err(|_| EntryError::NoSchema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_schema_and_refuses_what_has_none() {
        let e = br#"{"schema":"pp-revocation/1","release_ref":"00"}"#;
        assert_eq!(schema_of(e).unwrap(), "pp-revocation/1");
        assert_eq!(schema_of(b"[1,2]"), Err(EntryError::NoSchema));
        assert_eq!(schema_of(br#"{"schema":5}"#), Err(EntryError::NoSchema));
        assert_eq!(schema_of(b"not json"), Err(EntryError::NoSchema));
        let big = vec![b' '; MAX_ENTRY_LEN + 1];
        assert_eq!(
            schema_of(&big),
            Err(EntryError::TooLarge(MAX_ENTRY_LEN + 1))
        );
    }
}
