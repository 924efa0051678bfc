//! Many direct attested sessions against one running enclave, one sealed request each, from
//! `PP_STRESS_THREADS` threads at once; every failure is counted by kind (a response that does
//! not open is `ClientError::Open`), nothing stops at the first. Prints one summary line and
//! exits non-zero if any session failed. `cargo xtask stress-enclave` boots an enclave and runs it.
//!
//! Env: PP_STRESS_ADDR (the enclave's `host:port`), PP_STRESS_ARK (the test ARK),
//! PP_STRESS_SESSIONS (per thread, default 50), PP_STRESS_THREADS (default 1).

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pp_attestation::test_signer::{TEST_MEASUREMENT, TEST_TCB};
use pp_protocol::app::{AppRequest, Message};
use pp_verifier::Policy;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run `cargo xtask stress-enclave`"))
}

fn number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One session: connect, attest, one sealed summarize request, close. The error's kind on failure.
fn session(addr: &str, policy: &Policy, request: &[u8]) -> Result<(), String> {
    let sock = TcpStream::connect(addr).map_err(|e| format!("connect: {}", e.kind()))?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    let timeout = Some(Duration::from_secs(120));
    sock.set_read_timeout(timeout).map_err(|e| e.to_string())?;
    sock.set_write_timeout(timeout).map_err(|e| e.to_string())?;
    let mut s = pp_client::connect(sock, policy, Default::default())
        .map_err(|e| format!("connect: {e}"))?;
    let answer = s.request(request).map_err(|e| format!("request: {e}"))?;
    if answer.is_empty() {
        return Err("request: empty answer".into());
    }
    let _ = s.close();
    Ok(())
}

fn main() {
    let addr = env("PP_STRESS_ADDR");
    let ark = std::fs::read(env("PP_STRESS_ARK")).unwrap();
    let sessions = number("PP_STRESS_SESSIONS", 50);
    let threads = number("PP_STRESS_THREADS", 1).max(1);
    let policy =
        Arc::new(Policy::trusting_test_root(&ark, vec![TEST_MEASUREMENT], TEST_TCB).unwrap());
    let request = Arc::new(
        AppRequest::Summarize {
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
        .to_vec(),
    );
    let failures: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (addr, policy, request, failures) = (
                addr.clone(),
                policy.clone(),
                request.clone(),
                failures.clone(),
            );
            std::thread::spawn(move || {
                for i in 0..sessions {
                    if let Err(kind) = session(&addr, &policy, &request) {
                        eprintln!("thread {t} session {i}: {kind}");
                        *failures.lock().unwrap().entry(kind).or_default() += 1;
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    let failed: usize = failures.values().sum();
    println!(
        "stress: {} sessions ({threads} thread(s) x {sessions}) in {:.0} s: {} ok, {failed} failed {:?}",
        threads * sessions,
        start.elapsed().as_secs_f64(),
        threads * sessions - failed,
        *failures
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
