//! The handler gate: one bound on how many requests are opened and handled at once, shared by the
//! session workers (`crate::server`) and the one-shot slots (`crate::oneshot`), so that the two
//! doors together never run the models more than [`crate::server::WORKERS`] times at once.
//!
//! A request that cannot get a pass within the gate's wait is answered `Busy` (7) without being
//! opened: its `enc` is not recorded and the handler does not run (`crate::session::answer_sealed`).

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Longest a request waits for a pass before it is answered `Busy`.
pub const HANDLER_WAIT: Duration = Duration::from_secs(2);

/// A counting gate of `capacity` passes (Mutex + Condvar).
#[derive(Debug)]
pub struct Gate {
    taken: Mutex<usize>,
    freed: Condvar,
    capacity: usize,
    wait: Duration,
}

/// A pass through the [`Gate`]; given back when dropped.
#[derive(Debug)]
pub struct Pass<'g>(&'g Gate);

impl Gate {
    /// A gate of `capacity` passes, where a caller waits at most `wait` for one.
    pub fn new(capacity: usize, wait: Duration) -> Self {
        Self {
            taken: Mutex::new(0),
            freed: Condvar::new(),
            capacity,
            wait,
        }
    }

    /// The enclave's gate: [`crate::server::WORKERS`] passes, [`HANDLER_WAIT`].
    pub fn for_handler() -> Self {
        Self::new(crate::server::WORKERS, HANDLER_WAIT)
    }

    /// A pass, waiting at most the gate's wait for one; `None` if none was freed in time.
    pub fn enter(&self) -> Option<Pass<'_>> {
        let until = Instant::now() + self.wait;
        // A panic aborts the enclave, so a poisoned lock cannot be seen in the image.
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        while *taken >= self.capacity {
            let left = until.checked_duration_since(Instant::now())?;
            taken = self
                .freed
                .wait_timeout(taken, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *taken += 1;
        Some(Pass(self))
    }

    /// Passes out now.
    pub fn taken(&self) -> usize {
        *self.taken.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut taken = self.0.taken.lock().unwrap_or_else(|e| e.into_inner());
        *taken -= 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_capacity_passes_and_a_freed_one_wakes_a_waiter() {
        let gate = Gate::new(2, Duration::from_millis(200));
        let a = gate.enter().unwrap();
        let _b = gate.enter().unwrap();
        let started = Instant::now();
        assert!(gate.enter().is_none());
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(gate.taken(), 2);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| gate.enter().map(drop).is_some());
            std::thread::sleep(Duration::from_millis(50));
            drop(a);
            assert!(waiter.join().unwrap());
        });
        assert_eq!(gate.taken(), 1);
    }
}
