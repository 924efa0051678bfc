//! Copy a git checkout (tracked and untracked-but-not-ignored files) to another folder, so a
//! rebuild there sees exactly the source, nothing built (`cargo xtask verify`).

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Copy the checkout at `root` to `dest` (emptied first); returns the number of files copied.
pub fn copy(root: &Path, dest: &Path) -> Result<usize> {
    if dest.exists() {
        fs::remove_dir_all(dest).with_context(|| format!("removing {}", dest.display()))?;
    }
    let out = Command::new("git")
        .current_dir(root)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .context("running git ls-files")?;
    if !out.status.success() {
        bail!("{} is not a git checkout", root.display());
    }
    let list = String::from_utf8(out.stdout)?;
    let mut copied = 0;
    for rel in list.split('\0').filter(|s| !s.is_empty()) {
        let from = root.join(rel);
        if !from.is_file() {
            continue; // deleted but not yet committed
        }
        let to = dest.join(rel);
        fs::create_dir_all(to.parent().expect("a file has a parent"))?;
        fs::copy(&from, &to).with_context(|| format!("copying {rel}"))?;
        copied += 1;
    }
    Ok(copied)
}
