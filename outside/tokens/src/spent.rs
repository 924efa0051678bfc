//! The redeemer's double-spend store: each token can be spent once, across restarts.
//!
//! Keyed by the token's 32-byte nonce. The nonce is what makes a token unique (the client draws
//! it fresh and the issuer's signature binds it), and keying by it rather than by a hash of the
//! whole token means a second valid authenticator for the same token input (the client could
//! have had the same input signed twice) still counts as the same token. Call
//! [`SpentTokens::spend`] only after [`crate::Verifier::verify`] accepted the token.
//!
//! File format: nothing but 32-byte records, appended. Each `spend` writes its record and syncs
//! the file before returning `Ok`; `open` reloads all records and refuses a file whose length is
//! not a multiple of 32. An advisory lock keeps a second process (or a second store in this one)
//! from appending to the same file. The store grows by 32 bytes per token: start a new file when
//! the issuer key rotates (tokens of a retired key no longer verify, so its records are moot).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Mutex;

use crate::NONCE_LEN;
use crate::token::Token;

/// Length of one record.
pub const RECORD_LEN: usize = NONCE_LEN;

/// Why a spend (or opening the store) failed.
#[derive(Debug, thiserror::Error)]
pub enum SpendError {
    /// The token was spent before.
    #[error("token already spent")]
    AlreadySpent,
    /// The file's length is not a multiple of 32 bytes: refuse to guess what was lost.
    #[error("spent-token file is corrupt: length not a multiple of {RECORD_LEN} bytes")]
    Corrupt,
    /// Another store holds the file's lock.
    #[error("spent-token file is locked by another store")]
    Locked,
    /// A write failed earlier: the store refuses every spend until reopened.
    #[error("spent-token store failed earlier and must be reopened")]
    Poisoned,
    /// Reading or writing the file failed.
    #[error("spent-token file I/O")]
    Io(#[from] std::io::Error),
}

struct Inner {
    file: File,
    spent: HashSet<[u8; RECORD_LEN]>,
    poisoned: bool,
}

/// A persistent set of spent token nonces. Thread-safe.
pub struct SpentTokens {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for SpentTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpentTokens").finish_non_exhaustive()
    }
}

impl SpentTokens {
    /// Open (creating if absent) the store at `path` and load its records.
    pub fn open(path: &Path) -> Result<Self, SpendError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        file.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => SpendError::Locked,
            std::fs::TryLockError::Error(e) => SpendError::Io(e),
        })?;
        let len = file.metadata()?.len();
        if !len.is_multiple_of(RECORD_LEN as u64) {
            return Err(SpendError::Corrupt);
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        if bytes.len() as u64 != len {
            return Err(SpendError::Corrupt);
        }
        let spent = bytes
            .chunks_exact(RECORD_LEN)
            .map(|r| r.try_into().expect("exact chunk"))
            .collect();
        Ok(Self {
            inner: Mutex::new(Inner {
                file,
                spent,
                poisoned: false,
            }),
        })
    }

    /// Record `token` as spent; [`SpendError::AlreadySpent`] if it was. Returns `Ok` only once
    /// the record is on disk (written and `fsync`ed).
    pub fn spend(&self, token: &Token) -> Result<(), SpendError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.poisoned {
            return Err(SpendError::Poisoned);
        }
        if inner.spent.contains(&token.nonce) {
            return Err(SpendError::AlreadySpent);
        }
        let written = inner
            .file
            .write_all(&token.nonce)
            .and_then(|()| inner.file.sync_data());
        if let Err(e) = written {
            // A partial record may be on disk: refuse further spends rather than append after it.
            inner.poisoned = true;
            return Err(SpendError::Io(e));
        }
        inner.spent.insert(token.nonce);
        Ok(())
    }

    /// Whether `token` was spent (a lookup only).
    pub fn is_spent(&self, token: &Token) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.spent.contains(&token.nonce)
    }

    /// Number of spent tokens recorded.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spent
            .len()
    }

    /// True when no token was spent yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
