//! `cargo xtask image`: the bootable `pp.efi` (loader + embedded workload) and its manifest.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::pins::Pins;
use reproducible::release::{AMDSEV_FIRMWARE_FILE, MANIFEST_FILE};

use crate::workload::Variant;
use crate::{kernel, setup, toolchain, util, workload};

pub const UEFI_TARGET: &str = "x86_64-unknown-uefi";
/// The generic (non-SEV) firmware's name in a release folder.
pub use reproducible::release::GENERIC_FIRMWARE_FILE;
/// The kernel command line the release is measured with (QEMU `-append`).
pub const IMAGE_APPEND: &str = "";

/// The default output folder of a variant.
pub fn default_out(root: &Path, variant: Variant) -> PathBuf {
    match variant {
        Variant::Release => root.join("target/pp-image"),
        Variant::Test => root.join("target/pp-image-test"),
    }
}

/// The models an image carries: the real pinned ones in a release, tiny seeded random-weight ones
/// in a test image (so that boots under emulation stay short).
pub fn models_of(variant: Variant) -> crate::weights::Models {
    match variant {
        Variant::Release => crate::weights::Models::Real,
        Variant::Test => crate::weights::Models::Tiny,
    }
}

/// Build everything and write the release folder: `pp.efi`, both firmwares, `manifest.json`.
pub fn build(root: &Path, pins: &Pins, out: &Path, variant: Variant) -> Result<PathBuf> {
    setup::ensure(pins)?;
    // The input hashes are read once: the workload is built with their release_ref, and the
    // manifest records the same hashes.
    let inputs = reproducible::release::input_hashes(root)?;
    let release_ref = reproducible::release::release_ref(&inputs);
    let mut timings = Vec::new();
    let t = std::time::Instant::now();
    let lib = kernel::build(root, pins)?;
    timings.push(("kernel", t.elapsed()));
    let t = std::time::Instant::now();
    let elf = workload::build(root, pins, &lib, variant, &release_ref)?;
    timings.push(("workload", t.elapsed()));
    let t = std::time::Instant::now();
    let weights = crate::weights::ensure(root, models_of(variant))?;
    timings.push(("weights", t.elapsed()));
    let t = std::time::Instant::now();
    let efi = build_loader(
        root,
        &elf,
        &weights,
        &format!("loader-{}-target", variant.name()),
    )?;
    timings.push(("loader", t.elapsed()));
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let dest = out.join(reproducible::release::IMAGE_FILE);
    fs::copy(&efi, &dest)?;
    let t = std::time::Instant::now();
    let firmwares = crate::ovmf::ensure(root)?;
    fs::copy(&firmwares.amdsev, out.join(AMDSEV_FIRMWARE_FILE))?;
    fs::copy(&firmwares.generic, out.join(GENERIC_FIRMWARE_FILE))?;
    let measurement = crate::snp::measurement(&pins.snp, out, IMAGE_APPEND)?;
    timings.push(("firmware and launch digests", t.elapsed()));
    let files = reproducible::release::ImageFiles {
        efi: &dest,
        kernel_lib: &lib.join("libhermit.a"),
        workload_elf: &elf,
        weights: &weights,
        generic_firmware: &out.join(GENERIC_FIRMWARE_FILE),
    };
    let manifest = crate::manifest::for_image(inputs, pins, files, measurement, variant)?;
    let path = out.join(MANIFEST_FILE);
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
pub fn build_loader(
    root: &Path,
    elf: &Path,
    weights: &Path,
    target_dir_name: &str,
) -> Result<PathBuf> {
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
    .env("PP_WORKLOAD_ELF", elf)
    .env("PP_WEIGHTS_BLOB", weights);
    util::run(&mut cmd).context("building the UEFI loader")?;
    let out = toolchain::release_dir(&target_dir, UEFI_TARGET);
    crate::layout::check_dep_info(root, &out.join("pp-loader.d"))?;
    Ok(out.join("pp-loader.efi"))
}
