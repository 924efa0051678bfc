//! What the relay and gateway add to a request, three ways, alternating, a fixed number each:
//! an attested session with one sealed request made directly to the enclave; the same through the
//! CONNECT relay + gateway (two more TLS layers, two CONNECTs and a token check); and a one-shot
//! Oblivious HTTP request (RFC 9458) through the OHTTP relay and gateway (one TLS connection to
//! the relay, the relay's to the gateway, the gateway's plain TCP to the enclave's one-shot
//! port, no handshake with the enclave). Prints requests per minute, p50 and p99, and the ratios.
//! Needs a running stack: `cargo xtask bench-path` sets one up and runs this.
//!
//! Env: PP_BENCH_CONFIG (a pp.toml), PP_BENCH_DIRECT (the enclave's `host:port`), PP_BENCH_ARK
//! (the test ARK), PP_BENCH_SESSIONS (default 100).

use std::net::TcpStream;
use std::time::{Duration, Instant};

use pp_attestation::test_signer::{TEST_MEASUREMENT, TEST_TCB};
use pp_device::config::Config;
use pp_device::releases::LogClient;
use pp_device::tunnel::{self, PathSpec};
use pp_device::wallet::{TokenSource, Wallet};
use pp_protocol::app::{AppRequest, Message};
use pp_verifier::Policy;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run `cargo xtask bench-path`"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let config = Config::load(env("PP_BENCH_CONFIG").as_ref()).unwrap();
    let direct = env("PP_BENCH_DIRECT");
    let ark = std::fs::read(env("PP_BENCH_ARK")).unwrap();
    let sessions: usize = std::env::var("PP_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let policy = Policy::trusting_test_root(&ark, vec![TEST_MEASUREMENT], TEST_TCB).unwrap();
    let app_request = AppRequest::Summarize {
        thread: ["dinner at six?", "yes, booked", "see you there"]
            .iter()
            .map(|t| Message {
                sender: "Ana".into(),
                text: t.to_string(),
                time: None,
            })
            .collect(),
        k: 1,
    };
    let request = app_request.to_vec();

    let spec = PathSpec::from_config(&config).unwrap();

    // Tokens first, outside the timed part (the issuer is not on the request path), under the
    // logged key the gateway names.
    let issuer_name = pp_device::request::issuer_name(&config.issuer.url);
    let challenge = pp_tokens::TokenChallenge::new(
        issuer_name.as_bytes(),
        None,
        config.gateway.server_name.as_bytes(),
    )
    .unwrap();
    std::fs::create_dir_all(&config.state_dir).unwrap();
    // The bench is the user of this device state: it opted in (every one-shot POST checks it).
    pp_device::consent::opt_in(&config.state_dir).unwrap();
    let reader = pp_device::reads::Reader::through_relay(&config).unwrap();
    let log = LogClient::sync(&config.log, &config.state_dir, reader).unwrap();
    // The instance as the logged CDN index names it (its id is derived from its key).
    let index = pp_device::logged_index::fetch(&config.cdn.url, &log).unwrap();
    let instance = index.index.instances[0].id.clone();
    // The one-shot path seals to the key configuration of the instance's publication evidence,
    // verified against the logged release as `pp` does.
    let roots = pp_device::instances::Roots::from_config(&config.trust).unwrap();
    let (candidates, _) = pp_device::instances::discover(&config.cdn.url, &log, &roots).unwrap();
    let published_key = candidates
        .iter()
        .find(|c| c.id == instance)
        .expect("the instance's publication evidence verifies")
        .published
        .key_config
        .clone();
    let source = TokenSource {
        issuer_url: &config.issuer.url,
        credential_file: &config.issuer.credential_file,
        issuer_name: &issuer_name,
        challenge: &challenge,
        batch: 32,
        low_water: 0,
        log: &log,
    };
    let wallet = Wallet::new(&config.state_dir);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let tokens: Vec<pp_tokens::Token> = (0..2 * sessions)
        .map(|_| {
            wallet
                .take(&source, now, || {
                    pp_device::issuer_keys::fetch_via_relay(&spec, &instance)
                })
                .unwrap()
        })
        .collect();

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let oneshot = pp_device::oneshot::Oneshot::prepare(&config, &index.index, now).unwrap();

    let mut direct_times = Vec::new();
    let mut path_times = Vec::new();
    let mut oneshot_times = Vec::new();
    let (mut direct_total, mut path_total, mut oneshot_total) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for pair in tokens.chunks(2) {
        let (token, oneshot_token) = (&pair[0], &pair[1]);
        let t = Instant::now();
        let sock = TcpStream::connect(&direct).unwrap();
        sock.set_nodelay(true).unwrap();
        let mut s = pp_client::connect(sock, &policy, Default::default()).unwrap();
        s.request(&request).unwrap();
        let _ = s.close();
        let d = t.elapsed();
        direct_times.push(d);
        direct_total += d;

        let t = Instant::now();
        let stream = tunnel::open(&spec, &instance, token).unwrap();
        let mut s = pp_client::connect(stream, &policy, Default::default()).unwrap();
        s.request(&request).unwrap();
        let _ = s.close();
        let d = t.elapsed();
        path_times.push(d);
        path_total += d;

        let t = Instant::now();
        oneshot
            .attempt(&instance, &published_key, oneshot_token, &app_request)
            .map_err(|e| format!("{e:?}"))
            .unwrap();
        let d = t.elapsed();
        oneshot_times.push(d);
        oneshot_total += d;
    }
    direct_times.sort();
    path_times.sort();
    oneshot_times.sort();
    let per_minute = |total: Duration| sessions as f64 * 60.0 / total.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (d50, d99) = (
        percentile(&direct_times, 0.5),
        percentile(&direct_times, 0.99),
    );
    let (p50, p99) = (percentile(&path_times, 0.5), percentile(&path_times, 0.99));
    let (o50, o99) = (
        percentile(&oneshot_times, 0.5),
        percentile(&oneshot_times, 0.99),
    );
    println!(
        "{sessions} requests each (one sealed summarize request; a session = attestation + it), \
         alternating:"
    );
    println!(
        "  direct to the enclave:   {:8.0} sessions/min, p50 {:6.2} ms, p99 {:6.2} ms",
        per_minute(direct_total),
        ms(d50),
        ms(d99)
    );
    println!(
        "  through relay + gateway: {:8.0} sessions/min, p50 {:6.2} ms, p99 {:6.2} ms",
        per_minute(path_total),
        ms(p50),
        ms(p99)
    );
    println!(
        "  one-shot OHTTP:          {:8.0} requests/min, p50 {:6.2} ms, p99 {:6.2} ms",
        per_minute(oneshot_total),
        ms(o50),
        ms(o99)
    );
    println!(
        "  added latency p50 {:.2} ms, p99 {:.2} ms; ratio path/direct p50 {:.2}, p99 {:.2}, throughput {:.2}",
        ms(p50) - ms(d50),
        ms(p99) - ms(d99),
        ms(p50) / ms(d50),
        ms(p99) / ms(d99),
        per_minute(path_total) / per_minute(direct_total)
    );
    println!(
        "  one-shot OHTTP: added latency over direct p50 {:.2} ms, p99 {:.2} ms; requests/min \
         {:.2}x the session path's, {:.2}x direct",
        ms(o50) - ms(d50),
        ms(o99) - ms(d99),
        per_minute(oneshot_total) / per_minute(path_total),
        per_minute(oneshot_total) / per_minute(direct_total)
    );
}
