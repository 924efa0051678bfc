//! One receipt per answered request, appended to `receipts.jsonl` in the state folder: which
//! measurement answered, where its release is in the log, and the tree head checked against.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use pp_translog::Receipt;

/// Appends `receipt` as one JSON line.
pub fn append(state_dir: &Path, receipt: &Receipt) -> Result<()> {
    let path = state_dir.join("receipts.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "{}", receipt.to_json())?;
    file.sync_all()?;
    Ok(())
}
