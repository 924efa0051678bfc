//! A bump allocator over one region reserved as LOADER_DATA before ExitBootServices.
//!
//! Everything the loader allocates (FDT, boot info, strings) lives there, so it stays valid after
//! boot services are gone and is never handed to the kernel as free memory. Memory is never freed.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

pub struct Bump {
    start: AtomicUsize,
    next: AtomicUsize,
    end: AtomicUsize,
}

impl Bump {
    pub const fn new() -> Self {
        Self {
            start: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
        }
    }

    /// Hand the allocator its region (once).
    pub fn init(&self, start: usize, len: usize) {
        self.start.store(start, Ordering::SeqCst);
        self.next.store(start, Ordering::SeqCst);
        self.end.store(start + len, Ordering::SeqCst);
    }

    /// Bytes handed out so far.
    pub fn used(&self) -> usize {
        self.next.load(Ordering::SeqCst) - self.start.load(Ordering::SeqCst)
    }
}

// SAFETY: allocations come from a region nobody else uses, never overlap, and are aligned as asked.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let end = self.end.load(Ordering::SeqCst);
        let mut current = self.next.load(Ordering::SeqCst);
        loop {
            let Some(aligned) = current.checked_next_multiple_of(layout.align()) else {
                return core::ptr::null_mut();
            };
            let Some(new_next) = aligned.checked_add(layout.size()) else {
                return core::ptr::null_mut();
            };
            if end == 0 || new_next > end {
                return core::ptr::null_mut();
            }
            match self
                .next
                .compare_exchange(current, new_next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return aligned as *mut u8,
                Err(seen) => current = seen,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}
