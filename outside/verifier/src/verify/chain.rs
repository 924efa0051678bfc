//! Signature checks: certificate over certificate (through the `sev` crate) and the VCEK over
//! the report (directly with `p384`, over the report's own bytes).

use super::{FailReason, Outcome};
use pp_attestation::report::{Report, SignatureAlgo, SigningKey};
use x509_cert::Certificate;

/// Parses a DER certificate; `None` if it is not one (or has trailing bytes).
pub(super) fn parse(der: &[u8]) -> Option<Certificate> {
    use x509_cert::der::Decode;
    Certificate::from_der(der).ok()
}

/// Whether `issuer`'s RSA key made `subject`'s signature: RSASSA-PSS with SHA-384 and a 48-byte
/// salt, as AMD signs its ARK, ASK and VCEK certificates. The `sev` crate (`crypto_nossl`) does
/// the check; its error text is dropped, only the outcome is kept.
pub(super) fn signed_by(issuer: &Certificate, subject: &Certificate) -> Outcome {
    use sev::certs::snp::{Certificate as SevCert, Verifiable};
    let issuer = SevCert::from(issuer.clone());
    let subject = SevCert::from(subject.clone());
    match (&issuer, &subject).verify() {
        Ok(()) => Outcome::Pass,
        Err(_) => Outcome::Fail(FailReason::SignatureInvalid),
    }
}

/// Whether the VCEK's P-384 key signed the report.
///
/// Not the `sev` crate here: its check re-encodes its parsed `AttestationReport` and hashes that,
/// which needs the CPU generation guessed from the report (it fails on masked chip ids) and is not
/// the bytes the firmware signed. This hashes `report[0x000..0x2A0]` exactly as received.
pub(super) fn report_signed_by(vcek: &Certificate, report: &Report<&[u8]>) -> Outcome {
    use p384::ecdsa::signature::Verifier;
    use p384::ecdsa::{Signature, VerifyingKey};
    use x509_cert::der::referenced::OwnedToRef;

    if report.signature_algo() != SignatureAlgo::EcdsaP384Sha384 {
        return Outcome::Fail(FailReason::UnsupportedSignatureAlgorithm);
    }
    if report.signing_key() != SigningKey::Vcek {
        return Outcome::Fail(FailReason::NotSignedByVcek);
    }
    let spki = vcek.tbs_certificate.subject_public_key_info.owned_to_ref();
    let Ok(key) = VerifyingKey::try_from(spki) else {
        return Outcome::Fail(FailReason::VcekKeyNotP384);
    };
    let Some((r, s)) = report.signature().to_p384_be() else {
        return Outcome::Fail(FailReason::SignatureMalformed);
    };
    let Ok(signature) = Signature::from_scalars(r, s) else {
        return Outcome::Fail(FailReason::SignatureMalformed);
    };
    // `Verifier` for P-384 hashes the message with SHA-384, the report's algorithm.
    match key.verify(report.signed_bytes(), &signature) {
        Ok(()) => Outcome::Pass,
        Err(_) => Outcome::Fail(FailReason::SignatureInvalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amd(product: &str) -> (Certificate, Certificate) {
        use sev::certs::snp::builtin::{genoa, milan};
        let (ark, ask) = match product {
            "milan" => (milan::ark(), milan::ask()),
            _ => (genoa::ark(), genoa::ask()),
        };
        (ark.unwrap().into(), ask.unwrap().into())
    }

    #[test]
    fn amd_builtin_chains_verify() {
        for product in ["milan", "genoa"] {
            let (ark, ask) = amd(product);
            assert_eq!(signed_by(&ark, &ark), Outcome::Pass);
            assert_eq!(signed_by(&ark, &ask), Outcome::Pass);
            assert_eq!(
                signed_by(&ask, &ark),
                Outcome::Fail(FailReason::SignatureInvalid)
            );
        }
        let (milan_ark, _) = amd("milan");
        let (_, genoa_ask) = amd("genoa");
        assert_eq!(
            signed_by(&milan_ark, &genoa_ask),
            Outcome::Fail(FailReason::SignatureInvalid)
        );
    }

    #[test]
    fn parse_rejects_garbage_and_trailing_bytes() {
        assert!(parse(b"not a certificate").is_none());
        let der = sev::certs::snp::builtin::milan::ark()
            .unwrap()
            .to_der()
            .unwrap();
        assert!(parse(&der).is_some());
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(parse(&trailing).is_none());
    }
}
