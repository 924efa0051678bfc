//! The issuer role (RFC 9578 §6.2): holds the RSA-2048 secret key and blind-signs token requests.
//!
//! The issuer sees the truncated key id and a blinded message that is uniformly random to it: it
//! learns nothing of the token it signs. What it must decide on its own is *whether* to sign
//! (authentication, [`crate::RateLimiter`]): that happens before [`Issuer::issue`].

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use blind_rsa_signatures::{
    DefaultRng, KeyPairSha384PSSDeterministic as RsaKeyPair,
    SecretKeySha384PSSDeterministic as RsaSecretKey,
};

use crate::batch::{BatchTokenRequest, BatchTokenResponse};
use crate::keys::{IssuerPublicKey, KeyError};
use crate::request::{TokenRequest, TokenResponse};
use crate::{NK, TOKEN_TYPE_BLIND_RSA};

/// RSA modulus size of type 0x0002 keys.
pub const MODULUS_BITS: usize = 2048;
/// Largest key file read (a PKCS#8 RSA-2048 key is about 1.2 KiB).
const MAX_KEY_FILE: u64 = 16 * 1024;

/// Why an issuer key could not be made, loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// Reading or writing the key file failed.
    #[error("issuer key file I/O")]
    Io(#[from] std::io::Error),
    /// Not a PKCS#8 (or PKCS#1) DER RSA private key, or an inconsistent one.
    #[error("malformed issuer secret key")]
    Encoding,
    /// Not RSA-2048 with exponent 65537 or 3.
    #[error("issuer key is not an RSA-2048 key")]
    Unsupported,
    /// The key file exceeds 16 KiB.
    #[error("issuer key file too large")]
    TooLarge,
    /// The random source or the prime search failed.
    #[error("key generation failed")]
    Generation,
}

impl From<KeyError> for IssuerError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Unsupported => Self::Unsupported,
            KeyError::Encoding | KeyError::NotCanonical => Self::Encoding,
        }
    }
}

/// Why one token request was refused. Carries no peer data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The request names another key (its truncated key id is not this key's).
    #[error("request is for another issuer key")]
    WrongKey,
    /// The blinded message is not a value below the modulus.
    #[error("blinded message out of range")]
    InvalidBlindedMessage,
}

/// An issuer key pair. Requests of a token type other than 0x0002 never reach it: they are
/// refused when parsed ([`TokenRequest::parse`]).
pub struct Issuer {
    secret: RsaSecretKey,
    public: IssuerPublicKey,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// A fresh RSA-2048 key from the operating system's random source.
    pub fn generate() -> Result<Self, IssuerError> {
        let pair = RsaKeyPair::generate(&mut DefaultRng, MODULUS_BITS)
            .map_err(|_| IssuerError::Generation)?;
        Self::from_secret(pair.sk)
    }

    /// Load a PKCS#8 DER private key; it must be RSA-2048.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, IssuerError> {
        let secret = RsaSecretKey::from_der(der).map_err(|_| IssuerError::Encoding)?;
        Self::from_secret(secret)
    }

    /// The PKCS#8 DER encoding of the private key. Secret: store it 0600.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, IssuerError> {
        self.secret.to_der().map_err(|_| IssuerError::Encoding)
    }

    /// Load the key at `path`, or generate one and store it there (mode 0600, written to a
    /// temporary file, synced, then renamed into place) if the file does not exist.
    pub fn load_or_generate(path: &Path) -> Result<Self, IssuerError> {
        match File::open(path) {
            Ok(file) => {
                let mut der = Vec::new();
                file.take(MAX_KEY_FILE + 1).read_to_end(&mut der)?;
                if der.len() as u64 > MAX_KEY_FILE {
                    return Err(IssuerError::TooLarge);
                }
                Self::from_pkcs8_der(&der)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let issuer = Self::generate()?;
                issuer.save(path)?;
                Ok(issuer)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Write the key to `path` atomically, owner-only.
    pub fn save(&self, path: &Path) -> Result<(), IssuerError> {
        let der = self.to_pkcs8_der()?;
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        // A leftover from an interrupted save would keep its old mode: start afresh.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&der)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    pub(crate) fn from_secret(secret: RsaSecretKey) -> Result<Self, IssuerError> {
        let public = secret.public_key().map_err(|_| IssuerError::Unsupported)?;
        let public = IssuerPublicKey::from_rsa(public)?;
        Ok(Self { secret, public })
    }

    /// The public key clients blind for and redeemers verify with.
    pub fn public_key(&self) -> &IssuerPublicKey {
        &self.public
    }

    /// Blind-sign one request (RFC 9474 §4.3 BlindSign, which checks its own result).
    pub fn issue(&self, request: &TokenRequest) -> Result<TokenResponse, IssueError> {
        debug_assert_eq!(TOKEN_TYPE_BLIND_RSA, 0x0002);
        if request.truncated_token_key_id != self.public.truncated_token_key_id() {
            return Err(IssueError::WrongKey);
        }
        let sig = self
            .secret
            .blind_sign(request.blinded_msg)
            .map_err(|_| IssueError::InvalidBlindedMessage)?;
        let blind_sig: [u8; NK] = sig
            .0
            .as_slice()
            .try_into()
            .map_err(|_| IssueError::InvalidBlindedMessage)?;
        Ok(TokenResponse { blind_sig })
    }

    /// Sign every entry of a batch; an entry refused by [`Issuer::issue`] answers `None`.
    pub fn issue_batch(&self, batch: &BatchTokenRequest) -> BatchTokenResponse {
        let responses = batch
            .requests()
            .iter()
            .map(|r| self.issue(r).ok())
            .collect();
        BatchTokenResponse::new(responses).expect("same length as a valid batch")
    }
}
