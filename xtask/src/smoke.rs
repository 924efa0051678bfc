//! `cargo xtask smoke`: boot the image under TCG and talk to it from the host.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::qemu::{BootConfig, Vm};
use crate::tls_client;

/// Serial lines that mean the boot failed.
pub const FATAL_LINES: &[&str] = &[
    "pp-loader: error",
    "panicked at",
    "PANIC",
    "pp-workload: fatal",
];
const READY_TIMEOUT: Duration = Duration::from_secs(240);

/// Boot, wait for the ready line, do the health request over TCP and over TLS 1.3, shut down.
pub fn run(config: &BootConfig) -> Result<()> {
    let mut vm = Vm::start(config, true)?;
    let cert_line = vm.wait_for(
        "pp-workload: tls certificate sha256 ",
        FATAL_LINES,
        READY_TIMEOUT,
    )?;
    let cert = cert_line.rsplit(' ').next().unwrap_or_default().to_string();
    if cert.len() != 64 || !cert.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("the certificate line is malformed: {cert_line}");
    }
    vm.wait_for("pp-workload: ready", FATAL_LINES, READY_TIMEOUT)?;
    let ready = vm.started.elapsed();

    let t = Instant::now();
    let health = http_get(config.host_health_port, "/health")?;
    let health_time = t.elapsed();
    expect_ok(&health, "{\"status\":\"ok\",\"transport\":\"tcp\"}")?;

    let t = Instant::now();
    let tls = tls_client::request(config.host_tls_port, &cert, "GET /health HTTP/1.0\r\n\r\n")?;
    let tls_time = t.elapsed();
    expect_ok(&tls, "{\"status\":\"ok\",\"transport\":\"tls1.3\"}")?;

    let version = http_get(config.host_health_port, "/version")?;
    expect_ok(&version, "\"service\":\"pp-workload\"")?;
    let refused = http_get(config.host_health_port, "/nope")?;
    if !refused.starts_with("HTTP/1.0 404") {
        bail!("an unknown path was not refused: {refused:?}");
    }
    vm.wait_for(
        "pp-workload: refused=1",
        FATAL_LINES,
        Duration::from_secs(30),
    )?;
    drop(vm);
    println!(
        "smoke: PASS — boot-to-ready {:.1} s (TCG), health over TCP {} ms, TLS 1.3 handshake+request {} ms, certificate {cert}",
        ready.as_secs_f64(),
        health_time.as_millis(),
        tls_time.as_millis()
    );
    Ok(())
}

/// Boot an image the loader must refuse: pass when its error line contains `needle` and QEMU
/// then exits by itself (through `isa-debug-exit`).
pub fn expect_loader_error(config: &BootConfig, needle: &str) -> Result<()> {
    let mut vm = Vm::start(config, false)?;
    let line = vm.wait_for(
        "pp-loader: error",
        &["Jumping into application", "pp-workload: ready"],
        READY_TIMEOUT,
    )?;
    if !line.contains(needle) {
        bail!("the loader failed for another reason than expected ({needle:?}): {line}");
    }
    let status = vm.wait()?;
    println!("smoke: loader refused as expected ({status}): {line}");
    Ok(())
}

fn http_get(port: u16, path: &str) -> Result<String> {
    let mut sock = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to port {port}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(60)))?;
    sock.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
    let mut response = String::new();
    sock.read_to_string(&mut response)
        .context("reading the HTTP response")?;
    Ok(response)
}

fn expect_ok(response: &str, body_part: &str) -> Result<()> {
    if !response.starts_with("HTTP/1.0 200 OK") || !response.contains(body_part) {
        bail!("unexpected response (wanted 200 with {body_part}): {response:?}");
    }
    Ok(())
}

/// Boot config for an image folder, on free loopback ports.
pub fn config_for(efi: &Path, firmware: &Path, append: &str) -> Result<BootConfig> {
    Ok(BootConfig {
        firmware: firmware.to_path_buf(),
        efi: efi.to_path_buf(),
        append: append.to_string(),
        cpus: 1,
        memory_mib: 512,
        host_health_port: crate::qemu::free_port()?,
        host_tls_port: crate::qemu::free_port()?,
    })
}
