//! The gateway's own RFC 9458 key (the outer layer of the one-shot path): made once by
//! `pp-gateway ohttp-keygen`, published in the logged CDN index (`gateway_key_config`), loaded by
//! `pp-gateway serve --ohttp-key`.
//!
//! `ohttp-key.json` holds the key id and the secret: 32 random bytes from which the X25519 key
//! pair is derived with HPKE's `DeriveKeyPair` (RFC 9180 §7.1.3; the `ohttp` crate builds a
//! server key configuration from such input, not from a raw scalar). `ohttp-keys` holds the
//! public key configuration, single-configuration encoding (RFC 9458 §3).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use ohttp::hpke::{Aead, Kdf, Kem};
use ohttp::{KeyConfig, SymmetricSuite};

/// The secret key file's name in the keygen folder.
pub const SECRET_FILE: &str = "ohttp-key.json";
/// The public key configuration's file name in the keygen folder.
pub const PUBLIC_FILE: &str = "ohttp-keys";
/// Length of the secret (the `DeriveKeyPair` input).
pub const SECRET_LEN: usize = 32;

/// The secret key file's content.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretFile {
    /// The RFC 9458 key id.
    key_id: u8,
    /// Lowercase hex of the 32-byte `DeriveKeyPair` input of the X25519 key pair.
    secret: String,
}

/// The suites the gateway offers: X25519-HKDF-SHA256 with HKDF-SHA256 and AES-128-GCM or
/// ChaCha20-Poly1305 (the ones devices seal with, docs/protocol.md §4).
fn config(key_id: u8, secret: &[u8]) -> Result<KeyConfig> {
    KeyConfig::derive(
        key_id,
        Kem::X25519Sha256,
        vec![
            SymmetricSuite::new(Kdf::HkdfSha256, Aead::Aes128Gcm),
            SymmetricSuite::new(Kdf::HkdfSha256, Aead::ChaCha20Poly1305),
        ],
        secret,
    )
    .map_err(|e| anyhow::anyhow!("cannot derive the gateway's OHTTP key: {e}"))
}

/// Makes a new key in `dir`: `ohttp-key.json` (mode 0600, created only if absent) and
/// `ohttp-keys`. Refuses, changing nothing, if the secret file exists. Returns the encoded
/// public key configuration.
pub fn keygen(dir: &Path) -> Result<Vec<u8>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(SECRET_FILE);
    anyhow::ensure!(
        !path.exists(),
        "{} exists; refusing to replace the gateway's OHTTP key (devices seal to the published \
         one)",
        path.display()
    );
    let mut secret = [0u8; SECRET_LEN];
    let mut key_id = [0u8; 1];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    getrandom::fill(&mut key_id).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let public = config(key_id[0], &secret)?
        .encode()
        .map_err(|e| anyhow::anyhow!("cannot encode the key configuration: {e}"))?;
    let file = SecretFile {
        key_id: key_id[0],
        secret: hex::encode(secret),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    out.write_all(&serde_json::to_vec(&file)?)?;
    out.sync_all()?;
    std::fs::write(dir.join(PUBLIC_FILE), &public)
        .with_context(|| format!("writing {}", dir.join(PUBLIC_FILE).display()))?;
    Ok(public)
}

/// Loads the key from `ohttp-key.json` as an RFC 9458 server.
pub fn load(path: &Path) -> Result<ohttp::Server> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: SecretFile = serde_json::from_str(&text)
        .map_err(|_| anyhow::anyhow!("{} is not a gateway OHTTP key file", path.display()))?;
    let secret = hex::decode(&file.secret)
        .ok()
        .filter(|s| s.len() == SECRET_LEN)
        .with_context(|| {
            format!(
                "{}: the secret is not {SECRET_LEN} hex bytes",
                path.display()
            )
        })?;
    ohttp::Server::new(config(file.key_id, &secret)?)
        .map_err(|e| anyhow::anyhow!("cannot start the OHTTP server: {e}"))
}

/// Reads the public key configuration written by [`keygen`] and checks that it is one supported
/// configuration; returns it as the lowercase hex the CDN index carries.
pub fn public_hex(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let ok = pp_protocol::key_config::KeyConfig::new_checked(&bytes[..])
        .is_ok_and(|c| c.has_supported_suite());
    anyhow::ensure!(
        ok,
        "{} is not one supported RFC 9458 key configuration",
        path.display()
    );
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_loadable_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let public = keygen(dir.path()).unwrap();
        let server = load(&dir.path().join(SECRET_FILE)).unwrap();
        assert_eq!(server.config().encode().unwrap(), public);
        assert_eq!(
            public_hex(&dir.path().join(PUBLIC_FILE)).unwrap(),
            hex::encode(&public)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A second keygen refuses and changes nothing.
        let before = std::fs::read(dir.path().join(SECRET_FILE)).unwrap();
        assert!(keygen(dir.path()).is_err());
        assert_eq!(std::fs::read(dir.path().join(SECRET_FILE)).unwrap(), before);
        assert_eq!(std::fs::read(dir.path().join(PUBLIC_FILE)).unwrap(), public);
    }
}
