//! The pieces of the one-shot (OHTTP) path for the services' tests: `pp-gateway` with its own
//! OHTTP key and `pp-relay` in ORR mode as processes, fake one-shot enclaves that are real RFC
//! 9458 servers behind the frame protocol, and a device that seals and posts.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pp_client::inner::{self, InnerResponse};
use pp_protocol::frame::{ErrorCode, Frame, FrameRepr, FrameType, MAX_PAYLOAD};
use pp_tokens::{Client, Issuer, IssuerKeyEntry, authorization_value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{self, Process, spawn_service, tls_from};

pub const GATEWAY: &str = "gateway.pp.test";
pub const RELAY: &str = "relay.pp.test";
pub const ISSUER: &str = "issuer.pp.test";
/// Instance A and B (fake enclaves with their own keys), one whose one-shot port is closed,
/// one without a one-shot port.
pub const A: &str = "i-000000000000000a";
pub const B: &str = "i-000000000000000b";
pub const DOWN: &str = "i-00000000000000dd";
pub const NO_ONESHOT: &str = "i-00000000000000ee";

/// A fake one-shot enclave: a real `ohttp::Server` behind the frame protocol. It opens the
/// request and answers `echo:` + the plaintext, sealed; a request it cannot open gets `Error`
/// 5 (open failed), as the enclave answers.
pub struct Enclave {
    pub addr: SocketAddr,
    pub config: Vec<u8>,
    /// Frames received.
    pub frames: Arc<AtomicUsize>,
}

impl Enclave {
    pub fn start(key_id: u8) -> Self {
        use ohttp::hpke::{Aead, Kdf, Kem};
        let config = ohttp::KeyConfig::new(
            key_id,
            Kem::X25519Sha256,
            vec![ohttp::SymmetricSuite::new(Kdf::HkdfSha256, Aead::Aes128Gcm)],
        )
        .unwrap();
        let encoded = config.encode().unwrap();
        let server = Arc::new(ohttp::Server::new(config).unwrap());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let frames = Arc::new(AtomicUsize::new(0));
        let counted = frames.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (server, counted) = (server.clone(), counted.clone());
                std::thread::spawn(move || {
                    let bound = |t| (t == FrameType::SealedRequest).then_some(MAX_PAYLOAD);
                    let Ok(Some(frame)) = pp_protocol::io::read_frame(&mut stream, bound) else {
                        return;
                    };
                    counted.fetch_add(1, Ordering::SeqCst);
                    let view = Frame::new_checked(&frame[..]).unwrap();
                    let FrameRepr::SealedRequest { encapsulated } =
                        FrameRepr::parse(&view).unwrap()
                    else {
                        return;
                    };
                    let answer = match server.decapsulate(encapsulated) {
                        Ok((plain, context)) => {
                            let mut echo = b"echo:".to_vec();
                            echo.extend_from_slice(&plain);
                            context.encapsulate(&echo).unwrap()
                        }
                        Err(_) => {
                            let error = FrameRepr::Error {
                                code: ErrorCode::OpenFailed,
                            };
                            let _ = pp_protocol::io::write_frame(&mut stream, &error);
                            return;
                        }
                    };
                    let sealed = FrameRepr::SealedResponse {
                        encapsulated: &answer,
                    };
                    let _ = pp_protocol::io::write_frame(&mut stream, &sealed);
                });
            }
        });
        Self {
            addr,
            config: encoded,
            frames,
        }
    }

    pub fn frames(&self) -> usize {
        self.frames.load(Ordering::SeqCst)
    }
}

/// Writes the gateway's `issuer-keys.jsonl`: `issuer`'s key logged as valid for a day, and
/// `retired`'s logged for a window that ended an hour ago.
pub fn write_logged_keys(dir: &Path, issuer: &Issuer, retired: &Issuer) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut lines = Vec::new();
    for (key, epoch, from, to) in [
        (retired, 0, now - 7200, now - 3600),
        (issuer, 1, now - 60, now + 86_400),
    ] {
        let entry = IssuerKeyEntry::new(ISSUER, key.public_key().clone(), epoch, from, to).unwrap();
        lines.extend_from_slice(&entry.to_vec());
        lines.push(b'\n');
    }
    std::fs::write(dir.join("issuer-keys.jsonl"), lines).unwrap();
}

/// A free loopback port nothing listens on.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// The whole one-shot path: gateway (with its OHTTP key) and ORR relay, two enclaves.
pub struct Stack {
    pub dir: PathBuf,
    pub issuer: Issuer,
    /// An issuer key whose logged window is over.
    pub retired: Issuer,
    pub gateway_config: Vec<u8>,
    pub gateway: SocketAddr,
    pub relay: SocketAddr,
    pub a: Enclave,
    pub b: Enclave,
    _processes: Vec<Process>,
}

impl Stack {
    pub fn start(name: &str) -> Self {
        Self::start_with(name, &[])
    }

    /// [`Stack::start`] with more `pp-gateway serve` arguments.
    pub fn start_with(name: &str, extra: &[&str]) -> Self {
        let dir = common::temp_dir(name);
        common::certs(&dir, &[GATEWAY, RELAY]);
        let (issuer, retired) = (Issuer::generate().unwrap(), Issuer::generate().unwrap());
        write_logged_keys(&dir, &issuer, &retired);
        let (a, b) = (Enclave::start(1), Enclave::start(2));
        let map = format!(
            "{{\"instances\": [\
             {{\"id\": \"{A}\", \"address\": \"127.0.0.1:9\", \"oneshot_address\": \"{}\"}},\
             {{\"id\": \"{B}\", \"address\": \"127.0.0.1:9\", \"oneshot_address\": \"{}\"}},\
             {{\"id\": \"{DOWN}\", \"address\": \"127.0.0.1:9\", \"oneshot_address\": \"{}\"}},\
             {{\"id\": \"{NO_ONESHOT}\", \"address\": \"127.0.0.1:9\"}}]}}",
            a.addr,
            b.addr,
            closed_port()
        );
        std::fs::write(dir.join("instances.json"), map).unwrap();
        let keygen = std::process::Command::new(env!("CARGO_BIN_EXE_pp-gateway"))
            .args(["ohttp-keygen", "--out"])
            .arg(dir.join("gw"))
            .output()
            .unwrap();
        assert!(keygen.status.success(), "{keygen:?}");
        let gateway_config = std::fs::read(dir.join("gw/ohttp-keys")).unwrap();
        let p = |rel: &str| dir.join(rel).display().to_string();
        let (g, gateway) = spawn_service(
            env!("CARGO_BIN_EXE_pp-gateway"),
            &[
                &[
                    "serve",
                    "--listen",
                    "127.0.0.1:0",
                    "--cert",
                    &p(&format!("{GATEWAY}.pem")),
                    "--key",
                    &p(&format!("{GATEWAY}.key")),
                    "--origin",
                    GATEWAY,
                    "--issuer-name",
                    ISSUER,
                    "--issuer-keys",
                    &p("issuer-keys.jsonl"),
                    "--instances",
                    &p("instances.json"),
                    "--spent",
                    &p("spent.db"),
                    "--ohttp-key",
                    &p("gw/ohttp-key.json"),
                ][..],
                extra,
            ]
            .concat(),
            &dir.join("gateway.log"),
        );
        let (r, relay) = start_relay(&dir, &format!("{gateway}"));
        Self {
            dir,
            issuer,
            retired,
            gateway_config,
            gateway,
            relay,
            a,
            b,
            _processes: vec![g, r],
        }
    }

    /// A fresh token's `Authorization` value.
    pub fn token(&self) -> String {
        self.token_of(&self.issuer)
    }

    /// A fresh token of `issuer`'s key.
    pub fn token_of(&self, issuer: &Issuer) -> String {
        let challenge = pp_services::gateway::challenge(ISSUER, GATEWAY).unwrap();
        let (request, pending) = Client::prepare(&challenge, issuer.public_key()).unwrap();
        let token = Client::finalize(pending, &issuer.issue(&request).unwrap()).unwrap();
        authorization_value(&token)
    }

    /// Seals `body` to `enclave_config`, wraps it for instance `id` with `authorization`, and
    /// seals that to the gateway: (encapsulated request, gateway context, enclave context).
    pub fn seal(
        &self,
        enclave_config: &[u8],
        id: &str,
        authorization: &str,
        body: &[u8],
    ) -> (Vec<u8>, ohttp::ClientResponse, ohttp::ClientResponse) {
        let (sealed, enclave) = ohttp::ClientRequest::from_encoded_config(enclave_config)
            .unwrap()
            .encapsulate(body)
            .unwrap();
        let inner = inner::build_inner_request(GATEWAY, id, authorization, &sealed).unwrap();
        let (outer, gateway) = ohttp::ClientRequest::from_encoded_config(&self.gateway_config)
            .unwrap()
            .encapsulate(&inner)
            .unwrap();
        (outer, gateway, enclave)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `pp-relay` in ORR mode towards the gateway at `gateway` (`host:port`).
pub fn start_relay(dir: &Path, gateway: &str) -> (Process, SocketAddr) {
    let p = |rel: &str| dir.join(rel).display().to_string();
    spawn_service(
        env!("CARGO_BIN_EXE_pp-relay"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--cert",
            &p(&format!("{RELAY}.pem")),
            "--key",
            &p(&format!("{RELAY}.key")),
            "--ohttp-gateway",
            &format!("https://{GATEWAY}/.well-known/ohttp-gateway={gateway}"),
            "--gateway-ca",
            &p("ca.pem"),
        ],
        &dir.join("relay.log"),
    )
}

/// One HTTP/1.1 answer: status, headers (lowercase names), body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Opens the encapsulated response and decodes the inner BHTTP response.
    pub fn open(&self, context: ohttp::ClientResponse) -> InnerResponse {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(self.header("content-type"), Some("message/ohttp-res"));
        let inner = context.decapsulate(&self.body).unwrap();
        inner::parse_inner_response(&inner).unwrap()
    }
}

/// A TLS connection to `name` at `addr` that can carry several requests.
pub struct Conn(pub tokio_rustls::client::TlsStream<tokio::net::TcpStream>);

impl Conn {
    pub async fn open(dir: &Path, addr: SocketAddr, name: &str) -> Self {
        Self(tls_from([127, 0, 0, 1], addr, dir, name).await.unwrap())
    }

    /// Sends `method path` with `headers` (lines without CRLF) and `body`; reads the answer.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: &[u8],
    ) -> std::io::Result<Answer> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n");
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        self.0.write_all(head.as_bytes()).await?;
        self.0.write_all(body).await?;
        read_answer(&mut self.0).await
    }

    /// `POST path` of a `message/ohttp-req` body.
    pub async fn post(&mut self, path: &str, body: &[u8]) -> Answer {
        self.send("POST", path, &["Content-Type: message/ohttp-req"], body)
            .await
            .unwrap()
    }
}

/// Reads one response with a Content-Length body.
pub async fn read_answer<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Answer> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).unwrap();
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).await?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}
