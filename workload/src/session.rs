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
use pp_protocol::padding;
use zeroize::Zeroizing;

use crate::gate::Gate;
use crate::handler::Handler;
use crate::keys::{KeyRing, OpenError};

/// A byte stream that can also export keying material of the TLS session it runs in.
pub trait Channel: Read + Write {
    /// RFC 5705/8446 exporter output for this session, if the handshake finished.
    fn exporter(&self) -> Option<[u8; EXPORTER_LEN]>;
    /// Called before the session's last frame (an error or busy answer) is written: a channel
    /// with a deadline gives itself a short grace for it (see `crate::server`).
    fn grace(&mut self) {}
    /// Called when a response is ready: its write is not cut short by the session deadline
    /// that passed while the handler ran (see `crate::deadline::Graced::answering`).
    fn answering(&mut self) {}
    /// Called after a response was written: a channel with a deadline gives the next request
    /// only the idle bound (see `crate::deadline::Graced::between_requests`).
    fn between_requests(&mut self) {}
}

impl<S> Channel for rustls::StreamOwned<rustls::ServerConnection, S>
where
    S: Read + Write + crate::deadline::Graced,
{
    fn exporter(&self) -> Option<[u8; EXPORTER_LEN]> {
        self.conn
            .export_keying_material([0u8; EXPORTER_LEN], EXPORTER_LABEL, None)
            .ok()
    }

    fn grace(&mut self) {
        self.sock.grace();
    }

    fn answering(&mut self) {
        self.sock.answering();
    }

    fn between_requests(&mut self) {
        self.sock.between_requests();
    }
}

/// Why a session ended early. Each maps to the code sent in the last `Error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// The peer closed or the transport failed.
    Io,
    /// A deadline passed: the peer was too slow or the session too long (`crate::server`).
    Timeout,
    Malformed,
    Unexpected,
    TooLarge,
    /// No evidence: with the attester's reason when it refused (shown in the serial log; it
    /// carries no request data).
    NotAttested(Option<pp_attestation::AttestError>),
    OpenFailed,
    HandlerFailed,
    /// Every request worker was taken: the device should retry (elsewhere).
    Busy,
    /// The sealed request's `enc` was already opened under its key (`crate::keys`).
    Replayed,
    /// The sealed request or the `AttestRequest` names a key the ring does not hold.
    UnknownKey,
}

impl SessionError {
    /// The code of the `Error` frame that ends the session, if one is sent.
    pub fn code(self) -> Option<ErrorCode> {
        match self {
            Self::Io => None,
            Self::Timeout => Some(ErrorCode::Timeout),
            Self::Malformed => Some(ErrorCode::MalformedFrame),
            Self::Unexpected => Some(ErrorCode::UnexpectedFrame),
            Self::TooLarge => Some(ErrorCode::TooLarge),
            Self::NotAttested(_) => Some(ErrorCode::NotAttested),
            Self::OpenFailed => Some(ErrorCode::OpenFailed),
            Self::HandlerFailed => Some(ErrorCode::HandlerFailed),
            Self::Busy => Some(ErrorCode::Busy),
            Self::Replayed => Some(ErrorCode::Replayed),
            Self::UnknownKey => Some(ErrorCode::UnknownKey),
        }
    }
}

/// What the enclave holds for all sessions: its keys, attester and handler.
pub struct Enclave {
    pub attester: Box<dyn Attester + Send + Sync>,
    /// The HPKE key ring: current and previous key, with their replay memories.
    pub keys: KeyRing,
    pub handler: Box<dyn Handler>,
    /// Bounds the requests opened and handled at once, over sessions and the one-shot port
    /// (`crate::gate`; [`Gate::for_handler`] in the enclave).
    pub gate: Gate,
    /// sha256 naming the release this build belongs to (see `release_ref`).
    pub release_ref: [u8; 32],
    /// Largest request frame payload accepted (≤ `frame::MAX_PAYLOAD`).
    pub max_request: usize,
}

/// A session right after the TLS handshake.
struct Handshaken<'c, C: Channel> {
    chan: &'c mut C,
}

/// A session whose evidence has been sent.
struct Attested<'c, C: Channel> {
    chan: &'c mut C,
}

/// A session that has sent its evidence and read its first sealed request (not yet opened):
/// what a request worker takes over. Only [`start`] makes one.
pub struct Ready<C: Channel> {
    chan: C,
    first: Zeroizing<Vec<u8>>,
}

/// How [`start`] ended.
pub enum Started<C: Channel> {
    /// Attested, with a first request waiting.
    Ready(Ready<C>),
    /// The session is over (publication served, the device closed before a request, or an
    /// error, already answered with its `Error` frame).
    Ended(C, Result<u64, SessionError>),
}

/// Serve one session to its end on one thread; returns how many requests were served.
pub fn serve<C: Channel>(enclave: &Enclave, chan: C) -> (C, Result<u64, SessionError>) {
    match start(enclave, chan, |_| {}) {
        Started::Ready(ready) => ready.serve(enclave),
        Started::Ended(chan, result) => (chan, result),
    }
}

/// A session's start: the first frame (a nonce, answered with evidence, or a publication
/// request), then the first sealed request frame. `evidence_ready` runs once the evidence is
/// made, before it is written (the attester's time is the enclave's, not the peer's). An error is
/// answered with its `Error` frame before it is returned.
pub fn start<C: Channel>(
    enclave: &Enclave,
    mut chan: C,
    evidence_ready: impl FnOnce(&mut C),
) -> Started<C> {
    let first = Handshaken { chan: &mut chan }
        .attest(enclave, evidence_ready)
        .and_then(|opened| match opened {
            Opened::Attested(attested) => read_frame(attested.chan, enclave.max_request),
            Opened::Published => Ok(None),
        });
    match first {
        Ok(Some(first)) => Started::Ready(Ready { chan, first }),
        Ok(None) => Started::Ended(chan, Ok(0)),
        Err(e) => {
            answer_error(&mut chan, e);
            Started::Ended(chan, Err(e))
        }
    }
}

impl<C: Channel> Ready<C> {
    /// Serve the first request and those that follow until the device closes the session.
    pub fn serve(mut self, enclave: &Enclave) -> (C, Result<u64, SessionError>) {
        let result = Attested {
            chan: &mut self.chan,
        }
        .serve_requests(enclave, self.first);
        if let Err(e) = result {
            answer_error(&mut self.chan, e);
        }
        (self.chan, result)
    }

    /// The channel (to move its deadline).
    pub fn chan_mut(&mut self) -> &mut C {
        &mut self.chan
    }

    /// Refuse the session: no worker is free. The first request is dropped unopened.
    pub fn refuse_busy(mut self) -> C {
        answer_error(&mut self.chan, SessionError::Busy);
        self.chan
    }
}

fn answer_error<C: Channel>(chan: &mut C, e: SessionError) {
    if let Some(code) = e.code() {
        chan.grace();
        let _ = write_frame(chan, &FrameRepr::Error { code });
    }
}

/// What the first frame of a session led to.
enum Opened<'c, C: Channel> {
    /// Session evidence sent: sealed requests may follow.
    Attested(Attested<'c, C>),
    /// Publication evidence sent (for the key CDN): the session ends here.
    Published,
}

impl<'c, C: Channel> Handshaken<'c, C> {
    /// Wait for the first frame. A device's nonce is answered with evidence bound to this
    /// session; an operator's publication request with evidence naming only the release and the
    /// key configuration, after which nothing more is served on this connection.
    fn attest(
        self,
        enclave: &Enclave,
        evidence_ready: impl FnOnce(&mut C),
    ) -> Result<Opened<'c, C>, SessionError> {
        let buf = read_frame(self.chan, frame::ATTEST_REQUEST_MAX_LEN)?.ok_or(SessionError::Io)?;
        let current = || {
            enclave
                .keys
                .current()
                .map(|(_, config)| config)
                .map_err(|_| SessionError::NotAttested(None))
        };
        let (report_data, key_config, publication) = match parse(&buf)? {
            FrameRepr::AttestRequest { nonce, key_id } => {
                // The key the device asked for (the one of the index it holds), else the current.
                let key_config = match key_id {
                    Some(id) => enclave
                        .keys
                        .config(id)
                        .map_err(|_| SessionError::NotAttested(None))?
                        .ok_or(SessionError::UnknownKey)?,
                    None => current()?,
                };
                let exporter = self
                    .chan
                    .exporter()
                    .ok_or(SessionError::NotAttested(None))?;
                let data = report_data_for(&exporter, &nonce, &enclave.release_ref, &key_config);
                (data, key_config, false)
            }
            FrameRepr::PublicationRequest => {
                let key_config = current()?;
                let data = publication_report_data(&enclave.release_ref, &key_config);
                (data, key_config, true)
            }
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
            key_config: &key_config,
            release_ref: enclave.release_ref,
        }
        .to_vec()
        .map_err(|_| SessionError::NotAttested(None))?;
        evidence_ready(&mut *self.chan);
        write_frame(self.chan, &FrameRepr::Evidence { bundle: &bundle })?;
        Ok(if publication {
            Opened::Published
        } else {
            Opened::Attested(Attested { chan: self.chan })
        })
    }
}

impl<C: Channel> Attested<'_, C> {
    /// Open, unpad, handle, pad and seal `first` and the requests that follow until the device
    /// closes the session. Request and response plaintexts are padded to a size bucket
    /// (`pp_protocol::padding`, docs/protocol.md §4); a request whose padding is not a bucket of
    /// zero bytes is refused as malformed.
    fn serve_requests(
        self,
        enclave: &Enclave,
        first: Zeroizing<Vec<u8>>,
    ) -> Result<u64, SessionError> {
        let mut served = 0;
        let mut next = Some(first);
        while let Some(buf) = next {
            let encapsulated = match parse(&buf)? {
                FrameRepr::SealedRequest { encapsulated } => encapsulated,
                _ => return Err(SessionError::Unexpected),
            };
            let sealed = answer_sealed(enclave, encapsulated)?;
            self.chan.answering();
            write_frame(
                self.chan,
                &FrameRepr::SealedResponse {
                    encapsulated: &sealed,
                },
            )?;
            served += 1;
            self.chan.between_requests();
            next = read_frame(self.chan, enclave.max_request)?;
        }
        Ok(served)
    }
}

/// One sealed request to its sealed response: a pass of the handler gate taken (none within its
/// wait: `Busy`, nothing opened), opened through the key ring (a replayed `enc` or an unknown key
/// id is refused before the handler runs), unpadded, handled, padded and sealed. Request and
/// response plaintexts are zeroized when dropped. The one-shot port serves its request through
/// this too (`crate::oneshot`), so the gate bounds both doors together.
pub fn answer_sealed(enclave: &Enclave, encapsulated: &[u8]) -> Result<Vec<u8>, SessionError> {
    let _pass = enclave.gate.enter().ok_or(SessionError::Busy)?;
    let (padded, opener) = enclave.keys.open(encapsulated).map_err(|e| match e {
        OpenError::Replayed => SessionError::Replayed,
        OpenError::UnknownKey => SessionError::UnknownKey,
        OpenError::Busy => SessionError::Busy,
        OpenError::Malformed => SessionError::Malformed,
        OpenError::Failed => SessionError::OpenFailed,
    })?;
    let request = padding::unpad(&padded).map_err(|_| SessionError::Malformed)?;
    let response = Zeroizing::new(
        enclave
            .handler
            .handle(request)
            .map_err(|_| SessionError::HandlerFailed)?,
    );
    let response =
        Zeroizing::new(padding::pad(&response).map_err(|_| SessionError::HandlerFailed)?);
    opener
        .encapsulate(&response)
        .map_err(|_| SessionError::HandlerFailed)
}

pub(crate) fn parse(buf: &[u8]) -> Result<FrameRepr<'_>, SessionError> {
    let frame = Frame::new_checked(buf).map_err(|_| SessionError::Malformed)?;
    FrameRepr::parse(&frame).map_err(|_| SessionError::Malformed)
}

/// Read one whole frame (header and payload) of at most `max_payload` payload bytes, refusing a
/// larger one from its header alone (`pp_protocol::io`, the reader the device uses too). `None`
/// on a clean end of stream before a frame.
pub(crate) fn read_frame(
    chan: &mut impl Read,
    max_payload: usize,
) -> Result<Option<Zeroizing<Vec<u8>>>, SessionError> {
    pp_protocol::io::read_frame(chan, |_| Some(max_payload)).map_err(|e| match e {
        ReadError::TooLarge(_) => SessionError::TooLarge,
        ReadError::Header(_) | ReadError::Unexpected(_) => SessionError::Malformed,
        ReadError::Io(e) if timed_out(&e) => SessionError::Timeout,
        ReadError::Truncated | ReadError::Io(_) => SessionError::Io,
    })
}

pub(crate) fn write_frame(chan: &mut impl Write, repr: &FrameRepr<'_>) -> Result<(), SessionError> {
    pp_protocol::io::write_frame(chan, repr).map_err(|e| match e {
        WriteError::Encode(_) => SessionError::TooLarge,
        WriteError::Io(e) if timed_out(&e) => SessionError::Timeout,
        WriteError::Io(_) => SessionError::Io,
    })
}

/// A socket timeout (`WouldBlock` on Unix) or a passed deadline.
fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}
