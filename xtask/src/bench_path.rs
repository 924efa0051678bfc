//! `cargo xtask bench-path`: what relay + gateway add to a session, measured on loopback against
//! a direct connection, with the enclave in host mode (the workload as a Linux process: the
//! same program, without emulation in the way).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::stack::{Instance, Stack};
use crate::{pins, test_root, util, weights};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(root: &Path, pins: &pins::Pins, sessions: usize) -> Result<()> {
    let boot = crate::BootArgs {
        image: None,
        firmware: None,
        append: String::new(),
        test_image: true,
    };
    let manifest = crate::image_dir(root, pins, &boot)?.join("manifest.json");
    let tiny = weights::ensure(root, weights::Models::Tiny)?;
    let test_root = test_root::ensure(root)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    util::run(
        Command::new(&cargo)
            .current_dir(root)
            .env("PP_TEST_ROOT_DIR", &test_root)
            .env("PP_RELEASE_REF", crate::manifest::release_ref(root)?)
            .args(["build", "--quiet", "--release", "-p", "pp-workload"])
            .args(["--features", "test-attester"]),
    )
    .context("building the host-mode workload failed")?;
    let tls_port = crate::qemu::free_port()?;
    let mut child = Command::new(root.join("target/release/pp-workload"))
        .env("PP_BIND", "127.0.0.1")
        .env("PP_HEALTH_PORT", crate::qemu::free_port()?.to_string())
        .env("PP_TLS_PORT", tls_port.to_string())
        .env("PP_WEIGHTS_FILE", &tiny)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the workload")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let _enclave = Killed(child);
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("pp-workload: ready") => break,
            Some(Ok(_)) => {}
            _ => bail!("the host-mode enclave did not start"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let address = format!("127.0.0.1:{tls_port}");
    let bin = crate::stack::build_binaries(root)?;
    let stack = Stack::start(
        &bin,
        &root.join("target/pp/bench-path"),
        &manifest,
        &[Instance {
            id: "i-0".into(),
            address: address.clone(),
        }],
        &test_root.join("ark.der"),
    )?;
    util::run(
        Command::new(&cargo)
            .current_dir(root)
            .env("PP_BENCH_CONFIG", &stack.config)
            .env("PP_BENCH_DIRECT", &address)
            .env("PP_BENCH_ARK", test_root.join("ark.der"))
            .env("PP_BENCH_SESSIONS", sessions.to_string())
            .args(["bench", "--quiet", "-p", "pp-device", "--bench", "path"]),
    )
}
