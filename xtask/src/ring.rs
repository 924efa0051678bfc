//! ring on Hermit: a checksum-pinned copy of ring with one build-script edit, patched in only for
//! the Hermit build of the workload.
//!
//! The workspace itself names no patch, so `cargo build` and `cargo test` work in a fresh clone with
//! the registry's ring. The Hermit build adds `[patch.crates-io] ring` on its command line and
//! resolves against a copy of `Cargo.lock` in which ring is a path package (no source, no
//! checksum), still with `--locked`: every other package is exactly the committed lock's.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use pp_kernel_build::edit::{self, Files, SourceEdit};

use crate::crates;
use crate::pins::Pins;

/// ring 0.17's build script compiles its assembly only for the operating systems it lists as
/// having the Linux ABI; Hermit has that ABI on x86_64 (System V, ELF) but is not listed, so the
/// link misses every assembly routine. One list entry fixes it.
pub const RING_EDITS: &[SourceEdit] = &[
    SourceEdit {
        files: Files::One("build.rs"),
        find: "    \"haiku\",\n",
        replace: "    \"haiku\",\n    \"hermit\",\n",
        count: 1,
        reason: "ring's build script omits target_os = \"hermit\" from its Linux-ABI list, so none of \
                 its assembly is built for Hermit",
    },
    SourceEdit {
        files: Files::One("src/lib.rs"),
        find: "    non_snake_case,\n    unsafe_code\n)]",
        replace: "    non_snake_case,\n    unsafe_code,\n    mismatched_lifetime_syntaxes\n)]",
        count: 1,
        reason: "as a path dependency its rustc 1.96 lint warnings would be printed on every build; \
                 silence the one lint ring 0.17.14 predates (no code change)",
    },
];

/// Make `workload/patched-crates/ring-<version>`. It sits inside the workspace's folder so that
/// cargo hashes its path relative to the workspace: an absolute path elsewhere would change
/// symbol names, and the image bytes, with the checkout directory.
pub fn prepare(root: &Path, pins: &Pins) -> Result<PathBuf> {
    let pin = pins.crate_pin("ring")?;
    let work = root.join("target/pp");
    let parent = root.join("workload/patched-crates");
    let dir = parent.join(format!("{}-{}", pin.name, pin.version));
    let stamp = parent.join("ring.stamp");
    let want = format!("{}\n{}", pin.sha256, edit::fingerprint(RING_EDITS));
    if fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) && dir.is_dir() {
        return Ok(dir);
    }
    let _ = fs::remove_file(&stamp);
    let roots = crates::unpack_fresh(&work, &[pin], &parent)?;
    edit::apply_all(&roots[0], RING_EDITS)?;
    fs::write(&stamp, want)?;
    Ok(dir)
}

/// The cargo arguments that patch ring for a Hermit build of the workspace at `root`: the patch
/// itself and a lock file (written under `target/pp/hermit-lock/`) that records ring as that path
/// package. Everything else in the lock stays as committed, and the build still runs `--locked`.
pub fn hermit_cargo_args(root: &Path, pins: &Pins) -> Result<Vec<String>> {
    let dir = prepare(root, pins)?;
    let pin = pins.crate_pin("ring")?;
    let lock = fs::read_to_string(root.join("Cargo.lock"))?;
    let patched = lock_with_path_package(&lock, &pin.name, &pin.version)?;
    let lock_dir = root.join("target/pp/hermit-lock");
    fs::create_dir_all(&lock_dir)?;
    let lock_path = lock_dir.join("Cargo.lock");
    if fs::read_to_string(&lock_path).ok().as_deref() != Some(patched.as_str()) {
        fs::write(&lock_path, patched)?;
    }
    Ok(vec![
        "-Zlockfile-path".into(),
        "--config".into(),
        format!("resolver.lockfile-path={}", toml_string(&lock_path)),
        "--config".into(),
        format!("patch.crates-io.{}.path={}", pin.name, toml_string(&dir)),
    ])
}

fn toml_string(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// `lock` with the one registry package `name` `version` turned into a path package (its `source`
/// and `checksum` lines dropped), as cargo records a `[patch]` by path.
fn lock_with_path_package(lock: &str, name: &str, version: &str) -> Result<String> {
    let header = format!("[[package]]\nname = \"{name}\"\nversion = \"{version}\"\n");
    let start = lock
        .find(&header)
        .ok_or_else(|| anyhow::anyhow!("Cargo.lock has no {name} {version}"))?;
    let body_start = start + header.len();
    let end = lock[body_start..]
        .find("\n\n")
        .map_or(lock.len(), |i| body_start + i + 1);
    let body: String = lock[body_start..end]
        .lines()
        .filter(|l| !l.starts_with("source = ") && !l.starts_with("checksum = "))
        .map(|l| format!("{l}\n"))
        .collect();
    if lock[end..].contains(&header) {
        anyhow::bail!("Cargo.lock has {name} {version} twice");
    }
    Ok(format!("{}{header}{body}{}", &lock[..start], &lock[end..]))
}

#[cfg(test)]
mod tests {
    use super::lock_with_path_package;

    #[test]
    fn only_the_named_package_loses_source_and_checksum() {
        let lock = "[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"registry+x\"\nchecksum = \"aa\"\n\n\
                    [[package]]\nname = \"ring\"\nversion = \"0.17.14\"\nsource = \"registry+x\"\nchecksum = \"bb\"\ndependencies = [\n \"a\",\n]\n\n\
                    [[package]]\nname = \"z\"\nversion = \"2.0.0\"\nsource = \"registry+x\"\nchecksum = \"cc\"\n";
        let out = lock_with_path_package(lock, "ring", "0.17.14").unwrap();
        assert_eq!(
            out,
            "[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"registry+x\"\nchecksum = \"aa\"\n\n\
             [[package]]\nname = \"ring\"\nversion = \"0.17.14\"\ndependencies = [\n \"a\",\n]\n\n\
             [[package]]\nname = \"z\"\nversion = \"2.0.0\"\nsource = \"registry+x\"\nchecksum = \"cc\"\n"
        );
        assert!(lock_with_path_package(lock, "ring", "0.17.15").is_err());
    }
}
