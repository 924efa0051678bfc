//! The workload built for the Hermit target and linked with the kernel library.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::pins::Pins;
use crate::{ring, toolchain, util};

pub const HERMIT_TARGET: &str = "x86_64-unknown-hermit";

/// Which enclave is built: the release, or a test image that carries the test attester.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Release,
    /// Signs attestation reports with generated test material (never trusted by default).
    Test,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Test => "test",
        }
    }
}

/// Build `pp-workload` for Hermit against the kernel in `kernel_lib_dir`; returns the ELF's path.
/// `release_ref` (hex) names the release in the evidence.
pub fn build(
    root: &Path,
    pins: &Pins,
    kernel_lib_dir: &Path,
    variant: Variant,
    release_ref: &str,
) -> Result<PathBuf> {
    let ring_patch = ring::hermit_cargo_args(root, pins)?;
    let work = root.join("target/pp");
    // One target folder for both variants: their dependencies (Burn above all) are built once.
    // The bytes do not depend on it; `verify` rebuilds from scratch elsewhere and compares.
    let target_dir = work.join("workload-release-target");
    let started = std::time::Instant::now();
    let mut cmd = toolchain::cargo("build", root, &target_dir, &[]);
    cmd.args(&ring_patch)
        .args(["--package", "pp-workload", "--target", HERMIT_TARGET])
        .args([
            "-Zbuild-std=std,panic_abort",
            "-Zbuild-std-features=compiler-builtins-mem",
        ])
        .env("PP_HERMIT_LIB_DIR", kernel_lib_dir)
        .env("PP_RELEASE_REF", release_ref);
    if variant == Variant::Test {
        cmd.args(["--features", "test-attester"])
            .env("PP_TEST_ROOT_DIR", crate::test_root::ensure(root)?);
    }
    util::run(&mut cmd).context("building the workload for Hermit")?;
    crate::layout::check_dep_info(
        root,
        &toolchain::release_dir(&target_dir, HERMIT_TARGET).join("pp-workload.d"),
    )?;
    let elf = work.join(format!("workload/{}/pp-workload", variant.name()));
    fs::create_dir_all(elf.parent().unwrap())?;
    fs::copy(
        toolchain::release_dir(&target_dir, HERMIT_TARGET).join("pp-workload"),
        &elf,
    )?;
    eprintln!(
        "workload ({}): {} ({} bytes) in {:.1} s",
        variant.name(),
        elf.display(),
        fs::metadata(&elf)?.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(elf)
}
