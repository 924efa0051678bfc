//! The key CDN's index as the device accepts it: a `pp-cdn-index/1` entry that is in the
//! transparency log **and is the newest such entry there** (issue 13 §2). So the CDN cannot show
//! this device an index of its own (a unique instance id, a single instance: not in the log), nor
//! an older logged index with fewer instances (not the newest): every device with the same tree
//! head uses the same instances.

use anyhow::{Context, Result, bail};
use pp_protocol::cdn_index::{CdnIndex, INDEX_FILE, SCHEMA};

use crate::releases::LogClient;

/// Most log entries after the index the device reads to check that no newer index exists. A log
/// that appended more since the index has an operator that stopped publishing: the index is stale.
pub const MAX_ENTRIES_AFTER_INDEX: u64 = 256;

/// The CDN index, proven to be in the log and the newest index there.
#[derive(Debug, Clone)]
pub struct LoggedIndex {
    /// The parsed index.
    pub index: CdnIndex,
    /// Its bytes, as the CDN served them and the log holds them.
    pub bytes: Vec<u8>,
    /// Its position in the log.
    pub log_index: u64,
}

/// Fetches the CDN's index and accepts it only if it is the newest `pp-cdn-index/1` entry in
/// the log under `log`'s tree head.
pub fn fetch(cdn: &str, log: &LogClient) -> Result<LoggedIndex> {
    let bytes = log.reader().get(&format!("{cdn}/{INDEX_FILE}"))?;
    let index = CdnIndex::parse(&bytes)
        .map_err(|e| anyhow::anyhow!("the key CDN's index is refused: {e}"))?;
    let log_index = log.prove_included(&bytes).context(
        "the key CDN's index is not in the transparency log (a view of the enclave instances \
         other devices may not share): refusing it",
    )?;
    check_newest(log, log_index)?;
    Ok(LoggedIndex {
        index,
        bytes,
        log_index,
    })
}

/// Reads every log entry after `log_index` (each proven at its position: the log dedupes
/// entries, so each bytes sits at one index) and refuses if one is a newer CDN index.
fn check_newest(log: &LogClient, log_index: u64) -> Result<()> {
    let size = log.tree_head().size;
    let after = size - log_index - 1;
    if after > MAX_ENTRIES_AFTER_INDEX {
        bail!(
            "the key CDN's index (log entry {log_index}) is followed by {after} log entries, more \
             than the {MAX_ENTRIES_AFTER_INDEX} this device reads to check that it is the newest: \
             refusing a stale index"
        );
    }
    for j in log_index + 1..size {
        let entry = log
            .entry_at(j)
            .with_context(|| format!("reading log entry {j} after the key CDN's index"))?;
        if pp_translog::entry::schema_of(&entry).ok().as_deref() == Some(SCHEMA) {
            bail!(
                "the key CDN served an old index (log entry {log_index}); the log holds a newer \
                 one at entry {j}: refusing a view of the enclave instances other devices may not \
                 share"
            );
        }
    }
    Ok(())
}

#[cfg(all(test, feature = "test-root"))]
#[path = "logged_index_tests.rs"]
pub(crate) mod tests;
