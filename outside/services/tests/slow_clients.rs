//! Slow and silent clients at the relay (the real `pp-relay` binary, default limits): a client
//! that opens many connections and sends nothing, or half a TLS handshake, or half a request
//! head, is cut at the deadline and cannot lock an honest client out; a tunnel that goes quiet
//! is closed.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{
    Process, closed_within, connect_from, connect_request, echo_server, spawn_service, temp_dir,
    tls_from,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RELAY: &str = "relay.pp.test";
const TARGET: &str = "gateway.pp.test:443";
const ATTACKER: [u8; 4] = [127, 0, 0, 1];
const HONEST: [u8; 4] = [127, 0, 0, 2];
/// A second slow client, which finishes TLS and then sends half a request head.
const HALF_HEAD: [u8; 4] = [127, 0, 0, 3];
/// The relay's default connection limit (256) plus some.
const FLOOD: usize = 300;

fn relay(dir: &std::path::Path, upstream: SocketAddr, extra: &[&str]) -> (Process, SocketAddr) {
    let p = |rel: &str| dir.join(rel).display().to_string();
    let upstream = format!("{TARGET}={upstream}");
    let mut args = vec![
        "--listen".to_string(),
        "127.0.0.1:0".into(),
        "--cert".into(),
        p(&format!("{RELAY}.pem")),
        "--key".into(),
        p(&format!("{RELAY}.key")),
        "--upstream".into(),
        upstream,
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn_service(
        env!("CARGO_BIN_EXE_pp-relay"),
        &args,
        &dir.join("relay.log"),
    )
}

/// An honest client's tunnel through the relay: TLS, CONNECT, and bytes echoed back.
async fn honest_tunnel(relay: SocketAddr, certs: &std::path::Path) -> Result<(), String> {
    honest_tunnel_from(HONEST, relay, certs).await
}

/// [`honest_tunnel`] from the address `from`.
async fn honest_tunnel_from(
    from: [u8; 4],
    relay: SocketAddr,
    certs: &std::path::Path,
) -> Result<(), String> {
    let mut tls = tls_from(from, relay, certs, RELAY)
        .await
        .map_err(|e| format!("TLS to the relay failed: {e}"))?;
    let head = connect_request(&mut tls, TARGET, "")
        .await
        .map_err(|e| format!("CONNECT failed: {e}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("CONNECT refused: {head}"));
    }
    tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
    let mut echo = [0u8; 4];
    tls.read_exact(&mut echo).await.map_err(|e| e.to_string())?;
    if &echo != b"ping" {
        return Err("the tunnel did not carry the bytes".into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_is_cut_and_does_not_lock_out_an_honest_client() {
    let dir = temp_dir("slow-loris");
    common::certs(&dir, &[RELAY]);
    let enclave = echo_server().await;
    let (_relay, addr) = relay(&dir, enclave, &[]);

    // One client opens more connections than the relay serves in total: most send nothing, some
    // half a TLS ClientHello, some finish TLS and send half a request head.
    let mut silent = Vec::new();
    for i in 0..FLOOD {
        let Ok(mut tcp) = connect_from(ATTACKER, addr).await else {
            continue;
        };
        if i % 3 == 1 {
            // A TLS record header announcing 512 bytes of handshake, and 5 of them.
            let _ = tcp
                .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 1, 0, 1, 0xfc, 3])
                .await;
        }
        silent.push(tcp);
    }
    let mut half_heads = Vec::new();
    for _ in 0..4 {
        if let Ok(mut tls) = tls_from(HALF_HEAD, addr, &dir, RELAY).await {
            let _ = tls
                .write_all(b"CONNECT gateway.pp.test:443 HTTP/1.1\r\nHo")
                .await;
            half_heads.push(tls);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        half_heads.len(),
        4,
        "the second slow client could not connect"
    );

    // The honest client, from another address, gets its tunnel right away.
    let honest = tokio::time::timeout(Duration::from_secs(3), honest_tunnel(addr, &dir)).await;
    assert_eq!(
        honest,
        Ok(Ok(())),
        "an honest client was locked out by a slow client"
    );

    // The slow client's connections are cut at the deadline (5 s handshake or head), not kept.
    let limit = Duration::from_secs(7);
    for tls in &mut half_heads {
        let took = closed_within(tls, limit).await;
        assert!(
            took.is_some(),
            "a half request head was kept past {limit:?}"
        );
    }
    for tcp in &mut silent {
        let took = closed_within(tcp, limit).await;
        assert!(
            took.is_some(),
            "a silent connection was kept past {limit:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_tunnel_is_closed() {
    let dir = temp_dir("quiet-tunnel");
    common::certs(&dir, &[RELAY]);
    let enclave = echo_server().await;
    let (_relay, addr) = relay(&dir, enclave, &["--tunnel-idle-secs", "1"]);
    let mut tls = tls_from(HONEST, addr, &dir, RELAY).await.unwrap();
    let head = connect_request(&mut tls, TARGET, "").await.unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Traffic keeps it open past the idle bound...
    for _ in 0..4 {
        tls.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        tls.read_exact(&mut b).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // ...silence closes it.
    let took = closed_within(&mut tls, Duration::from_secs(4)).await;
    assert!(took.is_some(), "a quiet tunnel was kept open");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_count_against_the_per_client_cap() {
    let dir = temp_dir("client-cap");
    common::certs(&dir, &[RELAY]);
    let enclave = echo_server().await;
    let (_relay, addr) = relay(&dir, enclave, &["--max-per-client", "2"]);
    let mut tunnels = Vec::new();
    for _ in 0..2 {
        let mut tls = tls_from(HONEST, addr, &dir, RELAY).await.unwrap();
        let head = connect_request(&mut tls, TARGET, "").await.unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        tunnels.push(tls);
    }
    // Two open tunnels are this address's share: a third connection is closed at once.
    let third = tls_from(HONEST, addr, &dir, RELAY).await;
    assert!(
        third.is_err(),
        "a third connection from one address was served"
    );
    // Another address is not affected.
    honest_tunnel_from(HALF_HEAD, addr, &dir).await.unwrap();
    // A closed tunnel gives its share back.
    drop(tunnels.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    honest_tunnel(addr, &dir).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
