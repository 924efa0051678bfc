//! The device reads the log and the key CDN through the relay (attack: the operator, who runs
//! both, singles one device out by its address). The log and the CDN sit behind "doors" that
//! count every connection made to the address devices are configured with; the gateway reaches
//! them at their own addresses. A device's sync and discover must open no connection at a door.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pp_services::gateway::{Gateway, challenge};
use pp_services::http::Limits;
use pp_services::reads::ReadUpstream;
use pp_services::relay::Relay;
use pp_services::tunnel::{TunnelCounters, TunnelLimits};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::Reader;
use crate::instances::discover;
use crate::logged_index::tests::{Services, start};
use crate::releases::LogClient;
use crate::test_fixture::roots;

const RELAY: &str = "relay.pp.test";
const GATEWAY: &str = "gateway.pp.test";

/// A TCP door in front of `upstream` that counts the connections made to it (each is one client
/// address the service behind would see) and passes them on.
pub(crate) struct Door {
    pub(crate) url: String,
    pub(crate) seen: Arc<AtomicUsize>,
}

pub(crate) fn door(upstream: SocketAddr) -> Door {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            let Ok(service) = std::net::TcpStream::connect(upstream) else {
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), service.try_clone().unwrap());
            let (mut c, mut s) = (client, service);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut s2);
                let _ = s2.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s, &mut c);
                let _ = c.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    Door { url, seen }
}

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

/// Serves `handler` over TLS with the development certificate of `name` in `certs`.
pub(crate) fn serve_tls<H, F>(certs: &Path, name: &str, handler: H) -> SocketAddr
where
    H: Fn(hyper::Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = pp_services::http::Reply> + Send + 'static,
{
    let acceptor = pp_services::tls::acceptor(
        &certs.join(format!("{name}.pem")),
        &certs.join(format!("{name}.key")),
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let limits = Limits::default();
            let _ = pp_services::http::serve(listener, Some(acceptor), limits, handler).await;
        });
    });
    rx.recv().unwrap()
}

/// A gateway forwarding reads to `upstreams` (`URL=HOST:PORT`), and a relay in front of it.
/// Returns the relay's address.
fn gateway_and_relay(s: &Services, upstreams: &[String]) -> SocketAddr {
    let certs = s.dir.join("certs");
    pp_services::tls::write_dev_certs(&certs, &[RELAY, GATEWAY]).unwrap();
    let gateway = Arc::new(Gateway {
        instances: Default::default(),
        ohttp: None,
        issuer_keys: Vec::new(),
        issuer_request_uri: "https://issuer.pp.test/token-request".into(),
        challenge: challenge("issuer.pp.test", GATEWAY).unwrap(),
        spent: pp_services::spent_store::SpentStore::File(
            pp_tokens::SpentTokens::open(&s.dir.join("spent.bin")).unwrap(),
        ),
        limits: TunnelLimits::new(4),
        counters: Arc::new(TunnelCounters::default()),
        reads: upstreams
            .iter()
            .map(|u| ReadUpstream::parse(u).unwrap())
            .collect(),
    });
    let gateway_addr = serve_tls(&certs, GATEWAY, move |req| gateway.clone().handle(req));
    let relay = Arc::new(Relay {
        upstreams: vec![(format!("{GATEWAY}:443"), gateway_addr.to_string())],
        turn: AtomicUsize::new(0),
        limits: TunnelLimits::new(8),
        counters: Arc::new(TunnelCounters::default()),
    });
    serve_tls(&certs, RELAY, move |req| relay.clone().handle(req))
}

/// The reader a device configured with the relay at `relay` uses.
fn reader(s: &Services, relay: SocketAddr) -> Reader {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(s.dir.join("certs/ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    Reader::via(
        &crate::config::Relay {
            address: relay.to_string(),
            server_name: RELAY.into(),
            ohttp_url: None,
            ohttp_address: None,
        },
        &crate::config::Gateway {
            authority: format!("{GATEWAY}:443"),
            server_name: GATEWAY.into(),
        },
        crate::tunnel::client_config(roots),
    )
}

fn log_config(s: &Services, url: &str) -> crate::config::Log {
    crate::config::Log {
        url: url.to_string(),
        public_key: s.log.public_key_hex.clone(),
        origin: s.log.origin.clone(),
        witnesses: vec![s.log.witness_vkey.clone()],
        witness_threshold: 1,
        max_age_secs: 86_400,
    }
}

#[test]
fn the_log_and_the_cdn_never_see_the_devices_address() {
    let s = start();
    let (log_door, cdn_door) = (door(addr(&s.log_url)), door(addr(&s.cdn_url)));
    // The gateway fronts the log and the CDN by the URLs devices know, reaching them directly.
    let relay = gateway_and_relay(
        &s,
        &[
            format!("{}={}", log_door.url, addr(&s.log_url)),
            format!("{}={}", cdn_door.url, addr(&s.cdn_url)),
        ],
    );
    let log = LogClient::sync(&log_config(&s, &log_door.url), &s.dir, reader(&s, relay)).unwrap();
    let (good, bad) = discover(&cdn_door.url, &log, &roots(0, &s.dir)).unwrap();
    assert_eq!(
        (good.len(), bad.len()),
        (2, 0),
        "{:?}",
        bad.first().map(|b| &b.reason)
    );
    // More reads than one gateway connection carries: the reader opens new tunnels as needed.
    let limit = pp_services::gateway::MAX_REQUESTS_PER_CONNECTION as usize;
    for _ in 0..limit + 5 {
        log.reader()
            .get(&format!("{}/checkpoint", log_door.url))
            .unwrap();
    }
    // A connection the gateway closed as idle (as after a long session, before the receipt's
    // proof is read) is replaced by a new tunnel too.
    std::thread::sleep(Limits::default().header_timeout + std::time::Duration::from_secs(1));
    log.reader()
        .get(&format!("{}/checkpoint", log_door.url))
        .unwrap();
    let (log_seen, cdn_seen) = (
        log_door.seen.load(Ordering::SeqCst),
        cdn_door.seen.load(Ordering::SeqCst),
    );
    assert_eq!(
        (log_seen, cdn_seen),
        (0, 0),
        "the log and the CDN saw connections from the device's own address"
    );
}

#[test]
fn a_relay_path_that_cannot_reach_the_log_fails_without_a_direct_fallback() {
    let s = start();
    let log_door = door(addr(&s.log_url));
    // This gateway fronts only the CDN: the device's log cannot be read through the relay.
    let relay = gateway_and_relay(&s, std::slice::from_ref(&s.cdn_url));
    let err = LogClient::sync(&log_config(&s, &log_door.url), &s.dir, reader(&s, relay))
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap();
    assert!(
        err.contains("through the relay")
            && err.contains("HTTP 403: this gateway forwards reads only of its configured"),
        "{err}"
    );
    // No relay at all: the same, and still no direct read.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    let err = LogClient::sync(&log_config(&s, &log_door.url), &s.dir, reader(&s, gone))
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap();
    assert!(
        err.contains("through the relay") && err.contains("cannot reach the relay"),
        "{err}"
    );
    assert_eq!(
        log_door.seen.load(Ordering::SeqCst),
        0,
        "the device fell back to reading the log from its own address"
    );
}

/// A TCP door in front of `upstream` that records the request line each connection opens with
/// (the gateway opens one connection per read): what the service behind learns of a device.
fn recording_door(upstream: SocketAddr) -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = listener.local_addr().unwrap();
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = lines.clone();
    std::thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while !line.ends_with(b"\r\n") && client.read(&mut byte).unwrap_or(0) == 1 {
                line.push(byte[0]);
            }
            record
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&line).trim().to_string());
            let Ok(mut service) = std::net::TcpStream::connect(upstream) else {
                continue;
            };
            let _ = service.write_all(&line);
            let (mut c2, mut s2) = (client.try_clone().unwrap(), service.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut s2);
                let _ = s2.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut service, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (at, lines)
}

/// The attack: the operator appends one filler entry per sync so that each device holds a
/// size of its own, and recognises a device at its next sync by the first entry it asks for.
/// Two devices at different sizes within one tile must ask the log for the same things.
#[test]
fn devices_at_different_log_sizes_send_the_log_the_same_reads() {
    let s = start();
    let (at, lines) = recording_door(addr(&s.log_url));
    let relay = gateway_and_relay(&s, &[format!("{}={at}", s.log_url)]);
    let append = |what: &str| {
        s.log
            .service
            .log
            .lock()
            .unwrap()
            .append(what.as_bytes())
            .unwrap();
        s.log.service.cosign();
    };
    // A full tile of manifest-sized entries (~6 KiB each: a 1.5 MiB bundle) reads through too.
    for i in 0..256 {
        append(&format!("{i:06}{}", "m".repeat(6000)));
    }
    let (a, b) = (s.dir.join("device-a"), s.dir.join("device-b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let config = log_config(&s, &s.log_url);
    LogClient::sync(&config, &a, reader(&s, relay)).unwrap();
    append("filler for device a's sync");
    LogClient::sync(&config, &b, reader(&s, relay)).unwrap();
    append("filler for device b's sync");
    let sizes: Vec<u64> = [&a, &b]
        .iter()
        .map(|dir| {
            let state = pp_translog::DeviceLogState::open(
                dir.join(crate::releases::STATE_FILE),
                config.trust_policy().unwrap(),
            )
            .unwrap();
            state.current().unwrap().checkpoint.size
        })
        .collect();
    assert_eq!(sizes[0] + 1, sizes[1], "the devices hold different sizes");
    assert!(sizes[0] > 256, "{sizes:?}");
    let mut seen = Vec::new();
    for dir in [&a, &b] {
        lines.lock().unwrap().clear();
        let log = LogClient::sync(&config, dir, reader(&s, relay)).unwrap();
        assert_eq!(log.tree_head().size, sizes[1] + 1);
        seen.push(lines.lock().unwrap().clone());
    }
    assert!(seen[0].len() > 1, "{seen:?}");
    assert_eq!(
        seen[0], seen[1],
        "the log tells the devices apart by what they read"
    );
}
