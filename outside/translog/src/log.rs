//! The log's server-side state: an append-only list of entries, persisted to one append-only
//! file, and the Ed25519 key that signs its checkpoints.
//!
//! File format: a sequence of records, each `u32` big-endian length (1..=[`MAX_ENTRY_LEN`])
//! followed by that many bytes of entry; no header, no padding. Every append is one `write` of
//! the whole record followed by `fsync`. On open the whole file is read back and checked: a
//! truncated trailing record, an empty or oversized record, or a duplicate entry stops the
//! open with an error naming the byte offset; nothing is silently dropped.
//!
//! The key is an Ed25519 PKCS#8 (v2) document, generated on first start (written to a temporary
//! file with mode 0600 and renamed into place) and loaded afterwards.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

use crate::merkle::{self, Hash, MerkleError};

/// Largest entry the log accepts, in bytes. A release manifest is a few KiB; the bound is
/// what a C2SP tlog-tiles entry bundle's `uint16` length prefix can carry.
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;

/// Largest key file read, in bytes (an Ed25519 PKCS#8 v2 document is 83 bytes).
const MAX_KEY_FILE_LEN: u64 = 1024;

/// Why the log refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the log file.
    #[error("log file {path} is locked by another process: run one log server per file")]
    Locked {
        /// The log file.
        path: PathBuf,
    },
    /// The log file ends inside a record.
    #[error(
        "log file {path} ends in a truncated record at byte {offset}: the last append did not complete; restore the file from a backup or, after checking, cut it to {offset} bytes by hand"
    )]
    TruncatedRecord {
        /// The log file.
        path: PathBuf,
        /// Where the incomplete record starts.
        offset: u64,
    },
    /// A record's length field is 0 or above [`MAX_ENTRY_LEN`].
    #[error(
        "log file {path} has a record of length {len} at byte {offset}, outside 1..={MAX_ENTRY_LEN}: the file is corrupt; restore it from a backup"
    )]
    BadRecordLength {
        /// The log file.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// The length field.
        len: u32,
    },
    /// The same entry appears twice in the file, which `append` never writes.
    #[error(
        "log file {path} repeats entry {first_index} at byte {offset}: the file was not written by this log; restore it from a backup"
    )]
    DuplicateRecord {
        /// The log file.
        path: PathBuf,
        /// Where the repeated record starts.
        offset: u64,
        /// Index of the first occurrence.
        first_index: u64,
    },
    /// The key file is not an Ed25519 PKCS#8 v2 document.
    #[error(
        "key file {path} is not an Ed25519 PKCS#8 v2 key: restore the log's key; never replace it, devices pin it"
    )]
    BadKey {
        /// The key file.
        path: PathBuf,
    },
    /// An entry to append is empty.
    #[error("refusing an empty entry: append the release manifest's bytes")]
    EmptyEntry,
    /// An entry to append is larger than [`MAX_ENTRY_LEN`].
    #[error(
        "refusing an entry of {len} bytes, more than the {max} allowed: a release manifest is far smaller"
    )]
    EntryTooLarge {
        /// The entry's length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A tree size beyond the log's current size.
    #[error(
        "tree size {size} is beyond the log's {current} entries: ask for a size the log has signed"
    )]
    SizeOutOfRange {
        /// The size asked for.
        size: u64,
        /// The log's size.
        current: u64,
    },
    /// A bad index or pair of sizes for a proof or an entry.
    #[error("{0}")]
    Proof(#[from] MerkleError),
    /// An earlier append failed in a way that leaves the file's end uncertain.
    #[error(
        "an earlier append failed to reach the disk; refusing further appends: restart the log server, which re-reads and checks the file"
    )]
    Poisoned,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LogError {
    let path = path.to_path_buf();
    move |source| LogError::Io {
        action,
        path,
        source,
    }
}

/// The log: entries in memory and on disk, and the signing key.
pub struct Log {
    path: PathBuf,
    file: File,
    file_len: u64,
    entries: Vec<Vec<u8>>,
    leaves: Vec<Hash>,
    by_leaf: HashMap<Hash, u64>,
    root: Hash,
    key: Ed25519KeyPair,
    public_key: [u8; 32],
    poisoned: bool,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("path", &self.path)
            .field("size", &self.size())
            .field("log_id", &hex::encode(self.log_id()))
            .finish_non_exhaustive()
    }
}

impl Log {
    /// Opens (creating if absent) the log file `log_path` and the key file `key_path`, reads
    /// every record back and checks it. Takes an exclusive lock on the log file for the life of
    /// the `Log`.
    pub fn open(log_path: &Path, key_path: &Path) -> Result<Self, LogError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o644)
            .open(log_path)
            .map_err(io("open", log_path))?;
        file.try_lock().map_err(|e| match e {
            fs::TryLockError::WouldBlock => LogError::Locked {
                path: log_path.to_path_buf(),
            },
            fs::TryLockError::Error(source) => io("lock", log_path)(source),
        })?;
        sync_parent(log_path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io("read", log_path))?;
        let entries = parse_records(log_path, &data)?;
        let key = load_or_create_key(key_path)?;
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(key.public_key().as_ref());
        let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
        let by_leaf = leaves
            .iter()
            .enumerate()
            .map(|(i, h)| (*h, i as u64))
            .collect();
        Ok(Self {
            path: log_path.to_path_buf(),
            file,
            file_len: data.len() as u64,
            root: merkle::root(&leaves),
            entries,
            leaves,
            by_leaf,
            key,
            public_key,
            poisoned: false,
        })
    }

    /// Appends `entry` and returns its index; if the same bytes are already logged, returns
    /// their index and writes nothing. The record is on disk (fsync) when this returns `Ok`.
    pub fn append(&mut self, entry: &[u8]) -> Result<u64, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        if entry.is_empty() {
            return Err(LogError::EmptyEntry);
        }
        if entry.len() > MAX_ENTRY_LEN {
            return Err(LogError::EntryTooLarge {
                len: entry.len(),
                max: MAX_ENTRY_LEN,
            });
        }
        let leaf = merkle::leaf_hash(entry);
        if let Some(&index) = self.by_leaf.get(&leaf) {
            return Ok(index);
        }
        let mut record = Vec::with_capacity(4 + entry.len());
        // entry.len() <= MAX_ENTRY_LEN fits in a u32.
        record.extend_from_slice(&(entry.len() as u32).to_be_bytes());
        record.extend_from_slice(entry);
        if let Err(source) = self.file.write_all(&record) {
            // Cut a partial record off so the file stays a sequence of whole records.
            if self.file.set_len(self.file_len).is_err() {
                self.poisoned = true;
            }
            return Err(io("append to", &self.path)(source));
        }
        if let Err(source) = self.file.sync_data() {
            // After a failed fsync nothing is known about what reached the disk.
            self.poisoned = true;
            return Err(io("fsync", &self.path)(source));
        }
        self.file_len += record.len() as u64;
        let index = self.leaves.len() as u64;
        self.entries.push(entry.to_vec());
        self.leaves.push(leaf);
        self.by_leaf.insert(leaf, index);
        self.root = merkle::root(&self.leaves);
        Ok(index)
    }

    /// Number of entries.
    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// The log's 32-byte Ed25519 public key, which devices pin.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// SHA-256 of the public key.
    pub fn log_id(&self) -> Hash {
        crate::checkpoint::log_id(&self.public_key)
    }

    /// The Merkle root of the first `size` entries.
    pub fn root_at(&self, size: u64) -> Result<Hash, LogError> {
        Ok(merkle::root(self.prefix(size)?))
    }

    /// The current tree head as a C2SP checkpoint note signed by the log, with `origin` as
    /// its origin line and key name.
    pub fn checkpoint_note(&self, origin: &str) -> Result<String, crate::CheckpointError> {
        crate::checkpoint::sign_checkpoint(
            &self.key,
            &crate::Checkpoint {
                origin: origin.to_string(),
                size: self.size(),
                root: self.root,
            },
        )
    }

    /// The log's verifier key (`origin+id+base64`, type 0x01), which devices and witnesses pin.
    pub fn vkey(&self, origin: &str) -> Result<String, crate::CheckpointError> {
        Ok(crate::checkpoint::log_note_key(origin, &self.key)?.to_vkey())
    }

    /// The inclusion proof of entry `index` in the tree of the first `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        Ok(merkle::inclusion_proof(self.prefix(size)?, index, size)?)
    }

    /// The consistency proof from the tree of `old_size` entries to that of `new_size`.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, LogError> {
        Ok(merkle::consistency_proof(
            self.prefix(new_size)?,
            old_size,
            new_size,
        )?)
    }

    /// The C2SP `tlog-tiles` entry bundle of tile `n` holding `width` entries (see
    /// [`crate::tiles`]); an error if the log is smaller than the tile's end.
    pub fn entry_bundle(&self, n: u64, width: u64) -> Result<Vec<u8>, LogError> {
        let first = n.checked_mul(crate::tiles::TILE_WIDTH);
        let end = first.and_then(|f| f.checked_add(width));
        let (Some(first), Some(end)) = (first, end) else {
            return Err(LogError::Proof(MerkleError::IndexOutOfRange {
                index: u64::MAX,
                size: self.size(),
            }));
        };
        let entries = (first..end)
            .map(|i| self.entry(i))
            .collect::<Result<Vec<_>, _>>()?;
        // Every entry was bounded by `MAX_ENTRY_LEN` (a `u16`) when appended.
        Ok(crate::tiles::encode_bundle(entries).expect("entries fit a tile"))
    }

    /// The bytes of entry `index`.
    pub fn entry(&self, index: u64) -> Result<&[u8], LogError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(Vec::as_slice)
            .ok_or(LogError::Proof(MerkleError::IndexOutOfRange {
                index,
                size: self.size(),
            }))
    }

    /// The index of the entry whose leaf hash is `leaf_hash`, if logged.
    pub fn index_of_leaf_hash(&self, leaf_hash: &Hash) -> Option<u64> {
        self.by_leaf.get(leaf_hash).copied()
    }

    fn prefix(&self, size: u64) -> Result<&[Hash], LogError> {
        usize::try_from(size)
            .ok()
            .and_then(|n| self.leaves.get(..n))
            .ok_or(LogError::SizeOutOfRange {
                size,
                current: self.size(),
            })
    }
}

/// Splits the file's bytes into entries, refusing anything `append` would not have written.
fn parse_records(path: &Path, data: &[u8]) -> Result<Vec<Vec<u8>>, LogError> {
    let mut entries = Vec::new();
    let mut seen: HashMap<Hash, u64> = HashMap::new();
    let mut offset = 0usize;
    while offset < data.len() {
        let at = offset as u64;
        let truncated = || LogError::TruncatedRecord {
            path: path.to_path_buf(),
            offset: at,
        };
        let len_bytes: [u8; 4] = data
            .get(offset..offset + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(truncated)?;
        let len = u32::from_be_bytes(len_bytes);
        if len == 0 || len as usize > MAX_ENTRY_LEN {
            return Err(LogError::BadRecordLength {
                path: path.to_path_buf(),
                offset: at,
                len,
            });
        }
        let body = data
            .get(offset + 4..offset + 4 + len as usize)
            .ok_or_else(truncated)?;
        let index = entries.len() as u64;
        if let Some(&first_index) = seen.get(&merkle::leaf_hash(body)) {
            return Err(LogError::DuplicateRecord {
                path: path.to_path_buf(),
                offset: at,
                first_index,
            });
        }
        seen.insert(merkle::leaf_hash(body), index);
        entries.push(body.to_vec());
        offset += 4 + len as usize;
    }
    Ok(entries)
}

/// Loads the PKCS#8 key at `path`, or generates one and writes it there (mode 0600, via a
/// temporary file and a rename, so a crash never leaves half a key). The witness keeps its key
/// the same way.
pub fn load_or_create_key(path: &Path) -> Result<Ed25519KeyPair, LogError> {
    match File::open(path) {
        Ok(file) => {
            let mut pkcs8 = Vec::new();
            file.take(MAX_KEY_FILE_LEN)
                .read_to_end(&mut pkcs8)
                .map_err(io("read", path))?;
            Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| LogError::BadKey {
                path: path.to_path_buf(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bad_key = || LogError::BadKey {
                path: path.to_path_buf(),
            };
            let pkcs8 =
                Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| bad_key())?;
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io("create", &tmp))?;
            file.write_all(pkcs8.as_ref())
                .and_then(|()| file.sync_all())
                .map_err(io("write", &tmp))?;
            fs::rename(&tmp, path).map_err(io("rename into", path))?;
            sync_parent(path)?;
            Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| bad_key())
        }
        Err(e) => Err(io("open", path)(e)),
    }
}

/// Makes a file's creation or rename durable by syncing its directory.
fn sync_parent(path: &Path) -> Result<(), LogError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync directory", dir))
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
