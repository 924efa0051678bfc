//! The relay as an RFC 9458 Oblivious Relay Resource (`pp-relay --ohttp-gateway`): devices
//! `POST /` a `message/ohttp-req`; the relay forwards the body, and nothing else of the request,
//! to its one configured gateway resource over TLS, and returns the gateway's status and body
//! with only `Content-Type`. It sees the device's address and ciphertext, the gateway the
//! ciphertext and the relay's address.
//!
//! Bounds: a body of at most [`pp_client::inner::MAX_ENCAPSULATED_REQUEST`] (the largest sealed request, 1 MiB,
//! plus the BHTTP and RFC 9458 layers: about 1 MiB + 8 KiB), `413` beyond; an answer of at most
//! [`MAX_ENCAPSULATED_RESPONSE`]; [`FORWARD_TIMEOUT`] for the gateway's answer, `502` when it
//! cannot be reached, fails or is late. Connections per client address as in CONNECT mode (the
//! server's limits). Logs: counters only. Connections to the gateway are kept and reused (a
//! TLS handshake per request would cost the gateway more than the request).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use pp_client::inner::{MAX_ENCAPSULATED_RESPONSE, OHTTP_REQUEST_MEDIA_TYPE};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

use crate::http::{Reply, error, reply};
use crate::ogr::read_encapsulated_request;

/// Longest the relay waits for the gateway's answer (above the gateway's own bound,
/// [`crate::ogr::REQUEST_TIMEOUT`]).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(90);
/// The handler bound a relay in this mode runs with (`http::Limits::request_timeout`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(105);
/// Idle gateway connections kept for reuse.
pub const MAX_IDLE: usize = 32;

/// The relay's counters (its only log content).
#[derive(Debug, Default)]
pub struct OrrCounters {
    pub forwarded: AtomicU64,
    pub refused: AtomicU64,
    pub gateway_failed: AtomicU64,
}

impl OrrCounters {
    /// One line of counts for the log.
    pub fn line(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "forwarded={} refused={} gateway_failed={}",
            g(&self.forwarded),
            g(&self.refused),
            g(&self.gateway_failed)
        )
    }
}

/// The one gateway resource this relay forwards to.
pub struct ObliviousRelay {
    /// The gateway resource's authority (the `Host` sent) and path.
    authority: String,
    path: String,
    /// The TLS name checked on the gateway's certificate.
    server_name: ServerName<'static>,
    /// `host:port` the relay connects to.
    dial: String,
    tls: TlsConnector,
    idle: std::sync::Mutex<Vec<SendRequest<Full<Bytes>>>>,
    pub counters: OrrCounters,
}

impl ObliviousRelay {
    /// `spec` is `URL` or `URL=HOST:PORT` (an `https://` gateway resource URL, and where to
    /// dial it if not its authority); `ca_pem` the roots the gateway's certificate must chain to.
    pub fn new(spec: &str, ca_pem: &std::path::Path) -> Result<Self> {
        let (url, dial) = match spec.rsplit_once('=') {
            Some((url, dial)) => (url, Some(dial.to_string())),
            None => (spec, None),
        };
        let uri: Uri = url
            .parse()
            .with_context(|| format!("--ohttp-gateway {url:?} is not a URL"))?;
        anyhow::ensure!(
            uri.scheme_str() == Some("https") && uri.query().is_none(),
            "--ohttp-gateway {url:?} must be an https:// URL without a query"
        );
        let host = uri
            .host()
            .with_context(|| format!("--ohttp-gateway {url:?} names no host"))?
            .to_string();
        let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        let dial = dial.unwrap_or_else(|| format!("{host}:{}", uri.port_u16().unwrap_or(443)));
        anyhow::ensure!(
            dial.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()),
            "--ohttp-gateway {spec:?}: where to dial must be host:port"
        );
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca_pem)
            .with_context(|| format!("reading {}", ca_pem.display()))?
        {
            let cert = cert.with_context(|| format!("{} is not PEM", ca_pem.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("{}: a certificate is not usable", ca_pem.display()))?;
        }
        anyhow::ensure!(
            !roots.is_empty(),
            "{} holds no certificate",
            ca_pem.display()
        );
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS 1.3 unavailable")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            authority,
            path: uri.path().to_string(),
            server_name: ServerName::try_from(host).context("the gateway's host name")?,
            dial,
            tls: TlsConnector::from(Arc::new(config)),
            idle: std::sync::Mutex::new(Vec::new()),
            counters: OrrCounters::default(),
        })
    }

    /// Serves one request: `POST /` with `message/ohttp-req`, anything else refused.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Reply {
        // Only POST (no CONNECT in this mode), and only to `/`.
        if req.method() != Method::POST {
            return self.refuse(error(
                StatusCode::METHOD_NOT_ALLOWED,
                "this relay serves POST / only",
            ));
        }
        if req.uri().scheme().is_some() || req.uri().path() != "/" || req.uri().query().is_some() {
            return self.refuse(error(
                StatusCode::NOT_FOUND,
                "this relay serves POST / only",
            ));
        }
        let body = match read_encapsulated_request(req).await {
            Ok(body) => body,
            Err(refusal) => return self.refuse(refusal),
        };
        match tokio::time::timeout(FORWARD_TIMEOUT, self.forward(body)).await {
            Ok(Ok(reply)) => {
                let n = self.counters.forwarded.fetch_add(1, Ordering::Relaxed) + 1;
                if n % 100 == 1 {
                    tracing::info!("{}", self.counters.line());
                }
                reply
            }
            Ok(Err(e)) => self.gateway_failed(&format!("{e:#}")),
            Err(_) => self.gateway_failed("timed out"),
        }
    }

    /// Posts `body` to the gateway resource, on a kept connection if one is ready; returns the
    /// gateway's status and body with only its content type.
    async fn forward(&self, body: Bytes) -> Result<Reply> {
        let request = |body: Bytes| {
            Request::post(&self.path)
                .header(hyper::header::HOST, &self.authority)
                .header(hyper::header::CONTENT_TYPE, OHTTP_REQUEST_MEDIA_TYPE)
                .header(hyper::header::CONTENT_LENGTH, body.len())
                .body(Full::new(body))
        };
        let mut sender = match self.take_idle() {
            Some(sender) => sender,
            None => self.connect().await?,
        };
        let response = match sender.try_send_request(request(body)?).await {
            Ok(response) => response,
            // A kept connection the gateway closed before the request went out: once more on a
            // new one (the request was not sent, so it cannot arrive twice).
            Err(mut e) => match e.take_message() {
                Some(unsent) => {
                    sender = self.connect().await?;
                    sender.send_request(unsent).await?
                }
                None => return Err(e.into_error().into()),
            },
        };
        let status = response.status();
        let keep = !response
            .headers()
            .get(hyper::header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let content_type = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Limited::new(response.into_body(), MAX_ENCAPSULATED_RESPONSE)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("the answer is unreadable or too large: {e}"))?
            .to_bytes();
        if keep {
            self.put_idle(sender);
        }
        let mut answer = reply(status, "", body);
        answer.headers_mut().remove(hyper::header::CONTENT_TYPE);
        if let Some(ct) = content_type.and_then(|c| c.parse().ok()) {
            answer.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
        }
        Ok(answer)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let tcp = tokio::net::TcpStream::connect(&self.dial)
            .await
            .context("cannot connect to the gateway")?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .context("TLS to the gateway")?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(sender) = idle.pop() {
            if sender.is_ready() && !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    fn gateway_failed(&self, why: &str) -> Reply {
        self.counters.gateway_failed.fetch_add(1, Ordering::Relaxed);
        // The cause is ours (connection, TLS, timeout), never request data.
        tracing::warn!("gateway: {why}; {}", self.counters.line());
        error(
            StatusCode::BAD_GATEWAY,
            "the relay could not reach the gateway",
        )
    }

    /// Counts a refusal and closes the connection after it.
    fn refuse(&self, reply: Reply) -> Reply {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        crate::http::close_after(reply)
    }
}
