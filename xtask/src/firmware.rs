//! Which firmware a boot uses.
//!
//! Boots without SEV (TCG here) use the generic `OvmfPkgX64` build; the AmdSev build refuses
//! `-kernel` when no SEV hashes table was filled in (by design), so it serves SNP boots and the
//! launch measurement only. Both come from the pinned edk2 source (`cargo xtask ovmf`).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The pinned generic firmware, built (or verified) by the ovmf recipe.
pub fn pinned(root: &Path) -> Result<PathBuf> {
    Ok(crate::ovmf::ensure(root)?.generic)
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
