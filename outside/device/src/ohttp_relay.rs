//! The one-shot path's transport: one `POST` of an RFC 9458 encapsulated request
//! (`message/ohttp-req`) to the relay's Oblivious HTTP resource (`relay.ohttp_url`) over TLS 1.3,
//! the relay's certificate checked against `trust.tls_ca` as for the CONNECT relay. The relay
//! sees this device's address and an opaque body; it forwards the body to the gateway.
//!
//! One connection per request (`Connection: close`), bounded by [`POST_DEADLINE`]
//! in all, and an answer of at most [`MAX_ANSWER`] bytes.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::config::Config;
use crate::reads::{self, Answer, Timed};

/// The RFC 9458 media type of an encapsulated request.
pub const REQUEST_TYPE: &str = pp_client::inner::OHTTP_REQUEST_MEDIA_TYPE;
/// The RFC 9458 media type of an encapsulated response.
pub const RESPONSE_TYPE: &str = pp_client::inner::OHTTP_RESPONSE_MEDIA_TYPE;
/// Largest answer body read: the largest sealed response, its BHTTP framing and headers, and
/// the outer encapsulation (a few dozen bytes), with room to spare.
pub const MAX_ANSWER: u64 = (pp_client::oneshot::MAX_SEALED_RESPONSE + 16 * 1024) as u64;

/// Who answers, in errors.
const RELAY: &str = "the OHTTP relay";

/// Where one-shot requests go.
pub struct OhttpRelay {
    /// `host:port` to connect to.
    address: String,
    /// The host, the name on the relay's certificate.
    server_name: String,
    /// The `Host` header value.
    authority: String,
    /// The resource's path (`/` for our relay).
    path: String,
    tls: Arc<ClientConfig>,
}

/// Why a `POST` failed.
#[derive(Debug)]
pub enum PostError {
    /// Nothing of the request left this device (the relay could not be reached, or TLS with it
    /// failed).
    NotSent(anyhow::Error),
    /// The request was handed to the transport: the relay may have forwarded it.
    AfterSend(anyhow::Error),
}

/// The longest a one-shot POST may take in all: longer than the relay's own bound on a request
/// (`pp_services::orr::REQUEST_TIMEOUT`, 105 s), so an answer the enclave computed after the
/// token was spent is not given up on by the device first.
pub const POST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(110);

impl OhttpRelay {
    /// The relay `config` names in `relay.ohttp_url` (`https://host[:port][/path]`), checked with
    /// `trust.tls_ca`.
    pub fn from_config(config: &Config) -> Result<Self> {
        let url = config.relay.ohttp_url.as_deref().context(
            "relay.ohttp_url is not set: one-shot requests go to the relay's Oblivious HTTP \
             resource (set it, or use --session)",
        )?;
        let tls = crate::tunnel::client_config(crate::tunnel::tls_roots(config)?);
        let mut relay = Self::new(url, tls).context("relay.ohttp_url")?;
        // The relay is what hides this device's address from the gateway: a URL naming the
        // gateway itself would skip it.
        anyhow::ensure!(
            !relay
                .server_name
                .eq_ignore_ascii_case(&config.gateway.server_name),
            "relay.ohttp_url names the gateway ({}), not a relay: the gateway would see this \
             device's address",
            relay.server_name
        );
        if let Some(address) = &config.relay.ohttp_address {
            relay.address = address.clone();
        }
        Ok(relay)
    }

    /// The relay at `url` (`https://` only), with TLS settings `tls`.
    pub fn new(url: &str, tls: Arc<ClientConfig>) -> Result<Self> {
        anyhow::ensure!(
            url.starts_with("https://"),
            "{url:?} is not an https:// URL"
        );
        let authority = reads::authority_of(url)?.to_string();
        let rest = &url["https://".len() + authority.len()..];
        let path = match rest {
            "" => "/".to_string(),
            p if p.starts_with('/') => p.to_string(),
            _ => anyhow::bail!("{url:?} has a query or fragment but no path"),
        };
        // `host`, `host:port`, `[v6]` or `[v6]:port`.
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !authority.ends_with(']') => {
                let port: u16 = port.parse().ok().context("malformed port")?;
                (host.to_string(), port)
            }
            _ => (authority.clone(), 443),
        };
        let server_name = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        ServerName::try_from(server_name.clone())
            .map_err(|_| anyhow::anyhow!("invalid relay host name {server_name:?}"))?;
        Ok(Self {
            address: format!("{host}:{port}"),
            server_name,
            authority,
            path,
            tls,
        })
    }

    /// The same relay, its certificate checked for `name` (tests reach a relay by a loopback
    /// address whose certificate names it otherwise).
    #[cfg(all(test, feature = "test-root"))]
    pub(crate) fn with_server_name(self, name: &str) -> Self {
        Self {
            server_name: name.to_string(),
            ..self
        }
    }

    /// POSTs `body` (an encapsulated request) and returns the relay's answer, whatever its
    /// status.
    pub(crate) fn post(&self, body: &[u8]) -> Result<Answer, PostError> {
        let deadline = Instant::now() + POST_DEADLINE;
        let tcp = TcpStream::connect(&self.address).map_err(|e| {
            PostError::NotSent(anyhow::anyhow!(
                "cannot reach the OHTTP relay at {}: {:?}",
                self.address,
                e.kind()
            ))
        })?;
        let _ = tcp.set_nodelay(true);
        let not_sent = |e: std::io::Error| {
            PostError::NotSent(anyhow::anyhow!("TLS with the OHTTP relay failed: {e}"))
        };
        let name = ServerName::try_from(self.server_name.clone())
            .map_err(|e| PostError::NotSent(e.into()))?;
        let conn = ClientConnection::new(self.tls.clone(), name)
            .map_err(|e| not_sent(std::io::Error::other(e)))?;
        let mut stream = StreamOwned::new(conn, tcp);
        {
            let timed = Timed {
                stream: &mut stream,
                deadline,
            };
            while timed.stream.conn.is_handshaking() {
                timed.arm().map_err(not_sent)?;
                let StreamOwned { conn, sock } = &mut *timed.stream;
                conn.complete_io(sock).map_err(not_sent)?;
            }
        }
        let mut request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {REQUEST_TYPE}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            self.path,
            self.authority,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        let mut timed = Timed {
            stream: &mut stream,
            deadline,
        };
        let answer = reads::exchange(&mut timed, &request, RELAY, MAX_ANSWER)
            .map_err(PostError::AfterSend)?;
        stream.conn.send_close_notify();
        let _ = std::io::Write::flush(&mut stream);
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> Arc<ClientConfig> {
        crate::tunnel::client_config(rustls::RootCertStore::empty())
    }

    #[test]
    fn relay_urls() {
        let r = OhttpRelay::new("https://relay.pp.test:8443/", tls()).unwrap();
        assert_eq!(
            (
                &r.address[..],
                &r.server_name[..],
                &r.authority[..],
                &r.path[..]
            ),
            (
                "relay.pp.test:8443",
                "relay.pp.test",
                "relay.pp.test:8443",
                "/"
            )
        );
        let r = OhttpRelay::new("https://relay.pp.test", tls()).unwrap();
        assert_eq!((&r.address[..], &r.path[..]), ("relay.pp.test:443", "/"));
        let r = OhttpRelay::new("https://[::1]/ohttp", tls()).unwrap();
        assert_eq!(
            (&r.address[..], &r.server_name[..], &r.path[..]),
            ("[::1]:443", "::1", "/ohttp")
        );
        let r = OhttpRelay::new("https://[::1]:8443/", tls()).unwrap();
        assert_eq!(&r.address[..], "[::1]:8443");
        for bad in [
            "http://relay.pp.test/",
            "https://relay.pp.test:x/",
            "https://relay.pp.test/ a",
            "https://relay.pp.test?x",
            "https:///",
        ] {
            assert!(OhttpRelay::new(bad, tls()).is_err(), "{bad}");
        }
    }
}
