//! pp-loader: the UEFI application OVMF boots with `-kernel`.
//!
//! It carries the workload ELF (the application linked with the Hermit kernel) inside itself,
//! loads it, builds what Hermit 0.11 expects when started from UEFI (identity page tables, an FDT
//! with free memory, bootargs and the RSDP, the boot-info block, a 32 KiB boot stack), exits boot
//! services and jumps to the kernel's entry. See README.md for the memory layout.
#![cfg_attr(target_os = "uefi", no_std, no_main)]
// The host build only runs the unit tests of the target-independent modules.
#![cfg_attr(not(target_os = "uefi"), allow(dead_code))]

extern crate alloc;

mod cmdline;
mod fdt;
mod memory;
mod paging;
mod sev;

mod snp;

#[cfg(target_os = "uefi")]
#[macro_use]
mod serial;
#[cfg(target_os = "uefi")]
mod boot;
#[cfg(target_os = "uefi")]
mod bump;
#[cfg(target_os = "uefi")]
mod sev_boot;

/// Host builds exist only to run the unit tests of the target-independent modules.
#[cfg(not(target_os = "uefi"))]
fn main() {}
