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

/// With the defaults (the device's Milan floor, the release guest policy) this real report is
/// refused for its TCB alone: it comes from firmware older than AMD-SB-3019. Everything else about
/// it passes.
#[test]
fn amd_milan_report_below_the_devices_floor_is_refused_for_its_tcb_alone() {
    let run = pp(&[&"--report", &milan_report(), &"--vcek", &milan_vcek()]);
    assert_eq!(run.check_lines().len(), CheckName::ALL.len(), "{run}");
    refused_only_by(
        &run,
        "FAIL  tcb-minimum: vcek_tcb.snp 8 below the floor 24 (Milan)",
    );
    for line in [
        "ASK:  AMD's built-in Milan ASK",
        "ARK:  AMD's built-in Milan ARK",
        "TCB floor: the device's, from AMD's bulletins (the VCEK's product picks one):",
        "  Milan: bl=3,tee=0,snp=24,ucode=219 (0xdb18000000000003)",
        "  Genoa: bl=7,tee=0,snp=23,ucode=84 (0x5417000000000007)",
        "Guest policy required: 0x30000, the release policy the device requires",
        "Certificates valid at: 2026-01-01T00:00:00Z, from --at",
        "Revocation: not checked (no --crl given)",
        "----  not-revoked: not checked (no --crl given)",
        &format!("  measurement   {MILAN_MEASUREMENT}"),
        &format!("  report data   {MILAN_REPORT_DATA}"),
        "  reported TCB  bl=3,tee=0,snp=8,ucode=115 (0x7308000000000003)",
    ] {
        assert!(run.stdout.lines().any(|l| l == line), "{line}: {run}");
    }
}

/// The same report with its own TCB as the floor: every check made passes.
#[test]
fn amd_milan_report_is_accepted_with_amds_builtin_chain() {
    let run = pp(&[
        &"--report",
        &milan_report(),
        &"--vcek",
        &milan_vcek(),
        &"--min-tcb",
        &MILAN_REPORT_TCB,
    ]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.check_lines().len(), CheckName::ALL.len(), "{run}");
    assert_eq!(
        run.not_passed(),
        [
            "----  measurement: not checked (no --measurement given)",
            "----  report-data: not checked (no --report-data given)",
            "----  not-revoked: not checked (no --crl given)",
        ],
        "{run}"
    );
    // Without --crl nothing was checked for revocation: no "pass not-revoked" is printed.
    assert!(!run.stdout.contains("pass  not-revoked"), "{run}");
    assert!(
        run.stdout.ends_with(
            "Verdict: accepted (every check made passed; not checked: measurement, report-data, \
             not-revoked)\n"
        ),
        "{run}"
    );
    // The floor given is below the device's: said before the checks.
    for product in ["Milan", "Genoa"] {
        assert!(
            run.stdout.lines().any(|l| l.starts_with(&format!(
                "Warning: --min-tcb is below the device's {product} floor"
            )) && l.ends_with(&format!(
                "a {product} report the device refuses can be accepted here"
            ))),
            "{run}"
        );
    }
}

/// A --min-tcb at or above the device's floor for both products draws no warning.
#[test]
fn a_min_tcb_at_the_devices_floor_draws_no_warning() {
    let run = pp(&[
        &"--report",
        &milan_report(),
        &"--vcek",
        &milan_vcek(),
        &"--min-tcb",
        &"bl=7,tee=0,snp=24,ucode=219",
    ]);
    assert!(!run.stdout.contains("Warning"), "{run}");
    assert!(
        run.stdout.contains(
            "TCB floor: bl=7,tee=0,snp=24,ucode=219 (0xdb18000000000007), from --min-tcb (every \
             product)"
        ),
        "{run}"
    );
}

/// After the VCEK's notAfter the same report is refused for that alone.
#[test]
fn amd_milan_report_after_its_vceks_validity_is_refused() {
    let run = pp_raw(&[
        &"--report",
        &milan_report(),
        &"--vcek",
        &milan_vcek(),
        &"--min-tcb",
        &MILAN_REPORT_TCB,
        &"--at",
        &"2030-04-03T19:23:44Z",
    ]);
    refused_only_by(
        &run,
        "FAIL  certificates-valid: VCEK certificate expired at 2030-04-03T19:23:43Z, device clock \
         2030-04-03T19:23:44Z",
    );
}

/// A guest policy other than the report's is refused naming both values.
#[test]
fn a_guest_policy_other_than_the_reports_is_refused() {
    let run = pp(&[
        &"--report",
        &milan_report(),
        &"--vcek",
        &milan_vcek(),
        &"--min-tcb",
        &MILAN_REPORT_TCB,
        &"--guest-policy",
        &"0x130000",
    ]);
    assert_eq!(run.code, 1, "{run}");
    let [line] = run.failed()[..] else {
        panic!("one check should fail: {run}");
    };
    assert!(
        line.starts_with(
            "FAIL  guest-policy: guest policy 0x30000 differs from the release's 0x130000"
        ),
        "{run}"
    );
    // A policy no report may carry is a usage error.
    let run = pp(&[
        &"--report",
        &milan_report(),
        &"--vcek",
        &milan_vcek(),
        &"--guest-policy",
        &"0xb0000",
    ]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("--guest-policy 0xb0000: "), "{run}");
}

/// A CRL that AMD's ARK did not sign is an input error, not ignored.
#[test]
fn a_crl_not_signed_by_amd_is_an_error() {
    let dir = scratch("crl");
    let root = TestRoot::generate([8; 32]).unwrap();
    let crl = write(&dir, "test.crl", &root.crl_der(&[]).unwrap());
    let run = pp(&[
        &"--report",
        &milan_report(),
        &"--vcek",
        &milan_vcek(),
        &"--crl",
        &crl,
    ]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("cannot be used: AMD's CRL is not signed by a trusted ARK"),
        "{run}"
    );
}

#[test]
fn amd_milan_report_raw_with_pem_chain_and_every_value_pinned_is_accepted() {
    let dir = scratch("pinned");
    let report = write(&dir, "report.bin", &milan_report_bytes());
    let vcek_der = std::fs::read(milan_vcek()).unwrap();
    let vcek_pem = x509_cert::der::pem::encode_string(
        "CERTIFICATE",
        x509_cert::der::pem::LineEnding::LF,
        &vcek_der,
    )
    .unwrap();
    let vcek = write(&dir, "vcek.pem", vcek_pem.as_bytes());
    let ask = write(&dir, "ask.pem", sev::certs::snp::builtin::milan::ASK);
    let ark = write(&dir, "ark.pem", sev::certs::snp::builtin::milan::ARK);
    let other = "00".repeat(48);
    let run = pp(&[
        &"--report",
        &report,
        &"--vcek",
        &vcek,
        &"--ask",
        &ask,
        &"--ark",
        &ark,
        &"--measurement",
        &other,
        &"--measurement",
        &MILAN_MEASUREMENT.to_uppercase(),
        &"--report-data",
        &MILAN_REPORT_DATA,
        &"--min-tcb",
        &"bl=3,tee=0,snp=8,ucode=115",
    ]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.check_lines().len(), CheckName::ALL.len(), "{run}");
    assert!(
        run.stdout
            .contains("TCB floor: bl=3,tee=0,snp=8,ucode=115 (0x7308000000000003), from --min-tcb"),
        "{run}"
    );
    // AMD's CRL is not in the test data: `not-revoked` is the one check not made.
    assert_eq!(
        run.not_passed(),
        ["----  not-revoked: not checked (no --crl given)"],
        "{run}"
    );
    assert!(
        run.stdout
            .ends_with("Verdict: accepted (every check made passed; not checked: not-revoked)\n"),
        "{run}"
    );
}

#[test]
fn flipped_bit_in_the_report_is_refused_as_report_signature() {
    let dir = scratch("flipped");
    // One bit of the measurement (signed bytes), and one of the signature's R.
    for (name, offset) in [("measurement", 0x90), ("signature", 0x2A0)] {
        let mut bytes = milan_report_bytes();
        bytes[offset] ^= 0x01;
        let report = write(&dir, name, &bytes);
        let run = pp(&[
            &"--report",
            &report,
            &"--vcek",
            &milan_vcek(),
            &"--min-tcb",
            &MILAN_REPORT_TCB,
        ]);
        refused_only_by(&run, "FAIL  report-signature: signature does not verify");
    }
}

#[test]
fn wrong_measurement_is_refused() {
    let mut wrong = hex::decode(MILAN_MEASUREMENT).unwrap();
    wrong[47] ^= 0x80;
    let run = pp(&[
        &"--report",
        &milan_report(),
        &"--vcek",
        &milan_vcek(),
        &"--measurement",
        &hex::encode(wrong),
        &"--min-tcb",
        &MILAN_REPORT_TCB,
    ]);
    refused_only_by(
        &run,
        "FAIL  measurement: measurement is not in the allowed set",
    );
}

#[test]
fn wrong_report_data_is_refused() {
    let mut wrong = hex::decode(MILAN_REPORT_DATA).unwrap();
    wrong[0] ^= 0x01;
    let run = pp(&[
        &"--report",
        &milan_report(),
        &"--vcek",
        &milan_vcek(),
        &"--report-data",
        &hex::encode(wrong),
        &"--min-tcb",
        &MILAN_REPORT_TCB,
    ]);
    refused_only_by(
        &run,
        "FAIL  report-data: report data differs from the expected binding",
    );
}

#[test]
fn tcb_floor_above_the_vceks_is_refused_naming_the_component() {
    for (floor, component) in [
        ("bl=3,tee=0,snp=8,ucode=116", "microcode"),
        ("0x7309000000000003", "snp"),
        ("bl=4", "bootloader"),
    ] {
        let run = pp(&[
            &"--report",
            &milan_report(),
            &"--vcek",
            &milan_vcek(),
            &"--min-tcb",
            &floor,
        ]);
        assert_eq!(run.code, 1, "{run}");
        let [line] = run.failed()[..] else {
            panic!("one check should fail: {run}");
        };
        assert!(line.starts_with("FAIL  tcb-minimum: "), "{run}");
        // The component, however the reason spells it (`Microcode`, `boot_loader`, …).
        let reason = line.to_lowercase().replace('_', "");
        assert!(reason.contains(component), "{component}: {run}");
        assert!(
            run.stdout
                .ends_with("Verdict: REFUSED (failed: tcb-minimum)\n"),
            "{run}"
        );
    }
}

#[test]
fn another_products_amd_chain_is_refused() {
    // A real Milan VCEK with AMD's real Genoa ASK and ARK: the ARK is trusted, the VCEK is not
    // signed by that ASK.
    let dir = scratch("genoa-chain");
    let ask = write(&dir, "ask.pem", sev::certs::snp::builtin::genoa::ASK);
    let ark = write(&dir, "ark.pem", sev::certs::snp::builtin::genoa::ARK);
    let run = pp(&[
        &"--report",
        &milan_report(),
        &"--vcek",
        &milan_vcek(),
        &"--ask",
        &ask,
        &"--ark",
        &ark,
    ]);
    refused_with(&run, "FAIL  vcek-signed-by-ask: signature does not verify");
}

/// One generated test root for this process (RSA-4096 takes seconds).
fn test_attester() -> &'static TestAttester {
    static ATTESTER: OnceLock<TestAttester> = OnceLock::new();
    ATTESTER.get_or_init(|| {
        let root = TestRoot::generate([7; 32]).unwrap();
        TestAttester::new(Arc::new(root), [0x5A; 48])
    })
}

#[test]
fn test_root_chain_is_refused_as_ark_trusted_although_every_signature_verifies() {
    use pp_attestation::Attester;
    let attester = test_attester();
    let report_data = [0x33; 64];
    let evidence = attester.attest(&report_data).unwrap();
    let dir = scratch("test-root");
    let report = write(&dir, "report.bin", &evidence.report);
    let vcek = write(&dir, "vcek.der", &evidence.vcek_der);
    let ask = write(&dir, "ask.der", &evidence.ask_der);
    let ark = write(&dir, "ark.der", &evidence.ark_der);
    let measurement = hex::encode(attester.measurement);
    let report_data = hex::encode(report_data);
    let run = pp(&[
        &"--report",
        &report,
        &"--vcek",
        &vcek,
        &"--ask",
        &ask,
        &"--ark",
        &ark,
        &"--measurement",
        &measurement,
        &"--report-data",
        &report_data,
    ]);
    refused_with(&run, "FAIL  ark-trusted: root is not trusted by the policy");
    for signature in [
        "ark-self-signed",
        "ask-signed-by-ark",
        "vcek-signed-by-ask",
        "report-signature",
    ] {
        assert!(
            run.check_lines()
                .contains(&format!("pass  {signature}").as_str()),
            "{signature}: {run}"
        );
    }

    // The same VCEK with AMD's chain (the default): not signed by AMD's ASK.
    let run = pp(&[
        &"--report",
        &report,
        &"--vcek",
        &vcek,
        &"--measurement",
        &measurement,
        &"--report-data",
        &report_data,
    ]);
    assert!(
        run.stdout.contains("ASK:  AMD's built-in Milan ASK"),
        "{run}"
    );
    refused_with(&run, "FAIL  vcek-signed-by-ask: signature does not verify");
}

#[test]
fn input_that_is_not_a_report_or_certificate_is_exit_2() {
    let dir = scratch("bad-input");
    let bytes = milan_report_bytes();
    let truncated = write(&dir, "truncated.bin", &bytes[..1000]);
    let truncated_hex = write(
        &dir,
        "truncated.hex",
        hex::encode(&bytes[..1183]).as_bytes(),
    );
    let garbage = write(&dir, "garbage.der", b"this is not a certificate");
    let (report, vcek, missing) = (milan_report(), milan_vcek(), dir.join("missing"));
    let cases: [(Vec<&dyn AsRef<std::ffi::OsStr>>, String); 5] = [
        (
            vec![&"--report", &truncated, &"--vcek", &vcek],
            format!(
                "pp: --report {}: 1000 bytes, neither a raw report (exactly 1184 bytes) nor hex \
                 text (only hex digits and whitespace)",
                truncated.display()
            ),
        ),
        (
            vec![&"--report", &truncated_hex, &"--vcek", &vcek],
            format!(
                "pp: --report {}: hex text of 2366 digits is not a report: expected 2368 digits \
                 (1184 bytes)",
                truncated_hex.display()
            ),
        ),
        (
            vec![&"--report", &report, &"--vcek", &garbage],
            format!(
                "pp: --vcek {}: not an X.509 certificate in DER or PEM",
                garbage.display()
            ),
        ),
        (
            vec![&"--report", &report, &"--vcek", &vcek, &"--ark", &garbage],
            format!(
                "pp: --ark {}: not an X.509 certificate in DER or PEM",
                garbage.display()
            ),
        ),
        (
            vec![&"--report", &missing, &"--vcek", &vcek],
            format!("pp: --report {}: cannot read:", missing.display()),
        ),
    ];
    for (args, message) in cases {
        let run = pp(&args);
        assert_eq!(run.code, 2, "{run}");
        assert!(run.stderr.starts_with(&message), "{message}: {run}");
        assert_eq!(run.stdout, "", "{run}");
    }

    // An AMD ARK given as the VCEK: no product name, so no built-in chain to pick.
    let ark = write(&dir, "ark.pem", sev::certs::snp::builtin::milan::ARK);
    let run = pp(&[&"--report", &report, &"--vcek", &ark]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("it has no readable productName extension; pass --ask and --ark"),
        "{run}"
    );
}

#[test]
fn malformed_options_are_usage_errors() {
    for (option, value, message) in [
        ("--measurement", "abcd", "expected 96 hex digits (48 bytes)"),
        ("--report-data", "zz", "expected 128 hex digits (64 bytes)"),
        ("--min-tcb", "fmc=1", "unknown TCB component `fmc`"),
        (
            "--min-tcb",
            "0x7308000000010003",
            "reserved bytes 2..=5 of a TCB_VERSION must be zero",
        ),
    ] {
        let run = pp(&[
            &"--report",
            &milan_report(),
            &"--vcek",
            &milan_vcek(),
            &option,
            &value,
        ]);
        assert_eq!(run.code, 2, "{run}");
        assert!(run.stderr.contains(message), "{message}: {run}");
        assert!(run.stderr.contains(option), "{run}");
    }
    // Without --vcek.
    let run = pp(&[&"--report", &milan_report()]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("--vcek"), "{run}");
}
