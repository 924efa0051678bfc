//! Test parts of the one-shot tests: enclaves with real HPKE keys on a one-shot port that refuse
//! as the contract says (5: did not open, 9: replayed `enc`, 10: unknown key id), the gateway's
//! forwarding to them, a request and tokens.

use std::collections::HashSet;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ohttp::hpke::{Aead, Kdf, Kem};
use ohttp::{KeyConfig, SymmetricSuite};
use pp_client::inner::InnerResponse;
use pp_protocol::app::{AppRequest, AppResponse, Message};
use pp_protocol::cdn_index::instance_id;
use pp_protocol::frame::{ErrorCode, FrameRepr, FrameType, MAX_PAYLOAD};
use sha2::{Digest, Sha256};

pub(crate) fn suites() -> Vec<SymmetricSuite> {
    vec![SymmetricSuite::new(Kdf::HkdfSha256, Aead::Aes128Gcm)]
}

/// An RFC 9458 key pair (X25519) with key id `id`.
pub(crate) fn server(id: u8) -> ohttp::Server {
    ohttp::Server::new(KeyConfig::new(id, Kem::X25519Sha256, suites()).unwrap()).unwrap()
}

/// A test enclave's one-shot port: one `SealedRequest` frame per connection, opened with its
/// key; a repeated `enc` is refused (9), another key id (10), a request that does not open (5).
/// Answers a summary picking message 0.
pub(crate) struct Enclave {
    pub(crate) addr: SocketAddr,
    pub(crate) key_config: Vec<u8>,
    /// Requests opened (handed to the handler).
    pub(crate) opened: Arc<AtomicUsize>,
}

pub(crate) fn enclave(key_id: u8) -> Enclave {
    let ohttp = server(key_id);
    let key_config = ohttp.config().encode().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let opened = Arc::new(AtomicUsize::new(0));
    let count = opened.clone();
    std::thread::spawn(move || {
        let mut seen = HashSet::new();
        for mut conn in listener.incoming().flatten() {
            let Ok(Some(frame)) = pp_protocol::io::read_frame(&mut conn, |t| {
                (t == FrameType::SealedRequest).then_some(MAX_PAYLOAD)
            }) else {
                continue;
            };
            let frame = pp_protocol::frame::Frame::new_checked(&frame[..]).unwrap();
            let Ok(FrameRepr::SealedRequest { encapsulated }) = FrameRepr::parse(&frame) else {
                continue;
            };
            let answer = if encapsulated.first() != Some(&key_id) {
                Err(ErrorCode::UnknownKey)
            } else if encapsulated.len() < 39 || !seen.insert(encapsulated[7..39].to_vec()) {
                Err(ErrorCode::Replayed)
            } else {
                match ohttp.decapsulate(encapsulated) {
                    Err(_) => Err(ErrorCode::OpenFailed),
                    Ok((padded, opener)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        let body = pp_protocol::padding::unpad(&padded).unwrap();
                        let request = AppRequest::parse(body).unwrap();
                        assert!(matches!(request, AppRequest::Summarize { .. }));
                        let response = AppResponse::Summary {
                            bullets: Vec::new(),
                            picks: vec![0],
                            truncated: 0,
                            left_out: 0,
                        }
                        .to_vec();
                        let padded = pp_protocol::padding::pad(&response).unwrap();
                        Ok(opener.encapsulate(&padded).unwrap())
                    }
                }
            };
            let repr = match &answer {
                Ok(sealed) => FrameRepr::SealedResponse {
                    encapsulated: sealed,
                },
                Err(code) => FrameRepr::Error { code: *code },
            };
            let _ = pp_protocol::io::write_frame(&mut conn, &repr);
        }
    });
    Enclave {
        addr,
        key_config,
        opened,
    }
}

/// Sends a sealed request to an enclave's one-shot port and returns its answer as the gateway
/// maps it (contract §4).
pub(crate) fn forward(to: SocketAddr, sealed: &[u8]) -> InnerResponse {
    let Ok(mut conn) = std::net::TcpStream::connect(to) else {
        return refused(502, "the instance cannot be reached");
    };
    let repr = FrameRepr::SealedRequest {
        encapsulated: sealed,
    };
    pp_protocol::io::write_frame(&mut conn, &repr).unwrap();
    conn.flush().unwrap();
    let frame = pp_protocol::io::read_frame(&mut conn, |t| {
        (t == FrameType::SealedResponse).then_some(MAX_PAYLOAD)
    })
    .unwrap()
    .unwrap();
    let frame = pp_protocol::frame::Frame::new_checked(&frame[..]).unwrap();
    match FrameRepr::parse(&frame).unwrap() {
        FrameRepr::SealedResponse { encapsulated } => InnerResponse::Sealed(encapsulated.to_vec()),
        FrameRepr::Error { code } => InnerResponse::EnclaveError(u16::from(code)),
        other => panic!("unexpected frame {:?}", other.frame_type()),
    }
}

pub(crate) fn refused(status: u16, message: &str) -> InnerResponse {
    InnerResponse::Refused {
        status,
        message: message.into(),
        www_authenticate: None,
    }
}

pub(crate) fn request() -> AppRequest {
    AppRequest::Summarize {
        thread: vec![Message {
            sender: "Ana".into(),
            text: "dinner at six?".into(),
            time: None,
        }],
        k: 1,
    }
}

pub(crate) fn token(n: u8) -> pp_tokens::Token {
    pp_tokens::Token {
        nonce: [n; 32],
        challenge_digest: [2; 32],
        token_key_id: [3; 32],
        authenticator: [4; 256],
    }
}

pub(crate) fn id_of(key_config: &[u8]) -> String {
    instance_id(&Sha256::digest(key_config).into())
}
