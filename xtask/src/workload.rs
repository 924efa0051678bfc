//! The workload built for the Hermit target and linked with the kernel library.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::pins::Pins;
use crate::{ring, toolchain, util};

pub const HERMIT_TARGET: &str = "x86_64-unknown-hermit";

/// Build `pp-workload` for Hermit against the kernel in `kernel_lib_dir`; returns the ELF's path.
pub fn build(root: &Path, pins: &Pins, kernel_lib_dir: &Path) -> Result<PathBuf> {
    ring::prepare(root, pins)?;
    let work = root.join("target/pp");
    let target_dir = work.join("workload-target");
    let started = std::time::Instant::now();
    let mut cmd = toolchain::cargo("build", &root.join("workload"), &target_dir, &[]);
    cmd.args([
        "--target",
        HERMIT_TARGET,
        "-Zbuild-std=std,panic_abort",
        "-Zbuild-std-features=compiler-builtins-mem",
    ])
    .env("PP_HERMIT_LIB_DIR", kernel_lib_dir);
    util::run(&mut cmd).context("building the workload for Hermit")?;
    let elf = work.join("workload/pp-workload");
    fs::create_dir_all(elf.parent().unwrap())?;
    fs::copy(
        toolchain::release_dir(&target_dir, HERMIT_TARGET).join("pp-workload"),
        &elf,
    )?;
    eprintln!(
        "workload: {} ({} bytes) in {:.1} s",
        elf.display(),
        fs::metadata(&elf)?.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(elf)
}
