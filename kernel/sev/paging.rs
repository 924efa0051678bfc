//! The C-bit in the kernel's page tables.
//!
//! `x86_64` 0.15 treats bit 51 as an address bit, so an entry's address includes the C-bit. The
//! kernel therefore walks its tables through [`PpIdentity`], which strips the bit before turning
//! a table's frame into a pointer, strips it from every translated address, gives it to every
//! private leaf ([`leaf_frame`]: anything not mapped as a device) and to every table it creates
//! ([`EncryptedTables`]). Existing parent entries are never rewritten with it: `x86_64` keeps an
//! entry's address (C-bit included) when it only changes flags.

use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::PhysAddr;
use x86_64::structures::paging::mapper::{
    MapToError, MapperFlush, PageTableFrameMapping, TranslateResult,
};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, Page, PageSize, PageTable, PageTableFlags, PhysFrame, Size4KiB,
    Translate,
};

static C_BIT: AtomicU64 = AtomicU64::new(0);

/// Set the C-bit mask (`1 << position`, or 0 without SEV). Once, before any mapping.
pub(crate) fn set_c_bit(mask: u64) {
    C_BIT.store(mask, Ordering::Relaxed);
}

/// The C-bit mask; 0 without SEV.
pub(crate) fn c_bit() -> u64 {
    C_BIT.load(Ordering::Relaxed)
}

/// A physical address from a page-table entry or CR3 without the C-bit.
pub(crate) fn strip(addr: u64) -> u64 {
    addr & !c_bit()
}

/// The same frame, encrypted: its address with the C-bit.
pub(crate) fn private_frame<S: PageSize>(frame: PhysFrame<S>) -> PhysFrame<S> {
    let addr = PhysAddr::new(frame.start_address().as_u64() | c_bit());
    // The C-bit is above bit 21 (at least 32), so alignment is unchanged.
    PhysFrame::from_start_address(addr).unwrap_or(frame)
}

/// The frame a leaf entry maps: private unless the mapping is for a device (`NO_CACHE`, which
/// Hermit's `device()` flags set for MMIO), which must stay shared with the host.
pub(crate) fn leaf_frame<S: PageSize>(frame: PhysFrame<S>, flags: PageTableFlags) -> PhysFrame<S> {
    if flags.contains(PageTableFlags::NO_CACHE) {
        frame
    } else {
        private_frame(frame)
    }
}

/// Whether a 2 MiB frame the kernel identity-maps and finds already mapped (to `current`) is
/// fine: without SEV it must be the same frame; under SEV the loader's identity map is the
/// authority (private RAM with the C-bit; the 2 MiB pages at the edges of the kernel's free range
/// may be shared, like the device-buffer region, or split into 4 KiB pages), so it stands.
pub(crate) fn already_mapped<S: PageSize>(current: PhysFrame<S>, frame: PhysFrame<S>) -> bool {
    c_bit() != 0 || current == frame
}

/// Physical memory is identity-mapped; a table's frame is turned into a pointer without the C-bit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PpIdentity;

// SAFETY: every page table lives in RAM that the loader's (and the kernel's) identity map covers,
// so the stripped physical address is the table's virtual address.
unsafe impl PageTableFrameMapping for PpIdentity {
    fn frame_to_pointer(&self, frame: PhysFrame) -> *mut PageTable {
        ptr::with_exposed_provenance_mut(strip(frame.start_address().as_u64()) as usize)
    }
}

/// A frame allocator whose frames (used for new page tables) carry the C-bit, so that the entries
/// pointing to new tables are private like the tables.
pub(crate) struct EncryptedTables<'a, A>(pub &'a mut A);

// SAFETY: the frames are the inner allocator's, unused, with only the C-bit added.
unsafe impl<A: FrameAllocator<Size4KiB>> FrameAllocator<Size4KiB> for EncryptedTables<'_, A> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        self.0.allocate_frame().map(private_frame)
    }
}

/// `Mapper::identity_map` with the C-bit: the page at the frame's address maps the frame, private
/// unless `flags` says device.
///
/// # Safety
/// As for `Mapper::map_to`.
pub(crate) unsafe fn identity_map<S, M, A>(
    mapper: &mut M,
    frame: PhysFrame<S>,
    flags: PageTableFlags,
    allocator: &mut A,
) -> Result<MapperFlush<S>, MapToError<S>>
where
    S: PageSize,
    M: Mapper<S>,
    A: FrameAllocator<Size4KiB>,
{
    let page = Page::containing_address(x86_64::VirtAddr::new(frame.start_address().as_u64()));
    unsafe {
        mapper.map_to(
            page,
            leaf_frame(frame, flags),
            flags,
            &mut EncryptedTables(allocator),
        )
    }
}

/// Whether every byte of `[start, start + len)` is identity-mapped in `table` without the C-bit
/// (shared with the host: device memory or the shared pool). False for an empty range; otherwise
/// always true without SEV.
///
/// Under SEV a PCI BAR is the host's to choose, and Hermit uses it through the loader's identity
/// map: a BAR placed over private RAM would turn the driver's register writes into writes to the
/// enclave's own memory. Such a BAR is refused (Hermit's virtio driver then panics: the kernel
/// stops). The same check covers each virtqueue's notify address (`notify.rs`) and, from our ACPI
/// module, the APIC pages.
pub(crate) fn identity_mapped_shared<T: Translate>(table: &T, start: u64, len: u64) -> bool {
    identity_mapped_as(table, start, len, false)
}

/// Whether every byte of `[start, start + len)` is identity-mapped in `table` with the C-bit
/// (private: memory the host cannot write). False for an empty range; otherwise always true
/// without SEV.
///
/// Under SEV the ACPI tables are read only from private memory: OVMF copied them there, and a
/// table pointer into shared or device memory would let the host change a table while it is
/// checked.
pub(crate) fn identity_mapped_private<T: Translate>(table: &T, start: u64, len: u64) -> bool {
    identity_mapped_as(table, start, len, true)
}

fn identity_mapped_as<T: Translate>(table: &T, start: u64, len: u64, private: bool) -> bool {
    // An empty range has no byte to check: never a pass (a caller that computed a length of 0
    // must not be told that memory is what it asked for).
    if len == 0 {
        return false;
    }
    if c_bit() == 0 {
        return true;
    }
    let Some(end) = start.checked_add(len) else {
        return false;
    };
    let mut at = start;
    while at < end {
        let Ok(virt) = x86_64::VirtAddr::try_new(at) else {
            return false;
        };
        let TranslateResult::Mapped { frame, offset, .. } = table.translate(virt) else {
            return false;
        };
        let base = frame.start_address().as_u64();
        if (base & c_bit() != 0) != private || strip(base) + offset != at {
            return false;
        }
        // On to the next page, whatever its size.
        at = at - offset + frame.size();
    }
    true
}
