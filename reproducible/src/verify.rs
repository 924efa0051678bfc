//! `verify`: rebuild a release from the current checkout in a fresh folder at another path,
//! recompute every hash and launch digest from the rebuilt files, and compare with the manifest.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::manifest::{Artifact, Manifest};

/// One compared value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub input: String,
    pub expected: String,
    pub got: String,
}

impl Row {
    pub fn matches(&self) -> bool {
        self.expected == self.got
    }
}

/// Files of a built release folder (what `cargo xtask image --out DIR` writes).
pub const IMAGE_FILE: &str = "pp.efi";
pub const AMDSEV_FIRMWARE_FILE: &str = "OVMF.amdsev.fd";

/// Recompute from the files in `dir` every value `expected` states, as rows.
pub fn compare_dir(expected: &Manifest, dir: &Path, rebuilt: &Manifest) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let hash = |name: &str| -> Result<String> { Ok(Artifact::of(&dir.join(name), name)?.sha256) };
    rows.push(Row {
        input: "pp.efi sha256".into(),
        expected: expected.image.sha256.clone(),
        got: hash(IMAGE_FILE)?,
    });
    for (role, art) in &expected.components {
        let got = rebuilt
            .components
            .get(role)
            .map(|a| a.sha256.clone())
            .unwrap_or_else(|| "missing".into());
        rows.push(Row {
            input: format!("{role} sha256"),
            expected: art.sha256.clone(),
            got,
        });
    }
    for (file, sha) in &expected.inputs {
        let got = rebuilt
            .inputs
            .get(file)
            .cloned()
            .unwrap_or_else(|| "missing".into());
        rows.push(Row {
            input: format!("{file} sha256"),
            expected: sha.clone(),
            got,
        });
    }
    for (role, art) in &expected.firmware {
        let got = rebuilt
            .firmware
            .get(role)
            .map(|a| a.sha256.clone())
            .unwrap_or_else(|| "missing".into());
        rows.push(Row {
            input: format!("firmware {role} sha256"),
            expected: art.sha256.clone(),
            got,
        });
    }
    let m = &expected.measurement;
    rows.push(Row {
        input: "AmdSev firmware sha256".into(),
        expected: m.firmware.sha256.clone(),
        got: hash(AMDSEV_FIRMWARE_FILE)?,
    });
    rows.push(Row {
        input: "QEMU SNP command".into(),
        expected: m.qemu_snp_command.clone(),
        got: rebuilt.measurement.qemu_snp_command.clone(),
    });
    for (vcpus, digest) in &m.digests {
        let vcpus_n: u32 = vcpus
            .parse()
            .context("the manifest's vCPU count is not a number")?;
        let got = m
            .launch_digest(dir, vcpus_n)
            .map(hex::encode)
            .unwrap_or_else(|e| format!("error: {e:#}"));
        rows.push(Row {
            input: format!("launch digest, {vcpus} vCPU"),
            expected: digest.clone(),
            got,
        });
    }
    Ok(rows)
}

/// Print rows as a table; returns whether all matched.
pub fn print_table(rows: &[Row]) -> bool {
    let width = rows.iter().map(|r| r.input.len()).max().unwrap_or(5).max(5);
    println!("{:<width$}  {:<8}  expected / got", "input", "match");
    for row in rows {
        let mark = if row.matches() { "yes" } else { "NO" };
        println!("{:<width$}  {mark:<8}  {}", row.input, row.expected);
        println!("{:<width$}  {:<8}  {}", "", "", row.got);
    }
    rows.iter().all(Row::matches)
}

/// Rebuild the checkout at `root` in a fresh folder and compare with `expected`.
/// `cargo` runs the task runner there; extra environment (e.g. a firmware cache) is passed on.
pub fn rebuild_and_compare(
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
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
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
        let rebuilt = Manifest::from_json(&std::fs::read_to_string(out.join("manifest.json"))?)?;
        compare_dir(expected, &out, &rebuilt)
    })();
    let _ = std::fs::remove_dir_all(&copy);
    result
}
