//! The APIC page check of our ACPI module (`check_apic_pages` in `kernel/acpi/tables.rs`) on the
//! host, answered by our SEV paging helper (`identity_mapped_shared`, `kernel/sev/paging.rs`) over
//! real `x86_64` 0.15.2 page tables, as the kernel's `acpi::init` calls it.
//!
//! The kernel writes the I/O APIC at 0xFEC00000 and, in xAPIC mode, the local APIC at
//! 0xFEE00000 through the loader's identity map. The loader maps every RAM range of the host's
//! memory map private: a map that calls an APIC page RAM would put the kernel's APIC register
//! writes into the enclave's memory. Such a boot must stop.

#![allow(dead_code)]
// The mapper walks raw page tables in host memory.
#![allow(unsafe_code)]

mod common;

#[path = "../acpi/error.rs"]
mod error;
#[path = "../sev/paging.rs"]
mod paging;
#[path = "../acpi/tables.rs"]
mod tables;

use common::{C, HostFrames, serial};

use paging::{PpIdentity, identity_map, identity_mapped_shared, set_c_bit};
use tables::{AcpiError, IO_APIC_ADDRESS, LOCAL_APIC_ADDRESS, check_apic_pages};
use x86_64::PhysAddr;
use x86_64::structures::paging::mapper::MappedPageTable;
use x86_64::structures::paging::{PageTable, PageTableFlags as F, PhysFrame, Size2MiB};

/// How the identity map covers the 2 MiB page holding an APIC.
#[derive(Clone, Copy)]
enum Page {
    /// Not RAM in the memory map: mapped shared (device).
    Device,
    /// RAM in the (host's) memory map: mapped private.
    Ram,
    /// Not mapped at all.
    Unmapped,
}

/// Identity-mapped tables under SEV with the I/O APIC's and the local APIC's 2 MiB pages as given.
fn tables(io_apic: Page, local_apic: Page) -> MappedPageTable<'static, PpIdentity> {
    set_c_bit(C);
    let pml4: &'static mut PageTable = Box::leak(Box::new(PageTable::new()));
    let mut pt = unsafe { MappedPageTable::new(pml4, PpIdentity) };
    for (address, page) in [(IO_APIC_ADDRESS, io_apic), (LOCAL_APIC_ADDRESS, local_apic)] {
        let flags = match page {
            Page::Device => F::PRESENT | F::WRITABLE | F::NO_CACHE,
            Page::Ram => F::PRESENT | F::WRITABLE,
            Page::Unmapped => continue,
        };
        let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(address.into()));
        unsafe {
            identity_map(&mut pt, frame, flags, &mut HostFrames)
                .unwrap()
                .ignore();
        }
    }
    pt
}

fn check(pt: &MappedPageTable<'static, PpIdentity>, x2apic: bool) -> Result<(), AcpiError> {
    check_apic_pages(x2apic, |address, len| {
        identity_mapped_shared(pt, address, len)
    })
}

#[test]
fn apic_pages_in_device_memory_pass() {
    let _guard = serial();
    let pt = tables(Page::Device, Page::Device);
    assert_eq!(check(&pt, true), Ok(()));
    assert_eq!(check(&pt, false), Ok(()));
    set_c_bit(0);
}

#[test]
fn an_io_apic_page_made_ram_stops_the_boot() {
    let _guard = serial();
    let error = AcpiError::ApicNotShared {
        what: "I/O APIC",
        address: 0xFEC0_0000,
    };
    let refused = Err(error);
    for x2apic in [true, false] {
        let pt = tables(Page::Ram, Page::Device);
        assert_eq!(check(&pt, x2apic), refused);
        let pt = tables(Page::Unmapped, Page::Device);
        assert_eq!(check(&pt, x2apic), refused);
    }
    assert_eq!(
        error.to_string(),
        "the I/O APIC page at 0xfec00000 is not identity-mapped shared device memory (the memory \
         map made it RAM?): its register writes would land in private memory"
    );
    set_c_bit(0);
}

#[test]
fn a_local_apic_page_made_ram_stops_the_boot_only_under_xapic() {
    let _guard = serial();
    let refused = Err(AcpiError::ApicNotShared {
        what: "local APIC (xAPIC)",
        address: 0xFEE0_0000,
    });
    for page in [Page::Ram, Page::Unmapped] {
        let pt = tables(Page::Device, page);
        // xAPIC: the kernel writes the page.
        assert_eq!(check(&pt, false), refused);
        // x2APIC: the kernel uses MSRs, never the page.
        assert_eq!(check(&pt, true), Ok(()));
    }
    set_c_bit(0);
}

#[test]
fn without_sev_nothing_is_private() {
    let _guard = serial();
    let pt = tables(Page::Ram, Page::Ram);
    set_c_bit(0);
    assert_eq!(check(&pt, false), Ok(()));
}
