//! pp-witness: a transparency-log witness (c2sp.org/tlog-witness). It cosigns a log's
//! checkpoint (`cosignature/v1`) only when it extends the last one it cosigned for that log.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Parser;
use pp_services::witness::WitnessService;
use pp_services::{http::Limits, run};
use pp_translog::checkpoint::{ALG_ED25519, DEFAULT_WITNESS_NAME, NoteKey};
use pp_translog::witness::Witness;

#[derive(Parser)]
#[command(
    version,
    about = "A witness for transparency logs: cosigns only consistent checkpoints."
)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: String,
    /// Folder for the witness's key (`witness.key`, made on first start) and state
    /// (`witness-state.json`: the latest checkpoint cosigned per log).
    #[arg(long)]
    state: PathBuf,
    /// The witness's name (its key name in cosignature lines).
    #[arg(long, default_value = DEFAULT_WITNESS_NAME)]
    name: String,
    /// A log to witness: its verifier key `origin+keyid+base64` (repeat for several logs).
    #[arg(long = "log", required = true)]
    logs: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    run::init_logging("pp-witness");
    std::fs::create_dir_all(&args.state)
        .with_context(|| format!("creating {}", args.state.display()))?;
    let logs = args
        .logs
        .iter()
        .map(|v| NoteKey::parse_vkey(v, ALG_ED25519))
        .collect::<Result<Vec<_>, _>>()?;
    let key = pp_translog::log::load_or_create_key(&args.state.join("witness.key"))?;
    let witness = Witness::open(
        &args.name,
        key,
        logs,
        &args.state.join("witness-state.json"),
    )
    .map_err(anyhow::Error::msg)?;
    println!("witness vkey {}", witness.note_key().to_vkey());
    let service = Arc::new(WitnessService {
        witness: Mutex::new(witness),
    });
    tokio::runtime::Runtime::new()?.block_on(run::serve(
        &args.listen,
        None,
        Limits::default(),
        move |req| {
            let service = service.clone();
            async move { service.handle(req).await }
        },
    ))
}
