//! Where the device's reads of the transparency log and the key CDN go. `pp` reads both through
//! the relay, on the path its requests take: TLS to the relay, CONNECT to the gateway, TLS to the
//! gateway, then `GET <absolute URL>` of the log or CDN resource, which the gateway forwards to
//! the service it fronts (`pp_services::reads`). The operator runs log and CDN: reading them from
//! the device's own address would let it single out one device (serve it an older head still
//! within `max_age`, or the older logged index that head covers) and see which address uses the
//! service when.
//!
//! There is no fallback: a device configured with a relay that cannot read the log or the CDN
//! through it stops with that error. One gateway connection serves the reads of a sync until the
//! gateway closes it (it bounds the requests per connection); then a new tunnel is opened.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustls::ClientConfig;

use crate::config::Config;
use crate::fetch::{self, MAX_READ_BODY};
use crate::tunnel::{self, GatewayStream, PathSpec};

/// Largest response head read from the gateway.
const MAX_HEAD: usize = 16 * 1024;

/// Longest one read may take in all (opening a tunnel included), however the gateway trickles
/// its answer: each socket operation waits at most what remains.
pub const READ_DEADLINE: Duration = Duration::from_secs(30);

/// How the log and the CDN are read.
pub struct Reader {
    mode: Mode,
}

enum Mode {
    /// Straight from the device's address: for tests and tools without a relay; `pp` never
    /// reads this way (its configuration always names a relay).
    Direct,
    Relay {
        path: RelayPath,
        /// The open gateway connection, reused across reads until the gateway closes it.
        stream: Mutex<Option<Box<GatewayStream>>>,
    },
}

/// The relay path, owned (a [`PathSpec`] borrows).
struct RelayPath {
    relay_addr: String,
    relay_name: String,
    gateway_authority: String,
    gateway_name: String,
    tls: Arc<ClientConfig>,
}

impl RelayPath {
    fn spec(&self) -> PathSpec<'_> {
        PathSpec {
            relay_addr: &self.relay_addr,
            relay_name: &self.relay_name,
            gateway_authority: &self.gateway_authority,
            gateway_name: &self.gateway_name,
            tls: self.tls.clone(),
        }
    }
}

/// One HTTP answer ([`exchange`]).
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) close: bool,
    /// The `Content-Type` value, if any (bounded by the head's bound).
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

impl Reader {
    /// Reads through the relay and gateway `config` names (its `trust.tls_ca` checks both).
    pub fn through_relay(config: &Config) -> Result<Self> {
        let tls = tunnel::client_config(tunnel::tls_roots(config)?);
        Ok(Self::via(&config.relay, &config.gateway, tls))
    }

    /// Reads through `relay` to `gateway`, with TLS settings `tls`.
    pub fn via(
        relay: &crate::config::Relay,
        gateway: &crate::config::Gateway,
        tls: Arc<ClientConfig>,
    ) -> Self {
        Self {
            mode: Mode::Relay {
                path: RelayPath {
                    relay_addr: relay.address.clone(),
                    relay_name: relay.server_name.clone(),
                    gateway_authority: gateway.authority.clone(),
                    gateway_name: gateway.server_name.clone(),
                    tls,
                },
                stream: Mutex::new(None),
            },
        }
    }

    /// Reads straight from the device's own address: only where no relay exists (tests, local
    /// tools); the log and CDN see this address.
    pub fn direct() -> Self {
        Self { mode: Mode::Direct }
    }

    /// GETs `url` (of the log or the CDN); any status but 200 is an error naming the URL.
    pub fn get(&self, url: &str) -> Result<Vec<u8>> {
        match &self.mode {
            Mode::Direct => fetch::get(url),
            Mode::Relay { path, stream } => {
                let mut stream = stream.lock().unwrap_or_else(|p| p.into_inner());
                get_via(path, &mut stream, url).with_context(|| {
                    format!(
                        "reading {url} through the relay (the device reads the transparency log \
                         and the key CDN only there, never from its own address)"
                    )
                })
            }
        }
    }
}

fn get_via(path: &RelayPath, slot: &mut Option<Box<GatewayStream>>, url: &str) -> Result<Vec<u8>> {
    let deadline = Instant::now() + READ_DEADLINE;
    let authority = authority_of(url)?;
    let request = format!("GET {url} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    // A kept-alive connection the gateway has since closed fails before any answer: the read is
    // asked again once, on a new tunnel (a GET changes nothing).
    for _ in 0..2 {
        let reused = slot.is_some();
        if !reused {
            *slot = Some(Box::new(tunnel::open_gateway(&path.spec())?));
        }
        let Some(stream) = slot.as_mut() else {
            unreachable!("the tunnel was opened above")
        };
        let mut timed = Timed {
            stream: stream.as_mut(),
            deadline,
        };
        match exchange(&mut timed, request.as_bytes(), GATEWAY, MAX_READ_BODY) {
            Ok(answer) => {
                if answer.close {
                    *slot = None;
                }
                return checked(url, answer);
            }
            Err(e) => {
                *slot = None;
                if !reused || Instant::now() >= deadline {
                    return Err(e);
                }
            }
        }
    }
    bail!("the gateway closed the connection")
}

/// The `host[:port]` of an `http://` or `https://` URL; refuses anything that could break the
/// request line.
pub(crate) fn authority_of(url: &str) -> Result<&str> {
    anyhow::ensure!(
        url.bytes().all(|b| b.is_ascii_graphic()),
        "the URL holds spaces or control characters"
    );
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .context("the URL is not http:// or https://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    anyhow::ensure!(!authority.is_empty(), "the URL names no host");
    Ok(authority)
}

fn checked(url: &str, answer: Answer) -> Result<Vec<u8>> {
    if answer.status != 200 {
        let text = String::from_utf8_lossy(&answer.body);
        let text: String = text.trim().chars().take(200).collect();
        let text = crate::show::printable(&text, crate::show::Breaks::Escape);
        bail!("{url} answered HTTP {}: {text}", answer.status);
    }
    Ok(answer.body)
}

/// The TCP socket under a stream, whose timeouts bound each operation.
pub(crate) trait Socket {
    fn tcp(&self) -> &TcpStream;
}

impl Socket for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Socket for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

impl Socket for GatewayStream {
    fn tcp(&self) -> &TcpStream {
        &self.sock.sock
    }
}

/// A stream whose every read and write waits at most until `deadline`, then fails with
/// [`std::io::ErrorKind::TimedOut`].
pub(crate) struct Timed<'a, S> {
    pub(crate) stream: &'a mut S,
    pub(crate) deadline: Instant,
}

impl<S: Socket> Timed<'_, S> {
    /// Sets the socket's timeouts to what remains until the deadline (an error once it passed).
    pub(crate) fn arm(&self) -> std::io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.tcp().set_read_timeout(Some(left))?;
        self.stream.tcp().set_write_timeout(Some(left))
    }
}

impl<S: Socket + Read> Read for Timed<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.arm()?;
        self.stream.read(buf)
    }
}

impl<S: Socket + Write> Write for Timed<'_, S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.arm()?;
        self.stream.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.arm()?;
        self.stream.flush()
    }
}

/// Who answers in [`exchange`]'s errors: the gateway (reads) or the relay (one-shot requests).
pub(crate) const GATEWAY: &str = "the gateway";

/// Writes `request` and reads one answer from `peer` (head byte by byte, so nothing after it is
/// consumed; body by Content-Length, at most `max_body` bytes).
pub(crate) fn exchange(
    stream: &mut (impl Read + Write),
    request: &[u8],
    peer: &str,
    max_body: u64,
) -> Result<Answer> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            anyhow::anyhow!("{peer} did not answer within {} s", READ_DEADLINE.as_secs())
        }
        kind => anyhow::anyhow!("the connection to {peer} failed: {kind:?}"),
    };
    stream.write_all(request).map_err(io)?;
    stream.flush().map_err(io)?;
    let head = crate::tunnel::read_head(stream, MAX_HEAD).map_err(|e| match e {
        crate::tunnel::HeadError::TooLong => {
            anyhow::anyhow!("{peer}'s answer head is too long")
        }
        crate::tunnel::HeadError::Closed => anyhow::anyhow!("{peer} closed the connection"),
        crate::tunnel::HeadError::Io(e) => io(e),
    })?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    anyhow::ensure!(
        matches!(response.parse(&head), Ok(httparse::Status::Complete(_))),
        "{peer}'s answer is malformed"
    );
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    anyhow::ensure!(
        header("transfer-encoding").is_none(),
        "{peer}'s answer is not length-delimited"
    );
    // Without a length the body's end is unknown (and the connection cannot be reused).
    let length: u64 = header("content-length")
        .with_context(|| format!("{peer}'s answer has no Content-Length"))?
        .trim()
        .parse()
        .ok()
        .with_context(|| format!("{peer}'s answer has a malformed length"))?;
    anyhow::ensure!(
        length <= max_body,
        "{peer}'s answer is larger than {max_body} bytes"
    );
    let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let content_type = header("content-type").map(|v| v.trim().to_ascii_lowercase());
    let status = response
        .code
        .with_context(|| format!("{peer}'s answer has no status"))?;
    let mut body = vec![0u8; length as usize];
    stream.read_exact(&mut body).map_err(io)?;
    Ok(Answer {
        status,
        close,
        content_type,
        body,
    })
}

#[cfg(all(test, feature = "test-root"))]
#[path = "reads_tests.rs"]
pub(crate) mod relay_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// A server on a real socket that writes `answer` in pieces, `gap` apart, after reading
    /// the request line; returns the client's end.
    fn trickling(answer: &'static [u8], piece: usize, gap: Duration) -> TcpStream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
            for chunk in answer.chunks(piece) {
                if s.write_all(chunk).is_err() {
                    return;
                }
                std::thread::sleep(gap);
            }
            std::thread::sleep(Duration::from_secs(5));
        });
        TcpStream::connect(at).unwrap()
    }

    #[test]
    fn a_trickled_answer_is_cut_at_the_deadline() {
        // One byte every 100 ms: no single read waits long, the whole answer takes ~5 s.
        let mut tcp = trickling(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Padding: aaaaaaaaaaaaaaaa\r\n\r\n0123456789",
            1,
            Duration::from_millis(100),
        );
        let started = Instant::now();
        let mut timed = Timed {
            stream: &mut tcp,
            deadline: started + Duration::from_secs(1),
        };
        let err = exchange(
            &mut timed,
            b"GET / HTTP/1.1\r\n\r\n",
            GATEWAY,
            MAX_READ_BODY,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("did not answer within"), "{err:#}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn an_answer_without_a_length_is_refused() {
        let mut tcp = trickling(b"HTTP/1.1 200 OK\r\n\r\nthe body", 64, Duration::ZERO);
        let mut timed = Timed {
            stream: &mut tcp,
            deadline: Instant::now() + READ_DEADLINE,
        };
        let err = exchange(
            &mut timed,
            b"GET / HTTP/1.1\r\n\r\n",
            GATEWAY,
            MAX_READ_BODY,
        )
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            "the gateway's answer has no Content-Length"
        );
    }

    #[test]
    fn authorities_of_urls() {
        assert_eq!(
            authority_of("http://127.0.0.1:80/a?b").unwrap(),
            "127.0.0.1:80"
        );
        assert_eq!(authority_of("https://cdn.test").unwrap(), "cdn.test");
        assert!(authority_of("http://x/ a").is_err());
        assert!(authority_of("http://x/\r\nHost: y").is_err());
        assert!(authority_of("ftp://x/").is_err());
        assert!(authority_of("http:///path").is_err());
    }
}
