//! The release's launch requirements against evidence from the test attester: the TCB floor (the
//! VCEK's and the report's reported, committed, launch and current TCBs) and the exact guest
//! policy with its `PLATFORM_INFO` rule. The test root is held to the same floor and policy as
//! AMD's roots; every refusal names the field and both values.

#![cfg(feature = "test-attester")]

use pp_attestation::tcb::{TcbComponent, TcbVersion};
use pp_attestation::{Attester, Evidence, report_data_for};
use pp_verifier::test_attester::{TestAttester, TestRoot};
use pp_verifier::verify::{
    BelowFloor, FailReason, GuestPolicyRule, MILAN_MINIMUM_TCB, ProductLine, RELEASE_GUEST_POLICY,
    TcbField, TcbFloor, platform,
};
use pp_verifier::{CheckName, Outcome, Policy, Verdict, verify};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

const MEASUREMENT: [u8; 48] = [0x6A; 48];

/// 2026-06-01: inside the test chain's validity (the PKI checks read the caller's clock).
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

fn root() -> Arc<TestRoot> {
    static ROOT: OnceLock<Arc<TestRoot>> = OnceLock::new();
    ROOT.get_or_init(|| Arc::new(TestRoot::generate([3; 32]).expect("test root")))
        .clone()
}

fn attester() -> TestAttester {
    TestAttester::new(root(), MEASUREMENT)
}

fn binding() -> [u8; 64] {
    report_data_for(&[0x11; 32], &[0x22; 32], &[0x33; 32], b"key config")
}

/// What a device builds for a release: AMD's floor and the release's exact guest policy, with
/// the test root in place of AMD's roots (and nothing else different).
fn release_policy(guest_policy: u64) -> Policy {
    Policy::trusting_test_root(root().ark_der(), vec![MEASUREMENT], TcbFloor::AMD_BULLETINS)
        .unwrap()
        .with_guest_policy(GuestPolicyRule::exact(guest_policy).unwrap())
}

fn check(evidence: &Evidence) -> Verdict {
    verify(
        evidence,
        &release_policy(RELEASE_GUEST_POLICY),
        &binding(),
        now(),
    )
}

fn signed(a: &TestAttester, edit: impl FnOnce(&mut pp_attestation::ReportRepr)) -> Evidence {
    let mut repr = a.report_repr(&binding());
    edit(&mut repr);
    a.evidence_for(a.root.sign_report(&repr)).unwrap()
}

/// These checks failed with this reason and every other one passed.
fn assert_failures(verdict: &Verdict, failed: &[(CheckName, FailReason)]) {
    assert!(!verdict.accepted(), "{verdict}");
    for c in verdict.checks() {
        let want = failed
            .iter()
            .find(|(name, _)| *name == c.name)
            .map_or(Outcome::Pass, |(_, reason)| Outcome::Fail(*reason));
        assert_eq!(c.outcome, want, "{}\n{verdict}", c.name);
    }
}

/// The Milan floor with `component` one lower.
fn one_below(component: TcbComponent) -> TcbVersion {
    let mut tcb = MILAN_MINIMUM_TCB;
    match component {
        TcbComponent::BootLoader => tcb.boot_loader -= 1,
        TcbComponent::Tee => unreachable!("the TEE floor is 0"),
        TcbComponent::Snp => tcb.snp -= 1,
        TcbComponent::Microcode => tcb.microcode -= 1,
    }
    tcb
}

/// The components whose floor is above zero (TEE's is 0: nothing is below it).
const LOWERABLE: [TcbComponent; 3] = [
    TcbComponent::BootLoader,
    TcbComponent::Snp,
    TcbComponent::Microcode,
];

fn below(field: TcbField, component: TcbComponent) -> FailReason {
    FailReason::TcbBelowFloor(BelowFloor {
        field,
        component,
        value: MILAN_MINIMUM_TCB.component(component) - 1,
        floor: MILAN_MINIMUM_TCB.component(component),
        product: ProductLine::Milan,
    })
}

#[test]
fn honest_evidence_meets_the_floor_and_the_policy() {
    let verdict = check(&attester().attest(&binding()).unwrap());
    assert!(verdict.accepted(), "{verdict}");
    // Exactly at the floor is accepted too.
    let mut at_floor = attester();
    at_floor.tcb = MILAN_MINIMUM_TCB;
    let verdict = check(&at_floor.attest(&binding()).unwrap());
    assert!(verdict.accepted(), "{verdict}");
}

#[test]
fn vcek_tcb_one_below_the_floor() {
    for component in LOWERABLE {
        // The VCEK is issued for the low TCB, and the report states it everywhere.
        let mut low = attester();
        low.tcb = one_below(component);
        let verdict = check(&low.attest(&binding()).unwrap());
        let reason = below(TcbField::Vcek, component);
        assert_failures(&verdict, &[(CheckName::TcbMinimum, reason)]);
        assert!(
            verdict
                .to_string()
                .contains(&format!("FAIL  tcb-minimum: vcek_tcb.{component}")),
            "{verdict}"
        );
    }
}

#[test]
fn reported_tcb_one_below_the_floor() {
    for component in LOWERABLE {
        let evidence = signed(&attester(), |r| r.reported_tcb = one_below(component));
        let verdict = check(&evidence);
        // It also differs from the VCEK's.
        assert_failures(
            &verdict,
            &[
                (CheckName::TcbMinimum, below(TcbField::Reported, component)),
                (CheckName::TcbMatchesReport, FailReason::TcbMismatch),
            ],
        );
    }
}

#[test]
fn committed_launch_and_current_tcb_one_below_the_floor() {
    for component in LOWERABLE {
        let low = one_below(component);
        for (field, edit) in [
            (
                TcbField::Committed,
                (|r, t| r.committed_tcb = t) as fn(&mut pp_attestation::ReportRepr, TcbVersion),
            ),
            (TcbField::Launch, |r, t| r.launch_tcb = t),
            (TcbField::Current, |r, t| r.current_tcb = t),
        ] {
            let evidence = signed(&attester(), |r| edit(r, low));
            assert_failures(
                &check(&evidence),
                &[(CheckName::TcbMinimum, below(field, component))],
            );
        }
    }
}

#[test]
fn refusal_text_names_the_field_the_component_and_both_values() {
    let evidence = signed(&attester(), |r| {
        r.launch_tcb = TcbVersion::new(4, 0, 23, 219);
    });
    let text = check(&evidence).to_string();
    assert!(
        text.contains("FAIL  tcb-minimum: launch_tcb.snp 23 below the floor 24 (Milan)"),
        "{text}"
    );
}

#[test]
fn a_policy_other_than_the_release_s_is_refused_naming_both_values() {
    for (policy, differing) in [
        (0x20000, "SMT"),            // SMT forbidden
        (0x130000, "SINGLE_SOCKET"), // single socket required
        (0xB0000, "DEBUG"),          // debugging allowed
        (0x30100, "ABI_MAJOR"),      // ABI minimum 1.0
        (0x3002A, "ABI_MINOR"),      // ABI minimum 0.42
        (0x70000, "MIGRATE_MA"),     // migration agent
        (0x1030000, "bit 24"),       // ciphertext hiding required
    ] {
        let mut a = attester();
        a.policy = policy;
        let verdict = check(&a.attest(&binding()).unwrap());
        let reason = FailReason::GuestPolicyDiffers {
            reported: policy,
            expected: 0x30000,
        };
        assert_failures(&verdict, &[(CheckName::GuestPolicy, reason)]);
        let line = format!(
            "FAIL  guest-policy: guest policy {policy:#x} differs from the release's 0x30000 \
             (differing: {differing})"
        );
        assert!(verdict.to_string().contains(&line), "{verdict}");
    }
}

#[test]
fn smt_on_the_host_is_refused_when_the_policy_forbids_it() {
    let no_smt = 0x20000;
    let mut a = attester();
    a.policy = no_smt;
    let policy = release_policy(no_smt);
    let honest = verify(&a.attest(&binding()).unwrap(), &policy, &binding(), now());
    assert!(honest.accepted(), "{honest}");
    let evidence = signed(&a, |r| {
        r.platform_info = platform::SMT_EN | platform::TSME_EN
    });
    let verdict = verify(&evidence, &policy, &binding(), now());
    assert_failures(
        &verdict,
        &[(
            CheckName::GuestPolicy,
            FailReason::SmtEnabledButForbidden {
                platform_info: 0x3,
                policy: no_smt,
            },
        )],
    );
    // Under the release policy (SMT allowed) the same platform is only noted.
    let smt_host = signed(&attester(), |r| {
        r.platform_info = platform::SMT_EN | platform::ALIAS_CHECK_COMPLETE
    });
    assert!(check(&smt_host).accepted());
}

/// BadRAM: a version 3+ report from a host whose firmware did not complete the memory alias check
/// is refused, naming `platform_info` and the bit; the test attester's honest reports set it.
#[test]
fn a_report_without_the_badram_alias_check_is_refused() {
    assert!(check(&attester().attest(&binding()).unwrap()).accepted());
    let evidence = signed(&attester(), |r| {
        r.platform_info &= !platform::ALIAS_CHECK_COMPLETE
    });
    let verdict = check(&evidence);
    let reason = FailReason::AliasCheckIncomplete {
        platform_info: 0,
        version: 5,
    };
    assert_failures(&verdict, &[(CheckName::GuestPolicy, reason)]);
    assert!(
        verdict.to_string().contains(
            "FAIL  guest-policy: platform_info 0x0 lacks ALIAS_CHECK_COMPLETE (bit 5: no BadRAM \
             alias check since the last reset) in a version 5 report"
        ),
        "{verdict}"
    );
    // Version 2 (older firmware) has no such bit and is exempt.
    let v2 = signed(&attester(), |r| {
        r.version = 2;
        r.platform_info = 0;
    });
    assert!(check(&v2).accepted(), "{}", check(&v2));
}

fn genoa_root() -> Arc<TestRoot> {
    static ROOT: OnceLock<Arc<TestRoot>> = OnceLock::new();
    ROOT.get_or_init(|| {
        Arc::new(TestRoot::generate_for([4; 32], ProductLine::Genoa).expect("test root"))
    })
    .clone()
}

/// A Genoa VCEK (chain `ARK-Genoa`, `SEV-Genoa`, `productName` `Genoa-B1`) is held to Genoa's
/// floor: a TCB that meets Milan's (bootloader 4) is refused, naming Genoa; at Genoa's floor the
/// same chain is accepted, so the refusal is the floor's and not the chain's.
#[test]
fn a_genoa_vcek_is_held_to_the_genoa_floor() {
    let root = genoa_root();
    assert_eq!(root.product_name(), "Genoa-B1");
    let policy =
        Policy::trusting_test_root(root.ark_der(), vec![MEASUREMENT], TcbFloor::AMD_BULLETINS)
            .unwrap()
            .with_guest_policy(GuestPolicyRule::exact(RELEASE_GUEST_POLICY).unwrap());
    let mut a = TestAttester::new(root, MEASUREMENT);
    assert_eq!(a.tcb.meets(&MILAN_MINIMUM_TCB), Ok(()));
    let verdict = verify(&a.attest(&binding()).unwrap(), &policy, &binding(), now());
    let reason = FailReason::TcbBelowFloor(BelowFloor {
        field: TcbField::Vcek,
        component: TcbComponent::BootLoader,
        value: 4,
        floor: 7,
        product: ProductLine::Genoa,
    });
    assert_failures(&verdict, &[(CheckName::TcbMinimum, reason)]);
    assert!(
        verdict
            .to_string()
            .contains("FAIL  tcb-minimum: vcek_tcb.boot_loader 4 below the floor 7 (Genoa)"),
        "{verdict}"
    );
    a.tcb = TcbVersion::new(7, 0, 0x18, 0xDB);
    let verdict = verify(&a.attest(&binding()).unwrap(), &policy, &binding(), now());
    assert!(verdict.accepted(), "{verdict}");
}
