//! What the device accepts: the trusted roots, the TCB floor, the allowed measurements and the
//! guest policy.

use super::FailReason;
use super::crl::AmdCrl;
use super::tcb_floor::TcbFloor;
use pp_attestation::report::policy as bits;
#[cfg(test)]
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
    /// The exact guest policy asked for is one no report may have (debug, migration agent,
    /// reserved bit 17 clear).
    #[error("the guest policy {policy:#x} is not acceptable: {reason}")]
    GuestPolicyUnacceptable { policy: u64, reason: FailReason },
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

/// The guest policy every release launches with (`policy=0x30000` on QEMU's `sev-snp-guest`
/// object, recorded in the release manifest) and every report of it must carry exactly:
///
/// - bit 17 (reserved, must be one) set;
/// - bit 16 `SMT` set — SMT allowed: the hosts this runs on (cloud SEV-SNP machines) keep SMT on,
///   and a guest that forbids it does not launch there. The cost is the sibling-thread attacks
///   (e.g. StackWarp, AMD-SB-3027), whose microcode fixes the TCB floor is the place for;
/// - bit 18 `MIGRATE_MA`, bit 19 `DEBUG` clear — no migration agent, no debugging;
/// - bit 20 `SINGLE_SOCKET` clear — multi-socket hosts allowed (it protects nothing here);
/// - ABI minimum 0.0 — the firmware floor is enforced, signed, by the TCB floor (the VCEK is
///   derived from it), which a launch-time ABI check would only repeat;
/// - bits 21.. clear (CXL, AES-256-XTS, RAPL, ciphertext hiding, page swap: none is required,
///   and ciphertext hiding or RAPL-off do not exist on Milan).
///
/// It is QEMU's default for `sev-snp-guest`, now set explicitly. The SNP launch digest does not
/// depend on it (the policy is not part of the measured pages; neither sev-snp-measure nor the
/// `sev` crate's `snp_calc_launch_digest` takes a policy), so the release's digests hold for it as
/// computed.
pub const RELEASE_GUEST_POLICY: u64 = bits::RESERVED_MUST_BE_ONE | bits::SMT;

/// Rules for the report's guest `POLICY` field beyond the ones always enforced.
///
/// Always enforced, whatever the rule says: `DEBUG` (bit 19) clear, `MIGRATE_MA` (bit 18) clear,
/// and the reserved bit 17 set. On top of that every bit in `pinned_mask` must equal the same bit
/// of `pinned_value` (for example pin `SMT` off, or `SINGLE_SOCKET` on). A rule that pins every
/// bit ([`GuestPolicyRule::exact`], what a device uses for a release) is checked first and its
/// refusal names both values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GuestPolicyRule {
    /// The bits that are pinned.
    pub pinned_mask: u64,
    /// The values the pinned bits must have.
    pub pinned_value: u64,
}

impl GuestPolicyRule {
    /// The report's policy must equal `policy` exactly. `policy` itself must pass the checks that
    /// are always enforced, or no report could ever match.
    pub fn exact(policy: u64) -> Result<Self, PolicyError> {
        Self::default()
            .check(policy)
            .map_err(|reason| PolicyError::GuestPolicyUnacceptable { policy, reason })?;
        Ok(Self {
            pinned_mask: u64::MAX,
            pinned_value: policy,
        })
    }

    /// Checks a report's guest policy.
    pub fn check(&self, policy: u64) -> Result<(), FailReason> {
        if self.pinned_mask == u64::MAX && policy != self.pinned_value {
            return Err(FailReason::GuestPolicyDiffers {
                reported: policy,
                expected: self.pinned_value,
            });
        }
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

/// The names of the guest-policy bits in which `a` and `b` differ, e.g. `SMT, DEBUG`: for the
/// refusal of a policy that is not the release's.
pub(crate) fn differing_policy_bits(a: u64, b: u64) -> String {
    let diff = a ^ b;
    let mut names = Vec::new();
    for (mask, name) in [
        (bits::ABI_MAJOR_MASK, "ABI_MAJOR"),
        (bits::ABI_MINOR_MASK, "ABI_MINOR"),
        (bits::SMT, "SMT"),
        (bits::RESERVED_MUST_BE_ONE, "bit 17"),
        (bits::MIGRATE_MA, "MIGRATE_MA"),
        (bits::DEBUG, "DEBUG"),
        (bits::SINGLE_SOCKET, "SINGLE_SOCKET"),
    ] {
        if diff & mask != 0 {
            names.push(name.to_string());
        }
    }
    for bit in 21..64 {
        if diff & (1 << bit) != 0 {
            names.push(format!("bit {bit}"));
        }
    }
    names.join(", ")
}

/// The verifier's expectations.
///
/// The trusted roots are private: [`Policy::new`] trusts AMD's Milan and Genoa ARKs and nothing
/// else, and the only way to trust a test root is [`Policy::trusting_test_root`], which exists
/// only with the `test-attester` feature and then trusts that root *instead of* AMD's.
#[derive(Clone, Debug)]
pub struct Policy {
    roots: Vec<TrustedRoot>,
    /// The lowest TCB accepted per product line, component by component: the VCEK's and the
    /// report's reported, committed, launch and current TCBs must all meet it.
    pub minimum_tcb: TcbFloor,
    /// The launch measurements accepted (from the logged release manifests).
    pub allowed_measurements: Vec<[u8; 48]>,
    /// Extra guest-policy pins.
    pub guest_policy: GuestPolicyRule,
    /// AMD's CRLs, checked when added ([`Policy::with_amd_crl`]).
    pub(super) amd_crls: Vec<AmdCrl>,
}

impl Policy {
    /// Trusts AMD's built-in Milan and Genoa roots (from the `sev` crate) and nothing else.
    /// `minimum_tcb` is a [`TcbFloor`] or one `TcbVersion` for every product line.
    pub fn new(
        allowed_measurements: Vec<[u8; 48]>,
        minimum_tcb: impl Into<TcbFloor>,
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
            minimum_tcb: minimum_tcb.into(),
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
        minimum_tcb: impl Into<TcbFloor>,
    ) -> Result<Self, PolicyError> {
        use x509_cert::der::Decode;
        let ark = Certificate::from_der(test_ark_der).map_err(|_| PolicyError::RootMalformed)?;
        Ok(Self {
            roots: vec![TrustedRoot::from_cert(RootLabel::Test, &ark)?],
            minimum_tcb: minimum_tcb.into(),
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

    #[test]
    fn exact_rule_names_both_values() {
        let rule = GuestPolicyRule::exact(RELEASE_GUEST_POLICY).unwrap();
        assert_eq!(RELEASE_GUEST_POLICY, 0x30000);
        assert_eq!(rule.check(0x30000), Ok(()));
        for (reported, differing) in [
            (0x20000, "SMT"),
            (0x130000, "SINGLE_SOCKET"),
            (0xB0000, "DEBUG"),
            (0x30155, "ABI_MAJOR, ABI_MINOR"),
        ] {
            let err = rule.check(reported).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "guest policy {reported:#x} differs from the release's 0x30000 \
                     (differing: {differing})"
                )
            );
        }
        // A release cannot ask for a policy the always-on checks refuse.
        assert_eq!(
            GuestPolicyRule::exact(0xB0000),
            Err(PolicyError::GuestPolicyUnacceptable {
                policy: 0xB0000,
                reason: FailReason::DebugAllowed
            })
        );
        assert!(GuestPolicyRule::exact(0x10000).is_err());
    }
}
