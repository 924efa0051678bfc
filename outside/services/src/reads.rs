//! The gateway's read-only routes to the transparency log and the key CDN. A device sends, inside
//! its relay tunnel, `GET <absolute URL>` naming the log or CDN it is configured with (the
//! absolute form of an HTTP proxy request, RFC 9112 §3.2.2); the gateway forwards it to that
//! service if it fronts it and answers with the service's status and body. So the operator's log
//! and CDN see the gateway's address, never a device's: they cannot single out one device by
//! address (serve it an older head or index) nor learn which address uses the service when.
//!
//! Only `GET` without a body, only to the configured upstreams, with bounded answers and time;
//! no request header is forwarded but `Host`, no response header but `Content-Type`.

use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::{Body, Incoming};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;

use crate::http::{Reply, error, reply};

/// Largest answer forwarded from an upstream: a full tile of the log's entries (the device's
/// own bound on what it reads). What is buffered is what the log and CDN actually hold.
pub const MAX_READ_BODY: usize = pp_translog::tiles::MAX_BUNDLE_LEN;
/// Longest one forwarded read may take, connection to the upstream included.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A service the gateway forwards reads to: the base URL devices name, and where to dial it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadUpstream {
    authority: String,
    /// The base URL's path without its trailing slash (`""` for a service at the root).
    base_path: String,
    /// `host:port` the gateway connects to.
    dial: String,
}

impl ReadUpstream {
    /// Parses `URL` or `URL=HOST:PORT` (`URL` is what devices are configured with, plain
    /// `http://`; `HOST:PORT`, where the gateway reaches it, defaults to the URL's authority).
    pub fn parse(spec: &str) -> Result<Self> {
        let (url, dial) = match spec.rsplit_once('=') {
            Some((url, dial)) => (url, Some(dial)),
            None => (spec, None),
        };
        let uri: Uri = url
            .trim_end_matches('/')
            .parse()
            .with_context(|| format!("read upstream {url:?} is not a URL"))?;
        anyhow::ensure!(
            uri.scheme_str() == Some("http") && uri.query().is_none(),
            "read upstream {url:?} must be an http:// base URL without a query (the gateway \
             reaches the log and the CDN inside the operator's network)"
        );
        let authority = uri
            .authority()
            .with_context(|| format!("read upstream {url:?} names no host"))?
            .to_string();
        let default_dial = match uri.port_u16() {
            Some(_) => authority.clone(),
            None => format!("{}:80", uri.host().unwrap_or_default()),
        };
        let dial = dial.map_or(default_dial, str::to_string);
        anyhow::ensure!(
            dial.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()),
            "read upstream {spec:?}: where to dial must be host:port"
        );
        Ok(Self {
            authority,
            base_path: uri.path().trim_end_matches('/').to_string(),
            dial,
        })
    }

    /// The path and query to ask the upstream for, if `uri` names a resource of this upstream.
    fn target<'u>(&self, uri: &'u Uri) -> Option<&'u str> {
        if uri.scheme_str() != Some("http")
            || uri.authority().map(|a| a.as_str()) != Some(self.authority.as_str())
        {
            return None;
        }
        let path = uri.path();
        let rest = path.strip_prefix(self.base_path.as_str())?;
        if !rest.starts_with('/') {
            return None;
        }
        // No `.`/`..` segment (the upstream would resolve it out of the base path) and no
        // `%` escape at all (none of our paths needs one; `%2e`, `%2f` would hide a segment).
        let query = uri.query().unwrap_or_default();
        if rest.split('/').any(|seg| seg == "." || seg == "..")
            || path.contains('%')
            || query.contains('%')
        {
            return None;
        }
        Some(uri.path_and_query().map_or(path, |p| p.as_str()))
    }
}

/// Whether `req` is a read for an upstream (a `GET` in absolute form), not a request to the
/// gateway itself.
pub fn is_read(req: &Request<Incoming>) -> bool {
    req.method() == Method::GET && req.uri().scheme().is_some()
}

/// Forwards the read `req` to the upstream it names among `upstreams`: the upstream's answer
/// (or the gateway's when the upstream fails), or `Err` with the refusal of a read this gateway
/// does not forward (the caller closes the connection after it).
pub async fn forward(upstreams: &[ReadUpstream], req: &Request<Incoming>) -> Result<Reply, Reply> {
    let found = upstreams
        .iter()
        .find_map(|u| u.target(req.uri()).map(|t| (u, t)));
    let Some((upstream, target)) = found else {
        return Err(error(
            StatusCode::FORBIDDEN,
            "this gateway forwards reads only of its configured transparency log and key CDN",
        ));
    };
    if !req.body().is_end_stream() {
        return Err(error(StatusCode::BAD_REQUEST, "a read carries no body"));
    }
    Ok(
        match tokio::time::timeout(READ_TIMEOUT, fetch(upstream, target)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => {
                tracing::warn!("read upstream: {e:#}");
                error(
                    StatusCode::BAD_GATEWAY,
                    "the gateway could not read from the upstream service",
                )
            }
            Err(_) => error(
                StatusCode::GATEWAY_TIMEOUT,
                "the upstream service did not answer in time",
            ),
        },
    )
}

/// One `GET target` on a new connection to the upstream; its status, content type and body.
async fn fetch(upstream: &ReadUpstream, target: &str) -> Result<Reply> {
    let tcp = tokio::net::TcpStream::connect(&upstream.dial)
        .await
        .context("cannot connect")?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = Request::get(target)
        .header(hyper::header::HOST, &upstream.authority)
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let body = Limited::new(response.into_body(), MAX_READ_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("the answer is unreadable or too large: {e}"))?
        .to_bytes();
    Ok(reply(status, &content_type, body))
}

#[cfg(test)]
mod tests {
    use super::ReadUpstream;

    #[test]
    fn upstreams_match_their_own_resources_only() {
        let log = ReadUpstream::parse("http://log.test:80/log/").unwrap();
        assert_eq!(log.dial, "log.test:80");
        let target = |u: &str| log.target(&u.parse().unwrap()).map(str::to_string);
        assert_eq!(
            target("http://log.test:80/log/entries/3").as_deref(),
            Some("/log/entries/3")
        );
        assert_eq!(
            target("http://log.test:80/log/proof/inclusion?hash=ab&size=2").as_deref(),
            Some("/log/proof/inclusion?hash=ab&size=2")
        );
        assert_eq!(target("http://log.test:80/logx/entries/3"), None);
        assert_eq!(target("http://log.test:80/other"), None);
        assert_eq!(target("http://log.test:81/log/entries/3"), None);
        assert_eq!(target("https://log.test:80/log/entries/3"), None);
        assert_eq!(
            target("http://log.test:80/log/tile/entries/x001/067.p/5").as_deref(),
            Some("/log/tile/entries/x001/067.p/5")
        );
        // Out of the base path by a dot segment, or by an escape of `.` or `/`: refused.
        for escape in [
            "http://log.test:80/log/../admin/x",
            "http://log.test:80/log/./entries/3",
            "http://log.test:80/log/entries/..",
            "http://log.test:80/log/%2e%2e/admin",
            "http://log.test:80/log/..%2fadmin",
            "http://log.test:80/log/entries/3?x=%2e",
        ] {
            assert_eq!(target(escape), None, "{escape}");
        }
        let cdn = ReadUpstream::parse("http://cdn.test:8080=10.0.0.5:80").unwrap();
        assert_eq!(
            (cdn.base_path.as_str(), cdn.dial.as_str()),
            ("", "10.0.0.5:80")
        );
        assert_eq!(
            ReadUpstream::parse("http://cdn.test").unwrap().dial,
            "cdn.test:80"
        );
        assert!(ReadUpstream::parse("https://cdn.test").is_err());
        assert!(ReadUpstream::parse("http://cdn.test:8080=nowhere").is_err());
    }
}
