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
    let head: Vec<String> = (0..4).map(|_| lines.next().unwrap().unwrap()).collect();
    assert!(
        head[0].starts_with("pp-workload: weights blob "),
        "{head:?}"
    );
    assert!(
        head[1].starts_with("pp-workload: tls certificate sha256 "),
        "{head:?}"
    );
    assert!(head[2].starts_with("pp-workload: attester "), "{head:?}");
    assert!(
        head[3].starts_with("pp-workload: ready version="),
        "{head:?}"
    );
    assert!(
        head[3].ends_with(&format!(
            " health={health} tls={} oneshot={}",
            workload.tls_port, workload.oneshot_port
        )),
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

    // The one-shot port answers one frame: anything but a sealed request is unexpected (2).
    let mut oneshot = TcpStream::connect(("127.0.0.1", workload.oneshot_port)).unwrap();
    oneshot
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    oneshot.write_all(&[b'P', b'P', 1, 6, 0, 0, 0, 0]).unwrap();
    let mut answer = Vec::new();
    oneshot.read_to_end(&mut answer).unwrap();
    assert_eq!(answer, [b'P', b'P', 1, 5, 0, 0, 0, 2, 0, 2]);
    assert_eq!(
        lines.next().unwrap().unwrap().split(" ms=").next(),
        Some("pp-workload: oneshot error=Unexpected errors=1")
    );
}

/// A health client that drips its request a byte at a time is cut off at the 5 s deadline
/// (before, each byte restarted a 30 s read timeout, and under Hermit none applied), and the
/// next health check is answered.
#[test]
fn a_dripping_health_client_is_cut_off() {
    let workload = common::spawn(Stdio::null(), Stdio::null());
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], workload.health_port).into();
    common::wait_for(addr);
    let mut drip = TcpStream::connect(addr).unwrap();
    let started = std::time::Instant::now();
    let mut reader = drip.try_clone().unwrap();
    let watch = std::thread::spawn(move || {
        let _ = reader.read(&mut [0u8; 64]);
        started.elapsed()
    });
    for _ in 0..60 {
        if watch.is_finished() || drip.write_all(b"G").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let cut = watch.join().unwrap();
    assert!(
        cut >= Duration::from_secs(4) && cut < Duration::from_secs(8),
        "{cut:?}"
    );
    let ok = get(workload.health_port, b"GET /health HTTP/1.0\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.0 200 OK"), "{ok}");
}

#[test]
fn refuses_to_start_without_a_valid_weights_blob() {
    use std::process::Command;
    let run = |blob: Option<&[u8]>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pp-workload"));
        cmd.env_remove("PP_WEIGHTS_FILE").env_remove("PP_WEIGHTS");
        if let Some(bytes) = blob {
            let path = std::env::temp_dir().join(format!("pp-bad-blob-{}", std::process::id()));
            std::fs::write(&path, bytes).unwrap();
            cmd.env("PP_WEIGHTS_FILE", path);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(None).contains("no weights blob"));
    let mut blob = std::fs::read(common::tiny_weights()).unwrap();
    blob[0] ^= 1;
    assert!(run(Some(&blob)).contains("the weights blob is refused: Blob"));
}
