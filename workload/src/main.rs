//! pp-workload: the program inside the enclave image.
//!
//! This first version brings up the network, answers `GET /health` and `GET /version` over plain
//! TCP, and the same over TLS 1.3 (rustls + ring) with a key made at start. The serial log gets
//! only fixed status lines and counters, never request bytes.

mod health;
mod tls;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Longest a client may take to send its request.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

static SERVED: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);

struct Config {
    bind: String,
    health_port: u16,
    tls_port: u16,
}

impl Config {
    fn from_env() -> Result<Self, String> {
        let port = |name: &str, default: u16| match std::env::var(name) {
            Ok(v) => v
                .parse::<u16>()
                .map_err(|_| format!("{name} must be a port number")),
            Err(_) => Ok(default),
        };
        Ok(Self {
            bind: std::env::var("PP_BIND").unwrap_or_else(|_| "0.0.0.0".to_string()),
            health_port: port("PP_HEALTH_PORT", 8080)?,
            tls_port: port("PP_TLS_PORT", 8443)?,
        })
    }
}

fn main() {
    if let Err(message) = run() {
        eprintln!("pp-workload: fatal: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let config = Config::from_env()?;
    let identity = tls::fresh_identity()?;
    let listen = |port: u16| {
        TcpListener::bind((config.bind.as_str(), port))
            .map_err(|e| format!("cannot listen on port {port}: {e}"))
    };
    let plain = listen(config.health_port)?;
    let secure = listen(config.tls_port)?;
    println!(
        "pp-workload: tls certificate sha256 {}",
        identity.cert_sha256
    );
    println!(
        "pp-workload: ready version={} health={} tls={}",
        env!("CARGO_PKG_VERSION"),
        config.health_port,
        config.tls_port
    );
    let _ = std::io::stdout().flush();

    let tls_config = identity.config.clone();
    let tls_thread = std::thread::spawn(move || {
        accept_loop(&secure, |stream| {
            let conn = rustls::ServerConnection::new(tls_config.clone()).map_err(|_| ())?;
            let mut tls = rustls::StreamOwned::new(conn, stream);
            health::serve(&mut tls, "tls1.3").map(drop).map_err(drop)?;
            tls.conn.send_close_notify();
            let _ = tls.flush();
            Ok(())
        })
    });
    accept_loop(&plain, |mut stream| {
        health::serve(&mut stream, "tcp").map(drop).map_err(drop)
    });
    let _ = tls_thread.join();
    Ok(())
}

/// Serve connections one at a time, forever; a failed connection only bumps a counter.
fn accept_loop(listener: &TcpListener, mut handle: impl FnMut(TcpStream) -> Result<(), ()>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        // Hermit may not support socket timeouts; without them the client's close ends the read.
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let counter = if handle(stream).is_ok() {
            &SERVED
        } else {
            &REFUSED
        };
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let name = if std::ptr::eq(counter, &SERVED) {
            "served"
        } else {
            "refused"
        };
        println!("pp-workload: {name}={n}");
    }
}
