//! `cargo xtask repro-check` / `verify`: rebuild from a copy of the checkout at another path and
//! compare every hash and launch digest with a manifest.
//!
//! The rebuild is the task runner's part (it runs `cargo xtask image` in the copy); recomputing
//! hashes and digests from the rebuilt folder and the side-by-side table are `reproducible`'s
//! (`reproducible::verify`), which a verifier can also run on a folder without the task runner.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use reproducible::Manifest;
use reproducible::release::MANIFEST_FILE;
use reproducible::verify::{self, Row};

use crate::pins::Pins;

/// Verify `manifest` against a rebuild of the checkout at `root` in a fresh folder.
pub fn verify_manifest(root: &Path, manifest: &Path) -> Result<()> {
    let expected = Manifest::read(manifest)?;
    let env = [(crate::ovmf::CACHE_ENV, crate::ovmf::cache_dir(root))];
    let rows = rebuild_and_compare(&expected, root, &env)?;
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
    let manifest = out.join(MANIFEST_FILE);
    verify_manifest(root, &manifest)?;
    Ok(manifest)
}

/// Copy the checkout at `root` to a fresh folder at another path, run the copy's own task runner
/// there (`cargo xtask image`, with `env` added, e.g. the firmware cache), and compare the
/// rebuilt folder with `expected`. The copy is removed afterwards.
fn rebuild_and_compare(
    expected: &Manifest,
    root: &Path,
    env: &[(&str, PathBuf)],
) -> Result<Vec<Row>> {
    let copy = std::env::temp_dir().join(format!(
        "pp-verify-rebuild-at-another-path-{}",
        std::process::id()
    ));
    crate::checkout::copy(root, &copy)?;
    let out = copy.join("target/pp-verify");
    let result = (|| {
        let cargo = crate::util::host_cargo();
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&copy).env_remove("CARGO_TARGET_DIR").args([
            "run",
            "--quiet",
            "--manifest-path",
            "xtask/Cargo.toml",
            "--",
        ]);
        cmd.arg("image").arg("--out").arg(&out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let status = cmd
            .status()
            .context("running the task runner in the copy")?;
        anyhow::ensure!(status.success(), "the rebuild in {} failed", copy.display());
        let rebuilt = Manifest::read(&out.join(MANIFEST_FILE))?;
        verify::compare_dir(expected, &out, &rebuilt)
    })();
    let _ = std::fs::remove_dir_all(&copy);
    result
}
