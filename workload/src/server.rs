//! The session server: accepts TLS connections and keeps request workers for requests.
//!
//! A connection first takes one of a few handshake slots, where it must finish the TLS handshake
//! and send its first frame within [`Limits::handshake`] (total, however it drips its bytes), and,
//! once the evidence is made, its first sealed request within [`Limits::first_request`]. Only a
//! session that got that far is handed to a request worker, where it may stay until
//! [`Limits::session`] after it was accepted, and, after each answer, only as long as its next
//! request arrives within [`Limits::idle`]: a session between requests does not keep a worker. A connection that finds every handshake slot taken
//! is closed at once; a session that finds every worker and queue place taken is answered `Busy`.
//! A slot is so held at most the two deadlines, the attester's time, and twice
//! [`crate::deadline::CLOSE_GRACE`] to write a last frame and close.
//! Threads: one acceptor, [`Limits::handshake_slots`] and [`Limits::workers`], all made at start.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::deadline::Deadlined;
use crate::door::{self, Accepted, Running};
use crate::session::{self, Enclave, Ready, SessionError, Started};

/// Sessions served at once (each may run the models).
pub const WORKERS: usize = 2;
/// Attested sessions with a first request waiting for a worker; more are answered `Busy`.
pub const QUEUE: usize = 4;
/// Connections in their handshake at once; a connection finding all taken is closed at once.
pub const HANDSHAKE_SLOTS: usize = 8;
/// From accept to the first frame read: the TLS handshake and the attestation request, total.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);
/// From the evidence made (the attester's time is not the peer's) to the first sealed request
/// read: the evidence's write, the device's check of it, and its first request.
pub const FIRST_REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// From accept to the end of a session, whatever it does: it is then closed (`Timeout`).
pub const SESSION_DEADLINE: Duration = Duration::from_secs(300);
/// From an answer written to the next request read: a device sends its requests back to back,
/// so a session idle longer is ended (`Timeout`) and its worker freed.
pub const IDLE_DEADLINE: Duration = Duration::from_secs(10);
/// Longest a peer may stay silent inside a session.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The server's bounds. [`Limits::default`] is what the enclave runs with (the constants above);
/// tests shorten the deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub workers: usize,
    pub queue: usize,
    pub handshake_slots: usize,
    pub handshake: Duration,
    pub first_request: Duration,
    pub session: Duration,
    pub idle: Duration,
    pub io: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            workers: WORKERS,
            queue: QUEUE,
            handshake_slots: HANDSHAKE_SLOTS,
            handshake: HANDSHAKE_DEADLINE,
            first_request: FIRST_REQUEST_DEADLINE,
            session: SESSION_DEADLINE,
            idle: IDLE_DEADLINE,
            io: IO_TIMEOUT,
        }
    }
}

/// Counters for the serial log (fixed words and numbers only).
#[derive(Debug, Default)]
pub struct Counters {
    pub sessions: AtomicU64,
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    /// Connections closed because every handshake slot was taken.
    pub busy: AtomicU64,
    /// Sessions answered `Busy` because every worker and queue place was taken.
    pub busy_workers: AtomicU64,
}

type Chan = StreamOwned<ServerConnection, Deadlined>;

/// A session that passed its start, with its accept time (the session deadline counts from it).
struct Handoff {
    ready: Ready<Chan>,
    accepted: Instant,
}

/// A running server.
pub struct Server {
    running: Running,
    /// What it counted so far.
    pub counters: Arc<Counters>,
}

/// Serve sessions on `listener` on threads of their own (see the module documentation).
pub fn spawn(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    enclave: Arc<Enclave>,
    limits: Limits,
) -> Server {
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let addr = listener.local_addr().ok();
    let mut threads = Vec::new();
    let (to_worker, for_workers) = sync_channel::<Handoff>(limits.queue);
    let for_workers = Arc::new(Mutex::new(for_workers));
    for _ in 0..limits.workers {
        let (rx, enclave, counters) = (for_workers.clone(), enclave.clone(), counters.clone());
        threads.push(std::thread::spawn(move || work(&rx, &enclave, &counters)));
    }
    // Connections handed to a slot and not yet through their start: only the acceptor adds,
    // so it never hands out more than there are slots, and the channel never fills.
    let taken = Arc::new(AtomicUsize::new(0));
    let (to_slot, for_slots) = sync_channel::<Accepted>(limits.handshake_slots);
    let for_slots = Arc::new(Mutex::new(for_slots));
    for _ in 0..limits.handshake_slots {
        let (rx, tls, enclave) = (for_slots.clone(), tls.clone(), enclave.clone());
        let (to_worker, counters, taken) = (to_worker.clone(), counters.clone(), taken.clone());
        threads.push(std::thread::spawn(move || {
            handshakes(&rx, &tls, &enclave, limits, &to_worker, &counters, &taken)
        }));
    }
    drop(to_worker);
    let (flag, c) = (stop.clone(), counters.clone());
    let slots = limits.handshake_slots;
    threads.push(std::thread::spawn(move || {
        // Dropping the stream closes it: the device retries elsewhere.
        door::accept(&listener, &to_slot, (&taken, slots), &flag, |_| {
            let n = c.busy.fetch_add(1, Ordering::Relaxed) + 1;
            println!("pp-workload: busy={n}");
        })
    }));
    Server {
        running: Running {
            stop,
            addr,
            threads,
        },
        counters,
    }
}

impl Server {
    /// Stop accepting, let every session end, and join every thread (tests; the enclave never
    /// stops). Needs the listener's address, which Hermit does not give.
    pub fn stop(self) {
        self.running.stop();
    }
}

/// A handshake slot: takes connections one at a time and starts their sessions.
fn handshakes(
    rx: &Mutex<Receiver<Accepted>>,
    tls: &Arc<ServerConfig>,
    enclave: &Enclave,
    limits: Limits,
    to_worker: &SyncSender<Handoff>,
    counters: &Counters,
    taken: &AtomicUsize,
) {
    loop {
        let next = rx.lock().map(|r| r.recv());
        let Ok(Ok((stream, accepted))) = next else {
            return;
        };
        start_one(stream, accepted, tls, enclave, limits, to_worker, counters);
        taken.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One connection's start, in a handshake slot.
fn start_one(
    stream: TcpStream,
    accepted: Instant,
    tls: &Arc<ServerConfig>,
    enclave: &Enclave,
    limits: Limits,
    to_worker: &SyncSender<Handoff>,
    counters: &Counters,
) {
    // Frames are small request/response pairs: without this, delayed ACKs add ~40 ms stalls.
    let _ = stream.set_nodelay(true);
    let sock = Deadlined::new(stream, accepted + limits.handshake, limits.io);
    let Ok(conn) = ServerConnection::new(tls.clone()) else {
        return;
    };
    let chan = StreamOwned::new(conn, sock);
    let started = session::start(enclave, chan, |chan| {
        chan.sock
            .set_deadline(Instant::now() + limits.first_request);
    });
    match started {
        Started::Ready(mut ready) => {
            ready
                .chan_mut()
                .sock
                .set_session(accepted + limits.session, limits.idle);
            match to_worker.try_send(Handoff { ready, accepted }) {
                Ok(()) => {}
                Err(TrySendError::Full(h) | TrySendError::Disconnected(h)) => {
                    let n = counters.busy_workers.fetch_add(1, Ordering::Relaxed) + 1;
                    println!("pp-workload: busy_workers={n}");
                    close(h.ready.refuse_busy());
                }
            }
        }
        Started::Ended(chan, result) => finish(chan, result, accepted, counters),
    }
}

/// A request worker: serves sessions that passed their start.
fn work(rx: &Mutex<Receiver<Handoff>>, enclave: &Enclave, counters: &Counters) {
    loop {
        let next = rx.lock().map(|r| r.recv());
        let Ok(Ok(Handoff { ready, accepted })) = next else {
            return;
        };
        let (chan, result) = ready.serve(enclave);
        finish(chan, result, accepted, counters);
    }
}

/// End the TLS session cleanly if its handshake finished (else there is nothing to end, and a
/// peer still mid-handshake gets no more reads).
fn close(mut chan: Chan) {
    if chan.conn.is_handshaking() {
        return;
    }
    crate::deadline::Graced::grace(&mut chan.sock);
    chan.conn.send_close_notify();
    let _ = std::io::Write::flush(&mut chan);
}

/// Close the session and log its outcome: counts and an error code, never request bytes.
fn finish(chan: Chan, result: Result<u64, SessionError>, accepted: Instant, c: &Counters) {
    close(chan);
    let n = c.sessions.fetch_add(1, Ordering::Relaxed) + 1;
    let ms = accepted.elapsed().as_millis();
    match result {
        Ok(served) => {
            let total = c.requests.fetch_add(served, Ordering::Relaxed) + served;
            println!(
                "pp-workload: session={n} ok requests={served} total_requests={total} ms={ms}"
            );
        }
        Err(e) => {
            let errors = c.errors.fetch_add(1, Ordering::Relaxed) + 1;
            println!("pp-workload: session={n} error={e:?} errors={errors} ms={ms}");
        }
    }
}
