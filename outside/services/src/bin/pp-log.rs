//! pp-log: the transparency log of release manifests (RFC 6962/9162 Merkle tree, C2SP
//! checkpoints cosigned by witnesses, inclusion and consistency proofs).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Parser;
use pp_services::cosign::Cosigner;
use pp_services::tlog::LogService;
use pp_services::{http::Limits, run};
use pp_translog::Log;
use pp_translog::checkpoint::DEFAULT_ORIGIN;
use pp_translog::revocation::Revocation;
use sha2::{Digest, Sha256};

#[derive(Parser)]
#[command(
    version,
    about = "The append-only transparency log of release manifests."
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Serve the log.
    Serve(ServeArgs),
    /// Append a release manifest to a running log (the operator's step before a release).
    Append {
        /// The log's base URL.
        #[arg(long)]
        url: String,
        /// A file holding the operator's append credential.
        #[arg(long)]
        operator_credential: PathBuf,
        /// The release manifest to append.
        manifest: PathBuf,
    },
    /// Append a `pp-revocation/1` entry withdrawing a release (for example after a TCB
    /// bulletin); devices then refuse the release.
    Revoke {
        /// The log's base URL.
        #[arg(long)]
        url: String,
        /// A file holding the operator's append credential.
        #[arg(long)]
        operator_credential: PathBuf,
        /// The release's `release_ref` (64 hex digits, from its manifest).
        #[arg(long)]
        release_ref: String,
        /// Why, for people (for example the bulletin's name).
        #[arg(long)]
        reason: String,
    },
    /// Print the log's verifier key (`origin+keyid+base64`), making the key if absent; witnesses
    /// and devices are configured with it.
    Vkey {
        /// The log's state folder (as for `serve`).
        #[arg(long)]
        state: PathBuf,
        /// The log's origin line.
        #[arg(long, default_value = DEFAULT_ORIGIN)]
        origin: String,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7300")]
    listen: String,
    /// Folder for the log file (`log.bin`) and the signing key (`log.key`, made on first start).
    #[arg(long)]
    state: PathBuf,
    /// A file holding the operator's append credential.
    #[arg(long)]
    operator_credential: PathBuf,
    /// The origin line of the log's checkpoints (its name, which devices configure).
    #[arg(long, default_value = DEFAULT_ORIGIN)]
    origin: String,
    /// A witness's base URL (C2SP tlog-witness); repeat for several. Each checkpoint is sent
    /// to them after every append and every `--cosign-every` seconds.
    #[arg(long = "witness")]
    witnesses: Vec<String>,
    /// Seconds between re-submissions of the checkpoint, so cosignatures stay fresh.
    #[arg(long, default_value_t = 600)]
    cosign_every: u64,
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Serve(args) => tokio::runtime::Runtime::new()?.block_on(serve(args)),
        Command::Append {
            url,
            operator_credential,
            manifest,
        } => {
            let body = std::fs::read(&manifest)
                .with_context(|| format!("reading {}", manifest.display()))?;
            append(&url, &operator_credential, &body)
        }
        Command::Revoke {
            url,
            operator_credential,
            release_ref,
            reason,
        } => {
            let now = pp_translog::checkpoint::unix_now();
            let entry = Revocation::new(&release_ref, &reason, now)?;
            append(&url, &operator_credential, entry.to_json().as_bytes())
        }
        Command::Vkey { state, origin } => {
            std::fs::create_dir_all(&state)
                .with_context(|| format!("creating {}", state.display()))?;
            let key = pp_translog::log::load_or_create_key(&state.join("log.key"))?;
            let vkey = pp_translog::checkpoint::log_note_key(&origin, &key)?.to_vkey();
            println!("{vkey}");
            Ok(())
        }
    }
}

/// Appends `body` to the log at `url` with the operator's credential; prints the answer.
fn append(url: &str, operator_credential: &std::path::Path, body: &[u8]) -> anyhow::Result<()> {
    let secret = std::fs::read_to_string(operator_credential)
        .with_context(|| format!("reading {}", operator_credential.display()))?;
    println!(
        "{}",
        pp_services::publish::append_to_log(url, &secret, body)?
    );
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    run::init_logging("pp-log");
    std::fs::create_dir_all(&args.state)
        .with_context(|| format!("creating {}", args.state.display()))?;
    let log = Log::open(&args.state.join("log.bin"), &args.state.join("log.key"))?;
    let secret = std::fs::read_to_string(&args.operator_credential)
        .with_context(|| format!("reading {}", args.operator_credential.display()))?;
    anyhow::ensure!(
        !secret.trim().is_empty(),
        "the operator credential is empty"
    );
    println!("log public key {}", hex::encode(log.public_key()));
    println!("log vkey {}", log.vkey(&args.origin)?);
    let service = Arc::new(LogService {
        log: Mutex::new(log),
        origin: args.origin,
        cosigner: Cosigner::new(args.witnesses),
        operator_secret_sha256: Sha256::digest(secret.trim().as_bytes()).into(),
    });
    // Cosign at start and then every `cosign_every` seconds: cosignature times are what
    // devices check freshness against.
    let every = std::time::Duration::from_secs(args.cosign_every.max(1));
    let refresher = service.clone();
    tokio::spawn(async move {
        loop {
            let s = refresher.clone();
            let _ = tokio::task::spawn_blocking(move || s.cosign()).await;
            tokio::time::sleep(every).await;
        }
    });
    run::serve(&args.listen, None, Limits::default(), move |req| {
        let service = service.clone();
        async move { service.handle(req).await }
    })
    .await
}
