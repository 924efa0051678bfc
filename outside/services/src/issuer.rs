//! The token issuer (RFC 9578 §4–§6, token type 0x0002 in batches): knows the user's account,
//! signs *blinded* token requests for it within a rate limit, and so cannot link a token to its
//! later redemption at the gateway.
//!
//! | request | answer |
//! |---|---|
//! | `GET /.well-known/private-token-issuer-directory` | the issuer directory (RFC 9578 §4) |
//! | `POST /token-request` (Bearer account credential, batch body) | the batch response |

use std::collections::HashMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use pp_tokens::batch::{BATCH_REQUEST_MEDIA_TYPE, BATCH_RESPONSE_MEDIA_TYPE};
use pp_tokens::{BatchTokenRequest, Issuer, IssuerDirectory, RateLimiter};
use sha2::{Digest, Sha256};

use crate::http::{Reply, error, read_body, reply};

/// Where the directory lives (RFC 9578 §4).
pub const DIRECTORY_PATH: &str = "/.well-known/private-token-issuer-directory";
/// Where batches are posted.
pub const REQUEST_PATH: &str = "/token-request";

/// The issuer service's state.
pub struct IssuerService {
    pub issuer: Issuer,
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
            (&Method::GET, DIRECTORY_PATH) => reply(
                StatusCode::OK,
                "application/private-token-issuer-directory",
                IssuerDirectory::new(REQUEST_PATH, &[(self.issuer.public_key(), None)]).to_json(),
            ),
            (&Method::POST, REQUEST_PATH) => self.issue(req).await,
            _ => error(StatusCode::NOT_FOUND, "unknown endpoint"),
        }
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
            .and_then(|v| v.to_str().ok());
        if content_type != Some(BATCH_REQUEST_MEDIA_TYPE) {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send a batch of token requests",
            );
        }
        let body = match read_body(req, 64 * 1024).await {
            Ok(b) => b.body,
            Err(reply) => return reply,
        };
        let Ok(batch) = BatchTokenRequest::parse(&body) else {
            return error(StatusCode::BAD_REQUEST, "malformed batch of token requests");
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let count = batch.requests().len() as u32;
        if self.rate.take(&account, count, now).is_err() {
            tracing::info!("rate limit reached for an account");
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "this account's token budget is spent for now; try again later",
            );
        }
        let response = self.issuer.issue_batch(&batch);
        tracing::info!(tokens = count, "issued");
        reply(StatusCode::OK, BATCH_RESPONSE_MEDIA_TYPE, response.to_vec())
    }
}
