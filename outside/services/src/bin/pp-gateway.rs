//! pp-gateway: the operator's gateway (token check, routing to the chosen enclave instance) and
//! its publishing step for the key CDN.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pp_services::gateway::{Gateway, InstanceMap, challenge, load_issuer_keys};
use pp_services::instances::InstanceTable;
use pp_services::reads::ReadUpstream;
use pp_services::spent_store::{SharedSpent, SpentStore};
use pp_services::tunnel::{TunnelCounters, TunnelLimits};
use pp_services::{http::Limits, ohttp_key, publish, run, tls};
use pp_tokens::SpentTokens;

#[derive(Parser)]
#[command(version, about = "The operator's gateway to the enclave instances.")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve CONNECT tunnels to enclave instances for devices holding a valid token.
    Serve {
        /// Address to listen on (port 0 picks a free port; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:7444")]
        listen: String,
        /// The gateway's certificate chain (PEM); its name is the Privacy Pass origin.
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// The name devices know this gateway by (the certificate's name).
        #[arg(long)]
        origin: String,
        /// The issuer's name, as in the token challenge.
        #[arg(long)]
        issuer_name: String,
        /// The issuer's logged keys: `pp-issuer-key/1` entries, one per line (what
        /// `pp-issuer --print-key-entries` prints and the operator appended to the log).
        #[arg(long)]
        issuer_keys: PathBuf,
        /// The issuer's token request URI, for the directory served to devices (default:
        /// `https://ISSUER_NAME/token-request`).
        #[arg(long)]
        issuer_request_uri: Option<String>,
        /// The instance map: `{"instances": [{"id": …, "address": …}]}`.
        #[arg(long)]
        instances: PathBuf,
        /// The spent-token file (kept across restarts; one gateway only, the file is locked).
        #[arg(
            long,
            required_unless_present = "spent_store",
            conflicts_with = "spent_store"
        )]
        spent: Option<PathBuf>,
        /// The spent-token store shared by every gateway replica: a Valkey/Redis URL
        /// (`redis+unix:///path/to/socket` or `redis://host:port`), on a server that runs with
        /// `appendonly yes` and `appendfsync always`.
        #[arg(long)]
        spent_store: Option<String>,
        #[arg(long, default_value_t = 256)]
        max_tunnels: usize,
        /// Seconds a tunnel may carry no byte before it is closed.
        #[arg(long, default_value_t = 120)]
        tunnel_idle_secs: u64,
        /// A transparency log or key CDN whose reads devices send through this gateway (inside
        /// their relay tunnel, so the service never sees a device's address): `URL` as devices
        /// are configured with it (`http://`), or `URL=HOST:PORT` where the gateway reaches it.
        /// Give the log and the CDN; reads of anything else are refused.
        #[arg(long = "read-upstream")]
        read_upstreams: Vec<String>,
        /// The gateway's OHTTP key (`ohttp-key.json` from `ohttp-keygen`): serve the Oblivious
        /// Gateway Resource at `POST /.well-known/ohttp-gateway` (RFC 9458) on this listener.
        #[arg(long)]
        ohttp_key: Option<PathBuf>,
    },
    /// Make the gateway's own RFC 9458 key: DIR/ohttp-key.json (secret, mode 0600) and
    /// DIR/ohttp-keys (the public key configuration to publish). Refuses if the secret exists.
    OhttpKeygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Fetch publication evidence from every instance and write the key CDN's folder.
    Publish {
        #[arg(long)]
        instances: PathBuf,
        /// The release manifest the instances were built as.
        #[arg(long)]
        manifest: PathBuf,
        /// The CDN folder to write.
        #[arg(long)]
        out: PathBuf,
        /// Replace the map's ids with the ones derived from each instance's key configuration
        /// and write the map back (without it, a map id that differs is an error).
        #[arg(long)]
        assign_ids: bool,
        /// The transparency log to append the index to (`pp-cdn-index/1`); devices use only a
        /// logged index.
        #[arg(long)]
        log_url: Option<String>,
        /// A file holding the operator's append credential for `--log-url`.
        #[arg(long, requires = "log_url")]
        operator_credential: Option<PathBuf>,
        /// The gateway's public OHTTP key configuration (`ohttp-keys` from `ohttp-keygen`), put
        /// in the index as `gateway_key_config` for devices' one-shot requests.
        #[arg(long)]
        gateway_key_config: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::OhttpKeygen { out } => {
            let public = ohttp_key::keygen(&out)?;
            println!(
                "wrote {} and {} (key configuration {})",
                out.join(ohttp_key::SECRET_FILE).display(),
                out.join(ohttp_key::PUBLIC_FILE).display(),
                hex::encode(public)
            );
            Ok(())
        }
        Command::Publish {
            instances,
            manifest,
            out,
            assign_ids,
            log_url,
            operator_credential,
            gateway_key_config,
        } => {
            let gateway_key_config = gateway_key_config
                .map(|p| ohttp_key::public_hex(&p))
                .transpose()?;
            let (map, ids) = if assign_ids {
                (
                    InstanceMap::load_addresses(&instances)?,
                    publish::Ids::Assign,
                )
            } else {
                (InstanceMap::load(&instances)?, publish::Ids::Check)
            };
            let (index, map) = publish::publish(&map, &manifest, &out, ids, gateway_key_config)?;
            if assign_ids {
                std::fs::write(&instances, serde_json::to_vec_pretty(&map)?)
                    .with_context(|| format!("writing {}", instances.display()))?;
            }
            println!(
                "published {} instance(s) to {}",
                index.instances.len(),
                out.display()
            );
            if let Some(url) = log_url {
                let credential =
                    operator_credential.context("--log-url needs --operator-credential")?;
                let secret = std::fs::read_to_string(&credential)
                    .with_context(|| format!("reading {}", credential.display()))?;
                let answer = publish::append_to_log(&url, &secret, &index.to_vec())?;
                println!("logged the index: {answer}");
            }
            Ok(())
        }
        Command::Serve {
            listen,
            cert,
            key,
            origin,
            issuer_name,
            issuer_keys,
            issuer_request_uri,
            instances,
            spent,
            spent_store,
            max_tunnels,
            tunnel_idle_secs,
            read_upstreams,
            ohttp_key,
        } => {
            run::init_logging("pp-gateway");
            let issuer_keys = load_issuer_keys(&issuer_keys, &issuer_name)?;
            let issuer_request_uri = issuer_request_uri.unwrap_or_else(|| {
                format!("https://{issuer_name}{}", pp_services::issuer::REQUEST_PATH)
            });
            let instances = InstanceTable::watching(&instances)?;
            let ohttp = ohttp_key.map(|p| ohttp_key::load(&p)).transpose()?;
            let reads = read_upstreams
                .iter()
                .map(|u| ReadUpstream::parse(u))
                .collect::<anyhow::Result<Vec<_>>>()
                .context("--read-upstream")?;
            let runtime = tokio::runtime::Runtime::new()?;
            let spent = match (spent, spent_store) {
                (_, Some(url)) => SpentStore::Shared(
                    runtime
                        .block_on(SharedSpent::connect(&url))
                        .map_err(|e| anyhow::anyhow!("--spent-store: {e}"))?,
                ),
                (Some(path), None) => SpentStore::File(
                    SpentTokens::open(&path)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                ),
                (None, None) => anyhow::bail!("give --spent FILE or --spent-store URL"),
            };
            let mut limits = TunnelLimits::new(max_tunnels);
            limits.idle = std::time::Duration::from_secs(tunnel_idle_secs);
            // The Oblivious Gateway Resource waits for the instance's answer inside the
            // handler (a tunnel does not).
            let request_timeout = match ohttp {
                Some(_) => pp_services::ogr::REQUEST_TIMEOUT,
                None => Limits::default().request_timeout,
            };
            let gateway = Arc::new(Gateway {
                instances,
                ohttp,
                issuer_keys,
                issuer_request_uri,
                challenge: challenge(&issuer_name, &origin)?,
                spent,
                limits,
                counters: Arc::new(TunnelCounters::default()),
                reads,
            });
            let acceptor = tls::acceptor(&cert, &key)?;
            runtime.block_on(run::serve(
                &listen,
                Some(acceptor),
                Limits {
                    connection_lifetime: Some(pp_services::gateway::CONNECTION_LIFETIME),
                    request_timeout,
                    ..Limits::default()
                },
                move |req| gateway.clone().handle(req),
            ))
        }
    }
}
