//! What every service binary does at start: logging to stderr, bind, announce the address on
//! stdout (`listening on ADDR`, so a supervisor can use port 0), serve.

use std::future::Future;
use std::io::Write;

use hyper::Request;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::http::{self, Limits, Reply};

/// Logs go to stderr, without timestamps or addresses: counts and outcomes only.
pub fn init_logging(service: &'static str) {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .try_init();
    tracing::info!("{service} {} starting", env!("CARGO_PKG_VERSION"));
}

/// Binds `listen`, prints the bound address, and serves until the process is stopped.
pub async fn serve<H, F>(
    listen: &str,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    handler: H,
) -> anyhow::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
    http::serve(listener, tls, limits, handler).await
}
