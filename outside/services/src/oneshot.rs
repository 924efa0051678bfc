//! The gateway's side of an enclave's one-shot port (plain TCP; the content is HPKE-sealed):
//! one `SealedRequest` frame out, one `SealedResponse` or `Error` frame back, then the enclave
//! closes. Frames are written and read by `pp_protocol::io` (the reader every party uses: the
//! answer's length is checked from its header before a byte of it is read). Connect, write and
//! read each have a deadline, so a silent instance holds a gateway slot for a bounded time.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use pp_protocol::frame::{Frame, FrameRepr, FrameType, MAX_PAYLOAD};
use pp_protocol::io::{read_frame, write_frame};

/// Longest wait for the TCP connection to the instance.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest the request write and the answer may each take (above the slowest answer an enclave
/// gives, as the tunnels' idle bound).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// What the instance answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The sealed response (the device opens it).
    Sealed(Vec<u8>),
    /// An `Error` frame's code.
    Error(u16),
}

/// Why there is no answer: the instance could not be reached or answered no valid frame. Carries
/// no peer bytes.
#[derive(Debug, thiserror::Error)]
pub enum OneshotError {
    #[error("cannot connect to the instance's one-shot port")]
    Connect,
    #[error("the instance's one-shot port failed: {0}")]
    Io(&'static str),
}

/// Sends `sealed` to the one-shot port at `address` and returns the answer. Blocking: run it on
/// the blocking pool.
pub fn exchange(address: &str, sealed: &[u8], timeout: Duration) -> Result<Answer, OneshotError> {
    let target = address
        .to_socket_addrs()
        .map_err(|_| OneshotError::Connect)?
        .next()
        .ok_or(OneshotError::Connect)?;
    let mut stream = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT.min(timeout))
        .map_err(|_| OneshotError::Connect)?;
    let _ = stream.set_nodelay(true);
    stream
        .set_write_timeout(Some(timeout))
        .and_then(|()| stream.set_read_timeout(Some(timeout)))
        .map_err(|_| OneshotError::Io("cannot set timeouts"))?;
    write_frame(
        &mut stream,
        &FrameRepr::SealedRequest {
            encapsulated: sealed,
        },
    )
    .map_err(|_| OneshotError::Io("the request could not be written"))?;
    let bound = |t: FrameType| (t == FrameType::SealedResponse).then_some(MAX_PAYLOAD);
    let frame = read_frame(&mut stream, bound)
        .map_err(|_| OneshotError::Io("no valid answer frame"))?
        .ok_or(OneshotError::Io("closed without an answer"))?;
    let view = Frame::new_checked(&frame[..]).map_err(|_| OneshotError::Io("malformed frame"))?;
    match FrameRepr::parse(&view).map_err(|_| OneshotError::Io("malformed frame"))? {
        FrameRepr::SealedResponse { encapsulated } => Ok(Answer::Sealed(encapsulated.to_vec())),
        FrameRepr::Error { code } => Ok(Answer::Error(u16::from(code))),
        _ => Err(OneshotError::Io("an unexpected frame")),
    }
}
