//! The operator's gateway. It receives, through the relay, a TLS connection from a device it
//! cannot identify (the relay hides the address), checks and spends a Privacy Pass token, and
//! tunnels bytes to the enclave instance the device chose — the device's TLS session with the
//! enclave passes through untouched, so the gateway sees ciphertext only.
//!
//! `CONNECT <instance-id>:443` with `Authorization: PrivateToken token=...`:
//! - no or malformed token → 401 with a `WWW-Authenticate: PrivateToken challenge=…` to use;
//! - a token that does not verify → 401; spent before → 403 (never accepted twice, also across
//!   restarts and across gateway replicas sharing one store: spends are recorded durably before
//!   the tunnel opens, see [`crate::spent_store`]);
//! - a tunnel slot is taken only for a token that verified: a client without one holds no slot.
//! - unknown instance → 404; instance down → 502.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use pp_tokens::{
    IssuerPublicKey, TokenChallenge, Verifier, parse_authorization, www_authenticate_value,
};

use crate::http::{Reply, error};
use crate::spent_store::{Spend, SpentStore};
use crate::tunnel::{self, TunnelCounters, TunnelLimits};

/// The gateway's state.
pub struct Gateway {
    /// Instance id → enclave address (`host:port` of its attested-TLS port).
    pub instances: HashMap<String, String>,
    pub issuer_key: IssuerPublicKey,
    /// The one challenge this gateway accepts tokens for (cross-session, this origin).
    pub challenge: TokenChallenge,
    /// Where spends are recorded (a file of its own, or the store every replica shares).
    pub spent: SpentStore,
    pub limits: TunnelLimits,
    pub counters: Arc<TunnelCounters>,
}

/// The instance map file: `{"instances": [{"id": "i-0", "address": "127.0.0.1:8443"}]}`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceMap {
    pub instances: Vec<InstanceAddress>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceAddress {
    pub id: String,
    pub address: String,
}

impl InstanceMap {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let map: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not an instance map", path.display()))?;
        for i in &map.instances {
            anyhow::ensure!(
                pp_protocol::cdn_index::valid_id(&i.id),
                "instance id {:?} is not [a-z0-9-]{{1,32}}",
                i.id
            );
        }
        Ok(map)
    }
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
        let target = match tunnel::connect_target(&req) {
            Ok(t) => t,
            Err(reply) => return self.refuse(reply),
        };
        let id = target.rsplit_once(':').map(|(h, _)| h).unwrap_or(&target);
        let Some(address) = self.instances.get(id).cloned() else {
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
        if Verifier::verify(&token, &self.challenge, &self.issuer_key).is_err() {
            return self.refuse(self.challenge_reply("the token did not verify"));
        }
        let slot = match self.limits.slot() {
            Ok(s) => s,
            Err(reply) => return self.refuse(reply),
        };
        match self.spent.spend(&token).await {
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

    fn challenge_reply(&self, message: &str) -> Reply {
        let mut reply = error(StatusCode::UNAUTHORIZED, message);
        let value = www_authenticate_value(&self.challenge, &self.issuer_key, None);
        if let Ok(v) = value.parse() {
            reply
                .headers_mut()
                .insert(hyper::header::WWW_AUTHENTICATE, v);
        }
        reply
    }

    /// Counts a refusal and closes the connection after it: a client without a valid token
    /// keeps no gateway connection (a device opens a new tunnel to try again).
    fn refuse(&self, reply: Reply) -> Reply {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        crate::http::close_after(reply)
    }
}
