//! The enclave's session pads what it seals and checks the padding of what it opens
//! (`pp_protocol::padding`, docs/protocol.md §4): its sealed responses open to a bucket-sized
//! plaintext of zero padding, and a request whose padding is not zero, or that is not padded, is
//! refused before the handler sees it. The session code runs in process over loopback TCP (no
//! TLS: these tests read the frames themselves), with a handler that counts its calls.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pp_attestation::{AttestError, Attester, Evidence};
use pp_protocol::frame::{ErrorCode, Frame, FrameRepr, FrameType, NONCE_LEN};
use pp_protocol::padding;
use pp_workload::handler::{Handler, HandlerError};
use pp_workload::session::{self, Channel, Enclave};

/// Evidence of the right shape; these tests do not verify it.
struct Unverified;

impl Attester for Unverified {
    fn attest(&self, _: &[u8; 64]) -> Result<Evidence, AttestError> {
        Ok(Evidence {
            report: vec![0; pp_protocol::evidence::REPORT_LEN],
            vcek_der: vec![1],
            ask_der: vec![2],
            ark_der: vec![3],
        })
    }
}

/// Answers `"<" ++ request ++ ">"` repeated `times` times; counts its calls.
struct Repeat {
    times: usize,
    calls: Arc<AtomicUsize>,
}

impl Handler for Repeat {
    fn handle(&self, request: &[u8]) -> Result<Vec<u8>, HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok([b"<", request, b">"].concat().repeat(self.times))
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
        Some([0; 32])
    }
}

struct Device {
    sock: TcpStream,
    key_config: Vec<u8>,
    calls: Arc<AtomicUsize>,
    server: std::thread::JoinHandle<Result<u64, session::SessionError>>,
}

/// The enclave's session on a thread; the device side attested (evidence read, not verified).
fn attested(times: usize) -> Device {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sock = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (server_sock, _) = listener.accept().unwrap();
    let keys = pp_workload::keys::KeyRing::new().unwrap();
    let (_, key_config) = keys.current().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let enclave = Enclave {
        attester: Box::new(Unverified),
        keys,
        handler: Box::new(Repeat {
            times,
            calls: calls.clone(),
        }),
        release_ref: [0; 32],
        max_request: pp_protocol::frame::MAX_PAYLOAD,
        gate: pp_workload::gate::Gate::for_handler(),
    };
    let server = std::thread::spawn(move || session::serve(&enclave, Plain(server_sock)).1);
    let mut device = Device {
        sock,
        key_config,
        calls,
        server,
    };
    device.send(&FrameRepr::AttestRequest {
        nonce: [9; NONCE_LEN],
        key_id: None,
    });
    assert_eq!(device.frame().0, FrameType::Evidence);
    device
}

impl Device {
    fn send(&mut self, repr: &FrameRepr<'_>) {
        self.sock.write_all(&repr.to_vec().unwrap()).unwrap();
    }

    fn frame(&mut self) -> (FrameType, Vec<u8>) {
        let frame = pp_protocol::io::read_frame(&mut self.sock, |_| Some(1 << 20))
            .unwrap()
            .expect("a frame");
        let view = Frame::new_checked(&frame[..]).unwrap();
        (view.frame_type(), view.payload().to_vec())
    }

    /// Seals `plaintext` as it is (the caller pads it, or not), sends it, and returns the
    /// enclave's answer opened: the padded response plaintext, or the error code.
    fn ask(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, ErrorCode> {
        let sealer = ohttp::ClientRequest::from_encoded_config(&self.key_config).unwrap();
        let (sealed, opener) = sealer.encapsulate(plaintext).unwrap();
        self.send(&FrameRepr::SealedRequest {
            encapsulated: &sealed,
        });
        let (frame_type, payload) = self.frame();
        match frame_type {
            FrameType::SealedResponse => Ok(opener.decapsulate(&payload).unwrap()),
            FrameType::Error => Err(ErrorCode::from(u16::from_be_bytes(
                payload[..2].try_into().unwrap(),
            ))),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn end(self) -> (usize, Result<u64, session::SessionError>) {
        drop(self.sock);
        (
            self.calls.load(Ordering::SeqCst),
            self.server.join().unwrap(),
        )
    }
}

#[test]
fn the_enclave_pads_its_responses_to_a_bucket() {
    let mut device = attested(1);
    let short = device.ask(&padding::pad(b"hi").unwrap()).unwrap();
    assert_eq!(short.len(), padding::MIN_BUCKET);
    assert_eq!(padding::unpad(&short).unwrap(), b"<hi>");
    let body = vec![b'x'; 3000];
    let long = device.ask(&padding::pad(&body).unwrap()).unwrap();
    assert_eq!(long.len(), 4096);
    assert_eq!(
        padding::unpad(&long).unwrap(),
        [b"<", &body[..], b">"].concat()
    );
    assert_eq!(device.end(), (2, Ok(2)));
}

#[test]
fn a_response_of_any_length_is_a_bucket_size() {
    for times in [0, 1, 300, 5000] {
        let mut device = attested(times);
        let opened = device.ask(&padding::pad(b"thread").unwrap()).unwrap();
        assert!(padding::is_bucket(opened.len()), "{}", opened.len());
        assert_eq!(padding::unpad(&opened).unwrap().len(), 8 * times);
        assert_eq!(device.end(), (1, Ok(1)));
    }
}

#[test]
fn a_request_with_non_zero_padding_is_refused_unread() {
    let mut device = attested(1);
    let mut padded = padding::pad(b"{\"feature\":\"summarize\"}").unwrap();
    *padded.last_mut().unwrap() = 0x80;
    assert_eq!(device.ask(&padded), Err(ErrorCode::MalformedFrame));
    assert_eq!(device.end(), (0, Err(session::SessionError::Malformed)));
}

#[test]
fn an_unpadded_request_is_refused_unread() {
    let mut device = attested(1);
    assert_eq!(
        device.ask(b"{\"feature\":\"summarize\"}"),
        Err(ErrorCode::MalformedFrame)
    );
    assert_eq!(device.end(), (0, Err(session::SessionError::Malformed)));
}
