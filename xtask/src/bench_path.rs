//! `cargo xtask bench-path`: what relay + gateway add to a session, measured on loopback against
//! a direct connection, with the enclave in host mode (the workload as a Linux process: the
//! same program, without emulation in the way). Two gateway replicas share the Valkey
//! spent-token store, and the relay takes them in turn, as a deployment with replicas runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::host_enclave::HostEnclave;
use crate::stack::{Instance, Stack};
use crate::{pins, test_root, util, weights};

/// The stack the benches run on: one host-mode enclave, the outside services, two gateway
/// replicas on one spent-token store behind the relay. Dropping it stops everything.
pub struct HostStack {
    pub stack: Stack,
    /// The enclave's attested-TLS address (for direct sessions).
    pub address: String,
    /// The test ARK the device configuration trusts.
    pub ark: PathBuf,
    /// The logged release manifest.
    pub manifest: PathBuf,
    _enclave: HostEnclave,
}

/// Builds and starts a [`HostStack`] in `target/pp/<dir>`.
pub fn start_host_stack(
    root: &Path,
    pins: &pins::Pins,
    image: Option<PathBuf>,
    dir: &str,
) -> Result<HostStack> {
    let boot = crate::BootArgs {
        image,
        firmware: None,
        append: String::new(),
        test_image: true,
    };
    let manifest = crate::image_dir(root, pins, &boot)?.join("manifest.json");
    let tiny = weights::ensure(root, weights::Models::Tiny)?;
    let test_root = test_root::ensure(root)?;
    // The enclave belongs to the release whose manifest is logged (with --image, one built
    // from another checkout).
    let release_ref = reproducible::Manifest::read(&manifest)?.release_ref;
    crate::host_enclave::build_for(root, &release_ref)?;
    let enclave = crate::host_enclave::start(root, &tiny)?;
    let address = enclave.address.clone();
    let bin = crate::stack::build_binaries(root)?;
    let mut stack = Stack::start(
        &bin,
        &root.join("target/pp").join(dir),
        &manifest,
        &[Instance {
            id: "i-0".into(),
            address: address.clone(),
            oneshot_address: Some(enclave.oneshot_address.clone()),
        }],
        &test_root.join("ark.der"),
    )?;
    let issuer = stack.issuer_addr.clone();
    let second = stack.start_gateway_replica(&issuer)?;
    let first = stack.gateway_addr.clone();
    stack.stop("pp-relay");
    let relay = stack.start_relay_over(&[&first, &second])?;
    stack.use_relay(&relay)?;
    Ok(HostStack {
        stack,
        address,
        ark: test_root.join("ark.der"),
        manifest,
        _enclave: enclave,
    })
}

pub fn run(root: &Path, pins: &pins::Pins, sessions: usize, image: Option<PathBuf>) -> Result<()> {
    let host = start_host_stack(root, pins, image, "bench-path")?;
    eprintln!("bench-path: two gateways on one spent-token store, the relay taking them in turn");
    util::run(
        Command::new(util::host_cargo())
            .current_dir(root)
            .env("PP_BENCH_CONFIG", &host.stack.config)
            .env("PP_BENCH_DIRECT", &host.address)
            .env("PP_BENCH_ARK", &host.ark)
            .env("PP_BENCH_SESSIONS", sessions.to_string())
            // The test root: the one-shot arm verifies the publication evidence as `pp` does.
            .args([
                "bench",
                "--quiet",
                "-p",
                "pp-device",
                "--features",
                "test-root",
            ])
            .args(["--bench", "path"]),
    )
}
