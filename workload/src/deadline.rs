//! A TCP stream under a deadline: every read and write fails with `TimedOut` once the deadline
//! has passed, and none waits past it, however the peer drips its bytes. A per-read silence bound
//! applies too.
//!
//! Two ways to wait, chosen once per stream: where the platform takes socket timeouts (Linux),
//! each read or write blocks with a timeout of what is left; where it refuses them (Hermit 0.11's
//! `setsockopt` knows only `TCP_NODELAY` and `SO_REUSEADDR`), the socket is made non-blocking and
//! polled, sleeping [`POLL_NAP`] between tries. Both use only `std::net` and `std::thread::sleep`.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Sleep between tries when polling a non-blocking socket: the most a polled read lags behind
/// its data. Not shorter: Hermit 0.11's sleep blocks the task only from 10 ms on and busy-waits
/// (a reschedule loop) below that, so shorter naps would spin the enclave's one vCPU for every
/// peer that drips its bytes.
pub const POLL_NAP: Duration = Duration::from_millis(10);
/// Time given to write a session's last frame (an error or busy answer) once its deadline has
/// passed.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A stream whose deadline can give way for the enclave's own writes.
pub trait Graced {
    /// Allow [`CLOSE_GRACE`] from now, whatever the deadline, for a last frame.
    fn grace(&mut self);
    /// An answer is ready: its write may take the silence bound from now even past the
    /// deadline (the time spent computing it was the enclave's). Reads keep the deadline.
    fn answering(&mut self) {}
    /// An answer was written: the next request must arrive within the idle bound (never past
    /// the session's deadline), so a session between requests does not keep its worker.
    fn between_requests(&mut self) {}
}

impl Graced for TcpStream {
    fn grace(&mut self) {}
}

/// A TCP stream with a deadline (see the module documentation).
#[derive(Debug)]
pub struct Deadlined {
    sock: TcpStream,
    until: Instant,
    /// Writes may go on until this too (see [`Graced::answering`]).
    answer_until: Option<Instant>,
    /// The session's own end and the idle bound between requests (see [`Deadlined::set_session`]).
    session: Option<(Instant, Duration)>,
    silence: Duration,
    polled: bool,
}

impl Deadlined {
    /// `sock` under `until`, with at most `silence` between bytes. Polls when the platform
    /// refuses socket timeouts.
    pub fn new(sock: TcpStream, until: Instant, silence: Duration) -> Self {
        let polled = sock.set_read_timeout(Some(silence)).is_err()
            || sock.set_write_timeout(Some(silence)).is_err();
        Self::with_mode(sock, until, silence, polled)
    }

    /// As [`Deadlined::new`], with the waiting chosen by the caller (`polled`: non-blocking and
    /// polled). Tests run the polled path on Linux with it.
    pub fn with_mode(sock: TcpStream, until: Instant, silence: Duration, polled: bool) -> Self {
        if polled {
            // If even this fails, reads block: the deadline is then checked between them.
            let _ = sock.set_nonblocking(true);
        }
        Self {
            sock,
            until,
            answer_until: None,
            session: None,
            silence,
            polled,
        }
    }

    /// Move the deadline.
    pub fn set_deadline(&mut self, until: Instant) {
        self.until = until;
        self.answer_until = None;
    }

    /// The session's deadline `until`; after each answer ([`Graced::between_requests`]) the
    /// next request must arrive within `idle`, and never after `until`.
    pub fn set_session(&mut self, until: Instant, idle: Duration) {
        self.set_deadline(until);
        self.session = Some((until, idle));
    }

    /// The stream.
    pub fn get_ref(&self) -> &TcpStream {
        &self.sock
    }

    /// What is left before the deadline (`until`), at most the silence bound; `TimedOut` when
    /// nothing is.
    fn left(&self, until: Instant) -> std::io::Result<Duration> {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        Ok(left.min(self.silence))
    }

    /// Run `op` until it does not block, within the deadline and the silence bound.
    fn wait<T>(
        &mut self,
        until: Instant,
        mut op: impl FnMut(&mut TcpStream) -> std::io::Result<T>,
        set: fn(&TcpStream, Option<Duration>) -> std::io::Result<()>,
    ) -> std::io::Result<T> {
        if !self.polled {
            let left = self.left(until)?;
            set(&self.sock, Some(left))?;
            // A socket timeout shows as `WouldBlock` on Unix: it is a timeout here.
            return op(&mut self.sock).map_err(|e| match e.kind() {
                ErrorKind::WouldBlock => ErrorKind::TimedOut.into(),
                _ => e,
            });
        }
        let quiet_until = Instant::now() + self.left(until)?;
        loop {
            match op(&mut self.sock) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                other => return other,
            }
            let left = self.left(until)?;
            let quiet = quiet_until.saturating_duration_since(Instant::now());
            if quiet.is_zero() {
                return Err(ErrorKind::TimedOut.into());
            }
            std::thread::sleep(POLL_NAP.min(left).min(quiet));
        }
    }
}

impl Graced for Deadlined {
    fn grace(&mut self) {
        self.set_deadline(Instant::now() + CLOSE_GRACE);
    }

    fn answering(&mut self) {
        self.answer_until = Some(Instant::now() + self.silence);
    }

    fn between_requests(&mut self) {
        if let Some((end, idle)) = self.session {
            self.set_deadline(end.min(Instant::now() + idle));
        }
    }
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.wait(self.until, |s| s.read(buf), TcpStream::set_read_timeout)
    }
}

impl Write for Deadlined {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let until = self.answer_until.map_or(self.until, |a| a.max(self.until));
        self.wait(until, |s| s.write(buf), TcpStream::set_write_timeout)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.sock.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (listener.accept().unwrap().0, client)
    }

    /// A peer that sends a byte every 50 ms never lets a read wait past the deadline, in either
    /// way of waiting: the per-read silence bound alone would let it go on forever.
    #[test]
    fn a_dripping_peer_is_cut_off_at_the_deadline() {
        for polled in [false, true] {
            let (server, mut client) = pair();
            let drip = std::thread::spawn(move || {
                for _ in 0..40 {
                    if client.write_all(b"x").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            let started = Instant::now();
            let until = started + Duration::from_millis(400);
            let mut s = Deadlined::with_mode(server, until, Duration::from_secs(5), polled);
            let mut got = 0;
            let err = loop {
                let mut b = [0u8; 16];
                match s.read(&mut b) {
                    Ok(0) => panic!("closed"),
                    Ok(n) => got += n,
                    Err(e) => break e,
                }
            };
            let took = started.elapsed();
            assert_eq!(err.kind(), ErrorKind::TimedOut, "polled={polled}");
            assert!(got >= 2, "polled={polled}: {got}");
            assert!(
                took < Duration::from_millis(1500),
                "polled={polled}: {took:?}"
            );
            drop(s);
            drip.join().unwrap();
        }
    }

    /// A silent peer is cut off by the silence bound before the deadline.
    #[test]
    fn a_silent_peer_is_cut_off_by_the_silence_bound() {
        for polled in [false, true] {
            let (server, _client) = pair();
            let until = Instant::now() + Duration::from_secs(30);
            let mut s = Deadlined::with_mode(server, until, Duration::from_millis(200), polled);
            let started = Instant::now();
            let err = s.read(&mut [0u8; 4]).unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock),
                "{err:?}"
            );
            assert!(started.elapsed() < Duration::from_secs(3));
        }
    }

    /// An answer computed past the deadline is still written; reads stay cut off.
    #[test]
    fn an_answer_is_written_past_the_deadline() {
        for polled in [false, true] {
            let (server, mut client) = pair();
            let until = Instant::now() + Duration::from_millis(50);
            let mut s = Deadlined::with_mode(server, until, Duration::from_secs(5), polled);
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(
                s.write(b"late").unwrap_err().kind(),
                ErrorKind::TimedOut,
                "polled={polled}"
            );
            s.answering();
            s.write_all(b"answer").unwrap();
            let mut got = [0u8; 6];
            client.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"answer");
            let err = s.read(&mut [0u8; 1]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TimedOut, "polled={polled}");
        }
    }
}
