//! `pp verify-report` on a test-root chain and on input that is not a report or certificate.

use super::*;

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
