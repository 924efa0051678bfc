//! The key CDN's index (`enclaves.json`): which enclave instances the operator runs, where each
//! one's publication evidence is, and which release manifest it claims. Written by the operator's
//! publishing tool, read by devices. Nothing in it is trusted: the device verifies the evidence
//! each entry points to, and the release manifest against the transparency log.
//!
//! ```json
//! {"schema":"pp-key-cdn/1","instances":[
//!   {"id":"i-0","evidence":"evidence/i-0.bin","release":"releases/<release_ref hex>.json"}]}
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Identifies this index format.
pub const SCHEMA: &str = "pp-key-cdn/1";
/// The index's file name at the CDN's root.
pub const INDEX_FILE: &str = "enclaves.json";
/// Most instances an index may list.
pub const MAX_INSTANCES: usize = 64;
/// Longest instance id.
pub const MAX_ID_LEN: usize = 32;

/// The index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdnIndex {
    pub schema: String,
    pub instances: Vec<CdnInstance>,
}

/// One enclave instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdnInstance {
    /// The name the gateway routes by (`[a-z0-9-]`, 1..=32 characters).
    pub id: String,
    /// CDN path of the encoded publication evidence bundle.
    pub evidence: String,
    /// CDN path of the release manifest the instance claims.
    pub release: String,
}

/// Why an index was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexError {
    NotJson,
    WrongSchema,
    TooManyInstances,
    BadId,
    DuplicateId,
    BadPath,
}

/// Whether `id` is a valid instance id.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether `p` is a plain relative path: segments of `[A-Za-z0-9._-]`, none empty or starting
/// with a dot, at most 256 bytes. The CDN serves only such names; the index points only to them.
pub fn valid_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 256
        && p.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

impl CdnIndex {
    /// Parses and checks an index.
    pub fn parse(bytes: &[u8]) -> Result<Self, IndexError> {
        let index: Self = serde_json::from_slice(bytes).map_err(|_| IndexError::NotJson)?;
        if index.schema != SCHEMA {
            return Err(IndexError::WrongSchema);
        }
        if index.instances.len() > MAX_INSTANCES {
            return Err(IndexError::TooManyInstances);
        }
        for (i, inst) in index.instances.iter().enumerate() {
            if !valid_id(&inst.id) {
                return Err(IndexError::BadId);
            }
            if index.instances[..i].iter().any(|o| o.id == inst.id) {
                return Err(IndexError::DuplicateId);
            }
            if !valid_path(&inst.evidence) || !valid_path(&inst.release) {
                return Err(IndexError::BadPath);
            }
        }
        Ok(index)
    }

    /// Encodes the index (pretty JSON, stable field order).
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn sample() -> CdnIndex {
        CdnIndex {
            schema: SCHEMA.into(),
            instances: vec![CdnInstance {
                id: "i-0".into(),
                evidence: "evidence/i-0.bin".into(),
                release: "releases/ab.json".into(),
            }],
        }
    }

    #[test]
    fn round_trips_and_refuses_bad_entries() {
        let index = sample();
        assert_eq!(CdnIndex::parse(&index.to_vec()).unwrap(), index);
        let mut dup = sample();
        dup.instances.push(dup.instances[0].clone());
        assert_eq!(CdnIndex::parse(&dup.to_vec()), Err(IndexError::DuplicateId));
        let mut bad = sample();
        bad.instances[0].id = "I 0".into();
        assert_eq!(CdnIndex::parse(&bad.to_vec()), Err(IndexError::BadId));
        let mut path = sample();
        path.instances[0].evidence = "../x".into();
        assert_eq!(CdnIndex::parse(&path.to_vec()), Err(IndexError::BadPath));
        let mut schema = sample();
        schema.schema = "x".into();
        assert_eq!(
            CdnIndex::parse(&schema.to_vec()),
            Err(IndexError::WrongSchema)
        );
        assert_eq!(CdnIndex::parse(b"{"), Err(IndexError::NotJson));
    }
}
