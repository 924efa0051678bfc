//! The enclave's HPKE key, made at start from the platform's randomness and published as an
//! RFC 9458 key configuration. Requests are sealed to it; it never leaves the enclave.

use ohttp::hpke::{Aead, Kdf, Kem};
use ohttp::{KeyConfig, Server, SymmetricSuite};

/// Key id in the configuration (one key per boot).
pub const KEY_ID: u8 = 1;

/// The HPKE server and the encoded key configuration the evidence binds.
pub struct HpkeIdentity {
    pub server: Server,
    pub key_config: Vec<u8>,
}

/// X25519-HKDF-SHA256 with HKDF-SHA256 and ChaCha20-Poly1305 or AES-128-GCM.
pub fn fresh() -> Result<HpkeIdentity, &'static str> {
    let suites = vec![
        SymmetricSuite::new(Kdf::HkdfSha256, Aead::ChaCha20Poly1305),
        SymmetricSuite::new(Kdf::HkdfSha256, Aead::Aes128Gcm),
    ];
    let config = KeyConfig::new(KEY_ID, Kem::X25519Sha256, suites)
        .map_err(|_| "HPKE key generation failed")?;
    let key_config = config
        .encode()
        .map_err(|_| "HPKE key configuration encoding failed")?;
    let server = Server::new(config).map_err(|_| "HPKE server setup failed")?;
    Ok(HpkeIdentity { server, key_config })
}
