//! What the loader found out about SEV, from the device tree node `/pp,sev` it writes
//! (`image-builder/src/fdt.rs`), checked against the `SEV_STATUS` MSR.

use core::ops::Range;

use super::msr::{self, Detected, SevLevel, SevStatus};
use crate::env;

/// What the loader described, checked.
pub(crate) struct Facts {
    pub detected: Detected,
    /// The region shared with the host (`pp,shared`): GHCB page, then the device-buffer pool.
    pub shared: Option<Range<u64>>,
    /// SNP: the CPUID page and the secrets page.
    pub snp_cpuid: Option<u64>,
    pub snp_secrets: Option<u64>,
}

/// The SEV facts of this boot. A device tree without `/pp,sev` means no SEV.
///
/// Runs before the #VC handler exists, so it cannot print under SEV-ES/SNP and does not run CPUID.
/// When the loader says SEV is active, `SEV_STATUS` (which exists then, and which the hypervisor
/// cannot intercept under SEV-ES/SNP) must say the same; anything wrong stops the guest
/// ([`super::fail`]: a GHCB termination request under SEV-ES/SNP, a panic otherwise).
pub(crate) fn read() -> Facts {
    let none = Detected {
        level: SevLevel::None,
        c_bit: None,
        status: SevStatus(0),
    };
    let none = Facts {
        detected: none,
        shared: None,
        snp_cpuid: None,
        snp_secrets: None,
    };
    let Some(fdt) = env::fdt() else {
        return none;
    };
    let Some(node) = fdt.find_node("/pp,sev") else {
        return none;
    };
    let status = SevStatus(read_sev_status());
    let level = match node.property("pp,sev-level").and_then(|p| p.as_str()) {
        Some("sev") => SevLevel::Sev,
        Some("sev-es") => SevLevel::SevEs,
        Some("sev-snp") => SevLevel::SevSnp,
        _ => super::fail(status, "unknown SEV level in the device tree"),
    };
    let c_bit = node
        .property("pp,c-bit")
        .and_then(|p| p.as_usize())
        .and_then(|b| u8::try_from(b).ok())
        .filter(|b| (32..=51).contains(b))
        .unwrap_or_else(|| super::fail(status, "no valid C-bit position in the device tree"));
    let agrees = match level {
        SevLevel::None => true,
        SevLevel::Sev => status.sev() && !status.sev_es(),
        SevLevel::SevEs => status.sev_es() && !status.snp(),
        SevLevel::SevSnp => status.snp(),
    };
    if !agrees {
        super::fail(status, "the loader's SEV level and SEV_STATUS disagree");
    }
    let address = |name: &str| {
        node.property(name)
            .and_then(|p| p.as_usize())
            .map(|a| a as u64)
    };
    let shared = node.property("pp,shared").and_then(|p| {
        let v = p.value;
        let word = |i: usize| {
            v.get(i * 8..i * 8 + 8)
                .map(|b| u64::from_be_bytes(b.try_into().unwrap_or_default()))
        };
        Some(word(0)?..word(0)? + word(1)?)
    });
    Facts {
        detected: Detected {
            level,
            c_bit: Some(c_bit),
            status,
        },
        shared,
        snp_cpuid: address("pp,snp-cpuid"),
        snp_secrets: address("pp,snp-secrets"),
    }
}

fn read_sev_status() -> u64 {
    // SAFETY: only called when the loader found SEV active, so the MSR exists; reading it has no
    // side effects.
    unsafe { x86_64::registers::model_specific::Msr::new(msr::SEV_STATUS_MSR).read() }
}
