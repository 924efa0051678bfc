//! The enclave's HPKE keys: a ring of a **current** key and at most one **previous** key, each
//! made in the enclave from the platform's randomness and published as an RFC 9458 key
//! configuration (docs/protocol.md §8). Requests are sealed to them; they never leave the enclave.
//!
//! - **Rotation**: a new key is made every `period` ([`pp_protocol::KEY_PERIOD_SECS`] in the
//!   image) by the ring's [`Clock`] (the enclave's monotonic clock), or earlier when the current
//!   key's replay memory is full (`crate::replay`) — but **at most one early rotation per
//!   period**: once the current key is full and an early rotation was made less than `period`
//!   ago, new requests under it are refused [`OpenError::Busy`] until the period ends. Otherwise
//!   a host that fills the memory (anyone can seal 2^16 requests to a public key) could have a
//!   fresh key made, and published, every few seconds, and a request's key would then tell when
//!   its device fetched the index. The old current key becomes the previous one
//!   and is still opened for one more period, so devices holding the last published CDN index
//!   keep working; the old previous key is dropped. Key ids count up (wrapping `u8`): the new id is
//!   never one of the held ones.
//! - **Replay**: each key remembers the `enc` of every request it opened; a repeat is refused
//!   ([`OpenError::Replayed`]) before the handler runs. Only requests whose plaintext is a
//!   well-padded bucket are recorded (bytes that open but are malformed burn nothing; a replay of
//!   them opens again and is refused [`OpenError::Malformed`] again, the handler never running).
//!   A key whose memory is full opens nothing more: it is rotated out (if current, when allowed)
//!   or dropped (if previous), never made to forget.
//! - **Lookup**: by the key id in the encapsulated request's first byte; an id the ring does not
//!   hold is [`OpenError::UnknownKey`].
//!
//! **What a dropped key leaves.** Dropping a key drops its `ohttp::Server`, whose `KeyConfig`
//! holds the secret as hpke's X25519 `PrivateKey`, an `x25519_dalek::StaticSecret`: that type
//! zeroizes its 32 bytes on drop (x25519-dalek's `zeroize` feature, which hpke 0.14 turns on), and
//! the enclave's allocator wipes the freed block again (`crate::wipe`). Not wiped by anything
//! here: copies of the secret the `ohttp`/`hpke` crates leave on the stack or in registers while
//! generating the key or computing a Diffie-Hellman (out of this crate's reach; stacks are reused,
//! not cleared); the public key, the encoded configuration and the replay memory (all public:
//! `enc` values travel in clear).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ohttp::hpke::{Aead, Kdf, Kem};
use ohttp::{KeyConfig, Server, ServerResponse, SymmetricSuite};
use pp_protocol::padding;
use zeroize::Zeroizing;

use crate::replay::{self, REPLAY_CAPACITY, ReplayMemory};

/// Key id of the first key of a boot; later keys count up from it.
pub const FIRST_KEY_ID: u8 = 1;

/// Time since an arbitrary start that never goes back: the ring's only notion of time.
pub trait Clock: Send + Sync {
    /// Time since the clock's start.
    fn now(&self) -> Duration;
}

/// The enclave's monotonic clock (`Instant`; under SEV-SNP the host controls its rate, see
/// docs/protocol.md §8).
#[derive(Debug)]
pub struct Monotonic(Instant);

impl Monotonic {
    /// A clock starting now.
    pub fn new() -> Self {
        Self(Instant::now())
    }
}

impl Default for Monotonic {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for Monotonic {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Why a sealed request was not opened. No request bytes in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The key id names no key the ring holds.
    UnknownKey,
    /// This `enc` was already opened under this key.
    Replayed,
    /// The key's replay memory is full and it may not be rotated out yet (one early rotation per
    /// period): retry later.
    Busy,
    /// Opened, but the plaintext is not a padded bucket (`pp_protocol::padding`); not recorded.
    Malformed,
    /// Malformed, or the AEAD refused it, or a key could not be made.
    Failed,
}

/// One held key.
struct Held {
    id: u8,
    server: Arc<Server>,
    key_config: Vec<u8>,
    /// Until when this key opens requests (for the current key: when it is replaced).
    until: Duration,
    memory: ReplayMemory,
}

struct Ring {
    current: Held,
    previous: Option<Held>,
    /// When the last early rotation (for a full memory, before the current key's time was up)
    /// was made: the next is allowed one `period` later.
    last_early: Option<Duration>,
}

/// The key ring (see the module documentation). Shared by every session and one-shot slot.
pub struct KeyRing {
    ring: Mutex<Ring>,
    clock: Box<dyn Clock>,
    period: Duration,
    capacity: usize,
}

/// X25519-HKDF-SHA256 with HKDF-SHA256 and ChaCha20-Poly1305 or AES-128-GCM.
fn make(id: u8, until: Duration, capacity: usize) -> Result<Held, &'static str> {
    let suites = vec![
        SymmetricSuite::new(Kdf::HkdfSha256, Aead::ChaCha20Poly1305),
        SymmetricSuite::new(Kdf::HkdfSha256, Aead::Aes128Gcm),
    ];
    let config =
        KeyConfig::new(id, Kem::X25519Sha256, suites).map_err(|_| "HPKE key generation failed")?;
    let key_config = config
        .encode()
        .map_err(|_| "HPKE key configuration encoding failed")?;
    let server = Server::new(config).map_err(|_| "HPKE server setup failed")?;
    Ok(Held {
        id,
        server: Arc::new(server),
        key_config,
        until,
        memory: ReplayMemory::new(capacity),
    })
}

impl KeyRing {
    /// The enclave's ring: the monotonic clock, [`pp_protocol::KEY_PERIOD_SECS`],
    /// [`REPLAY_CAPACITY`].
    pub fn new() -> Result<Self, &'static str> {
        Self::with(
            Box::new(Monotonic::new()),
            Duration::from_secs(pp_protocol::KEY_PERIOD_SECS),
            REPLAY_CAPACITY,
        )
    }

    /// A ring on `clock`, rotating every `period` or once `capacity` requests were opened under
    /// the current key (tests shorten both).
    pub fn with(
        clock: Box<dyn Clock>,
        period: Duration,
        capacity: usize,
    ) -> Result<Self, &'static str> {
        let until = clock.now() + period;
        let current = make(FIRST_KEY_ID, until, capacity)?;
        Ok(Self {
            ring: Mutex::new(Ring {
                current,
                previous: None,
                last_early: None,
            }),
            clock,
            period,
            capacity,
        })
    }

    /// The ring, with every rotation and drop that is due done first.
    fn lock(&self) -> Result<MutexGuard<'_, Ring>, &'static str> {
        // A panic aborts the enclave, so a poisoned lock cannot be seen in the image.
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        if ring.previous.as_ref().is_some_and(|p| now >= p.until) {
            ring.previous = None;
        }
        let early_allowed = ring.last_early.is_none_or(|t| now >= t + self.period);
        if now >= ring.current.until {
            self.rotate(&mut ring, now)?;
        } else if ring.current.memory.is_full() && early_allowed {
            self.rotate(&mut ring, now)?;
            ring.last_early = Some(now);
        }
        Ok(ring)
    }

    /// New current key; the old one becomes previous (for one more period) unless its memory is
    /// full or its extra period is already over; the old previous is dropped.
    fn rotate(&self, ring: &mut Ring, now: Duration) -> Result<(), &'static str> {
        let next = make(
            ring.current.id.wrapping_add(1),
            now + self.period,
            self.capacity,
        )?;
        let mut old = std::mem::replace(&mut ring.current, next);
        // One more period from when it was due to stop being current (not from now: a rotation
        // done late, after a long idle time, does not extend its life). A key rotated out for a
        // full memory opens nothing more, so it is dropped at once.
        old.until += self.period;
        ring.previous = (!old.memory.is_full() && now < old.until).then_some(old);
        Ok(())
    }

    /// Do the rotations and drops that are due (the enclave calls this now and then, so that a
    /// key is dropped on time even when no request comes).
    pub fn maintain(&self) -> Result<(), &'static str> {
        self.lock().map(drop)
    }

    /// The current key's id and encoded configuration.
    pub fn current(&self) -> Result<(u8, Vec<u8>), &'static str> {
        let ring = self.lock()?;
        Ok((ring.current.id, ring.current.key_config.clone()))
    }

    /// The encoded configuration of key `id`, if the ring holds it.
    pub fn config(&self, id: u8) -> Result<Option<Vec<u8>>, &'static str> {
        let ring = self.lock()?;
        Ok(ring
            .held()
            .find(|h| h.id == id)
            .map(|h| h.key_config.clone()))
    }

    /// The ids held, current first.
    pub fn held_ids(&self) -> Result<Vec<u8>, &'static str> {
        Ok(self.lock()?.held().map(|h| h.id).collect())
    }

    /// Open an RFC 9458 encapsulated request under the key its first byte names, refusing a
    /// request that names another KEM than X25519 (before the replay memory is looked at), a
    /// repeated `enc`, and a new one under a full key ([`OpenError::Busy`]). The `enc` is
    /// recorded only once the request opened and its plaintext is a padded bucket (so bytes that
    /// do not authenticate, or open to a malformed plaintext, burn nothing), and checked again
    /// then, so two copies opened at once cannot both pass. Returns the (padded) plaintext and the
    /// response context.
    pub fn open(
        &self,
        encapsulated: &[u8],
    ) -> Result<(Zeroizing<Vec<u8>>, ServerResponse), OpenError> {
        let (&id, _) = encapsulated.split_first().ok_or(OpenError::Failed)?;
        let enc = replay::enc_of(encapsulated).ok_or(OpenError::Failed)?;
        let server = {
            let ring = self.lock().map_err(|_| OpenError::Failed)?;
            let held = ring
                .held()
                .find(|h| h.id == id)
                .ok_or(OpenError::UnknownKey)?;
            if held.memory.contains(&enc) {
                return Err(OpenError::Replayed);
            }
            // Full and not rotated out: the current key, its early rotation used up this period.
            if held.memory.is_full() {
                return Err(OpenError::Busy);
            }
            held.server.clone()
        };
        let (plain, response) = server
            .decapsulate(encapsulated)
            .map_err(|_| OpenError::Failed)?;
        let plain = Zeroizing::new(plain);
        if padding::unpad(&plain).is_err() {
            return Err(OpenError::Malformed);
        }
        let mut ring = self.lock().map_err(|_| OpenError::Failed)?;
        let held = ring
            .held_mut()
            .find(|h| Arc::ptr_eq(&h.server, &server))
            .ok_or(OpenError::UnknownKey)?;
        match held.memory.record(enc) {
            Ok(()) => {}
            Err(replay::Refused::Replayed) => return Err(OpenError::Replayed),
            // Opened while the memory filled: the key is spent for new requests until rotated.
            Err(replay::Refused::Full) => return Err(OpenError::Busy),
        }
        if ring.previous.as_ref().is_some_and(|p| p.memory.is_full()) {
            ring.previous = None;
        }
        Ok((plain, response))
    }
}

impl Ring {
    fn held(&self) -> impl Iterator<Item = &Held> {
        std::iter::once(&self.current).chain(self.previous.as_ref())
    }

    fn held_mut(&mut self) -> impl Iterator<Item = &mut Held> {
        std::iter::once(&mut self.current).chain(self.previous.as_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock the test moves by hand.
    #[derive(Clone, Default)]
    struct Fake(Arc<AtomicU64>);

    impl Fake {
        fn set(&self, secs: u64) {
            self.0.store(secs, Ordering::SeqCst);
        }
    }

    impl Clock for Fake {
        fn now(&self) -> Duration {
            Duration::from_secs(self.0.load(Ordering::SeqCst))
        }
    }

    const PERIOD: u64 = 100;

    fn ring(capacity: usize) -> (KeyRing, Fake) {
        let clock = Fake::default();
        let ring = KeyRing::with(
            Box::new(clock.clone()),
            Duration::from_secs(PERIOD),
            capacity,
        )
        .unwrap();
        (ring, clock)
    }

    fn seal(config: &[u8]) -> Vec<u8> {
        let padded = pp_protocol::padding::pad(b"x").unwrap();
        ohttp::ClientRequest::from_encoded_config(config)
            .unwrap()
            .encapsulate(&padded)
            .unwrap()
            .0
    }

    #[test]
    fn rotates_by_time_and_keeps_the_previous_key_one_period() {
        let (ring, clock) = ring(16);
        let (first, config1) = ring.current().unwrap();
        assert_eq!(first, FIRST_KEY_ID);
        clock.set(PERIOD - 1);
        assert_eq!(ring.held_ids().unwrap(), [1]);
        clock.set(PERIOD);
        let (second, config2) = ring.current().unwrap();
        assert_eq!(second, 2);
        assert_ne!(config1, config2);
        assert_eq!(ring.held_ids().unwrap(), [2, 1]);
        // Sealed to the previous key: still opened.
        assert!(ring.open(&seal(&config1)).is_ok());
        clock.set(2 * PERIOD);
        assert_eq!(ring.held_ids().unwrap(), [3, 2]);
        assert_eq!(
            ring.open(&seal(&config1)).unwrap_err(),
            OpenError::UnknownKey
        );
        assert_eq!(ring.config(1).unwrap(), None);
        assert!(ring.open(&seal(&config2)).is_ok());
    }

    #[test]
    fn a_long_idle_time_does_not_extend_a_keys_life() {
        let (ring, clock) = ring(16);
        clock.set(2 * PERIOD + 1);
        // Key 1 was due to stop being current at PERIOD, so its extra period ended at 2 PERIOD.
        assert_eq!(ring.held_ids().unwrap(), [2]);
    }

    #[test]
    fn rotates_when_the_replay_memory_is_full() {
        let (ring, _clock) = ring(2);
        let (_, config1) = ring.current().unwrap();
        ring.open(&seal(&config1)).unwrap();
        ring.open(&seal(&config1)).unwrap();
        // Full: the next use rotates, and key 1 (which could open nothing more) is gone.
        assert_eq!(ring.held_ids().unwrap(), [2]);
        assert_eq!(
            ring.open(&seal(&config1)).unwrap_err(),
            OpenError::UnknownKey
        );
        let (_, config2) = ring.current().unwrap();
        assert!(ring.open(&seal(&config2)).is_ok());
    }

    /// Issue 14, M2: a host that fills the replay memory gets one early key per period, not one
    /// per 2^16 requests; past that, new requests under the full key are `Busy`.
    #[test]
    fn at_most_one_early_rotation_per_period() {
        let (ring, clock) = ring(2);
        let (_, config1) = ring.current().unwrap();
        ring.open(&seal(&config1)).unwrap();
        ring.open(&seal(&config1)).unwrap();
        // The period's one early rotation.
        let (second, config2) = ring.current().unwrap();
        assert_eq!(second, 2);
        let opened = seal(&config2);
        ring.open(&opened).unwrap();
        ring.open(&seal(&config2)).unwrap();
        // Full again within the period: no new key; new requests are refused busy, a repeat is
        // still a repeat.
        clock.set(PERIOD - 1);
        assert_eq!(ring.held_ids().unwrap(), [2]);
        assert_eq!(ring.open(&seal(&config2)).unwrap_err(), OpenError::Busy);
        assert_eq!(ring.open(&opened).unwrap_err(), OpenError::Replayed);
        assert_eq!(ring.current().unwrap().1, config2);
        // The period is over: rotated by time (the full key is dropped), and the new period has
        // its one early rotation again.
        clock.set(PERIOD);
        assert_eq!(ring.held_ids().unwrap(), [3]);
        let (_, config3) = ring.current().unwrap();
        ring.open(&seal(&config3)).unwrap();
        ring.open(&seal(&config3)).unwrap();
        assert_eq!(ring.held_ids().unwrap(), [4]);
        let (_, config4) = ring.current().unwrap();
        ring.open(&seal(&config4)).unwrap();
        ring.open(&seal(&config4)).unwrap();
        assert_eq!(ring.open(&seal(&config4)).unwrap_err(), OpenError::Busy);
        assert_eq!(ring.held_ids().unwrap(), [4]);
    }

    /// Bytes that open but are not a padded bucket are refused and burn nothing, also when sent
    /// again: they cannot fill the memory.
    #[test]
    fn a_malformed_plaintext_is_not_recorded() {
        let (ring, _clock) = ring(2);
        let (_, config1) = ring.current().unwrap();
        let unpadded = |body: &[u8]| {
            ohttp::ClientRequest::from_encoded_config(&config1)
                .unwrap()
                .encapsulate(body)
                .unwrap()
                .0
        };
        let bad = unpadded(b"not a bucket");
        for _ in 0..3 {
            assert_eq!(ring.open(&bad).unwrap_err(), OpenError::Malformed);
            assert_eq!(
                ring.open(&unpadded(b"x")).unwrap_err(),
                OpenError::Malformed
            );
        }
        assert_eq!(
            ring.held_ids().unwrap(),
            [1],
            "nothing recorded, no rotation"
        );
        let good = seal(&config1);
        ring.open(&good).unwrap();
        assert_eq!(ring.open(&good).unwrap_err(), OpenError::Replayed);
    }

    /// Issue 14, L1: the KEM id is read, and anything but X25519 is refused before the replay
    /// memory is looked at.
    #[test]
    fn a_request_naming_another_kem_is_refused_before_the_memory() {
        let (ring, _clock) = ring(16);
        let (_, config1) = ring.current().unwrap();
        let sealed = seal(&config1);
        ring.open(&sealed).unwrap();
        for kem in [[0x00, 0x10], [0x64, 0x7a]] {
            let mut other = sealed.clone();
            other[1..3].copy_from_slice(&kem);
            assert_eq!(ring.open(&other).unwrap_err(), OpenError::Failed);
        }
    }

    #[test]
    fn a_repeated_enc_is_refused_under_either_key() {
        let (ring, clock) = ring(16);
        let (_, config1) = ring.current().unwrap();
        let sealed = seal(&config1);
        ring.open(&sealed).unwrap();
        assert_eq!(ring.open(&sealed).unwrap_err(), OpenError::Replayed);
        clock.set(PERIOD);
        // Key 1 is now the previous key: it still remembers.
        assert_eq!(ring.open(&sealed).unwrap_err(), OpenError::Replayed);
        // Bytes that do not authenticate are refused and burn nothing.
        let fresh = seal(&config1);
        let mut tampered = fresh.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(ring.open(&tampered).unwrap_err(), OpenError::Failed);
        assert!(ring.open(&fresh).is_ok());
        assert_eq!(ring.open(&[]).unwrap_err(), OpenError::Failed);
        assert_eq!(ring.open(&fresh[..20]).unwrap_err(), OpenError::Failed);
    }

    #[test]
    fn key_ids_count_up_and_wrap() {
        let (ring, clock) = ring(16);
        for i in 1..=300u64 {
            clock.set(i * PERIOD);
            let ids = ring.held_ids().unwrap();
            assert_eq!(ids[0], (1 + i) as u8);
            assert_eq!(ids[1], ids[0].wrapping_sub(1));
        }
    }
}
