//! The issuer public key and its key id (RFC 9578 §6.5).
//!
//! The key is encoded as a DER SubjectPublicKeyInfo with the id-RSASSA-PSS OID (RFC 5756)
//! carrying its parameters: SHA-384, MGF1 with SHA-384, salt length 48. `token_key_id` is
//! SHA-256 of exactly that encoding, and the truncated id a request carries is its last byte.
//! Only the canonical encoding is accepted, so one key has one id.

use blind_rsa_signatures::{PublicKeySha384PSSDeterministic as RsaPublicKey, Signature};
use sha2::{Digest, Sha256};

use crate::token::TOKEN_INPUT_LEN;
use crate::wire::{b64url_decode_any_pad, b64url_encode};
use crate::{NID, NK};

/// SHA-256 of a key's SPKI encoding.
pub type TokenKeyId = [u8; NID];

/// Longest SPKI accepted (an RSA-2048 one is 342 bytes).
pub const MAX_SPKI_LEN: usize = 1024;

/// Why a public key was refused. Carries no peer data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a DER SPKI carrying an RSA key, or not valid base64url.
    #[error("malformed public key encoding")]
    Encoding,
    /// Not the canonical RSASSA-PSS (SHA-384, salt 48) SPKI encoding.
    #[error("public key not in the canonical RSASSA-PSS SPKI encoding")]
    NotCanonical,
    /// Not an RSA-2048 key with exponent 65537 or 3.
    #[error("unsupported RSA key size or exponent")]
    Unsupported,
}

/// An issuer's RSA-2048 public key, with its SPKI encoding and token key id.
#[derive(Clone)]
pub struct IssuerPublicKey {
    rsa: RsaPublicKey,
    spki: Vec<u8>,
    key_id: TokenKeyId,
    modulus: [u8; NK],
}

impl IssuerPublicKey {
    /// Parse the canonical SPKI encoding (as published in the issuer directory).
    pub fn from_spki(spki: &[u8]) -> Result<Self, KeyError> {
        if spki.len() > MAX_SPKI_LEN {
            return Err(KeyError::Encoding);
        }
        let rsa = RsaPublicKey::from_spki(spki).map_err(|e| match e {
            blind_rsa_signatures::Error::UnsupportedParameters => KeyError::Unsupported,
            _ => KeyError::Encoding,
        })?;
        let key = Self::from_rsa(rsa)?;
        // The crate's parser reads the key bits and skips most of the header: insist that the
        // bytes are exactly what this key encodes to, parameters included.
        if key.spki != spki {
            return Err(KeyError::NotCanonical);
        }
        Ok(key)
    }

    /// Parse base64url (padded or not) of the SPKI encoding.
    pub fn from_base64url(text: &str) -> Result<Self, KeyError> {
        Self::from_spki(&b64url_decode_any_pad(text, MAX_SPKI_LEN).map_err(|_| KeyError::Encoding)?)
    }

    /// Wrap a key from the signature crate, refusing anything but RSA-2048.
    pub(crate) fn from_rsa(rsa: RsaPublicKey) -> Result<Self, KeyError> {
        let modulus: [u8; NK] = rsa
            .components()
            .n()
            .try_into()
            .map_err(|_| KeyError::Unsupported)?;
        if modulus[0] & 0x80 == 0 {
            return Err(KeyError::Unsupported);
        }
        let spki = rsa.to_spki().map_err(|_| KeyError::Encoding)?;
        let key_id = Sha256::digest(&spki).into();
        Ok(Self {
            rsa,
            spki,
            key_id,
            modulus,
        })
    }

    /// The DER SPKI encoding with the RSASSA-PSS OID.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// Unpadded base64url of the SPKI (for `token-key=` and the directory).
    pub fn to_base64url(&self) -> String {
        b64url_encode(&self.spki)
    }

    /// SHA-256 of the SPKI encoding.
    pub fn token_key_id(&self) -> &TokenKeyId {
        &self.key_id
    }

    /// The last byte of the token key id, as carried in a token request.
    pub fn truncated_token_key_id(&self) -> u8 {
        self.key_id[NID - 1]
    }

    pub(crate) fn rsa(&self) -> &RsaPublicKey {
        &self.rsa
    }

    /// RSASSA-PSS-VERIFY (SHA-384, MGF1-SHA-384, salt 48) of `authenticator` over `token_input`.
    /// A signature value at or above the modulus is refused outright, so each valid signature
    /// has one encoding.
    pub(crate) fn verify(
        &self,
        token_input: &[u8; TOKEN_INPUT_LEN],
        authenticator: &[u8; NK],
    ) -> bool {
        if authenticator[..] >= self.modulus[..] {
            return false;
        }
        self.rsa
            .verify(&Signature(authenticator.to_vec()), None, token_input)
            .is_ok()
    }
}

impl PartialEq for IssuerPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki == other.spki
    }
}

impl Eq for IssuerPublicKey {}

impl std::fmt::Debug for IssuerPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerPublicKey")
            .field("token_key_id", &Hex(&self.key_id))
            .finish()
    }
}

struct Hex<'a>(&'a [u8]);

impl std::fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kat::vector_public_key_spki;

    #[test]
    fn vector_key_id() {
        let spki = vector_public_key_spki();
        let key = IssuerPublicKey::from_spki(&spki).unwrap();
        assert_eq!(key.spki(), &spki[..]);
        assert_eq!(
            hex::encode(key.token_key_id()),
            "ca572f8982a9ca248a3056186322d93ca147266121ddeb5632c07f1f71cd2708"
        );
        assert_eq!(key.truncated_token_key_id(), 0x08);
        assert_eq!(
            IssuerPublicKey::from_base64url(&key.to_base64url()).unwrap(),
            key
        );
    }

    #[test]
    fn refuses_non_canonical_encodings() {
        let spki = vector_public_key_spki();
        // The pre-RFC drafts' encoding, with NULL hash parameters: same key, other bytes.
        let mut with_nulls = hex::decode(concat!(
            "30820156304106092a864886f70d01010a3034a00f300d06096086480165030402020500",
            "a11c301a06092a864886f70d010108300d06096086480165030402020500a2030201300382010f00",
        ))
        .unwrap();
        with_nulls.extend_from_slice(&spki[spki.len() - 270..]);
        assert_eq!(with_nulls.len(), 4 + 0x156);
        assert!(IssuerPublicKey::from_spki(&with_nulls).is_err());
        // Salt length 32 instead of 48.
        let mut salt32 = spki.clone();
        let at = salt32
            .windows(3)
            .position(|w| w == [0x02, 0x01, 0x30])
            .unwrap();
        salt32[at + 2] = 0x20;
        assert_eq!(
            IssuerPublicKey::from_spki(&salt32),
            Err(KeyError::NotCanonical)
        );
        // A trailing byte, a truncation, garbage.
        let mut long = spki.clone();
        long.push(0);
        assert!(IssuerPublicKey::from_spki(&long).is_err());
        assert!(IssuerPublicKey::from_spki(&spki[..spki.len() - 1]).is_err());
        assert!(IssuerPublicKey::from_spki(b"not a key").is_err());
        assert!(IssuerPublicKey::from_spki(&[0x30; 2000]).is_err());
        assert_eq!(
            IssuerPublicKey::from_base64url("!!"),
            Err(KeyError::Encoding)
        );
    }
}
