//! Frames on a byte stream, for both ends of the session (feature `std`): a bounded,
//! header-first read and a whole write. Parsing stays in [`crate::frame`].
//!
//! The reader checks the header (magic, version, the 1 MiB bound, then the caller's bound for
//! that frame type) before it reads or allocates a single payload byte. Buffers that held a
//! frame are zeroized when dropped: frames carry sealed requests and evidence.

extern crate std;

use alloc::vec;
use alloc::vec::Vec;
use std::io::{ErrorKind, Read, Write};

use zeroize::Zeroizing;

use crate::frame::{self, Frame, FrameRepr, FrameType, HEADER_LEN};

/// An `Error` frame carries a `u16` code: always accepted, at this size.
const ERROR_PAYLOAD_LEN: usize = 2;

/// Why a frame could not be read. Carries no peer data.
#[derive(Debug)]
pub enum ReadError {
    /// The stream ended inside a frame.
    Truncated,
    /// The transport (or the TLS layer under it) failed.
    Io(std::io::Error),
    /// The header announces more than the bound for its type (or than 1 MiB).
    TooLarge(FrameType),
    /// A frame type the reader does not expect here.
    Unexpected(FrameType),
    /// The header is malformed (magic, version).
    Header(crate::Error),
}

/// Why a frame could not be written.
#[derive(Debug)]
pub enum WriteError {
    /// The frame does not encode (a payload over 1 MiB is [`crate::Error::TooLong`]).
    Encode(crate::Error),
    /// The transport (or the TLS layer under it) failed.
    Io(std::io::Error),
}

/// Reads one frame. `bound` gives, for each frame type expected here, the largest payload
/// accepted; any other type is refused (an `Error` frame is always accepted). Returns the whole
/// frame (header and payload), or `None` when the stream ends cleanly before a frame starts.
pub fn read_frame(
    stream: &mut impl Read,
    bound: impl Fn(FrameType) -> Option<usize>,
) -> Result<Option<Zeroizing<Vec<u8>>>, ReadError> {
    let mut header = [0u8; HEADER_LEN];
    match read_full(stream, &mut header)? {
        0 => return Ok(None),
        n if n < HEADER_LEN => return Err(ReadError::Truncated),
        _ => {}
    }
    let frame_type = Frame::new_unchecked(&header[..]).frame_type();
    let len = frame::header_payload_len(&header).map_err(|e| match e {
        crate::Error::TooLong => ReadError::TooLarge(frame_type),
        other => ReadError::Header(other),
    })?;
    let max = match frame_type {
        FrameType::Error => ERROR_PAYLOAD_LEN,
        other => bound(other).ok_or(ReadError::Unexpected(other))?,
    };
    if len > max {
        return Err(ReadError::TooLarge(frame_type));
    }
    let mut buf = Zeroizing::new(vec![0u8; HEADER_LEN + len]);
    buf[..HEADER_LEN].copy_from_slice(&header);
    if read_full(stream, &mut buf[HEADER_LEN..])? < len {
        return Err(ReadError::Truncated);
    }
    Ok(Some(buf))
}

/// Writes one frame and flushes it. The encoded frame is zeroized.
pub fn write_frame(stream: &mut impl Write, repr: &FrameRepr<'_>) -> Result<(), WriteError> {
    let bytes = Zeroizing::new(repr.to_vec().map_err(WriteError::Encode)?);
    stream
        .write_all(&bytes)
        .and_then(|()| stream.flush())
        .map_err(WriteError::Io)
}

/// Fills `buf` unless the stream ends first; returns how many bytes were read. A TLS peer that
/// closes the transport without `close_notify` counts as the end of the stream here.
fn read_full(stream: &mut impl Read, buf: &mut [u8]) -> Result<usize, ReadError> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::ErrorCode;

    fn bound(t: FrameType) -> Option<usize> {
        (t == FrameType::Evidence).then_some(16)
    }

    #[test]
    fn reads_a_frame_within_its_bound() {
        let bytes = FrameRepr::Evidence { bundle: b"abc" }.to_vec().unwrap();
        let frame = read_frame(&mut &bytes[..], bound).unwrap().unwrap();
        assert_eq!(&frame[..], &bytes[..]);
    }

    #[test]
    fn error_frames_are_always_expected() {
        let bytes = FrameRepr::Error {
            code: ErrorCode::Busy,
        }
        .to_vec()
        .unwrap();
        assert!(read_frame(&mut &bytes[..], bound).unwrap().is_some());
    }

    #[test]
    fn refuses_from_the_header_alone() {
        // The payload is not there: a refusal must not need it.
        let mut over_type_bound = FrameRepr::Evidence { bundle: &[0; 17] }.to_vec().unwrap();
        over_type_bound.truncate(HEADER_LEN);
        let err = read_frame(&mut &over_type_bound[..], bound).unwrap_err();
        assert!(
            matches!(err, ReadError::TooLarge(FrameType::Evidence)),
            "{err:?}"
        );
        let over_max = [b'P', b'P', 1, 2, 0x00, 0x10, 0x00, 0x01];
        let err = read_frame(&mut &over_max[..], bound).unwrap_err();
        assert!(
            matches!(err, ReadError::TooLarge(FrameType::Evidence)),
            "{err:?}"
        );
        let unexpected = [b'P', b'P', 1, 4, 0, 0, 0, 9];
        let err = read_frame(&mut &unexpected[..], bound).unwrap_err();
        assert!(
            matches!(err, ReadError::Unexpected(FrameType::SealedResponse)),
            "{err:?}"
        );
        let bad_magic = [b'Q', b'P', 1, 2, 0, 0, 0, 1];
        let err = read_frame(&mut &bad_magic[..], bound).unwrap_err();
        assert!(
            matches!(err, ReadError::Header(crate::Error::BadMagic)),
            "{err:?}"
        );
    }

    #[test]
    fn a_clean_end_is_none_and_a_short_read_truncated() {
        let bytes = FrameRepr::Evidence { bundle: b"abc" }.to_vec().unwrap();
        assert!(read_frame(&mut &bytes[..0], bound).unwrap().is_none());
        for cut in [1, HEADER_LEN - 1, HEADER_LEN, bytes.len() - 1] {
            let err = read_frame(&mut &bytes[..cut], bound).unwrap_err();
            assert!(matches!(err, ReadError::Truncated), "cut {cut}: {err:?}");
        }
    }

    #[test]
    fn writes_whole_frames_and_refuses_oversized_ones() {
        let mut out = Vec::new();
        let repr = FrameRepr::Evidence { bundle: b"abc" };
        write_frame(&mut out, &repr).unwrap();
        assert_eq!(out, repr.to_vec().unwrap());
        let big = vec![0u8; frame::MAX_PAYLOAD + 1];
        let err = write_frame(&mut out, &FrameRepr::SealedRequest { encapsulated: &big });
        assert!(matches!(
            err,
            Err(WriteError::Encode(crate::Error::TooLong))
        ));
    }
}
