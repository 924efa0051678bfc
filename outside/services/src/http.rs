//! One HTTP/1.1 server loop for every service, with the bounds each must have: connections at
//! once (in total and, where the service sees client addresses, per address), TLS handshake
//! time, header read time, body size, and time per request. A client that opens connections and
//! sends nothing, or half a request head, is cut at the deadline and holds at most its own share
//! of the connections.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::clients::{ClientSlot, ClientSlots};

/// The bounds a service runs with.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// Connections one client address may hold at once (tunnels made from them included); more
    /// are closed on accept. `None` where every client arrives from one address (a gateway behind
    /// a relay, a service behind a proxy).
    pub max_per_client: Option<usize>,
    /// Largest request body accepted (413 beyond).
    pub max_body: usize,
    /// Longest a TLS handshake may take, from the accepted connection.
    pub handshake_timeout: Duration,
    /// Longest wait for a request's headers (from the connection, or the previous answer on a
    /// kept-alive connection).
    pub header_timeout: Duration,
    /// Longest a handler may take (504 beyond).
    pub request_timeout: Duration,
    /// Longest a connection takes requests, from its accept: then it finishes the request in
    /// flight and closes, however slowly and cheaply its client asks (a tunnel made from it
    /// lives on). `None`: no bound beyond the per-request ones.
    pub connection_lifetime: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_per_client: None,
            max_body: 64 * 1024,
            handshake_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            connection_lifetime: None,
        }
    }
}

/// A response with a full body.
pub type Reply = Response<Full<Bytes>>;

/// A request whose body has been read in full (within [`Limits::max_body`]). The original
/// request is kept for handlers that upgrade the connection (CONNECT).
pub struct Collected {
    pub parts: hyper::http::request::Parts,
    pub body: Bytes,
}

/// A reply with `status`, a content type and a body.
pub fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// A plain-text error reply. The text is ours, never request data.
pub fn error(status: StatusCode, message: &str) -> Reply {
    reply(status, "text/plain; charset=utf-8", format!("{message}\n"))
}

/// `reply` with `Connection: close`: the server closes the connection once it is sent.
pub fn close_after(mut reply: Reply) -> Reply {
    reply.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    reply
}

/// A JSON reply.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => reply(status, "application/json", body),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode the answer",
        ),
    }
}

/// Accepts connections on `listener` (TLS first when `tls` is set) and serves HTTP/1.1 with
/// `handler`, within `limits`, until the process ends. `handler` gets the raw request (so it
/// can answer CONNECT and take the upgraded connection); use [`read_body`] for bodies.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    handler: H,
) -> anyhow::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = limits.max_per_client.map(ClientSlots::new);
    loop {
        let (tcp, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(kind = ?e.kind(), "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Per address first, so a client at its cap takes none of the shared slots.
        let client = match &per_client {
            Some(per_client) => match per_client.take(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    tracing::warn!("per-client connection limit reached; closing a new connection");
                    continue;
                }
            },
            None => None,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!("connection limit reached; closing a new connection");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (tls, handler) = (tls.clone(), handler.clone());
        let accepted = tokio::time::Instant::now();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await;
                    if let Ok(Ok(stream)) = handshake {
                        serve_connection(stream, limits, accepted, client, handler).await;
                    }
                }
                None => serve_connection(tcp, limits, accepted, client, handler).await,
            }
        });
    }
}

async fn serve_connection<S, H, F>(
    io: S,
    limits: Limits,
    accepted: tokio::time::Instant,
    client: Option<Arc<ClientSlot>>,
    handler: H,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let count = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let service = service_fn(move |mut req: Request<Incoming>| {
        let handler = handler.clone();
        if let Some(client) = &client {
            req.extensions_mut().insert(client.clone());
        }
        let n = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        req.extensions_mut()
            .insert(RequestNumber(n.saturating_add(1)));
        async move {
            let reply = tokio::time::timeout(limits.request_timeout, handler(req))
                .await
                .unwrap_or_else(|_| error(StatusCode::GATEWAY_TIMEOUT, "request timed out"));
            Ok::<_, Infallible>(reply)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let Some(lifetime) = limits.connection_lifetime else {
        let _ = conn.await;
        return;
    };
    tokio::select! {
        _ = conn.as_mut() => return,
        () = tokio::time::sleep_until(accepted + lifetime) => {}
    }
    // Take no further request, and give the one in flight `request_timeout` more to be
    // answered and written: a client that stops reading a large answer would otherwise hold the
    // connection (and its buffered body) for as long as it likes. Dropping the connection closes
    // it; a tunnel already upgraded lives on its own task.
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(limits.request_timeout, conn).await;
}

/// Which request of its connection a request is (1 for the first), in the request's extensions:
/// a service can bound what one kept-alive connection may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestNumber(pub u32);

/// Reads a request body of at most `max` bytes; `Err` is the reply to send instead.
pub async fn read_body(req: Request<Incoming>, max: usize) -> Result<Collected, Reply> {
    let (parts, body) = req.into_parts();
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(Collected {
            parts,
            body: collected.to_bytes(),
        }),
        Err(_) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large or unreadable",
        )),
    }
}

/// The value of a query parameter (no percent-decoding: our parameters are numbers and hex).
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}
