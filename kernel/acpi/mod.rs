//! pp: the kernel's ACPI module — our code, not Hermit's.
//!
//! The kernel build (`xtask/src/kernel.rs`) copies this folder into the pinned kernel source as
//! `src/arch/x86_64/kernel/pp_acpi/`, and `KERNEL_EDITS` (`kernel/src/lib.rs`) declare it as the
//! kernel's `acpi` module in place of Hermit's (whose parser trusted the host's table lengths) and
//! make the APIC setup take the MADT's checked content from [`madt`].
//!
//! The tables are the host's and unmeasured. [`init`] checks every table the RSDP leads to
//! (`tables.rs`) and keeps only [`tables::Facts`]; anything malformed stops the boot with one
//! serial line, `pp-acpi: fatal: <reason>; stopping`. So does an APIC register page (the I/O
//! APIC's; the local APIC's under xAPIC) that is not identity-mapped shared: under SEV the host's
//! memory map could have made it private RAM. Under SEV-ES/SNP the stop is a GHCB termination
//! request (reason set 1, code 8).

pub(crate) mod error;
pub(crate) mod tables;

use core::{ptr, slice};

use hermit_sync::OnceCell;
use x86_64::instructions::port::Port;

use super::pp_sev::msr::TerminationReason;
use super::pp_sev::{self, vc_handler};
use crate::arch::x86_64::mm::paging;
use tables::{AcpiError, Facts, Madt, Memory};

/// What the checked tables said.
static FACTS: OnceCell<Facts> = OnceCell::new();

/// Lowest address a table may start at (the zero page is never a table).
const WINDOW_START: u64 = 0x1000;
/// Tables must end at or below 4 GiB: OVMF's `AcpiTableDxe` allocates every table there (x64's
/// `PcdAcpiExposedTableVersions` is 0x3E, which includes ACPI 1.0b), and the loader's identity map
/// covers all of it (2 MiB pages up to at least 4 GiB), so every byte in the window is mapped.
const WINDOW_END: u64 = 1 << 32;

/// `SLP_EN`, bit 13 of the PM1 control register.
const SLP_EN: u16 = 1 << 13;

/// Guest memory through the loader's identity map, limited to the window, and under SEV only
/// private memory (the host cannot change it while it is checked).
struct IdentityMapped;

impl Memory for IdentityMapped {
    fn read(&self, address: u64, len: usize) -> Option<&[u8]> {
        let end = address.checked_add(len as u64)?;
        if address < WINDOW_START || end > WINDOW_END {
            return None;
        }
        // SAFETY: a walk of the kernel's own page tables (the loader's identity map).
        let table = unsafe { paging::identity_mapped_page_table() };
        if !pp_sev::paging::identity_mapped_private(&table, address, len as u64) {
            return None;
        }
        // SAFETY: the loader identity-maps all of [0, 4 GiB) (under SEV the range was just found
        // mapped private); nothing writes to ACPI table memory while the kernel runs.
        Some(unsafe { slice::from_raw_parts(ptr::with_exposed_provenance(address as usize), len) })
    }
}

/// Check the tables behind the loader's RSDP and keep what the kernel uses; stop on anything
/// malformed.
pub fn init() {
    if !crate::env::is_uefi() {
        fatal(AcpiError::NoRsdp);
    }
    let rsdp = crate::env::rsdp().ok_or(AcpiError::NoRsdp);
    let checked = rsdp
        .and_then(|rsdp| tables::parse(&IdentityMapped, rsdp.get() as u64))
        .and_then(|facts| {
            // SAFETY: a walk of the kernel's own page tables (the loader's identity map).
            let table = unsafe { paging::identity_mapped_page_table() };
            let x2apic = crate::arch::x86_64::kernel::processor::supports_x2apic();
            tables::check_apic_pages(x2apic, |address, len| {
                pp_sev::paging::identity_mapped_shared(&table, address, len)
            })?;
            Ok(facts)
        });
    match checked {
        Ok(facts) => {
            info!(
                "pp-acpi: tables checked: {} enabled local APIC(s), power-off {}",
                facts.madt.cpus,
                match facts.poweroff {
                    Some(p) => "through ACPI S5",
                    None => "not described",
                }
            );
            let _ = FACTS.set(facts);
        }
        Err(error) => fatal(error),
    }
}

/// The MADT's checked content (local APIC ids). Only after [`init`] succeeded.
pub(crate) fn madt() -> &'static Madt {
    &FACTS.get().expect("pp-acpi: init has not run").madt
}

/// Power off through ACPI S5, if the tables described it.
pub fn poweroff() {
    match FACTS.get().and_then(|facts| facts.poweroff) {
        Some(off) => {
            let bits = (u16::from(off.slp_typa) << 10) | SLP_EN;
            // SAFETY: the PM1a control port from the checked FADT; writing SLP_TYPa|SLP_EN there is
            // the ACPI power-off sequence and touches no memory.
            unsafe { Port::<u16>::new(off.pm1a_control_port).write(bits) };
        }
        None => warn!("ACPI Power Off is not available"),
    }
}

/// Stop the enclave on a malformed table: one serial line, then under SEV-ES/SNP a GHCB
/// termination request, otherwise QEMU's debug exit (ACPI power-off is not available yet).
fn fatal(error: AcpiError) -> ! {
    error!("pp-acpi: fatal: {error}; stopping (no host-supplied ACPI table is used unchecked)");
    if vc_handler::active() {
        vc_handler::terminate(TerminationReason::PP_ACPI);
    }
    crate::arch::x86_64::kernel::processor::shutdown(1)
}
