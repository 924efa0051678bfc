//! `cargo xtask repro-check` / `verify`: rebuild from a copy of the checkout at another path and
//! compare every hash and launch digest with a manifest.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use reproducible::verify;

use crate::pins::Pins;

/// Verify `manifest` against a rebuild of the checkout at `root` in a fresh folder.
pub fn verify_manifest(root: &Path, manifest: &Path) -> Result<()> {
    let expected = reproducible::cli::load_manifest(manifest)?;
    let env = [(crate::ovmf::CACHE_ENV, crate::ovmf::cache_dir(root))];
    let rows = verify::rebuild_and_compare(&expected, root, &env)?;
    if !verify::print_table(&rows) {
        bail!("the rebuild does not match {}", manifest.display());
    }
    println!(
        "verify: the rebuild at another path matches {}",
        manifest.display()
    );
    Ok(())
}

/// Build here, then verify the fresh manifest by a rebuild elsewhere.
pub fn check(root: &Path, pins: &Pins) -> Result<PathBuf> {
    let out = crate::image::default_out(root, crate::workload::Variant::Release);
    crate::image::build(root, pins, &out, crate::workload::Variant::Release)?;
    let manifest = out.join("manifest.json");
    verify_manifest(root, &manifest)?;
    Ok(manifest)
}
