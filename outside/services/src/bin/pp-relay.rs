//! pp-relay: the third-party relay. Devices connect over TLS and CONNECT to a configured gateway;
//! the relay forwards ciphertext and logs counts only.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use pp_services::relay::Relay;
use pp_services::tunnel::{TunnelCounters, TunnelLimits};
use pp_services::{http::Limits, run, tls};

#[derive(Parser)]
#[command(
    version,
    about = "Relay devices' CONNECT tunnels to the gateway over TLS."
)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7443")]
    listen: String,
    /// The relay's certificate chain (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// The relay's private key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// A gateway devices may tunnel to: `NAME:PORT=DIAL_ADDRESS` (repeatable), e.g.
    /// `gateway.pp.test:443=127.0.0.1:7444`.
    #[arg(long = "upstream", required = true)]
    upstreams: Vec<String>,
    /// Tunnels open at once.
    #[arg(long, default_value_t = 256)]
    max_tunnels: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    run::init_logging("pp-relay");
    let upstreams = args
        .upstreams
        .iter()
        .map(|u| {
            u.split_once('=')
                .map(|(name, dial)| (name.to_ascii_lowercase(), dial.to_string()))
                .ok_or_else(|| anyhow::anyhow!("--upstream {u:?} is not NAME:PORT=ADDRESS"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let relay = Arc::new(Relay {
        upstreams,
        limits: TunnelLimits::new(args.max_tunnels),
        counters: Arc::new(TunnelCounters::default()),
    });
    let acceptor = tls::acceptor(&args.cert, &args.key)?;
    run::serve(
        &args.listen,
        Some(acceptor),
        Limits::default(),
        move |req| relay.clone().handle(req),
    )
    .await
}
