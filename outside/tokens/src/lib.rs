//! Privacy Pass publicly verifiable tokens: RFC 9578 §6, token type 0x0002 (blind RSA-2048,
//! RSABSSA-SHA384-PSS-Deterministic from RFC 9474), redeemed with the RFC 9577 `PrivateToken`
//! HTTP authentication scheme.
//!
//! The issuer signs blinded token requests for accounts it rate-limits; the client unblinds the
//! signature into a token; the gateway (the redeemer) verifies the token with the issuer's public
//! key alone and refuses a second spend. The issuer never sees the token it signed, so it cannot
//! link a redemption to an issuance.
//!
//! Wire formats are parsed in one place each, smoltcp style: `parse` (checks everything, refuses
//! trailing bytes) and `emit`/`to_vec` side by side, errors as enums that carry no peer data. No
//! network code: the issuer HTTP service and the gateway sit on top of this API.
pub mod auth;
pub mod batch;
pub mod challenge;
pub mod client;
pub mod directory;
pub mod issuer;
pub mod key_entry;
pub mod keys;
pub mod rate;
pub mod request;
pub mod spent;
pub mod token;
pub mod verifier;
mod wire;

#[cfg(test)]
mod kat;

pub use auth::{
    AuthError, TokenChallengeHeader, authorization_value, parse_authorization,
    parse_www_authenticate, www_authenticate_value,
};
pub use batch::{BatchTokenRequest, BatchTokenResponse};
pub use challenge::TokenChallenge;
pub use client::{Client, ClientError, PendingToken};
pub use directory::{DirectoryError, DirectoryKey, IssuerDirectory};
pub use issuer::{IssueError, Issuer, IssuerError};
pub use key_entry::{IssuerKeyEntry, KeyEntryError, KeySchedule};
pub use keys::{IssuerPublicKey, KeyError, TokenKeyId};
pub use rate::{RateError, RateLimiter};
pub use request::{TokenRequest, TokenResponse};
pub use spent::{SpendError, SpentTokens};
pub use token::Token;
pub use verifier::{Verifier, VerifyError};
pub use wire::WireError;

/// The token type this crate speaks: Blind RSA (2048-bit), RFC 9578 §8.2.2.
pub const TOKEN_TYPE_BLIND_RSA: u16 = 0x0002;
/// Nk: length of a blinded message, blind signature and authenticator (RSA-2048 modulus bytes).
pub const NK: usize = 256;
/// Nid: length of a token key id (SHA-256).
pub const NID: usize = 32;
/// Length of the client nonce in a token.
pub const NONCE_LEN: usize = 32;
/// Length of a challenge digest (SHA-256 of the encoded challenge).
pub const DIGEST_LEN: usize = 32;
/// Most token requests accepted in one batch.
pub const MAX_BATCH: usize = 32;
