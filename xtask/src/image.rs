//! `cargo xtask image`: the bootable `pp.efi` (loader + embedded workload) and its manifest.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::pins::Pins;
use crate::{firmware, kernel, setup, toolchain, util, workload};

pub const UEFI_TARGET: &str = "x86_64-unknown-uefi";

/// Build everything and write `out/pp.efi` and `out/manifest.json`.
pub fn build(root: &Path, pins: &Pins, out: &Path) -> Result<PathBuf> {
    setup::ensure(pins)?;
    let mut timings = Vec::new();
    let t = std::time::Instant::now();
    let lib = kernel::build(root, pins)?;
    timings.push(("kernel", t.elapsed()));
    let t = std::time::Instant::now();
    let elf = workload::build(root, pins, &lib)?;
    timings.push(("workload", t.elapsed()));
    let t = std::time::Instant::now();
    let efi = build_loader(root, &elf, "loader-target")?;
    timings.push(("loader", t.elapsed()));
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let dest = out.join("pp.efi");
    fs::copy(&efi, &dest)?;
    let firmware = firmware::pinned(root, pins)?;
    let manifest =
        crate::manifest::for_image(root, pins, &dest, &lib.join("libhermit.a"), &elf, &firmware)?;
    let path = out.join("manifest.json");
    fs::write(&path, manifest.to_json()?)?;
    for (what, d) in timings {
        eprintln!("image: {what} step {:.1} s", d.as_secs_f64());
    }
    eprintln!(
        "image: {} ({} bytes, sha256 {})",
        dest.display(),
        fs::metadata(&dest)?.len(),
        manifest.image.sha256
    );
    Ok(dest)
}

/// Build the loader with `elf` embedded, in `target/pp/<target_dir_name>`; returns `pp-loader.efi`.
pub fn build_loader(root: &Path, elf: &Path, target_dir_name: &str) -> Result<PathBuf> {
    let work = root.join("target/pp");
    let target_dir = work.join(target_dir_name);
    // No CodeView debug directory: lld-link would otherwise embed a PDB name and an id that
    // change with the build directory.
    let mut cmd = toolchain::cargo(
        "build",
        &root.join("image-builder"),
        &target_dir,
        &["-Clink-arg=/DEBUG:NONE"],
    );
    cmd.args([
        "--target",
        UEFI_TARGET,
        "-Zbuild-std=core,alloc",
        "-Zbuild-std-features=compiler-builtins-mem",
    ])
    .env("PP_WORKLOAD_ELF", elf);
    util::run(&mut cmd).context("building the UEFI loader")?;
    Ok(toolchain::release_dir(&target_dir, UEFI_TARGET).join("pp-loader.efi"))
}
