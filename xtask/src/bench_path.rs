//! `cargo xtask bench-path`: what relay + gateway add to a session, measured on loopback against
//! a direct connection, with the enclave in host mode (the workload as a Linux process: the
//! same program, without emulation in the way). Two gateway replicas share the Valkey
//! spent-token store, and the relay takes them in turn, as a deployment with replicas runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::stack::{Instance, Stack};
use crate::{pins, test_root, util, weights};

pub fn run(root: &Path, pins: &pins::Pins, sessions: usize, image: Option<PathBuf>) -> Result<()> {
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
    let cargo = crate::util::host_cargo();
    let bin = crate::stack::build_binaries(root)?;
    let mut stack = Stack::start(
        &bin,
        &root.join("target/pp/bench-path"),
        &manifest,
        &[Instance {
            id: "i-0".into(),
            address: address.clone(),
        }],
        &test_root.join("ark.der"),
    )?;
    let issuer = stack.issuer_addr.clone();
    let second = stack.start_gateway_replica(&issuer)?;
    let first = stack.gateway_addr.clone();
    stack.stop("pp-relay");
    let relay = stack.start_relay_over(&[&first, &second])?;
    stack.use_relay(&relay)?;
    eprintln!("bench-path: two gateways on one spent-token store, the relay taking them in turn");
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
