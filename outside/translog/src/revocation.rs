//! `pp-revocation/1` log entries: the operator withdraws a release (for example after a TCB
//! bulletin). The only module that parses this kind (see [`crate::entry`]).
//!
//! JSON: `{"schema": "pp-revocation/1", "release_ref": "<64 hex>", "reason": "...", "time": T}`
//! with `time` in Unix seconds. Unknown fields, bad hex, an empty or over-long reason, or one
//! with control characters are refused.

use serde::{Deserialize, Serialize};

use crate::hexfield;

/// The schema string of a revocation entry.
pub const SCHEMA: &str = "pp-revocation/1";
/// Longest reason accepted, in bytes.
pub const MAX_REASON_LEN: usize = 500;

/// A release withdrawn by the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The revoked release's `release_ref`, 32 bytes as lowercase hex.
    pub release_ref: String,
    /// Why, for people (for example the bulletin's name).
    pub reason: String,
    /// When the operator revoked it, Unix seconds.
    pub time: u64,
}

/// Why a revocation entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {SCHEMA} entry: {0}")]
pub struct RevocationError(String);

impl Revocation {
    /// A revocation of `release_ref` (64 hex) for `reason` at `time`.
    pub fn new(release_ref: &str, reason: &str, time: u64) -> Result<Self, RevocationError> {
        let r = Self {
            schema: SCHEMA.into(),
            release_ref: release_ref.into(),
            reason: reason.into(),
            time,
        };
        r.validate()?;
        Ok(r)
    }

    /// The entry's bytes.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses `bytes` if it is a revocation entry: `Ok(None)` for other kinds of entries.
    pub fn parse(bytes: &[u8]) -> Result<Option<Self>, RevocationError> {
        match crate::entry::schema_of(bytes) {
            Ok(s) if s == SCHEMA => {}
            // An entry that names this schema but is not read as one (a duplicate "schema" key,
            // a byte-order mark...) could be a revocation to a lenient reader and none to this
            // one: refused rather than skipped.
            _ if bytes.windows(SCHEMA.len()).any(|w| w == SCHEMA.as_bytes()) => {
                return Err(RevocationError(format!(
                    "an entry that names {SCHEMA} but is not a well-formed one"
                )));
            }
            _ => return Ok(None),
        }
        let r: Self = serde_json::from_slice(bytes).map_err(|e| RevocationError(e.to_string()))?;
        r.validate()?;
        Ok(Some(r))
    }

    fn validate(&self) -> Result<(), RevocationError> {
        if self.schema != SCHEMA {
            return Err(RevocationError(format!("schema is not {SCHEMA}")));
        }
        hexfield::decode::<32>("release_ref", &self.release_ref)
            .map_err(|e| RevocationError(e.to_string()))?;
        if self.reason.is_empty()
            || self.reason.len() > MAX_REASON_LEN
            || self.reason.chars().any(char::is_control)
        {
            return Err(RevocationError(format!(
                "reason must be 1..={MAX_REASON_LEN} bytes without control characters"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_revocation_only_a_lenient_reader_sees_is_refused() {
        let rr = "ab".repeat(32);
        for text in [
            format!(r#"{{"schema":"x","schema":"pp-revocation/1","release_ref":"{rr}"}}"#),
            format!("\u{feff}{{\"schema\":\"pp-revocation/1\",\"release_ref\":\"{rr}\"}}"),
        ] {
            assert!(Revocation::parse(text.as_bytes()).is_err(), "{text}");
        }
        assert_eq!(Revocation::parse(br#"{"schema":"other/1"}"#).unwrap(), None);
    }

    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let r =
            Revocation::new(&"ab".repeat(32), "TCB bulletin AMD-SB-0001", 1_700_000_000).unwrap();
        assert_eq!(Revocation::parse(r.to_json().as_bytes()).unwrap(), Some(r));
        assert_eq!(
            Revocation::parse(br#"{"schema":"pp-release-manifest/1"}"#).unwrap(),
            None
        );
        for bad in [
            r#"{"schema":"pp-revocation/1","release_ref":"AB","reason":"x","time":1}"#.to_string(),
            format!(
                r#"{{"schema":"pp-revocation/1","release_ref":"{}","reason":"","time":1}}"#,
                "ab".repeat(32)
            ),
            format!(
                r#"{{"schema":"pp-revocation/1","release_ref":"{}","reason":"a\nb","time":1}}"#,
                "ab".repeat(32)
            ),
            format!(
                r#"{{"schema":"pp-revocation/1","release_ref":"{}","reason":"a","time":1,"x":1}}"#,
                "ab".repeat(32)
            ),
        ] {
            assert!(Revocation::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
