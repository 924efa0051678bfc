//! The network path to an enclave: TLS to the relay, CONNECT to the gateway, TLS to the gateway
//! inside that tunnel, CONNECT to the chosen enclave instance with a Privacy Pass token, and then
//! the attested TLS session inside the second tunnel. The relay sees this device's address and
//! the gateway's TLS records; the gateway sees the token and the enclave's TLS records; neither
//! sees a request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::config::Config;

/// How long any read or write on the path may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest CONNECT response head accepted.
const MAX_HEAD: usize = 8 * 1024;

/// A TLS stream to the gateway, itself inside a TLS stream to the relay.
pub type GatewayStream = StreamOwned<ClientConnection, StreamOwned<ClientConnection, TcpStream>>;

/// Why the path could not be opened. Says which hop failed.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("cannot reach the relay at {addr}: {kind:?}")]
    RelayUnreachable {
        addr: String,
        kind: std::io::ErrorKind,
    },
    #[error("TLS with the {hop} failed: {source}")]
    Tls {
        hop: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the {hop} refused the tunnel: HTTP {status}{reason}")]
    Refused {
        hop: &'static str,
        status: u16,
        reason: String,
    },
    #[error("the {hop} sent a malformed CONNECT response")]
    MalformedResponse { hop: &'static str },
    #[error("invalid server name {0:?}")]
    ServerName(String),
}

/// TLS client settings for the relay and the gateway: TLS 1.3, ordinary certificate checks
/// against `roots`.
pub fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Where the path goes.
pub struct PathSpec<'a> {
    pub relay_addr: &'a str,
    pub relay_name: &'a str,
    /// What the relay is asked to CONNECT to (`host:port`).
    pub gateway_authority: &'a str,
    pub gateway_name: &'a str,
    pub tls: Arc<ClientConfig>,
}

impl<'a> PathSpec<'a> {
    /// The path `config` names: its relay and gateway, with its `trust.tls_ca` as the only TLS
    /// roots.
    pub fn from_config(config: &'a Config) -> Result<Self> {
        Ok(Self {
            relay_addr: &config.relay.address,
            relay_name: &config.relay.server_name,
            gateway_authority: &config.gateway.authority,
            gateway_name: &config.gateway.server_name,
            tls: client_config(tls_roots(config)?),
        })
    }
}

/// The CA certificates of `trust.tls_ca`, the only roots the relay's and the gateway's TLS
/// certificates are checked against.
pub fn tls_roots(config: &Config) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let Some(ca) = &config.trust.tls_ca else {
        bail!("trust.tls_ca is not set: no relay or gateway certificate can be checked");
    };
    for cert in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots
            .add(cert.with_context(|| format!("{} holds a malformed certificate", ca.display()))?)
            .context("a CA certificate was refused")?;
    }
    Ok(roots)
}

/// Opens the path up to the enclave instance `instance`, spending `token` (sent in an
/// `Authorization: PrivateToken token=...` header, RFC 9577). Returns the stream the attested
/// session runs over.
pub fn open(
    spec: &PathSpec<'_>,
    instance: &str,
    token: &pp_tokens::Token,
) -> Result<GatewayStream, PathError> {
    let mut gateway = open_gateway(spec)?;
    let authority = format!("{instance}:443");
    let authorization = pp_tokens::authorization_value(token);
    connect(&mut gateway, &authority, Some(&authorization), "gateway")?;
    Ok(gateway)
}

/// Opens the path up to the gateway: TLS to the relay, CONNECT to the gateway, TLS to the
/// gateway inside. What is sent on it reaches the gateway from the relay's address.
pub fn open_gateway(spec: &PathSpec<'_>) -> Result<GatewayStream, PathError> {
    let tcp = TcpStream::connect(spec.relay_addr).map_err(|e| PathError::RelayUnreachable {
        addr: spec.relay_addr.to_string(),
        kind: e.kind(),
    })?;
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
    let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
    let mut relay = tls_over(tcp, spec.relay_name, &spec.tls, "relay")?;
    connect(&mut relay, spec.gateway_authority, None, "relay")?;
    tls_over(relay, spec.gateway_name, &spec.tls, "gateway")
}

fn tls_over<S: Read + Write>(
    sock: S,
    name: &str,
    config: &Arc<ClientConfig>,
    hop: &'static str,
) -> Result<StreamOwned<ClientConnection, S>, PathError> {
    let server =
        ServerName::try_from(name.to_string()).map_err(|_| PathError::ServerName(name.into()))?;
    let conn = ClientConnection::new(config.clone(), server).map_err(|e| PathError::Tls {
        hop,
        source: std::io::Error::other(e),
    })?;
    let mut stream = StreamOwned::new(conn, sock);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|source| PathError::Tls { hop, source })?;
    }
    Ok(stream)
}

/// Sends `CONNECT authority` and reads the response head byte by byte (so no tunnel byte is
/// consumed), bounded by [`MAX_HEAD`].
fn connect(
    stream: &mut (impl Read + Write),
    authority: &str,
    authorization: Option<&str>,
    hop: &'static str,
) -> Result<(), PathError> {
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(value) = authorization {
        head.push_str(&format!("Authorization: {value}\r\n"));
    }
    head.push_str("\r\n");
    let io = |source| PathError::Tls { hop, source };
    stream.write_all(head.as_bytes()).map_err(io)?;
    stream.flush().map_err(io)?;
    let buf = read_head(stream, MAX_HEAD).map_err(|e| match e {
        HeadError::Io(e) => io(e),
        HeadError::TooLong | HeadError::Closed => PathError::MalformedResponse { hop },
    })?;
    let (status, body_hint) = parse_status(&buf).ok_or(PathError::MalformedResponse { hop })?;
    if status != 200 {
        // The body (a short plain-text reason from our services) follows; read a bounded part.
        let mut reason = vec![0u8; body_hint.min(512)];
        let n = stream.read(&mut reason).unwrap_or(0);
        let text = String::from_utf8_lossy(&reason[..n]).trim().to_string();
        let reason = if text.is_empty() {
            String::new()
        } else {
            let text: String = text.chars().take(200).collect();
            format!(
                ": {}",
                crate::show::printable(&text, crate::show::Breaks::Escape)
            )
        };
        return Err(PathError::Refused {
            hop,
            status,
            reason,
        });
    }
    Ok(())
}

/// Why an HTTP response head could not be read ([`read_head`]).
#[derive(Debug)]
pub enum HeadError {
    /// Longer than the bound before its blank line.
    TooLong,
    /// The connection ended before the blank line.
    Closed,
    /// The transport failed (a timeout included).
    Io(std::io::Error),
}

/// Reads an HTTP/1.1 response head up to and including its blank line, byte by byte so that
/// nothing after it (a tunnel's bytes, a body) is consumed; at most `max` bytes.
pub fn read_head(stream: &mut impl Read, max: usize) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= max {
            return Err(HeadError::TooLong);
        }
        match stream.read(&mut byte) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(HeadError::Io(e)),
        }
    }
    Ok(head)
}

/// The status code and Content-Length (0 if absent) of a response head.
fn parse_status(head: &[u8]) -> Option<(u16, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Some((response.code?, length))
}

#[cfg(test)]
mod tests {
    use super::parse_status;

    #[test]
    fn parses_status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n\r\n"), Some((200, 0)));
        assert_eq!(
            parse_status(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 12\r\n\r\n"),
            Some((401, 12))
        );
        assert_eq!(parse_status(b"garbage\r\n\r\n"), None);
    }
}
