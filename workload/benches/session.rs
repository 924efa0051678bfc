//! Benchmark of the attested session on loopback (host mode, release build): what a device pays
//! to get a verified session, what one sealed request costs end to end, and how the HPKE sealing
//! compares with the handler's own work. Prints numbers and ratios; asserts nothing.

use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pp_attestation::test_signer::{TEST_MEASUREMENT, TEST_TCB};
use pp_workload::features::Features;
use pp_workload::handler::Handler;

const SESSIONS: usize = 30;
const REQUESTS: usize = 500;
const IN_PROCESS: usize = 2000;

#[path = "../tests/common/mod.rs"]
mod common;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p90(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() * 9 / 10]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let workload = common::spawn(Stdio::null(), Stdio::null());
    let tls_port = workload.tls_port;
    let ark = std::fs::read(concat!(env!("PP_TEST_ROOT_DIR"), "/ark.der")).unwrap();
    let policy =
        pp_verifier::Policy::trusting_test_root(&ark, vec![TEST_MEASUREMENT], TEST_TCB).unwrap();
    let connect = || loop {
        if let Ok(sock) = TcpStream::connect(("127.0.0.1", tls_port)) {
            sock.set_nodelay(true).unwrap();
            return pp_client::connect(sock, &policy, pp_client::Limits::default()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(connect()); // warm up, and wait for the listener

    // A summarize request of ~1 KiB: 8 messages, answered by the tiny models.
    let body = pp_protocol::app::AppRequest::Summarize {
        thread: (0..8)
            .map(|i| pp_protocol::app::Message {
                sender: format!("user{i}"),
                text: "lorem ipsum dolor sit amet ".repeat(4),
                time: None,
            })
            .collect(),
        k: 3,
    }
    .to_vec();
    let mut setups = Vec::new();
    for _ in 0..SESSIONS {
        let t = Instant::now();
        let session = connect();
        setups.push(t.elapsed());
        let _ = session.close();
    }

    let mut session = connect();
    let mut round_trips = Vec::new();
    let t = Instant::now();
    for _ in 0..REQUESTS {
        let r = Instant::now();
        session.request(&body).unwrap();
        round_trips.push(r.elapsed());
    }
    let per_second = REQUESTS as f64 / t.elapsed().as_secs_f64();
    let _ = session.close();

    // In process: the handler alone, and HPKE seal + open of the request and the response.
    let features = Features::load(&std::fs::read(common::tiny_weights()).unwrap()).unwrap();
    let t = Instant::now();
    for _ in 0..IN_PROCESS {
        std::hint::black_box(features.handle(std::hint::black_box(&body)).unwrap());
    }
    let handler = t.elapsed() / IN_PROCESS as u32;
    let keys = pp_workload::keys::KeyRing::new().unwrap();
    let (_, key_config) = keys.current().unwrap();
    // Padded as the session pads them (docs/protocol.md §4).
    let response = pp_protocol::padding::pad(&features.handle(&body).unwrap()).unwrap();
    let padded = pp_protocol::padding::pad(&body).unwrap();
    let t = Instant::now();
    for _ in 0..IN_PROCESS {
        let client = ohttp::ClientRequest::from_encoded_config(&key_config).unwrap();
        let (sealed, opener) = client.encapsulate(&padded).unwrap();
        let (_, server_response) = keys.open(&sealed).unwrap();
        let sealed_response = server_response.encapsulate(&response).unwrap();
        std::hint::black_box(opener.decapsulate(&sealed_response).unwrap());
    }
    let sealing = t.elapsed() / IN_PROCESS as u32;

    println!(
        "attested session set-up (TLS 1.3 + evidence + verification), {SESSIONS} sessions on loopback:"
    );
    println!(
        "  median {:.2} ms, p90 {:.2} ms",
        micros(median(setups.clone())) / 1e3,
        micros(p90(setups)) / 1e3
    );
    println!(
        "one session, {REQUESTS} sealed requests of {} bytes:",
        body.len()
    );
    println!(
        "  {per_second:.0} requests/s; round trip median {:.0} µs, p90 {:.0} µs",
        micros(median(round_trips.clone())),
        micros(p90(round_trips.clone()))
    );
    println!("in process, per request:");
    println!(
        "  handler {:.1} µs; HPKE seal+open of request and response {:.1} µs",
        micros(handler),
        micros(sealing)
    );
    println!(
        "  ratio HPKE / handler = {:.1}; HPKE share of the round trip = {:.0}%",
        micros(sealing) / micros(handler),
        100.0 * micros(sealing) / micros(median(round_trips))
    );
}
