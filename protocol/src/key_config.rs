//! An RFC 9458 §3 key configuration, as the enclave publishes it and the device seals to it:
//!
//! ```text
//! key_id (1) | kem_id (2) | public key (Npk) | suites length (2) | (kdf_id (2), aead_id (2))*
//! ```
//!
//! Only the KEM this system uses is understood (X25519-HKDF-SHA256, Npk = 32); the `ohttp` crate
//! does the cryptography, but it is handed only configurations that passed this parser (ohttp 0.8
//! panics on a configuration that lists no suite it supports).

use alloc::vec::Vec;

use crate::{Error, Result};

pub const KEM_X25519_HKDF_SHA256: u16 = 0x0020;
pub const X25519_PUBLIC_KEY_LEN: usize = 32;
pub const KDF_HKDF_SHA256: u16 = 0x0001;
pub const AEAD_AES_128_GCM: u16 = 0x0001;
pub const AEAD_CHACHA20_POLY1305: u16 = 0x0003;
/// Most symmetric suites accepted in one configuration.
pub const MAX_SUITES: usize = 16;

mod field {
    use core::ops::Range;
    pub const KEY_ID: usize = 0;
    pub const KEM: Range<usize> = 1..3;
    pub const PUBLIC_KEY: Range<usize> = 3..35;
    pub const SUITES_LEN: Range<usize> = 35..37;
    pub const SUITES: usize = 37;
}

/// A symmetric suite: KDF and AEAD identifiers (RFC 9180 registries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub kdf: u16,
    pub aead: u16,
}

impl Suite {
    /// HKDF-SHA256 with AES-128-GCM or ChaCha20-Poly1305: the suites devices seal with.
    pub fn is_supported(&self) -> bool {
        self.kdf == KDF_HKDF_SHA256
            && matches!(self.aead, AEAD_AES_128_GCM | AEAD_CHACHA20_POLY1305)
    }
}

/// A checked view over one encoded key configuration.
#[derive(Debug, Clone)]
pub struct KeyConfig<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

impl<T: AsRef<[u8]>> KeyConfig<T> {
    /// Check the KEM, the lengths and that the suite list is whole and non-empty; refuse trailing
    /// bytes.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let data = buffer.as_ref();
        if data.len() < field::SUITES {
            return Err(Error::Truncated);
        }
        if be16(&data[field::KEM]) != KEM_X25519_HKDF_SHA256 {
            return Err(Error::Malformed);
        }
        let suites_len = usize::from(be16(&data[field::SUITES_LEN]));
        if suites_len == 0 || suites_len % 4 != 0 {
            return Err(Error::Malformed);
        }
        if suites_len > MAX_SUITES * 4 {
            return Err(Error::TooLong);
        }
        match data.len().cmp(&(field::SUITES + suites_len)) {
            core::cmp::Ordering::Less => Err(Error::Truncated),
            core::cmp::Ordering::Greater => Err(Error::TrailingBytes),
            core::cmp::Ordering::Equal => Ok(Self { buffer }),
        }
    }

    pub fn key_id(&self) -> u8 {
        self.buffer.as_ref()[field::KEY_ID]
    }

    pub fn public_key(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PUBLIC_KEY]
    }

    pub fn suites(&self) -> impl Iterator<Item = Suite> + '_ {
        self.buffer.as_ref()[field::SUITES..]
            .chunks_exact(4)
            .map(|s| Suite {
                kdf: be16(&s[..2]),
                aead: be16(&s[2..]),
            })
    }

    /// True when at least one listed suite is one devices seal with.
    pub fn has_supported_suite(&self) -> bool {
        self.suites().any(|s| s.is_supported())
    }
}

/// A key configuration as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConfigRepr {
    pub key_id: u8,
    pub public_key: [u8; X25519_PUBLIC_KEY_LEN],
    pub suites: Vec<Suite>,
}

impl KeyConfigRepr {
    pub fn parse<T: AsRef<[u8]>>(view: &KeyConfig<T>) -> Result<Self> {
        Ok(Self {
            key_id: view.key_id(),
            public_key: view.public_key().try_into().map_err(|_| Error::Malformed)?,
            suites: view.suites().collect(),
        })
    }

    pub fn to_vec(&self) -> Result<Vec<u8>> {
        if self.suites.is_empty() {
            return Err(Error::Malformed);
        }
        if self.suites.len() > MAX_SUITES {
            return Err(Error::TooLong);
        }
        let mut out = Vec::with_capacity(field::SUITES + 4 * self.suites.len());
        out.push(self.key_id);
        out.extend_from_slice(&KEM_X25519_HKDF_SHA256.to_be_bytes());
        out.extend_from_slice(&self.public_key);
        out.extend_from_slice(&((self.suites.len() * 4) as u16).to_be_bytes());
        for s in &self.suites {
            out.extend_from_slice(&s.kdf.to_be_bytes());
            out.extend_from_slice(&s.aead.to_be_bytes());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn repr(suites: &[(u16, u16)]) -> KeyConfigRepr {
        KeyConfigRepr {
            key_id: 1,
            public_key: [0x42; 32],
            suites: suites
                .iter()
                .map(|&(kdf, aead)| Suite { kdf, aead })
                .collect(),
        }
    }

    #[test]
    fn round_trips_and_knows_the_supported_suites() {
        for (suites, supported) in [
            (vec![(1, 3)], true),
            (vec![(1, 1)], true),
            (vec![(2, 1), (1, 3)], true),
            (vec![(2, 1), (1, 2)], false),
        ] {
            let r = repr(&suites);
            let bytes = r.to_vec().unwrap();
            let view = KeyConfig::new_checked(&bytes[..]).unwrap();
            assert_eq!(KeyConfigRepr::parse(&view).unwrap(), r);
            assert_eq!(view.has_supported_suite(), supported, "{suites:?}");
        }
    }

    #[test]
    fn refuses_malformed_configurations() {
        let good = repr(&[(1, 1)]).to_vec().unwrap();
        assert_eq!(
            KeyConfig::new_checked(&good[..good.len() - 1]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            KeyConfig::new_checked(&good[..10]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            KeyConfig::new_checked(&[][..]).unwrap_err(),
            Error::Truncated
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            KeyConfig::new_checked(&long[..]).unwrap_err(),
            Error::TrailingBytes
        );
        let mut p256 = good.clone();
        p256[1..3].copy_from_slice(&0x0010u16.to_be_bytes());
        assert_eq!(
            KeyConfig::new_checked(&p256[..]).unwrap_err(),
            Error::Malformed
        );
        let mut no_suites = good[..field::SUITES].to_vec();
        no_suites[field::SUITES_LEN].copy_from_slice(&[0, 0]);
        assert_eq!(
            KeyConfig::new_checked(&no_suites[..]).unwrap_err(),
            Error::Malformed
        );
        let mut odd = good.clone();
        odd[field::SUITES_LEN].copy_from_slice(&[0, 3]);
        assert_eq!(
            KeyConfig::new_checked(&odd[..]).unwrap_err(),
            Error::Malformed
        );
        assert_eq!(repr(&[]).to_vec().unwrap_err(), Error::Malformed);
    }
}
