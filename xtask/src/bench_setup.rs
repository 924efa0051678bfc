//! `cargo xtask bench-setup`: the device's session set-up time, phase by phase, with the checks
//! of issue 13 (witnessed fresh checkpoint and entry sync, logged CDN index, logged issuer key,
//! receipt) against the set-up without them, in one run on the host-mode stack of `bench-path`.
//!
//! Before the bench runs, the operator's log gets a history, so the device's entry sync is not
//! trivially empty: `log_entries` entries (issuer keys of other issuers, revocations, release
//! manifests of other releases), then the CDN index published again (as each epoch does), then
//! `after_index` more entries (what the device reads to check that no newer index exists).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::bench_path::{HostStack, start_host_stack};
use crate::{pins, util};

/// What `cargo xtask bench-setup` takes.
#[derive(clap::Args)]
pub struct SetupArgs {
    /// Requests timed in the steady state.
    #[arg(long, default_value_t = 50)]
    pub requests: usize,
    /// Fresh devices whose first log sync is timed.
    #[arg(long, default_value_t = 5)]
    pub fresh: usize,
    /// Log entries appended before the CDN index is published again.
    #[arg(long, default_value_t = 300)]
    pub log_entries: usize,
    /// Log entries appended after it.
    #[arg(long, default_value_t = 8)]
    pub after_index: usize,
    /// A test image folder built before, whose release manifest to log.
    #[arg(long)]
    pub image: Option<PathBuf>,
}

pub fn run(root: &Path, pins: &pins::Pins, args: &SetupArgs) -> Result<()> {
    let host = start_host_stack(root, pins, args.image.clone(), "bench-setup")?;
    let bin = root.join("target/release");
    let history = fill_log(&host, &bin, args.log_entries)?;
    publish(&host, &bin)?;
    for n in 0..args.after_index {
        revoke(&host, &bin, &format!("bench: after the index {n}"))?;
    }
    eprintln!(
        "bench-setup: log history {history}, the CDN index published again, {} entries after it",
        args.after_index
    );
    util::run(
        Command::new(util::host_cargo())
            .current_dir(root)
            .env("PP_BENCH_CONFIG", &host.stack.config)
            .env("PP_BENCH_REQUESTS", args.requests.to_string())
            .env("PP_BENCH_FRESH", args.fresh.to_string())
            .args([
                "bench",
                "--quiet",
                "-p",
                "pp-device",
                "--features",
                "test-root",
            ])
            .args(["--bench", "setup"]),
    )
}

/// Appends `n` entries to the log, as an operator's history holds them: issuer keys (two per
/// issuer, from `pp-issuer`), release manifests of other releases (the logged manifest with
/// another `release_ref`), and revocations; returns what was appended.
fn fill_log(host: &HostStack, bin: &Path, n: usize) -> Result<String> {
    let stack = &host.stack;
    let dir = stack.dir.join("history");
    std::fs::create_dir_all(&dir)?;
    let issuers = (n / 4).min(16) / 2;
    let mut keys = 0;
    for i in 0..issuers {
        let name = format!("issuer-{i}.history.pp.test");
        let out = Command::new(bin.join("pp-issuer"))
            .arg("--state")
            .arg(dir.join(format!("issuer-{i}")))
            .args(["--print-key-entries", &name])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "pp-issuer --print-key-entries failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        for (k, line) in String::from_utf8(out.stdout)?.lines().enumerate() {
            let file = dir.join(format!("key-{i}-{k}.json"));
            std::fs::write(&file, line)?;
            stack.append_to_log(&file)?;
            keys += 1;
        }
    }
    let rest = n.saturating_sub(keys);
    let manifests = rest / 3;
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&host.manifest).context("reading the manifest")?)?;
    for m in 0..manifests {
        manifest["release_ref"] = random_hex().into();
        let file = dir.join(format!("manifest-{m}.json"));
        std::fs::write(&file, serde_json::to_vec(&manifest)?)?;
        stack.append_to_log(&file)?;
    }
    for r in 0..rest - manifests {
        revoke(host, bin, &format!("bench: history {r}"))?;
    }
    Ok(format!(
        "{keys} issuer keys, {manifests} manifests, {} revocations",
        rest - manifests
    ))
}

/// Appends a revocation of a release that never existed.
fn revoke(host: &HostStack, bin: &Path, reason: &str) -> Result<()> {
    let out = Command::new(bin.join("pp-log"))
        .args([
            "revoke",
            "--url",
            &host.stack.log_url,
            "--operator-credential",
        ])
        .arg(host.stack.dir.join("operator.secret"))
        .args(["--release-ref", &random_hex(), "--reason", reason])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "appending a revocation failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Publishes the instances again (`pp-gateway publish`, as in the stack's start): a new CDN
/// index, the newest in the log.
fn publish(host: &HostStack, bin: &Path) -> Result<()> {
    // The index carries its publication time in seconds: a second later, it differs.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let p = |rel: &str| host.stack.dir.join(rel);
    let out = Command::new(bin.join("pp-gateway"))
        .arg("publish")
        .arg("--instances")
        .arg(p("instances.json"))
        .arg("--manifest")
        .arg(&host.manifest)
        .arg("--out")
        .arg(p("cdn"))
        .args(["--assign-ids", "--log-url", &host.stack.log_url])
        .arg("--operator-credential")
        .arg(p("operator.secret"))
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "publishing the instances again failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("system randomness");
    hex::encode(b)
}
