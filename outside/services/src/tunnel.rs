//! CONNECT tunnels (RFC 9110 §9.3.6), shared by the relay and the gateway: connect upstream, answer
//! 200, then copy bytes both ways until either side closes, within a lifetime bound and an idle
//! bound (no byte either way for that long closes the tunnel, so a client that opens a tunnel and
//! goes quiet gives its slot back). Bytes are counted, never inspected or logged.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::clients::ClientSlot;
use crate::http::{Reply, error, reply};

/// Counters a tunnelling service keeps (its only log content).
#[derive(Debug, Default)]
pub struct TunnelCounters {
    pub opened: AtomicU64,
    pub refused: AtomicU64,
    pub failed_upstream: AtomicU64,
    /// Tunnels closed for silence ([`TunnelLimits::idle`]).
    pub closed_idle: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
}

impl TunnelCounters {
    /// One line of counts for the log.
    pub fn line(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "opened={} refused={} upstream_failed={} closed_idle={} bytes_up={} bytes_down={}",
            g(&self.opened),
            g(&self.refused),
            g(&self.failed_upstream),
            g(&self.closed_idle),
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
    /// Longest a tunnel may carry no byte either way before it is closed.
    pub idle: Duration,
    /// Longest wait for the upstream TCP connection.
    pub connect_timeout: Duration,
}

impl TunnelLimits {
    pub fn new(max_tunnels: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_tunnels)),
            lifetime: Duration::from_secs(300),
            // Above the slowest answer an enclave gives without sending a byte.
            idle: Duration::from_secs(120),
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
/// holds `slot` (and the client's per-address slot, if the server gave the request one) until
/// the tunnel ends. A failed upstream connection answers 502.
pub async fn open(
    req: Request<Incoming>,
    upstream: &str,
    slot: OwnedSemaphorePermit,
    limits: &TunnelLimits,
    counters: Arc<TunnelCounters>,
) -> Reply {
    let connected =
        tokio::time::timeout(limits.connect_timeout, TcpStream::connect(upstream)).await;
    let Ok(Ok(upstream)) = connected else {
        counters.failed_upstream.fetch_add(1, Ordering::Relaxed);
        return error(StatusCode::BAD_GATEWAY, "the upstream did not answer");
    };
    let _ = upstream.set_nodelay(true);
    counters.opened.fetch_add(1, Ordering::Relaxed);
    let (lifetime, idle) = (limits.lifetime, limits.idle);
    let client_slot = req.extensions().get::<Arc<ClientSlot>>().cloned();
    tokio::spawn(async move {
        let _slots = (slot, client_slot);
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let activity = Arc::new(Activity::new());
        let mut client = Tracked::new(TokioIo::new(upgraded), activity.clone());
        let mut upstream = Tracked::new(upstream, activity.clone());
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
            () = activity.quiet_for(idle) => {
                counters.closed_idle.fetch_add(1, Ordering::Relaxed);
            }
            () = tokio::time::sleep(lifetime) => {}
        }
        counters.bytes_up.fetch_add(client.bytes, Ordering::Relaxed);
        counters
            .bytes_down
            .fetch_add(upstream.bytes, Ordering::Relaxed);
        tracing::info!("tunnel closed: {}", counters.line());
    });
    reply(StatusCode::OK, "application/octet-stream", "")
}

/// When a tunnel last carried a byte either way.
struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last byte read from either side.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    /// Returns once no byte has moved for `idle`.
    async fn quiet_for(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One side of a tunnel: counts the bytes read from it and marks the tunnel active.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    bytes: u64,
}

impl<S> Tracked<S> {
    fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            bytes: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            this.bytes += read as u64;
            this.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
