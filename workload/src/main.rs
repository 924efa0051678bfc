//! pp-workload: the program inside the enclave image.
//!
//! At start it makes its keys from the platform's randomness (a TLS key and the first HPKE key of
//! its key ring, which rotates: `keys`), then serves three ports: `GET /health` and
//! `GET /version` over plain TCP, attested sessions over TLS 1.3 (docs/protocol.md): evidence
//! bound to the session, then HPKE-sealed requests, and the one-shot port (plain TCP, one sealed
//! request and its answer per connection: `oneshot`). It keeps
//! nothing between requests, writes no file, and its serial log holds fixed status lines and
//! counters only — never request bytes. Panics abort and print only a location.

use pp_workload::{attest, handler, health, keys, oneshot, server, session, tls, weights};

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use session::Enclave;

/// Every freed heap block is wiped first: crates the handler calls copy request text into
/// buffers of their own (`pp_workload::wipe`).
#[global_allocator]
static ALLOCATOR: pp_workload::wipe::WipeOnFree<std::alloc::System> =
    pp_workload::wipe::WipeOnFree(std::alloc::System);

/// Longest a health client may take for its whole exchange (one at a time, on the main thread;
/// however slowly it sends).
const HEALTH_DEADLINE: Duration = Duration::from_secs(5);

/// How often the key ring is checked for a rotation or drop that is due.
const KEY_MAINTENANCE: Duration = Duration::from_secs(30);

static HEALTH_SERVED: AtomicU64 = AtomicU64::new(0);
static HEALTH_REFUSED: AtomicU64 = AtomicU64::new(0);

struct Config {
    bind: String,
    health_port: u16,
    tls_port: u16,
    oneshot_port: u16,
}

impl Config {
    fn from_env() -> Result<Self, String> {
        let port = |name: &str, default: u16| match std::env::var(name) {
            Ok(v) => v
                .parse::<u16>()
                .map_err(|_| format!("{name} must be a port number")),
            Err(_) => Ok(default),
        };
        Ok(Self {
            bind: std::env::var("PP_BIND").unwrap_or_else(|_| "0.0.0.0".to_string()),
            health_port: port("PP_HEALTH_PORT", 8080)?,
            tls_port: port("PP_TLS_PORT", 8443)?,
            oneshot_port: port("PP_ONESHOT_PORT", 8444)?,
        })
    }
}

fn main() {
    std::panic::set_hook(Box::new(|info| {
        // Location only: a panic message could quote data.
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("pp-workload: panic at {at}");
    }));
    if let Err(message) = run() {
        eprintln!("pp-workload: fatal: {message}");
        std::process::exit(1);
    }
}

/// The release this build belongs to: `PP_RELEASE_REF` (64 hex digits) at build time, else zero.
/// Anything else fails the build, so a malformed reference can never reach the evidence.
const RELEASE_REF: [u8; 32] = match option_env!("PP_RELEASE_REF") {
    Some(hex) => parse_release_ref(hex.as_bytes()),
    None => [0; 32],
};

const fn parse_release_ref(hex: &[u8]) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("PP_RELEASE_REF must be 64 lowercase hex digits"),
        }
    }
    assert!(
        hex.len() == 64,
        "PP_RELEASE_REF must be 64 lowercase hex digits"
    );
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]);
        i += 1;
    }
    out
}

/// The request handler: the models from the measured weights blob.
fn load_handler() -> Result<Box<dyn handler::Handler>, String> {
    let blob = weights::locate().map_err(|e| match e {
        weights::WeightsError::Absent => {
            "no weights blob: the loader named none (PP_WEIGHTS) and PP_WEIGHTS_FILE is not set"
                .to_string()
        }
        other => format!("weights blob: {other:?}"),
    })?;
    let features = pp_workload::features::LazyFeatures::new(blob)
        .map_err(|e| format!("the weights blob is refused: {e:?}"))?;
    println!(
        "pp-workload: weights blob {} bytes (checked and loaded on first use)",
        blob.len()
    );
    Ok(Box::new(features))
}

fn run() -> Result<(), String> {
    let config = Config::from_env()?;
    // Before any key exists: a kernel that loses vector registers across task switches would
    // compute wrong cryptography (sealed responses that do not open).
    #[cfg(all(target_os = "hermit", target_arch = "x86_64"))]
    pp_workload::switch_check::check()?;
    let handler = load_handler()?;
    let identity = tls::fresh_identity()?;
    let (attester, attester_kind) = attest::attester()?;
    let enclave = Arc::new(Enclave {
        attester,
        keys: keys::KeyRing::new()?,
        handler,
        release_ref: RELEASE_REF,
        max_request: pp_protocol::frame::MAX_PAYLOAD,
        gate: pp_workload::gate::Gate::for_handler(),
    });
    let listen = |port: u16| {
        TcpListener::bind((config.bind.as_str(), port))
            .map_err(|e| format!("cannot listen on port {port}: {e}"))
    };
    let plain = listen(config.health_port)?;
    let secure = listen(config.tls_port)?;
    let oneshot_listener = listen(config.oneshot_port)?;
    println!(
        "pp-workload: tls certificate sha256 {}",
        identity.cert_sha256
    );
    println!("pp-workload: attester {attester_kind}");
    println!(
        "pp-workload: ready version={} health={} tls={} oneshot={}",
        env!("CARGO_PKG_VERSION"),
        config.health_port,
        config.tls_port,
        config.oneshot_port
    );
    let _ = std::io::stdout().flush();

    // These run for as long as the enclave does.
    let _sessions = server::spawn(
        secure,
        identity.config.clone(),
        enclave.clone(),
        server::Limits::default(),
    );
    let _oneshot = oneshot::spawn(
        oneshot_listener,
        enclave.clone(),
        oneshot::Limits::default(),
    );
    // Rotations and drops of keys happen on use; this makes them happen on time when no
    // request comes, so a dropped key's secret does not linger.
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(KEY_MAINTENANCE);
            if enclave.keys.maintain().is_err() {
                println!("pp-workload: key rotation failed");
            }
        }
    });
    for stream in plain.incoming() {
        let Ok(stream) = stream else { continue };
        let until = Instant::now() + HEALTH_DEADLINE;
        let mut stream = pp_workload::deadline::Deadlined::new(stream, until, HEALTH_DEADLINE);
        let (counter, name) = match health::serve(&mut stream, "tcp") {
            Ok(_) => (&HEALTH_SERVED, "served"),
            Err(_) => (&HEALTH_REFUSED, "refused"),
        };
        println!(
            "pp-workload: {name}={}",
            counter.fetch_add(1, Ordering::Relaxed) + 1
        );
    }
    Ok(())
}
