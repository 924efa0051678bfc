//! The token issuer (RFC 9578 §4–§6, token type 0x0002, single or in batches): knows the user's
//! account, signs *blinded* token requests for it within a rate limit, and so cannot link a token
//! to its later redemption at the gateway.
//!
//! | request | answer |
//! |---|---|
//! | `GET /.well-known/private-token-issuer-directory` | the issuer directory (RFC 9578 §4) |
//! | `POST /token-request` (Bearer, `application/private-token-request`) | one `application/private-token-response` |
//! | `POST /token-request` (Bearer, batch body) | the batch response |
//!
//! Keys follow a [`KeySchedule`]: one key per epoch, kept as `epoch-N.key` in the state folder.
//! The issuer signs with the keys valid now (two during an overlap) and makes the next epoch's
//! key ahead of time, so the operator logs it (`pp-issuer --print-key-entries`) before the
//! current key expires.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use pp_tokens::batch::{BATCH_REQUEST_MEDIA_TYPE, BATCH_RESPONSE_MEDIA_TYPE};
use pp_tokens::request::{TOKEN_REQUEST_MEDIA_TYPE, TOKEN_RESPONSE_MEDIA_TYPE};
use pp_tokens::{
    BatchTokenRequest, BatchTokenResponse, IssueError, Issuer, IssuerDirectory, IssuerKeyEntry,
    KeySchedule, RateLimiter, TokenRequest, TokenResponse,
};
use sha2::{Digest, Sha256};

use crate::http::{Reply, error, read_body, reply};

/// Where the directory lives (RFC 9578 §4).
pub const DIRECTORY_PATH: &str = "/.well-known/private-token-issuer-directory";
/// Where batches are posted.
pub const REQUEST_PATH: &str = "/token-request";

/// One epoch's key pair and its validity window.
pub struct EpochKey {
    pub epoch: u64,
    pub not_before: u64,
    pub not_after: u64,
    pub issuer: Issuer,
}

impl EpochKey {
    /// The key's `pp-issuer-key/1` log entry under `issuer_name`.
    pub fn entry(&self, issuer_name: &str) -> Result<IssuerKeyEntry> {
        IssuerKeyEntry::new(
            issuer_name,
            self.issuer.public_key().clone(),
            self.epoch,
            self.not_before,
            self.not_after,
        )
        .map_err(|e| anyhow::anyhow!("issuer key entry for epoch {}: {e}", self.epoch))
    }
}

/// Loads (or makes, mode 0600) the keys of the epochs valid at `now` and of the next epoch, from
/// `state/epoch-N.key`; oldest first.
pub fn load_epoch_keys(state: &Path, schedule: &KeySchedule, now: u64) -> Result<Vec<EpochKey>> {
    let mut epochs = schedule.valid_epochs(now);
    epochs.push(schedule.epoch_at(now) + 1);
    epochs.sort_unstable();
    epochs
        .into_iter()
        .map(|epoch| {
            let path = state.join(format!("epoch-{epoch}.key"));
            let issuer = Issuer::load_or_generate(&path)
                .with_context(|| format!("issuer key {}", path.display()))?;
            let (not_before, not_after) = schedule.window(epoch);
            Ok(EpochKey {
                epoch,
                not_before,
                not_after,
                issuer,
            })
        })
        .collect()
}

/// Unix seconds now (the log's clock function: one for every service).
pub use pp_translog::checkpoint::unix_now;

/// The issuer service's state.
pub struct IssuerService {
    /// Its epoch keys (see [`load_epoch_keys`]); only those valid at the time of a request sign.
    pub keys: Vec<EpochKey>,
    /// Account name → SHA-256 of its credential.
    pub accounts: HashMap<String, [u8; 32]>,
    pub rate: RateLimiter<String>,
}

/// Reads an accounts file: `{"accounts": {"name": "<sha256 hex of the credential>"}}`.
pub fn load_accounts(path: &Path) -> Result<HashMap<String, [u8; 32]>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        accounts: HashMap<String, String>,
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: File = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an accounts file", path.display()))?;
    file.accounts
        .into_iter()
        .map(|(name, hash)| {
            let digest = hex::decode(&hash)
                .ok()
                .and_then(|d| <[u8; 32]>::try_from(d).ok())
                .with_context(|| {
                    format!("account {name:?}: credential hash is not 64 hex digits")
                })?;
            Ok((name, digest))
        })
        .collect()
}

impl IssuerService {
    /// Serves one request.
    pub async fn handle(&self, req: Request<Incoming>) -> Reply {
        match (req.method(), req.uri().path()) {
            (&Method::GET, DIRECTORY_PATH) => {
                let keys: Vec<_> = self
                    .valid_keys(unix_now())
                    .map(|k| (k.issuer.public_key(), Some(k.not_before)))
                    .collect();
                reply(
                    StatusCode::OK,
                    "application/private-token-issuer-directory",
                    IssuerDirectory::new(REQUEST_PATH, &keys).to_json(),
                )
            }
            (&Method::POST, REQUEST_PATH) => self.issue(req).await,
            _ => error(StatusCode::NOT_FOUND, "unknown endpoint"),
        }
    }

    /// The keys valid at `now`, newest epoch first (the directory's order of preference).
    fn valid_keys(&self, now: u64) -> impl Iterator<Item = &EpochKey> {
        self.keys
            .iter()
            .rev()
            .filter(move |k| k.not_before <= now && now < k.not_after)
    }

    /// Signs one request with the valid key its truncated key id names.
    fn issue_one(&self, request: &TokenRequest, now: u64) -> Result<TokenResponse, IssueError> {
        self.valid_keys(now)
            .find(|k| {
                k.issuer.public_key().truncated_token_key_id() == request.truncated_token_key_id
            })
            .ok_or(IssueError::WrongKey)?
            .issuer
            .issue(request)
    }

    fn account_of(&self, req: &Request<Incoming>) -> Option<String> {
        let secret = req
            .headers()
            .get(hyper::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?;
        let digest: [u8; 32] = Sha256::digest(secret.trim().as_bytes()).into();
        // Comparing digests: timing can reveal only how much of a guess's hash matches.
        self.accounts
            .iter()
            .find(|(_, h)| **h == digest)
            .map(|(name, _)| name.clone())
    }

    async fn issue(&self, req: Request<Incoming>) -> Reply {
        let Some(account) = self.account_of(&req) else {
            return error(
                StatusCode::UNAUTHORIZED,
                "unknown account credential: check the credential file",
            );
        };
        let content_type = req
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let single = match content_type.as_deref() {
            Some(TOKEN_REQUEST_MEDIA_TYPE) => true,
            Some(BATCH_REQUEST_MEDIA_TYPE) => false,
            _ => {
                return error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "send one token request (application/private-token-request) or a batch",
                );
            }
        };
        let body = match read_body(req, 64 * 1024).await {
            Ok(b) => b.body,
            Err(reply) => return reply,
        };
        let requests = if single {
            match TokenRequest::parse(&body) {
                Ok(r) => vec![r],
                Err(_) => return error(StatusCode::BAD_REQUEST, "malformed token request"),
            }
        } else {
            match BatchTokenRequest::parse(&body) {
                Ok(b) => b.requests().to_vec(),
                Err(_) => {
                    return error(StatusCode::BAD_REQUEST, "malformed batch of token requests");
                }
            }
        };
        let now = unix_now();
        let count = requests.len() as u32;
        if self.rate.take(&account, count, now).is_err() {
            tracing::info!("rate limit reached for an account");
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "this account's token budget is spent for now; try again later",
            );
        }
        if single {
            return match self.issue_one(&requests[0], now) {
                Ok(response) => {
                    tracing::info!(tokens = 1, "issued");
                    reply(StatusCode::OK, TOKEN_RESPONSE_MEDIA_TYPE, response.to_vec())
                }
                Err(IssueError::WrongKey) => error(
                    StatusCode::BAD_REQUEST,
                    "the token request names no current issuer key; fetch the directory again",
                ),
                Err(IssueError::InvalidBlindedMessage) => error(
                    StatusCode::BAD_REQUEST,
                    "the blinded message is out of range",
                ),
            };
        }
        let responses = requests
            .iter()
            .map(|r| self.issue_one(r, now).ok())
            .collect();
        let response = BatchTokenResponse::new(responses).expect("same length as a valid batch");
        tracing::info!(tokens = count, "issued");
        reply(StatusCode::OK, BATCH_RESPONSE_MEDIA_TYPE, response.to_vec())
    }
}
