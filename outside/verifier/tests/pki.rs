//! The chain checked as a PKI, with certificates and CRLs from the test root: expired and
//! not-yet-valid certificates, CA constraints, wrong products, revoked ASKs, and CRLs that are
//! not the ARK's.

#![cfg(feature = "test-attester")]

use pp_attestation::{Attester, Evidence, TcbVersion, report_data_for};
use pp_verifier::test_attester::{TEST_ASK_SERIAL, TEST_VCEK_NOT_AFTER, TestAttester, TestRoot};
use pp_verifier::verify::{CertRole, FailReason, PolicyError, Product, Serial, UnixTime};
use pp_verifier::{CheckName, Outcome, Policy, Verdict, verify};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};
use x509_cert::certificate::TbsCertificate;
use x509_cert::der::asn1::{Ia5StringRef, OctetString, UtcTime};
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::name::Name;
use x509_cert::time::Time;

const MEASUREMENT: [u8; 48] = [0x4D; 48];
/// 2026-06-01T00:00:00Z: inside the test chain's validity.
const IN_2026: u64 = 1_780_272_000;
/// 2025-01-01T00:00:00Z.
const IN_2025: u64 = 1_735_689_600;
/// 2027-01-01T00:00:00Z.
const IN_2027: u64 = 1_798_761_600;

fn root(which: u8) -> Arc<TestRoot> {
    static ROOTS: [OnceLock<Arc<TestRoot>>; 2] = [OnceLock::new(), OnceLock::new()];
    ROOTS[usize::from(which)]
        .get_or_init(|| Arc::new(TestRoot::generate([0x50 + which; 32]).expect("test root")))
        .clone()
}

fn attester() -> TestAttester {
    TestAttester::new(root(0), MEASUREMENT)
}

fn binding() -> [u8; 64] {
    report_data_for(&[1; 32], &[2; 32], &[3; 32], b"key config")
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn policy() -> Policy {
    Policy::trusting_test_root(
        root(0).ark_der(),
        vec![MEASUREMENT],
        TcbVersion::new(3, 0, 8, 115),
    )
    .unwrap()
}

fn honest() -> Evidence {
    attester().attest(&binding()).unwrap()
}

fn check_at(evidence: &Evidence, policy: &Policy, secs: u64) -> Verdict {
    verify(evidence, policy, &binding(), at(secs))
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

fn utc(secs: u64) -> Time {
    Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(secs)).unwrap())
}

/// Evidence for the honest report with the VCEK re-issued after `edit`.
fn with_vcek(edit: impl FnOnce(&mut TbsCertificate)) -> Evidence {
    let a = attester();
    Evidence {
        vcek_der: a.root.vcek_der_with(&a.chip_id, a.tcb, edit).unwrap(),
        ..honest()
    }
}

fn with_ask(edit: impl FnOnce(&mut TbsCertificate)) -> Evidence {
    Evidence {
        ask_der: root(0).ask_der_with(edit).unwrap(),
        ..honest()
    }
}

fn with_ark(edit: impl FnOnce(&mut TbsCertificate)) -> (Evidence, Policy) {
    let ark_der = root(0).ark_der_with(edit).unwrap();
    // The ARK's key is the trusted one whatever the certificate says.
    let policy =
        Policy::trusting_test_root(&ark_der, vec![MEASUREMENT], TcbVersion::new(3, 0, 8, 115))
            .unwrap();
    (
        Evidence {
            ark_der,
            ..honest()
        },
        policy,
    )
}

/// Replaces (or, with `None`, removes) the extension with `oid`.
fn set_extension(
    tbs: &mut TbsCertificate,
    oid: x509_cert::der::oid::ObjectIdentifier,
    der: Option<Vec<u8>>,
) {
    let exts = tbs.extensions.get_or_insert_with(Vec::new);
    exts.retain(|e| e.extn_id != oid);
    if let Some(der) = der {
        exts.push(x509_cert::ext::Extension {
            extn_id: oid,
            critical: true,
            extn_value: OctetString::new(der).unwrap(),
        });
    }
}

fn test_name(cn: &str) -> Name {
    Name::from_str(&format!("CN={cn},O=Private Processing TEST root (not AMD)")).unwrap()
}

#[test]
fn honest_evidence_passes_every_pki_check() {
    let verdict = check_at(&honest(), &policy(), IN_2026);
    assert!(verdict.accepted(), "{verdict}");
    for name in [
        CheckName::CertificatesValid,
        CheckName::CaConstraints,
        CheckName::ProductAgreement,
        CheckName::NotRevoked,
    ] {
        assert_eq!(verdict.outcome(name), Some(Outcome::Pass), "{name}");
    }
}

#[test]
fn expired_vcek_is_refused() {
    let verdict = check_at(&honest(), &policy(), TEST_VCEK_NOT_AFTER + 86_400);
    let reason = FailReason::CertificateExpired {
        cert: CertRole::Vcek,
        not_after: UnixTime(TEST_VCEK_NOT_AFTER),
        now: UnixTime(TEST_VCEK_NOT_AFTER + 86_400),
    };
    assert_only_failure(&verdict, CheckName::CertificatesValid, reason);
    assert_eq!(
        reason.to_string(),
        "VCEK certificate expired at 2031-01-01T00:00:00Z, device clock 2031-01-02T00:00:00Z"
    );
    // The last second of its validity is still inside it.
    assert!(check_at(&honest(), &policy(), TEST_VCEK_NOT_AFTER).accepted());
}

#[test]
fn expired_ask_is_refused() {
    let evidence = with_ask(|tbs| tbs.validity.not_after = utc(IN_2025));
    assert_only_failure(
        &check_at(&evidence, &policy(), IN_2026),
        CheckName::CertificatesValid,
        FailReason::CertificateExpired {
            cert: CertRole::Ask,
            not_after: UnixTime(IN_2025),
            now: UnixTime(IN_2026),
        },
    );
}

#[test]
fn not_yet_valid_certificates_are_refused() {
    let evidence = with_vcek(|tbs| tbs.validity.not_before = utc(IN_2027));
    let reason = FailReason::CertificateNotYetValid {
        cert: CertRole::Vcek,
        not_before: UnixTime(IN_2027),
        now: UnixTime(IN_2026),
    };
    assert_only_failure(
        &check_at(&evidence, &policy(), IN_2026),
        CheckName::CertificatesValid,
        reason,
    );
    assert_eq!(
        reason.to_string(),
        "VCEK certificate is not valid before 2027-01-01T00:00:00Z, device clock \
         2026-06-01T00:00:00Z"
    );
    // A device clock before the whole chain (2023): the ARK is named first.
    assert_only_failure(
        &check_at(&honest(), &policy(), 1_690_000_000),
        CheckName::CertificatesValid,
        FailReason::CertificateNotYetValid {
            cert: CertRole::Ark,
            not_before: UnixTime(1_704_067_200),
            now: UnixTime(1_690_000_000),
        },
    );
}

#[test]
fn ask_that_is_not_a_ca_is_refused() {
    let no_bc = with_ask(|tbs| set_extension(tbs, BasicConstraints::OID, None));
    assert_only_failure(
        &check_at(&no_bc, &policy(), IN_2026),
        CheckName::CaConstraints,
        FailReason::NotACa(CertRole::Ask),
    );
    let not_ca = BasicConstraints {
        ca: false,
        path_len_constraint: None,
    };
    let ca_false =
        with_ask(|tbs| set_extension(tbs, BasicConstraints::OID, Some(not_ca.to_der().unwrap())));
    assert_only_failure(
        &check_at(&ca_false, &policy(), IN_2026),
        CheckName::CaConstraints,
        FailReason::NotACa(CertRole::Ask),
    );
    let signing_only = KeyUsage(KeyUsages::DigitalSignature.into())
        .to_der()
        .unwrap();
    let no_cert_sign = with_ask(|tbs| set_extension(tbs, KeyUsage::OID, Some(signing_only)));
    let reason = FailReason::MayNotSignCertificates(CertRole::Ask);
    assert_only_failure(
        &check_at(&no_cert_sign, &policy(), IN_2026),
        CheckName::CaConstraints,
        reason,
    );
    assert_eq!(
        reason.to_string(),
        "ASK certificate may not sign certificates (keyUsage missing or without keyCertSign)"
    );
    let garbage = with_ask(|tbs| set_extension(tbs, KeyUsage::OID, Some(vec![0x05, 0x00])));
    assert_only_failure(
        &check_at(&garbage, &policy(), IN_2026),
        CheckName::CaConstraints,
        FailReason::CaExtensionMalformed(CertRole::Ask),
    );
}

#[test]
fn ark_constraints_are_checked() {
    let no_room = BasicConstraints {
        ca: true,
        path_len_constraint: Some(0),
    };
    let (evidence, policy) =
        with_ark(|tbs| set_extension(tbs, BasicConstraints::OID, Some(no_room.to_der().unwrap())));
    assert_only_failure(
        &check_at(&evidence, &policy, IN_2026),
        CheckName::CaConstraints,
        FailReason::PathLengthExceeded(CertRole::Ark),
    );
    let (evidence, policy) = with_ark(|tbs| set_extension(tbs, KeyUsage::OID, None));
    assert_only_failure(
        &check_at(&evidence, &policy, IN_2026),
        CheckName::CaConstraints,
        FailReason::MayNotSignCertificates(CertRole::Ark),
    );
}

#[test]
fn vcek_of_another_product_is_refused() {
    let genoa = Ia5StringRef::new("Genoa-B1").unwrap().to_der().unwrap();
    let product_oid = x509_cert::der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.2");
    let evidence = with_vcek(|tbs| {
        for ext in tbs.extensions.iter_mut().flatten() {
            if ext.extn_id == product_oid {
                ext.extn_value = OctetString::new(genoa.clone()).unwrap();
            }
        }
    });
    let reason = FailReason::ProductDisagrees {
        cert: CertRole::Vcek,
        product: Product::Genoa,
        ark_product: Product::Milan,
    };
    assert_only_failure(
        &check_at(&evidence, &policy(), IN_2026),
        CheckName::ProductAgreement,
        reason,
    );
    assert_eq!(
        reason.to_string(),
        "VCEK certificate is for Genoa, the ARK for Milan"
    );
}

#[test]
fn ask_of_another_product_is_refused() {
    // An ASK named SEV-Genoa under ARK-Milan, and a VCEK issued under that name.
    let evidence = Evidence {
        ask_der: root(0)
            .ask_der_with(|tbs| tbs.subject = test_name("SEV-Genoa"))
            .unwrap(),
        ..with_vcek(|tbs| tbs.issuer = test_name("SEV-Genoa"))
    };
    assert_only_failure(
        &check_at(&evidence, &policy(), IN_2026),
        CheckName::ProductAgreement,
        FailReason::ProductDisagrees {
            cert: CertRole::Ask,
            product: Product::Genoa,
            ark_product: Product::Milan,
        },
    );
    // The ASK renamed alone: the VCEK's issuer name no longer chains to it.
    let renamed = with_ask(|tbs| tbs.subject = test_name("SEV-Genoa"));
    assert_only_failure(
        &check_at(&renamed, &policy(), IN_2026),
        CheckName::ProductAgreement,
        FailReason::IssuerNameMismatch(CertRole::Vcek),
    );
    // An ASK that names no product.
    let evidence = Evidence {
        ask_der: root(0)
            .ask_der_with(|tbs| tbs.subject = test_name("SEV-Test"))
            .unwrap(),
        ..with_vcek(|tbs| tbs.issuer = test_name("SEV-Test"))
    };
    assert_only_failure(
        &check_at(&evidence, &policy(), IN_2026),
        CheckName::ProductAgreement,
        FailReason::UnknownProduct(CertRole::Ask),
    );
}

#[test]
fn revoked_ask_is_refused() {
    let crl = root(0).crl_der(&[&[9], &TEST_ASK_SERIAL]).unwrap();
    let policy = policy().with_amd_crl(&crl).unwrap();
    let reason = FailReason::Revoked {
        cert: CertRole::Ask,
        serial: Serial::new(&TEST_ASK_SERIAL),
        since: UnixTime(IN_2025),
    };
    assert_only_failure(
        &check_at(&honest(), &policy, IN_2026),
        CheckName::NotRevoked,
        reason,
    );
    assert_eq!(
        reason.to_string(),
        "ASK serial 0x02 is revoked by AMD's CRL (since 2025-01-01T00:00:00Z)"
    );
}

#[test]
fn crl_that_does_not_list_the_ask_passes() {
    for revoked in [&[][..], &[&[9u8][..], &[1u8][..], &[3u8][..]][..]] {
        let crl = root(0).crl_der(revoked).unwrap();
        let policy = policy().with_amd_crl(&crl).unwrap();
        let verdict = check_at(&honest(), &policy, IN_2026);
        assert!(verdict.accepted(), "{verdict}");
    }
}

#[test]
fn crl_not_signed_by_the_trusted_ark_is_an_error() {
    // Another root's CRL: the same issuer name, another key.
    let theirs = root(1).crl_der(&[&TEST_ASK_SERIAL]).unwrap();
    let err = policy().with_amd_crl(&theirs).unwrap_err();
    assert_eq!(err, PolicyError::CrlNotSignedByTrustedRoot);
    assert_eq!(err.to_string(), "AMD's CRL is not signed by a trusted ARK");
    // The test root's CRL under AMD's roots.
    let ours = root(0).crl_der(&[]).unwrap();
    let amd = Policy::new(vec![MEASUREMENT], TcbVersion::default()).unwrap();
    assert_eq!(
        amd.with_amd_crl(&ours).unwrap_err(),
        PolicyError::CrlNotSignedByTrustedRoot
    );
    // A flipped signature bit.
    let mut flipped = ours.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert_eq!(
        policy().with_amd_crl(&flipped).unwrap_err(),
        PolicyError::CrlNotSignedByTrustedRoot
    );
}

#[test]
fn malformed_or_misnamed_crls_are_errors() {
    for bad in [&b"not a crl"[..], &[], root(0).ark_der()] {
        assert_eq!(
            policy().with_amd_crl(bad).unwrap_err(),
            PolicyError::CrlMalformed
        );
    }
    let ours = root(0).crl_der(&[]).unwrap();
    let mut trailing = ours.clone();
    trailing.push(0);
    assert_eq!(
        policy().with_amd_crl(&trailing).unwrap_err(),
        PolicyError::CrlMalformed
    );
    let misnamed = root(0)
        .crl_der_with(&[], |tbs| tbs.issuer = test_name("ARK-Genoa"))
        .unwrap();
    assert_eq!(
        policy().with_amd_crl(&misnamed).unwrap_err(),
        PolicyError::CrlIssuerMismatch
    );
    let sha256_rsa = root(0)
        .crl_der_with(&[], |tbs| {
            tbs.signature = x509_cert::spki::AlgorithmIdentifierOwned {
                oid: x509_cert::der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11"),
                parameters: None,
            }
        })
        .unwrap();
    assert_eq!(
        policy().with_amd_crl(&sha256_rsa).unwrap_err(),
        PolicyError::CrlAlgorithm
    );
}

#[test]
fn crl_from_a_root_that_may_not_sign_crls_is_an_error() {
    let cert_sign_only = KeyUsage(KeyUsages::KeyCertSign.into()).to_der().unwrap();
    let ark = root(0)
        .ark_der_with(|tbs| set_extension(tbs, KeyUsage::OID, Some(cert_sign_only)))
        .unwrap();
    let policy =
        Policy::trusting_test_root(&ark, vec![MEASUREMENT], TcbVersion::default()).unwrap();
    assert_eq!(
        policy
            .with_amd_crl(&root(0).crl_der(&[]).unwrap())
            .unwrap_err(),
        PolicyError::CrlRootMayNotSignCrls
    );
}

#[test]
fn the_test_chain_looks_like_amds() {
    // Names and extensions as AMD's Milan chain carries them (see `verify::pki`).
    let ark = x509_cert::Certificate::from_der(root(0).ark_der()).unwrap();
    let ask = x509_cert::Certificate::from_der(root(0).ask_der()).unwrap();
    let (crit, bc) = ark
        .tbs_certificate
        .get::<BasicConstraints>()
        .unwrap()
        .unwrap();
    assert!(crit && bc.ca && bc.path_len_constraint.is_none());
    let (crit, ku) = ark.tbs_certificate.get::<KeyUsage>().unwrap().unwrap();
    assert!(crit && ku.key_cert_sign() && ku.crl_sign());
    let (_, bc) = ask
        .tbs_certificate
        .get::<BasicConstraints>()
        .unwrap()
        .unwrap();
    assert!(bc.ca && bc.path_len_constraint == Some(0));
    let (_, ku) = ask.tbs_certificate.get::<KeyUsage>().unwrap().unwrap();
    assert!(ku.key_cert_sign() && !ku.crl_sign());
    assert!(
        ark.tbs_certificate
            .subject
            .to_string()
            .contains("CN=ARK-Milan")
    );
    assert!(
        ask.tbs_certificate
            .subject
            .to_string()
            .contains("CN=SEV-Milan")
    );
}
