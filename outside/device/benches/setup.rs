//! The device's session set-up, phase by phase, with the checks issue 13 added against the set-up
//! without them, from one run: each phase is the device's own function, called as `request::ask`
//! calls it, and timed from here (the product has no switch that turns a check off). Also the
//! first log sync of fresh devices. Needs a running stack whose log holds a history:
//! `cargo xtask bench-setup` sets one up and runs this.
//!
//! Env: PP_BENCH_CONFIG (a pp.toml), PP_BENCH_REQUESTS (default 50), PP_BENCH_FRESH (default 5).

use std::time::{Duration, Instant};

use pp_client::Limits;
use pp_device::config::Config;
use pp_device::instances::{self, Roots};
use pp_device::reads::Reader;
use pp_device::releases::LogClient;
use pp_device::tunnel::{self, PathSpec};
use pp_device::wallet::{Refill, TokenSource, Wallet};
use pp_device::{issuer_keys, logged_index, receipts, request};
use pp_protocol::app::{AppRequest, Message};

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run `cargo xtask bench-setup`"))
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Milliseconds at the quantile `p` of `samples` (sorted here), and their mean.
fn stats(samples: &[Duration]) -> (f64, f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = ms(sorted.iter().sum::<Duration>()) / sorted.len() as f64;
    (ms(at(0.5)), ms(at(0.99)), mean)
}

/// One request's phases.
#[derive(Default)]
struct Times {
    sync: Duration,
    discover: Duration,
    index: Duration,
    token: Duration,
    key_check: Duration,
    session: Duration,
    exchange: Duration,
    receipt: Duration,
}

fn main() {
    let config = Config::load(env("PP_BENCH_CONFIG").as_ref()).unwrap();
    let requests = env_or("PP_BENCH_REQUESTS", 50);
    let fresh = env_or("PP_BENCH_FRESH", 5);
    let state = config.state_dir.clone();
    std::fs::create_dir_all(&state).unwrap();
    // The bench is the user of this device state: it opted in (receipts are kept only then).
    pp_device::consent::opt_in(&state).unwrap();
    let request = AppRequest::Summarize {
        thread: ["dinner at six?", "yes, booked", "see you there"]
            .iter()
            .map(|t| Message {
                sender: "Ana".into(),
                text: t.to_string(),
                time: None,
            })
            .collect(),
        k: 1,
    }
    .to_vec();

    let spec = PathSpec::from_config(&config).unwrap();
    let issuer = request::issuer_name(&config.issuer.url);
    let challenge = pp_tokens::TokenChallenge::new(
        issuer.as_bytes(),
        None,
        config.gateway.server_name.as_bytes(),
    )
    .unwrap();
    let now = || pp_translog::checkpoint::unix_now();

    // The first sync of fresh devices: every log entry fetched and checked.
    let mut first_syncs = Vec::new();
    let mut log_size = 0;
    for _ in 0..fresh {
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let log = LogClient::sync(
            &config.log,
            dir.path(),
            Reader::through_relay(&config).unwrap(),
        )
        .unwrap();
        first_syncs.push(t.elapsed());
        log_size = log.tree_head().size;
    }

    // This device: synced once, tokens fetched ahead (outside the timed part).
    let log =
        LogClient::sync(&config.log, &state, Reader::through_relay(&config).unwrap()).unwrap();
    let first_instance = {
        let roots = Roots::from_config(&config.trust).unwrap();
        instances::discover(&config.cdn.url, &log, &roots)
            .unwrap()
            .0[0]
            .id
            .clone()
    };
    let wallet = Wallet::new(&state);
    let source = TokenSource {
        issuer_url: &config.issuer.url,
        credential_file: &config.issuer.credential_file,
        issuer_name: &issuer,
        challenge: &challenge,
        batch: 32,
        low_water: requests + 1,
        log: &log,
    };
    while let Refill::Fetched { .. } = wallet
        .refill_if_low(&source, now(), || {
            issuer_keys::fetch_via_relay(&spec, &first_instance)
        })
        .unwrap()
    {}

    let mut times = Vec::new();
    for _ in 0..requests {
        let mut t = Times::default();
        let clock = Instant::now();
        let log =
            LogClient::sync(&config.log, &state, Reader::through_relay(&config).unwrap()).unwrap();
        t.sync = clock.elapsed();

        let clock = Instant::now();
        let roots = Roots::from_config(&config.trust).unwrap();
        let (candidates, rejected) = instances::discover(&config.cdn.url, &log, &roots).unwrap();
        t.discover = clock.elapsed();
        assert!(rejected.is_empty(), "an instance was refused");
        // The logged-index check alone (it is the first step of `discover`), to split that
        // phase into what issue 13 added and what was there before.
        let clock = Instant::now();
        logged_index::fetch(&config.cdn.url, &log).unwrap();
        t.index = clock.elapsed();
        let chosen = &candidates[0];

        let clock = Instant::now();
        let token = wallet
            .take(&source, now(), || panic!("the wallet was filled ahead"))
            .unwrap();
        t.token = clock.elapsed();

        // What a token fetch checks first (once per batch): the gateway's directory and
        // challenge through the relay, against the logged keys.
        let clock = Instant::now();
        let view = issuer_keys::fetch_via_relay(&spec, &chosen.id).unwrap();
        issuer_keys::choose(&view, &challenge, &issuer, now(), &log).unwrap();
        t.key_check = clock.elapsed();

        let clock = Instant::now();
        let stream = tunnel::open(&spec, &chosen.id, &token).unwrap();
        let mut session = pp_client::connect_published(
            stream,
            &chosen.published,
            &chosen.policy,
            Limits::default(),
        )
        .unwrap();
        t.session = clock.elapsed();
        let binding = session.binding().clone();

        let clock = Instant::now();
        session.request(&request).unwrap();
        let _ = session.close();
        t.exchange = clock.elapsed();

        let clock = Instant::now();
        let (_, path) =
            receipts::record(&state, chosen, receipts::Relied::Session(&binding), &log).unwrap();
        t.receipt = clock.elapsed();
        std::fs::remove_file(path).unwrap();
        times.push(t);
    }

    let batch = u32::from(config.issuer.batch);
    let full: Vec<Duration> = times
        .iter()
        .map(|t| t.sync + t.discover + t.token + t.key_check / batch + t.session + t.receipt)
        .collect();
    let without: Vec<Duration> = times
        .iter()
        .map(|t| t.discover.saturating_sub(t.index) + t.token + t.session)
        .collect();
    let row = |name: &str, samples: Vec<Duration>, added: &str| {
        let (p50, p99, mean) = stats(&samples);
        println!("  {name:<52} {p50:8.2} {p99:8.2} {mean:8.2}  {added}");
    };
    let of = |f: fn(&Times) -> Duration| times.iter().map(f).collect::<Vec<_>>();
    println!(
        "Session set-up of one request, {requests} requests in the steady state (the device \
         synced before; log of {log_size} entries), ms:"
    );
    println!(
        "  {:<52} {:>8} {:>8} {:>8}  added by issue 13",
        "phase", "p50", "p99", "mean"
    );
    row(
        "log sync (cosigned fresh checkpoint, new entries)",
        of(|t| t.sync),
        "yes",
    );
    row(
        "CDN index + instances (`discover`)",
        of(|t| t.discover),
        "in part:",
    );
    row(
        "  of which: logged index (proof, entries after it)",
        of(|t| t.index),
        "yes (timed apart)",
    );
    row(
        "  of which: evidence, logged release, policy",
        of(|t| t.discover.saturating_sub(t.index)),
        "no",
    );
    row("token from the wallet", of(|t| t.token), "no");
    row(
        "issuer key check (directory via relay, logged key)",
        of(|t| t.key_check),
        &format!("yes, once per batch: 1/{batch} counted per request"),
    );
    row(
        "tunnel (relay, gateway, token) + attested session",
        of(|t| t.session),
        "no",
    );
    row(
        "receipt (two inclusion proofs, files)",
        of(|t| t.receipt),
        "yes",
    );
    row("full set-up (per request)", full.clone(), "");
    row("set-up without the added checks", without.clone(), "");
    let (f50, f99, fmean) = stats(&full);
    let (w50, w99, wmean) = stats(&without);
    println!(
        "  ratio full / without: p50 {:.2}, p99 {:.2}, mean {:.2}",
        f50 / w50,
        f99 / w99,
        fmean / wmean
    );
    println!(
        "  \"without the added checks\" = the instances' evidence, logged release and policy \
         checks (`discover` minus the logged-index check), a token from the wallet, and the \
         tunnel + attested session; it leaves out the log sync, the logged CDN index, the issuer \
         key check and the receipt (and so also the plain checkpoint fetch the device made before \
         issue 13: the ratio is an upper bound)."
    );
    let (e50, e99, _) = stats(&of(|t| t.exchange));
    println!("  not set-up: the sealed request and its answer, p50 {e50:.2} ms, p99 {e99:.2} ms");
    if !first_syncs.is_empty() {
        let (s50, s99, smean) = stats(&first_syncs);
        println!(
            "First log sync of a fresh device ({fresh} devices, {log_size} entries fetched and \
             checked): p50 {s50:.2} ms, p99 {s99:.2} ms, mean {smean:.2} ms"
        );
    }
}
