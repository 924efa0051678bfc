//! Frames on the TLS stream through `pp_protocol::io` (the same bounded, header-first reader the
//! enclave uses), with its errors mapped onto [`ClientError`].

use std::io::{Read, Write};

use pp_protocol::frame::{FrameRepr, FrameType};
use pp_protocol::io::{self, ReadError, WriteError};
use zeroize::Zeroizing;

use crate::ClientError;

/// Writes one frame and flushes it through TLS to the transport. The encoded frame is zeroized.
pub(crate) fn write_frame(
    stream: &mut impl Write,
    repr: &FrameRepr<'_>,
) -> Result<(), ClientError> {
    io::write_frame(stream, repr).map_err(|e| match e {
        WriteError::Encode(pp_protocol::Error::TooLong) => ClientError::RequestTooLarge,
        WriteError::Encode(other) => ClientError::Frame(other),
        WriteError::Io(e) => e.into(),
    })
}

/// Reads one frame. `bound` gives, for each frame type expected here, the largest payload
/// accepted; any other type is refused, an `Error` frame always accepted. Returns the whole
/// frame (header and payload), zeroized when dropped.
pub(crate) fn read_frame(
    stream: &mut impl Read,
    bound: impl Fn(FrameType) -> Option<usize>,
) -> Result<Zeroizing<Vec<u8>>, ClientError> {
    match io::read_frame(stream, bound) {
        Ok(Some(frame)) => Ok(frame),
        Ok(None) => Err(ClientError::Closed),
        Err(ReadError::Truncated) => Err(ClientError::Truncated),
        Err(ReadError::Io(e)) => Err(e.into()),
        Err(ReadError::TooLarge(FrameType::SealedResponse)) => Err(ClientError::ResponseTooLarge),
        Err(ReadError::TooLarge(_)) => Err(ClientError::FrameTooLarge),
        Err(ReadError::Unexpected(t)) => Err(ClientError::UnexpectedFrame(t)),
        Err(ReadError::Header(e)) => Err(ClientError::Frame(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pp_protocol::frame::HEADER_LEN;

    fn bound(t: FrameType) -> Option<usize> {
        (t == FrameType::Evidence).then_some(16)
    }

    #[test]
    fn maps_the_readers_refusals() {
        let mut over = FrameRepr::SealedResponse {
            encapsulated: &[0; 17],
        }
        .to_vec()
        .unwrap();
        over.truncate(HEADER_LEN);
        let err = read_frame(&mut &over[..], |_| Some(16)).unwrap_err();
        assert!(matches!(err, ClientError::ResponseTooLarge), "{err:?}");
        let err = read_frame(&mut &over[..], bound).unwrap_err();
        assert!(
            matches!(err, ClientError::UnexpectedFrame(FrameType::SealedResponse)),
            "{err:?}"
        );
        let bytes = FrameRepr::Evidence { bundle: b"abc" }.to_vec().unwrap();
        let err = read_frame(&mut &bytes[..0], bound).unwrap_err();
        assert!(matches!(err, ClientError::Closed), "{err:?}");
        let err = read_frame(&mut &bytes[..3], bound).unwrap_err();
        assert!(matches!(err, ClientError::Truncated), "{err:?}");
    }
}
