//! The log's side of the witness protocol: after each append (and every few minutes, so the
//! cosignatures' timestamps stay fresh) submit the log's checkpoint to each witness with a
//! consistency proof from the size that witness last cosigned, and keep the cosigned note that
//! `GET /checkpoint` serves.
//!
//! A witness answering 409 tells the size it knows; the log retries once from there. A witness
//! that refuses (a fork, a bad proof) leaves the checkpoint without its cosignature: devices
//! then refuse the head, which is the point.

use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use pp_translog::Log;

/// Witnesses the log submits to, and what each last cosigned.
pub struct Cosigner {
    /// The witnesses' base URLs (the submission prefix).
    pub witnesses: Vec<String>,
    state: Mutex<CosignState>,
}

#[derive(Default)]
struct CosignState {
    /// Size each witness last cosigned, as far as the log knows.
    sizes: Vec<u64>,
    /// The latest checkpoint with the cosignature lines it got: (size, note).
    cosigned: Option<(u64, String)>,
}

impl Cosigner {
    /// A cosigner for these witness URLs.
    pub fn new(witnesses: Vec<String>) -> Self {
        let sizes = vec![0; witnesses.len()];
        Self {
            witnesses,
            state: Mutex::new(CosignState {
                sizes,
                cosigned: None,
            }),
        }
    }

    /// The cosigned note for the log's current size, if the witnesses cosigned it.
    pub fn cosigned(&self, size: u64) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .cosigned
            .as_ref()
            .filter(|(s, _)| *s == size)
            .map(|(_, n)| n.clone())
    }

    /// Submits the log's current checkpoint to every witness (blocking; one run at a time) and
    /// keeps the note with the cosignature lines returned.
    pub fn run(&self, log: &Mutex<Log>, origin: &str) {
        let lock = || log.lock().unwrap_or_else(|p| p.into_inner());
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (size, note) = {
            let log = lock();
            match log.checkpoint_note(origin) {
                Ok(note) => (log.size(), note),
                Err(e) => {
                    tracing::warn!("cannot sign a checkpoint: {e}");
                    return;
                }
            }
        };
        let mut lines = String::new();
        for (i, url) in self.witnesses.iter().enumerate() {
            for _attempt in 0..2 {
                let old = state.sizes[i];
                if old > size {
                    tracing::warn!(witness = i, old, size, "the witness knows a larger tree");
                    break;
                }
                let proof = if old > 0 && old < size {
                    lock().consistency_proof(old, size).unwrap_or_default()
                } else {
                    Vec::new()
                };
                let mut body = format!("old {old}\n");
                for h in proof {
                    body.push_str(&B64.encode(h));
                    body.push('\n');
                }
                body.push('\n');
                body.push_str(&note);
                match submit(url, &body) {
                    Ok((200, text)) => {
                        lines.push_str(&text);
                        state.sizes[i] = size;
                        break;
                    }
                    Ok((409, text)) => match text.trim().parse::<u64>() {
                        Ok(known) if known != old => state.sizes[i] = known,
                        _ => {
                            tracing::warn!(witness = i, size, "the witness refused: conflict");
                            break;
                        }
                    },
                    Ok((status, _)) => {
                        tracing::warn!(witness = i, status, "the witness refused the checkpoint");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(witness = i, "cannot reach the witness: {e}");
                        break;
                    }
                }
            }
        }
        if !lines.is_empty() {
            state.cosigned = Some((size, format!("{note}{lines}")));
        }
    }
}

fn submit(url: &str, body: &str) -> anyhow::Result<(u16, String)> {
    let mut response = ureq::post(format!("{url}/add-checkpoint"))
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .send(body.as_bytes())?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()?;
    Ok((status, text))
}
