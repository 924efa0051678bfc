//! `pp verify-report`, run as the built binary: a real AMD Milan report (the `sev` crate's
//! published test data, the only real-hardware artifact here) is accepted, and every defect is
//! refused naming the check — or, for input that is not a report or certificate, exit 2.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use pp_verifier::CheckName;
use pp_verifier::test_attester::{TestAttester, TestRoot};

/// The `sev` crate's `tests/certs_data/` (a locked dependency: not finding it is a failure).
fn sev_data() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        let out = Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--locked", "--offline"])
            .arg("--manifest-path")
            .arg(&workspace)
            .output()
            .expect("run cargo metadata");
        assert!(
            out.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let manifest = meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "sev" && p["version"] == "8.0.0")
            .and_then(|p| p["manifest_path"].as_str())
            .expect("the locked sev 8.0.0 package in cargo metadata");
        let dir = Path::new(manifest)
            .parent()
            .unwrap()
            .join("tests/certs_data");
        assert!(
            dir.join("report_milan.hex").is_file() && dir.join("vcek_milan.der").is_file(),
            "sev's test data not found in {}",
            dir.display()
        );
        dir
    })
}

fn milan_report() -> PathBuf {
    sev_data().join("report_milan.hex")
}

fn milan_vcek() -> PathBuf {
    sev_data().join("vcek_milan.der")
}

/// The report's raw bytes.
fn milan_report_bytes() -> Vec<u8> {
    let text = std::fs::read_to_string(milan_report()).unwrap();
    hex::decode(text.trim()).unwrap()
}

// What the Milan report says (read once by hand with its field offsets, and printed by the
// command's own "Report" lines, which a test below compares).
const MILAN_MEASUREMENT: &str = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f";
const MILAN_REPORT_DATA: &str = "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd";

/// A fresh folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("verify-report")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The printed check lines (`pass  …`, `FAIL  …`, `skip  …`, `----  …`).
    fn check_lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| {
                ["pass  ", "FAIL  ", "skip  ", "----  "]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .collect()
    }

    /// The check lines that are not `pass`.
    fn not_passed(&self) -> Vec<&str> {
        self.check_lines()
            .into_iter()
            .filter(|l| !l.starts_with("pass  "))
            .collect()
    }

    /// The check lines that are neither `pass` nor "not checked".
    fn failed(&self) -> Vec<&str> {
        self.not_passed()
            .into_iter()
            .filter(|l| !l.starts_with("----  "))
            .collect()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The report's own TCB, below the device's Milan floor (the report is from 2023 firmware,
/// before AMD-SB-3019): tests of other checks pass it as `--min-tcb` so only their check fails.
const MILAN_REPORT_TCB: &str = "bl=3,tee=0,snp=8,ucode=115";

/// Inside the Milan VCEK's validity (2023-04-03 to 2030-04-03): the tests do not depend on the
/// machine's clock.
const INSIDE_VALIDITY: &str = "2026-01-01";

/// `pp verify-report ARGS --at 2026-01-01`.
fn pp(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Run {
    let mut with_clock = args.to_vec();
    with_clock.extend([&"--at" as &dyn AsRef<std::ffi::OsStr>, &INSIDE_VALIDITY]);
    pp_raw(&with_clock)
}

/// `pp verify-report ARGS`, with the machine's clock unless ARGS say `--at`.
fn pp_raw(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_pp"))
        .arg("verify-report")
        .args(args.iter().map(|a| a.as_ref()))
        // No configuration is read: point at one that does not exist.
        .args(["--config", "/nonexistent/pp.toml"])
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn refused_only_by(run: &Run, line: &str) {
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.failed(), [line], "{run}");
    let name = line["FAIL  ".len()..].split(':').next().unwrap();
    assert!(
        run.stdout
            .ends_with(&format!("Verdict: REFUSED (failed: {name})\n")),
        "{run}"
    );
}

/// Refused, with `line` among the failures (a chain built from other certificates may fail
/// further chain checks too).
fn refused_with(run: &Run, line: &str) {
    assert_eq!(run.code, 1, "{run}");
    assert!(run.failed().contains(&line), "{line}: {run}");
    assert!(run.stdout.contains("Verdict: REFUSED (failed: "), "{run}");
}

mod amd_report;
mod other_input;
