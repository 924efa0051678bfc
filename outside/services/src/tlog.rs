//! The transparency log's HTTP face. Reads are public; appends need the operator's credential.
//!
//! | request | answer |
//! |---|---|
//! | `GET /checkpoint` | the C2SP checkpoint note, with the witnesses' cosignatures when they gave them |
//! | `GET /public-key` | `{"public_key": hex, "log_id": hex, "vkey": "origin+id+base64"}` |
//! | `GET /entries/N` | entry N's bytes |
//! | `GET /tile/entries/<N>[.p/<W>]` | a C2SP `tlog-tiles` entry bundle (how devices read entries) |
//! | `GET /proof/inclusion?hash=HEX&size=N` | the inclusion proof of the entry with that leaf hash |
//! | `GET /proof/consistency?from=A&to=B` | the consistency proof between two sizes |
//! | `POST /append` (Bearer) | appends the body, gets the new checkpoint cosigned; `{"index": N, "checkpoint": note}` |

use std::sync::Mutex;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use pp_translog::{ConsistencyProof, InclusionProof, Log, MAX_ENTRY_LEN};
use sha2::{Digest, Sha256};

use crate::cosign::Cosigner;
use crate::http::{Reply, error, json, query_param, read_body, reply};

/// The log service's state.
pub struct LogService {
    pub log: Mutex<Log>,
    /// The origin line of the log's checkpoints (its name).
    pub origin: String,
    /// The witnesses and the latest cosigned checkpoint.
    pub cosigner: Cosigner,
    /// SHA-256 of the operator's append credential.
    pub operator_secret_sha256: [u8; 32],
}

impl LogService {
    /// Serves one request.
    pub async fn handle(&self, req: Request<Incoming>) -> Reply {
        let path = req.uri().path().to_string();
        let query = req.uri().query().map(str::to_string);
        let query = query.as_deref();
        match (req.method(), path.as_str()) {
            (&Method::POST, "/append") => self.append(req).await,
            (&Method::GET, "/checkpoint") => match self.checkpoint() {
                Ok(note) => reply(StatusCode::OK, "text/plain; charset=utf-8", note),
                Err(e) => {
                    tracing::warn!("cannot sign a checkpoint: {e}");
                    error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "cannot sign a checkpoint",
                    )
                }
            },
            (&Method::GET, "/public-key") => {
                let log = self.lock();
                json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "public_key": hex::encode(log.public_key()),
                        "log_id": hex::encode(log.log_id()),
                        "vkey": log.vkey(&self.origin).unwrap_or_default(),
                    }),
                )
            }
            (&Method::GET, "/proof/inclusion") => self.inclusion(query),
            (&Method::GET, "/proof/consistency") => self.consistency(query),
            (&Method::GET, p) if p.starts_with("/tile/entries/") => {
                let Some((n, width)) =
                    pp_translog::tiles::parse_entries_path(&p["/tile/entries/".len()..])
                else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "not a tlog-tiles entry bundle path",
                    );
                };
                match self.lock().entry_bundle(n, width) {
                    Ok(bytes) => reply(StatusCode::OK, "application/octet-stream", bytes),
                    Err(_) => error(StatusCode::NOT_FOUND, "no such tile"),
                }
            }
            (&Method::GET, p) if p.starts_with("/entries/") => {
                let Some(index) = p["/entries/".len()..].parse::<u64>().ok() else {
                    return error(StatusCode::BAD_REQUEST, "entry index must be a number");
                };
                match self.lock().entry(index) {
                    Ok(bytes) => reply(StatusCode::OK, "application/octet-stream", bytes.to_vec()),
                    Err(_) => error(StatusCode::NOT_FOUND, "no such entry"),
                }
            }
            _ => error(StatusCode::NOT_FOUND, "unknown endpoint"),
        }
    }

    /// The checkpoint served: the cosigned note for the current size, else the log-signed
    /// note alone (which devices refuse: no witness vouched for it).
    pub fn checkpoint(&self) -> Result<String, pp_translog::CheckpointError> {
        // The log's lock is never held while taking the cosigner's (which holds it while it
        // takes the log's).
        let size = self.lock().size();
        match self.cosigner.cosigned(size) {
            Some(note) => Ok(note),
            None => self.lock().checkpoint_note(&self.origin),
        }
    }

    /// Gets the current checkpoint cosigned by the witnesses (blocking: run off the async
    /// workers or in `block_in_place`).
    pub fn cosign(&self) {
        self.cosigner.run(&self.log, &self.origin);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave the log half-appended (appends fsync a
        // whole record first), so a poisoned lock is still usable.
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn append(&self, req: Request<Incoming>) -> Reply {
        let authorized = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|secret| {
                // Comparing digests: timing reveals at most how much of the hash of a guess
                // matches, which says nothing about the secret.
                let digest: [u8; 32] = Sha256::digest(secret.trim().as_bytes()).into();
                digest == self.operator_secret_sha256
            });
        if !authorized {
            return error(
                StatusCode::UNAUTHORIZED,
                "appending needs the operator's credential",
            );
        }
        let body = match read_body(req, MAX_ENTRY_LEN).await {
            Ok(b) => b.body,
            Err(reply) => return reply,
        };
        let appended = {
            let mut log = self.lock();
            let r = log.append(&body);
            if let Ok(index) = &r {
                tracing::info!(index, size = log.size(), "appended");
            }
            r
        };
        match appended {
            Ok(index) => {
                tokio::task::block_in_place(|| self.cosign());
                let checkpoint = self.checkpoint().unwrap_or_default();
                json(
                    StatusCode::OK,
                    &serde_json::json!({ "index": index, "checkpoint": checkpoint }),
                )
            }
            Err(e) => {
                tracing::warn!("append refused: {e}");
                error(StatusCode::BAD_REQUEST, "the entry was refused")
            }
        }
    }

    fn inclusion(&self, query: Option<&str>) -> Reply {
        let hash = query_param(query, "hash")
            .and_then(|h| hex::decode(h).ok())
            .and_then(|h| <[u8; 32]>::try_from(h).ok());
        let size = query_param(query, "size").and_then(|s| s.parse::<u64>().ok());
        let (Some(hash), Some(size)) = (hash, size) else {
            return error(
                StatusCode::BAD_REQUEST,
                "needs hash (64 hex digits, the leaf hash) and size",
            );
        };
        let log = self.lock();
        let Some(index) = log.index_of_leaf_hash(&hash).filter(|&i| i < size) else {
            return error(
                StatusCode::NOT_FOUND,
                "no such entry in a tree of that size",
            );
        };
        match log.inclusion_proof(index, size) {
            Ok(path) => reply(
                StatusCode::OK,
                "application/json",
                InclusionProof {
                    leaf_index: index,
                    tree_size: size,
                    path,
                }
                .to_json(),
            ),
            Err(_) => error(StatusCode::BAD_REQUEST, "size is larger than the log"),
        }
    }

    fn consistency(&self, query: Option<&str>) -> Reply {
        let num = |name| query_param(query, name).and_then(|s| s.parse::<u64>().ok());
        let (Some(old_size), Some(new_size)) = (num("from"), num("to")) else {
            return error(StatusCode::BAD_REQUEST, "needs from and to (tree sizes)");
        };
        match self.lock().consistency_proof(old_size, new_size) {
            Ok(path) => reply(
                StatusCode::OK,
                "application/json",
                ConsistencyProof {
                    old_size,
                    new_size,
                    path,
                }
                .to_json(),
            ),
            Err(_) => error(
                StatusCode::BAD_REQUEST,
                "sizes out of range (need from <= to <= tree size)",
            ),
        }
    }
}
