//! The generic OVMF firmware for boots without SEV, from the pinned Debian package.
//!
//! The AmdSev OVMF build refuses `-kernel` when no SEV hashes table was filled in (by design), so
//! boots under TCG use the generic `OvmfPkgX64` firmware until `ovmf/` builds both from one source.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::pins::Pins;
use crate::setup;
use crate::util::{run, sha256_file};

/// The pinned firmware, unpacked under `target/pp/firmware/` and checked against its pin.
pub fn pinned(root: &Path, pins: &Pins) -> Result<PathBuf> {
    let dir = root.join("target/pp/firmware");
    let name = Path::new(&pins.firmware.path)
        .file_name()
        .context("firmware path has no file name")?;
    let fd = dir.join(name);
    if fd.is_file() && sha256_file(&fd)? == pins.firmware.sha256 {
        return Ok(fd);
    }
    let deb = setup::download_deb(pins, &pins.firmware.package, &dir.join("deb"))?;
    let unpacked = dir.join("unpacked");
    if unpacked.exists() {
        fs::remove_dir_all(&unpacked)?;
    }
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    fs::copy(unpacked.join(&pins.firmware.path), &fd)
        .with_context(|| format!("{} holds no {}", deb.display(), pins.firmware.path))?;
    let got = sha256_file(&fd)?;
    if got != pins.firmware.sha256 {
        fs::remove_file(&fd)?;
        bail!(
            "firmware {} has sha256 {got}, pins.toml expects {}",
            pins.firmware.path,
            pins.firmware.sha256
        );
    }
    Ok(fd)
}

/// Check that a user-given firmware file exists and looks like an OVMF flash image.
pub fn check_user_firmware(path: &Path) -> Result<()> {
    let bytes = fs::read(path).with_context(|| {
        format!(
            "cannot read firmware {}: give the path of an OVMF .fd file, or omit --firmware",
            path.display()
        )
    })?;
    // A UEFI flash image starts with a firmware volume whose header has "_FVH" at offset 0x28.
    if bytes.len() < 0x30 || &bytes[0x28..0x2c] != b"_FVH" || bytes.len() % 4096 != 0 {
        bail!(
            "{} is not an OVMF firmware image (no firmware volume header)",
            path.display()
        );
    }
    Ok(())
}
