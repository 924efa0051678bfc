//! Interoperability with an independent Privacy Pass implementation, Cloudflare's
//! `@cloudflare/privacypass-ts` (npm). The package and its dependencies are pinned with integrity
//! hashes in `xtask/interop/privacypass-ts/package-lock.json` and installed with `npm ci` into
//! `target/privacypass-ts` (`node` and `npm` must be on the PATH: Debian's `nodejs` and `npm`, or
//! any Node 18 or later); then the ignored
//! test `pp-device --test privacypass_interop` runs the script against the real issuer and
//! gateway: privacypass-ts obtains a token from our issuer that our gateway accepts, and verifies
//! a token from our client.
//!
//! The same way, the npm package `bhttp-js` (an independent RFC 9292 implementation) is pinned in
//! `xtask/interop/bhttp-js` and installed into `target/bhttp-js`; the ignored test
//! `pp-client --test bhttp_interop` then checks the inner BHTTP messages of the one-shot path
//! both ways (ours encode → bhttp-js decodes, bhttp-js encodes → ours decode).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::util;

/// Installs privacypass-ts and runs the interop tests.
pub fn privacypass_ts(root: &Path) -> Result<()> {
    let dir = npm_ci(
        root,
        "privacypass-ts",
        &["package.json", "package-lock.json", "interop.mjs"],
    )?;
    util::run(
        Command::new(util::host_cargo())
            .current_dir(root)
            .env("PP_PRIVACYPASS_TS", &dir)
            .args(["test", "--quiet", "-p", "pp-device", "--test"])
            .args(["privacypass_interop", "--", "--ignored"]),
    )
}

/// Installs bhttp-js and runs the BHTTP interop test (both ways).
pub fn bhttp_js(root: &Path) -> Result<()> {
    let dir = npm_ci(
        root,
        "bhttp-js",
        &["package.json", "package-lock.json", "interop.mjs"],
    )?;
    util::run(
        Command::new(util::host_cargo())
            .current_dir(root)
            .env("PP_BHTTP_JS", &dir)
            .args(["test", "--quiet", "-p", "pp-client", "--test"])
            .args(["bhttp_interop", "--", "--ignored"]),
    )
}

/// Makes sure Node and npm are there, copies `xtask/interop/NAME/{files}` to `target/NAME` and
/// installs the pinned packages there with `npm ci`; returns `target/NAME`.
fn npm_ci(root: &Path, name: &str, files: &[&str]) -> Result<std::path::PathBuf> {
    let found = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !found("node") || !found("npm") {
        // A machine without Node gets Debian's (a Node already installed, e.g. NodeSource's,
        // which bundles npm, is kept: apt would refuse to replace it with an older one).
        eprintln!("interop: installing Debian's nodejs and npm (apt-get install nodejs npm)");
        util::run(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "--no-install-recommends", "nodejs", "npm"]),
        )
        .context(
            "installing nodejs and npm failed (run as root, with the Debian archive reachable)",
        )?;
    }
    for tool in ["node", "npm"] {
        anyhow::ensure!(
            found(tool),
            "`{tool}` is not installed: the {name} interop step needs Node 18 or later and npm \
             (Debian: apt-get install nodejs npm)"
        );
    }
    let src = root.join("xtask/interop").join(name);
    let dir = root.join("target").join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for file in files {
        std::fs::copy(src.join(file), dir.join(file))
            .with_context(|| format!("copying {file} to {}", dir.display()))?;
    }
    util::run(
        Command::new("npm")
            .current_dir(&dir)
            .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
            .args(["--prefer-offline", "--cache"])
            .arg(root.join("target/npm-cache")),
    )
    .with_context(|| format!("npm ci of the pinned {name} failed"))?;
    Ok(dir)
}
