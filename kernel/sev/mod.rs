//! pp: AMD SEV support for the Hermit kernel — our code, not Hermit's.
//!
//! The kernel build (`xtask/src/kernel.rs`) copies this folder, together with the hardware-free
//! modules of `snp-guest/` (`msr`, `ghcb`, `psc`, `cpuid`), into the pinned kernel source as
//! `src/arch/x86_64/kernel/pp_sev/`, and `KERNEL_EDITS` (`kernel/src/lib.rs`) route the kernel's
//! page-table code through [`paging`]. Without SEV the C-bit mask is 0 and every helper here is
//! the identity, so the kernel behaves exactly as before.

pub(crate) mod cpuid;
pub(crate) mod facts;
pub(crate) mod ghcb;
pub(crate) mod msr;
pub(crate) mod paging;
pub(crate) mod psc;

/// Learn whether this guest runs under SEV (from the loader's device tree, checked against the
/// `SEV_STATUS` MSR) and, if so, give every private mapping made from now on the C-bit.
/// Called once, first thing in `paging::init`, before the kernel walks or edits a page table.
pub(crate) fn init() {
    let facts = facts::read();
    paging::set_c_bit(facts.c_bit_mask());
    if facts.level != msr::SevLevel::None {
        info!(
            "pp-sev: {:?} guest, C-bit {:?}",
            facts.level, facts.c_bit
        );
    }
}
