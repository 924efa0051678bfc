//! The trust boundary in the folder tree, checked: every top-level folder is either measured (its
//! code is in the launch digest, or it builds what is), outside the enclave (`outside/`), the
//! task runner and release tooling (`xtask/`, `reproducible/`), or text (`docs/`); and nothing
//! under `outside/`, `xtask/` or `reproducible/` is linked into the image.
//!
//! Two checks: [`check`] reads the tree and the cargo dependency graphs (a test of the task
//! runner); [`check_dep_info`] runs on every image build and reads the compiler's own list of the
//! source files that went into the workload and the loader, so code included by path
//! (`#[path]`, `include_bytes!`) is seen too.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::util;
use crate::workload::HERMIT_TARGET;

/// Why a top-level folder exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// In the launch digest, or builds what is: the string says how.
    Measured(&'static str),
    /// Runs outside the enclave; never linked into the image.
    Outside,
    /// The task runner and the release tooling (manifests, digests, rebuild-and-compare).
    Tooling,
    /// Documentation only: no code.
    Text,
}

/// Every top-level folder and its role. The README's map says the same.
pub const TOP_LEVEL: &[(&str, Role)] = &[
    ("attestation", Role::Measured("linked into the workload")),
    ("image-builder", Role::Measured("the UEFI loader: pp.efi")),
    ("inference", Role::Measured("linked into the workload")),
    (
        "kernel",
        Role::Measured("builds the kernel; kernel/sev and kernel/builtins are linked into it"),
    ),
    (
        "ovmf",
        Role::Measured("the firmware recipe: OVMF is in the launch digest"),
    ),
    ("protocol", Role::Measured("linked into the workload")),
    (
        "snp-guest",
        Role::Measured("linked into the workload; copied into the loader and the kernel"),
    ),
    ("workload", Role::Measured("the enclave program")),
    ("outside", Role::Outside),
    ("xtask", Role::Tooling),
    ("reproducible", Role::Tooling),
    ("docs", Role::Text),
];

/// Folders whose crates must appear in the image's dependency graph (the rest of the measured
/// folders are build tools or firmware, checked by the boot tests).
const LINKED: &[&str] = &[
    "attestation",
    "inference",
    "protocol",
    "snp-guest",
    "workload",
];

/// Checks the tree at `root` against [`TOP_LEVEL`] and the workload's dependency graph (both
/// variants) and the loader's against the rule.
pub fn check(root: &Path) -> Result<()> {
    let present = top_level_folders(root)?;
    let listed: BTreeSet<String> = TOP_LEVEL.iter().map(|(d, _)| d.to_string()).collect();
    let unlisted: Vec<_> = present.difference(&listed).collect();
    ensure!(
        unlisted.is_empty(),
        "top-level folders with no stated role (measured, outside/, tooling): {unlisted:?}; \
         put parties that run outside the enclave under outside/, or list the folder in \
         xtask/src/layout.rs and the README"
    );
    let missing: Vec<_> = listed.difference(&present).collect();
    ensure!(missing.is_empty(), "folders listed but absent: {missing:?}");
    check_text_only(&root.join("docs"))?;

    for features in [None, Some("test-attester")] {
        let paths = image_graph_paths(root, features)?;
        let folders = top_folders_of(root, &paths);
        check_graph(&folders).with_context(|| {
            format!(
                "the workload's dependency graph ({})",
                features.unwrap_or("release")
            )
        })?;
    }
    let loader = cargo_tree_paths(
        Command::new(util::host_cargo())
            .current_dir(root)
            .args([
                "tree",
                "--locked",
                "--manifest-path",
                "image-builder/Cargo.toml",
            ])
            .args(["--target", crate::image::UEFI_TARGET])
            .args(["-e", "normal,build", "--prefix", "none", "-f", "{p}"]),
    )?;
    for folder in top_folders_of(root, &loader) {
        ensure!(
            role_of(&folder).is_some_and(|r| matches!(r, Role::Measured(_))),
            "the loader depends on a crate in {folder}/, which is not measured"
        );
    }
    Ok(())
}

/// Checks the dep-info file (`*.d`) of an image build: every file it names inside the repository
/// lies in a measured folder, or is build output under `target/` (the kernel library, the
/// embedded workload and weights). Files outside the repository (registry crates, the toolchain's
/// std) are pinned by `Cargo.lock` and `pins.toml`.
pub fn check_dep_info(root: &Path, dep_file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(dep_file)
        .with_context(|| format!("reading {}", dep_file.display()))?;
    for path in dep_info_inputs(&text) {
        let Some(folder) = top_folder(root, Path::new(&path)) else {
            continue;
        };
        let allowed = folder == "target" || matches!(role_of(&folder), Some(Role::Measured(_)));
        ensure!(
            allowed,
            "{} went into an image build ({}), but {folder}/ is not measured: nothing outside \
             the trust boundary may be linked into the image",
            Path::new(&path)
                .strip_prefix(root)
                .unwrap_or(Path::new(&path))
                .display(),
            dep_file.display()
        );
    }
    Ok(())
}

/// The input files of a Makefile-style dep-info file: the first rule's prerequisites (`\ ` is an
/// escaped space).
fn dep_info_inputs(text: &str) -> Vec<String> {
    let Some(first) = text.lines().find(|l| !l.trim().is_empty()) else {
        return Vec::new();
    };
    let Some((_, inputs)) = first.split_once(": ") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = inputs.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                current.push(' ');
                chars.next();
            }
            ' ' => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            other => current.push(other),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The rule on the set of top-level folders the image's crates live in.
fn check_graph(folders: &BTreeSet<String>) -> Result<()> {
    for folder in folders {
        match role_of(folder) {
            Some(Role::Measured(_)) => {}
            Some(role) => bail!("links a crate from {folder}/ ({role:?}) into the image"),
            None => bail!("links a crate from {folder}/, which has no stated role"),
        }
    }
    for folder in LINKED {
        ensure!(
            folders.contains(*folder),
            "{folder}/ is listed as linked into the image but no crate of it is"
        );
    }
    Ok(())
}

fn role_of(folder: &str) -> Option<Role> {
    TOP_LEVEL
        .iter()
        .find(|(d, _)| *d == folder)
        .map(|(_, r)| *r)
}

/// Source folders of the path packages the Hermit workload links (normal and build edges, the
/// Hermit target's platform filter).
fn image_graph_paths(root: &Path, features: Option<&str>) -> Result<Vec<String>> {
    let mut cmd = Command::new(util::host_cargo());
    cmd.current_dir(root)
        .args([
            "tree",
            "--locked",
            "-p",
            "pp-workload",
            "--target",
            HERMIT_TARGET,
        ])
        .args(["-e", "normal,build", "--prefix", "none", "-f", "{p}"]);
    if let Some(f) = features {
        cmd.args(["--features", f]);
    }
    cargo_tree_paths(&mut cmd)
}

/// The paths in `name vX (path)` lines of `cargo tree -f {p}`: the path packages.
fn cargo_tree_paths(cmd: &mut Command) -> Result<Vec<String>> {
    let out = util::stdout_of(cmd)?;
    Ok(path_packages(&out))
}

fn path_packages(tree: &str) -> Vec<String> {
    tree.lines()
        .filter_map(|l| {
            let open = l.find(" (")?;
            let path = l[open + 2..].split(')').next()?;
            path.starts_with('/').then(|| path.to_string())
        })
        .collect()
}

/// The top-level folder of `path` under `root`; `None` for a path outside `root`.
fn top_folder(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    Some(
        rel.components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default(),
    )
}

/// The top-level folder (under `root`) of each path; paths elsewhere are kept whole.
fn top_folders_of(root: &Path, paths: &[String]) -> BTreeSet<String> {
    paths
        .iter()
        .map(|p| top_folder(root, Path::new(p)).unwrap_or_else(|| p.clone()))
        .collect()
}

/// Top-level folders of the tree, as git tracks them (build output and hidden folders aside).
fn top_level_folders(root: &Path) -> Result<BTreeSet<String>> {
    let files = util::stdout_of(Command::new("git").current_dir(root).args(["ls-files"]))
        .context("listing the tracked files (git ls-files)")?;
    Ok(files
        .lines()
        .filter_map(|f| f.split_once('/').map(|(dir, _)| dir.to_string()))
        .filter(|d| !d.starts_with('.'))
        .collect())
}

fn check_text_only(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let text = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("md" | "txt")
        );
        ensure!(text, "{} is not text: docs/ holds no code", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_path_packages_from_cargo_tree() {
        let tree = "pp-workload v0.1.0 (/src/pp/workload)\nring v0.17.14\n\
                    pp-protocol v0.1.0 (/src/pp/protocol) (*)\nserde v1.0.0 (proc-macro)\n";
        assert_eq!(
            path_packages(tree),
            ["/src/pp/workload", "/src/pp/protocol"]
        );
        let folders = top_folders_of(Path::new("/src/pp"), &path_packages(tree));
        assert_eq!(
            folders.into_iter().collect::<Vec<_>>(),
            ["protocol", "workload"]
        );
    }

    #[test]
    fn a_crate_from_outside_in_the_image_is_refused() {
        let mut folders: BTreeSet<String> = LINKED.iter().map(|s| s.to_string()).collect();
        assert!(check_graph(&folders).is_ok());
        folders.insert("outside".into());
        let err = check_graph(&folders).unwrap_err().to_string();
        assert!(err.contains("outside/"), "{err}");
        folders.remove("outside");
        folders.insert("reproducible".into());
        assert!(check_graph(&folders).is_err());
        folders.remove("reproducible");
        folders.remove("protocol");
        assert!(check_graph(&folders).is_err());
    }

    #[test]
    fn dep_info_of_an_image_build_is_checked() {
        let dir = std::env::temp_dir().join(format!("pp-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dep = dir.join("pp-workload.d");
        let good = "/r/target/x/pp-workload: /r/workload/src/main.rs /r/snp-guest/src/a\\ b.rs \
                    /home/u/.cargo/registry/x.rs /r/target/pp/kernel/libhermit.a\n\n\
                    /r/workload/src/main.rs:\n";
        std::fs::write(&dep, good).unwrap();
        check_dep_info(Path::new("/r"), &dep).unwrap();
        assert_eq!(dep_info_inputs(good)[1], "/r/snp-guest/src/a b.rs");
        let bad = "/r/target/x/pp-workload: /r/workload/src/main.rs /r/outside/client/src/lib.rs\n";
        std::fs::write(&dep, bad).unwrap();
        let err = check_dep_info(Path::new("/r"), &dep)
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside/client/src/lib.rs"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_tree_follows_the_rule() {
        check(&util::root()).unwrap();
    }
}
