//! What the two listening doors (the session server, `crate::server`, and the one-shot port,
//! `crate::oneshot`) share: the acceptor that hands each connection to one of a fixed number of
//! slots or refuses it at once, and the stop that ends a door's threads.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Instant;

/// A connection handed to a slot, with its accept time (the door's deadlines count from it).
pub(crate) type Accepted = (TcpStream, Instant);

/// Accepts until `stop`: a connection takes a slot if fewer than `slots` are `taken` and goes to
/// `to_slot`; otherwise, or if the channel will not take it, it is given to `refuse` at once (the
/// acceptor never blocks). Only the acceptor adds to `taken` (the slots give back), so it never
/// hands out more connections than there are slots.
pub(crate) fn accept(
    listener: &TcpListener,
    to_slot: &SyncSender<Accepted>,
    (taken, slots): (&AtomicUsize, usize),
    stop: &AtomicBool,
    refuse: impl Fn(TcpStream),
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        if taken.load(Ordering::SeqCst) >= slots {
            refuse(stream);
            continue;
        }
        taken.fetch_add(1, Ordering::SeqCst);
        if let Err(TrySendError::Full((stream, _)) | TrySendError::Disconnected((stream, _))) =
            to_slot.try_send((stream, Instant::now()))
        {
            // Taken for a connection the slots never got: give it back.
            taken.fetch_sub(1, Ordering::SeqCst);
            refuse(stream);
        }
    }
}

/// A door's threads and how to end them.
pub(crate) struct Running {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) threads: Vec<JoinHandle<()>>,
}

impl Running {
    /// Sets the stop flag, wakes the acceptor with a connection of its own (needs the listener's
    /// address, which Hermit does not give) and joins every thread.
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(addr) = self.addr {
            let _ = TcpStream::connect(addr);
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}
