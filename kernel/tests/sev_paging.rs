//! Our SEV page-table helpers (`kernel/sev/paging.rs`, copied into the kernel) driving the real
//! `x86_64` 0.15.2 mapper on the host: tables live in host memory, whose addresses play the part
//! of identity-mapped physical memory, and the C-bit is bit 51 (above every host address).
//!
//! What the kernel relies on: walking tables whose entries carry the C-bit, new tables and
//! private leaves getting it, device leaves not, translated addresses without it, and a mask of
//! zero changing nothing.

#![allow(dead_code)]
// The mapper walks raw page tables in host memory: this test, like the kernel code it drives,
// needs `unsafe`.
#![allow(unsafe_code)]

mod common;

#[path = "../sev/paging.rs"]
mod paging;

use common::{C, HostFrames, serial};

use paging::{
    EncryptedTables, PpIdentity, already_mapped, c_bit, identity_map, identity_mapped_private,
    identity_mapped_shared, leaf_frame, set_c_bit, strip,
};
use x86_64::structures::paging::mapper::{MappedPageTable, TranslateResult};
use x86_64::structures::paging::{
    Mapper, Page, PageTable, PageTableFlags as F, PhysFrame, Size2MiB, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

fn new_pml4() -> &'static mut PageTable {
    Box::leak(Box::new(PageTable::new()))
}

/// The entries on the walk to `va`, as raw values, level 4 first.
fn walk(pml4: &PageTable, va: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut table = pml4;
    for shift in [39u64, 30, 21, 12] {
        let index = ((va >> shift) & 511) as usize;
        // SAFETY: a page table is 512 u64 entries (`PageTableEntry` is a transparent u64).
        let raw = unsafe { *(table as *const PageTable as *const u64).add(index) };
        out.push(raw);
        if raw & 1 == 0 || (shift != 39 && raw & F::HUGE_PAGE.bits() != 0) || shift == 12 {
            break;
        }
        table = unsafe { &*((raw & 0x000f_ffff_ffff_f000 & !C) as *const PageTable) };
    }
    out
}

#[test]
fn private_and_device_mappings_under_sev() {
    let _guard = serial();
    set_c_bit(C);
    let pml4 = new_pml4();
    let pml4_addr = pml4 as *const PageTable as u64;
    let mut pt = unsafe { MappedPageTable::new(pml4, PpIdentity) };
    let flags = F::PRESENT | F::WRITABLE;

    let heap = Page::<Size4KiB>::containing_address(VirtAddr::new(0x4000_1000_0000));
    let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(0x1234_5000));
    unsafe {
        pt.map_to(
            heap,
            leaf_frame(frame, flags),
            flags,
            &mut EncryptedTables(&mut HostFrames),
        )
        .unwrap()
        .ignore();
    }
    let mmio = Page::<Size4KiB>::containing_address(VirtAddr::new(0x4000_1000_1000));
    let bar = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(0xfe00_0000));
    let device = flags | F::NO_CACHE;
    unsafe {
        pt.map_to(
            mmio,
            leaf_frame(bar, device),
            device,
            &mut EncryptedTables(&mut HostFrames),
        )
        .unwrap()
        .ignore();
    }

    let pml4_ref = unsafe { &*(pml4_addr as *const PageTable) };
    let heap_walk = walk(pml4_ref, heap.start_address().as_u64());
    assert_eq!(heap_walk.len(), 4);
    assert!(
        heap_walk[..3].iter().all(|e| e & C != 0),
        "new tables are private: {heap_walk:x?}"
    );
    assert_eq!(
        heap_walk[3] & !0xfff,
        0x1234_5000 | C,
        "a private leaf has the C-bit"
    );
    let mmio_walk = walk(pml4_ref, mmio.start_address().as_u64());
    assert_eq!(
        mmio_walk[3] & !0xfff & !(1 << 63),
        0xfe00_0000,
        "a device leaf has none"
    );

    // Translation sees the C-bit in the frame; the kernel strips it.
    let TranslateResult::Mapped { frame: got, .. } = pt.translate(heap.start_address() + 0x10)
    else {
        panic!("not mapped")
    };
    assert_eq!(got.start_address().as_u64(), 0x1234_5000 | C);
    assert_eq!(strip(got.start_address().as_u64()), 0x1234_5000);

    // Changing flags keeps the C-bit in the entry (x86_64 keeps the address, bit 51 included).
    unsafe {
        pt.update_flags(heap, flags | F::NO_EXECUTE)
            .unwrap()
            .ignore();
    }
    assert_eq!(
        walk(pml4_ref, heap.start_address().as_u64())[3] & !0xfff & !(1 << 63),
        0x1234_5000 | C
    );

    // Identity maps (ACPI, RAM in 2 MiB pages) put the page at the address without the C-bit.
    let ram = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(0x4000_0000));
    unsafe {
        identity_map(&mut pt, ram, flags, &mut HostFrames)
            .unwrap()
            .ignore();
    }
    let ram_walk = walk(pml4_ref, 0x4000_0000 + 0x1234);
    assert_eq!(ram_walk.len(), 3);
    assert_eq!(ram_walk[2] & 0x000f_ffff_ffe0_0000, 0x4000_0000 | C);
    assert_eq!(
        pt.translate_addr(VirtAddr::new(0x4000_0000 + 0x1234))
            .map(|a| strip(a.as_u64())),
        Some(0x4000_1234)
    );
    // Unmapping walks the same tables.
    assert!(pt.unmap(heap).is_ok());
    // The loader's mapping of a frame stands under SEV, whatever it is.
    let other = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(0x8000_0000));
    assert!(already_mapped(other, ram));
    set_c_bit(0);
}

#[test]
fn without_sev_nothing_changes() {
    let _guard = serial();
    set_c_bit(0);
    assert_eq!(c_bit(), 0);
    let pml4 = new_pml4();
    let pml4_addr = pml4 as *const PageTable as u64;
    let mut pt = unsafe { MappedPageTable::new(pml4, PpIdentity) };
    let flags = F::PRESENT | F::WRITABLE;
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(0x4000_2000_0000));
    let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(0x7000));
    assert_eq!(leaf_frame(frame, flags), frame);
    unsafe {
        pt.map_to(
            page,
            leaf_frame(frame, flags),
            flags,
            &mut EncryptedTables(&mut HostFrames),
        )
        .unwrap()
        .ignore();
    }
    let w = walk(
        unsafe { &*(pml4_addr as *const PageTable) },
        page.start_address().as_u64(),
    );
    assert!(w.iter().all(|e| e & C == 0));
    assert_eq!(w[3] & !0xfff, 0x7000);
    assert_eq!(strip(0x000f_ffff_ffff_f000), 0x000f_ffff_ffff_f000);
    // Without SEV an existing identity mapping must be exactly the frame.
    let a = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(0x4000_0000));
    let b = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(0x8000_0000));
    assert!(already_mapped(a, a));
    assert!(!already_mapped(b, a));
}

#[test]
fn shared_device_ranges_and_private_table_ranges() {
    let _guard = serial();
    set_c_bit(C);
    let pml4 = new_pml4();
    let mut pt = unsafe { MappedPageTable::new(pml4, PpIdentity) };
    let flags = F::PRESENT | F::WRITABLE;
    // Private RAM in a 2 MiB page; device memory (a BAR) in two 4 KiB pages right above it.
    let ram = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(0x4000_0000));
    unsafe {
        identity_map(&mut pt, ram, flags, &mut HostFrames)
            .unwrap()
            .ignore();
    }
    for bar in [0x4020_0000u64, 0x4020_1000] {
        let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(bar));
        unsafe {
            identity_map(&mut pt, frame, flags | F::NO_CACHE, &mut HostFrames)
                .unwrap()
                .ignore();
        }
    }
    assert!(identity_mapped_shared(&pt, 0x4020_0000, 0x2000));
    assert!(identity_mapped_shared(&pt, 0x4020_0800, 0x1000));
    // A BAR the host moved over private RAM, or reaching into it, or past the mapping.
    assert!(!identity_mapped_shared(&pt, 0x4000_0000, 0x1000));
    assert!(!identity_mapped_shared(&pt, 0x401f_f000, 0x2000));
    assert!(!identity_mapped_shared(&pt, 0x4020_1000, 0x2000));
    assert!(!identity_mapped_shared(&pt, u64::MAX - 0xfff, 0x2000));
    // ACPI tables must be in private memory: the RAM page is, the device pages and anything
    // unmapped are not.
    assert!(identity_mapped_private(&pt, 0x4000_0000, 0x20_0000));
    assert!(identity_mapped_private(&pt, 0x4010_0000, 0x100));
    assert!(!identity_mapped_private(&pt, 0x401f_ff00, 0x200));
    assert!(!identity_mapped_private(&pt, 0x4020_0000, 0x24));
    assert!(!identity_mapped_private(&pt, 0x8000_0000, 0x24));
    // Without SEV there is nothing private to protect.
    set_c_bit(0);
    assert!(identity_mapped_shared(&pt, 0x4000_0000, 0x1000));
    assert!(identity_mapped_private(&pt, 0x4020_0000, 0x1000));
}

#[test]
fn an_empty_range_is_never_a_pass() {
    let _guard = serial();
    set_c_bit(C);
    let pml4 = new_pml4();
    let mut pt = unsafe { MappedPageTable::new(pml4, PpIdentity) };
    let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(0x4020_0000));
    unsafe {
        identity_map(
            &mut pt,
            frame,
            F::PRESENT | F::WRITABLE | F::NO_CACHE,
            &mut HostFrames,
        )
        .unwrap()
        .ignore();
    }
    // No byte is checked, so nothing is vouched for: not at a mapped shared page, not at an
    // unmapped or non-canonical address, with or without SEV.
    assert!(identity_mapped_shared(&pt, 0x4020_0000, 1));
    for address in [0x4020_0000, 0x8000_0000, 1 << 63] {
        assert!(!identity_mapped_shared(&pt, address, 0));
        assert!(!identity_mapped_private(&pt, address, 0));
    }
    set_c_bit(0);
    assert!(!identity_mapped_shared(&pt, 0x4020_0000, 0));
    assert!(!identity_mapped_private(&pt, 0x4020_0000, 0));
}
