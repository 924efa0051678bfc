//! The workload runs as a Linux process too: start it, wait for its ready line, talk to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

mod common;

fn get(port: u16, request: &[u8]) -> String {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(request).unwrap();
    let mut out = String::new();
    sock.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serves_health_and_keeps_request_bytes_out_of_the_log() {
    let mut workload = common::spawn(Stdio::piped(), Stdio::null());
    let health = workload.health_port;
    let mut lines = BufReader::new(workload.child.stdout.take().unwrap()).lines();
    let head: Vec<String> = (0..3).map(|_| lines.next().unwrap().unwrap()).collect();
    assert!(
        head[0].starts_with("pp-workload: tls certificate sha256 "),
        "{head:?}"
    );
    assert!(head[1].starts_with("pp-workload: attester "), "{head:?}");
    assert!(
        head[2].starts_with("pp-workload: ready version="),
        "{head:?}"
    );

    let ok = get(health, b"GET /health HTTP/1.0\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.0 200 OK"), "{ok}");
    assert!(
        ok.ends_with("{\"status\":\"ok\",\"transport\":\"tcp\"}\n"),
        "{ok}"
    );
    let refused = get(health, b"GET /canary-7f3a9 HTTP/1.0\r\n\r\n");
    assert!(refused.starts_with("HTTP/1.0 404"), "{refused}");
    // Exactly the limit, so the server has read everything before it answers and closes.
    let oversized = get(health, &[b'A'; 1024]);
    assert!(oversized.starts_with("HTTP/1.0 431"), "{oversized}");

    let mut log = Vec::new();
    for _ in 0..3 {
        log.push(lines.next().unwrap().unwrap());
    }
    assert_eq!(
        log,
        [
            "pp-workload: served=1",
            "pp-workload: refused=1",
            "pp-workload: refused=2"
        ]
    );
    assert!(log.iter().all(|l| !l.contains("canary")));
}
