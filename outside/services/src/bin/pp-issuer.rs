//! pp-issuer: the Privacy Pass token issuer (RFC 9578, publicly verifiable blind-RSA tokens).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use pp_services::issuer::{IssuerService, load_accounts, load_epoch_keys, unix_now};
use pp_services::{http::Limits, run};
use pp_tokens::{KeySchedule, RateLimiter};

#[derive(Parser)]
#[command(
    version,
    about = "Issue anonymous tokens to known accounts, within a rate limit."
)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7100")]
    listen: String,
    /// Folder for the issuer's epoch keys (`epoch-N.key`, made when first needed).
    #[arg(long)]
    state: PathBuf,
    /// Accounts file: `{"accounts": {"NAME": "<sha256 hex of the credential>"}}` (needed to serve).
    #[arg(long)]
    accounts: Option<PathBuf>,
    /// Tokens per account per hour.
    #[arg(long, default_value_t = 100)]
    tokens_per_hour: u32,
    /// Length of a key epoch: one token key per epoch.
    #[arg(long, default_value_t = 30 * 24 * 3600)]
    epoch_seconds: u64,
    /// How long a key stays valid into the next epoch (tokens fetched late in an epoch).
    #[arg(long, default_value_t = 24 * 3600)]
    overlap_seconds: u64,
    /// Print the `pp-issuer-key/1` log entries (one JSON per line) of the keys valid now and of
    /// the next epoch's key, for the operator to append to the transparency log, and exit.
    #[arg(long, value_name = "ISSUER_NAME")]
    print_key_entries: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let schedule = KeySchedule::new(args.epoch_seconds, args.overlap_seconds)
        .map_err(|e| anyhow::anyhow!("--epoch-seconds/--overlap-seconds: {e}"))?;
    std::fs::create_dir_all(&args.state)
        .with_context(|| format!("creating {}", args.state.display()))?;
    let keys = load_epoch_keys(&args.state, &schedule, unix_now())?;
    if let Some(name) = &args.print_key_entries {
        for key in &keys {
            println!("{}", String::from_utf8(key.entry(name)?.to_vec())?);
        }
        return Ok(());
    }
    run::init_logging("pp-issuer");
    let accounts = args
        .accounts
        .as_deref()
        .context("--accounts is needed to serve")?;
    let service = Arc::new(IssuerService {
        keys,
        accounts: load_accounts(accounts)?,
        rate: RateLimiter::new(args.tokens_per_hour, 3600, 100_000),
    });
    run::serve(&args.listen, None, Limits::default(), move |req| {
        let service = service.clone();
        async move { service.handle(req).await }
    })
    .await
}
