//! pp-log: the transparency log of release manifests (RFC 6962/9162 Merkle tree, signed tree
//! heads, inclusion and consistency proofs).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Parser;
use pp_services::tlog::LogService;
use pp_services::{http::Limits, run};
use pp_translog::Log;
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
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Serve(args) => tokio::runtime::Runtime::new()?.block_on(serve(args)),
        Command::Append {
            url,
            operator_credential,
            manifest,
        } => {
            let secret = std::fs::read_to_string(&operator_credential)
                .with_context(|| format!("reading {}", operator_credential.display()))?;
            let body = std::fs::read(&manifest)
                .with_context(|| format!("reading {}", manifest.display()))?;
            let mut response = ureq::post(format!("{url}/append"))
                .header("authorization", format!("Bearer {}", secret.trim()))
                .config()
                .http_status_as_error(false)
                .build()
                .send(&body[..])
                .with_context(|| format!("cannot reach the log at {url}"))?;
            let text = response.body_mut().read_to_string().unwrap_or_default();
            anyhow::ensure!(
                response.status() == 200,
                "the log refused the append (HTTP {}): {}",
                response.status().as_u16(),
                text.trim()
            );
            println!("{}", text.trim());
            Ok(())
        }
    }
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
    let service = Arc::new(LogService {
        log: Mutex::new(log),
        operator_secret_sha256: Sha256::digest(secret.trim().as_bytes()).into(),
    });
    run::serve(&args.listen, None, Limits::default(), move |req| {
        let service = service.clone();
        async move { service.handle(req).await }
    })
    .await
}
