//! Batched issuance: the Generic Token Batch Issuance of draft-ietf-privacypass-batched-tokens-08
//! §6, restricted to token type 0x0002:
//!
//! ```text
//! GenericBatchTokenRequest  = generic_token_requests<V>   each: a TokenRequest (RFC 9578 §6.1,
//!                                                          self-delimiting by its token_type)
//! GenericBatchTokenResponse = optional_token_responses<V> each: 0x00 (refused)
//!                                                          or 0x01 | token_type (2) | TokenResponse
//! ```
//!
//! `<V>` is a byte length in the minimal QUIC variable-length integer encoding (draft §4.2). The
//! draft's test vectors (Appendix A.4) confirm that an entry's `token_type` is the TokenRequest's
//! own first field, not a second copy. Batches hold 1..=[`MAX_BATCH`] entries; the i-th response
//! answers the i-th request.

use crate::request::{TOKEN_REQUEST_LEN, TokenRequest, TokenResponse};
use crate::wire::{Reader, WireError, put_varint};
use crate::{MAX_BATCH, TOKEN_TYPE_BLIND_RSA};

/// Media type of a batch request body.
pub const BATCH_REQUEST_MEDIA_TYPE: &str = "application/private-token-generic-batch-request";
/// Media type of a batch response body.
pub const BATCH_RESPONSE_MEDIA_TYPE: &str = "application/private-token-generic-batch-response";

/// Encoded length of one issued entry of a batch response.
const RESPONSE_ENTRY_LEN: usize = 1 + 2 + crate::NK;

/// Check the vector length prefix and the entry count before reading entries.
fn checked_body<'a>(r: &mut Reader<'a>, max_body: usize) -> Result<Reader<'a>, WireError> {
    let len = r.varint()?;
    if len == 0 {
        return Err(WireError::EmptyBatch);
    }
    if len > max_body as u64 {
        return Err(WireError::TooLong);
    }
    let len = len as usize;
    if r.remaining() < len {
        return Err(WireError::Truncated);
    }
    if r.remaining() > len {
        return Err(WireError::TrailingBytes);
    }
    Ok(Reader::new(r.take(len)?))
}

/// Several token requests sent as one body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchTokenRequest {
    requests: Vec<TokenRequest>,
}

impl BatchTokenRequest {
    /// A batch of 1..=[`MAX_BATCH`] requests.
    pub fn new(requests: Vec<TokenRequest>) -> Result<Self, WireError> {
        if requests.is_empty() {
            return Err(WireError::EmptyBatch);
        }
        if requests.len() > MAX_BATCH {
            return Err(WireError::TooLong);
        }
        Ok(Self { requests })
    }

    /// The requests, in order.
    pub fn requests(&self) -> &[TokenRequest] {
        &self.requests
    }

    /// The requests, by value.
    pub fn into_requests(self) -> Vec<TokenRequest> {
        self.requests
    }

    /// Parse a whole body; refuses other token types, empty or oversized batches.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut outer = Reader::new(bytes);
        let mut r = checked_body(&mut outer, MAX_BATCH * TOKEN_REQUEST_LEN)?;
        let mut requests = Vec::new();
        while r.remaining() > 0 {
            requests.push(TokenRequest::read(&mut r)?);
        }
        // The length bound keeps the count at or below MAX_BATCH.
        Self::new(requests)
    }

    /// Append the encoding to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        put_varint(out, (self.requests.len() * TOKEN_REQUEST_LEN) as u64);
        for request in &self.requests {
            request.emit(out);
        }
    }

    /// The encoding as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.requests.len() * TOKEN_REQUEST_LEN);
        self.emit(&mut out);
        out
    }
}

/// The issuer's answers to a [`BatchTokenRequest`], in order; `None` where it refused an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchTokenResponse {
    responses: Vec<Option<TokenResponse>>,
}

impl BatchTokenResponse {
    /// A batch of 1..=[`MAX_BATCH`] answers.
    pub fn new(responses: Vec<Option<TokenResponse>>) -> Result<Self, WireError> {
        if responses.is_empty() {
            return Err(WireError::EmptyBatch);
        }
        if responses.len() > MAX_BATCH {
            return Err(WireError::TooLong);
        }
        Ok(Self { responses })
    }

    /// The answers, in request order.
    pub fn responses(&self) -> &[Option<TokenResponse>] {
        &self.responses
    }

    /// The answers, by value.
    pub fn into_responses(self) -> Vec<Option<TokenResponse>> {
        self.responses
    }

    /// Parse a whole body; refuses other token types and presence octets other than 0 or 1.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut outer = Reader::new(bytes);
        let mut r = checked_body(&mut outer, MAX_BATCH * RESPONSE_ENTRY_LEN)?;
        let mut responses = Vec::new();
        while r.remaining() > 0 {
            if responses.len() == MAX_BATCH {
                return Err(WireError::TooLong);
            }
            responses.push(match r.u8()? {
                0 => None,
                1 => {
                    if r.u16()? != TOKEN_TYPE_BLIND_RSA {
                        return Err(WireError::UnsupportedTokenType);
                    }
                    Some(TokenResponse {
                        blind_sig: r.array()?,
                    })
                }
                _ => return Err(WireError::Malformed),
            });
        }
        Self::new(responses)
    }

    /// Append the encoding to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let len: usize = self
            .responses
            .iter()
            .map(|r| if r.is_some() { RESPONSE_ENTRY_LEN } else { 1 })
            .sum();
        put_varint(out, len as u64);
        for response in &self.responses {
            match response {
                None => out.push(0),
                Some(response) => {
                    out.push(1);
                    out.extend_from_slice(&TOKEN_TYPE_BLIND_RSA.to_be_bytes());
                    response.emit(out);
                }
            }
        }
    }

    /// The encoding as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.emit(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NK;

    fn request(i: u8) -> TokenRequest {
        TokenRequest {
            truncated_token_key_id: i,
            blinded_msg: [i; NK],
        }
    }

    #[test]
    fn request_round_trip() {
        for n in [1usize, 2, MAX_BATCH] {
            let batch = BatchTokenRequest::new((0..n as u8).map(request).collect()).unwrap();
            let bytes = batch.to_vec();
            assert_eq!(BatchTokenRequest::parse(&bytes).unwrap(), batch);
        }
        // Two requests: a two-byte length prefix 0x4206 (518 bytes).
        let bytes = BatchTokenRequest::new(vec![request(1), request(2)])
            .unwrap()
            .to_vec();
        assert_eq!(&bytes[..5], &[0x42, 0x06, 0x00, 0x02, 0x01]);
    }

    #[test]
    fn request_refusals() {
        assert_eq!(BatchTokenRequest::new(vec![]), Err(WireError::EmptyBatch));
        let too_many = (0..=MAX_BATCH as u8).map(request).collect();
        assert_eq!(BatchTokenRequest::new(too_many), Err(WireError::TooLong));
        assert_eq!(
            BatchTokenRequest::parse(&[0x00]),
            Err(WireError::EmptyBatch)
        );
        assert_eq!(BatchTokenRequest::parse(&[]), Err(WireError::Truncated));

        let bytes = BatchTokenRequest::new(vec![request(1), request(2)])
            .unwrap()
            .to_vec();
        assert_eq!(
            BatchTokenRequest::parse(&bytes[..bytes.len() - 1]),
            Err(WireError::Truncated)
        );
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            BatchTokenRequest::parse(&long),
            Err(WireError::TrailingBytes)
        );
        // An entry cut short inside a consistent length prefix.
        let mut cut = vec![0x42, 0x05];
        cut.extend_from_slice(&bytes[2..bytes.len() - 1]);
        assert_eq!(BatchTokenRequest::parse(&cut), Err(WireError::Truncated));
        // A VOPRF entry.
        let mut voprf = bytes;
        voprf[3] = 0x01;
        assert_eq!(
            BatchTokenRequest::parse(&voprf),
            Err(WireError::UnsupportedTokenType)
        );
        // A length prefix beyond 32 requests is refused before reading.
        let mut huge = Vec::new();
        put_varint(&mut huge, ((MAX_BATCH + 1) * TOKEN_REQUEST_LEN) as u64);
        assert_eq!(BatchTokenRequest::parse(&huge), Err(WireError::TooLong));
    }

    #[test]
    fn response_round_trip() {
        let batch = BatchTokenResponse::new(vec![
            Some(TokenResponse { blind_sig: [1; NK] }),
            None,
            Some(TokenResponse { blind_sig: [2; NK] }),
        ])
        .unwrap();
        let bytes = batch.to_vec();
        assert_eq!(bytes.len(), 2 + 2 * RESPONSE_ENTRY_LEN + 1);
        assert_eq!(BatchTokenResponse::parse(&bytes).unwrap(), batch);
        let all_refused = BatchTokenResponse::new(vec![None; MAX_BATCH]).unwrap();
        assert_eq!(
            BatchTokenResponse::parse(&all_refused.to_vec()).unwrap(),
            all_refused
        );
    }

    #[test]
    fn response_refusals() {
        assert_eq!(
            BatchTokenResponse::parse(&[0x01, 0x02]),
            Err(WireError::Malformed)
        );
        assert_eq!(
            BatchTokenResponse::parse(&[0x00]),
            Err(WireError::EmptyBatch)
        );
        let mut other_type = vec![0x41, 0x03, 0x01, 0x00, 0x01];
        other_type.extend_from_slice(&[0; NK]);
        assert_eq!(
            BatchTokenResponse::parse(&other_type),
            Err(WireError::UnsupportedTokenType)
        );
        let mut too_many = vec![0x21];
        too_many.extend_from_slice(&[0; MAX_BATCH + 1]);
        assert_eq!(
            BatchTokenResponse::parse(&too_many),
            Err(WireError::TooLong)
        );
        assert_eq!(BatchTokenResponse::new(vec![]), Err(WireError::EmptyBatch));
    }
}
