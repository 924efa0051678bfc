//! Starting the workload binary (a Linux process) on free loopback ports, for tests and benches.
// Each test or bench target compiles its own copy and uses only part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

/// A running workload; killed when dropped, even when an assertion fails first.
pub struct Workload {
    pub child: Child,
    pub health_port: u16,
    pub tls_port: u16,
    pub oneshot_port: u16,
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tiny-model weights blob (seeded random weights, the real formats), written once per test
/// binary.
pub fn tiny_weights() -> &'static std::path::Path {
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("pp-workload-tiny-{}.bin", std::process::id()));
        let blob = pp_inference::bundle::tiny_blob(pp_inference::bundle::TINY_SEED).unwrap();
        std::fs::write(&path, blob).unwrap();
        path
    })
}

/// Start `pp-workload` on 127.0.0.1 with the tiny models and its output sent where the caller
/// says.
pub fn spawn(stdout: Stdio, stderr: Stdio) -> Workload {
    spawn_with_weights(tiny_weights(), stdout, stderr)
}

/// [`spawn`] with another weights blob.
pub fn spawn_with_weights(weights: &std::path::Path, stdout: Stdio, stderr: Stdio) -> Workload {
    let (health_port, tls_port, oneshot_port) = (free_port(), free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_pp-workload"))
        .env("PP_BIND", "127.0.0.1")
        .env("PP_HEALTH_PORT", health_port.to_string())
        .env("PP_TLS_PORT", tls_port.to_string())
        .env("PP_ONESHOT_PORT", oneshot_port.to_string())
        .env("PP_WEIGHTS_FILE", weights)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    Workload {
        child,
        health_port,
        tls_port,
        oneshot_port,
    }
}

/// Wait (up to 30 s) until `addr` accepts connections.
pub fn wait_for(addr: std::net::SocketAddr) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(std::time::Instant::now() < until, "{addr} never listened");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
