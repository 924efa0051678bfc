//! pp-issuer: the Privacy Pass token issuer (RFC 9578, publicly verifiable blind-RSA tokens).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use pp_services::issuer::{IssuerService, load_accounts};
use pp_services::{http::Limits, run};
use pp_tokens::{Issuer, RateLimiter};

#[derive(Parser)]
#[command(
    version,
    about = "Issue anonymous tokens to known accounts, within a rate limit."
)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7100")]
    listen: String,
    /// Folder for the issuer key (`issuer.key`, made on first start) and `token-key.b64` (the
    /// public key, base64url SPKI, for gateways).
    #[arg(long)]
    state: PathBuf,
    /// Accounts file: `{"accounts": {"NAME": "<sha256 hex of the credential>"}}`.
    #[arg(long)]
    accounts: PathBuf,
    /// Tokens per account per hour.
    #[arg(long, default_value_t = 100)]
    tokens_per_hour: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    run::init_logging("pp-issuer");
    std::fs::create_dir_all(&args.state)
        .with_context(|| format!("creating {}", args.state.display()))?;
    let issuer = Issuer::load_or_generate(&args.state.join("issuer.key"))?;
    std::fs::write(
        args.state.join("token-key.b64"),
        issuer.public_key().to_base64url(),
    )?;
    let service = Arc::new(IssuerService {
        issuer,
        accounts: load_accounts(&args.accounts)?,
        rate: RateLimiter::new(args.tokens_per_hour, 3600, 100_000),
    });
    run::serve(&args.listen, None, Limits::default(), move |req| {
        let service = service.clone();
        async move { service.handle(req).await }
    })
    .await
}
