//! Test harness shared by the services' integration tests: temp folders, development
//! certificates, a TLS client, a Valkey server on a unix socket, an echo "enclave", and the
//! service binaries as processes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A fresh folder per test (tests run in parallel, binaries too).
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pp-services-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Development certificates for `names` in `dir`.
pub fn certs(dir: &Path, names: &[&str]) {
    pp_services::tls::write_dev_certs(dir, names).unwrap();
}

/// A TLS client trusting `dir/ca.pem`.
pub fn connector(dir: &Path) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A TCP connection to `addr` from the local address `from` (any 127.0.0.0/8 address works on
/// loopback, so tests can play several clients).
pub async fn connect_from(from: [u8; 4], addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(addr).await
}

/// TLS to `name` at `addr`, from `from`.
pub async fn tls_from(
    from: [u8; 4],
    addr: SocketAddr,
    certs: &Path,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = connect_from(from, addr).await?;
    let name = ServerName::try_from(name.to_string()).unwrap();
    connector(certs).connect(name, tcp).await
}

/// Sends `CONNECT target` (with extra header lines) and returns the status line and the head.
pub async fn connect_request<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    target: &str,
    headers: &str,
) -> std::io::Result<String> {
    let head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{headers}\r\n");
    stream.write_all(head.as_bytes()).await?;
    read_head(stream).await
}

/// Reads a response head (up to the blank line) and, for a non-2xx answer with a body, the body.
pub async fn read_head<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let mut text = String::from_utf8_lossy(&head).into_owned();
    let length = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    if !text.starts_with("HTTP/1.1 200") && length > 0 {
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await?;
        text.push_str(&String::from_utf8_lossy(&body));
    }
    Ok(text)
}

/// Waits until the peer closes `stream` (read returns 0 or an error), at most `limit`; returns how
/// long that took, or `None` if it stayed open.
pub async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    closed.ok().map(|()| start.elapsed())
}

/// A TCP echo server standing in for an enclave; returns its address.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A child process killed on drop.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a service binary and waits for its `listening on ADDR` line.
pub fn spawn_service(bin: &str, args: &[&str], log: &Path) -> (Process, SocketAddr) {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let process = Process(child);
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    return (process, addr.parse().unwrap());
                }
            }
            _ => panic!(
                "{bin} did not start: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
    }
}

/// A Valkey (or Redis) server for a test, on a unix socket in its own folder, with append-only
/// persistence synced on every write. Killed on drop; [`Valkey::restart`] brings it back on the
/// same data.
pub struct Valkey {
    pub dir: PathBuf,
    process: Option<Process>,
}

/// The server binary: `PP_VALKEY_SERVER`, else `valkey-server`, else `redis-server`.
pub fn valkey_binary() -> String {
    if let Ok(bin) = std::env::var("PP_VALKEY_SERVER") {
        return bin;
    }
    for bin in ["valkey-server", "redis-server"] {
        if Command::new(bin).arg("--version").output().is_ok() {
            return bin.to_string();
        }
    }
    panic!(
        "neither valkey-server nor redis-server is installed: run `cargo xtask setup` (it installs \
         the pinned valkey-server) or set PP_VALKEY_SERVER to a server binary"
    );
}

impl Valkey {
    pub fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mut v = Self {
            dir: dir.to_path_buf(),
            process: None,
        };
        v.restart();
        v
    }

    /// The `redis+unix://` URL of the socket.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.dir.join("valkey.sock").display())
    }

    /// Stops the server (SIGKILL: nothing gets a chance to flush).
    pub fn kill(&mut self) {
        self.process = None;
    }

    /// (Re)starts the server on the same folder and waits until it answers.
    pub fn restart(&mut self) {
        self.process = None;
        let socket = self.dir.join("valkey.sock");
        let _ = std::fs::remove_file(&socket);
        let child = Command::new(valkey_binary())
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--dir"])
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
            ])
            .stdout(std::fs::File::create(self.dir.join("valkey.log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start the Valkey server");
        self.process = Some(Process(child));
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the Valkey server did not come up: {}",
            std::fs::read_to_string(self.dir.join("valkey.log")).unwrap_or_default()
        );
    }
}
