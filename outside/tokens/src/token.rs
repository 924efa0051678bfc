//! The token of RFC 9577 §2.2, as RFC 9578 §6.3 builds it for token type 0x0002:
//!
//! ```text
//! token_type (2) = 0x0002 | nonce (32) | challenge_digest (32) | token_key_id (32) | authenticator (Nk = 256)
//! ```
//!
//! The authenticator is an RSASSA-PSS signature (SHA-384, MGF1-SHA-384, 48-byte salt) over the
//! first 98 bytes, `token_input`.

use crate::wire::{Reader, WireError, b64url_decode, b64url_encode};
use crate::{DIGEST_LEN, NID, NK, NONCE_LEN, TOKEN_TYPE_BLIND_RSA};

/// Length of the signed part of a token.
pub const TOKEN_INPUT_LEN: usize = 2 + NONCE_LEN + DIGEST_LEN + NID;
/// Encoded length of a token.
pub const TOKEN_LEN: usize = TOKEN_INPUT_LEN + NK;
/// Length of a token in unpadded base64url (354 bytes encode without padding).
pub const TOKEN_BASE64_LEN: usize = TOKEN_LEN / 3 * 4;

/// A finalized token. Its type is 0x0002 by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The client's fresh random nonce: what makes each token unique.
    pub nonce: [u8; NONCE_LEN],
    /// SHA-256 of the challenge the token answers.
    pub challenge_digest: [u8; DIGEST_LEN],
    /// SHA-256 of the issuer key's SPKI encoding.
    pub token_key_id: [u8; NID],
    /// The issuer's (unblinded) signature over [`Token::token_input`].
    pub authenticator: [u8; NK],
}

impl Token {
    /// Parse one token; the whole input must be the token, of type 0x0002.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        if r.u16()? != TOKEN_TYPE_BLIND_RSA {
            return Err(WireError::UnsupportedTokenType);
        }
        let token = Self {
            nonce: r.array()?,
            challenge_digest: r.array()?,
            token_key_id: r.array()?,
            authenticator: r.array()?,
        };
        r.finish()?;
        Ok(token)
    }

    /// Append the encoding to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.token_input());
        out.extend_from_slice(&self.authenticator);
    }

    /// The encoding as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TOKEN_LEN);
        self.emit(&mut out);
        out
    }

    /// `token_input` = token_type | nonce | challenge_digest | token_key_id: the signed message.
    pub fn token_input(&self) -> [u8; TOKEN_INPUT_LEN] {
        token_input(&self.nonce, &self.challenge_digest, &self.token_key_id)
    }

    /// Unpadded base64url, the form the `Authorization` header carries.
    pub fn to_base64url(&self) -> String {
        b64url_encode(&self.to_vec())
    }

    /// Parse the unpadded base64url form.
    pub fn from_base64url(text: &str) -> Result<Self, WireError> {
        Self::parse(&b64url_decode(text, TOKEN_LEN)?)
    }
}

/// Assemble `token_input` for type 0x0002 (RFC 9578 §6.1).
pub(crate) fn token_input(
    nonce: &[u8; NONCE_LEN],
    challenge_digest: &[u8; DIGEST_LEN],
    token_key_id: &[u8; NID],
) -> [u8; TOKEN_INPUT_LEN] {
    let mut out = [0u8; TOKEN_INPUT_LEN];
    out[..2].copy_from_slice(&TOKEN_TYPE_BLIND_RSA.to_be_bytes());
    out[2..34].copy_from_slice(nonce);
    out[34..66].copy_from_slice(challenge_digest);
    out[66..].copy_from_slice(token_key_id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Token {
        Token {
            nonce: [1; NONCE_LEN],
            challenge_digest: [2; DIGEST_LEN],
            token_key_id: [3; NID],
            authenticator: [4; NK],
        }
    }

    #[test]
    fn round_trip() {
        let token = sample();
        let bytes = token.to_vec();
        assert_eq!(bytes.len(), TOKEN_LEN);
        assert_eq!(&bytes[..3], &[0x00, 0x02, 0x01]);
        assert_eq!(&bytes[..TOKEN_INPUT_LEN], &token.token_input());
        assert_eq!(Token::parse(&bytes).unwrap(), token);
        let text = token.to_base64url();
        assert_eq!(text.len(), TOKEN_BASE64_LEN);
        assert_eq!(Token::from_base64url(&text).unwrap(), token);
    }

    #[test]
    fn refusals() {
        let bytes = sample().to_vec();
        assert_eq!(
            Token::parse(&bytes[..TOKEN_LEN - 1]),
            Err(WireError::Truncated)
        );
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(Token::parse(&long), Err(WireError::TrailingBytes));
        let mut voprf = bytes;
        voprf[1] = 1;
        assert_eq!(Token::parse(&voprf), Err(WireError::UnsupportedTokenType));
        let text = sample().to_base64url();
        assert_eq!(
            Token::from_base64url(&format!("!{}", &text[1..])),
            Err(WireError::BadBase64)
        );
        assert_eq!(
            Token::from_base64url(&format!("+{}", &text[1..])),
            Err(WireError::BadBase64)
        );
        assert_eq!(
            Token::from_base64url(&format!("{text}=")),
            Err(WireError::TooLong)
        );
        assert_eq!(
            Token::from_base64url(&format!("{text}AAAA")),
            Err(WireError::TooLong)
        );
        // Three bytes short: a well-formed base64url string of a truncated token.
        assert_eq!(
            Token::from_base64url(&text[..text.len() - 4]),
            Err(WireError::Truncated)
        );
    }
}
