//! The issuance messages of RFC 9578 §6.1–6.2 for token type 0x0002:
//!
//! ```text
//! TokenRequest  = token_type (2) = 0x0002 | truncated_token_key_id (1) | blinded_msg (Nk = 256)
//! TokenResponse = blind_sig (Nk = 256)
//! ```
//!
//! Media types `application/private-token-request` and `application/private-token-response`.

use crate::wire::{Reader, WireError};
use crate::{NK, TOKEN_TYPE_BLIND_RSA};

/// Encoded length of a [`TokenRequest`].
pub const TOKEN_REQUEST_LEN: usize = 2 + 1 + NK;
/// Encoded length of a [`TokenResponse`].
pub const TOKEN_RESPONSE_LEN: usize = NK;
/// Media type of a token request body.
pub const TOKEN_REQUEST_MEDIA_TYPE: &str = "application/private-token-request";
/// Media type of a token response body.
pub const TOKEN_RESPONSE_MEDIA_TYPE: &str = "application/private-token-response";

/// A client's blinded token request. Its token type is 0x0002 by construction: a request of any
/// other type is refused when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// Last byte of the issuer's token key id: which key the client blinded for.
    pub truncated_token_key_id: u8,
    /// The RSA-blinded, PSS-encoded token input.
    pub blinded_msg: [u8; NK],
}

impl TokenRequest {
    /// Parse one request; the whole input must be the request.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let request = Self::read(&mut r)?;
        r.finish()?;
        Ok(request)
    }

    /// Read one request from a cursor (also used inside a batch).
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        if r.u16()? != TOKEN_TYPE_BLIND_RSA {
            return Err(WireError::UnsupportedTokenType);
        }
        Ok(Self {
            truncated_token_key_id: r.u8()?,
            blinded_msg: r.array()?,
        })
    }

    /// Append the encoding to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&TOKEN_TYPE_BLIND_RSA.to_be_bytes());
        out.push(self.truncated_token_key_id);
        out.extend_from_slice(&self.blinded_msg);
    }

    /// The encoding as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TOKEN_REQUEST_LEN);
        self.emit(&mut out);
        out
    }
}

/// The issuer's blind signature over one [`TokenRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The RSA signature over the blinded message.
    pub blind_sig: [u8; NK],
}

impl TokenResponse {
    /// Parse one response; the whole input must be the response.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let blind_sig = r.array()?;
        r.finish()?;
        Ok(Self { blind_sig })
    }

    /// Append the encoding to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.blind_sig);
    }

    /// The encoding as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.blind_sig.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TokenRequest {
        let mut blinded_msg = [0u8; NK];
        for (i, b) in blinded_msg.iter_mut().enumerate() {
            *b = i as u8;
        }
        TokenRequest {
            truncated_token_key_id: 0x08,
            blinded_msg,
        }
    }

    #[test]
    fn request_round_trip() {
        let req = sample();
        let bytes = req.to_vec();
        assert_eq!(bytes.len(), TOKEN_REQUEST_LEN);
        assert_eq!(&bytes[..3], &[0x00, 0x02, 0x08]);
        assert_eq!(TokenRequest::parse(&bytes).unwrap(), req);
    }

    #[test]
    fn request_refusals() {
        let bytes = sample().to_vec();
        assert_eq!(
            TokenRequest::parse(&bytes[..TOKEN_REQUEST_LEN - 1]),
            Err(WireError::Truncated)
        );
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(TokenRequest::parse(&long), Err(WireError::TrailingBytes));
        let mut voprf = bytes;
        voprf[1] = 0x01;
        assert_eq!(
            TokenRequest::parse(&voprf),
            Err(WireError::UnsupportedTokenType)
        );
    }

    #[test]
    fn response_round_trip_and_refusals() {
        let resp = TokenResponse {
            blind_sig: [0xab; NK],
        };
        let bytes = resp.to_vec();
        assert_eq!(TokenResponse::parse(&bytes).unwrap(), resp);
        assert_eq!(TokenResponse::parse(&bytes[1..]), Err(WireError::Truncated));
        let mut long = bytes;
        long.push(0);
        assert_eq!(TokenResponse::parse(&long), Err(WireError::TrailingBytes));
    }
}
