//! `cargo xtask repro-check`: the same source at another path must give the same `pp.efi`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::pins::Pins;
use crate::util::{run, stdout_of};

/// Build the image here and from a copy of the checkout at a longer, different path; compare.
/// Returns the common sha256.
pub fn check(root: &Path, pins: &Pins) -> Result<String> {
    let here_dir = root.join("target/pp-image");
    crate::image::build(root, pins, &here_dir)?;
    let copy = std::env::temp_dir().join(format!(
        "pp-repro-check-a-longer-path-{}",
        std::process::id()
    ));
    copy_checkout(root, &copy)?;
    let there_dir = copy.join("target/pp-image");
    let result = (|| {
        run(
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(&copy)
                .env_remove("CARGO_TARGET_DIR")
                .args(["run", "--quiet", "--package", "xtask", "--", "image"]),
        )
        .context("building the image in the copy")?;
        compare(
            &here_dir.join("manifest.json"),
            &there_dir.join("manifest.json"),
            root,
            &copy,
        )
    })();
    let _ = fs::remove_dir_all(&copy);
    result
}

fn compare(here: &Path, there: &Path, root: &Path, copy: &Path) -> Result<String> {
    let a = reproducible::Manifest::from_json(&fs::read_to_string(here)?)?;
    let b = reproducible::Manifest::from_json(&fs::read_to_string(there)?)?;
    println!(
        "repro-check: {:<16} {:<64}  {}",
        "artifact",
        root.display(),
        copy.display()
    );
    let mut same = true;
    let mut row = |name: &str, x: &str, y: &str| {
        let mark = if x == y { "same" } else { "DIFFERENT" };
        same &= x == y;
        println!("repro-check: {name:<16} {x:<64}  {y}  {mark}");
    };
    row("pp.efi", &a.image.sha256, &b.image.sha256);
    for (role, art) in &a.components {
        row(
            role,
            &art.sha256,
            b.components
                .get(role)
                .map(|x| x.sha256.as_str())
                .unwrap_or("missing"),
        );
    }
    if !same {
        bail!("the image is not reproducible across checkout paths");
    }
    if a != b {
        bail!("the manifests differ although the artifacts match");
    }
    Ok(a.image.sha256)
}

/// Copy tracked and untracked-but-not-ignored files (so uncommitted work is checked too).
fn copy_checkout(root: &Path, dest: &Path) -> Result<()> {
    if dest.exists() {
        fs::remove_dir_all(dest)?;
    }
    let list = stdout_of(Command::new("git").current_dir(root).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]))
    .context("listing the checkout's files with git")?;
    for rel in list.split('\0').filter(|s| !s.is_empty()) {
        let from = root.join(rel);
        if !from.is_file() {
            continue; // deleted but not yet committed
        }
        let to: PathBuf = dest.join(rel);
        fs::create_dir_all(to.parent().unwrap())?;
        fs::copy(&from, &to).with_context(|| format!("copying {rel}"))?;
    }
    Ok(())
}
