//! CONNECT tunnels (RFC 9110 §9.3.6), shared by the relay and the gateway: connect upstream, answer
//! 200, then copy bytes both ways until either side closes, within a lifetime bound. Bytes are
//! counted, never inspected or logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::{Reply, error, reply};

/// Counters a tunnelling service keeps (its only log content).
#[derive(Debug, Default)]
pub struct TunnelCounters {
    pub opened: AtomicU64,
    pub refused: AtomicU64,
    pub failed_upstream: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
}

impl TunnelCounters {
    /// One line of counts for the log.
    pub fn line(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "opened={} refused={} upstream_failed={} bytes_up={} bytes_down={}",
            g(&self.opened),
            g(&self.refused),
            g(&self.failed_upstream),
            g(&self.bytes_up),
            g(&self.bytes_down)
        )
    }
}

/// Bounds on tunnels.
#[derive(Clone, Debug)]
pub struct TunnelLimits {
    /// Tunnels open at once (their connections no longer count against the HTTP limit).
    pub slots: Arc<Semaphore>,
    /// Longest a tunnel may live.
    pub lifetime: Duration,
    /// Longest wait for the upstream TCP connection.
    pub connect_timeout: Duration,
}

impl TunnelLimits {
    pub fn new(max_tunnels: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_tunnels)),
            lifetime: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// A tunnel slot, or the 503 reply to send.
    pub fn slot(&self) -> Result<OwnedSemaphorePermit, Reply> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many tunnels open; try again later",
            )
        })
    }
}

/// The CONNECT target of a request (`host:port`), or the reply refusing it.
pub fn connect_target(req: &Request<Incoming>) -> Result<String, Reply> {
    if req.method() != hyper::Method::CONNECT {
        return Err(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "only CONNECT is served here",
        ));
    }
    req.uri()
        .authority()
        .filter(|a| a.port_u16().is_some())
        .map(|a| a.as_str().to_ascii_lowercase())
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "CONNECT needs host:port"))
}

/// Connects to `upstream`, answers 200 and tunnels the upgraded connection to it in a task that
/// holds `slot` until the tunnel ends. A failed upstream connection answers 502.
pub async fn open(
    req: Request<Incoming>,
    upstream: &str,
    slot: OwnedSemaphorePermit,
    limits: &TunnelLimits,
    counters: Arc<TunnelCounters>,
) -> Reply {
    let connected =
        tokio::time::timeout(limits.connect_timeout, TcpStream::connect(upstream)).await;
    let Ok(Ok(mut upstream)) = connected else {
        counters.failed_upstream.fetch_add(1, Ordering::Relaxed);
        return error(StatusCode::BAD_GATEWAY, "the upstream did not answer");
    };
    let _ = upstream.set_nodelay(true);
    counters.opened.fetch_add(1, Ordering::Relaxed);
    let lifetime = limits.lifetime;
    tokio::spawn(async move {
        let _slot = slot;
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let mut client = TokioIo::new(upgraded);
        let copied = tokio::time::timeout(
            lifetime,
            tokio::io::copy_bidirectional(&mut client, &mut upstream),
        )
        .await;
        if let Ok(Ok((up, down))) = copied {
            counters.bytes_up.fetch_add(up, Ordering::Relaxed);
            counters.bytes_down.fetch_add(down, Ordering::Relaxed);
        }
        tracing::info!("tunnel closed: {}", counters.line());
    });
    reply(StatusCode::OK, "application/octet-stream", "")
}
