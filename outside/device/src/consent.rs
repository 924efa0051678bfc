//! The user's controls over what leaves the device: the opt-in to AI features, and the chat's
//! "Advanced Chat Privacy" setting (see [`crate::thread::Thread::private`]).
//!
//! Nothing is sent for AI features — no request, no token fetch, no log read — until the user has
//! opted in: `pp opt-in` writes a marker file in the state folder. `pp opt-out` removes it and
//! deletes what using the features left on the device: the Privacy Pass tokens (which the issuer
//! linked to this account when it issued them) and the receipts (which list when and where
//! requests were answered). The transparency log's kept tree head and any evidence files stay:
//! they hold nothing about the user's requests, and evidence is kept for the user to show.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// The marker file in the state folder that records the opt-in.
pub const OPT_IN_FILE: &str = "opted-in";

/// What `pp opt-in` writes into the marker (fixed text: no time, no name).
const OPT_IN_TEXT: &str = "The user opted in to AI features (pp opt-in). `pp opt-out` removes this file, the \
tokens and the receipts.\n";

/// Whether the user has opted in on this device (the marker exists).
pub fn opted_in(state_dir: &Path) -> bool {
    state_dir.join(OPT_IN_FILE).is_file()
}

/// Refuses, before anything is sent, unless the user has opted in.
pub fn require_opt_in(state_dir: &Path) -> Result<()> {
    if opted_in(state_dir) {
        return Ok(());
    }
    bail!(
        "AI features are off on this device: nothing is sent until you opt in. Run `pp opt-in` \
         to turn them on (summaries and suggested replies are then computed in an attested \
         enclave the operator cannot read); `pp opt-out` turns them off again and deletes the \
         tokens and receipts."
    )
}

/// Records the opt-in (idempotent). Returns whether the device was opted out before.
pub fn opt_in(state_dir: &Path) -> Result<bool> {
    let was_out = !opted_in(state_dir);
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let marker = state_dir.join(OPT_IN_FILE);
    std::fs::write(&marker, OPT_IN_TEXT)
        .with_context(|| format!("writing {}", marker.display()))?;
    Ok(was_out)
}

/// What [`opt_out`] removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// The opt-in marker was there.
    pub opt_in: bool,
    /// The wallet had files (tokens, key entries or its lock).
    pub wallet: bool,
    /// Receipt files and folders removed (the folder and the list).
    pub receipt_paths: usize,
}

/// The wallet's paths in the state folder (see [`crate::wallet::Wallet::new`]).
const TOKEN_PATHS: [&str; 3] = ["tokens", "tokens.txt", "tokens.lock"];
/// The receipts' paths in the state folder (see [`crate::receipts`]).
const RECEIPT_PATHS: [&str; 2] = [crate::receipts::RECEIPTS_DIR, "receipts.jsonl"];

/// Removes the opt-in marker first (so an interrupted opt-out leaves the features off), then the
/// tokens and the receipts. Idempotent.
pub fn opt_out(state_dir: &Path) -> Result<Removed> {
    let mut removed = Removed {
        opt_in: remove(&state_dir.join(OPT_IN_FILE))?,
        ..Removed::default()
    };
    removed.wallet = TOKEN_PATHS.iter().any(|p| state_dir.join(p).exists());
    if removed.wallet {
        // Under the wallet's lock, so a request running now does not write tokens back after.
        crate::wallet::Wallet::new(state_dir).clear()?;
        remove(&state_dir.join("tokens.lock"))?;
    }
    for name in RECEIPT_PATHS {
        removed.receipt_paths += usize::from(remove(&state_dir.join(name))?);
    }
    Ok(removed)
}

/// Removes a file or a folder with its contents; `false` if there was none.
fn remove(path: &Path) -> Result<bool> {
    let result = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    result.with_context(|| format!("removing {}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opt_in_then_out_removes_tokens_and_receipts_and_turns_the_features_off() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        let refused = require_opt_in(state).unwrap_err().to_string();
        assert!(refused.contains("pp opt-in"), "{refused}");
        assert!(opt_in(state).unwrap());
        assert!(!opt_in(state).unwrap(), "opting in twice changes nothing");
        require_opt_in(state).unwrap();

        for dir in ["tokens", "receipts", "log"] {
            std::fs::create_dir_all(state.join(dir)).unwrap();
            std::fs::write(state.join(dir).join("x"), "x").unwrap();
        }
        std::fs::write(state.join("receipts.jsonl"), "{}\n").unwrap();
        std::fs::write(state.join("tokens.lock"), "").unwrap();
        let removed = opt_out(state).unwrap();
        assert!(removed.opt_in);
        assert!(removed.wallet && removed.receipt_paths == 2, "{removed:?}");
        assert!(!state.join("tokens").exists() && !state.join("receipts").exists());
        assert!(!state.join("tokens.lock").exists());
        assert!(!state.join("receipts.jsonl").exists());
        assert!(state.join("log/x").exists(), "the log's kept head stays");
        assert!(require_opt_in(state).is_err());
        assert_eq!(opt_out(state).unwrap(), Removed::default());
    }
}
