//! Which attested key configurations this device seals to.
//!
//! docs/protocol.md §4: X25519-HKDF-SHA256 with HKDF-SHA256 and ChaCha20-Poly1305 or AES-128-GCM.
//! The `ohttp` crate does the sealing; this check comes first because `ohttp` 0.8's
//! `ClientRequest::from_config` indexes the first *supported* suite without checking that one
//! is left, so a configuration listing only suites it does not support (say HKDF-SHA384) would
//! panic. The format itself is parsed in one place, `pp_protocol::key_config`.

use pp_protocol::key_config::{KeyConfig, X25519_PUBLIC_KEY_LEN};

/// Bytes a sealed request adds to the body: key id, KEM, KDF and AEAD ids (7), the X25519
/// encapsulated key (32), the AEAD tag (16).
pub(crate) const REQUEST_OVERHEAD: usize = 7 + X25519_PUBLIC_KEY_LEN + 16;
/// Bytes a sealed response adds at most: the response nonce, `max(Nn, Nk)` (32 for
/// ChaCha20-Poly1305), and the AEAD tag (16).
pub(crate) const RESPONSE_OVERHEAD: usize = 32 + 16;

/// True if `config` is one well-formed X25519 key configuration listing at least one suite this
/// device seals with (parsed by `pp_protocol::key_config`).
pub(crate) fn supported(config: &[u8]) -> bool {
    KeyConfig::new_checked(config).is_ok_and(|c| c.has_supported_suite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kem: u16, suites: &[(u16, u16)]) -> Vec<u8> {
        let mut c = vec![1];
        c.extend_from_slice(&kem.to_be_bytes());
        c.extend_from_slice(&[0x42; X25519_PUBLIC_KEY_LEN]);
        c.extend_from_slice(&((suites.len() * 4) as u16).to_be_bytes());
        for (kdf, aead) in suites {
            c.extend_from_slice(&kdf.to_be_bytes());
            c.extend_from_slice(&aead.to_be_bytes());
        }
        c
    }

    #[test]
    fn accepts_the_documented_suites() {
        assert!(supported(&config(0x20, &[(1, 3)])));
        assert!(supported(&config(0x20, &[(1, 1)])));
        assert!(supported(&config(0x20, &[(2, 1), (1, 3)])));
    }

    #[test]
    fn refuses_everything_else() {
        assert!(!supported(&config(0x10, &[(1, 1)])), "P-256");
        assert!(
            !supported(&config(0x20, &[(2, 1), (1, 2)])),
            "no supported suite"
        );
        assert!(!supported(&config(0x20, &[])), "no suite");
        let good = config(0x20, &[(1, 1)]);
        assert!(!supported(&good[..good.len() - 1]), "truncated");
        let mut long = good.clone();
        long.push(0);
        assert!(!supported(&long), "trailing byte");
        assert!(!supported(&[]));
        assert!(!supported(&good[..10]));
    }
}
