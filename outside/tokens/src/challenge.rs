//! The TokenChallenge of RFC 9577 §2.1, which the redeemer hands out and every token commits to:
//!
//! ```text
//! token_type (2) | issuer_name<1..2^16-1> | redemption_context<0..32> | origin_info<0..2^16-1>
//! ```
//!
//! Vector lengths are prefixed: two bytes for `issuer_name` and `origin_info`, one byte for
//! `redemption_context`, whose length is 0 or 32 (§2.1.1). The encoding is canonical, so a parsed
//! challenge re-emits to the same bytes and its digest is that of the bytes received.

use sha2::{Digest, Sha256};

use crate::wire::{Reader, WireError, b64url_decode, b64url_encode};
use crate::{DIGEST_LEN, TOKEN_TYPE_BLIND_RSA};

/// Length of a non-empty redemption context.
pub const REDEMPTION_CONTEXT_LEN: usize = 32;
/// Longest `issuer_name` or `origin_info` (a two-byte length).
pub const MAX_NAME_LEN: usize = u16::MAX as usize;
/// Longest encoded challenge.
pub const MAX_CHALLENGE_LEN: usize =
    2 + 2 + MAX_NAME_LEN + 1 + REDEMPTION_CONTEXT_LEN + 2 + MAX_NAME_LEN;

/// A token challenge. Fields are private so every value is encodable; build one with
/// [`TokenChallenge::new`] or [`TokenChallenge::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenChallenge {
    token_type: u16,
    issuer_name: Vec<u8>,
    redemption_context: Vec<u8>,
    origin_info: Vec<u8>,
}

impl TokenChallenge {
    /// A challenge for token type 0x0002. `redemption_context` binds tokens to a context (for
    /// example a session); `origin_info` is the comma-separated origin names, or empty for a
    /// cross-origin token.
    pub fn new(
        issuer_name: &[u8],
        redemption_context: Option<[u8; REDEMPTION_CONTEXT_LEN]>,
        origin_info: &[u8],
    ) -> Result<Self, WireError> {
        if issuer_name.is_empty() {
            return Err(WireError::Malformed);
        }
        if issuer_name.len() > MAX_NAME_LEN || origin_info.len() > MAX_NAME_LEN {
            return Err(WireError::TooLong);
        }
        Ok(Self {
            token_type: TOKEN_TYPE_BLIND_RSA,
            issuer_name: issuer_name.to_vec(),
            redemption_context: redemption_context.map(|c| c.to_vec()).unwrap_or_default(),
            origin_info: origin_info.to_vec(),
        })
    }

    /// Parse one encoded challenge; any token type is kept (the redeemer decides what it accepts).
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let token_type = r.u16()?;
        let issuer_len = usize::from(r.u16()?);
        if issuer_len == 0 {
            return Err(WireError::Malformed);
        }
        let issuer_name = r.take(issuer_len)?.to_vec();
        let context_len = usize::from(r.u8()?);
        if context_len != 0 && context_len != REDEMPTION_CONTEXT_LEN {
            return Err(WireError::Malformed);
        }
        let redemption_context = r.take(context_len)?.to_vec();
        let origin_len = usize::from(r.u16()?);
        let origin_info = r.take(origin_len)?.to_vec();
        r.finish()?;
        Ok(Self {
            token_type,
            issuer_name,
            redemption_context,
            origin_info,
        })
    }

    /// Append the encoding to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&self.token_type.to_be_bytes());
        // Lengths were bounded at construction, so the casts cannot truncate.
        out.extend_from_slice(&(self.issuer_name.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.issuer_name);
        out.push(self.redemption_context.len() as u8);
        out.extend_from_slice(&self.redemption_context);
        out.extend_from_slice(&(self.origin_info.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.origin_info);
    }

    /// The encoding as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.emit(&mut out);
        out
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn encoded_len(&self) -> usize {
        2 + 2
            + self.issuer_name.len()
            + 1
            + self.redemption_context.len()
            + 2
            + self.origin_info.len()
    }

    /// `challenge_digest` = SHA-256 of the encoded challenge (RFC 9578 §6.1): what a token
    /// commits to.
    pub fn digest(&self) -> [u8; DIGEST_LEN] {
        Sha256::digest(self.to_vec()).into()
    }

    /// base64url without padding (the `WWW-Authenticate` value writes it padded; see
    /// [`crate::www_authenticate_value`]).
    pub fn to_base64url(&self) -> String {
        b64url_encode(&self.to_vec())
    }

    /// Parse the base64url form (no padding), bounded by [`MAX_CHALLENGE_LEN`].
    pub fn from_base64url(text: &str) -> Result<Self, WireError> {
        Self::parse(&b64url_decode(text, MAX_CHALLENGE_LEN)?)
    }

    /// The token type asked for (0x0002 for challenges this crate builds).
    pub fn token_type(&self) -> u16 {
        self.token_type
    }

    /// The issuer's name (typically its host name).
    pub fn issuer_name(&self) -> &[u8] {
        &self.issuer_name
    }

    /// Empty, or 32 bytes.
    pub fn redemption_context(&self) -> &[u8] {
        &self.redemption_context
    }

    /// Comma-separated origin names; empty for a cross-origin token.
    pub fn origin_info(&self) -> &[u8] {
        &self.origin_info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_and_without_context() {
        for context in [None, Some([7u8; 32])] {
            let c = TokenChallenge::new(b"issuer.example", context, b"origin.example").unwrap();
            let bytes = c.to_vec();
            assert_eq!(bytes.len(), c.encoded_len());
            assert_eq!(TokenChallenge::parse(&bytes).unwrap(), c);
            assert_eq!(
                TokenChallenge::from_base64url(&c.to_base64url()).unwrap(),
                c
            );
        }
    }

    #[test]
    fn known_encoding() {
        // RFC 9578 Appendix A.2 test vector 2's challenge.
        let c = TokenChallenge::new(b"issuer.example", None, b"origin.example").unwrap();
        assert_eq!(
            hex::encode(c.to_vec()),
            "0002000e6973737565722e6578616d706c6500000e6f726967696e2e6578616d706c65"
        );
    }

    #[test]
    fn refuses_malformed() {
        let good = TokenChallenge::new(b"i", Some([1; 32]), b"o")
            .unwrap()
            .to_vec();
        for cut in 0..good.len() {
            assert_eq!(
                TokenChallenge::parse(&good[..cut]),
                Err(WireError::Truncated)
            );
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            TokenChallenge::parse(&trailing),
            Err(WireError::TrailingBytes)
        );
        // Empty issuer name.
        assert_eq!(
            TokenChallenge::parse(&[0, 2, 0, 0, 0, 0, 0]),
            Err(WireError::Malformed)
        );
        // A redemption context of 5 bytes.
        let mut bad = vec![0, 2, 0, 1, b'i', 5];
        bad.extend_from_slice(&[0; 5]);
        bad.extend_from_slice(&[0, 0]);
        assert_eq!(TokenChallenge::parse(&bad), Err(WireError::Malformed));
        assert_eq!(
            TokenChallenge::new(b"", None, b""),
            Err(WireError::Malformed)
        );
        assert_eq!(
            TokenChallenge::new(&vec![b'a'; MAX_NAME_LEN + 1], None, b""),
            Err(WireError::TooLong)
        );
    }

    #[test]
    fn keeps_other_token_types() {
        let bytes = [0, 1, 0, 1, b'i', 0, 0, 0];
        let c = TokenChallenge::parse(&bytes).unwrap();
        assert_eq!(c.token_type(), 1);
        assert_eq!(c.to_vec(), bytes);
    }
}
