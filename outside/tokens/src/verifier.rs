//! Token verification for the redeemer (RFC 9578 §6.4): with the issuer's public key only.
//!
//! A token is accepted when it answers the challenge the redeemer expects, names the expected
//! key, and its authenticator is a valid RSASSA-PSS signature (SHA-384, MGF1-SHA-384, salt 48)
//! over `token_input`. Double spending is a separate check: [`crate::SpentTokens`], after this.

use crate::TOKEN_TYPE_BLIND_RSA;
use crate::challenge::TokenChallenge;
use crate::keys::IssuerPublicKey;
use crate::token::Token;

/// Why a token was refused. Carries no peer data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The expected challenge is not for token type 0x0002 (tokens are 0x0002 by construction).
    #[error("challenge is for another token type")]
    WrongTokenType,
    /// The token answers another challenge.
    #[error("token is for another challenge")]
    ChallengeMismatch,
    /// The token was issued under another key.
    #[error("token is for another issuer key")]
    KeyMismatch,
    /// The authenticator is not a valid signature over the token input.
    #[error("invalid token signature")]
    BadSignature,
}

/// The verifier role: stateless.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verifier;

impl Verifier {
    /// Check type, challenge digest, key id, then the signature (the costly step last).
    pub fn verify(
        token: &Token,
        expected_challenge: &TokenChallenge,
        issuer_key: &IssuerPublicKey,
    ) -> Result<(), VerifyError> {
        if expected_challenge.token_type() != TOKEN_TYPE_BLIND_RSA {
            return Err(VerifyError::WrongTokenType);
        }
        Self::verify_digest(token, &expected_challenge.digest(), issuer_key)
    }

    /// [`Verifier::verify`] against a precomputed challenge digest (a redeemer that hands out
    /// one challenge can hash it once).
    pub fn verify_digest(
        token: &Token,
        expected_digest: &[u8; 32],
        issuer_key: &IssuerPublicKey,
    ) -> Result<(), VerifyError> {
        if &token.challenge_digest != expected_digest {
            return Err(VerifyError::ChallengeMismatch);
        }
        if &token.token_key_id != issuer_key.token_key_id() {
            return Err(VerifyError::KeyMismatch);
        }
        if !issuer_key.verify(&token.token_input(), &token.authenticator) {
            return Err(VerifyError::BadSignature);
        }
        Ok(())
    }
}
