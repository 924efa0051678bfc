//! What the device accepts: the trusted roots, the minimum TCB, the allowed measurements and the
//! guest policy.

use super::FailReason;
use super::crl::AmdCrl;
use pp_attestation::report::policy as bits;
use pp_attestation::tcb::TcbVersion;
use x509_cert::Certificate;
use x509_cert::der::Encode;

/// Which root a [`TrustedRoot`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RootLabel {
    /// AMD's Milan ARK (built into the `sev` crate).
    AmdMilan,
    /// AMD's Genoa ARK (built into the `sev` crate).
    AmdGenoa,
    /// A generated test ARK. Only [`Policy::trusting_test_root`] can add one.
    Test,
}

/// A root the policy trusts: identified by its public key (the DER `SubjectPublicKeyInfo`), so
/// a re-issued certificate for the same key is still recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedRoot {
    label: RootLabel,
    spki_der: Vec<u8>,
    /// The root's certificate: its name and `keyUsage`, for checking AMD's CRL.
    cert: Certificate,
}

impl TrustedRoot {
    fn from_cert(label: RootLabel, cert: &Certificate) -> Result<Self, PolicyError> {
        let spki_der = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|_| PolicyError::RootMalformed)?;
        Ok(Self {
            label,
            spki_der,
            cert: cert.clone(),
        })
    }

    /// Which root this is.
    pub fn label(&self) -> RootLabel {
        self.label
    }

    /// The root's `SubjectPublicKeyInfo`, DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The root's certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }
}

/// Errors from building a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A root certificate (built-in or given) could not be read.
    #[error("a root certificate could not be parsed")]
    RootMalformed,
    /// AMD's CRL is not a DER X.509 CRL.
    #[error("AMD's CRL is not a valid DER X.509 CRL")]
    CrlMalformed,
    /// AMD's CRL is not signed with RSASSA-PSS (or its two algorithm fields differ).
    #[error("AMD's CRL is not signed with RSASSA-PSS as AMD signs it")]
    CrlAlgorithm,
    /// AMD's CRL is not signed by any root the policy trusts.
    #[error("AMD's CRL is not signed by a trusted ARK")]
    CrlNotSignedByTrustedRoot,
    /// AMD's CRL names an issuer other than the root that signed it.
    #[error("AMD's CRL names an issuer other than the ARK that signed it")]
    CrlIssuerMismatch,
    /// The root that signed the CRL may not sign CRLs (`keyUsage` without `cRLSign`).
    #[error("the ARK that signed AMD's CRL may not sign CRLs (keyUsage lacks cRLSign)")]
    CrlRootMayNotSignCrls,
}

/// Rules for the report's guest `POLICY` field beyond the ones always enforced.
///
/// Always enforced, whatever the rule says: `DEBUG` (bit 19) clear, `MIGRATE_MA` (bit 18) clear,
/// and the reserved bit 17 set. On top of that every bit in `pinned_mask` must equal the same bit
/// of `pinned_value` (for example pin `SMT` off, or `SINGLE_SOCKET` on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GuestPolicyRule {
    /// The bits that are pinned.
    pub pinned_mask: u64,
    /// The values the pinned bits must have.
    pub pinned_value: u64,
}

impl GuestPolicyRule {
    /// Checks a report's guest policy.
    pub fn check(&self, policy: u64) -> Result<(), FailReason> {
        if policy & bits::DEBUG != 0 {
            return Err(FailReason::DebugAllowed);
        }
        if policy & bits::MIGRATE_MA != 0 {
            return Err(FailReason::MigrationAgentAllowed);
        }
        if policy & bits::RESERVED_MUST_BE_ONE == 0 {
            return Err(FailReason::ReservedPolicyBitClear);
        }
        if (policy ^ self.pinned_value) & self.pinned_mask != 0 {
            return Err(FailReason::PinnedPolicyBitsDiffer);
        }
        Ok(())
    }
}

/// The verifier's expectations.
///
/// The trusted roots are private: [`Policy::new`] trusts AMD's Milan and Genoa ARKs and nothing
/// else, and the only way to trust a test root is [`Policy::trusting_test_root`], which exists
/// only with the `test-attester` feature and then trusts that root *instead of* AMD's.
#[derive(Clone, Debug)]
pub struct Policy {
    roots: Vec<TrustedRoot>,
    /// The lowest TCB (per component, read from the VCEK) accepted.
    pub minimum_tcb: TcbVersion,
    /// The launch measurements accepted (from the logged release manifests).
    pub allowed_measurements: Vec<[u8; 48]>,
    /// Extra guest-policy pins.
    pub guest_policy: GuestPolicyRule,
    /// AMD's CRLs, checked when added ([`Policy::with_amd_crl`]).
    pub(super) amd_crls: Vec<AmdCrl>,
}

impl Policy {
    /// Trusts AMD's built-in Milan and Genoa roots (from the `sev` crate) and nothing else.
    pub fn new(
        allowed_measurements: Vec<[u8; 48]>,
        minimum_tcb: TcbVersion,
    ) -> Result<Self, PolicyError> {
        use sev::certs::snp::builtin::{genoa, milan};
        let milan = milan::ark().map_err(|_| PolicyError::RootMalformed)?;
        let genoa = genoa::ark().map_err(|_| PolicyError::RootMalformed)?;
        let roots = vec![
            TrustedRoot::from_cert(RootLabel::AmdMilan, &milan.into())?,
            TrustedRoot::from_cert(RootLabel::AmdGenoa, &genoa.into())?,
        ];
        Ok(Self {
            roots,
            minimum_tcb,
            allowed_measurements,
            guest_policy: GuestPolicyRule::default(),
            amd_crls: Vec::new(),
        })
    }

    /// Trusts the given test ARK (DER) and **only** it; AMD's roots are not trusted by this
    /// policy. For tests and for the QEMU demo, where there is no SEV-SNP hardware.
    #[cfg(feature = "test-attester")]
    pub fn trusting_test_root(
        test_ark_der: &[u8],
        allowed_measurements: Vec<[u8; 48]>,
        minimum_tcb: TcbVersion,
    ) -> Result<Self, PolicyError> {
        use x509_cert::der::Decode;
        let ark = Certificate::from_der(test_ark_der).map_err(|_| PolicyError::RootMalformed)?;
        Ok(Self {
            roots: vec![TrustedRoot::from_cert(RootLabel::Test, &ark)?],
            minimum_tcb,
            allowed_measurements,
            guest_policy: GuestPolicyRule::default(),
            amd_crls: Vec::new(),
        })
    }

    /// The same policy with extra guest-policy pins.
    pub fn with_guest_policy(mut self, rule: GuestPolicyRule) -> Self {
        self.guest_policy = rule;
        self
    }

    /// The roots this policy trusts.
    pub fn trusted_roots(&self) -> &[TrustedRoot] {
        &self.roots
    }

    /// AMD's CRLs this policy applies (`not-revoked`).
    pub(crate) fn amd_crls(&self) -> &[AmdCrl] {
        &self.amd_crls
    }

    /// Whether `ark`'s public key is one of the trusted roots'.
    pub(crate) fn trusts(&self, ark: &Certificate) -> bool {
        match ark.tbs_certificate.subject_public_key_info.to_der() {
            Ok(spki) => self.roots.iter().any(|root| root.spki_der == spki),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_trusts_exactly_amd_milan_and_genoa() {
        let policy = Policy::new(vec![], TcbVersion::default()).unwrap();
        let labels: Vec<_> = policy.trusted_roots().iter().map(|r| r.label()).collect();
        assert_eq!(labels, [RootLabel::AmdMilan, RootLabel::AmdGenoa]);
        let milan: Certificate = sev::certs::snp::builtin::milan::ark().unwrap().into();
        let turin: Certificate = sev::certs::snp::builtin::turin::ark().unwrap().into();
        assert!(policy.trusts(&milan));
        assert!(!policy.trusts(&turin));
    }

    #[test]
    fn guest_policy_rule() {
        let ok = bits::RESERVED_MUST_BE_ONE | bits::SMT;
        let rule = GuestPolicyRule::default();
        assert_eq!(rule.check(ok), Ok(()));
        assert_eq!(rule.check(ok | bits::DEBUG), Err(FailReason::DebugAllowed));
        assert_eq!(
            rule.check(ok | bits::MIGRATE_MA),
            Err(FailReason::MigrationAgentAllowed)
        );
        assert_eq!(
            rule.check(bits::SMT),
            Err(FailReason::ReservedPolicyBitClear)
        );
        let no_smt = GuestPolicyRule {
            pinned_mask: bits::SMT,
            pinned_value: 0,
        };
        assert_eq!(no_smt.check(ok), Err(FailReason::PinnedPolicyBitsDiffer));
        assert_eq!(no_smt.check(bits::RESERVED_MUST_BE_ONE), Ok(()));
        // A pin cannot switch debugging back on.
        let debug_pinned_on = GuestPolicyRule {
            pinned_mask: bits::DEBUG,
            pinned_value: bits::DEBUG,
        };
        assert_eq!(
            debug_pinned_on.check(ok | bits::DEBUG),
            Err(FailReason::DebugAllowed)
        );
    }
}
