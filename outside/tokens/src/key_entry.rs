//! The `pp-issuer-key/1` transparency-log entry: one issuer token key, the epoch it serves and
//! its validity window (RFC 9576 §7 key consistency). Every device checks the key it blinds for
//! against such an entry with an inclusion proof, so the operator cannot hand one account a key
//! of its own without logging it for everyone to see.
//!
//! ```json
//! {"schema":"pp-issuer-key/1","issuer_name":"issuer.example","token_type":2,
//!  "token_key":"<base64url SPKI, as in the RFC 9578 directory>","token_key_id":"<hex SHA-256 of the SPKI>",
//!  "epoch":7,"not_before":1700000000,"not_after":1702678400}
//! ```
//!
//! The encoding is canonical: [`IssuerKeyEntry::parse`] refuses bytes that
//! [`IssuerKeyEntry::to_vec`] would not write, so one key in one epoch has one entry (one leaf
//! hash). [`KeySchedule`] is the operator's rule for epochs: one key per epoch, each valid from
//! its epoch's start until `overlap` seconds into the next, so the next key is always logged and
//! valid before the old one expires.

use serde::{Deserialize, Serialize};

use crate::TOKEN_TYPE_BLIND_RSA;
use crate::keys::{IssuerPublicKey, MAX_SPKI_LEN, TokenKeyId};
use crate::wire::{b64url_decode_any_pad, b64url_encode_padded};

/// The entry's schema string (see `pp_translog::entry`).
pub const SCHEMA: &str = "pp-issuer-key/1";
/// Largest entry parsed.
pub const MAX_ENTRY_LEN: usize = 2048;
/// Longest issuer name.
pub const MAX_ISSUER_NAME_LEN: usize = 255;
/// Longest validity window accepted (400 days): a key cannot be logged for ever.
pub const MAX_WINDOW_SECONDS: u64 = 400 * 24 * 3600;

/// Why an entry was refused. Carries no peer data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyEntryError {
    /// Over [`MAX_ENTRY_LEN`] bytes.
    #[error("issuer key entry too large")]
    TooLarge,
    /// Not JSON of the entry's shape, or another schema.
    #[error("malformed issuer key entry")]
    Malformed,
    /// A token type other than 2 (blind RSA-2048).
    #[error("issuer key entry is for another token type")]
    WrongTokenType,
    /// The `token_key` is not a canonical RSA-2048 SPKI.
    #[error("issuer key entry holds an unusable token key")]
    BadKey,
    /// `token_key_id` is not SHA-256 of the key.
    #[error("issuer key entry's key id does not match its key")]
    KeyIdMismatch,
    /// An empty or too long issuer name.
    #[error("issuer key entry has an invalid issuer name")]
    BadIssuerName,
    /// `not_before >= not_after`, or a window over [`MAX_WINDOW_SECONDS`].
    #[error("issuer key entry has an invalid validity window")]
    BadWindow,
    /// The bytes are not the canonical encoding of what they hold.
    #[error("issuer key entry is not canonically encoded")]
    NotCanonical,
}

/// One logged issuer token key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerKeyEntry {
    /// The issuer's name as in token challenges (RFC 9577 `issuer_name`).
    pub issuer_name: String,
    /// The token key.
    pub key: IssuerPublicKey,
    /// The operator's epoch number this key serves.
    pub epoch: u64,
    /// First second (Unix time) the key may be used.
    pub not_before: u64,
    /// First second the key may no longer be used: tokens of it are refused from then on.
    pub not_after: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Json {
    schema: String,
    issuer_name: String,
    token_type: u16,
    token_key: String,
    token_key_id: String,
    epoch: u64,
    not_before: u64,
    not_after: u64,
}

impl IssuerKeyEntry {
    /// An entry, checking the name and window as [`parse`](Self::parse) does.
    pub fn new(
        issuer_name: &str,
        key: IssuerPublicKey,
        epoch: u64,
        not_before: u64,
        not_after: u64,
    ) -> Result<Self, KeyEntryError> {
        if issuer_name.is_empty() || issuer_name.len() > MAX_ISSUER_NAME_LEN {
            return Err(KeyEntryError::BadIssuerName);
        }
        if not_before >= not_after || not_after - not_before > MAX_WINDOW_SECONDS {
            return Err(KeyEntryError::BadWindow);
        }
        Ok(Self {
            issuer_name: issuer_name.to_owned(),
            key,
            epoch,
            not_before,
            not_after,
        })
    }

    /// Parse and check an entry: schema, token type, canonical key, key id, name, window, and
    /// that the bytes are exactly the canonical encoding.
    pub fn parse(bytes: &[u8]) -> Result<Self, KeyEntryError> {
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(KeyEntryError::TooLarge);
        }
        let doc: Json = serde_json::from_slice(bytes).map_err(|_| KeyEntryError::Malformed)?;
        if doc.schema != SCHEMA {
            return Err(KeyEntryError::Malformed);
        }
        if doc.token_type != TOKEN_TYPE_BLIND_RSA {
            return Err(KeyEntryError::WrongTokenType);
        }
        let spki = b64url_decode_any_pad(&doc.token_key, MAX_SPKI_LEN)
            .map_err(|_| KeyEntryError::BadKey)?;
        let key = IssuerPublicKey::from_spki(&spki).map_err(|_| KeyEntryError::BadKey)?;
        if doc.token_key_id != hex_of(key.token_key_id()) {
            return Err(KeyEntryError::KeyIdMismatch);
        }
        let entry = Self::new(
            &doc.issuer_name,
            key,
            doc.epoch,
            doc.not_before,
            doc.not_after,
        )?;
        if entry.to_vec() != bytes {
            return Err(KeyEntryError::NotCanonical);
        }
        Ok(entry)
    }

    /// The canonical encoding (what the operator appends to the log).
    pub fn to_vec(&self) -> Vec<u8> {
        let doc = Json {
            schema: SCHEMA.to_owned(),
            issuer_name: self.issuer_name.clone(),
            token_type: TOKEN_TYPE_BLIND_RSA,
            token_key: b64url_encode_padded(self.key.spki()),
            token_key_id: hex_of(self.key.token_key_id()),
            epoch: self.epoch,
            not_before: self.not_before,
            not_after: self.not_after,
        };
        serde_json::to_vec(&doc).expect("plain strings and integers serialize")
    }

    /// The key's id (SHA-256 of its SPKI).
    pub fn token_key_id(&self) -> &TokenKeyId {
        self.key.token_key_id()
    }

    /// Whether the key may be used at `now` (Unix seconds): `not_before <= now < not_after`.
    pub fn valid_at(&self, now: u64) -> bool {
        self.not_before <= now && now < self.not_after
    }

    /// Whether the key's window is over at `now`: its tokens are stale.
    pub fn retired_at(&self, now: u64) -> bool {
        now >= self.not_after
    }
}

/// Lower-case hex of a key id (also how devices name keys in messages).
pub fn hex_of(id: &TokenKeyId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The operator's epochs: epoch `n` starts at `n * epoch_seconds`; its key is valid from then
/// until `overlap_seconds` after the next epoch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySchedule {
    epoch_seconds: u64,
    overlap_seconds: u64,
}

impl KeySchedule {
    /// A schedule; the overlap must be shorter than an epoch and the window at most
    /// [`MAX_WINDOW_SECONDS`].
    pub fn new(epoch_seconds: u64, overlap_seconds: u64) -> Result<Self, KeyEntryError> {
        if epoch_seconds == 0
            || overlap_seconds >= epoch_seconds
            || epoch_seconds + overlap_seconds > MAX_WINDOW_SECONDS
        {
            return Err(KeyEntryError::BadWindow);
        }
        Ok(Self {
            epoch_seconds,
            overlap_seconds,
        })
    }

    /// The epoch in progress at `now`.
    pub fn epoch_at(&self, now: u64) -> u64 {
        now / self.epoch_seconds
    }

    /// `(not_before, not_after)` of epoch `epoch`'s key.
    pub fn window(&self, epoch: u64) -> (u64, u64) {
        let start = epoch.saturating_mul(self.epoch_seconds);
        (
            start,
            start
                .saturating_add(self.epoch_seconds)
                .saturating_add(self.overlap_seconds),
        )
    }

    /// The epochs whose keys are valid at `now`, newest first (two during an overlap).
    pub fn valid_epochs(&self, now: u64) -> Vec<u64> {
        let current = self.epoch_at(now);
        let mut epochs = vec![current];
        if current > 0 && self.window(current - 1).1 > now {
            epochs.push(current - 1);
        }
        epochs
    }

    /// The entry for `key` serving `epoch` under this schedule.
    pub fn entry(
        &self,
        issuer_name: &str,
        key: IssuerPublicKey,
        epoch: u64,
    ) -> Result<IssuerKeyEntry, KeyEntryError> {
        let (not_before, not_after) = self.window(epoch);
        IssuerKeyEntry::new(issuer_name, key, epoch, not_before, not_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kat::vector_public_key_spki;

    fn key() -> IssuerPublicKey {
        IssuerPublicKey::from_spki(&vector_public_key_spki()).unwrap()
    }

    #[test]
    fn round_trip() {
        let entry = IssuerKeyEntry::new("issuer.example", key(), 7, 100, 200).unwrap();
        let bytes = entry.to_vec();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with(r#"{"schema":"pp-issuer-key/1","issuer_name":"issuer.example""#));
        assert!(text.contains(
            r#""token_key_id":"ca572f8982a9ca248a3056186322d93ca147266121ddeb5632c07f1f71cd2708""#
        ));
        assert_eq!(IssuerKeyEntry::parse(&bytes).unwrap(), entry);
        assert!(!entry.valid_at(99) && entry.valid_at(100) && entry.valid_at(199));
        assert!(!entry.valid_at(200) && entry.retired_at(200) && !entry.retired_at(199));
    }

    #[test]
    fn refusals() {
        let good = String::from_utf8(
            IssuerKeyEntry::new("i", key(), 1, 100, 200)
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        let cases = [
            (
                good.replace("pp-issuer-key/1", "pp-issuer-key/2"),
                KeyEntryError::Malformed,
            ),
            (
                good.replace("\"token_type\":2", "\"token_type\":1"),
                KeyEntryError::WrongTokenType,
            ),
            (
                good.replace("\"token_key_id\":\"ca", "\"token_key_id\":\"cb"),
                KeyEntryError::KeyIdMismatch,
            ),
            (
                good.replace("\"issuer_name\":\"i\"", "\"issuer_name\":\"\""),
                KeyEntryError::BadIssuerName,
            ),
            (
                good.replace("\"not_after\":200", "\"not_after\":100"),
                KeyEntryError::BadWindow,
            ),
            (
                good.replace("\"not_after\":200", "\"not_after\":99999999999"),
                KeyEntryError::BadWindow,
            ),
            (
                good.replace("\"epoch\":1,", "\"epoch\":1, "),
                KeyEntryError::NotCanonical,
            ),
            (good.replace("}", ",\"extra\":1}"), KeyEntryError::Malformed),
            (
                good.replace("\"token_key\":\"MI", "\"token_key\":\"!I"),
                KeyEntryError::BadKey,
            ),
            ("[]".to_string(), KeyEntryError::Malformed),
            (" ".repeat(MAX_ENTRY_LEN + 1), KeyEntryError::TooLarge),
        ];
        for (text, want) in cases {
            assert_eq!(IssuerKeyEntry::parse(text.as_bytes()), Err(want), "{text}");
        }
    }

    #[test]
    fn schedule_overlaps_epochs() {
        let s = KeySchedule::new(100, 10).unwrap();
        assert_eq!(s.window(3), (300, 410));
        assert_eq!(s.valid_epochs(305), vec![3, 2]);
        assert_eq!(s.valid_epochs(310), vec![3]);
        assert_eq!(s.valid_epochs(5), vec![0]);
        // The next epoch's key is valid before the current one expires.
        let (next_start, _) = s.window(4);
        assert!(next_start < s.window(3).1);
        assert_eq!(KeySchedule::new(100, 100), Err(KeyEntryError::BadWindow));
        assert_eq!(KeySchedule::new(0, 0), Err(KeyEntryError::BadWindow));
        let e = s.entry("i", key(), 3).unwrap();
        assert_eq!((e.not_before, e.not_after, e.epoch), (300, 410, 3));
    }
}
