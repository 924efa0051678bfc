//! The device-side verifier: evidence + policy + expected binding → a [`Verdict`] that lists every
//! check and its outcome (after Project Oak's attestation verification: extract claims, compare
//! each with what the policy expects, record every result).
//!
//! The checks, in order (see [`CheckName`]):
//!
//! 1. `report-format` — the report is 1184 bytes with a supported version (2 to 5: version 2 is
//!    what SNP firmware 1.55 still emits on some hosts; the fields checked here exist in all).
//! 2. `ark-self-signed` — the ARK certificate's RSA-PSS self-signature.
//! 3. `ark-trusted` — the ARK's public key is one of the policy's roots (AMD Milan/Genoa by
//!    default; a test root only through [`Policy::trusting_test_root`]).
//! 4. `ask-signed-by-ark`, 5. `vcek-signed-by-ask` — the rest of the chain.
//! 6. `report-signature` — ECDSA P-384/SHA-384 by the VCEK key over bytes `0x000..0x2A0`
//!    (the report must say algorithm 1 and signing key VCEK).
//! 7. `tcb-minimum` — the VCEK must be Milan or Genoa, and the TCB floor for that product line
//!    ([`TcbFloor`]; AMD's bulletins, [`TcbFloor::AMD_BULLETINS`], or what the release raises it
//!    to) is met, component by component, by the TCB *from the VCEK's extensions* and by the
//!    report's `REPORTED_TCB`, `COMMITTED_TCB`, `LAUNCH_TCB` and `CURRENT_TCB`. The refusal names
//!    the TCB, the component, both values and the product ([`tcb_floor`]).
//! 8. `tcb-matches-report` — that TCB equals the report's `REPORTED_TCB`.
//! 9. `chip-id` — the VCEK's `hwID` equals the report's `CHIP_ID`.
//! 10. `guest-policy` — debug off, migration agent off, reserved bit 17 set, the policy's pins;
//!     a device pins every bit ([`GuestPolicyRule::exact`] of the release's policy, normally
//!     [`RELEASE_GUEST_POLICY`] `0x30000`) and a refusal names both values. Then `PLATFORM_INFO`:
//!     if the policy forbids SMT, `SMT_EN` must be clear; from report version 3 on,
//!     `ALIAS_CHECK_COMPLETE` (BadRAM) must be set (the other bits are only noted: [`platform`]).
//! 11. `measurement` — in the policy's allowed set.
//! 12. `report-data` — equals the expected binding ([`pp_attestation::report_data_for`]).
//! 13. `vmpl` — the report was requested from VMPL 0.
//! 14. `certificates-valid` — the ARK's, ASK's and VCEK's validity periods contain the device's
//!     clock (the `now` the caller passes; there is no default clock).
//! 15. `ca-constraints` — the ARK and the ASK are CAs allowed to sign certificates
//!     (`basicConstraints` `cA`, `keyUsage` `keyCertSign`), as AMD issues them.
//! 16. `product-agreement` — `ARK-<product>`, `SEV-<product>` and the VCEK's `productName`
//!     name one product (Milan or Genoa), and each issuer name is its issuer's subject name.
//! 17. `not-revoked` — the ASK is on no AMD CRL the policy holds for this ARK
//!     ([`Policy::with_amd_crl`]). Without one the check passes although nothing was checked:
//!     callers say so (the device's `--verbose`, `pp verify-report`). A CRL past its
//!     `nextUpdate` still applies; [`Policy::amd_crls_past_next_update`] names it for a warning.
//!
//! A device adds its own checks of the same session to the verdict with [`Verdict::require`]
//! ([`CheckName::SESSION`]: the key configuration and the release are the published ones), so
//! `--verbose` and receipts list them beside the report's.
//!
//! Every check is always listed. A check whose input could not be read (the report did not parse,
//! a certificate it needs did not parse) is `Skipped`; the check on the unreadable input itself
//! fails. Content checks are evaluated even when a signature check failed, so the verdict shows
//! everything that is wrong at once; [`Verdict::accepted`] is true only if every check passed.
//!
//! The verifier reads no clock and no network: the caller passes its clock, and AMD's CRL comes
//! in the policy (it cannot be downloaded here). Freshness of the report comes from the device's
//! nonce inside `report-data`.

mod chain;
mod crl;
mod pki;
pub mod platform;
mod policy;
pub mod tcb_floor;
mod verdict;

pub use pki::{CertRole, Product, Serial, UnixTime};
pub use policy::{
    GuestPolicyRule, Policy, PolicyError, RELEASE_GUEST_POLICY, RootLabel, TrustedRoot,
};
pub use tcb_floor::{
    BelowFloor, GENOA_MINIMUM_TCB, MILAN_MINIMUM_TCB, ProductLine, TcbField, TcbFloor,
};
use verdict::require;
pub use verdict::{Check, Outcome, Verdict};

pub use crate::vcek_ext::VcekExtension;
use crate::vcek_ext::{self, ExtError};
use core::fmt;
use pp_attestation::Evidence;
use pp_attestation::report::{Report, WireError};
use std::time::SystemTime;

/// The checks, in the order they are listed in a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckName {
    ReportFormat,
    ArkSelfSigned,
    ArkTrusted,
    AskSignedByArk,
    VcekSignedByAsk,
    ReportSignature,
    TcbMinimum,
    TcbMatchesReport,
    ChipId,
    GuestPolicy,
    Measurement,
    ReportData,
    Vmpl,
    /// Every certificate's validity period contains the device's clock.
    CertificatesValid,
    /// The ARK and the ASK are CAs allowed to sign certificates.
    CaConstraints,
    /// The three certificates name one product and chain by name.
    ProductAgreement,
    /// The ASK is not on AMD's CRL.
    NotRevoked,
    /// The session's key configuration is the one the instance published (device check).
    KeyConfigPublished,
    /// The session's measurement is the one the instance published (device check).
    MeasurementPublished,
    /// The release the session's evidence names is the one the instance published (device check).
    ReleasePublished,
}

impl CheckName {
    /// Every check of the report itself, in verdict order: what [`verify`] lists.
    pub const ALL: [CheckName; 17] = [
        Self::ReportFormat,
        Self::ArkSelfSigned,
        Self::ArkTrusted,
        Self::AskSignedByArk,
        Self::VcekSignedByAsk,
        Self::ReportSignature,
        Self::TcbMinimum,
        Self::TcbMatchesReport,
        Self::ChipId,
        Self::GuestPolicy,
        Self::Measurement,
        Self::ReportData,
        Self::Vmpl,
        Self::CertificatesValid,
        Self::CaConstraints,
        Self::ProductAgreement,
        Self::NotRevoked,
    ];

    /// The checks a device adds for a session with an instance it chose from the key CDN.
    pub const SESSION: [CheckName; 3] = [
        Self::KeyConfigPublished,
        Self::MeasurementPublished,
        Self::ReleasePublished,
    ];

    /// A short stable name, e.g. `vcek-signed-by-ask`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReportFormat => "report-format",
            Self::ArkSelfSigned => "ark-self-signed",
            Self::ArkTrusted => "ark-trusted",
            Self::AskSignedByArk => "ask-signed-by-ark",
            Self::VcekSignedByAsk => "vcek-signed-by-ask",
            Self::ReportSignature => "report-signature",
            Self::TcbMinimum => "tcb-minimum",
            Self::TcbMatchesReport => "tcb-matches-report",
            Self::ChipId => "chip-id",
            Self::GuestPolicy => "guest-policy",
            Self::Measurement => "measurement",
            Self::ReportData => "report-data",
            Self::Vmpl => "vmpl",
            Self::CertificatesValid => "certificates-valid",
            Self::CaConstraints => "ca-constraints",
            Self::ProductAgreement => "product-agreement",
            Self::NotRevoked => "not-revoked",
            Self::KeyConfigPublished => "key-config-published",
            Self::MeasurementPublished => "measurement-published",
            Self::ReleasePublished => "release-published",
        }
    }
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a check failed. No variant carries bytes from the evidence beyond a certificate's serial
/// number and dates (public values, named so a refusal can be acted on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FailReason {
    #[error("report malformed: {0}")]
    Report(WireError),
    #[error("certificate is not valid DER X.509")]
    CertificateMalformed,
    #[error("signature does not verify")]
    SignatureInvalid,
    #[error("root is not trusted by the policy")]
    UntrustedRoot,
    #[error("report signature algorithm is not ECDSA P-384 with SHA-384")]
    UnsupportedSignatureAlgorithm,
    #[error("report is not signed by a VCEK")]
    NotSignedByVcek,
    #[error("VCEK public key is not a P-384 key")]
    VcekKeyNotP384,
    #[error("report signature is malformed")]
    SignatureMalformed,
    #[error("VCEK extension missing: {0:?}")]
    VcekExtensionMissing(VcekExtension),
    #[error("VCEK extension malformed: {0:?}")]
    VcekExtensionMalformed(VcekExtension),
    #[error("VCEK product line is not Milan or Genoa")]
    UnsupportedProductLine,
    /// A TCB of the evidence is below the floor for the VCEK's product line: which TCB, which
    /// component, both values (e.g. `launch_tcb.snp 23 below the floor 24 (Milan)`).
    #[error("{0}")]
    TcbBelowFloor(BelowFloor),
    #[error("VCEK TCB differs from the report's reported TCB")]
    TcbMismatch,
    #[error("VCEK hwID differs from the report's chip id")]
    ChipIdMismatch,
    #[error("guest policy allows debugging")]
    DebugAllowed,
    #[error("guest policy allows a migration agent")]
    MigrationAgentAllowed,
    #[error("guest policy reserved bit 17 is clear")]
    ReservedPolicyBitClear,
    #[error("guest policy differs from the pinned bits")]
    PinnedPolicyBitsDiffer,
    /// The report's guest policy is not exactly the release's.
    #[error(
        "guest policy {reported:#x} differs from the release's {expected:#x} (differing: {})",
        policy::differing_policy_bits(*.reported, *.expected)
    )]
    GuestPolicyDiffers { reported: u64, expected: u64 },
    /// The host has SMT on although the report's guest policy forbids it.
    #[error(
        "platform_info {platform_info:#x} has SMT_EN set, but the guest policy {policy:#x} forbids SMT"
    )]
    SmtEnabledButForbidden { platform_info: u64, policy: u64 },
    /// A report of version 3 or later whose `PLATFORM_INFO` lacks `ALIAS_CHECK_COMPLETE`
    /// (BadRAM, [`platform`]).
    #[error(
        "platform_info {platform_info:#x} lacks ALIAS_CHECK_COMPLETE (bit 5: no BadRAM alias check \
         since the last reset) in a version {version} report"
    )]
    AliasCheckIncomplete { platform_info: u64, version: u32 },
    #[error("measurement is not in the allowed set")]
    MeasurementNotAllowed,
    #[error("report data differs from the expected binding")]
    ReportDataMismatch,
    #[error("report was not requested from VMPL 0")]
    VmplNotZero,
    #[error("key configuration differs from the one the instance published")]
    KeyConfigNotPublished,
    #[error("measurement differs from the one the instance published")]
    MeasurementNotPublished,
    #[error("release differs from the one the instance published")]
    ReleaseNotPublished,
    #[error("{cert} certificate expired at {not_after}, device clock {now}")]
    CertificateExpired {
        cert: CertRole,
        not_after: UnixTime,
        now: UnixTime,
    },
    #[error("{cert} certificate is not valid before {not_before}, device clock {now}")]
    CertificateNotYetValid {
        cert: CertRole,
        not_before: UnixTime,
        now: UnixTime,
    },
    #[error("{0} certificate is not a CA (basicConstraints missing or cA false)")]
    NotACa(CertRole),
    #[error("{0} certificate's basicConstraints path length leaves no room for the ASK")]
    PathLengthExceeded(CertRole),
    #[error("{0} certificate may not sign certificates (keyUsage missing or without keyCertSign)")]
    MayNotSignCertificates(CertRole),
    #[error("{0} certificate's basicConstraints or keyUsage is malformed or repeated")]
    CaExtensionMalformed(CertRole),
    #[error("{0} certificate's issuer name is not its issuer's subject name")]
    IssuerNameMismatch(CertRole),
    #[error("{0} certificate names no known product (Milan or Genoa)")]
    UnknownProduct(CertRole),
    #[error("{cert} certificate is for {product}, the ARK for {ark_product}")]
    ProductDisagrees {
        cert: CertRole,
        product: Product,
        ark_product: Product,
    },
    #[error("{cert} serial {serial} is revoked by AMD's CRL (since {since})")]
    Revoked {
        cert: CertRole,
        serial: Serial,
        since: UnixTime,
    },
}

impl From<ExtError> for FailReason {
    fn from(e: ExtError) -> Self {
        match e {
            ExtError::Missing(ext) => Self::VcekExtensionMissing(ext),
            ExtError::Malformed(ext) => Self::VcekExtensionMalformed(ext),
            ExtError::UnsupportedProduct => Self::UnsupportedProductLine,
        }
    }
}

/// Evidence as borrowed bytes: the verifier reads them in place (from a received bundle or an
/// attester's [`Evidence`]) and copies nothing.
#[derive(Clone, Copy, Debug)]
pub struct EvidenceRef<'a> {
    /// The attestation report (1184 bytes).
    pub report: &'a [u8],
    /// The VCEK certificate, DER.
    pub vcek_der: &'a [u8],
    /// The ASK certificate, DER.
    pub ask_der: &'a [u8],
    /// The ARK certificate, DER.
    pub ark_der: &'a [u8],
}

impl<'a> From<&'a Evidence> for EvidenceRef<'a> {
    fn from(e: &'a Evidence) -> Self {
        Self {
            report: &e.report,
            vcek_der: &e.vcek_der,
            ask_der: &e.ask_der,
            ark_der: &e.ark_der,
        }
    }
}

/// Checks `evidence` against `policy` and the report data the device expects (normally
/// [`pp_attestation::report_data_for`] of its own session), with the certificates' validity
/// periods against `now`, the device's clock. Never panics; see the module documentation for the
/// checks. The verdict carries the verified measurement.
pub fn verify<'a>(
    evidence: impl Into<EvidenceRef<'a>>,
    policy: &Policy,
    expected_report_data: &[u8; 64],
    now: SystemTime,
) -> Verdict {
    use CheckName::*;
    let evidence = evidence.into();
    let mut v = Verdict::default();

    let report = Report::new_checked(evidence.report);
    v.push(
        ReportFormat,
        report
            .as_ref()
            .map(|_| ())
            .map_err(|e| FailReason::Report(*e)),
    );
    let report = report.ok();

    let ark = chain::parse(evidence.ark_der);
    let ask = chain::parse(evidence.ask_der);
    let vcek = chain::parse(evidence.vcek_der);
    let malformed = Outcome::Fail(FailReason::CertificateMalformed);

    v.push(
        ArkSelfSigned,
        match &ark {
            Some(ark) => chain::signed_by(ark, ark),
            None => malformed,
        },
    );
    v.push(
        ArkTrusted,
        match &ark {
            Some(ark) => require(policy.trusts(ark), FailReason::UntrustedRoot),
            None => Outcome::Skipped,
        },
    );
    for (name, issuer, subject) in [(AskSignedByArk, &ark, &ask), (VcekSignedByAsk, &ask, &vcek)] {
        let outcome = match (issuer, subject) {
            (_, None) => malformed,
            (None, Some(_)) => Outcome::Skipped,
            (Some(issuer), Some(subject)) => chain::signed_by(issuer, subject),
        };
        v.push(name, outcome);
    }
    v.push(
        ReportSignature,
        match (&report, &vcek) {
            (Some(report), Some(vcek)) => chain::report_signed_by(vcek, report),
            _ => Outcome::Skipped,
        },
    );

    // The TCB and the product line come from the VCEK (AMD certified them), never from the
    // report alone; the report's own TCBs are then held to the same floor.
    let vcek_tcb = vcek
        .as_ref()
        .map(|vcek| Ok::<_, ExtError>((vcek_ext::product(vcek)?, vcek_ext::tcb(vcek)?)));
    v.push(
        TcbMinimum,
        match &vcek_tcb {
            Some(Ok((product, tcb))) => {
                tcb_floor::check(*product, *tcb, report.as_ref(), &policy.minimum_tcb)
                    .map_err(FailReason::TcbBelowFloor)
                    .into()
            }
            Some(Err(e)) => Outcome::Fail((*e).into()),
            None => Outcome::Skipped,
        },
    );
    v.push(
        TcbMatchesReport,
        match (&report, &vcek_tcb) {
            (Some(report), Some(Ok((_, tcb)))) => require(
                tcb.to_u64() == report.reported_tcb().to_u64(),
                FailReason::TcbMismatch,
            ),
            _ => Outcome::Skipped,
        },
    );
    v.push(
        ChipId,
        match (&report, &vcek) {
            (Some(report), Some(vcek)) => match vcek_ext::hw_id(vcek) {
                Ok(hw_id) => require(hw_id == report.chip_id(), FailReason::ChipIdMismatch),
                Err(e) => Outcome::Fail(e.into()),
            },
            _ => Outcome::Skipped,
        },
    );

    let pki = match (&ark, &ask, &vcek) {
        (Some(ark), Some(ask), Some(vcek)) => Some(pki::Chain { ark, ask, vcek }),
        _ => None,
    };
    let Some(report) = report else {
        for name in [GuestPolicy, Measurement, ReportData, Vmpl] {
            v.push(name, Outcome::Skipped);
        }
        push_pki(&mut v, pki.as_ref(), policy, now);
        return v;
    };
    v.measurement = Some(report.measurement());
    v.push(
        GuestPolicy,
        policy.guest_policy.check(report.policy()).and_then(|()| {
            platform::check(report.version(), report.policy(), report.platform_info())
        }),
    );
    v.push(
        Measurement,
        require(
            policy.allowed_measurements.contains(&report.measurement()),
            FailReason::MeasurementNotAllowed,
        ),
    );
    v.push(
        ReportData,
        require(
            report.report_data() == *expected_report_data,
            FailReason::ReportDataMismatch,
        ),
    );
    v.push(Vmpl, require(report.vmpl() == 0, FailReason::VmplNotZero));
    push_pki(&mut v, pki.as_ref(), policy, now);
    v
}

/// The chain's PKI checks (`certificates-valid` … `not-revoked`), skipped when a certificate did
/// not parse (the signature checks say which).
fn push_pki(v: &mut Verdict, chain: Option<&pki::Chain<'_>>, policy: &Policy, now: SystemTime) {
    use CheckName::*;
    let Some(chain) = chain else {
        for name in [
            CertificatesValid,
            CaConstraints,
            ProductAgreement,
            NotRevoked,
        ] {
            v.push(name, Outcome::Skipped);
        }
        return;
    };
    let now = UnixTime::from_system_time(now);
    v.push(CertificatesValid, pki::validity(chain, now));
    v.push(CaConstraints, pki::ca_constraints(chain));
    v.push(ProductAgreement, pki::product_agreement(chain));
    v.push(NotRevoked, pki::not_revoked(chain, policy));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_evidence_fails_and_lists_every_check() {
        let policy = Policy::new(vec![[0; 48]], TcbFloor::AMD_BULLETINS).unwrap();
        let evidence = Evidence {
            report: vec![],
            vcek_der: vec![],
            ask_der: vec![],
            ark_der: vec![],
        };
        let verdict = verify(&evidence, &policy, &[0; 64], SystemTime::now());
        assert!(!verdict.accepted());
        let names: Vec<_> = verdict.checks().iter().map(|c| c.name).collect();
        assert_eq!(names, CheckName::ALL);
        assert_eq!(
            verdict.outcome(CheckName::ReportFormat),
            Some(Outcome::Fail(FailReason::Report(WireError::BadLength)))
        );
        assert_eq!(
            verdict.outcome(CheckName::ArkSelfSigned),
            Some(Outcome::Fail(FailReason::CertificateMalformed))
        );
        assert_eq!(
            verdict.outcome(CheckName::Measurement),
            Some(Outcome::Skipped)
        );
        assert!(verdict.to_string().ends_with("rejected"));
    }

    #[test]
    fn an_empty_verdict_is_not_accepted() {
        assert!(!Verdict::default().accepted());
    }

    #[test]
    fn a_verdict_without_the_report_checks_is_not_accepted() {
        let mut verdict = Verdict::default();
        for name in CheckName::SESSION {
            verdict.require(name, true, FailReason::KeyConfigNotPublished);
        }
        assert!(!verdict.accepted());
        assert_eq!(verdict.measurement(), None);
    }
}
