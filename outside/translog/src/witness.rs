//! The witness's logic (c2sp.org/tlog-witness `add-checkpoint`): for each log it knows (by
//! origin and key), keep the latest checkpoint it cosigned, on disk, and cosign a new one only
//! if it is a consistent extension of that one. The HTTP face is in `pp-services`.
//!
//! Request body: `old N\n`, up to 63 base64 consistency-proof lines, an empty line, then the
//! checkpoint note. Answers, as the spec says: 200 with one `cosignature/v1` line; 400 for a
//! malformed request or an old size above the checkpoint's; 403 when no log signature verifies;
//! 404 for an unknown origin; 409 (`text/x.tlog.size`, the size it knows) when `old` is not the
//! size it last cosigned or a same-size checkpoint has another root; 422 when the proof fails.
//!
//! The state file (`{"logs": {"<origin>": {"size": N, "root": "<hex>"}}}`) is replaced
//! atomically (temporary file, fsync, rename, directory fsync) before the cosignature is
//! returned; the caller serialises requests (one `&mut Witness`), so check and update are atomic.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::Ed25519KeyPair;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, CheckpointError, NoteKey};
use crate::hexfield;
use crate::merkle::{self, Hash};

/// Most consistency-proof lines a request may carry (the spec's bound).
pub const MAX_PROOF_LINES: usize = 63;
/// Largest request body read.
pub const MAX_REQUEST_LEN: usize = 8 * 1024 + checkpoint::MAX_NOTE_LEN;

/// An HTTP answer: status, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

fn reply(status: u16, body: impl Into<String>) -> Reply {
    Reply {
        status,
        content_type: "text/plain; charset=utf-8",
        body: format!("{}\n", body.into()).into_bytes(),
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StateJson {
    logs: BTreeMap<String, SeenJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeenJson {
    size: u64,
    root: String,
}

/// A witness: its key and name, the logs it witnesses, and what it cosigned for each.
pub struct Witness {
    name: String,
    key: Ed25519KeyPair,
    logs: BTreeMap<String, NoteKey>,
    state_path: PathBuf,
    seen: BTreeMap<String, (u64, Hash)>,
}

impl Witness {
    /// A witness named `name` with `key`, for the logs `logs` (their type-0x01 keys, named by
    /// origin), keeping its state in `state_path` (absent: nothing cosigned yet).
    pub fn open(
        name: &str,
        key: Ed25519KeyPair,
        logs: Vec<NoteKey>,
        state_path: &Path,
    ) -> Result<Self, String> {
        checkpoint::witness_note_key(name, &key).map_err(|e| e.to_string())?;
        let mut seen = BTreeMap::new();
        match File::open(state_path) {
            Ok(f) => {
                let mut text = Vec::new();
                f.take(1 << 20)
                    .read_to_end(&mut text)
                    .map_err(|e| format!("cannot read {}: {e}", state_path.display()))?;
                let state: StateJson = serde_json::from_slice(&text).map_err(|e| {
                    format!("witness state {} is unusable: {e}", state_path.display())
                })?;
                for (origin, s) in state.logs {
                    let root = hexfield::decode("root", &s.root).map_err(|e| e.to_string())?;
                    seen.insert(origin, (s.size, root));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot open {}: {e}", state_path.display())),
        }
        Ok(Self {
            name: name.to_string(),
            key,
            logs: logs.into_iter().map(|k| (k.name.clone(), k)).collect(),
            state_path: state_path.to_path_buf(),
            seen,
        })
    }

    /// The witness's verifier key (type 0x04), for devices' configurations.
    pub fn note_key(&self) -> NoteKey {
        // The name was checked in `open`.
        checkpoint::witness_note_key(&self.name, &self.key).expect("checked in open")
    }

    /// The size and root last cosigned for `origin`.
    pub fn seen(&self, origin: &str) -> Option<(u64, Hash)> {
        self.seen.get(origin).copied()
    }

    /// Handles one `add-checkpoint` request body at time `now` (Unix seconds).
    pub fn add_checkpoint(&mut self, body: &[u8], now: u64) -> Reply {
        if body.len() > MAX_REQUEST_LEN {
            return reply(400, "request too large");
        }
        let Some(split) = body.windows(2).position(|w| w == b"\n\n") else {
            return reply(
                400,
                "expected old size line, proof lines, an empty line, a checkpoint",
            );
        };
        let (head, note) = (&body[..=split], &body[split + 2..]);
        let Ok(head) = std::str::from_utf8(head) else {
            return reply(400, "the request head is not UTF-8");
        };
        let mut lines = head.strip_suffix('\n').unwrap_or(head).split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .filter(|n| *n == "0" || !n.starts_with('0'))
            .and_then(|n| n.parse::<u64>().ok());
        let Some(old) = old else {
            return reply(400, "the first line must be `old N`");
        };
        let mut proof: Vec<Hash> = Vec::new();
        for line in lines {
            let Some(h) = B64.decode(line).ok().and_then(|h| h.try_into().ok()) else {
                return reply(400, "a proof line is not a base64 hash");
            };
            proof.push(h);
        }
        if proof.len() > MAX_PROOF_LINES {
            return reply(400, "more than 63 proof lines");
        }
        let origin = match signed_note::Note::from_bytes(note)
            .map_err(|e| e.to_string())
            .and_then(|n| checkpoint::Checkpoint::parse_body(n.text()).map_err(|e| e.to_string()))
        {
            Ok(cp) => cp.origin,
            Err(e) => return reply(403, format!("not a checkpoint: {e}")),
        };
        let Some(log_key) = self.logs.get(&origin) else {
            return reply(404, "unknown log origin");
        };
        let (cp, _) = match checkpoint::open_log_signed(note, log_key) {
            Ok(x) => x,
            Err(CheckpointError::BadLogSignature) => {
                return reply(403, "no signature from the log's key verifies");
            }
            Err(e) => return reply(403, e.to_string()),
        };
        if old > cp.size {
            return reply(400, "old size is above the checkpoint's size");
        }
        let (known_size, known_root) = self
            .seen
            .get(&origin)
            .copied()
            .unwrap_or((0, merkle::empty_root()));
        let conflict = || Reply {
            status: 409,
            content_type: "text/x.tlog.size",
            body: format!("{known_size}\n").into_bytes(),
        };
        if old != known_size {
            return conflict();
        }
        if old == cp.size && cp.root != known_root {
            eprintln!(
                "witness: log {origin:?} offered another root for size {}: refused (409)",
                cp.size
            );
            return conflict();
        }
        if merkle::verify_consistency(old, cp.size, &known_root, &cp.root, &proof).is_err() {
            return reply(422, "the consistency proof does not verify");
        }
        let mut next = self.seen.clone();
        next.insert(origin, (cp.size, cp.root));
        if let Err(e) = persist(&self.state_path, &next) {
            return reply(500, format!("cannot store the witness state: {e}"));
        }
        self.seen = next;
        match checkpoint::cosignature_line(&self.name, &self.key, cp.body().as_bytes(), now) {
            Ok(line) => Reply {
                status: 200,
                content_type: "text/plain; charset=utf-8",
                body: line.into_bytes(),
            },
            Err(e) => reply(500, e.to_string()),
        }
    }
}

fn persist(path: &Path, seen: &BTreeMap<String, (u64, Hash)>) -> std::io::Result<()> {
    let state = StateJson {
        logs: seen
            .iter()
            .map(|(o, (size, root))| {
                (
                    o.clone(),
                    SeenJson {
                        size: *size,
                        root: hex::encode(root),
                    },
                )
            })
            .collect(),
    };
    let text = serde_json::to_vec_pretty(&state).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(&text)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
#[path = "witness_tests.rs"]
mod tests;
