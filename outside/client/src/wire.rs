//! Frames on the TLS stream: bounded reads, whole writes. Parsing is `pp_protocol::frame`'s.

use std::io::{ErrorKind, Read, Write};

use pp_protocol::frame::{self, Frame, FrameRepr, FrameType, HEADER_LEN};
use zeroize::Zeroizing;

use crate::ClientError;

/// Writes one frame and flushes it through TLS to the transport. The encoded frame is zeroized.
pub(crate) fn write_frame(
    stream: &mut impl Write,
    repr: &FrameRepr<'_>,
) -> Result<(), ClientError> {
    let bytes = Zeroizing::new(repr.to_vec().map_err(|e| match e {
        pp_protocol::Error::TooLong => ClientError::RequestTooLarge,
        other => ClientError::Frame(other),
    })?);
    stream.write_all(&bytes)?;
    stream.flush()?;
    Ok(())
}

/// Reads one frame. `bound` gives, for each frame type expected here, the largest payload
/// accepted; any other type is refused. The header is checked (magic, version, 1 MiB, then the
/// type's bound) before a single payload byte is read or allocated. Returns the whole frame
/// (header and payload), zeroized when dropped.
pub(crate) fn read_frame(
    stream: &mut impl Read,
    bound: impl Fn(FrameType) -> Option<usize>,
) -> Result<Zeroizing<Vec<u8>>, ClientError> {
    let mut header = [0u8; HEADER_LEN];
    match read_full(stream, &mut header)? {
        0 => return Err(ClientError::Closed),
        n if n < HEADER_LEN => return Err(ClientError::Truncated),
        _ => {}
    }
    let len = frame::header_payload_len(&header).map_err(|e| match e {
        pp_protocol::Error::TooLong => ClientError::FrameTooLarge,
        other => ClientError::Frame(other),
    })?;
    let frame_type = Frame::new_unchecked(&header[..]).frame_type();
    let max = match frame_type {
        FrameType::Error => ERROR_PAYLOAD_LEN,
        other => bound(other).ok_or(ClientError::UnexpectedFrame(other))?,
    };
    if len > max {
        return Err(if frame_type == FrameType::SealedResponse {
            ClientError::ResponseTooLarge
        } else {
            ClientError::FrameTooLarge
        });
    }
    let mut buf = Zeroizing::new(vec![0u8; HEADER_LEN + len]);
    buf[..HEADER_LEN].copy_from_slice(&header);
    if read_full(stream, &mut buf[HEADER_LEN..])? < len {
        return Err(ClientError::Truncated);
    }
    Ok(buf)
}

/// An `Error` frame carries a `u16` code.
const ERROR_PAYLOAD_LEN: usize = 2;

/// Fills `buf` unless the stream ends first; returns how many bytes were read. A TLS peer that
/// closes the transport without `close_notify` counts as the end of the stream here: the caller
/// turns a short read into [`ClientError::Closed`] or [`ClientError::Truncated`].
fn read_full(stream: &mut impl Read, buf: &mut [u8]) -> Result<usize, ClientError> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pp_protocol::frame::ErrorCode;

    fn bound(t: FrameType) -> Option<usize> {
        (t == FrameType::Evidence).then_some(16)
    }

    #[test]
    fn reads_a_frame_within_its_bound() {
        let bytes = FrameRepr::Evidence { bundle: b"abc" }.to_vec().unwrap();
        let frame = read_frame(&mut &bytes[..], bound).unwrap();
        assert_eq!(&frame[..], &bytes[..]);
    }

    #[test]
    fn error_frames_are_always_expected() {
        let bytes = FrameRepr::Error {
            code: ErrorCode::Busy,
        }
        .to_vec()
        .unwrap();
        assert!(read_frame(&mut &bytes[..], bound).is_ok());
    }

    #[test]
    fn refuses_from_the_header_alone() {
        // The payload is not there: a refusal must not need it.
        let mut over_type_bound = FrameRepr::Evidence { bundle: &[0; 17] }.to_vec().unwrap();
        over_type_bound.truncate(HEADER_LEN);
        let err = read_frame(&mut &over_type_bound[..], bound).unwrap_err();
        assert!(matches!(err, ClientError::FrameTooLarge), "{err:?}");
        let over_max = [b'P', b'P', 1, 2, 0x00, 0x10, 0x00, 0x01];
        let err = read_frame(&mut &over_max[..], bound).unwrap_err();
        assert!(matches!(err, ClientError::FrameTooLarge), "{err:?}");
        let unexpected = [b'P', b'P', 1, 4, 0, 0, 0, 9];
        let err = read_frame(&mut &unexpected[..], bound).unwrap_err();
        assert!(
            matches!(err, ClientError::UnexpectedFrame(FrameType::SealedResponse)),
            "{err:?}"
        );
        let bad_magic = [b'Q', b'P', 1, 2, 0, 0, 0, 1];
        let err = read_frame(&mut &bad_magic[..], bound).unwrap_err();
        assert!(
            matches!(err, ClientError::Frame(pp_protocol::Error::BadMagic)),
            "{err:?}"
        );
    }

    #[test]
    fn short_reads_are_closed_or_truncated() {
        let bytes = FrameRepr::Evidence { bundle: b"abc" }.to_vec().unwrap();
        let err = read_frame(&mut &bytes[..0], bound).unwrap_err();
        assert!(matches!(err, ClientError::Closed), "{err:?}");
        for cut in [1, HEADER_LEN - 1, HEADER_LEN, bytes.len() - 1] {
            let err = read_frame(&mut &bytes[..cut], bound).unwrap_err();
            assert!(matches!(err, ClientError::Truncated), "cut {cut}: {err:?}");
        }
    }
}
