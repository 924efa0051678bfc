//! pp-cdn: the key CDN, a static host for the enclaves' published keys, evidence and release
//! manifests (a third party in a real deployment).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use pp_services::{cdn::Cdn, http::Limits, run};

#[derive(Parser)]
#[command(version, about = "Serve the key CDN folder (GET and HEAD only).")]
struct Args {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7200")]
    listen: String,
    /// The folder to serve (written by `pp-gateway publish`).
    #[arg(long)]
    root: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    run::init_logging("pp-cdn");
    anyhow::ensure!(
        args.root.is_dir(),
        "{} is not a folder: publish to it first",
        args.root.display()
    );
    let cdn = Arc::new(Cdn { root: args.root });
    run::serve(&args.listen, None, Limits::default(), move |req| {
        let cdn = cdn.clone();
        async move { cdn.handle(req).await }
    })
    .await
}
