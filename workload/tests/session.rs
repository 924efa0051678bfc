//! The enclave side of the attested session, as a Linux process with the test attester: a device
//! (pp-client) gets verified evidence and sealed answers; malformed, oversized, early or
//! wrongly-sealed frames get an error code and a closed connection; request text never reaches
//! the log. Needs the `test-attester` feature and PP_TEST_ROOT_DIR (`cargo xtask test` sets both).
#![cfg(feature = "test-attester")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use pp_attestation::test_signer::{TEST_MEASUREMENT, TEST_TCB};
use pp_protocol::frame::{ErrorCode, Frame, FrameRepr, NONCE_LEN};

const CANARY: &str = "canary-51e0: never in any log";

mod common;

struct Enclave {
    workload: common::Workload,
    log: std::sync::mpsc::Receiver<String>,
}

fn start() -> Enclave {
    let mut workload = common::spawn(Stdio::piped(), Stdio::piped());
    let child = &mut workload.child;
    let (tx, log) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
    }
    let enclave = Enclave { workload, log };
    loop {
        let line = enclave
            .log
            .recv_timeout(Duration::from_secs(30))
            .expect("ready line");
        if line.contains("pp-workload: ready") {
            return enclave;
        }
    }
}

fn policy() -> pp_verifier::Policy {
    let ark = std::fs::read(concat!(env!("PP_TEST_ROOT_DIR"), "/ark.der")).unwrap();
    pp_verifier::Policy::trusting_test_root(&ark, vec![TEST_MEASUREMENT], TEST_TCB).unwrap()
}

/// A TLS client that speaks raw frames (accepting any certificate: these tests attack the enclave).
fn raw_session(port: u16) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    #[derive(Debug)]
    struct AnyCert;
    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AnyCert))
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "pp-enclave".try_into().unwrap()).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// Read frames until an Error frame; return its code (panics if the enclave answers otherwise).
fn expect_error(stream: &mut impl Read) -> ErrorCode {
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    let mut rest = &all[..];
    while rest.len() >= 8 {
        let len = u32::from_be_bytes(rest[4..8].try_into().unwrap()) as usize;
        let (one, tail) = rest.split_at(8 + len);
        if let FrameRepr::Error { code } =
            FrameRepr::parse(&Frame::new_checked(one).unwrap()).unwrap()
        {
            return code;
        }
        rest = tail;
    }
    panic!("no error frame before the connection closed");
}

#[test]
fn a_device_gets_verified_evidence_and_sealed_answers() {
    let enclave = start();
    let sock = TcpStream::connect(("127.0.0.1", enclave.workload.tls_port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut session = pp_client::connect(sock, &policy(), pp_client::Limits::default()).unwrap();
    assert!(session.verdict().accepted());
    assert_eq!(session.measurement(), TEST_MEASUREMENT);
    let message = |text: &str| pp_protocol::app::Message {
        sender: "Ana".into(),
        text: text.into(),
        time: None,
    };
    let request = pp_protocol::app::AppRequest::Summarize {
        thread: vec![
            message(CANARY),
            message("dinner at six?"),
            message("yes, see you"),
        ],
        k: 2,
    };
    for _ in 0..3 {
        let answer = session.request(&request.to_vec()).unwrap();
        match pp_protocol::app::AppResponse::parse_for(&answer, &request).unwrap() {
            pp_protocol::app::AppResponse::Summary { picks, .. } => assert_eq!(picks.len(), 2),
            other => panic!("{other:?}"),
        }
    }
    // A request the features refuse gets an in-band error code, and the session goes on.
    let answer = session.request(b"not json").unwrap();
    assert_eq!(answer, br#"{"error":"not-json"}"#);
    let _ = session.close();
    let mut log = Vec::new();
    while let Ok(line) = enclave.log.recv_timeout(Duration::from_secs(5)) {
        log.push(line);
        if log.last().unwrap().contains("pp-workload: session=1 ") {
            break;
        }
    }
    assert!(
        log.iter().any(|l| l.contains("session=1 ok requests=4")),
        "{log:?}"
    );
    assert!(log.iter().all(|l| !l.contains("canary")), "{log:?}");
}

#[test]
fn the_enclave_refuses_what_breaks_the_protocol() {
    let enclave = start();
    let send = |frames: &[Vec<u8>]| {
        let mut s = raw_session(enclave.workload.tls_port);
        for f in frames {
            s.write_all(f).unwrap();
        }
        s.flush().unwrap();
        expect_error(&mut s)
    };
    let attest = FrameRepr::AttestRequest {
        nonce: [1; NONCE_LEN],
        key_id: None,
    }
    .to_vec()
    .unwrap();
    // A sealed request before attestation.
    let early = FrameRepr::SealedRequest { encapsulated: b"x" }
        .to_vec()
        .unwrap();
    assert_eq!(send(&[early]), ErrorCode::UnexpectedFrame);
    // Garbage instead of a frame.
    assert_eq!(
        send(&[b"GET / HTTP/1.0\r\n\r\n".to_vec()]),
        ErrorCode::MalformedFrame
    );
    // A header announcing more than the bound: refused before any payload is read.
    assert_eq!(
        send(&[vec![b'P', b'P', 1, 1, 0x7f, 0, 0, 0]]),
        ErrorCode::TooLarge
    );
    // A request sealed to another key (a fresh key configuration the enclave never had).
    let mut other = ohttp::KeyConfig::new(
        1,
        ohttp::hpke::Kem::X25519Sha256,
        vec![ohttp::SymmetricSuite::new(
            ohttp::hpke::Kdf::HkdfSha256,
            ohttp::hpke::Aead::ChaCha20Poly1305,
        )],
    )
    .unwrap();
    let (sealed, _) = ohttp::ClientRequest::from_config(&mut other)
        .unwrap()
        .encapsulate(CANARY.as_bytes())
        .unwrap();
    let wrong = FrameRepr::SealedRequest {
        encapsulated: &sealed,
    }
    .to_vec()
    .unwrap();
    assert_eq!(send(&[attest.clone(), wrong]), ErrorCode::OpenFailed);
    // An oversized request after attestation.
    let huge = [b'P', b'P', 1, 3, 0x00, 0x20, 0x00, 0x00];
    assert_eq!(send(&[attest, huge.to_vec()]), ErrorCode::TooLarge);
    let mut log = Vec::new();
    while let Ok(line) = enclave.log.recv_timeout(Duration::from_secs(2)) {
        log.push(line);
    }
    assert_eq!(
        log.iter().filter(|l| l.contains(" error=")).count(),
        5,
        "{log:?}"
    );
    assert!(log.iter().all(|l| !l.contains("canary")), "{log:?}");
}

#[test]
fn a_corrupt_blob_fails_requests_not_the_session() {
    // Past the header the blob is checked on first use: every request is then refused in-band.
    let mut blob = std::fs::read(common::tiny_weights()).unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 1;
    let path = std::env::temp_dir().join(format!("pp-corrupt-blob-{}", std::process::id()));
    std::fs::write(&path, blob).unwrap();
    let workload = common::spawn_with_weights(&path, Stdio::null(), Stdio::null());
    std::thread::sleep(Duration::from_millis(300));
    let sock = loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", workload.tls_port)) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut session = pp_client::connect(sock, &policy(), pp_client::Limits::default()).unwrap();
    let request = pp_protocol::app::AppRequest::Summarize {
        thread: vec![pp_protocol::app::Message {
            sender: "Ana".into(),
            text: "hello".into(),
            time: None,
        }],
        k: 1,
    };
    let answer = session.request(&request.to_vec()).unwrap();
    assert_eq!(answer, br#"{"error":"model-refused"}"#);
}

/// Issue 14, L4: the one-shot port's log line has counters and the error's name, no timing.
#[test]
fn the_oneshot_log_has_no_per_request_timing() {
    let enclave = start();
    let mut sock = TcpStream::connect(("127.0.0.1", enclave.workload.oneshot_port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    sock.write_all(b"POST / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(expect_error(&mut sock), ErrorCode::MalformedFrame);
    let line = loop {
        let line = enclave
            .log
            .recv_timeout(Duration::from_secs(10))
            .expect("a one-shot log line");
        if line.contains("oneshot") {
            break line;
        }
    };
    assert_eq!(line, "pp-workload: oneshot error=Malformed errors=1");
}
