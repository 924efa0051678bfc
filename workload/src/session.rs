//! One attested session, as types: a handshaken channel becomes an attested one only by sending
//! evidence bound to it; only an attested one serves sealed requests.
//!
//! Nothing here logs or returns request bytes: errors are codes, buffers holding plaintext are
//! zeroized when dropped.

use std::io::{Read, Write};

use pp_attestation::binding::{EXPORTER_LABEL, EXPORTER_LEN};
use pp_attestation::{Attester, publication_report_data, report_data_for};
use pp_protocol::evidence::EvidenceRepr;
use pp_protocol::frame::{self, ErrorCode, Frame, FrameRepr};
use pp_protocol::io::{ReadError, WriteError};
use zeroize::Zeroizing;

use crate::handler::Handler;
use crate::keys::HpkeIdentity;

/// A byte stream that can also export keying material of the TLS session it runs in.
pub trait Channel: Read + Write {
    fn exporter(&self) -> Option<[u8; EXPORTER_LEN]>;
}

impl Channel for rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream> {
    fn exporter(&self) -> Option<[u8; EXPORTER_LEN]> {
        self.conn
            .export_keying_material([0u8; EXPORTER_LEN], EXPORTER_LABEL, None)
            .ok()
    }
}

/// Why a session ended early. Each maps to the code sent in the last `Error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// The peer closed or the transport failed.
    Io,
    Malformed,
    Unexpected,
    TooLarge,
    /// No evidence: with the attester's reason when it refused (shown in the serial log; it
    /// carries no request data).
    NotAttested(Option<pp_attestation::AttestError>),
    OpenFailed,
    HandlerFailed,
}

impl SessionError {
    pub fn code(self) -> Option<ErrorCode> {
        match self {
            Self::Io => None,
            Self::Malformed => Some(ErrorCode::MalformedFrame),
            Self::Unexpected => Some(ErrorCode::UnexpectedFrame),
            Self::TooLarge => Some(ErrorCode::TooLarge),
            Self::NotAttested(_) => Some(ErrorCode::NotAttested),
            Self::OpenFailed => Some(ErrorCode::OpenFailed),
            Self::HandlerFailed => Some(ErrorCode::HandlerFailed),
        }
    }
}

/// What the enclave holds for all sessions: its keys, attester and handler.
pub struct Enclave {
    pub attester: Box<dyn Attester + Send + Sync>,
    pub hpke: HpkeIdentity,
    pub handler: Box<dyn Handler>,
    /// sha256 naming the release this build belongs to (see `release_ref`).
    pub release_ref: [u8; 32],
    /// Largest request frame payload accepted (≤ `frame::MAX_PAYLOAD`).
    pub max_request: usize,
}

/// A session right after the TLS handshake.
pub struct Handshaken<'c, C: Channel> {
    chan: &'c mut C,
}

/// A session whose evidence has been sent.
pub struct Attested<'c, C: Channel> {
    chan: &'c mut C,
}

/// Serve one session to its end; returns how many requests were served.
pub fn serve<C: Channel>(enclave: &Enclave, chan: &mut C) -> Result<u64, SessionError> {
    let result = Handshaken { chan: &mut *chan }
        .attest(enclave)
        .and_then(|s| match s {
            Opened::Attested(s) => s.serve_requests(enclave),
            Opened::Published => Ok(0),
        });
    if let Some(code) = result.as_ref().err().and_then(|e| e.code()) {
        let _ = write_frame(chan, &FrameRepr::Error { code });
    }
    result
}

/// What the first frame of a session led to.
pub enum Opened<'c, C: Channel> {
    /// Session evidence sent: sealed requests may follow.
    Attested(Attested<'c, C>),
    /// Publication evidence sent (for the key CDN): the session ends here.
    Published,
}

impl<'c, C: Channel> Handshaken<'c, C> {
    /// Wait for the first frame. A device's nonce is answered with evidence bound to this
    /// session; an operator's publication request with evidence naming only the release and the
    /// key configuration, after which nothing more is served on this connection.
    pub fn attest(self, enclave: &Enclave) -> Result<Opened<'c, C>, SessionError> {
        let buf = read_frame(self.chan, frame::NONCE_LEN)?.ok_or(SessionError::Io)?;
        let (report_data, publication) = match parse(&buf)? {
            FrameRepr::AttestRequest { nonce } => {
                let exporter = self
                    .chan
                    .exporter()
                    .ok_or(SessionError::NotAttested(None))?;
                let data = report_data_for(
                    &exporter,
                    &nonce,
                    &enclave.release_ref,
                    &enclave.hpke.key_config,
                );
                (data, false)
            }
            FrameRepr::PublicationRequest => (
                publication_report_data(&enclave.release_ref, &enclave.hpke.key_config),
                true,
            ),
            _ => return Err(SessionError::Unexpected),
        };
        let evidence = enclave
            .attester
            .attest(&report_data)
            .map_err(|e| SessionError::NotAttested(Some(e)))?;
        let bundle = EvidenceRepr {
            report: &evidence.report,
            vcek: &evidence.vcek_der,
            ask: &evidence.ask_der,
            ark: &evidence.ark_der,
            key_config: &enclave.hpke.key_config,
            release_ref: enclave.release_ref,
        }
        .to_vec()
        .map_err(|_| SessionError::NotAttested(None))?;
        write_frame(self.chan, &FrameRepr::Evidence { bundle: &bundle })?;
        Ok(if publication {
            Opened::Published
        } else {
            Opened::Attested(Attested { chan: self.chan })
        })
    }
}

impl<C: Channel> Attested<'_, C> {
    /// Open, handle and seal requests until the device closes the session.
    pub fn serve_requests(self, enclave: &Enclave) -> Result<u64, SessionError> {
        let mut served = 0;
        while let Some(buf) = read_frame(self.chan, enclave.max_request)? {
            let encapsulated = match parse(&buf)? {
                FrameRepr::SealedRequest { encapsulated } => encapsulated,
                _ => return Err(SessionError::Unexpected),
            };
            let (request, opener) = enclave
                .hpke
                .server
                .decapsulate(encapsulated)
                .map_err(|_| SessionError::OpenFailed)?;
            let request = Zeroizing::new(request);
            let response = Zeroizing::new(
                enclave
                    .handler
                    .handle(&request)
                    .map_err(|_| SessionError::HandlerFailed)?,
            );
            let sealed = opener
                .encapsulate(&response)
                .map_err(|_| SessionError::HandlerFailed)?;
            write_frame(
                self.chan,
                &FrameRepr::SealedResponse {
                    encapsulated: &sealed,
                },
            )?;
            served += 1;
        }
        Ok(served)
    }
}

fn parse(buf: &[u8]) -> Result<FrameRepr<'_>, SessionError> {
    let frame = Frame::new_checked(buf).map_err(|_| SessionError::Malformed)?;
    FrameRepr::parse(&frame).map_err(|_| SessionError::Malformed)
}

/// Read one whole frame (header and payload) of at most `max_payload` payload bytes, refusing a
/// larger one from its header alone (`pp_protocol::io`, the reader the device uses too). `None`
/// on a clean end of stream before a frame.
fn read_frame(
    chan: &mut impl Read,
    max_payload: usize,
) -> Result<Option<Zeroizing<Vec<u8>>>, SessionError> {
    pp_protocol::io::read_frame(chan, |_| Some(max_payload)).map_err(|e| match e {
        ReadError::TooLarge(_) => SessionError::TooLarge,
        ReadError::Header(_) | ReadError::Unexpected(_) => SessionError::Malformed,
        ReadError::Truncated | ReadError::Io(_) => SessionError::Io,
    })
}

fn write_frame(chan: &mut impl Write, repr: &FrameRepr<'_>) -> Result<(), SessionError> {
    pp_protocol::io::write_frame(chan, repr).map_err(|e| match e {
        WriteError::Encode(_) => SessionError::TooLarge,
        WriteError::Io(_) => SessionError::Io,
    })
}
