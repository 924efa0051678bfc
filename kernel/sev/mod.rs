//! pp: AMD SEV support for the Hermit kernel — our code, not Hermit's.
//!
//! The kernel build (`xtask/src/kernel.rs`) copies this folder, together with the hardware-free
//! modules of `snp-guest/` (`msr`, `ghcb`, `psc`, `cpuid`, `page_pool`), into the pinned kernel source as
//! `src/arch/x86_64/kernel/pp_sev/`, and `KERNEL_EDITS` (`kernel/src/lib.rs`) route the kernel's
//! page-table code through [`paging`] and device buffers through [`shared`]. Without SEV the C-bit mask is 0 and every helper here is
//! the identity, so the kernel behaves exactly as before.

pub(crate) mod cpuid;
pub(crate) mod facts;
pub(crate) mod ghcb;
pub(crate) mod msr;
pub(crate) mod page_pool;
pub(crate) mod paging;
pub(crate) mod psc;
pub(crate) mod shared;

/// Learn whether this guest runs under SEV (from the loader's device tree, checked against the
/// `SEV_STATUS` MSR) and, if so, give every private mapping made from now on the C-bit and take
/// device buffers from the shared region. Called once, first thing in `paging::init`, before the
/// kernel walks or edits a page table.
pub(crate) fn init() {
    let facts = facts::read();
    let detected = facts.detected;
    paging::set_c_bit(detected.c_bit_mask());
    if detected.level == msr::SevLevel::None {
        return;
    }
    info!(
        "pp-sev: {:?} guest, C-bit {:?}, shared {:x?}",
        detected.level, detected.c_bit, facts.shared
    );
    match facts.shared {
        Some(region) => shared::init(region),
        None => panic!("pp-sev: SEV is active but the loader shared no memory for devices"),
    }
}
