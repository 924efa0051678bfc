//! The end-to-end test's attacks on the one-shot path (RFC 9458 Oblivious HTTP through the
//! relay): requests the relay and the gateway must refuse before anything is forwarded, and an
//! operator replaying a sealed request it saw to the enclave that opened it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pp_protocol::frame::{ErrorCode, Frame, FrameRepr};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

use crate::stack::{RELAY_NAME, Stack};

/// What a recording proxy kept: per connection, the upstream it went to and the bytes sent.
type Recorded = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Raw requests to the Oblivious Relay Resource that must be refused with the status RFC 9458
/// gives, by the relay itself or by the gateway behind it (which answers a request it cannot
/// decapsulate with a bare 400).
pub fn relay_refusals(stack: &Stack) -> Result<()> {
    let key_config = std::fs::read(stack.dir.join("ohttp/ohttp-keys"))?;
    // An encapsulated request that is well formed but names a key id the gateway does not have.
    let mut other_key = key_config.clone();
    other_key[0] = other_key[0].wrapping_add(1);
    let unknown_key = pp_client::oneshot::encapsulate(&other_key, b"\x00")
        .map_err(|e| anyhow::anyhow!("encapsulating to another key id: {e}"))?;
    let unknown_key = unknown_key.bytes().to_vec();
    // One to the gateway's own key, cut short.
    let honest = pp_client::oneshot::encapsulate(&key_config, b"\x00")
        .map_err(|e| anyhow::anyhow!("encapsulating to the gateway's key: {e}"))?;
    let truncated = &honest.bytes()[..honest.bytes().len() - 8];
    let cases: [(&str, &str, &str, &[u8], u16); 5] = [
        ("a GET", "GET", "message/ohttp-req", b"", 405),
        (
            "the wrong media type",
            "POST",
            "application/json",
            b"{}",
            415,
        ),
        (
            "an oversized body",
            "POST",
            "message/ohttp-req",
            &[0u8; 2 << 20],
            413,
        ),
        (
            "a truncated encapsulation",
            "POST",
            "message/ohttp-req",
            truncated,
            400,
        ),
        (
            "an unknown key id",
            "POST",
            "message/ohttp-req",
            &unknown_key,
            400,
        ),
    ];
    for (what, method, media_type, body, want) in cases {
        let (status, reply) = relay_request(stack, method, media_type, body)?;
        if status != want {
            bail!("the OHTTP relay given {what}: expected HTTP {want}, got {status}: {reply}");
        }
        // A decapsulation failure says nothing more (RFC 9458 §5.2); an unknown key id may be
        // named with the problem type RFC 9458 registers for it (ohttp-key), so a client can refresh.
        let detail_allowed = what == "an unknown key id" && reply.contains("#ohttp-key");
        if want == 400 && !reply.trim().is_empty() && !detail_allowed {
            bail!("the gateway's 400 for {what} carries detail: {reply}");
        }
        println!("e2e: the OHTTP relay given {what}: refused (HTTP {status})");
    }
    Ok(())
}

/// One HTTP/1.1 request to the stack's OHTTP relay over TLS; returns the status and the body
/// (as text, for messages).
fn relay_request(
    stack: &Stack,
    method: &str,
    media_type: &str,
    body: &[u8],
) -> Result<(u16, String)> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(stack.dir.join("certs/ca.pem"))? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(&stack.ohttp_relay_addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let conn = rustls::ClientConnection::new(
        Arc::new(config),
        ServerName::try_from(RELAY_NAME)?.to_owned(),
    )?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let head = format!(
        "{method} / HTTP/1.1\r\nhost: {RELAY_NAME}\r\ncontent-type: {media_type}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes())?;
    // A body announced as over the relay's bound is refused from its length alone: not sent.
    if body.len() <= 1 << 20 {
        tls.write_all(body)?;
    }
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP status in the relay's answer: {text:?}"))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_string()))
}

/// The operator records the sealed request the gateway forwards to an instance's one-shot port
/// and sends it to that instance again: the enclave refuses it as replayed (code 9) and its
/// handler does not run again.
pub fn replay(
    stack: &mut Stack,
    summarize: &[&str],
    restart: impl Fn(&mut Stack) -> Result<()>,
) -> Result<()> {
    let published = stack.instances.clone();
    let recorded: Recorded = Arc::default();
    let mut recording = published.clone();
    for instance in &mut recording {
        let upstream = instance
            .oneshot_address
            .clone()
            .context("an instance has no one-shot address")?;
        instance.oneshot_address = Some(recording_proxy(&upstream, recorded.clone())?);
    }
    stack.write_instances(&recording)?;
    restart(stack)?;
    let (ok, out, err) = stack.pp(summarize)?;
    anyhow::ensure!(
        ok,
        "a one-shot request through the recording proxy failed:\n{err}{out}"
    );
    // The gateway closes its side of the one-shot connection after it read the answer.
    for _ in 0..100 {
        if !recorded
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .is_empty()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (upstream, frame) = recorded
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .first()
        .cloned()
        .context("the gateway forwarded no sealed request")?;
    let code = send_frame(&upstream, &frame)?;
    anyhow::ensure!(
        code == Some(ErrorCode::Replayed),
        "a replayed sealed request: expected the enclave's error 9 (replayed), got {code:?}"
    );
    println!(
        "e2e: a sealed request replayed to its enclave by the operator: refused (error 9, replayed)"
    );
    stack.write_instances(&published)?;
    restart(stack)
}

/// Sends `frame` to `address` and returns the error code of the answer frame (None for an
/// answer that is not an error).
fn send_frame(address: &str, frame: &[u8]) -> Result<Option<ErrorCode>> {
    let mut s = TcpStream::connect(address)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(frame)?;
    let answer = pp_protocol::io::read_frame(&mut s, |_| Some(1 << 20))
        .map_err(|e| anyhow::anyhow!("reading the enclave's answer: {e:?}"))?
        .context("the enclave closed without an answer")?;
    let answer = Frame::new_checked(&answer[..]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(match FrameRepr::parse(&answer) {
        Ok(FrameRepr::Error { code }) => Some(code),
        _ => None,
    })
}

/// A TCP proxy to `upstream` that keeps what each client sent (`(upstream, bytes)`).
fn recording_proxy(upstream: &str, recorded: Recorded) -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    let upstream = upstream.to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (Ok(mut c_in), Ok(mut s_out)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            let (recorded, upstream) = (recorded.clone(), upstream.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut buf = [0u8; 16384];
                while let Ok(n) = c_in.read(&mut buf) {
                    if n == 0 || s_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                if let Ok(mut r) = recorded.lock() {
                    r.push((upstream, seen));
                }
            });
            let (mut s_in, mut c_out) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_in, &mut c_out);
                let _ = c_out.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    Ok(addr)
}
