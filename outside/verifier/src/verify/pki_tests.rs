//! The PKI checks against AMD's real certificates: they must pass AMD's real chain and a real
//! VCEK inside their validity, and refuse them outside it.

use super::*;
use crate::verify::chain;
use crate::verify::{Outcome, verify};
use pp_attestation::TcbVersion;
use pp_attestation::report::Report;

/// A real Milan VCEK from AMD's KDS (from the `sev` crate's tests, valid 2023-04-03T19:23:43Z
/// to 2030-04-03T19:23:43Z) and the report it signed.
const REAL_VCEK: &[u8] = include_bytes!("../../tests/data/amd_milan_vcek.der");
const REAL_REPORT_HEX: &str = include_str!("../../tests/data/amd_milan_report.hex");

/// 2025-01-01T00:00:00Z, inside every real certificate's validity.
const IN_2025: u64 = 1_735_689_600;
/// The real VCEK's notAfter.
const VCEK_NOT_AFTER: u64 = 1_901_474_623;

fn amd(product: Product) -> (Certificate, Certificate) {
    use sev::certs::snp::builtin::{genoa, milan};
    let (ark, ask) = match product {
        Product::Milan => (milan::ark(), milan::ask()),
        Product::Genoa => (genoa::ark(), genoa::ask()),
    };
    (ark.unwrap().into(), ask.unwrap().into())
}

fn real_vcek() -> Certificate {
    chain::parse(REAL_VCEK).unwrap()
}

fn real_report() -> Vec<u8> {
    let hex = REAL_REPORT_HEX.trim();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn amd_real_milan_chain_and_vcek_pass_inside_their_validity() {
    let (ark, ask) = amd(Product::Milan);
    let vcek = real_vcek();
    assert_eq!(chain::signed_by(&ask, &vcek), Outcome::Pass);
    let chain = Chain {
        ark: &ark,
        ask: &ask,
        vcek: &vcek,
    };
    assert_eq!(validity(&chain, UnixTime(IN_2025)), Ok(()));
    assert_eq!(validity(&chain, UnixTime(VCEK_NOT_AFTER)), Ok(()));
    assert_eq!(ca_constraints(&chain), Ok(()));
    assert_eq!(product_agreement(&chain), Ok(()));
}

#[test]
fn amd_real_vcek_is_expired_after_its_not_after() {
    let (ark, ask) = amd(Product::Milan);
    let vcek = real_vcek();
    let chain = Chain {
        ark: &ark,
        ask: &ask,
        vcek: &vcek,
    };
    let now = UnixTime(VCEK_NOT_AFTER + 1);
    let err = validity(&chain, now).unwrap_err();
    assert_eq!(
        err,
        FailReason::CertificateExpired {
            cert: CertRole::Vcek,
            not_after: UnixTime(VCEK_NOT_AFTER),
            now,
        }
    );
    assert_eq!(
        err.to_string(),
        "VCEK certificate expired at 2030-04-03T19:23:43Z, device clock 2030-04-03T19:23:44Z"
    );
    // Before the ARK was made (2020-10-22T17:23:05Z).
    let err = validity(&chain, UnixTime(1_600_000_000)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ARK certificate is not valid before 2020-10-22T17:23:05Z, device clock \
         2020-09-13T12:26:40Z"
    );
}

#[test]
fn amd_real_evidence_is_accepted_whole_inside_its_validity_and_refused_after() {
    let report = real_report();
    let parsed = Report::new_checked(&report[..]).unwrap();
    let policy = Policy::new(vec![parsed.measurement()], TcbVersion::default()).unwrap();
    let expected = parsed.report_data();
    let (ark, ask) = amd(Product::Milan);
    let (ark, ask) = (ark.to_der().unwrap(), ask.to_der().unwrap());
    let evidence = crate::EvidenceRef {
        report: &report,
        vcek_der: REAL_VCEK,
        ask_der: &ask,
        ark_der: &ark,
    };
    let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    let verdict = verify(evidence, &policy, &expected, at(IN_2025));
    assert!(verdict.accepted(), "{verdict}");
    let verdict = verify(evidence, &policy, &expected, at(VCEK_NOT_AFTER + 1));
    assert_eq!(
        verdict.failures().collect::<Vec<_>>(),
        [(
            super::super::CheckName::CertificatesValid,
            FailReason::CertificateExpired {
                cert: CertRole::Vcek,
                not_after: UnixTime(VCEK_NOT_AFTER),
                now: UnixTime(VCEK_NOT_AFTER + 1),
            }
        )]
    );
}

#[test]
fn amd_real_genoa_chain_passes_its_ca_checks() {
    let (ark, ask) = amd(Product::Genoa);
    // No real Genoa VCEK here: the Genoa ARK and ASK are checked on their own, with the ASK in
    // the VCEK's place only for the validity check.
    let chain = Chain {
        ark: &ark,
        ask: &ask,
        vcek: &ask,
    };
    assert_eq!(ca_constraints(&chain), Ok(()));
    assert_eq!(validity(&chain, UnixTime(IN_2025)), Ok(()));
    // A Milan VCEK under the Genoa chain: its issuer is SEV-Milan.
    let vcek = real_vcek();
    let chain = Chain {
        ark: &ark,
        ask: &ask,
        vcek: &vcek,
    };
    assert_eq!(
        product_agreement(&chain),
        Err(FailReason::IssuerNameMismatch(CertRole::Vcek))
    );
}

#[test]
fn amd_real_certificates_in_the_wrong_places() {
    let (ark, ask) = amd(Product::Milan);
    let vcek = real_vcek();
    // The ASK as the ARK: path length 0 is fine on an ASK, but it is named SEV-Milan and issued
    // by the ARK, not by itself.
    let chain = Chain {
        ark: &ask,
        ask: &ask,
        vcek: &vcek,
    };
    assert_eq!(
        product_agreement(&chain),
        Err(FailReason::IssuerNameMismatch(CertRole::Ark))
    );
    assert_eq!(
        ca_constraints(&chain),
        Err(FailReason::PathLengthExceeded(CertRole::Ark))
    );
    // The VCEK as the ASK: not a CA.
    let chain = Chain {
        ark: &ark,
        ask: &vcek,
        vcek: &vcek,
    };
    assert_eq!(
        ca_constraints(&chain),
        Err(FailReason::NotACa(CertRole::Ask))
    );
}

#[test]
fn serial_and_time_display() {
    assert_eq!(Serial::new(&[0x01, 0x00, 0x01]).to_string(), "0x010001");
    assert_eq!(UnixTime(0).to_string(), "1970-01-01T00:00:00Z");
    assert_eq!(
        UnixTime::from_system_time(SystemTime::UNIX_EPOCH - Duration::from_secs(5)),
        UnixTime(0)
    );
}

/// A CRL applies only to the chain of the root that signed it: a CRL from AMD's Milan root that
/// lists the serial of AMD's Genoa ASK does not revoke the Genoa chain; the same list from the
/// Genoa root does.
#[test]
fn a_crl_from_one_root_does_not_revoke_another_roots_ask() {
    let (milan_ark, milan_ask) = amd(Product::Milan);
    let (genoa_ark, genoa_ask) = amd(Product::Genoa);
    let spki = |c: &Certificate| c.tbs_certificate.subject_public_key_info.to_der().unwrap();
    let genoa_serial = genoa_ask.tbs_certificate.serial_number.as_bytes().to_vec();
    let genoa = Chain {
        ark: &genoa_ark,
        ask: &genoa_ask,
        vcek: &genoa_ask,
    };
    let milan = Chain {
        ark: &milan_ark,
        ask: &milan_ask,
        vcek: &milan_ask,
    };
    let mut policy = Policy::new(vec![], TcbVersion::default()).unwrap();
    policy.amd_crls.push(crate::verify::crl::AmdCrl::for_test(
        spki(&milan_ark),
        &[&genoa_serial],
    ));
    assert_eq!(not_revoked(&genoa, &policy), Ok(()));
    assert_eq!(not_revoked(&milan, &policy), Ok(()));
    policy.amd_crls.push(crate::verify::crl::AmdCrl::for_test(
        spki(&genoa_ark),
        &[&genoa_serial],
    ));
    assert_eq!(
        not_revoked(&genoa, &policy),
        Err(FailReason::Revoked {
            cert: CertRole::Ask,
            serial: Serial::new(&genoa_serial),
            since: UnixTime(0),
        })
    );
    assert_eq!(not_revoked(&milan, &policy), Ok(()));
}
