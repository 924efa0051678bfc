//! The verifier against evidence from the test attester: one honest case, then one test per way
//! evidence can be wrong, each asserting exactly which check fails.

#![cfg(feature = "test-attester")]

use pp_attestation::report::{REPORT_LEN, Report, SignatureAlgo, field, policy};
use pp_attestation::{Attester, Evidence, TcbVersion, WireError, report_data_for};
use pp_verifier::test_attester::{TestAttester, TestRoot};
use pp_verifier::verify::{CertRole, FailReason, GuestPolicyRule, TcbFloor, VcekExtension};
use pp_verifier::{CheckName, Outcome, Policy, Verdict, verify};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

const MEASUREMENT: [u8; 48] = [0x4D; 48];

/// Generating RSA-4096 keys takes a while: one root per seed per test process.
fn root(which: u8) -> Arc<TestRoot> {
    static ROOTS: [OnceLock<Arc<TestRoot>>; 2] = [OnceLock::new(), OnceLock::new()];
    ROOTS[usize::from(which)]
        .get_or_init(|| Arc::new(TestRoot::generate([which; 32]).expect("test root")))
        .clone()
}

fn attester() -> TestAttester {
    TestAttester::new(root(0), MEASUREMENT)
}

fn binding() -> [u8; 64] {
    report_data_for(&[0xE5; 32], &[0x0C; 32], &[0x4E; 32], b"hpke key config")
}

/// The test root instead of AMD's, and otherwise the real floor: test reports meet it.
fn policy_for(root: &TestRoot) -> Policy {
    Policy::trusting_test_root(root.ark_der(), vec![MEASUREMENT], TcbFloor::AMD_BULLETINS).unwrap()
}

/// The device clock in these tests: 2026-06-01T00:00:00Z, inside the test chain's validity.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

fn check(evidence: &Evidence) -> Verdict {
    verify(evidence, &policy_for(&root(0)), &binding(), now())
}

/// Exactly one check failed, with this reason; every other one passed.
fn assert_only_failure(verdict: &Verdict, name: CheckName, reason: FailReason) {
    assert!(!verdict.accepted(), "{verdict}");
    for c in verdict.checks() {
        let want = if c.name == name {
            Outcome::Fail(reason)
        } else {
            Outcome::Pass
        };
        assert_eq!(c.outcome, want, "{}\n{verdict}", c.name);
    }
}

fn signed(attester: &TestAttester, edit: impl FnOnce(&mut pp_attestation::ReportRepr)) -> Evidence {
    let mut repr = attester.report_repr(&binding());
    edit(&mut repr);
    let report = attester.root.sign_report(&repr);
    attester.evidence_for(report).unwrap()
}

#[test]
fn honest_evidence_is_accepted() {
    let evidence = attester().attest(&binding()).unwrap();
    assert_eq!(evidence.report.len(), REPORT_LEN);
    let verdict = check(&evidence);
    assert!(verdict.accepted(), "{verdict}");
    assert_eq!(verdict.checks().len(), CheckName::ALL.len());
    assert!(verdict.to_string().ends_with("accepted"));
}

#[test]
fn the_sev_crate_also_accepts_test_evidence() {
    // An independent implementation reads the same layout and verifies the same chain.
    use sev::certs::snp::{Chain, Verifiable};
    use sev::firmware::guest::AttestationReport;
    use sev::parser::ByteParser;
    let evidence = attester().attest(&binding()).unwrap();
    let report = AttestationReport::from_bytes(&evidence.report).unwrap();
    assert_eq!(report.measurement, MEASUREMENT);
    assert_eq!(report.report_data, binding());
    let chain = Chain::from_der(&evidence.ark_der, &evidence.ask_der, &evidence.vcek_der).unwrap();
    (&chain, &report).verify().unwrap();
}

#[test]
fn generation_is_deterministic() {
    let a = attester();
    let chip = a.chip_id;
    assert_eq!(
        a.root.vcek_der(&chip, a.tcb).unwrap(),
        a.root.vcek_der(&chip, a.tcb).unwrap()
    );
    assert_eq!(a.attest(&binding()).unwrap(), a.attest(&binding()).unwrap());
    assert_ne!(root(0).ark_der(), root(1).ark_der());
}

#[test]
fn measurement_not_allowed() {
    let mut other = attester();
    other.measurement = [0x66; 48];
    let verdict = check(&other.attest(&binding()).unwrap());
    assert_only_failure(
        &verdict,
        CheckName::Measurement,
        FailReason::MeasurementNotAllowed,
    );
}

#[test]
fn tampered_measurement_breaks_the_signature() {
    let mut evidence = attester().attest(&binding()).unwrap();
    Report::new_checked(&mut evidence.report[..])
        .unwrap()
        .set_measurement(&[0x66; 48]);
    let verdict = check(&evidence);
    assert_eq!(
        verdict.outcome(CheckName::ReportSignature),
        Some(Outcome::Fail(FailReason::SignatureInvalid))
    );
    assert_eq!(
        verdict.outcome(CheckName::Measurement),
        Some(Outcome::Fail(FailReason::MeasurementNotAllowed))
    );
}

#[test]
fn report_data_differs_from_the_binding() {
    let evidence = attester().attest(&[0x11; 64]).unwrap();
    assert_only_failure(
        &check(&evidence),
        CheckName::ReportData,
        FailReason::ReportDataMismatch,
    );
}

#[test]
fn tampered_report_data_breaks_the_signature() {
    let mut evidence = attester().attest(&[0x11; 64]).unwrap();
    Report::new_checked(&mut evidence.report[..])
        .unwrap()
        .set_report_data(&binding());
    assert_only_failure(
        &check(&evidence),
        CheckName::ReportSignature,
        FailReason::SignatureInvalid,
    );
}

#[test]
fn debug_policy_is_refused() {
    let mut debug = attester();
    debug.policy |= policy::DEBUG;
    assert_only_failure(
        &check(&debug.attest(&binding()).unwrap()),
        CheckName::GuestPolicy,
        FailReason::DebugAllowed,
    );
}

#[test]
fn tampered_debug_bit_breaks_the_signature() {
    let mut evidence = attester().attest(&binding()).unwrap();
    let mut report = Report::new_checked(&mut evidence.report[..]).unwrap();
    let with_debug = report.policy() | policy::DEBUG;
    report.set_policy(with_debug);
    let verdict = check(&evidence);
    assert_eq!(
        verdict.outcome(CheckName::ReportSignature),
        Some(Outcome::Fail(FailReason::SignatureInvalid))
    );
    assert_eq!(
        verdict.outcome(CheckName::GuestPolicy),
        Some(Outcome::Fail(FailReason::DebugAllowed))
    );
}

#[test]
fn migration_agent_and_pinned_bits_are_refused() {
    let mut ma = attester();
    ma.policy |= policy::MIGRATE_MA;
    assert_only_failure(
        &check(&ma.attest(&binding()).unwrap()),
        CheckName::GuestPolicy,
        FailReason::MigrationAgentAllowed,
    );
    let no_smt = policy_for(&root(0)).with_guest_policy(GuestPolicyRule {
        pinned_mask: policy::SMT,
        pinned_value: 0,
    });
    let verdict = verify(
        &attester().attest(&binding()).unwrap(),
        &no_smt,
        &binding(),
        now(),
    );
    assert_only_failure(
        &verdict,
        CheckName::GuestPolicy,
        FailReason::PinnedPolicyBitsDiffer,
    );
}

#[test]
fn flipped_signature_byte() {
    let mut evidence = attester().attest(&binding()).unwrap();
    evidence.report[field::SIGNATURE_R.start] ^= 1;
    assert_only_failure(
        &check(&evidence),
        CheckName::ReportSignature,
        FailReason::SignatureInvalid,
    );
    let mut padded = attester().attest(&binding()).unwrap();
    padded.report[field::SIGNATURE_S.end - 1] = 1;
    assert_only_failure(
        &check(&padded),
        CheckName::ReportSignature,
        FailReason::SignatureMalformed,
    );
}

#[test]
fn report_must_claim_ecdsa_and_the_vcek() {
    let a = attester();
    let algo = signed(&a, |r| r.signature_algo = SignatureAlgo::Unknown(2));
    assert_only_failure(
        &check(&algo),
        CheckName::ReportSignature,
        FailReason::UnsupportedSignatureAlgorithm,
    );
    let vlek = signed(&a, |r| r.key_info = 1 << 2);
    assert_only_failure(
        &check(&vlek),
        CheckName::ReportSignature,
        FailReason::NotSignedByVcek,
    );
}

#[test]
fn vcek_signed_by_another_ask() {
    let ours = attester().attest(&binding()).unwrap();
    let theirs = TestAttester::new(root(1), MEASUREMENT)
        .attest(&binding())
        .unwrap();
    // Their VCEK and the report it signed, presented under our ASK and ARK.
    let mixed = Evidence {
        report: theirs.report,
        vcek_der: theirs.vcek_der,
        ..ours
    };
    assert_only_failure(
        &check(&mixed),
        CheckName::VcekSignedByAsk,
        FailReason::SignatureInvalid,
    );
}

#[test]
fn wrong_ark() {
    let evidence = TestAttester::new(root(1), MEASUREMENT)
        .attest(&binding())
        .unwrap();
    assert_only_failure(
        &check(&evidence),
        CheckName::ArkTrusted,
        FailReason::UntrustedRoot,
    );
}

#[test]
fn ask_presented_as_ark() {
    let mut evidence = attester().attest(&binding()).unwrap();
    evidence.ark_der = evidence.ask_der.clone();
    let verdict = check(&evidence);
    for (name, reason) in [
        (CheckName::ArkSelfSigned, FailReason::SignatureInvalid),
        (CheckName::ArkTrusted, FailReason::UntrustedRoot),
        (CheckName::AskSignedByArk, FailReason::SignatureInvalid),
    ] {
        assert_eq!(verdict.outcome(name), Some(Outcome::Fail(reason)), "{name}");
    }
}

#[test]
fn test_root_under_the_default_policy() {
    let evidence = attester().attest(&binding()).unwrap();
    let default = Policy::new(vec![MEASUREMENT], TcbVersion::new(3, 0, 8, 115)).unwrap();
    assert_only_failure(
        &verify(&evidence, &default, &binding(), now()),
        CheckName::ArkTrusted,
        FailReason::UntrustedRoot,
    );
}

#[test]
fn forged_vcek_under_amd_real_chain() {
    // AMD's real Milan ARK and ASK with our VCEK: the ARK is trusted and the ASK is AMD's, but
    // AMD's ASK did not sign the VCEK (and the VCEK names the test ASK as its issuer).
    let ours = attester().attest(&binding()).unwrap();
    let evidence = Evidence {
        ark_der: sev::certs::snp::builtin::milan::ark()
            .unwrap()
            .to_der()
            .unwrap(),
        ask_der: sev::certs::snp::builtin::milan::ask()
            .unwrap()
            .to_der()
            .unwrap(),
        ..ours
    };
    let default = Policy::new(vec![MEASUREMENT], TcbVersion::new(3, 0, 8, 115)).unwrap();
    let verdict = verify(&evidence, &default, &binding(), now());
    assert!(!verdict.accepted());
    assert_eq!(
        verdict.failures().collect::<Vec<_>>(),
        [
            (CheckName::VcekSignedByAsk, FailReason::SignatureInvalid),
            (
                CheckName::ProductAgreement,
                FailReason::IssuerNameMismatch(CertRole::Vcek)
            ),
        ]
    );
}

#[test]
fn reported_tcb_differs_from_the_vcek() {
    let a = attester();
    // The report claims a newer TCB than the VCEK was issued for.
    let evidence = signed(&a, |r| r.reported_tcb = TcbVersion::new(4, 0, 25, 219));
    assert_only_failure(
        &check(&evidence),
        CheckName::TcbMatchesReport,
        FailReason::TcbMismatch,
    );
}

#[test]
fn vcek_tcb_below_the_minimum() {
    let mut old = attester();
    old.tcb = TcbVersion::new(4, 0, 23, 219);
    let verdict = check(&old.attest(&binding()).unwrap());
    assert!(
        verdict
            .to_string()
            .contains("FAIL  tcb-minimum: vcek_tcb.snp 23 below the floor 24 (Milan)"),
        "{verdict}"
    );
}

#[test]
fn chip_id_mismatch() {
    let a = attester();
    let evidence = signed(&a, |r| r.chip_id = [0x99; 64]);
    assert_only_failure(
        &check(&evidence),
        CheckName::ChipId,
        FailReason::ChipIdMismatch,
    );
}

#[test]
fn vmpl_not_zero() {
    let evidence = signed(&attester(), |r| r.vmpl = 1);
    assert_only_failure(&check(&evidence), CheckName::Vmpl, FailReason::VmplNotZero);
}

#[test]
fn truncated_report() {
    let mut evidence = attester().attest(&binding()).unwrap();
    evidence.report.truncate(REPORT_LEN - 1);
    let verdict = check(&evidence);
    assert!(!verdict.accepted());
    assert_eq!(
        verdict.outcome(CheckName::ReportFormat),
        Some(Outcome::Fail(FailReason::Report(WireError::BadLength)))
    );
    for name in [
        CheckName::ReportSignature,
        CheckName::TcbMatchesReport,
        CheckName::ChipId,
        CheckName::GuestPolicy,
        CheckName::Measurement,
        CheckName::ReportData,
        CheckName::Vmpl,
    ] {
        assert_eq!(verdict.outcome(name), Some(Outcome::Skipped), "{name}");
    }
    // The chain does not depend on the report and is still checked.
    assert_eq!(
        verdict.outcome(CheckName::VcekSignedByAsk),
        Some(Outcome::Pass)
    );
}

#[test]
fn wrong_version() {
    for version in [1, 6] {
        let evidence = signed(&attester(), |r| r.version = version);
        let verdict = check(&evidence);
        assert_eq!(
            verdict.outcome(CheckName::ReportFormat),
            Some(Outcome::Fail(FailReason::Report(
                WireError::UnsupportedVersion
            )))
        );
        assert_eq!(
            verdict.outcome(CheckName::ReportSignature),
            Some(Outcome::Skipped)
        );
        assert!(!verdict.accepted());
    }
}

#[test]
fn garbage_certificates() {
    let mut evidence = attester().attest(&binding()).unwrap();
    evidence.vcek_der = b"not a certificate".to_vec();
    let verdict = check(&evidence);
    assert_eq!(
        verdict.outcome(CheckName::VcekSignedByAsk),
        Some(Outcome::Fail(FailReason::CertificateMalformed))
    );
    for name in [
        CheckName::ReportSignature,
        CheckName::TcbMinimum,
        CheckName::TcbMatchesReport,
        CheckName::ChipId,
    ] {
        assert_eq!(verdict.outcome(name), Some(Outcome::Skipped), "{name}");
    }
    // An ASK in place of the VCEK: signed by the ARK, not by the ASK, and without VCEK extensions.
    let mut evidence = attester().attest(&binding()).unwrap();
    evidence.vcek_der = evidence.ask_der.clone();
    let verdict = check(&evidence);
    assert_eq!(
        verdict.outcome(CheckName::VcekSignedByAsk),
        Some(Outcome::Fail(FailReason::SignatureInvalid))
    );
    assert_eq!(
        verdict.outcome(CheckName::ReportSignature),
        Some(Outcome::Fail(FailReason::VcekKeyNotP384))
    );
    assert_eq!(
        verdict.outcome(CheckName::TcbMinimum),
        Some(Outcome::Fail(FailReason::VcekExtensionMissing(
            VcekExtension::ProductName
        )))
    );
}

#[test]
fn precomputed_material_gives_the_same_verifiable_reports() {
    use pp_attestation::test_signer::PrecomputedAttester;
    let full = attester();
    let root = root(0);
    let pre = PrecomputedAttester::new(
        &root.vcek_scalar(),
        root.vcek_der(&full.chip_id, full.tcb).unwrap(),
        root.ask_der().to_vec(),
        root.ark_der().to_vec(),
        full.chip_id,
        full.tcb,
        full.measurement,
    )
    .unwrap();
    let evidence = pre.attest(&binding()).unwrap();
    assert_eq!(evidence, full.attest(&binding()).unwrap());
    assert!(check(&evidence).accepted());
    assert!(
        PrecomputedAttester::new(
            &[0u8; 48],
            vec![],
            vec![],
            vec![],
            [0; 64],
            full.tcb,
            [0; 48]
        )
        .is_err()
    );
}
