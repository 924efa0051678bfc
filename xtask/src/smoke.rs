//! `cargo xtask smoke`: boot an image under TCG and talk to it from the host as a device would.
//!
//! - Any image: `GET /health` over TCP.
//! - A release image: its attester is the SEV-SNP one, which cannot attest under TCG — the device
//!   must be refused (`NotAttested`) before it sends anything but its nonce.
//! - A test image: a full attested session (evidence verified under the project's test root only)
//!   and sealed requests carrying a canary text, which must never appear on the serial console.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pp_attestation::test_signer::TEST_MEASUREMENT;
use pp_protocol::app::{AppRequest, AppResponse, Message};
use pp_protocol::frame::ErrorCode;

use crate::qemu::{BootConfig, Vm};

/// Serial lines that mean the boot failed.
pub const FATAL_LINES: &[&str] = &[
    "pp-loader: error",
    "panicked at",
    "PANIC",
    "pp-workload: fatal",
    "pp-workload: panic",
];
const READY_TIMEOUT: Duration = Duration::from_secs(240);
/// Never sent anywhere but inside sealed requests: finding it on the console is a leak.
const CANARY: &str = "canary-7f3a9c: the secret chat line that must never be logged";

/// Boot `config`, check health, then attestation as the image's variant implies.
pub fn run(config: &BootConfig, variant: &str, test_root: &Path) -> Result<()> {
    let mut vm = Vm::start(config, true)?;
    vm.wait_for("pp-workload: ready", FATAL_LINES, READY_TIMEOUT)?;
    let boot_to_ready = vm.started.elapsed();
    let health = http_get(config.host_health_port, "/health")?;
    expect_ok(&health, "{\"status\":\"ok\",\"transport\":\"tcp\"}")?;
    let refused = http_get(config.host_health_port, "/nope")?;
    if !refused.starts_with("HTTP/1.0 404") {
        bail!("an unknown path was not refused: {refused:?}");
    }
    // The test root instead of AMD's, and otherwise what a device requires of a release: the
    // TCB floor and the exact guest policy.
    let policy = pp_verifier::Policy::trusting_test_root(
        &std::fs::read(test_root.join("ark.der")).context("reading the test ARK")?,
        vec![TEST_MEASUREMENT],
        pp_verifier::verify::TcbFloor::AMD_BULLETINS,
    )
    .and_then(|p| {
        let rule =
            pp_verifier::verify::GuestPolicyRule::exact(pp_verifier::verify::RELEASE_GUEST_POLICY)?;
        Ok(p.with_guest_policy(rule))
    })
    .map_err(|e| anyhow::anyhow!("test policy: {e:?}"))?;
    match variant {
        "release" => {
            match connect(config.host_tls_port, &policy) {
                Err(pp_client::ClientError::Refused(ErrorCode::NotAttested)) => {}
                Err(e) => {
                    bail!("the release image failed otherwise than by refusing to attest: {e}")
                }
                Ok(_) => bail!("the release image attested under TCG: impossible without SEV-SNP"),
            }
            vm.wait_for("error=NotAttested", FATAL_LINES, Duration::from_secs(60))?;
        }
        "test" => attested_session(config, &policy)?,
        other => bail!("unknown image variant {other:?} in the manifest"),
    };
    vm.wait_for(
        "pp-workload: session=1 ",
        FATAL_LINES,
        Duration::from_secs(60),
    )?;
    let leaked = vm.lines().iter().any(|l| l.contains("canary-7f3a9c"));
    drop(vm);
    if leaked {
        bail!("request text reached the serial console");
    }
    println!(
        "smoke: PASS ({variant} image) — boot-to-ready {:.1} s under TCG",
        boot_to_ready.as_secs_f64()
    );
    Ok(())
}

fn connect(
    port: u16,
    policy: &pp_verifier::Policy,
) -> Result<pp_client::Session<TcpStream>, pp_client::ClientError> {
    let sock = TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| pp_client::ClientError::Io(e.kind()))?;
    let _ = sock.set_read_timeout(Some(Duration::from_secs(120)));
    pp_client::connect(sock, policy, pp_client::Limits::default())
}

fn attested_session(config: &BootConfig, policy: &pp_verifier::Policy) -> Result<()> {
    let t = Instant::now();
    let mut session = connect(config.host_tls_port, policy).context("attested session")?;
    let thread = |texts: &[&str]| {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Message {
                sender: if i % 2 == 0 { "Ana" } else { "Bo" }.to_string(),
                text: t.to_string(),
                time: None,
            })
            .collect::<Vec<_>>()
    };
    let requests = [
        AppRequest::Summarize {
            thread: thread(&[
                CANARY,
                "are we still on for dinner at six",
                "yes, I booked the table by the window",
                "great, see you there",
            ]),
            k: 2,
        },
        AppRequest::Suggest {
            thread: thread(&["can you send me the slides?", CANARY]),
            seed: 7,
            n: 1,
        },
    ];
    for request in &requests {
        let bytes = session
            .request(&request.to_vec())
            .context("sealed request")?;
        let response = AppResponse::parse_for(&bytes, request)
            .map_err(|e| anyhow::anyhow!("the enclave's answer does not parse: {e:?}"))?;
        match (&response, request) {
            (AppResponse::Summary { picks, .. }, AppRequest::Summarize { .. })
                if picks.len() == 2 => {}
            (AppResponse::Suggestions { replies }, AppRequest::Suggest { .. })
                if replies.len() == 1 => {}
            _ => bail!("unexpected answer: {response:?}"),
        }
    }
    let session_time = t.elapsed();
    println!(
        "smoke: attested session ({} checks passed), summarize and suggest (tiny models) in {} ms",
        session.verdict().checks().len(),
        session_time.as_millis()
    );
    let _ = session.close();
    Ok(())
}

/// The start of the serial line with which the kernel refuses its entropy source
/// (`kernel/entropy/mod.rs`).
pub const ENTROPY_REFUSAL: &str = "pp-entropy: fatal: ";

/// Boot an image on a CPU without RDSEED and RDRAND ([`crate::qemu::CPU_WITHOUT_RNG`]): the
/// kernel must stop at its entropy startup test. Passes when the refusal line names RDSEED's #UD,
/// QEMU then exits by itself, the workload never said it was ready, and the health port does not
/// answer.
pub fn expect_entropy_refusal(config: &BootConfig) -> Result<()> {
    let (line, status) = expect_kernel_refusal(
        config,
        &["pp-workload: ready", "Jumping into application"],
        KernelRefusal {
            prefix: ENTROPY_REFUSAL,
            expected: "RDSEED raised #UD",
            refused: "its entropy",
            cause: "RDSEED's #UD",
        },
    )?;
    println!("smoke: enclave refused to start without RDSEED/RDRAND ({status}): {line}");
    Ok(())
}

/// A refusal the kernel must print before it stops a boot.
struct KernelRefusal {
    /// The start of the refusal line.
    prefix: &'static str,
    /// What the line must say (the cause the test provoked).
    expected: &'static str,
    /// What was refused, for the errors ("its entropy").
    refused: &'static str,
    /// The provoked cause, for the errors ("RDSEED's #UD").
    cause: &'static str,
}

/// Boot `config` and expect `refusal`: its line, then QEMU exiting by itself, no line of `never`
/// at any time, and a health port that does not answer. Returns the line and QEMU's status.
fn expect_kernel_refusal(
    config: &BootConfig,
    never: &[&str],
    refusal: KernelRefusal,
) -> Result<(String, std::process::ExitStatus)> {
    let KernelRefusal {
        prefix,
        expected,
        refused,
        cause,
    } = refusal;
    let mut vm = Vm::start(config, false)?;
    let line = vm.wait_for(prefix, never, READY_TIMEOUT)?;
    if !line.contains(expected) {
        bail!("the kernel refused {refused} for another reason than {cause}: {line}");
    }
    let status = vm.wait_timeout(Duration::from_secs(60))?;
    if let Some(l) = vm
        .lines()
        .iter()
        .find(|l| never.iter().any(|n| l.contains(n)))
    {
        bail!("the enclave went on after refusing {refused}: {l}");
    }
    if http_get(config.host_health_port, "/health").is_ok() {
        bail!("the health port answered although the kernel refused to start");
    }
    Ok((line, status))
}

/// The line our ACPI module prints before it stops the boot on a malformed table.
pub const ACPI_REFUSAL: &str = "pp-acpi: fatal: ";

/// What [`expect_acpi_refusal`] injects: a second MADT (checksum and length right, so QEMU and
/// OVMF pass it on) whose first entry has length 0, below its own 2-byte header. Hermit 0.11
/// panicked on it (a second MADT); a walk that trusted the entry length would never move on.
pub fn malformed_madt() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"APIC");
    t.extend_from_slice(&46u32.to_le_bytes());
    t.push(1); // revision
    t.push(0); // checksum, below
    t.extend_from_slice(b"PPTEST");
    t.extend_from_slice(b"PPBADTBL");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"PPTS");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&0xFEE0_0000u32.to_le_bytes()); // local APIC address
    t.extend_from_slice(&1u32.to_le_bytes()); // flags: PC-AT compatible
    t.extend_from_slice(&[0x7f, 0]); // entry: type 0x7f, length 0
    t[9] = t.iter().fold(0u8, |a, b| a.wrapping_add(*b)).wrapping_neg();
    t
}

/// Boot an image with [`malformed_madt`] added to QEMU's ACPI tables: the kernel must stop with
/// its ACPI refusal naming the entry. Passes when that line appears, QEMU then exits by itself,
/// the workload never said it was ready, and the health port does not answer.
pub fn expect_acpi_refusal(config: &BootConfig, work: &Path) -> Result<()> {
    std::fs::create_dir_all(work)?;
    let table = work.join("malformed-madt.aml");
    std::fs::write(&table, malformed_madt())?;
    let mut config = config.clone();
    config.acpi_tables.push(table);
    let (line, status) = expect_kernel_refusal(
        &config,
        &["pp-workload: ready", "Jumping into application", "[PANIC]"],
        KernelRefusal {
            prefix: ACPI_REFUSAL,
            expected: "entry of type 127 at offset 44 has length 0",
            refused: "its ACPI tables",
            cause: "the injected entry",
        },
    )?;
    println!("smoke: enclave refused a malformed ACPI table ({status}): {line}");
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

/// Boot config for an image, on free loopback ports.
pub fn config_for(efi: &Path, firmware: &Path, append: &str) -> Result<BootConfig> {
    Ok(BootConfig {
        firmware: firmware.to_path_buf(),
        efi: efi.to_path_buf(),
        append: append.to_string(),
        cpus: 1,
        cpu: crate::qemu::CPU.to_string(),
        // The release image carries the real models (190 MB in the image, ~1 GiB once loaded).
        memory_mib: 2048,
        host_health_port: crate::qemu::free_port()?,
        host_tls_port: crate::qemu::free_port()?,
        host_oneshot_port: crate::qemu::free_port()?,
        acpi_tables: Vec::new(),
    })
}
