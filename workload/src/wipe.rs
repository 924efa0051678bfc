//! The enclave's allocator: every heap block is overwritten with zeros before it is freed, and a
//! block that grows or shrinks is always moved (new block, copy, old block wiped and freed).
//!
//! The enclave's own code wipes the plaintext it copies (the parsed request, prompt text, token
//! ids, replies: `zeroize`). Crates it calls copy too, inside calls it cannot reach: the JSON
//! parser unescapes strings into a scratch buffer, the tokenizers crate normalises and splits the
//! text into strings and vectors of its own, Burn holds token ids and activations in tensors.
//! Those blocks are wiped here when their owner frees them, so no freed memory the enclave later
//! reuses (or that a later request could read through a bug) holds a request. What this does not
//! cover: live memory (buffers still in use; the canary test in `tests/plaintext_wiped.rs` checks
//! that nothing keeps plaintext between requests), registers and stacks (not heap).

use std::alloc::{GlobalAlloc, Layout};

use zeroize::Zeroize;

/// Wipes every block of `A` before it is freed (see the module documentation).
pub struct WipeOnFree<A>(pub A);

/// Overwrite `size` bytes at `ptr` with zeros (zeroize's volatile writes: not elided, although
/// the block is freed right after).
///
/// # Safety
/// `ptr` is valid for writes of `size` bytes.
#[allow(unsafe_code)]
unsafe fn wipe(ptr: *mut u8, size: usize) {
    // SAFETY: the caller's promise.
    unsafe { std::slice::from_raw_parts_mut(ptr, size) }.zeroize();
}

// SAFETY: every block comes from `A` with the layout asked for; blocks are written only while
// they are allocated, and freed to `A` with the layout they were allocated with.
#[allow(unsafe_code)]
unsafe impl<A: GlobalAlloc> GlobalAlloc for WipeOnFree<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as given.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as given.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is a live block of `layout.size()` bytes until freed here.
        unsafe {
            wipe(ptr, layout.size());
            self.0.dealloc(ptr, layout);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller promises a non-zero `new_size` that does not overflow with the
        // alignment, as `GlobalAlloc::realloc` requires.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = self.0.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                wipe(ptr, layout.size());
                self.0.dealloc(ptr, layout);
            }
            new
        }
    }
}
