//! `pp verify-report` on the `sev` crate's real Milan report and VCEK.

use super::*;

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
