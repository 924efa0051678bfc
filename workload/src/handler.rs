//! What the enclave does with an opened request: the seam between the session (which opens and
//! seals) and the features (`crate::features`, which compute).

/// Why a handler could not produce any answer (the session then ends with an error frame).
/// Requests it understands but refuses are answered in-band instead. No request text in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerError {
    NotText,
    TooLarge,
}

/// Turns a request into a response. Implementations keep nothing between calls.
pub trait Handler: Send + Sync {
    fn handle(&self, request: &[u8]) -> Result<Vec<u8>, HandlerError>;
}
