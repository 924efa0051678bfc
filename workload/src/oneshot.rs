//! The one-shot port (docs/protocol.md §8): plain TCP, one `SealedRequest` frame in, one
//! `SealedResponse` or `Error` frame out, then close. The gateway's Oblivious Gateway Resource is
//! its client; the content is HPKE-sealed to one of the ring's keys (`crate::keys`), so no TLS.
//!
//! A connection takes one of [`Limits::slots`] slots, where its whole request frame must be read
//! within [`Limits::read`] of accept (however it drips its bytes); the answer is then computed
//! and written (with the silence bound, as for sessions: `crate::deadline`). A connection that
//! finds every slot taken is answered `Busy` at once; so is a request that gets no pass of the
//! handler gate it shares with the session workers (`crate::gate`) within its wait, unopened.
//! Any first frame but a `SealedRequest` is
//! `UnexpectedFrame`; a replayed request `Replayed`; a request under a key the ring no longer
//! holds `UnknownKey` — the handler runs for none of them. Nothing is read after the first frame.
//! The log holds counters and error names only. Threads: one acceptor and the slots, made at
//! start.

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pp_protocol::frame::{ErrorCode, FrameRepr, FrameType};
use pp_protocol::io::ReadError;

use crate::deadline::{Deadlined, Graced};
use crate::door::{self, Accepted, Running};
use crate::session::{self, Enclave, SessionError};

/// Connections served at once (the models run for at most [`crate::server::WORKERS`] requests at
/// once over both doors: `crate::gate`).
pub const SLOTS: usize = 4;
/// From accept to the whole request frame read.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);
/// Longest the peer may stay silent while the answer is written.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The port's bounds; [`Limits::default`] is what the enclave runs with. Tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub slots: usize,
    pub read: Duration,
    pub io: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            slots: SLOTS,
            read: READ_DEADLINE,
            io: IO_TIMEOUT,
        }
    }
}

/// Counters for the serial log.
#[derive(Debug, Default)]
pub struct Counters {
    pub served: AtomicU64,
    pub errors: AtomicU64,
    /// Connections answered `Busy` because every slot was taken.
    pub busy: AtomicU64,
}

/// A running one-shot listener.
pub struct OneShot {
    running: Running,
    /// What it counted so far.
    pub counters: Arc<Counters>,
}

/// Serve the one-shot port on `listener` (see the module documentation).
pub fn spawn(listener: TcpListener, enclave: Arc<Enclave>, limits: Limits) -> OneShot {
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let addr = listener.local_addr().ok();
    let taken = Arc::new(AtomicUsize::new(0));
    let (to_slot, for_slots) = sync_channel::<Accepted>(limits.slots);
    let for_slots = Arc::new(Mutex::new(for_slots));
    let mut threads = Vec::new();
    for _ in 0..limits.slots {
        let (rx, enclave, counters) = (for_slots.clone(), enclave.clone(), counters.clone());
        let taken = taken.clone();
        threads.push(std::thread::spawn(move || {
            slot(&rx, &enclave, limits, &counters, &taken)
        }));
    }
    let (flag, c) = (stop.clone(), counters.clone());
    threads.push(std::thread::spawn(move || {
        door::accept(&listener, &to_slot, (&taken, limits.slots), &flag, |s| {
            refuse_busy(s, &c)
        })
    }));
    OneShot {
        running: Running {
            stop,
            addr,
            threads,
        },
        counters,
    }
}

impl OneShot {
    /// Stop accepting and join every thread (tests; the enclave never stops).
    pub fn stop(self) {
        self.running.stop();
    }
}

/// Answer `Busy` without blocking the acceptor (a fresh socket's send buffer takes the ten
/// bytes; if not, the connection is just closed), then close.
fn refuse_busy(stream: TcpStream, c: &Counters) {
    let _ = stream.set_nonblocking(true);
    if let Ok(frame) = (FrameRepr::Error {
        code: ErrorCode::Busy,
    })
    .to_vec()
    {
        let _ = (&stream).write(&frame);
    }
    let _ = stream.shutdown(Shutdown::Write);
    let n = c.busy.fetch_add(1, Ordering::Relaxed) + 1;
    println!("pp-workload: oneshot_busy={n}");
}

fn slot(
    rx: &Mutex<Receiver<Accepted>>,
    enclave: &Enclave,
    limits: Limits,
    counters: &Counters,
    taken: &AtomicUsize,
) {
    loop {
        let next = rx.lock().map(|r| r.recv());
        let Ok(Ok((stream, accepted))) = next else {
            return;
        };
        let result = serve_one(stream, accepted, enclave, limits);
        taken.fetch_sub(1, Ordering::SeqCst);
        // Counters and the error's name only: no per-request timing (the host could match it
        // to the requests it forwarded).
        match result {
            Ok(()) => {
                let n = counters.served.fetch_add(1, Ordering::Relaxed) + 1;
                println!("pp-workload: oneshot served={n}");
            }
            Err(e) => {
                let n = counters.errors.fetch_add(1, Ordering::Relaxed) + 1;
                println!("pp-workload: oneshot error={e:?} errors={n}");
            }
        }
    }
}

/// One connection: one frame in, one frame out, close.
fn serve_one(
    stream: TcpStream,
    accepted: Instant,
    enclave: &Enclave,
    limits: Limits,
) -> Result<(), SessionError> {
    let _ = stream.set_nodelay(true);
    let mut sock = Deadlined::new(stream, accepted + limits.read, limits.io);
    let result = answer(&mut sock, enclave);
    match &result {
        Ok(sealed) => {
            sock.answering();
            session::write_frame(
                &mut sock,
                &FrameRepr::SealedResponse {
                    encapsulated: sealed,
                },
            )?;
        }
        Err(e) => {
            if let Some(code) = e.code() {
                sock.grace();
                let _ = session::write_frame(&mut sock, &FrameRepr::Error { code });
            }
        }
    }
    let _ = sock.get_ref().shutdown(Shutdown::Both);
    result.map(drop)
}

/// Read the one request frame and compute its sealed answer.
fn answer(sock: &mut Deadlined, enclave: &Enclave) -> Result<Vec<u8>, SessionError> {
    let max = enclave.max_request;
    let frame =
        pp_protocol::io::read_frame(sock, |t| (t == FrameType::SealedRequest).then_some(max))
            .map_err(|e| match e {
                ReadError::TooLarge(_) => SessionError::TooLarge,
                ReadError::Unexpected(_) => SessionError::Unexpected,
                ReadError::Header(_) => SessionError::Malformed,
                ReadError::Io(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                    ) =>
                {
                    SessionError::Timeout
                }
                ReadError::Truncated | ReadError::Io(_) => SessionError::Io,
            })?
            .ok_or(SessionError::Io)?;
    match session::parse(&frame)? {
        FrameRepr::SealedRequest { encapsulated } => session::answer_sealed(enclave, encapsulated),
        _ => Err(SessionError::Unexpected),
    }
}
