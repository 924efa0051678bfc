//! The operator's gateway. It receives, through the relay, a TLS connection from a device it
//! cannot identify (the relay hides the address), checks and spends a Privacy Pass token, and
//! tunnels bytes to the enclave instance the device chose — the device's TLS session with the
//! enclave passes through untouched, so the gateway sees ciphertext only.
//!
//! `CONNECT <instance-id>:443` with `Authorization: PrivateToken token=...`:
//! - no or malformed token → 401 with a `WWW-Authenticate: PrivateToken challenge=…` to use,
//!   naming the newest logged issuer key valid now;
//! - a token that does not verify → 401; a token of a retired issuer key (its logged window is
//!   over) → 401 saying so, with the current challenge; spent before → 403 (never accepted twice,
//!   also across restarts and across gateway replicas sharing one store: spends are recorded
//!   durably before the tunnel opens, see [`crate::spent_store`]);
//! - a tunnel slot is taken only for a token that verified: a client without one holds no slot.
//! - unknown instance → 404; instance down → 502.
//!
//! `GET /.well-known/private-token-issuer-directory` (inside the relay tunnel, so devices fetch it
//! on their request path, never from their own address) answers the issuer directory of the
//! logged keys valid now, each with its `pp-issuer-key/1` entry for the device to prove.
//!
//! `GET http://<log or CDN>/...` (absolute form, inside the relay tunnel) is forwarded to the
//! transparency log or key CDN this gateway fronts ([`crate::reads`]): devices read both on their
//! request path too, so neither sees a device's address.
//!
//! One connection carries at most [`MAX_REQUESTS_PER_CONNECTION`] requests: the directory only as
//! the first, reads, and a CONNECT last (it becomes the tunnel or is refused and closed). A client
//! without a token cannot keep a connection with request after request.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use pp_tokens::directory::DIRECTORY_MEDIA_TYPE;
use pp_tokens::{
    IssuerDirectory, IssuerKeyEntry, Token, TokenChallenge, Verifier, parse_authorization,
    www_authenticate_value,
};

use crate::http::{Reply, RequestNumber, error, reply};
use crate::instances::InstanceTable;
use crate::reads::{self, ReadUpstream};

/// How long a spend record outlives its key's validity window (clock differences between
/// gateways), in seconds.
pub const SPEND_RECORD_MARGIN_SECS: u64 = 86_400;

/// Requests one gateway connection may carry (the directory first, reads of the log and the
/// CDN, one CONNECT last): what one sync of a device needs, then it opens a new tunnel.
pub const MAX_REQUESTS_PER_CONNECTION: u32 = 64;

/// How long one gateway connection takes requests, from its accept (a tunnel opened on it
/// lives on): a client without a token cannot hold one of the connection slots for minutes
/// with slow, cheap reads. One sync of a device takes a few seconds.
pub const CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30);
use crate::issuer::{DIRECTORY_PATH, unix_now};
use crate::spent_store::{Spend, SpentStore};
use crate::tunnel::{self, TunnelCounters, TunnelLimits};

/// The refusal text for a token of a retired issuer key (devices drop such tokens on seeing it).
pub const RETIRED_KEY_MESSAGE: &str =
    "the token's issuer key is retired (its logged validity window is over); fetch new tokens";

/// Why a token is refused before its spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenProblem {
    /// Its issuer key's logged window is over.
    Retired,
    /// Unknown key, not yet valid, or a bad signature.
    DoesNotVerify,
}

/// The gateway's state.
pub struct Gateway {
    /// Instance id → the enclave's addresses (attested-TLS port, one-shot port), re-read when
    /// the map file changes.
    pub instances: InstanceTable,
    /// The gateway's own RFC 9458 key, when it serves the Oblivious Gateway Resource
    /// ([`crate::ogr`]).
    pub ohttp: Option<ohttp::Server>,
    /// The issuer's logged keys (`pp-issuer-key/1` entries): tokens of a key valid now are
    /// accepted, of a retired one refused as stale.
    pub issuer_keys: Vec<IssuerKeyEntry>,
    /// The issuer's request URI, for the directory this gateway serves.
    pub issuer_request_uri: String,
    /// The one challenge this gateway accepts tokens for (cross-session, this origin).
    pub challenge: TokenChallenge,
    /// Where spends are recorded (a file of its own, or the store every replica shares).
    pub spent: SpentStore,
    pub limits: TunnelLimits,
    pub counters: Arc<TunnelCounters>,
    /// The transparency log and key CDN whose reads this gateway forwards for devices.
    pub reads: Vec<ReadUpstream>,
}

/// The instance map file: `{"instances": [{"id": "i-<16 hex>", "address": "127.0.0.1:8443"}]}`;
/// each id is derived from the instance's key configuration (`pp-gateway publish --assign-ids`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceMap {
    pub instances: Vec<InstanceAddress>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceAddress {
    pub id: String,
    /// `host:port` of the instance's attested-TLS port (the CONNECT path).
    pub address: String,
    /// `host:port` of the instance's one-shot port (the OHTTP path), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oneshot_address: Option<String>,
}

impl InstanceMap {
    /// Reads a map whose ids all have the one instance-id form (`i-` + 16 hex digits, derived
    /// from the instance's key configuration: `pp_protocol::cdn_index::instance_id`).
    pub fn load(path: &Path) -> Result<Self> {
        let map = Self::load_addresses(path)?;
        for i in &map.instances {
            anyhow::ensure!(
                pp_protocol::cdn_index::valid_id(&i.id),
                "instance id {:?} is not of the form i-<16 hex digits> (derived from the \
                 instance's key configuration; `pp-gateway publish --assign-ids` writes them)",
                i.id
            );
        }
        Ok(map)
    }

    /// Reads a map without checking its ids (for `publish --assign-ids`, which replaces them).
    pub fn load_addresses(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not an instance map", path.display()))
    }
}

/// Reads the issuer's logged key entries: one `pp-issuer-key/1` JSON per line (what
/// `pp-issuer --print-key-entries` prints), every one for `issuer_name`.
pub fn load_issuer_keys(path: &Path, issuer_name: &str) -> Result<Vec<IssuerKeyEntry>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let keys = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, line)| {
            let entry = IssuerKeyEntry::parse(line.trim().as_bytes())
                .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), n + 1))?;
            anyhow::ensure!(
                entry.issuer_name == issuer_name,
                "{} line {}: the key entry is for another issuer",
                path.display(),
                n + 1
            );
            Ok(entry)
        })
        .collect::<Result<Vec<_>>>()?;
    anyhow::ensure!(!keys.is_empty(), "{} holds no issuer key", path.display());
    Ok(keys)
}

/// The challenge a gateway named `origin` accepts tokens from `issuer_name` for: no redemption
/// context (tokens can be fetched ahead of time), this origin only.
pub fn challenge(issuer_name: &str, origin: &str) -> Result<TokenChallenge> {
    TokenChallenge::new(issuer_name.as_bytes(), None, origin.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot form the token challenge: {e:?}"))
}

impl Gateway {
    /// Serves one request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Reply {
        // A connection carries a bounded number of requests (see the module documentation): a
        // client without a token cannot keep one open with request after request.
        let n = req
            .extensions()
            .get::<RequestNumber>()
            .map_or(1, |RequestNumber(n)| *n);
        // Oblivious Gateway Resource requests are outside the per-connection cap: each one
        // that is served has spent a token, and any refused one closes the connection (see
        // `crate::ogr`), so a relay's kept-alive connection carries many of them.
        if crate::ogr::is_ogr(&req) {
            return self.oblivious(req).await;
        }
        let directory = req.method() == Method::GET && req.uri().path() == DIRECTORY_PATH;
        if n > MAX_REQUESTS_PER_CONNECTION || (directory && n > 1) {
            return self.refuse(error(
                StatusCode::TOO_MANY_REQUESTS,
                "one gateway connection carries the directory fetch (first), a bounded number of \
                 reads and one CONNECT; open a new one",
            ));
        }
        if reads::is_read(&req) {
            let reply = match reads::forward(&self.reads, &req).await {
                Ok(reply) => reply,
                // A read this gateway does not front, or a malformed one: counted and closed.
                Err(refusal) => return self.refuse(refusal),
            };
            // The last request this connection may carry: say so, so the device reconnects.
            return if n == MAX_REQUESTS_PER_CONNECTION {
                crate::http::close_after(reply)
            } else {
                reply
            };
        }
        if directory {
            return self.directory();
        }
        let target = match tunnel::connect_target(&req) {
            Ok(t) => t,
            Err(reply) => return self.refuse(reply),
        };
        let id = target.rsplit_once(':').map(|(h, _)| h).unwrap_or(&target);
        let Some(address) = self.instances.get(id).map(|i| i.address) else {
            return self.refuse(error(StatusCode::NOT_FOUND, "no such enclave instance"));
        };
        let token = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(parse_authorization);
        let token = match token {
            Some(Ok(token)) => token,
            _ => return self.refuse(self.challenge_reply("a Privacy Pass token is required")),
        };
        let not_after = match self.check_token(&token, unix_now()) {
            Ok(not_after) => not_after,
            Err(reply) => return self.refuse(reply),
        };
        let slot = match self.limits.slot() {
            Ok(s) => s,
            Err(reply) => return self.refuse(reply),
        };
        // The record outlives the key's window by a margin for clocks: after that, the key is
        // retired and its tokens are refused before the store is asked, so the store stops
        // growing with spends of retired keys.
        let expires_at = not_after.saturating_add(SPEND_RECORD_MARGIN_SECS);
        match self.spent.spend(&token, Some(expires_at)).await {
            Spend::Recorded => {}
            Spend::AlreadySpent => {
                return self.refuse(error(
                    StatusCode::FORBIDDEN,
                    "this token was spent before; fetch new tokens",
                ));
            }
            Spend::Failed(e) => {
                tracing::error!("spent-token store: {e}");
                return self.refuse(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the gateway cannot record spent tokens right now",
                ));
            }
        }
        tunnel::open(req, &address, slot, &self.limits, self.counters.clone()).await
    }

    /// The logged keys valid at `now`, newest epoch first.
    pub fn current_keys(&self, now: u64) -> Vec<&IssuerKeyEntry> {
        let mut keys: Vec<_> = self
            .issuer_keys
            .iter()
            .filter(|k| k.valid_at(now))
            .collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.epoch));
        keys
    }

    /// Checks `token` against the logged key it names: unknown or not yet valid → does not
    /// verify; retired → stale; valid → its signature must verify. Returns the key's `not_after`.
    pub(crate) fn token_status(&self, token: &Token, now: u64) -> Result<u64, TokenProblem> {
        let entry = self
            .issuer_keys
            .iter()
            .find(|k| k.token_key_id() == &token.token_key_id);
        match entry {
            Some(e) if e.retired_at(now) => Err(TokenProblem::Retired),
            Some(e) if e.valid_at(now) => Verifier::verify(token, &self.challenge, &e.key)
                .map(|()| e.not_after)
                .map_err(|_| TokenProblem::DoesNotVerify),
            _ => Err(TokenProblem::DoesNotVerify),
        }
    }

    /// [`Self::token_status`] as the CONNECT path answers it: both problems are a 401 with the
    /// current challenge.
    fn check_token(&self, token: &Token, now: u64) -> Result<u64, Reply> {
        self.token_status(token, now).map_err(|p| match p {
            TokenProblem::Retired => self.challenge_reply(RETIRED_KEY_MESSAGE),
            TokenProblem::DoesNotVerify => self.challenge_reply("the token did not verify"),
        })
    }

    /// The `WWW-Authenticate` value naming the newest logged issuer key valid now, if any.
    pub(crate) fn challenge_value(&self) -> Option<String> {
        let key = self
            .current_keys(unix_now())
            .first()
            .map(|e| e.key.clone())?;
        Some(www_authenticate_value(&self.challenge, &key, None))
    }

    fn directory(&self) -> Reply {
        let keys = self.current_keys(unix_now());
        let directory = IssuerDirectory::with_log_entries(&self.issuer_request_uri, &keys);
        reply(StatusCode::OK, DIRECTORY_MEDIA_TYPE, directory.to_json())
    }

    fn challenge_reply(&self, message: &str) -> Reply {
        let Some(key) = self.current_keys(unix_now()).first().map(|e| e.key.clone()) else {
            tracing::error!("no logged issuer key is valid now");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway has no current issuer key; try again later",
            );
        };
        let mut reply = error(StatusCode::UNAUTHORIZED, message);
        let value = www_authenticate_value(&self.challenge, &key, None);
        if let Ok(v) = value.parse() {
            reply
                .headers_mut()
                .insert(hyper::header::WWW_AUTHENTICATE, v);
        }
        reply
    }

    /// Counts a refusal and closes the connection after it: a client without a valid token
    /// keeps no gateway connection (a device opens a new tunnel to try again).
    pub(crate) fn refuse(&self, reply: Reply) -> Reply {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        crate::http::close_after(reply)
    }
}
