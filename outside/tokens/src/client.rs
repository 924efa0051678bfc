//! The client side of issuance (RFC 9578 §6.1, §6.3): blind a fresh token input for the issuer,
//! then unblind and check the issuer's signature into a [`Token`].
//!
//! `token_input = 0x0002 | nonce | SHA-256(challenge) | token_key_id`, blinded with
//! RSABSSA-SHA384-PSS-Deterministic (RFC 9474 §5: no message randomizer, salt 48). The issuer
//! sees only the blinded message, which is uniformly random to it.

use blind_rsa_signatures::reexports::rand::{self, CryptoRng};
use blind_rsa_signatures::{BlindSignature, BlindingResult, DefaultRng};

use crate::batch::{BatchTokenRequest, BatchTokenResponse};
use crate::challenge::TokenChallenge;
use crate::keys::IssuerPublicKey;
use crate::request::{TokenRequest, TokenResponse};
use crate::token::{TOKEN_INPUT_LEN, Token, token_input};
use crate::{DIGEST_LEN, MAX_BATCH, NK, NONCE_LEN, TOKEN_TYPE_BLIND_RSA};

/// Why the client could not make a request or a token. Carries no peer data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The challenge asks for a token type other than 0x0002.
    #[error("challenge is for another token type")]
    WrongTokenType,
    /// Blinding failed (a key the signature scheme cannot use).
    #[error("blinding failed")]
    Blinding,
    /// The issuer's response does not unblind to a valid signature: refuse it.
    #[error("issuer response does not verify")]
    InvalidResponse,
    /// A batch of zero or more than 32 tokens was asked for.
    #[error("batch size out of range")]
    BatchSize,
    /// A batch response with a different number of entries than the request.
    #[error("batch response does not match the request")]
    BatchMismatch,
}

/// What the client keeps between request and response: the blinding secret and the token input.
/// Use it once; it is deliberately not `Clone`.
pub struct PendingToken {
    key: IssuerPublicKey,
    nonce: [u8; NONCE_LEN],
    challenge_digest: [u8; DIGEST_LEN],
    blinding: BlindingResult,
}

impl std::fmt::Debug for PendingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingToken").finish_non_exhaustive()
    }
}

impl PendingToken {
    fn token_input(&self) -> [u8; TOKEN_INPUT_LEN] {
        token_input(&self.nonce, &self.challenge_digest, self.key.token_key_id())
    }
}

/// The client role: stateless; what a request needs later lives in its [`PendingToken`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Client;

impl Client {
    /// Make a token request for `challenge` under `issuer_key`, with a fresh random nonce.
    pub fn prepare(
        challenge: &TokenChallenge,
        issuer_key: &IssuerPublicKey,
    ) -> Result<(TokenRequest, PendingToken), ClientError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce[..]);
        prepare_with(challenge, issuer_key, nonce, &mut DefaultRng)
    }

    /// Unblind the issuer's response into a token, verifying the signature (RFC 9474 §4.4).
    pub fn finalize(pending: PendingToken, response: &TokenResponse) -> Result<Token, ClientError> {
        let input = pending.token_input();
        let signature = pending
            .key
            .rsa()
            .finalize(
                &BlindSignature(response.blind_sig.to_vec()),
                &pending.blinding,
                input,
            )
            .map_err(|_| ClientError::InvalidResponse)?;
        let authenticator: [u8; NK] = signature
            .0
            .as_slice()
            .try_into()
            .map_err(|_| ClientError::InvalidResponse)?;
        // The crate verified the signature; check the encoding rule the verifier applies too.
        if !pending.key.verify(&input, &authenticator) {
            return Err(ClientError::InvalidResponse);
        }
        Ok(Token {
            nonce: pending.nonce,
            challenge_digest: pending.challenge_digest,
            token_key_id: *pending.key.token_key_id(),
            authenticator,
        })
    }

    /// Make `count` (1..=32) token requests for one challenge, each with its own nonce.
    pub fn prepare_batch(
        challenge: &TokenChallenge,
        issuer_key: &IssuerPublicKey,
        count: usize,
    ) -> Result<(BatchTokenRequest, Vec<PendingToken>), ClientError> {
        if count == 0 || count > MAX_BATCH {
            return Err(ClientError::BatchSize);
        }
        let (requests, pending) = (0..count)
            .map(|_| Self::prepare(challenge, issuer_key))
            .collect::<Result<(Vec<_>, Vec<_>), _>>()?;
        let batch = BatchTokenRequest::new(requests).map_err(|_| ClientError::BatchSize)?;
        Ok((batch, pending))
    }

    /// Finalize a batch: `None` where the issuer refused an entry. Any entry that does not verify
    /// fails the whole batch (the issuer is misbehaving).
    pub fn finalize_batch(
        pending: Vec<PendingToken>,
        response: &BatchTokenResponse,
    ) -> Result<Vec<Option<Token>>, ClientError> {
        if pending.len() != response.responses().len() {
            return Err(ClientError::BatchMismatch);
        }
        pending
            .into_iter()
            .zip(response.responses())
            .map(|(p, r)| r.as_ref().map(|r| Self::finalize(p, r)).transpose())
            .collect()
    }
}

/// [`Client::prepare`] with the nonce and blinding randomness supplied: the known-answer tests
/// replay RFC 9578's salt and blind through `rng`.
pub(crate) fn prepare_with<R: CryptoRng + ?Sized>(
    challenge: &TokenChallenge,
    issuer_key: &IssuerPublicKey,
    nonce: [u8; NONCE_LEN],
    rng: &mut R,
) -> Result<(TokenRequest, PendingToken), ClientError> {
    if challenge.token_type() != TOKEN_TYPE_BLIND_RSA {
        return Err(ClientError::WrongTokenType);
    }
    let challenge_digest = challenge.digest();
    let input = token_input(&nonce, &challenge_digest, issuer_key.token_key_id());
    let blinding = issuer_key
        .rsa()
        .blind(rng, input)
        .map_err(|_| ClientError::Blinding)?;
    let blinded_msg = blinding
        .blind_message
        .0
        .as_slice()
        .try_into()
        .map_err(|_| ClientError::Blinding)?;
    let request = TokenRequest {
        truncated_token_key_id: issuer_key.truncated_token_key_id(),
        blinded_msg,
    };
    let pending = PendingToken {
        key: issuer_key.clone(),
        nonce,
        challenge_digest,
        blinding,
    };
    Ok((request, pending))
}
