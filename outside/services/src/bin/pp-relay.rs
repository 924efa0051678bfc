//! pp-relay: the third-party relay. Devices connect over TLS and CONNECT to a configured gateway;
//! the relay forwards ciphertext and logs counts only.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use pp_services::orr::{self, ObliviousRelay};
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
    /// `gateway.pp.test:443=127.0.0.1:7444`. A name given several times is served by its
    /// addresses in turn (gateway replicas).
    #[arg(
        long = "upstream",
        required_unless_present = "ohttp_gateway",
        conflicts_with = "ohttp_gateway"
    )]
    upstreams: Vec<String>,
    /// Run as an RFC 9458 Oblivious Relay Resource instead of a CONNECT relay: devices
    /// `POST /` a `message/ohttp-req`, forwarded to this gateway resource URL
    /// (`https://NAME:PORT/.well-known/ohttp-gateway`, or `URL=HOST:PORT` to dial elsewhere).
    #[arg(long, requires = "gateway_ca")]
    ohttp_gateway: Option<String>,
    /// The CA certificates (PEM) the gateway's certificate must chain to (ORR mode).
    #[arg(long, requires = "ohttp_gateway")]
    gateway_ca: Option<PathBuf>,
    /// Tunnels open at once.
    #[arg(long, default_value_t = 256)]
    max_tunnels: usize,
    /// Connections (and the tunnels made from them) one client address may hold at once.
    #[arg(long, default_value_t = 16)]
    max_per_client: usize,
    /// Seconds a tunnel may carry no byte before it is closed.
    #[arg(long, default_value_t = 120)]
    tunnel_idle_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    run::init_logging("pp-relay");
    anyhow::ensure!(
        args.max_per_client > 0,
        "--max-per-client must be at least 1"
    );
    if let (Some(gateway), Some(ca)) = (&args.ohttp_gateway, &args.gateway_ca) {
        let relay = Arc::new(ObliviousRelay::new(gateway, ca)?);
        let acceptor = tls::acceptor(&args.cert, &args.key)?;
        return run::serve(
            &args.listen,
            Some(acceptor),
            Limits {
                max_per_client: Some(args.max_per_client),
                max_body: pp_client::inner::MAX_ENCAPSULATED_REQUEST,
                request_timeout: orr::REQUEST_TIMEOUT,
                ..Limits::default()
            },
            move |req| relay.clone().handle(req),
        )
        .await;
    }
    let upstreams = args
        .upstreams
        .iter()
        .map(|u| {
            u.split_once('=')
                .map(|(name, dial)| (name.to_ascii_lowercase(), dial.to_string()))
                .ok_or_else(|| anyhow::anyhow!("--upstream {u:?} is not NAME:PORT=ADDRESS"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(
        args.max_per_client > 0,
        "--max-per-client must be at least 1"
    );
    let mut limits = TunnelLimits::new(args.max_tunnels);
    limits.idle = Duration::from_secs(args.tunnel_idle_secs);
    let relay = Arc::new(Relay {
        upstreams,
        turn: Default::default(),
        limits,
        counters: Arc::new(TunnelCounters::default()),
    });
    let acceptor = tls::acceptor(&args.cert, &args.key)?;
    run::serve(
        &args.listen,
        Some(acceptor),
        Limits {
            max_per_client: Some(args.max_per_client),
            ..Limits::default()
        },
        move |req| relay.clone().handle(req),
    )
    .await
}
