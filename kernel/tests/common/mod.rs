//! What the page-table host tests share: the C-bit they use, the one-test-at-a-time lock (the
//! C-bit is a process-wide setting of our paging module) and page tables from host memory.

use std::sync::{Mutex, MutexGuard};

use x86_64::PhysAddr;
use x86_64::structures::paging::{FrameAllocator, PageTable, PhysFrame, Size4KiB};

/// The C-bit the tests set: bit 51, above every host address.
pub const C: u64 = 1 << 51;

/// The C-bit is process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Take the one-test-at-a-time lock (also after a failed test: the next one sets the C-bit anew).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Page tables from host memory (leaked: the tables must outlive the mapper); their host
/// addresses play the part of identity-mapped physical memory.
pub struct HostFrames;

// SAFETY: every frame is a fresh, zeroed, leaked `PageTable`, owned by nothing else.
unsafe impl FrameAllocator<Size4KiB> for HostFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let table: &'static mut PageTable = Box::leak(Box::new(PageTable::new()));
        PhysFrame::from_start_address(PhysAddr::new(table as *mut PageTable as u64)).ok()
    }
}
