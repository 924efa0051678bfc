//! Sealing without a session: the one-shot path (docs/protocol.md, one-shot mode). The device
//! seals a padded body to an instance's *logged* key configuration (from its publication
//! evidence, verified by [`crate::Publication::verify`]) and opens the sealed response, exactly as
//! [`crate::Session::request`] does inside a session; the same code does both ([`seal`],
//! [`Sealed::open`]). [`encapsulate`] is the unpadded RFC 9458 encapsulation of the outer layer
//! (to the gateway's key configuration), whose payload is a BHTTP message of fixed shape.
//!
//! No freshness comes from here: the caller must check that the key configuration is one the
//! instance still holds (the device refuses a logged index older than the key period plus slack).

use pp_protocol::padding;
use zeroize::Zeroizing;

use crate::{ClientError, MAX_REQUEST, MAX_RESPONSE, key_config};

/// A sealed request and the state that opens its response.
pub struct Sealed {
    encapsulated: Zeroizing<Vec<u8>>,
    opener: ohttp::ClientResponse,
}

impl core::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sealed")
            .field("len", &self.encapsulated.len())
            .finish_non_exhaustive()
    }
}

/// Pads `body` to its size bucket and seals it to `key_config` (an RFC 9458 key configuration
/// this device seals to: X25519-HKDF-SHA256, HKDF-SHA256, AES-128-GCM or ChaCha20-Poly1305).
/// Every call draws a fresh encapsulated key, so two seals of one body differ.
pub fn seal(key_config: &[u8], body: &[u8]) -> Result<Sealed, ClientError> {
    if body.len() > MAX_REQUEST {
        return Err(ClientError::RequestTooLarge);
    }
    let padded = Zeroizing::new(padding::pad(body).map_err(|_| ClientError::RequestTooLarge)?);
    encapsulate(key_config, &padded)
}

/// RFC 9458 encapsulation of `message` as is (no padding) to `key_config`: for the outer layer
/// to the gateway. Refuses a configuration this device does not seal to before the `ohttp`
/// crate sees it (see `key_config`).
pub fn encapsulate(key_config: &[u8], message: &[u8]) -> Result<Sealed, ClientError> {
    if !key_config::supported(key_config) {
        return Err(ClientError::KeyConfigUnsupported);
    }
    let sealer = ohttp::ClientRequest::from_encoded_config(key_config)
        .map_err(|_| ClientError::KeyConfigUnsupported)?;
    let (sealed, opener) = sealer.encapsulate(message).map_err(|_| ClientError::Seal)?;
    Ok(Sealed {
        encapsulated: Zeroizing::new(sealed),
        opener,
    })
}

/// The largest sealed response of any response body (up to [`MAX_RESPONSE`]).
pub const MAX_SEALED_RESPONSE: usize = padding::MAX_PADDED + key_config::RESPONSE_OVERHEAD;

/// The largest sealed response [`Sealed::open`] reads for responses of at most `max_response`
/// bytes (capped at [`MAX_RESPONSE`]): its size bucket plus the sealing overhead.
pub fn max_sealed_response(max_response: usize) -> usize {
    let max_response = max_response.min(MAX_RESPONSE);
    padding::bucket(max_response).unwrap_or(padding::MAX_PADDED) + key_config::RESPONSE_OVERHEAD
}

impl Sealed {
    /// The encapsulated request (RFC 9458 §4.3: key id, suite, `enc`, ciphertext).
    pub fn bytes(&self) -> &[u8] {
        &self.encapsulated
    }

    /// Opens the sealed response to this request and unpads it: refused if longer than the
    /// bound for `max_response` ([`max_sealed_response`]), not sealed for this request or
    /// altered ([`ClientError::Open`]), padded wrongly ([`ClientError::Padding`]) or, once
    /// opened, longer than `max_response` ([`ClientError::ResponseTooLarge`]).
    pub fn open(self, sealed_response: &[u8], max_response: usize) -> Result<Vec<u8>, ClientError> {
        if sealed_response.len() > max_sealed_response(max_response) {
            return Err(ClientError::ResponseTooLarge);
        }
        let padded = self.open_raw(sealed_response)?;
        let response = padding::unpad(&padded).map_err(|_| ClientError::Padding)?;
        if response.len() > max_response.min(MAX_RESPONSE) {
            return Err(ClientError::ResponseTooLarge);
        }
        Ok(response.to_vec())
    }

    /// Opens the encapsulated response as is (no padding): for the outer layer. The caller
    /// bounds its length.
    pub fn open_raw(self, encapsulated: &[u8]) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        self.opener
            .decapsulate(encapsulated)
            .map(Zeroizing::new)
            .map_err(|_| ClientError::Open)
    }
}
