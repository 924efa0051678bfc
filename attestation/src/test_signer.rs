//! A software attester from precomputed test material: the VCEK signing key and the test chain's
//! certificates, made once on the host by [`crate::test_attester::TestRoot`]. This is what a test
//! image of the enclave carries (feature `test-signer`, P-384 only: no RSA key generation in the
//! guest, which would take minutes under emulation). Never in the release image; its reports
//! verify only under `Policy::trusting_test_root`.

use p384::ecdsa::SigningKey;
use sha2::{Digest, Sha256};

use crate::attester::{AttestError, Attester, Evidence};
use crate::report::{ReportRepr, ReportSignature, field, policy};
use crate::tcb::TcbVersion;

/// The measurement a test attester reports when given no other: clearly not a real launch digest.
pub const TEST_MEASUREMENT: [u8; 48] = *b"pp test attester: not an SEV-SNP launch digest!!";

/// The guest policy test reports carry: SMT allowed, reserved bit 17 set, no debug, no migration.
pub const TEST_GUEST_POLICY: u64 = policy::SMT | policy::RESERVED_MUST_BE_ONE;

/// The TCB test VCEKs are issued for: bootloader 4, TEE 0, SNP 24 (`0x18`), microcode 219
/// (`0xDB`) — the TCB of a Milan with AMD-SB-3019's fix (SEV firmware 1.55.29, as reported in
/// virtee/snphost issue 125). Test reports are checked against the same TCB floor as real ones
/// (`pp_verifier`'s `MILAN_MINIMUM_TCB`), so this must meet it; a `pp-verifier` test says so.
pub const TEST_TCB: TcbVersion = TcbVersion {
    boot_loader: 4,
    tee: 0,
    reserved: [0; 4],
    snp: 24,
    microcode: 219,
};

/// The `PLATFORM_INFO` test reports carry: `ALIAS_CHECK_COMPLETE` (bit 5) set, as on an honest
/// host whose firmware checked its memory for BadRAM aliases (a verifier requires it in reports of
/// version 3 and later); SMT, TSME and the rest clear.
pub const TEST_PLATFORM_INFO: u64 = 1 << 5;

/// The unsigned report a simulated guest gets: version 5, Milan B0 CPUID, VMPL 0, firmware 1.55.21,
/// `PLATFORM_INFO` [`TEST_PLATFORM_INFO`].
pub fn test_report_repr(
    measurement: [u8; 48],
    guest_policy: u64,
    tcb: TcbVersion,
    chip_id: [u8; 64],
    report_data: &[u8; 64],
) -> ReportRepr {
    ReportRepr {
        policy: guest_policy,
        platform_info: TEST_PLATFORM_INFO,
        current_tcb: tcb,
        report_data: *report_data,
        measurement,
        report_id: Sha256::digest(report_data).into(),
        reported_tcb: tcb,
        cpuid_fam_id: 0x19,
        cpuid_mod_id: 0x01,
        cpuid_step: 0x00,
        chip_id,
        committed_tcb: tcb,
        current_build: 21,
        current_minor: 55,
        current_major: 1,
        committed_build: 21,
        committed_minor: 55,
        committed_major: 1,
        launch_tcb: tcb,
        ..ReportRepr::default()
    }
}

/// Emit `repr` and sign bytes `0x000..0x2A0` with `key` (ECDSA P-384, SHA-384, RFC 6979).
pub fn sign_report(key: &SigningKey, repr: &ReportRepr) -> Vec<u8> {
    use p384::ecdsa::signature::Signer;
    let bytes = repr.to_bytes();
    let signature: p384::ecdsa::Signature = key.sign(&bytes[field::SIGNED]);
    let (r, s) = signature.split_bytes();
    let mut signed = repr.clone();
    signed.signature = ReportSignature::from_p384_be(&r.into(), &s.into());
    signed.to_bytes()
}

/// Signs reports with a precomputed VCEK key and hands out the matching certificates.
pub struct PrecomputedAttester {
    key: SigningKey,
    vcek_der: Vec<u8>,
    ask_der: Vec<u8>,
    ark_der: Vec<u8>,
    chip_id: [u8; 64],
    tcb: TcbVersion,
    /// The launch measurement reported.
    pub measurement: [u8; 48],
}

impl core::fmt::Debug for PrecomputedAttester {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PrecomputedAttester")
            .finish_non_exhaustive()
    }
}

impl PrecomputedAttester {
    /// From the VCEK's private scalar (48 bytes, big-endian) and the chain; the VCEK must have been
    /// issued for `chip_id` and `tcb`.
    pub fn new(
        vcek_scalar: &[u8],
        vcek_der: Vec<u8>,
        ask_der: Vec<u8>,
        ark_der: Vec<u8>,
        chip_id: [u8; 64],
        tcb: TcbVersion,
        measurement: [u8; 48],
    ) -> Result<Self, AttestError> {
        let key = SigningKey::from_slice(vcek_scalar).map_err(|_| AttestError::Signing)?;
        Ok(Self {
            key,
            vcek_der,
            ask_der,
            ark_der,
            chip_id,
            tcb,
            measurement,
        })
    }
}

impl Attester for PrecomputedAttester {
    fn attest(&self, report_data: &[u8; 64]) -> Result<Evidence, AttestError> {
        let repr = test_report_repr(
            self.measurement,
            TEST_GUEST_POLICY,
            self.tcb,
            self.chip_id,
            report_data,
        );
        Ok(Evidence {
            report: sign_report(&self.key, &repr),
            vcek_der: self.vcek_der.clone(),
            ask_der: self.ask_der.clone(),
            ark_der: self.ark_der.clone(),
        })
    }
}
