//! The pinned toolchain (Debian's rustc/cargo 1.96 with its std source, LLVM 22) as commands.
//!
//! Every image component is built through [`cargo`]: it never picks up the developer's rustup
//! toolchain or flags, enables `-Zbuild-std` (`RUSTC_BOOTSTRAP=1`, the std source comes from the
//! pinned `rust-web-src`) and trims paths so outputs do not depend on the checkout directory.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const CARGO: &str = "/usr/bin/cargo";
pub const RUSTC: &str = "/usr/bin/rustc";
pub const RUST_LLD: &str = "/usr/bin/rust-lld";
pub const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";

/// Environment variables from the caller that could change what the pinned toolchain produces.
const SCRUBBED_ENV: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTUP_TOOLCHAIN",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_INCREMENTAL",
    "CARGO_PROFILE_RELEASE_DEBUG",
    "CARGO_MAKEFLAGS",
    "RUSTC_BOOTSTRAP",
    "SOURCE_DATE_EPOCH",
];

/// `cargo <sub>` of the pinned toolchain, run in `dir`, with `rustflags` as the only flags.
pub fn cargo(sub: &str, dir: &Path, target_dir: &Path, rustflags: &[&str]) -> Command {
    let mut cmd = Command::new(CARGO);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.current_dir(dir)
        .env("PATH", format!("/usr/bin:{path}"))
        .env("RUSTC", RUSTC)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir)
        .env("CARGO_INCREMENTAL", "0")
        // No timestamps: crates that read SOURCE_DATE_EPOCH get the epoch.
        .env("SOURCE_DATE_EPOCH", "0")
        .env("CARGO_PROFILE_RELEASE_TRIM_PATHS", "all")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\u{1f}"))
        .args([sub, "-Ztrim-paths", "--release", "--locked"]);
    cmd
}

/// Where a cargo build for `target` leaves its release artifacts.
pub fn release_dir(target_dir: &Path, target: &str) -> PathBuf {
    target_dir.join(target).join("release")
}
