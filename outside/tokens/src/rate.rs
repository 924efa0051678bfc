//! The issuer's per-account token budget: at most `limit` tokens per account per window.
//!
//! Windows are fixed per account: the first issuance opens one, and the budget refills when it
//! ends. Time is an argument (seconds on any monotonic scale the caller chooses), so the limiter
//! holds no clock and tests can drive it. Tracked accounts are bounded: when the table is full,
//! accounts whose window ended are dropped (they would start afresh anyway); if none has ended,
//! a new account is refused rather than evicting one that is mid-window, which would hand it a
//! fresh budget.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// Why tokens were not granted. Carries no account data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// The account's budget for this window is spent.
    #[error("token budget exhausted; retry in {retry_after} s")]
    Exhausted {
        /// Seconds until the window ends and the budget refills.
        retry_after: u64,
    },
    /// More tokens asked for at once than a whole window allows.
    #[error("request exceeds the per-window budget")]
    TooMany,
    /// The table of tracked accounts is full of accounts mid-window.
    #[error("too many accounts tracked")]
    Full,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: u64,
    used: u32,
}

/// A per-account rate limiter. Thread-safe.
#[derive(Debug)]
pub struct RateLimiter<K> {
    limit: u32,
    window_secs: u64,
    max_accounts: usize,
    accounts: Mutex<HashMap<K, Window>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// `limit` tokens per `window_secs` seconds for each of at most `max_accounts` accounts.
    /// A zero window or account bound is raised to 1.
    pub fn new(limit: u32, window_secs: u64, max_accounts: usize) -> Self {
        Self {
            limit,
            window_secs: window_secs.max(1),
            max_accounts: max_accounts.max(1),
            accounts: Mutex::new(HashMap::new()),
        }
    }

    /// Take `count` tokens from `account`'s budget at time `now`, all or nothing. Returns how
    /// many remain in the current window. Taking zero only reports (and tracks nothing new).
    pub fn take(&self, account: &K, count: u32, now: u64) -> Result<u32, RateError> {
        if count > self.limit {
            return Err(RateError::TooMany);
        }
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if count == 0 {
            return Ok(match accounts.get(account) {
                Some(w) if !self.expired(w, now) => self.limit - w.used,
                _ => self.limit,
            });
        }
        if !accounts.contains_key(account) && accounts.len() >= self.max_accounts {
            accounts.retain(|_, w| !self.expired(w, now));
            if accounts.len() >= self.max_accounts {
                return Err(RateError::Full);
            }
        }
        let window = accounts.entry(account.clone()).or_insert(Window {
            start: now,
            used: 0,
        });
        if self.expired(window, now) {
            *window = Window {
                start: now,
                used: 0,
            };
        }
        let remaining = self.limit - window.used;
        if count > remaining {
            let ends = window.start.saturating_add(self.window_secs);
            return Err(RateError::Exhausted {
                retry_after: ends.saturating_sub(now).max(1),
            });
        }
        window.used += count;
        Ok(remaining - count)
    }

    /// Accounts currently tracked.
    pub fn tracked(&self) -> usize {
        self.accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// The window ended. A clock that went backwards keeps the current window (fail closed).
    fn expired(&self, w: &Window, now: u64) -> bool {
        now.saturating_sub(w.start) >= self.window_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600;

    #[test]
    fn budget_per_window() {
        let rl = RateLimiter::new(10, HOUR, 100);
        assert_eq!(rl.take(&"alice", 4, 1000), Ok(6));
        assert_eq!(rl.take(&"alice", 6, 1500), Ok(0));
        assert_eq!(
            rl.take(&"alice", 1, 1600),
            Err(RateError::Exhausted {
                retry_after: HOUR - 600
            })
        );
        // Another account has its own budget.
        assert_eq!(rl.take(&"bob", 10, 1600), Ok(0));
        // The window started at 1000 ends at 1000 + 3600.
        assert_eq!(
            rl.take(&"alice", 1, 1000 + HOUR - 1),
            Err(RateError::Exhausted { retry_after: 1 })
        );
        assert_eq!(rl.take(&"alice", 3, 1000 + HOUR), Ok(7));
    }

    #[test]
    fn batches_are_all_or_nothing() {
        let rl = RateLimiter::new(32, HOUR, 10);
        assert_eq!(rl.take(&1u64, 30, 0), Ok(2));
        assert!(matches!(
            rl.take(&1u64, 3, 1),
            Err(RateError::Exhausted { .. })
        ));
        assert_eq!(rl.take(&1u64, 2, 2), Ok(0));
        assert_eq!(rl.take(&2u64, 33, 2), Err(RateError::TooMany));
        assert_eq!(rl.take(&1u64, 0, 3), Ok(0));
        assert_eq!(rl.take(&3u64, 0, 3), Ok(32));
        assert_eq!(rl.tracked(), 1);
    }

    #[test]
    fn bounded_accounts() {
        let rl = RateLimiter::new(5, 60, 2);
        rl.take(&"a", 1, 0).unwrap();
        rl.take(&"b", 1, 30).unwrap();
        assert_eq!(rl.take(&"c", 1, 59), Err(RateError::Full));
        // Known accounts still work when full.
        assert_eq!(rl.take(&"a", 1, 59), Ok(3));
        // At 60, "a"'s window ended: it is dropped to make room; "b"'s has not.
        assert_eq!(rl.take(&"c", 1, 60), Ok(4));
        assert_eq!(rl.tracked(), 2);
        assert_eq!(rl.take(&"d", 1, 61), Err(RateError::Full));
    }

    #[test]
    fn clock_going_backwards_keeps_the_window() {
        let rl = RateLimiter::new(1, 60, 10);
        assert_eq!(rl.take(&"a", 1, 1000), Ok(0));
        assert_eq!(
            rl.take(&"a", 1, 10),
            Err(RateError::Exhausted { retry_after: 1050 })
        );
        assert_eq!(rl.take(&"a", 1, 1060), Ok(0));
    }
}
