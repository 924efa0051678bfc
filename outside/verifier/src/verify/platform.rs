//! The report's `PLATFORM_INFO` (AMD SEV-SNP ABI 56860, `ATTESTATION_REPORT`): what the host
//! platform had enabled when the report was made.
//!
//! Enforced: if the guest policy forbids SMT (bit 16 clear), `SMT_EN` must be clear. The firmware
//! already refuses to launch such a guest on a host with SMT on; the verifier checks it again
//! because a report that says otherwise means the firmware did not do what the policy asked.
//!
//! Only noted (not enforced), because the release policy allows SMT and the floor is what stands
//! for firmware fixes: `SMT_EN` when the policy allows SMT; `TSME_EN` (host memory encryption —
//! guest memory is encrypted with the guest's own key either way); `ECC_EN`; `RAPL_DIS` (the RAPL
//! power side channel); `CIPHERTEXT_HIDING_EN` (Genoa and later only, so requiring it would refuse
//! every Milan); `ALIAS_CHECK_COMPLETE` (BadRAM, AMD-SB-3015; reported from report version 3 only)
//! and `TIO_EN`.

use super::FailReason;
use pp_attestation::report::policy as policy_bits;

/// Bit 0: SMT is enabled on the host.
pub const SMT_EN: u64 = 1 << 0;
/// Bit 1: TSME (host memory encryption) is enabled.
pub const TSME_EN: u64 = 1 << 1;
/// Bit 2: the platform uses ECC memory.
pub const ECC_EN: u64 = 1 << 2;
/// Bit 3: RAPL is disabled.
pub const RAPL_DIS: u64 = 1 << 3;
/// Bit 4: ciphertext hiding is enabled (DRAM).
pub const CIPHERTEXT_HIDING_EN: u64 = 1 << 4;
/// Bit 5: memory alias detection completed with no aliases since the last reset.
pub const ALIAS_CHECK_COMPLETE: u64 = 1 << 5;
/// Bit 7: SEV-TIO is enabled.
pub const TIO_EN: u64 = 1 << 7;

/// Checks `platform_info` against the report's guest `policy` (the rule in the module doc).
pub fn check(policy: u64, platform_info: u64) -> Result<(), FailReason> {
    if policy & policy_bits::SMT == 0 && platform_info & SMT_EN != 0 {
        return Err(FailReason::SmtEnabledButForbidden {
            platform_info,
            policy,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smt_on_the_host_only_when_the_policy_allows_it() {
        let no_smt = policy_bits::RESERVED_MUST_BE_ONE;
        let smt = no_smt | policy_bits::SMT;
        assert_eq!(check(smt, SMT_EN | TSME_EN), Ok(()));
        assert_eq!(check(no_smt, TSME_EN | ALIAS_CHECK_COMPLETE), Ok(()));
        let err = check(no_smt, SMT_EN).unwrap_err();
        assert_eq!(
            err.to_string(),
            "platform_info 0x1 has SMT_EN set, but the guest policy 0x20000 forbids SMT"
        );
    }
}
