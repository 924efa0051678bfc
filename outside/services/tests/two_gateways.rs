//! Several gateway replicas share one spent-token store: a token spent at one is refused at
//! every other (without a shared store each replica accepts it once). One gateway connection
//! carries a bounded number of requests (the directory, reads of the log and CDN it fronts).

mod common;

use std::path::Path;

use std::time::Duration;

use common::{
    Process, Valkey, closed_within, connect_request, echo_server, spawn_service, temp_dir, tls_from,
};
use pp_tokens::{Client, Issuer, IssuerKeyEntry, authorization_value};

const GATEWAY: &str = "gateway.pp.test";
const ISSUER: &str = "issuer.pp.test";
/// An instance id of the one form gateways accept (derived from a key configuration).
const INSTANCE: &str = "i-0123456789abcdef";

/// Writes the gateway's `issuer-keys.jsonl`: `issuer`'s key, logged as valid for a day; returns
/// the window's end.
fn write_logged_key(dir: &Path, issuer: &Issuer) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let entry = IssuerKeyEntry::new(
        ISSUER,
        issuer.public_key().clone(),
        0,
        now - 60,
        now + 86_400,
    )
    .unwrap();
    let mut line = entry.to_vec();
    line.push(b'\n');
    std::fs::write(dir.join("issuer-keys.jsonl"), line).unwrap();
    now + 86_400
}

/// Starts a `pp-gateway serve` process on the shared store at `store_url`.
fn gateway(dir: &Path, n: usize, store_url: &str) -> (Process, std::net::SocketAddr) {
    gateway_with(dir, n, store_url, &[])
}

/// [`gateway`] with more arguments.
fn gateway_with(
    dir: &Path,
    n: usize,
    store_url: &str,
    extra: &[&str],
) -> (Process, std::net::SocketAddr) {
    let p = |rel: &str| dir.join(rel).display().to_string();
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        &p(&format!("{GATEWAY}.pem")),
        "--key",
        &p(&format!("{GATEWAY}.key")),
        "--origin",
        GATEWAY,
        "--issuer-name",
        ISSUER,
        "--issuer-keys",
        &p("issuer-keys.jsonl"),
        "--instances",
        &p("instances.json"),
        "--spent-store",
        store_url,
    ]
    .into_iter()
    .map(str::to_string)
    .collect::<Vec<_>>();
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn_service(
        env!("CARGO_BIN_EXE_pp-gateway"),
        &args,
        &dir.join(format!("gateway-{n}.log")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_gateway_refuses_a_token_spent_at_the_first() {
    let dir = temp_dir("two-gateways");
    common::certs(&dir, &[GATEWAY]);
    let issuer = Issuer::generate().unwrap();
    let not_after = write_logged_key(&dir, &issuer);
    let enclave = echo_server().await;
    std::fs::write(
        dir.join("instances.json"),
        format!("{{\"instances\": [{{\"id\": \"{INSTANCE}\", \"address\": \"{enclave}\"}}]}}"),
    )
    .unwrap();
    let store = Valkey::start(&dir.join("store"));
    let (_g1, addr1) = gateway(&dir, 1, &store.url());
    let (_g2, addr2) = gateway(&dir, 2, &store.url());

    let challenge = pp_services::gateway::challenge(ISSUER, GATEWAY).unwrap();
    let token = |issuer: &Issuer| {
        let (request, pending) = Client::prepare(&challenge, issuer.public_key()).unwrap();
        let token = Client::finalize(pending, &issuer.issue(&request).unwrap()).unwrap();
        format!("Authorization: {}\r\n", authorization_value(&token))
    };
    let spend = async |addr, header: &str| {
        let mut tls = tls_from([127, 0, 0, 1], addr, &dir, GATEWAY).await.unwrap();
        connect_request(&mut tls, &format!("{INSTANCE}:443"), header)
            .await
            .unwrap()
    };

    let once = token(&issuer);
    let first = spend(addr1, &once).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // The record expires a day after the key's window ends (its tokens are refused by then).
    let mut conn = redis::Client::open(store.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("pp:spent:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let expires: u64 = redis::cmd("EXPIRETIME")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        expires,
        not_after + pp_services::gateway::SPEND_RECORD_MARGIN_SECS
    );
    let second = spend(addr2, &once).await;
    assert!(second.starts_with("HTTP/1.1 403"), "{second}");
    assert!(
        second.contains("this token was spent before; fetch new tokens"),
        "{second}"
    );
    // And back at the first replica.
    let third = spend(addr1, &once).await;
    assert!(third.starts_with("HTTP/1.1 403"), "{third}");
    // Another token still works at the second replica.
    let other = spend(addr2, &token(&issuer)).await;
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_valid_token_keeps_no_gateway_connection() {
    let dir = temp_dir("gateway-refusal");
    common::certs(&dir, &[GATEWAY]);
    let issuer = Issuer::generate().unwrap();
    write_logged_key(&dir, &issuer);
    std::fs::write(
        dir.join("instances.json"),
        format!("{{\"instances\": [{{\"id\": \"{INSTANCE}\", \"address\": \"127.0.0.1:9\"}}]}}"),
    )
    .unwrap();
    let store = Valkey::start(&dir.join("store"));
    let (_gateway, addr) = gateway(&dir, 1, &store.url());
    for header in ["", "Authorization: PrivateToken token=AAAA\r\n"] {
        let mut tls = tls_from([127, 0, 0, 1], addr, &dir, GATEWAY).await.unwrap();
        let head = connect_request(&mut tls, &format!("{INSTANCE}:443"), header)
            .await
            .unwrap();
        assert!(head.starts_with("HTTP/1.1 401"), "{head}");
        assert!(head.contains("a Privacy Pass token is required"), "{head}");
        // Refused, the connection is closed at once rather than kept for more tries.
        let closed = closed_within(&mut tls, Duration::from_secs(2)).await;
        assert!(
            closed.is_some(),
            "the gateway kept a refused client's connection"
        );
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A client without a token cannot keep a gateway connection open by fetching the directory
/// again and again (each request restarts hyper's header timer): the second fetch on one
/// connection is refused and the connection closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_connection_carries_one_directory_fetch() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = temp_dir("gateway-requests");
    common::certs(&dir, &[GATEWAY]);
    write_logged_key(&dir, &Issuer::generate().unwrap());
    std::fs::write(
        dir.join("instances.json"),
        format!("{{\"instances\": [{{\"id\": \"{INSTANCE}\", \"address\": \"127.0.0.1:9\"}}]}}"),
    )
    .unwrap();
    let store = Valkey::start(&dir.join("store"));
    let (_gateway, addr) = gateway(&dir, 1, &store.url());
    let mut tls = tls_from([127, 0, 0, 1], addr, &dir, GATEWAY).await.unwrap();
    let get = format!(
        "GET {} HTTP/1.1\r\nHost: {GATEWAY}\r\n\r\n",
        pp_services::issuer::DIRECTORY_PATH
    );
    tls.write_all(get.as_bytes()).await.unwrap();
    let head = common::read_head(&mut tls).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0u8; length];
    tls.read_exact(&mut body).await.unwrap();
    tls.write_all(get.as_bytes()).await.unwrap();
    let again = common::read_head(&mut tls).await.unwrap();
    assert!(again.starts_with("HTTP/1.1 429"), "{again}");
    assert!(
        closed_within(&mut tls, Duration::from_secs(2))
            .await
            .is_some(),
        "the gateway kept the connection after refusing a second directory fetch"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads one response (head and Content-Length body) from `stream`: (head, body).
async fn read_response<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "closed mid-head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (head, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_forwards_reads_of_its_log_and_cdn_a_bounded_number_per_connection() {
    use tokio::io::AsyncWriteExt;
    let dir = temp_dir("gateway-reads");
    common::certs(&dir, &[GATEWAY]);
    write_logged_key(&dir, &Issuer::generate().unwrap());
    std::fs::write(
        dir.join("instances.json"),
        format!("{{\"instances\": [{{\"id\": \"{INSTANCE}\", \"address\": \"127.0.0.1:9\"}}]}}"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("cdn")).unwrap();
    std::fs::write(dir.join("cdn/enclaves.json"), b"the index").unwrap();
    let cdn_root = dir.join("cdn").display().to_string();
    let (_cdn, cdn) = spawn_service(
        env!("CARGO_BIN_EXE_pp-cdn"),
        &["--listen", "127.0.0.1:0", "--root", &cdn_root],
        &dir.join("cdn.log"),
    );
    let store = Valkey::start(&dir.join("store"));
    let upstream = format!("http://{cdn}");
    let (_gateway, addr) = gateway_with(&dir, 1, &store.url(), &["--read-upstream", &upstream]);
    let mut tls = tls_from([127, 0, 0, 1], addr, &dir, GATEWAY).await.unwrap();
    let get = format!("GET http://{cdn}/enclaves.json HTTP/1.1\r\nHost: {cdn}\r\n\r\n");
    let limit = pp_services::gateway::MAX_REQUESTS_PER_CONNECTION;
    for n in 1..=limit {
        tls.write_all(get.as_bytes()).await.unwrap();
        let (head, body) = read_response(&mut tls).await;
        assert!(head.starts_with("HTTP/1.1 200"), "read {n}: {head}");
        assert_eq!(body, b"the index");
        let closing = head.to_ascii_lowercase().contains("connection: close");
        assert_eq!(closing, n == limit, "read {n}: {head}");
    }
    assert!(
        closed_within(&mut tls, Duration::from_secs(2))
            .await
            .is_some(),
        "the gateway kept the connection after its last read"
    );
    // Only the services it fronts: not the issuer, not an enclave, not another host.
    let mut tls = tls_from([127, 0, 0, 1], addr, &dir, GATEWAY).await.unwrap();
    let other = "GET http://127.0.0.1:9/enclaves.json HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n";
    tls.write_all(other.as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert_eq!(
        String::from_utf8_lossy(&body).trim(),
        "this gateway forwards reads only of its configured transparency log and key CDN"
    );
    // A refused read ends the connection: a tokenless client cannot keep one with reads the
    // gateway refuses cheaply.
    assert!(
        closed_within(&mut tls, Duration::from_secs(2))
            .await
            .is_some(),
        "the gateway kept the connection after refusing a read it does not front"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tokenless client that reads slowly (one cheap read every few seconds, under the header
/// timeout) is cut at the connection's lifetime, not after its read budget (minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_cut_at_the_connection_lifetime() {
    use tokio::io::AsyncWriteExt;
    let dir = temp_dir("gateway-slow-reads");
    common::certs(&dir, &[GATEWAY]);
    write_logged_key(&dir, &Issuer::generate().unwrap());
    std::fs::write(
        dir.join("instances.json"),
        format!("{{\"instances\": [{{\"id\": \"{INSTANCE}\", \"address\": \"127.0.0.1:9\"}}]}}"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("cdn")).unwrap();
    std::fs::write(dir.join("cdn/enclaves.json"), b"the index").unwrap();
    let cdn_root = dir.join("cdn").display().to_string();
    let (_cdn, cdn) = spawn_service(
        env!("CARGO_BIN_EXE_pp-cdn"),
        &["--listen", "127.0.0.1:0", "--root", &cdn_root],
        &dir.join("cdn.log"),
    );
    let store = Valkey::start(&dir.join("store"));
    let upstream = format!("http://{cdn}");
    let (_gateway, addr) = gateway_with(&dir, 1, &store.url(), &["--read-upstream", &upstream]);
    let mut tls = tls_from([127, 0, 0, 1], addr, &dir, GATEWAY).await.unwrap();
    let started = std::time::Instant::now();
    let get = format!("GET http://{cdn}/enclaves.json HTTP/1.1\r\nHost: {cdn}\r\n\r\n");
    let lifetime = pp_services::gateway::CONNECTION_LIFETIME;
    let mut reads = 0;
    loop {
        assert!(
            started.elapsed() < lifetime + Duration::from_secs(10),
            "the gateway still serves a slow reader after {:?} ({reads} reads)",
            started.elapsed()
        );
        if tls.write_all(get.as_bytes()).await.is_err() {
            break;
        }
        let (head, body) = read_response(&mut tls).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"the index");
        reads += 1;
        // Just under the gateway's 5 s header timeout.
        if closed_within(&mut tls, Duration::from_secs(4))
            .await
            .is_some()
        {
            break;
        }
    }
    assert!(
        started.elapsed() >= lifetime - Duration::from_secs(1),
        "cut after {:?}, before the lifetime",
        started.elapsed()
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
