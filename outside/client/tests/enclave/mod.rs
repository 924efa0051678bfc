//! A fake enclave for tests only: TLS (rustls, rcgen self-signed certificate), the session frames,
//! evidence from `pp_attestation`'s test attester bound exactly as docs/protocol.md says (or
//! wrongly, on purpose), and `ohttp`'s server side to open requests. One connection per enclave,
//! served on a thread over loopback; [`Enclave::finish`] returns what it saw.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use ohttp::hpke::{Aead, Kdf, Kem};
use ohttp::{ClientRequest, KeyConfig, SymmetricSuite};
use pp_attestation::{Attester, TcbVersion};
use pp_client::{ClientError, Limits, Session};
use pp_protocol::evidence::EvidenceRepr;
use pp_protocol::frame::{self, Frame, FrameRepr, HEADER_LEN};
use pp_protocol::padding;
use pp_verifier::Policy;
use pp_verifier::test_attester::{TestAttester, TestRoot};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

pub const MEASUREMENT: [u8; 48] = [0x4D; 48];
pub const RELEASE_REF: [u8; 32] = [0x3A; 32];
pub const SERVER_NAME: &str = pp_protocol::ENCLAVE_SERVER_NAME;
pub const TCB: TcbVersion = TcbVersion::new(3, 0, 8, 115);
/// Long enough never to fire in a passing test; a hang becomes a failure instead.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Generating the RSA-4096 test root takes seconds: once per test binary.
pub fn root() -> Arc<TestRoot> {
    static ROOT: OnceLock<Arc<TestRoot>> = OnceLock::new();
    ROOT.get_or_init(|| Arc::new(TestRoot::generate([7; 32]).expect("test root")))
        .clone()
}

/// Trusts the test root only, allows [`MEASUREMENT`].
pub fn test_policy() -> Policy {
    Policy::trusting_test_root(root().ark_der(), vec![MEASUREMENT], TCB).expect("policy")
}

/// What `REPORT_DATA` binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    Honest,
    /// Another nonce than the device's (a stale report).
    OtherNonce,
    /// A zero exporter instead of this session's (a report made for another session).
    ZeroExporter,
}

/// What the enclave sends in answer to the attestation request.
pub enum Reply {
    Evidence,
    /// These bytes instead; then `close_notify` if `close`, else wait for the device to hang up.
    Raw {
        bytes: Vec<u8>,
        close: bool,
    },
}

/// How the enclave answers a sealed request.
pub enum Respond {
    /// `"echo:" ++ request`, padded (`pp_protocol::padding`) and sealed for the request.
    Echo,
    /// The echo padded, then one padding byte set to 1 before sealing.
    DirtyPadding,
    /// The echo sealed without padding (as an enclave before padding answered).
    Unpadded,
    /// A response sealed for a request to another key.
    OtherKey,
    /// A `SealedResponse` frame holding bytes that are not a sealed response.
    Garbage,
    /// These bytes instead, as in [`Reply::Raw`].
    Raw { bytes: Vec<u8>, close: bool },
}

/// TLS as the enclave speaks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    Tls13,
    Tls12Only,
    /// Presents one certificate but signs `CertificateVerify` with another key.
    WrongSigningKey,
}

pub struct Behaviour {
    pub tls: Tls,
    pub binding: Binding,
    pub measurement: [u8; 48],
    /// Attest (and bind) these bytes instead of the real key configuration.
    pub key_config: Option<Vec<u8>>,
    pub reply: Reply,
    pub respond: Respond,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            tls: Tls::Tls13,
            binding: Binding::Honest,
            measurement: MEASUREMENT,
            key_config: None,
            reply: Reply::Evidence,
            respond: Respond::Echo,
        }
    }
}

/// What the enclave saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub handshake_failed: bool,
    pub nonce: Option<[u8; 32]>,
    /// The key id the attestation request asked for (33-byte form), if any.
    pub key_id: Option<u8>,
    /// Request bodies it opened (unpadded).
    pub requests: Vec<Vec<u8>>,
    /// The length of each sealed request (the `SealedRequest` payload) it received.
    pub sealed_lens: Vec<usize>,
    /// Bytes received after its last reply (evidence or response) and not consumed as a request.
    pub bytes_after_reply: usize,
}

pub struct Enclave {
    addr: SocketAddr,
    /// The key configuration the honest enclave attests.
    pub key_config: Vec<u8>,
    thread: JoinHandle<Seen>,
}

impl Enclave {
    pub fn spawn(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let ohttp = ohttp_server(1);
        let key_config = ohttp.config().encode().expect("encode key config");
        let tls = Arc::new(server_config(behaviour.tls));
        let thread = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().expect("accept");
            tcp.set_read_timeout(Some(TIMEOUT)).expect("timeout");
            let conn = ServerConnection::new(tls).expect("server connection");
            serve(StreamOwned::new(conn, tcp), &behaviour, &ohttp)
        });
        Self {
            addr,
            key_config,
            thread,
        }
    }

    pub fn connect(
        &self,
        policy: &Policy,
        limits: Limits,
    ) -> Result<Session<TcpStream>, ClientError> {
        let tcp = TcpStream::connect(self.addr).expect("connect");
        tcp.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        tcp.set_write_timeout(Some(TIMEOUT)).expect("timeout");
        pp_client::connect(tcp, policy, limits)
    }

    /// Waits for the connection to end (drop or close the session first).
    pub fn finish(self) -> Seen {
        self.thread.join().expect("enclave thread")
    }
}

/// A well-formed X25519 key configuration (of a key nobody uses).
pub fn sample_key_config() -> Vec<u8> {
    ohttp_server(3)
        .config()
        .encode()
        .expect("encode key config")
}

fn ohttp_server(key_id: u8) -> ohttp::Server {
    let suites = vec![
        SymmetricSuite::new(Kdf::HkdfSha256, Aead::ChaCha20Poly1305),
        SymmetricSuite::new(Kdf::HkdfSha256, Aead::Aes128Gcm),
    ];
    ohttp::Server::new(KeyConfig::new(key_id, Kem::X25519Sha256, suites).expect("key config"))
        .expect("ohttp server")
}

fn self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()]).expect("cert");
    let key = PrivatePkcs8KeyDer::from(made.key_pair.serialize_der());
    (made.cert.der().clone(), key.into())
}

#[derive(Debug)]
struct MismatchedKey(Arc<CertifiedKey>);

impl ResolvesServerCert for MismatchedKey {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn server_config(tls: Tls) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match tls {
        Tls::Tls12Only => &[&rustls::version::TLS12],
        Tls::Tls13 | Tls::WrongSigningKey => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_no_client_auth();
    let (cert, key) = self_signed();
    if tls == Tls::WrongSigningKey {
        let (_, other_key) = self_signed();
        let signer = rustls::crypto::ring::sign::any_supported_type(&other_key).expect("key");
        builder.with_cert_resolver(Arc::new(MismatchedKey(Arc::new(CertifiedKey::new(
            vec![cert],
            signer,
        )))))
    } else {
        builder.with_single_cert(vec![cert], key).expect("cert")
    }
}

type Stream = StreamOwned<ServerConnection, TcpStream>;

fn serve(mut tls: Stream, behaviour: &Behaviour, ohttp: &ohttp::Server) -> Seen {
    let mut seen = Seen::default();
    while tls.conn.is_handshaking() {
        if tls.conn.complete_io(&mut tls.sock).is_err() {
            seen.handshake_failed = true;
            return seen;
        }
    }
    let Some(request) = read_frame(&mut tls, &mut 0) else {
        return seen;
    };
    let view = Frame::new_checked(&request[..]).expect("attest request frame");
    let Ok(FrameRepr::AttestRequest { nonce, key_id }) = FrameRepr::parse(&view) else {
        panic!("the first frame is not an attestation request");
    };
    seen.nonce = Some(nonce);
    seen.key_id = key_id;

    match &behaviour.reply {
        Reply::Raw { bytes, close } => return send_raw(tls, bytes, *close, seen),
        Reply::Evidence => {
            let frame = evidence(&tls, behaviour, ohttp, nonce);
            send(&mut tls, &frame);
        }
    }
    loop {
        let Some(frame) = read_frame(&mut tls, &mut seen.bytes_after_reply) else {
            return seen;
        };
        let view = Frame::new_checked(&frame[..]).expect("frame");
        let Ok(FrameRepr::SealedRequest { encapsulated }) = FrameRepr::parse(&view) else {
            continue; // counted in `bytes_after_reply`
        };
        seen.sealed_lens.push(encapsulated.len());
        let (padded, opener) = ohttp.decapsulate(encapsulated).expect("request opens");
        let body = padding::unpad(&padded).expect("request padded").to_vec();
        seen.bytes_after_reply = 0;
        let echo = [b"echo:", &body[..]].concat();
        let sealed = match &behaviour.respond {
            Respond::Echo => opener
                .encapsulate(&padding::pad(&echo).expect("pad"))
                .expect("seal"),
            Respond::DirtyPadding => {
                let mut padded = padding::pad(&echo).expect("pad");
                *padded.last_mut().expect("padded") = 1;
                opener.encapsulate(&padded).expect("seal")
            }
            Respond::Unpadded => opener.encapsulate(&echo).expect("seal"),
            Respond::OtherKey => sealed_for_another_key(),
            Respond::Garbage => vec![0xA5; 80],
            Respond::Raw { bytes, close } => {
                seen.requests.push(body);
                return send_raw(tls, bytes, *close, seen);
            }
        };
        seen.requests.push(body);
        send(
            &mut tls,
            &FrameRepr::SealedResponse {
                encapsulated: &sealed,
            }
            .to_vec()
            .unwrap(),
        );
    }
}

/// The evidence frame for `behaviour`, bound to this session unless told otherwise.
fn evidence(
    tls: &Stream,
    behaviour: &Behaviour,
    ohttp: &ohttp::Server,
    nonce: [u8; 32],
) -> Vec<u8> {
    let key_config = match &behaviour.key_config {
        Some(k) => k.clone(),
        None => ohttp.config().encode().expect("encode key config"),
    };
    let mut exporter = [0u8; 32];
    if behaviour.binding != Binding::ZeroExporter {
        exporter = tls
            .conn
            .export_keying_material([0u8; 32], b"EXPORTER-pp-attestation", None)
            .expect("exporter");
    }
    let mut nonce = nonce;
    if behaviour.binding == Binding::OtherNonce {
        nonce[0] ^= 1;
    }
    let report_data = pp_attestation::report_data_for(&exporter, &nonce, &RELEASE_REF, &key_config);
    let ev = TestAttester::new(root(), behaviour.measurement)
        .attest(&report_data)
        .expect("attest");
    let bundle = EvidenceRepr {
        report: &ev.report,
        vcek: &ev.vcek_der,
        ask: &ev.ask_der,
        ark: &ev.ark_der,
        key_config: &key_config,
        release_ref: RELEASE_REF,
    }
    .to_vec()
    .expect("bundle");
    FrameRepr::Evidence { bundle: &bundle }
        .to_vec()
        .expect("frame")
}

/// A well-formed sealed response, but for a request to another key configuration.
fn sealed_for_another_key() -> Vec<u8> {
    let other = ohttp_server(2);
    let request = ClientRequest::from_encoded_config(&other.config().encode().unwrap()).unwrap();
    let (sealed, _) = request.encapsulate(b"another device").unwrap();
    let (_, opener) = other.decapsulate(&sealed).unwrap();
    opener.encapsulate(b"echo:not for you").unwrap()
}

fn send(tls: &mut Stream, bytes: &[u8]) {
    tls.write_all(bytes).expect("write");
    tls.flush().expect("flush");
}

fn send_raw(mut tls: Stream, bytes: &[u8], close: bool, mut seen: Seen) -> Seen {
    send(&mut tls, bytes);
    if close {
        tls.conn.send_close_notify();
        let _ = tls.flush();
    }
    seen.bytes_after_reply = drain(&mut tls);
    seen
}

/// Reads until the device hangs up; returns how many bytes it sent.
fn drain(tls: &mut Stream) -> usize {
    let mut total = 0;
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return total,
        }
    }
}

/// One frame, or `None` once the device hangs up; bytes read are added to `count`.
fn read_frame(tls: &mut Stream, count: &mut usize) -> Option<Vec<u8>> {
    let mut frame = vec![0u8; HEADER_LEN];
    read_exact_counted(tls, &mut frame, count)?;
    let len = frame::header_payload_len(&frame).expect("frame header");
    frame.resize(HEADER_LEN + len, 0);
    read_exact_counted(tls, &mut frame[HEADER_LEN..], count)?;
    Some(frame)
}

fn read_exact_counted(tls: &mut Stream, buf: &mut [u8], count: &mut usize) -> Option<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match tls.read(&mut buf[filled..]) {
            Ok(0) => return None,
            Ok(n) => {
                filled += n;
                *count += n;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(())
}
