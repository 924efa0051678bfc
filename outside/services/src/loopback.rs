//! A transparency log with one witness, both serving plain HTTP on loopback inside this process
//! (each on a thread with its own runtime): what tests use where the device needs a witnessed
//! log and starting `pp-log serve` and `pp-witness` processes would only add set-up.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use pp_translog::Log;
use pp_translog::checkpoint::{ALG_ED25519, NoteKey};
use pp_translog::witness::Witness;
use sha2::{Digest, Sha256};

use crate::cosign::Cosigner;
use crate::http::{Limits, Reply, serve};
use crate::tlog::LogService;
use crate::witness::WitnessService;

/// The origin line of the loopback log's checkpoints.
pub const ORIGIN: &str = "log.pp.test";

/// A running witnessed log: what a device configuration needs to trust it.
pub struct WitnessedLog {
    /// The log service (its log, to append to directly; `cosign` after such appends).
    pub service: Arc<LogService>,
    /// `http://127.0.0.1:port` of the log.
    pub url: String,
    /// The log's Ed25519 public key, hex (the device's `log.public_key`).
    pub public_key_hex: String,
    /// The checkpoints' origin line (the device's `log.origin`).
    pub origin: String,
    /// The witness's verifier key (the device's `log.witnesses`).
    pub witness_vkey: String,
}

impl WitnessedLog {
    /// Serves `log` (appends over HTTP need `operator_secret`) with a new witness keeping its
    /// state in `dir`, and gets the current checkpoint cosigned.
    pub fn start(dir: &Path, log: Log, operator_secret: &str) -> Result<Self> {
        let log_key =
            NoteKey::new(ORIGIN, ALG_ED25519, *log.public_key()).context("the log's note key")?;
        let public_key_hex = hex::encode(log.public_key());
        let witness_key = pp_translog::log::load_or_create_key(&dir.join("witness.key"))?;
        let witness = Witness::open(
            "witness.pp.test",
            witness_key,
            vec![log_key],
            &dir.join("witness-state.json"),
        )
        .map_err(anyhow::Error::msg)?;
        let witness_vkey = witness.note_key().to_vkey();
        let witness = Arc::new(WitnessService {
            witness: Mutex::new(witness),
        });
        let witness_url = spawn(move |req| {
            let w = witness.clone();
            async move { w.handle(req).await }
        })?;
        let service = Arc::new(LogService {
            log: Mutex::new(log),
            origin: ORIGIN.to_string(),
            cosigner: Cosigner::new(vec![witness_url]),
            operator_secret_sha256: Sha256::digest(operator_secret.as_bytes()).into(),
        });
        let handler = service.clone();
        let url = spawn(move |req| {
            let s = handler.clone();
            async move { s.handle(req).await }
        })?;
        service.cosign();
        Ok(Self {
            service,
            url,
            public_key_hex,
            origin: ORIGIN.to_string(),
            witness_vkey,
        })
    }

    /// Gets the log's current checkpoint cosigned (after appending to `service.log` directly;
    /// appends over HTTP do it themselves).
    pub fn cosign(&self) {
        self.service.cosign();
    }
}

/// Serves `handler` on a fresh loopback port from a thread of its own; returns its base URL.
fn spawn<H, F>(handler: H) -> Result<String>
where
    H: Fn(hyper::Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Reply> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Runtime::new() {
            Ok(rt) => rt,
            Err(e) => return drop(tx.send(Err(e.to_string()))),
        };
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(l) => l,
                Err(e) => return drop(tx.send(Err(e.to_string()))),
            };
            let addr = listener.local_addr().map_err(|e| e.to_string());
            let _ = tx.send(addr);
            let _ = serve(listener, None, Limits::default(), handler).await;
        });
    });
    let addr = rx
        .recv()
        .context("the loopback server thread ended")?
        .map_err(anyhow::Error::msg)?;
    Ok(format!("http://{addr}"))
}
