//! What the loader found out about SEV, from the device tree node `/pp,sev` it writes
//! (`image-builder/src/fdt.rs`), checked against the `SEV_STATUS` MSR.

use super::msr::{self, Detected, SevLevel, SevStatus};
use crate::env;

/// The SEV facts of this boot. A device tree without `/pp,sev` means no SEV.
///
/// The kernel does not run CPUID itself here: under SEV-ES/SNP that raises #VC, which this kernel
/// does not handle yet. When the loader says SEV is active, `SEV_STATUS` (which exists then, and
/// which the hypervisor cannot intercept under SEV-ES/SNP) must say the same, or the kernel stops.
pub(crate) fn read() -> Detected {
    let none = Detected {
        level: SevLevel::None,
        c_bit: None,
        status: SevStatus(0),
    };
    let Some(fdt) = env::fdt() else {
        return none;
    };
    let Some(node) = fdt.find_node("/pp,sev") else {
        return none;
    };
    let level = match node.property("pp,sev-level").and_then(|p| p.as_str()) {
        Some("sev") => SevLevel::Sev,
        Some("sev-es") => SevLevel::SevEs,
        Some("sev-snp") => SevLevel::SevSnp,
        other => panic!("pp-sev: unknown SEV level {other:?} in the device tree"),
    };
    let c_bit = node
        .property("pp,c-bit")
        .and_then(|p| p.as_usize())
        .and_then(|b| u8::try_from(b).ok())
        .filter(|b| (32..=51).contains(b))
        .expect("pp-sev: no valid C-bit position in the device tree");
    let status = SevStatus(read_sev_status());
    let agrees = match level {
        SevLevel::None => true,
        SevLevel::Sev => status.sev() && !status.sev_es(),
        SevLevel::SevEs => status.sev_es() && !status.snp(),
        SevLevel::SevSnp => status.snp(),
    };
    assert!(
        agrees,
        "pp-sev: the loader said {level:?} but SEV_STATUS is {:#x}",
        status.0
    );
    Detected {
        level,
        c_bit: Some(c_bit),
        status,
    }
}

fn read_sev_status() -> u64 {
    // SAFETY: only called when the loader found SEV active, so the MSR exists; reading it has no
    // side effects.
    unsafe { x86_64::registers::model_specific::Msr::new(msr::SEV_STATUS_MSR).read() }
}
