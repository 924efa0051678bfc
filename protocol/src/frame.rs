//! Session frames: `"PP" | version | type | length (u32 BE) | payload`.
//!
//! Every message inside the attested TLS session is one frame. The payload length is bounded by
//! [`MAX_PAYLOAD`] so a reader can refuse an oversized frame from its header alone.

use alloc::vec::Vec;

use crate::{Error, Result};

/// The two magic bytes that start every frame.
pub const MAGIC: [u8; 2] = *b"PP";
/// The protocol version these frames carry.
pub const VERSION: u8 = 1;
/// Header length: magic, version, type, payload length.
pub const HEADER_LEN: usize = 8;
/// Largest payload accepted (1 MiB): bounds memory per request.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Length of the client's freshness nonce.
pub const NONCE_LEN: usize = 32;
/// Largest `AttestRequest` payload: the nonce and the key id the device asks evidence for
/// (docs/protocol.md §3, §8). A payload of exactly [`NONCE_LEN`] bytes asks for the current key.
pub const ATTEST_REQUEST_MAX_LEN: usize = NONCE_LEN + 1;

mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..2;
    pub const VERSION: usize = 2;
    pub const TYPE: usize = 3;
    pub const LENGTH: Range<usize> = 4..8;
    pub const PAYLOAD: usize = 8;
}

/// Frame types. Unknown values are kept, not refused, at this layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// Device → enclave: a fresh nonce; asks for evidence bound to this session.
    AttestRequest,
    /// Enclave → device: the evidence bundle.
    Evidence,
    /// Device → enclave: an HPKE-sealed request (RFC 9458 encapsulated request).
    SealedRequest,
    /// Enclave → device: the sealed response (RFC 9458 encapsulated response).
    SealedResponse,
    /// Either way: an error code, then the connection closes.
    Error,
    /// Operator → enclave: asks for evidence naming the enclave's key configuration without a
    /// session or nonce, for publication on the key CDN (docs/protocol.md §5). Empty payload.
    PublicationRequest,
    Unknown(u8),
}

impl From<u8> for FrameType {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::AttestRequest,
            2 => Self::Evidence,
            3 => Self::SealedRequest,
            4 => Self::SealedResponse,
            5 => Self::Error,
            6 => Self::PublicationRequest,
            other => Self::Unknown(other),
        }
    }
}

impl From<FrameType> for u8 {
    fn from(t: FrameType) -> u8 {
        match t {
            FrameType::AttestRequest => 1,
            FrameType::Evidence => 2,
            FrameType::SealedRequest => 3,
            FrameType::SealedResponse => 4,
            FrameType::Error => 5,
            FrameType::PublicationRequest => 6,
            FrameType::Unknown(v) => v,
        }
    }
}

/// Error codes sent in an `Error` frame. Fixed codes, never text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    MalformedFrame,
    UnexpectedFrame,
    TooLarge,
    NotAttested,
    OpenFailed,
    HandlerFailed,
    Busy,
    Timeout,
    /// The sealed request's encapsulated key (`enc`) was already opened under its key: a
    /// replayed request, refused unopened by the handler.
    Replayed,
    /// The key id names no key the enclave holds (it rotated out, or never existed).
    UnknownKey,
    Unknown(u16),
}

impl From<u16> for ErrorCode {
    fn from(v: u16) -> Self {
        match v {
            1 => Self::MalformedFrame,
            2 => Self::UnexpectedFrame,
            3 => Self::TooLarge,
            4 => Self::NotAttested,
            5 => Self::OpenFailed,
            6 => Self::HandlerFailed,
            7 => Self::Busy,
            8 => Self::Timeout,
            9 => Self::Replayed,
            10 => Self::UnknownKey,
            other => Self::Unknown(other),
        }
    }
}

impl From<ErrorCode> for u16 {
    fn from(c: ErrorCode) -> u16 {
        match c {
            ErrorCode::MalformedFrame => 1,
            ErrorCode::UnexpectedFrame => 2,
            ErrorCode::TooLarge => 3,
            ErrorCode::NotAttested => 4,
            ErrorCode::OpenFailed => 5,
            ErrorCode::HandlerFailed => 6,
            ErrorCode::Busy => 7,
            ErrorCode::Timeout => 8,
            ErrorCode::Replayed => 9,
            ErrorCode::UnknownKey => 10,
            ErrorCode::Unknown(v) => v,
        }
    }
}

/// A checked view over one frame's bytes.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wrap bytes without checks; call [`Self::check_len`] before using the accessors.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wrap bytes holding exactly one frame, checking magic, version, bound and length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Check the header and that the buffer holds exactly the announced payload.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        let needed = header_payload_len(data)?;
        match data.len().cmp(&(HEADER_LEN + needed)) {
            core::cmp::Ordering::Less => Err(Error::Truncated),
            core::cmp::Ordering::Greater => Err(Error::TrailingBytes),
            core::cmp::Ordering::Equal => Ok(()),
        }
    }

    pub fn frame_type(&self) -> FrameType {
        FrameType::from(self.buffer.as_ref()[field::TYPE])
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// From a frame header alone: the payload length it announces, after checking magic, version and
/// the bound. Readers call this on the first [`HEADER_LEN`] bytes before reading the payload.
pub fn header_payload_len(header: &[u8]) -> Result<usize> {
    if header.len() < HEADER_LEN {
        return Err(Error::Truncated);
    }
    if header[field::MAGIC] != MAGIC {
        return Err(Error::BadMagic);
    }
    if header[field::VERSION] != VERSION {
        return Err(Error::UnsupportedVersion(header[field::VERSION]));
    }
    let len: [u8; 4] = header[field::LENGTH]
        .try_into()
        .map_err(|_| Error::Truncated)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_PAYLOAD {
        return Err(Error::TooLong);
    }
    Ok(len)
}

/// A frame as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameRepr<'a> {
    /// The device's nonce, and optionally the id of the key configuration the evidence must
    /// bind (33-byte payload); without it (32 bytes) the enclave binds its current key.
    AttestRequest {
        nonce: [u8; NONCE_LEN],
        key_id: Option<u8>,
    },
    /// The encoded evidence bundle (see [`crate::evidence`]).
    Evidence {
        bundle: &'a [u8],
    },
    SealedRequest {
        encapsulated: &'a [u8],
    },
    SealedResponse {
        encapsulated: &'a [u8],
    },
    Error {
        code: ErrorCode,
    },
    PublicationRequest,
}

impl<'a> FrameRepr<'a> {
    /// Parse and validate a checked frame; the repr borrows the frame's bytes.
    pub fn parse(frame: &Frame<&'a [u8]>) -> Result<Self> {
        frame.check_len()?;
        let payload: &'a [u8] = &frame.buffer[field::PAYLOAD..];
        match frame.frame_type() {
            FrameType::AttestRequest => {
                let (nonce, key_id) = match payload.len() {
                    NONCE_LEN => (payload, None),
                    ATTEST_REQUEST_MAX_LEN => (&payload[..NONCE_LEN], Some(payload[NONCE_LEN])),
                    _ => return Err(Error::Malformed),
                };
                let nonce = nonce.try_into().map_err(|_| Error::Malformed)?;
                Ok(Self::AttestRequest { nonce, key_id })
            }
            FrameType::Evidence => nonempty(payload).map(|bundle| Self::Evidence { bundle }),
            FrameType::SealedRequest => {
                nonempty(payload).map(|encapsulated| Self::SealedRequest { encapsulated })
            }
            FrameType::SealedResponse => {
                nonempty(payload).map(|encapsulated| Self::SealedResponse { encapsulated })
            }
            FrameType::Error => {
                let code: [u8; 2] = payload.try_into().map_err(|_| Error::Malformed)?;
                Ok(Self::Error {
                    code: ErrorCode::from(u16::from_be_bytes(code)),
                })
            }
            FrameType::PublicationRequest => {
                if payload.is_empty() {
                    Ok(Self::PublicationRequest)
                } else {
                    Err(Error::Malformed)
                }
            }
            FrameType::Unknown(_) => Err(Error::Malformed),
        }
    }

    pub fn frame_type(&self) -> FrameType {
        match self {
            Self::AttestRequest { .. } => FrameType::AttestRequest,
            Self::Evidence { .. } => FrameType::Evidence,
            Self::SealedRequest { .. } => FrameType::SealedRequest,
            Self::SealedResponse { .. } => FrameType::SealedResponse,
            Self::Error { .. } => FrameType::Error,
            Self::PublicationRequest => FrameType::PublicationRequest,
        }
    }

    fn payload_len(&self) -> usize {
        match self {
            Self::AttestRequest { key_id, .. } => NONCE_LEN + usize::from(key_id.is_some()),
            Self::Evidence { bundle: b } => b.len(),
            Self::SealedRequest { encapsulated: b } | Self::SealedResponse { encapsulated: b } => {
                b.len()
            }
            Self::Error { .. } => 2,
            Self::PublicationRequest => 0,
        }
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Write the frame into `buf` (at least [`Self::buffer_len`] bytes); returns the length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.payload_len();
        if len > MAX_PAYLOAD {
            return Err(Error::TooLong);
        }
        let total = HEADER_LEN + len;
        let out = buf.get_mut(..total).ok_or(Error::BufferTooSmall)?;
        out[field::MAGIC].copy_from_slice(&MAGIC);
        out[field::VERSION] = VERSION;
        out[field::TYPE] = self.frame_type().into();
        out[field::LENGTH].copy_from_slice(&(len as u32).to_be_bytes());
        let payload = &mut out[field::PAYLOAD..];
        match self {
            Self::AttestRequest { nonce, key_id } => {
                payload[..NONCE_LEN].copy_from_slice(nonce);
                if let Some(id) = key_id {
                    payload[NONCE_LEN] = *id;
                }
            }
            Self::Evidence { bundle: b } => payload.copy_from_slice(b),
            Self::SealedRequest { encapsulated: b } | Self::SealedResponse { encapsulated: b } => {
                payload.copy_from_slice(b)
            }
            Self::Error { code } => payload.copy_from_slice(&u16::from(*code).to_be_bytes()),
            Self::PublicationRequest => {}
        }
        Ok(total)
    }

    /// `emit` into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = alloc::vec![0u8; self.buffer_len()];
        self.emit(&mut v)?;
        Ok(v)
    }
}

fn nonempty(b: &[u8]) -> Result<&[u8]> {
    if b.is_empty() {
        Err(Error::Malformed)
    } else {
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(repr: FrameRepr<'_>) {
        let bytes = repr.to_vec().unwrap();
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(FrameRepr::parse(&frame).unwrap(), repr);
    }

    #[test]
    fn round_trips() {
        round_trip(FrameRepr::AttestRequest {
            nonce: [7; NONCE_LEN],
            key_id: None,
        });
        round_trip(FrameRepr::AttestRequest {
            nonce: [7; NONCE_LEN],
            key_id: Some(0),
        });
        round_trip(FrameRepr::Evidence { bundle: b"bundle" });
        round_trip(FrameRepr::SealedRequest {
            encapsulated: &[1, 2, 3],
        });
        round_trip(FrameRepr::SealedResponse { encapsulated: &[4] });
        round_trip(FrameRepr::Error {
            code: ErrorCode::OpenFailed,
        });
        round_trip(FrameRepr::Error {
            code: ErrorCode::Unknown(999),
        });
        round_trip(FrameRepr::PublicationRequest);
    }

    #[test]
    fn publication_request_has_no_payload() {
        let mut bytes = FrameRepr::PublicationRequest.to_vec().unwrap();
        assert_eq!(bytes, [b'P', b'P', 1, 6, 0, 0, 0, 0]);
        bytes[7] = 1;
        bytes.push(0);
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(FrameRepr::parse(&frame), Err(Error::Malformed));
    }

    #[test]
    fn exact_layout() {
        let bytes = FrameRepr::Error {
            code: ErrorCode::TooLarge,
        }
        .to_vec()
        .unwrap();
        assert_eq!(bytes, [b'P', b'P', 1, 5, 0, 0, 0, 2, 0, 3]);
    }

    #[test]
    fn refuses_bad_frames() {
        let good = FrameRepr::AttestRequest {
            nonce: [1; NONCE_LEN],
            key_id: None,
        }
        .to_vec()
        .unwrap();
        assert_eq!(
            Frame::new_checked(&good[..5]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Frame::new_checked(&good[..good.len() - 1]).unwrap_err(),
            Error::Truncated
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            Frame::new_checked(&long[..]).unwrap_err(),
            Error::TrailingBytes
        );
        let mut magic = good.clone();
        magic[0] = b'X';
        assert_eq!(Frame::new_checked(&magic[..]).unwrap_err(), Error::BadMagic);
        let mut version = good.clone();
        version[2] = 9;
        assert_eq!(
            Frame::new_checked(&version[..]).unwrap_err(),
            Error::UnsupportedVersion(9)
        );
        let huge = [b'P', b'P', 1, 3, 0x00, 0x10, 0x00, 0x01];
        assert_eq!(header_payload_len(&huge).unwrap_err(), Error::TooLong);
        // A nonce of the wrong size, an empty sealed request, an unknown type.
        let short_nonce = [b'P', b'P', 1, 1, 0, 0, 0, 1, 0];
        let f = Frame::new_checked(&short_nonce[..]).unwrap();
        assert_eq!(FrameRepr::parse(&f).unwrap_err(), Error::Malformed);
        let empty = [b'P', b'P', 1, 3, 0, 0, 0, 0];
        let f = Frame::new_checked(&empty[..]).unwrap();
        assert_eq!(FrameRepr::parse(&f).unwrap_err(), Error::Malformed);
        let unknown = [b'P', b'P', 1, 77, 0, 0, 0, 0];
        let f = Frame::new_checked(&unknown[..]).unwrap();
        assert_eq!(f.frame_type(), FrameType::Unknown(77));
        assert_eq!(FrameRepr::parse(&f).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn attest_request_is_a_nonce_and_maybe_a_key_id() {
        let short = FrameRepr::AttestRequest {
            nonce: [3; NONCE_LEN],
            key_id: None,
        }
        .to_vec()
        .unwrap();
        assert_eq!(short.len(), HEADER_LEN + 32);
        let long = FrameRepr::AttestRequest {
            nonce: [3; NONCE_LEN],
            key_id: Some(0xA7),
        }
        .to_vec()
        .unwrap();
        assert_eq!(long.len(), HEADER_LEN + 33);
        assert_eq!(&long[..HEADER_LEN], [b'P', b'P', 1, 1, 0, 0, 0, 33]);
        assert_eq!(long[HEADER_LEN + 32], 0xA7);
        for len in [0, 31, 34, 64] {
            let mut bytes = alloc::vec![b'P', b'P', 1, 1, 0, 0, 0, len as u8];
            bytes.resize(HEADER_LEN + len, 0);
            let f = Frame::new_checked(&bytes[..]).unwrap();
            assert_eq!(FrameRepr::parse(&f).unwrap_err(), Error::Malformed, "{len}");
        }
    }

    #[test]
    fn new_error_codes_keep_their_numbers() {
        for (code, n) in [(ErrorCode::Replayed, 9u16), (ErrorCode::UnknownKey, 10)] {
            assert_eq!(u16::from(code), n);
            assert_eq!(ErrorCode::from(n), code);
        }
    }

    #[test]
    fn emit_needs_room() {
        let repr = FrameRepr::SealedRequest {
            encapsulated: &[1; 10],
        };
        assert_eq!(
            repr.emit(&mut [0u8; 17]).unwrap_err(),
            Error::BufferTooSmall
        );
    }
}
