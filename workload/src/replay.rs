//! Replay memory: the encapsulated keys (`enc`) of the requests one HPKE key has opened.
//!
//! An RFC 9458 encapsulated request carries a fresh ephemeral public key (`enc`) chosen by the
//! sender; a second request with the same `enc` under the same key is a replay of the first (or a
//! sender that broke HPKE's rules), so it is refused before the handler runs. The memory is
//! bounded ([`REPLAY_CAPACITY`] values per key): a key whose memory is full opens nothing more, it
//! is never made to forget (`crate::keys` rotates it out, at most once early per period). `enc`
//! values are public (they travel in clear inside the sealed request), so keeping them reveals
//! nothing about any request.
//!
//! The enclave's keys are all DHKEM(X25519, HKDF-SHA256) (KEM id 0x0020, `enc` of 32 bytes): a
//! request naming any other KEM is refused ([`enc_of`] gives `None`) before the memory is looked
//! at, so `enc` is never read at a length another KEM would give it.

use std::collections::BTreeSet;

use pp_protocol::key_config::{KEM_X25519_HKDF_SHA256, X25519_PUBLIC_KEY_LEN};

/// Most `enc` values remembered per key: 2^16. That is 2 MiB of values, and about 3–4.5 MiB per
/// key in the set as held (a `BTreeSet`'s nodes carry up to 11 values each, half to fully
/// filled, plus their own overhead); at most two keys are held, so under 10 MiB in all. A key
/// that opened this many requests opens nothing more (`crate::keys`).
pub const REPLAY_CAPACITY: usize = 1 << 16;

/// Bytes of the RFC 9458 request header before `enc`: key id (1), KEM id (2), KDF id (2), AEAD
/// id (2).
pub const REQUEST_HEADER_LEN: usize = 7;

/// Where the KEM id sits in the request header (big-endian).
const KEM_ID: std::ops::Range<usize> = 1..3;

/// An `enc` value of the one KEM the enclave uses (X25519: 32 bytes).
pub type Enc = [u8; X25519_PUBLIC_KEY_LEN];

/// Length of `enc` under the KEM `kem_id`, if it is one the enclave's keys use (only X25519).
fn enc_len(kem_id: u16) -> Option<usize> {
    (kem_id == KEM_X25519_HKDF_SHA256).then_some(X25519_PUBLIC_KEY_LEN)
}

/// The `enc` of an encapsulated request: the KEM's `enc` length of bytes after the 7-byte header.
/// `None` if the header names a KEM other than X25519 (0x0020), or the request is too short to
/// hold an `enc` (it then cannot open either).
pub fn enc_of(encapsulated: &[u8]) -> Option<Enc> {
    let kem = encapsulated.get(KEM_ID)?;
    let len = enc_len(u16::from_be_bytes([kem[0], kem[1]]))?;
    encapsulated
        .get(REQUEST_HEADER_LEN..REQUEST_HEADER_LEN + len)?
        .try_into()
        .ok()
}

/// Why an `enc` was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Already opened under this key.
    Replayed,
    /// The memory holds [`ReplayMemory::capacity`] values: this key opens nothing more.
    Full,
}

/// The `enc` values one key has opened, at most `capacity` of them. An ordered set: no hashing
/// of peer-chosen bytes, so no need for a seeded hasher.
#[derive(Debug)]
pub struct ReplayMemory {
    seen: BTreeSet<Enc>,
    capacity: usize,
}

impl ReplayMemory {
    /// An empty memory for at most `capacity` values.
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: BTreeSet::new(),
            capacity,
        }
    }

    /// True if `enc` was recorded.
    pub fn contains(&self, enc: &Enc) -> bool {
        self.seen.contains(enc)
    }

    /// Record `enc`; refused if it is already there, or if the memory is full.
    pub fn record(&mut self, enc: Enc) -> Result<(), Refused> {
        if self.seen.contains(&enc) {
            return Err(Refused::Replayed);
        }
        if self.is_full() {
            return Err(Refused::Full);
        }
        self.seen.insert(enc);
        Ok(())
    }

    /// True once `capacity` values are recorded.
    pub fn is_full(&self) -> bool {
        self.seen.len() >= self.capacity
    }

    /// How many values are recorded.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True if nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_repeat_and_past_its_bound() {
        let mut m = ReplayMemory::new(2);
        assert_eq!(m.record([1; 32]), Ok(()));
        assert_eq!(m.record([1; 32]), Err(Refused::Replayed));
        assert_eq!(m.record([2; 32]), Ok(()));
        assert!(m.is_full());
        assert_eq!(m.record([3; 32]), Err(Refused::Full));
        // A repeat stays a repeat when full.
        assert_eq!(m.record([2; 32]), Err(Refused::Replayed));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn the_x25519_kem_is_what_ohttp_calls_it() {
        use ohttp::hpke::Kem;
        assert_eq!(Kem::X25519Sha256 as u16, KEM_X25519_HKDF_SHA256);
        assert_eq!(
            enc_len(KEM_X25519_HKDF_SHA256),
            Some(Kem::X25519Sha256.n_enc())
        );
        assert_eq!(enc_len(Kem::P256Sha256 as u16), None);
        assert_eq!(enc_len(Kem::XWing as u16), None);
    }

    #[test]
    fn enc_is_after_the_seven_byte_header_of_an_x25519_request() {
        let mut req = vec![1, 0x00, 0x20, 0, 1, 0, 3];
        req.extend(0..40u8);
        assert_eq!(enc_of(&req).unwrap()[..], (0..32u8).collect::<Vec<_>>()[..]);
        assert_eq!(enc_of(&req[..38]), None);
        assert_eq!(enc_of(&req[..39]).unwrap()[31], 31);
        // Any other KEM (P-256, X-Wing, none): no `enc` read at all.
        for kem in [[0x00, 0x10], [0x64, 0x7a], [0x00, 0x00]] {
            req[1..3].copy_from_slice(&kem);
            assert_eq!(enc_of(&req), None);
        }
        assert_eq!(enc_of(&[1, 0x00]), None);
    }
}
