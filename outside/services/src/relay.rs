//! The relay (a third party): the device connects here over TLS and asks with CONNECT for a
//! tunnel to the gateway. The relay sees the device's address and ciphertext only (the device
//! runs TLS to the gateway inside the tunnel), forwards only to the gateways it is configured
//! for (taking turns over the replicas configured for one name), and logs counts, never addresses
//! or targets.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use crate::http::{Reply, error};
use crate::tunnel::{self, TunnelCounters, TunnelLimits};

/// The relay's configuration and counters.
pub struct Relay {
    /// `host:port` targets a CONNECT may name, each mapped to the address to dial. A name listed
    /// more than once is served by its addresses in turn (gateway replicas).
    pub upstreams: Vec<(String, String)>,
    /// The turn counter for names with several addresses.
    pub turn: AtomicUsize,
    pub limits: TunnelLimits,
    pub counters: Arc<TunnelCounters>,
}

impl Relay {
    /// Serves one request: CONNECT to a configured gateway, anything else refused.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Reply {
        let target = match tunnel::connect_target(&req) {
            Ok(t) => t,
            Err(reply) => return self.refuse(reply),
        };
        let dials: Vec<&str> = self
            .upstreams
            .iter()
            .filter(|(name, _)| *name == target)
            .map(|(_, dial)| dial.as_str())
            .collect();
        if dials.is_empty() {
            return self.refuse(error(
                StatusCode::FORBIDDEN,
                "this relay tunnels only to its configured gateways",
            ));
        }
        let dial = dials[self.turn.fetch_add(1, Ordering::Relaxed) % dials.len()];
        let slot = match self.limits.slot() {
            Ok(s) => s,
            Err(reply) => return self.refuse(reply),
        };
        tunnel::open(req, dial, slot, &self.limits, self.counters.clone()).await
    }

    /// Counts a refusal and closes the connection after it.
    fn refuse(&self, reply: Reply) -> Reply {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        crate::http::close_after(reply)
    }
}
