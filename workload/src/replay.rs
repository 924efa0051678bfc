//! Replay memory: the encapsulated keys (`enc`) of the requests one HPKE key has opened.
//!
//! An RFC 9458 encapsulated request carries a fresh ephemeral X25519 public key (`enc`) chosen by
//! the sender; a second request with the same `enc` under the same key is a replay of the first
//! (or a sender that broke HPKE's rules), so it is refused before the handler runs. The memory is
//! bounded ([`REPLAY_CAPACITY`] values per key): when the current key's memory is full the ring
//! rotates to a new key (`crate::keys`), so a bound never means forgetting — a key whose memory is
//! full opens nothing more. `enc` values are public (they travel in clear inside the sealed
//! request), so keeping them reveals nothing about any request.

use std::collections::BTreeSet;

use pp_protocol::key_config::X25519_PUBLIC_KEY_LEN;

/// Most `enc` values remembered per key: 2^16, so 2 MiB of values per key (a few MiB for both
/// held keys with the set's own overhead). A key that opened this many requests is rotated out
/// (`crate::keys`).
pub const REPLAY_CAPACITY: usize = 1 << 16;

/// Bytes of the RFC 9458 request header before `enc`: key id (1), KEM id (2), KDF id (2), AEAD
/// id (2).
pub const REQUEST_HEADER_LEN: usize = 7;

/// An `enc` value (X25519: 32 bytes).
pub type Enc = [u8; X25519_PUBLIC_KEY_LEN];

/// The `enc` of an encapsulated request: the 32 bytes after the 7-byte header. `None` if the
/// request is too short to hold one (it then cannot open either).
pub fn enc_of(encapsulated: &[u8]) -> Option<Enc> {
    encapsulated
        .get(REQUEST_HEADER_LEN..REQUEST_HEADER_LEN + X25519_PUBLIC_KEY_LEN)?
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
    fn enc_is_after_the_seven_byte_header() {
        let mut req = vec![0u8; 7];
        req.extend(0..40u8);
        assert_eq!(enc_of(&req).unwrap()[..], (0..32u8).collect::<Vec<_>>()[..]);
        assert_eq!(enc_of(&req[..38]), None);
        assert_eq!(enc_of(&req[..39]).unwrap()[31], 31);
    }
}
