//! Peers that never finish their handshake do not hold the enclave: six clients drip a TLS
//! ClientHello one byte at a time while a device opens an attested session and gets answers
//! (it used to be refused `busy` at once, and still refused past the 30 s read timeout); the
//! drippers are cut off by the handshake deadline, not by a per-read timeout they can reset
//! forever. A connection that finds every handshake slot taken is closed at once; a session
//! that never sends its first request, or runs past the session deadline, is ended `Timeout`.
//! Needs the `test-attester` feature and PP_TEST_ROOT_DIR (`cargo xtask test` sets both).
#![cfg(feature = "test-attester")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pp_attestation::test_signer::{TEST_MEASUREMENT, TEST_TCB};
use pp_protocol::app::{AppRequest, AppResponse, Message};
use pp_protocol::frame::ErrorCode;
use pp_workload::server::{self, HANDSHAKE_DEADLINE, Limits};

mod common;

const DRIPPERS: usize = 6;
/// Time between two dripped bytes: far below the 30 s silence bound, so only a total deadline
/// stops a dripper.
const DRIP_EVERY: Duration = Duration::from_millis(250);

fn policy() -> pp_verifier::Policy {
    let ark = std::fs::read(concat!(env!("PP_TEST_ROOT_DIR"), "/ark.der")).unwrap();
    pp_verifier::Policy::trusting_test_root(&ark, vec![TEST_MEASUREMENT], TEST_TCB).unwrap()
}

/// The bytes of a real TLS 1.3 ClientHello.
fn client_hello() -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), "pp-enclave".try_into().unwrap()).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    hello
}

/// A client that sends a ClientHello one byte every [`DRIP_EVERY`]; returns how long after
/// connecting the enclave closed the connection (None: it never did while it dripped).
fn dripper(addr: SocketAddr) -> JoinHandle<Option<Duration>> {
    let mut sock = TcpStream::connect(addr).unwrap();
    let connected = Instant::now();
    std::thread::spawn(move || {
        let mut reader = sock.try_clone().unwrap();
        let watch = std::thread::spawn(move || {
            // Blocks until the enclave closes (or resets) the connection.
            let _ = reader.read(&mut [0u8; 1]);
            connected.elapsed()
        });
        for byte in client_hello() {
            if sock.write_all(&[byte]).is_err() {
                break;
            }
            std::thread::sleep(DRIP_EVERY);
            if watch.is_finished() {
                break;
            }
        }
        let _ = sock.shutdown(std::net::Shutdown::Both);
        let closed = watch.join().unwrap();
        (closed < Duration::from_secs(60)).then_some(closed)
    })
}

/// A device's whole exchange: attested session, one summarize request, the answer checked.
fn honest_request(addr: SocketAddr) -> Result<Duration, String> {
    let started = Instant::now();
    let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    let mut session = pp_client::connect(sock, &policy(), pp_client::Limits::default())
        .map_err(|e| format!("{e:?}"))?;
    let request = AppRequest::Summarize {
        thread: ["dinner at six?", "yes", "see you there"]
            .iter()
            .map(|t| Message {
                sender: "Ana".into(),
                text: (*t).into(),
                time: None,
            })
            .collect(),
        k: 2,
    };
    let answer = session
        .request(&request.to_vec())
        .map_err(|e| format!("{e:?}"))?;
    match AppResponse::parse_for(&answer, &request) {
        Ok(AppResponse::Summary { picks, .. }) if picks.len() == 2 => {}
        other => return Err(format!("{other:?}")),
    }
    let _ = session.close();
    Ok(started.elapsed())
}

/// The enclave as it runs (the binary, default limits), six drippers, one device.
#[test]
fn six_dripping_handshakes_do_not_stop_a_device() {
    let workload = common::spawn(Stdio::null(), Stdio::null());
    let addr: SocketAddr = ([127, 0, 0, 1], workload.tls_port).into();
    common::wait_for(addr);
    // Load the models first, so the measured request is a normal one.
    honest_request(addr).expect("warm-up request");

    let drippers: Vec<_> = (0..DRIPPERS).map(|_| dripper(addr)).collect();
    std::thread::sleep(Duration::from_millis(500));
    // Generous: a normal request takes milliseconds; it used to fail at once (busy) and again
    // past the 30 s read timeout.
    let took = honest_request(addr).expect("the device's request, with the drippers connected");
    assert!(took < Duration::from_secs(5), "{took:?}");
    for d in drippers {
        let closed = d.join().unwrap().expect("the dripper was never cut off");
        assert!(
            closed >= HANDSHAKE_DEADLINE - Duration::from_millis(100)
                && closed < HANDSHAKE_DEADLINE + Duration::from_secs(2),
            "cut off after {closed:?}, not by the {HANDSHAKE_DEADLINE:?} handshake deadline"
        );
    }
}

/// The server in this process with `limits`, the tiny models and the test attester.
fn in_process(limits: Limits) -> (server::Server, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let identity = pp_workload::tls::fresh_identity().unwrap();
    let blob = pp_inference::bundle::tiny_blob(pp_inference::bundle::TINY_SEED).unwrap();
    let enclave = pp_workload::session::Enclave {
        attester: pp_workload::attest::attester().unwrap().0,
        keys: pp_workload::keys::KeyRing::new().unwrap(),
        handler: Box::new(pp_workload::features::Features::load(&blob).unwrap()),
        release_ref: [0; 32],
        max_request: pp_protocol::frame::MAX_PAYLOAD,
        gate: pp_workload::gate::Gate::for_handler(),
    };
    let running = server::spawn(listener, identity.config, Arc::new(enclave), limits);
    (running, addr)
}

/// With every handshake slot taken, a new connection is closed at once (not queued behind the
/// drippers), and served again once their deadline has passed. In process, with short deadlines.
#[test]
fn a_full_house_refuses_fast_and_recovers() {
    let (running, addr) = in_process(Limits {
        handshake_slots: 2,
        handshake: Duration::from_millis(800),
        ..Limits::default()
    });
    let drippers: Vec<_> = (0..2).map(|_| dripper(addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let refused = honest_request(addr);
    assert!(refused.is_err(), "{refused:?}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    for d in drippers {
        let closed = d.join().unwrap().expect("cut off");
        assert!(closed < Duration::from_secs(3), "{closed:?}");
    }
    honest_request(addr).expect("served once the drippers are gone");
    assert!(running.counters.busy.load(Ordering::Relaxed) >= 1);
    running.stop();
}

/// An attested session that never sends its first request does not take a worker: it is ended
/// (`Timeout`) at the first-request deadline. A session that goes on sending requests, each in
/// time, is ended at the session deadline.
/// A session that got its answer and then idles is ended at the idle bound, not at the session
/// deadline: with one worker, a device that arrives meanwhile is served soon after.
#[test]
fn an_idle_session_between_requests_frees_its_worker() {
    let (running, addr) = in_process(Limits {
        workers: 1,
        idle: Duration::from_millis(800),
        session: Duration::from_secs(120),
        ..Limits::default()
    });
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut idle = pp_client::connect(sock, &policy(), pp_client::Limits::default()).unwrap();
    assert_eq!(
        idle.request(b"not json").unwrap(),
        br#"{"error":"not-json"}"#
    );
    // The idle session holds the one worker until its idle bound; this device waits in the
    // queue meanwhile and is then served.
    let started = Instant::now();
    honest_request(addr).expect("served once the idle session was ended");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    let late = idle.request(b"{}");
    assert!(
        matches!(
            late,
            Err(pp_client::ClientError::Refused(ErrorCode::Timeout))
        ),
        "{late:?}"
    );
    running.stop();
}

#[test]
fn sessions_end_at_their_deadlines() {
    let (running, addr) = in_process(Limits {
        workers: 1,
        first_request: Duration::from_millis(600),
        session: Duration::from_millis(2500),
        ..Limits::default()
    });
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let idle = pp_client::connect(sock, &policy(), pp_client::Limits::default()).unwrap();
    // Meanwhile the one worker is free: a device is served.
    honest_request(addr).expect("served while a session idles before its first request");
    std::thread::sleep(Duration::from_millis(900));
    let mut idle = idle;
    let late = idle.request(b"{}");
    assert!(
        matches!(
            late,
            Err(pp_client::ClientError::Refused(ErrorCode::Timeout))
        ),
        "{late:?}"
    );

    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut busy = pp_client::connect(sock, &policy(), pp_client::Limits::default()).unwrap();
    let ended = loop {
        match busy.request(b"not json") {
            Ok(answer) => assert_eq!(answer, br#"{"error":"not-json"}"#),
            Err(e) => break e,
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never ended");
        std::thread::sleep(Duration::from_millis(200));
    };
    let took = started.elapsed();
    assert!(
        matches!(ended, pp_client::ClientError::Refused(ErrorCode::Timeout)),
        "{ended:?}"
    );
    assert!(
        took >= Duration::from_millis(2300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    running.stop();
}
