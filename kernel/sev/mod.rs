//! pp: AMD SEV support for the Hermit kernel — our code, not Hermit's.
//!
//! The kernel build (`xtask/src/kernel.rs`) copies this folder, together with the hardware-free
//! modules of `snp-guest/` (`msr`, `ghcb`, `guest_call`, `secrets`, `custody`, `psc`, `cpuid`,
//! `page_pool`, `vc`, `entropy`), into the pinned kernel source as
//! `src/arch/x86_64/kernel/pp_sev/`, and `KERNEL_EDITS` (`kernel/src/lib.rs`) route the kernel's
//! page-table code through [`paging`], device buffers through [`shared`], virtio notify
//! addresses through [`notify`] and #VC through [`vc_handler`]. Without SEV the C-bit mask is 0 and every helper here is
//! the identity, so the kernel behaves exactly as before.
//!
//! `entropy` sits here because `vc` uses its instruction decoder; the kernel's entropy source,
//! with or without SEV, is `pp_entropy` (`kernel/entropy/`), which uses it too.

pub(crate) mod cpuid;
pub(crate) mod custody;
pub(crate) mod entropy;
pub(crate) mod facts;
pub(crate) mod ghcb;
pub(crate) mod guest_call;
pub(crate) mod guest_request;
pub(crate) mod msr;
pub(crate) mod notify;
pub(crate) mod page_pool;
pub(crate) mod paging;
pub(crate) mod psc;
pub(crate) mod secrets;
pub(crate) mod shared;
pub(crate) mod vc;
pub(crate) mod vc_handler;

use core::sync::atomic::{AtomicU8, Ordering};

use msr::{SevLevel, SevStatus, TerminationReason};

static LEVEL: AtomicU8 = AtomicU8::new(0);

/// `SEV_STATUS` features that change what the guest itself must do (vTOM addressing, #VC
/// reflected to a lower VMPL, restricted or alternate interrupt injection): this kernel does none
/// of it, so a guest launched with any of them stops rather than misbehaves.
const UNSUPPORTED_FEATURES: u64 = SevStatus::VTOM
    | SevStatus::REFLECT_VC
    | SevStatus::RESTRICTED_INJECTION
    | SevStatus::ALTERNATE_INJECTION;

/// Whether the kernel must run on the boot CPU only: under any SEV (application processors would
/// need SNP AP creation, and the AP boot code cannot take a CR3 with the C-bit).
pub(crate) fn single_cpu() -> bool {
    paging::c_bit() != 0
}

/// First thing on the boot CPU, once the boot info is known and before anything prints: learn
/// whether this guest runs under SEV (the loader's device tree, checked against `SEV_STATUS`);
/// if so, give every private mapping made from now on the C-bit, take device buffers from the
/// shared region, and under SEV-ES/SNP handle #VC with the GHCB in that region's first page.
pub(crate) fn early_init() {
    let facts = facts::read();
    let detected = facts.detected;
    paging::set_c_bit(detected.c_bit_mask());
    if detected.level == SevLevel::None {
        return;
    }
    let Some(region) = facts.shared.clone() else {
        fail(detected.status, "SEV is active but the loader shared no memory");
    };
    if detected.status.sev_es() {
        let snp = detected.level == SevLevel::SevSnp;
        if detected.status.0 & UNSUPPORTED_FEATURES != 0 {
            vc_handler::terminate(TerminationReason::SNP_UNSUPPORTED);
        }
        vc_handler::init(region.start, facts.snp_cpuid.filter(|_| snp), snp);
        if let (true, Some(secrets)) = (snp, facts.snp_secrets) {
            guest_request::init(secrets);
        }
    }
    shared::init(region);
    LEVEL.store(detected.level as u8, Ordering::Relaxed);
}

/// Say on the console what [`early_init`] found (called from `paging::init`, when printing works).
pub(crate) fn init() {
    let level = LEVEL.load(Ordering::Relaxed);
    if level != SevLevel::None as u8 {
        info!(
            "pp-sev: SEV level {level} (1 SEV, 2 SEV-ES, 3 SNP), C-bit mask {:#x}, #VC handled: {}",
            paging::c_bit(),
            vc_handler::active()
        );
    }
}

/// Stop: a GHCB termination request under SEV-ES/SNP (where printing needs the #VC handler that
/// may not exist yet), a panic otherwise.
pub(crate) fn fail(status: SevStatus, what: &str) -> ! {
    if status.sev_es() {
        vc_handler::terminate(TerminationReason::GENERAL)
    }
    panic!("pp-sev: {what}")
}
