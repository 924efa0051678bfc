//! The key ring at the enclave's doors: the one-shot port (plain TCP, one sealed request, one
//! answer) and the session. A replayed sealed request is refused `Replayed` (9) on either path —
//! also when it was first opened on the other one — and one under a rotated-out key
//! `UnknownKey` (10), the handler never running for either; a request under the previous key is
//! still answered; a 33-byte `AttestRequest` gets evidence binding the key it names, or
//! `UnknownKey`. The one-shot port refuses any other frame, an oversized one and a slow sender.
//! Both doors answer `Busy` (7), the handler not running, when the shared handler gate is full or
//! the current key is full past its period's one early rotation.
//! In process, with a counting handler, a recording attester and a clock the test moves.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pp_attestation::{AttestError, Attester, Evidence, publication_report_data, report_data_for};
use pp_protocol::evidence::EvidenceRepr;
use pp_protocol::frame::{ErrorCode, Frame, FrameRepr, FrameType, NONCE_LEN};
use pp_protocol::padding;
use pp_workload::handler::{Handler, HandlerError};
use pp_workload::keys::{Clock, KeyRing};
use pp_workload::oneshot::{self, Limits};
use pp_workload::session::{self, Channel, Enclave};

const PERIOD: Duration = Duration::from_secs(3600);

/// A clock the test moves by hand.
#[derive(Clone, Default)]
struct Fake(Arc<AtomicU64>);

impl Fake {
    fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
}

impl Clock for Fake {
    fn now(&self) -> Duration {
        Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}

/// Evidence of the right shape, unsigned; remembers the `REPORT_DATA` it was asked for.
#[derive(Clone, Default)]
struct Recording(Arc<Mutex<Vec<[u8; 64]>>>);

impl Attester for Recording {
    fn attest(&self, report_data: &[u8; 64]) -> Result<Evidence, AttestError> {
        self.0.lock().unwrap().push(*report_data);
        Ok(Evidence {
            report: vec![0; pp_protocol::evidence::REPORT_LEN],
            vcek_der: vec![1],
            ask_der: vec![2],
            ark_der: vec![3],
        })
    }
}

/// Echoes; counts its calls.
struct Counting(Arc<AtomicUsize>);

impl Handler for Counting {
    fn handle(&self, request: &[u8]) -> Result<Vec<u8>, HandlerError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(request.to_vec())
    }
}

struct World {
    enclave: Arc<Enclave>,
    clock: Fake,
    calls: Arc<AtomicUsize>,
    reports: Recording,
}

fn world() -> World {
    world_with(1 << 16)
}

/// A world whose keys remember at most `capacity` requests each.
fn world_with(capacity: usize) -> World {
    let clock = Fake::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let reports = Recording::default();
    let enclave = Enclave {
        attester: Box::new(reports.clone()),
        keys: KeyRing::with(Box::new(clock.clone()), PERIOD, capacity).unwrap(),
        handler: Box::new(Counting(calls.clone())),
        release_ref: [7; 32],
        max_request: pp_protocol::frame::MAX_PAYLOAD,
        gate: pp_workload::gate::Gate::for_handler(),
    };
    World {
        enclave: Arc::new(enclave),
        clock,
        calls,
        reports,
    }
}

impl World {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn current(&self) -> Vec<u8> {
        self.enclave.keys.current().unwrap().1
    }

    fn oneshot(&self, limits: Limits) -> (oneshot::OneShot, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        (oneshot::spawn(listener, self.enclave.clone(), limits), addr)
    }
}

/// `body` padded and sealed to `config`, with the context that opens its answer.
fn seal(config: &[u8], body: &[u8]) -> (Vec<u8>, ohttp::ClientResponse) {
    ohttp::ClientRequest::from_encoded_config(config)
        .unwrap()
        .encapsulate(&padding::pad(body).unwrap())
        .unwrap()
}

fn sealed_frame(sealed: &[u8]) -> Vec<u8> {
    FrameRepr::SealedRequest {
        encapsulated: sealed,
    }
    .to_vec()
    .unwrap()
}

/// Every frame the peer sent until it closed.
fn frames(sock: &mut TcpStream) -> Vec<(FrameType, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(f) = pp_protocol::io::read_frame(sock, |_| Some(1 << 20)).unwrap() {
        let view = Frame::new_checked(&f[..]).unwrap();
        out.push((view.frame_type(), view.payload().to_vec()));
    }
    out
}

fn code(frame: &(FrameType, Vec<u8>)) -> ErrorCode {
    assert_eq!(frame.0, FrameType::Error, "not an error frame");
    ErrorCode::from(u16::from_be_bytes(frame.1[..2].try_into().unwrap()))
}

/// Sends `bytes` to the one-shot port; returns the frames it answered before closing.
fn oneshot_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<(FrameType, Vec<u8>)> {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    sock.write_all(bytes).unwrap();
    frames(&mut sock)
}

/// The one answer of the one-shot port to `sealed`: the opened body, or the error code.
fn oneshot_ask(
    addr: SocketAddr,
    sealed: &[u8],
    opener: ohttp::ClientResponse,
) -> Result<Vec<u8>, ErrorCode> {
    let answer = oneshot_exchange(addr, &sealed_frame(sealed));
    assert_eq!(answer.len(), 1, "exactly one frame, then close");
    match answer[0].0 {
        FrameType::SealedResponse => {
            let padded = opener.decapsulate(&answer[0].1).unwrap();
            Ok(padding::unpad(&padded).unwrap().to_vec())
        }
        _ => Err(code(&answer[0])),
    }
}

struct Plain(TcpStream);

impl Read for Plain {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Plain {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl Channel for Plain {
    fn exporter(&self) -> Option<[u8; 32]> {
        Some([0x5E; 32])
    }
}

/// A session on a thread (no TLS; exporter fixed): sends `first` (an attestation request) and
/// then `rest`, and returns every frame the enclave answered until it closed.
fn session_exchange(
    world: &World,
    first: FrameRepr<'_>,
    rest: &[Vec<u8>],
) -> Vec<(FrameType, Vec<u8>)> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut sock = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (server_sock, _) = listener.accept().unwrap();
    let enclave = world.enclave.clone();
    let server = std::thread::spawn(move || drop(session::serve(&enclave, Plain(server_sock))));
    sock.write_all(&first.to_vec().unwrap()).unwrap();
    for f in rest {
        sock.write_all(f).unwrap();
    }
    sock.shutdown(std::net::Shutdown::Write).unwrap();
    let out = frames(&mut sock);
    server.join().unwrap();
    out
}

fn attest(key_id: Option<u8>) -> FrameRepr<'static> {
    FrameRepr::AttestRequest {
        nonce: [9; NONCE_LEN],
        key_id,
    }
}

#[test]
fn the_oneshot_port_answers_one_request_and_refuses_its_replay() {
    let world = world();
    let (port, addr) = world.oneshot(Limits::default());
    let (sealed, opener) = seal(&world.current(), b"thread");
    assert_eq!(oneshot_ask(addr, &sealed, opener).unwrap(), b"thread");
    assert_eq!(world.calls(), 1);
    // The same bytes again (a relay or gateway replaying them).
    let (_, opener) = seal(&world.current(), b"other");
    assert_eq!(oneshot_ask(addr, &sealed, opener), Err(ErrorCode::Replayed));
    assert_eq!(world.calls(), 1, "the handler never ran for the replay");
    port.stop();
}

#[test]
fn a_replay_is_refused_in_a_session_and_across_paths() {
    let world = world();
    let (port, addr) = world.oneshot(Limits::default());
    let (sealed, _) = seal(&world.current(), b"thread");
    // In one session: the second copy is refused, the session ends.
    let answer = session_exchange(
        &world,
        attest(None),
        &[sealed_frame(&sealed), sealed_frame(&sealed)],
    );
    assert_eq!(
        answer.len(),
        3,
        "{:?}",
        answer.iter().map(|f| f.0).collect::<Vec<_>>()
    );
    assert_eq!(answer[1].0, FrameType::SealedResponse);
    assert_eq!(code(&answer[2]), ErrorCode::Replayed);
    assert_eq!(world.calls(), 1);
    // Opened in a session, replayed at the one-shot port.
    let (_, opener) = seal(&world.current(), b"x");
    assert_eq!(oneshot_ask(addr, &sealed, opener), Err(ErrorCode::Replayed));
    // Opened at the one-shot port, replayed in a new session.
    let (second, opener) = seal(&world.current(), b"second");
    assert_eq!(oneshot_ask(addr, &second, opener).unwrap(), b"second");
    let answer = session_exchange(&world, attest(None), &[sealed_frame(&second)]);
    assert_eq!(answer[0].0, FrameType::Evidence);
    assert_eq!(code(&answer[1]), ErrorCode::Replayed);
    assert_eq!(
        world.calls(),
        2,
        "the handler ran once per fresh request only"
    );
    port.stop();
}

#[test]
fn the_previous_key_is_answered_and_a_rotated_out_key_is_unknown() {
    let world = world();
    let (port, addr) = world.oneshot(Limits::default());
    let old = world.current();
    world.clock.advance(PERIOD);
    assert_ne!(world.current(), old, "rotated");
    let (sealed, opener) = seal(&old, b"under the previous key");
    assert_eq!(
        oneshot_ask(addr, &sealed, opener).unwrap(),
        b"under the previous key"
    );
    world.clock.advance(PERIOD);
    let (sealed, opener) = seal(&old, b"too late");
    assert_eq!(
        oneshot_ask(addr, &sealed, opener),
        Err(ErrorCode::UnknownKey)
    );
    let answer = session_exchange(&world, attest(None), &[sealed_frame(&sealed)]);
    assert_eq!(code(&answer[1]), ErrorCode::UnknownKey);
    assert_eq!(world.calls(), 1);
    port.stop();
}

#[test]
fn a_33_byte_attest_request_binds_the_key_it_names() {
    let world = world();
    let (first_id, first) = world.enclave.keys.current().unwrap();
    world.clock.advance(PERIOD);
    let (current_id, current) = world.enclave.keys.current().unwrap();
    for (asked, config) in [
        (Some(first_id), &first),
        (Some(current_id), &current),
        (None, &current),
    ] {
        let answer = session_exchange(&world, attest(asked), &[]);
        assert_eq!(answer.len(), 1);
        assert_eq!(answer[0].0, FrameType::Evidence);
        let evidence = EvidenceRepr::from_bytes(&answer[0].1).unwrap();
        assert_eq!(evidence.key_config, &config[..], "asked {asked:?}");
        let bound = report_data_for(&[0x5E; 32], &[9; NONCE_LEN], &[7; 32], config);
        assert_eq!(world.reports.0.lock().unwrap().last(), Some(&bound));
    }
    // Publication evidence binds the current key.
    let answer = session_exchange(&world, FrameRepr::PublicationRequest, &[]);
    let evidence = EvidenceRepr::from_bytes(&answer[0].1).unwrap();
    assert_eq!(evidence.key_config, &current[..]);
    assert_eq!(
        world.reports.0.lock().unwrap().last(),
        Some(&publication_report_data(&[7; 32], &current))
    );
    // A key the enclave does not hold: refused, no evidence made.
    let made = world.reports.0.lock().unwrap().len();
    let answer = session_exchange(&world, attest(Some(current_id.wrapping_add(5))), &[]);
    assert_eq!(answer.len(), 1);
    assert_eq!(code(&answer[0]), ErrorCode::UnknownKey);
    assert_eq!(world.reports.0.lock().unwrap().len(), made);
}

#[test]
fn the_oneshot_port_takes_only_one_sealed_request_frame() {
    let world = world();
    let (port, addr) = world.oneshot(Limits {
        read: Duration::from_millis(700),
        ..Limits::default()
    });
    // Another frame type first.
    let answer = oneshot_exchange(addr, &attest(None).to_vec().unwrap());
    assert_eq!(code(&answer[0]), ErrorCode::UnexpectedFrame);
    let answer = oneshot_exchange(addr, &FrameRepr::PublicationRequest.to_vec().unwrap());
    assert_eq!(code(&answer[0]), ErrorCode::UnexpectedFrame);
    // Over the bound, refused from the header.
    let answer = oneshot_exchange(addr, &[b'P', b'P', 1, 3, 0x00, 0x20, 0x00, 0x00]);
    assert_eq!(code(&answer[0]), ErrorCode::TooLarge);
    // Not a frame.
    let answer = oneshot_exchange(addr, b"POST / HTTP/1.1\r\n\r\n");
    assert_eq!(code(&answer[0]), ErrorCode::MalformedFrame);
    // A slow sender: half a frame, then silence past the read deadline.
    let (sealed, _) = seal(&world.current(), b"slow");
    let frame = sealed_frame(&sealed);
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    sock.write_all(&frame[..frame.len() / 2]).unwrap();
    let started = std::time::Instant::now();
    let answer = frames(&mut sock);
    assert_eq!(code(&answer[0]), ErrorCode::Timeout);
    assert!(started.elapsed() < Duration::from_secs(5));
    // A second frame after the answer is never read: one answer, then the connection is closed.
    let (sealed, _) = seal(&world.current(), b"one");
    let (again, _) = seal(&world.current(), b"two");
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    sock.write_all(&sealed_frame(&sealed)).unwrap();
    let first = pp_protocol::io::read_frame(&mut sock, |_| Some(1 << 20))
        .unwrap()
        .unwrap();
    assert_eq!(
        Frame::new_checked(&first[..]).unwrap().frame_type(),
        FrameType::SealedResponse
    );
    let _ = sock.write_all(&sealed_frame(&again));
    let mut rest = Vec::new();
    let _ = sock.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert_eq!(world.calls(), 1, "only the first frame was handled");
    port.stop();
}

#[test]
fn a_full_oneshot_port_answers_busy() {
    let world = world();
    let (port, addr) = world.oneshot(Limits {
        slots: 1,
        read: Duration::from_millis(1500),
        ..Limits::default()
    });
    // The one slot is taken by a silent peer.
    let _silent = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (sealed, opener) = seal(&world.current(), b"busy");
    assert_eq!(oneshot_ask(addr, &sealed, opener), Err(ErrorCode::Busy));
    assert_eq!(world.calls(), 0);
    // The request was not opened: once the slot is free, the same bytes are answered.
    std::thread::sleep(Duration::from_millis(1800));
    let (_, opener) = seal(&world.current(), b"unused");
    let _ = opener;
    let answer = oneshot_exchange(addr, &sealed_frame(&sealed));
    assert_eq!(answer[0].0, FrameType::SealedResponse);
    port.stop();
}

/// Issue 14, M3: the one-shot slots and the session workers share one bound on handler runs.
/// With every pass of the handler gate held, a one-shot request is answered `Busy` (7) after the
/// gate's wait, unopened (the same bytes are answered once a pass is free), the handler not run.
#[test]
fn a_oneshot_request_waits_for_the_shared_handler_gate() {
    let world = world();
    let (port, addr) = world.oneshot(Limits::default());
    let held: Vec<_> = std::iter::from_fn(|| world.enclave.gate.enter())
        .take(pp_workload::server::WORKERS)
        .collect();
    assert_eq!(world.enclave.gate.taken(), pp_workload::server::WORKERS);
    let (sealed, opener) = seal(&world.current(), b"gated");
    assert_eq!(oneshot_ask(addr, &sealed, opener), Err(ErrorCode::Busy));
    assert_eq!(world.calls(), 0, "the handler never ran");
    // A session's request is gated the same way.
    let answer = session_exchange(&world, attest(None), &[sealed_frame(&sealed)]);
    assert_eq!(code(&answer[1]), ErrorCode::Busy);
    assert_eq!(world.calls(), 0);
    drop(held);
    let answer = oneshot_exchange(addr, &sealed_frame(&sealed));
    assert_eq!(answer[0].0, FrameType::SealedResponse);
    assert_eq!(world.calls(), 1);
    port.stop();
}

/// Issue 14, M2 at the door: once the period's early rotation is used, a request under the full
/// current key is answered `Busy` (7), not opened, and no new key is made for it.
#[test]
fn a_full_key_past_its_early_rotation_is_busy_at_the_door() {
    let world = world_with(1);
    let (port, addr) = world.oneshot(Limits::default());
    let (first, opener) = seal(&world.current(), b"one");
    assert_eq!(oneshot_ask(addr, &first, opener).unwrap(), b"one");
    // Key 1 is full: the period's early rotation makes key 2.
    let second_key = world.current();
    let (second, opener) = seal(&second_key, b"two");
    assert_eq!(oneshot_ask(addr, &second, opener).unwrap(), b"two");
    // Key 2 is full too: no third key this period.
    assert_eq!(world.current(), second_key);
    let (third, opener) = seal(&world.current(), b"three");
    assert_eq!(oneshot_ask(addr, &third, opener), Err(ErrorCode::Busy));
    let answer = session_exchange(&world, attest(None), &[sealed_frame(&third)]);
    assert_eq!(code(&answer[1]), ErrorCode::Busy);
    assert_eq!(world.calls(), 2);
    // The period over, a new key answers.
    world.clock.advance(PERIOD);
    let (fourth, opener) = seal(&world.current(), b"four");
    assert_eq!(oneshot_ask(addr, &fourth, opener).unwrap(), b"four");
    port.stop();
}
