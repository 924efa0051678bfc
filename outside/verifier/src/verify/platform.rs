//! The report's `PLATFORM_INFO` (AMD SEV-SNP ABI 56860, `ATTESTATION_REPORT`): what the host
//! platform had enabled when the report was made.
//!
//! Enforced: if the guest policy forbids SMT (bit 16 clear), `SMT_EN` must be clear. The firmware
//! already refuses to launch such a guest on a host with SMT on; the verifier checks it again
//! because a report that says otherwise means the firmware did not do what the policy asked.
//!
//! Enforced: from report version 3 on, `ALIAS_CHECK_COMPLETE` (bit 5) must be set. It says the
//! firmware checked the host's memory for aliases (BadRAM, AMD-SB-3015 / CVE-2024-21944: a DIMM
//! whose SPD lies about its size maps two physical addresses onto one cell, so the host could
//! replay or read guest memory) and found none since the last reset. Edgeless Contrast requires it
//! the same way. Version 2 reports are exempt: the field is defined from version 3 on, and
//! firmware that still emits version 2 (SEV firmware 1.55 on some Milan hosts, e.g. the `sev`
//! crate's real Milan report the tests use) has no way to say it. Such a report carries no BadRAM
//! assurance; the TCB floor (AMD-SB-3015's firmware is older than AMD-SB-3019's) is what stands
//! for it there.
//!
//! Only noted (not enforced), because the release policy allows SMT and the floor is what stands
//! for firmware fixes: `SMT_EN` when the policy allows SMT; `TSME_EN` (host memory encryption —
//! guest memory is encrypted with the guest's own key either way); `ECC_EN`; `RAPL_DIS` (the RAPL
//! power side channel); `CIPHERTEXT_HIDING_EN` (Genoa and later only, so requiring it would refuse
//! every Milan) and `TIO_EN`.

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

/// The first report version whose `PLATFORM_INFO` has `ALIAS_CHECK_COMPLETE`.
pub const ALIAS_CHECK_FROM_VERSION: u32 = 3;

/// Checks `platform_info` of a report of `version` against the report's guest `policy` (the
/// rules in the module doc).
pub fn check(version: u32, policy: u64, platform_info: u64) -> Result<(), FailReason> {
    if policy & policy_bits::SMT == 0 && platform_info & SMT_EN != 0 {
        return Err(FailReason::SmtEnabledButForbidden {
            platform_info,
            policy,
        });
    }
    if version >= ALIAS_CHECK_FROM_VERSION && platform_info & ALIAS_CHECK_COMPLETE == 0 {
        return Err(FailReason::AliasCheckIncomplete {
            platform_info,
            version,
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
        let alias = ALIAS_CHECK_COMPLETE;
        assert_eq!(check(5, smt, SMT_EN | TSME_EN | alias), Ok(()));
        assert_eq!(check(5, no_smt, TSME_EN | alias), Ok(()));
        let err = check(5, no_smt, SMT_EN | alias).unwrap_err();
        assert_eq!(
            err.to_string(),
            "platform_info 0x21 has SMT_EN set, but the guest policy 0x20000 forbids SMT"
        );
    }

    #[test]
    fn badram_alias_check_is_required_from_version_3() {
        let smt = policy_bits::RESERVED_MUST_BE_ONE | policy_bits::SMT;
        for version in [3, 4, 5] {
            let err = check(version, smt, SMT_EN | TSME_EN).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "platform_info 0x3 lacks ALIAS_CHECK_COMPLETE (bit 5: no BadRAM alias check \
                     since the last reset) in a version {version} report"
                )
            );
            assert_eq!(check(version, smt, SMT_EN | ALIAS_CHECK_COMPLETE), Ok(()));
        }
        // Version 2 has no such bit: exempt.
        assert_eq!(check(2, smt, SMT_EN), Ok(()));
    }
}
