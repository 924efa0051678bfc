//! The key CDN's index (`enclaves.json`), a transparency-log entry of kind `pp-cdn-index/1`: which
//! enclave instances the operator runs this epoch, each with the hashes of its key configuration
//! and publication evidence and the release it claims. The operator's publishing step writes it to
//! the CDN **and appends the same bytes to the log**; a device uses an index only if it is in the
//! log and is the newest index there, so every device sees the same instances (issue 13 §2).
//!
//! ```json
//! {"schema":"pp-cdn-index/1","published":1765000000,"instances":[
//!   {"id":"i-<16 hex>","key_config_sha256":"<64 hex>","evidence_sha256":"<64 hex>",
//!    "release_ref":"<64 hex>"}]}
//! ```
//!
//! An instance id has one form, derived from the attested key configuration:
//! `"i-"` + the first 16 hex digits of SHA-256(RFC 9458 key configuration) ([`instance_id`]). The
//! CDN paths are derived too: `evidence/<id>.bin` and `releases/<release_ref>.json`. This crate
//! does no crypto: callers hash, [`instance_id`] formats. [`CdnIndex::parse`] checks everything a
//! parser can (schema, hex, id form, id = derived from the listed key-configuration hash,
//! duplicates); the device checks the rest against the log and the evidence.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Identifies this index format (the log entry's schema).
pub const SCHEMA: &str = "pp-cdn-index/1";
/// The index's file name at the CDN's root.
pub const INDEX_FILE: &str = "enclaves.json";
/// Most instances an index may list.
pub const MAX_INSTANCES: usize = 64;
/// Length of an instance id: `i-` and 16 hex digits.
pub const ID_LEN: usize = 18;
/// Largest index text [`CdnIndex::parse`] reads.
pub const MAX_INDEX_LEN: usize = 64 * 1024;

/// The index (the parsed, checked `Repr` of the log entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdnIndex {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// When the operator published this index (Unix seconds): tells epochs apart in the log.
    pub published: u64,
    /// The instances, at least one.
    pub instances: Vec<CdnInstance>,
    /// The gateway's own RFC 9458 key configuration (the outer layer of the one-shot path), as
    /// lowercase hex of its single-configuration encoding. Devices take it only from the logged
    /// newest index, so every device seals to the same outer key. Absent in older indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_key_config: Option<String>,
}

/// One enclave instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdnInstance {
    /// The name the gateway routes by: [`instance_id`] of `key_config_sha256`.
    pub id: String,
    /// SHA-256 of the instance's RFC 9458 key configuration, lowercase hex.
    pub key_config_sha256: String,
    /// SHA-256 of its encoded publication evidence bundle (at [`CdnInstance::evidence_path`]).
    pub evidence_sha256: String,
    /// The release it claims (`release_ref`), lowercase hex; its manifest is at
    /// [`CdnInstance::release_path`].
    pub release_ref: String,
}

/// Why an index was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexError {
    /// Longer than [`MAX_INDEX_LEN`].
    TooLarge,
    /// Not JSON of this shape (syntax, missing or unknown fields).
    NotJson,
    /// The schema is not [`SCHEMA`].
    WrongSchema,
    /// No instance, or more than [`MAX_INSTANCES`].
    InstanceCount,
    /// A hash field is not 64 lowercase hex digits.
    BadHex,
    /// An id is not `i-` + 16 lowercase hex digits.
    BadId,
    /// An id is not the one derived from the instance's key-configuration hash.
    IdNotDerived,
    /// Two instances share an id.
    DuplicateId,
    /// The gateway key configuration is not lowercase hex of one well-formed X25519 RFC 9458
    /// key configuration listing a suite devices seal with.
    BadGatewayKey,
}

impl core::fmt::Display for IndexError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::TooLarge => "the index is larger than any index",
            Self::NotJson => "the index is not a pp-cdn-index/1 JSON object",
            Self::WrongSchema => "the index's schema is not pp-cdn-index/1",
            Self::InstanceCount => "the index lists no instance or more than 64",
            Self::BadHex => "a hash in the index is not 64 lowercase hex digits",
            Self::BadId => "an instance id is not of the form i-<16 hex digits>",
            Self::IdNotDerived => {
                "an instance id is not derived from its key configuration (i- + the first 16 hex \
                 digits of its SHA-256)"
            }
            Self::DuplicateId => "two instances share an id",
            Self::BadGatewayKey => {
                "the gateway key configuration is not hex of one supported RFC 9458 key \
                 configuration"
            }
        })
    }
}

/// The instance id for a key configuration whose SHA-256 is `key_config_sha256`: `i-` + the
/// first 16 hex digits. One form for every instance, so an id names a key, not a user.
pub fn instance_id(key_config_sha256: &[u8; 32]) -> String {
    let mut id = String::from("i-");
    for b in &key_config_sha256[..8] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// Whether `id` has the form of an instance id (`i-` + 16 lowercase hex digits).
pub fn valid_id(id: &str) -> bool {
    id.len() == ID_LEN && id.starts_with("i-") && is_lower_hex(&id[2..])
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Decodes 64 lowercase hex digits.
pub fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !is_lower_hex(hex) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Decodes lowercase hex of any even length (at most a key configuration's worth).
fn parse_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) || hex.len() > 2 * 1024 || !is_lower_hex(hex)
    {
        return None;
    }
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// Whether `p` is a plain relative path: segments of `[A-Za-z0-9._-]`, none empty or starting
/// with a dot, at most 256 bytes. The CDN serves only such names.
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

impl CdnInstance {
    /// CDN path of the publication evidence bundle.
    pub fn evidence_path(&self) -> String {
        format!("evidence/{}.bin", self.id)
    }

    /// CDN path of the release manifest.
    pub fn release_path(&self) -> String {
        format!("releases/{}.json", self.release_ref)
    }

    fn check(&self) -> Result<(), IndexError> {
        let key = parse_hash(&self.key_config_sha256).ok_or(IndexError::BadHex)?;
        parse_hash(&self.evidence_sha256).ok_or(IndexError::BadHex)?;
        parse_hash(&self.release_ref).ok_or(IndexError::BadHex)?;
        if !valid_id(&self.id) {
            return Err(IndexError::BadId);
        }
        if self.id != instance_id(&key) {
            return Err(IndexError::IdNotDerived);
        }
        Ok(())
    }
}

impl CdnIndex {
    /// Parses and checks an index (see the module docs for what is checked here).
    pub fn parse(bytes: &[u8]) -> Result<Self, IndexError> {
        if bytes.len() > MAX_INDEX_LEN {
            return Err(IndexError::TooLarge);
        }
        let index: Self = serde_json::from_slice(bytes).map_err(|_| IndexError::NotJson)?;
        if index.schema != SCHEMA {
            return Err(IndexError::WrongSchema);
        }
        if index.instances.is_empty() || index.instances.len() > MAX_INSTANCES {
            return Err(IndexError::InstanceCount);
        }
        for (i, inst) in index.instances.iter().enumerate() {
            inst.check()?;
            if index.instances[..i].iter().any(|o| o.id == inst.id) {
                return Err(IndexError::DuplicateId);
            }
        }
        if let Some(config) = &index.gateway_key_config {
            let bytes = parse_hex(config).ok_or(IndexError::BadGatewayKey)?;
            let supported = crate::key_config::KeyConfig::new_checked(&bytes[..])
                .is_ok_and(|c| c.has_supported_suite());
            if !supported {
                return Err(IndexError::BadGatewayKey);
            }
        }
        Ok(index)
    }

    /// Encodes the index (compact JSON, stable field order): the bytes the CDN serves and the
    /// log holds.
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn sample() -> CdnIndex {
        let key = [0xab; 32];
        CdnIndex {
            schema: SCHEMA.into(),
            published: 1_765_000_000,
            instances: vec![CdnInstance {
                id: instance_id(&key),
                key_config_sha256: "ab".repeat(32),
                evidence_sha256: "cd".repeat(32),
                release_ref: "ef".repeat(32),
            }],
            gateway_key_config: None,
        }
    }

    /// An X25519 key configuration with HKDF-SHA256 / AES-128-GCM, as hex.
    fn gateway_key() -> String {
        let mut c = vec![7, 0x00, 0x20];
        c.extend_from_slice(&[0xab; 32]);
        c.extend_from_slice(&[0, 4, 0, 1, 0, 1]);
        c.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn gateway_key_config_is_optional_and_checked() {
        // An index without it (as every older one) parses, and encodes without the field.
        let old = sample();
        assert!(
            !String::from_utf8(old.to_vec())
                .unwrap()
                .contains("gateway_key_config")
        );
        let mut index = sample();
        index.gateway_key_config = Some(gateway_key());
        assert_eq!(CdnIndex::parse(&index.to_vec()).unwrap(), index);
        for bad in [
            gateway_key().to_uppercase(),
            String::from(&gateway_key()[..gateway_key().len() - 2]),
            format!("{}00", gateway_key()),
            String::new(),
            "zz".into(),
        ] {
            index.gateway_key_config = Some(bad.clone());
            assert_eq!(
                CdnIndex::parse(&index.to_vec()),
                Err(IndexError::BadGatewayKey),
                "{bad}"
            );
        }
    }

    #[test]
    fn ids_are_derived_from_the_key_configuration_hash() {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        assert_eq!(instance_id(&key), "i-0123456789abcdef");
        assert!(valid_id("i-0123456789abcdef"));
        for bad in [
            "i-0",
            "i-0123456789ABCDEF",
            "x-0123456789abcdef",
            "i-0123456789abcdeg",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn round_trips_and_refuses_bad_entries() {
        let index = sample();
        assert_eq!(CdnIndex::parse(&index.to_vec()).unwrap(), index);
        assert_eq!(
            sample().instances[0].evidence_path(),
            "evidence/i-abababababababab.bin"
        );
        assert_eq!(
            sample().instances[0].release_path(),
            format!("releases/{}.json", "ef".repeat(32))
        );
        let refused = |f: &dyn Fn(&mut CdnIndex), want| {
            let mut bad = sample();
            f(&mut bad);
            assert_eq!(CdnIndex::parse(&bad.to_vec()), Err(want));
        };
        refused(
            &|i| i.instances.push(i.instances[0].clone()),
            IndexError::DuplicateId,
        );
        refused(&|i| i.instances[0].id = "i-0".into(), IndexError::BadId);
        refused(
            &|i| i.instances[0].id = "i-0000000000000000".into(),
            IndexError::IdNotDerived,
        );
        refused(
            &|i| i.instances[0].evidence_sha256 = "CD".repeat(32),
            IndexError::BadHex,
        );
        refused(&|i| i.instances.clear(), IndexError::InstanceCount);
        refused(
            &|i| i.schema = "pp-key-cdn/1".into(),
            IndexError::WrongSchema,
        );
        assert_eq!(CdnIndex::parse(b"{"), Err(IndexError::NotJson));
        let extra = String::from_utf8(sample().to_vec())
            .unwrap()
            .replacen('{', "{\"x\":1,", 1);
        assert_eq!(CdnIndex::parse(extra.as_bytes()), Err(IndexError::NotJson));
        assert_eq!(
            CdnIndex::parse(&vec![b' '; MAX_INDEX_LEN + 1]),
            Err(IndexError::TooLarge)
        );
    }
}
