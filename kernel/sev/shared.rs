//! Memory shared with the host under SEV: the region the loader converted (`/pp,shared`: first
//! page the boot CPU's GHCB, the rest a pool of pages), from which `DeviceAlloc` takes every
//! device buffer — virtio rings and packet buffers. The network stack copies packets between its
//! own (private) buffers and these, so they are the bounce buffers: no private page is ever
//! handed to a device.

use core::alloc::AllocError;
use core::ops::Range;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hermit_sync::InterruptTicketMutex;

use super::page_pool::PagePool;

const PAGE: u64 = 4096;

static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The whole shared region (GHCB page included), for [`contains`].
static REGION_START: AtomicU64 = AtomicU64::new(0);
static REGION_END: AtomicU64 = AtomicU64::new(0);
static POOL: InterruptTicketMutex<PagePool> = InterruptTicketMutex::new(PagePool::empty());

/// Take the loader's shared region: its first page is the GHCB (not pooled).
pub(crate) fn init(region: Range<u64>) {
    let pages = ((region.end - region.start) / PAGE) as usize;
    let pool = PagePool::new(region.start + PAGE, pages - 1)
        .unwrap_or_else(|e| panic!("pp-sev: shared region: {e}"));
    *POOL.lock() = pool;
    REGION_START.store(region.start, Ordering::Release);
    REGION_END.store(region.end, Ordering::Release);
    ACTIVE.store(true, Ordering::Release);
}

/// Whether `len` bytes at `addr` touch memory shared with the host (never true without SEV).
pub(crate) fn contains(addr: usize, len: usize) -> bool {
    if !active() || len == 0 {
        return false;
    }
    let (start, end) = (
        REGION_START.load(Ordering::Acquire),
        REGION_END.load(Ordering::Acquire),
    );
    let (at, last) = (addr as u64, (addr as u64).saturating_add(len as u64));
    at < end && last > start
}

/// Whether device buffers must come from the shared pool.
pub(crate) fn active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

/// `size` bytes (a multiple of 4 KiB) of shared, identity-mapped memory; `None` when SEV is not
/// active. An exhausted pool is an allocation error: falling back to private memory would give
/// the device pages it cannot read.
pub(crate) fn allocate(size: usize) -> Option<Result<NonNull<[u8]>, AllocError>> {
    if !active() {
        return None;
    }
    let pages = size.div_ceil(PAGE as usize);
    let Some(addr) = POOL.lock().allocate(pages) else {
        return Some(Err(AllocError));
    };
    let ptr = core::ptr::slice_from_raw_parts_mut(
        core::ptr::with_exposed_provenance_mut::<u8>(addr as usize),
        pages * PAGE as usize,
    );
    Some(NonNull::new(ptr).ok_or(AllocError))
}

/// Give back a buffer from [`allocate`]; `false` if `addr` is not in the pool (SEV inactive).
pub(crate) fn deallocate(addr: usize, size: usize) -> bool {
    if !active() {
        return false;
    }
    let mut pool = POOL.lock();
    if !pool.contains(addr as u64) {
        return false;
    }
    let pages = size.div_ceil(PAGE as usize);
    if let Err(e) = pool.free(addr as u64, pages) {
        panic!("pp-sev: freeing a device buffer: {e}");
    }
    true
}
