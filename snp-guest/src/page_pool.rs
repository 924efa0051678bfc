//! A fixed pool of physically contiguous 4 KiB pages, handed out first-fit: the memory shared with
//! the host, from which the kernel takes every device (DMA) buffer under SEV. Allocation state is
//! a bitmap inside the struct, so the pool needs no heap and works before the kernel has one.

/// Most pages a pool can manage (64 MiB).
pub const MAX_PAGES: usize = 16384;
const PAGE: u64 = 4096;
const WORDS: usize = MAX_PAGES / 64;

/// Why a pool could not be made or a free was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// The base is not page-aligned, the pool is empty or larger than [`MAX_PAGES`].
    BadRegion,
    /// The freed range is not inside the pool or not page-aligned.
    NotInPool,
    /// The freed range was not (entirely) allocated.
    NotAllocated,
}

impl core::fmt::Display for PoolError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::BadRegion => "shared pool region is unaligned, empty or too large",
            Self::NotInPool => "freed range is not in the shared pool",
            Self::NotAllocated => "freed range was not allocated from the shared pool",
        })
    }
}

/// The pool: `pages` pages from `base`.
#[derive(Clone, Debug)]
pub struct PagePool {
    base: u64,
    pages: usize,
    used: [u64; WORDS],
}

impl PagePool {
    /// A pool with no pages (every allocation fails).
    pub const fn empty() -> Self {
        Self {
            base: 0,
            pages: 0,
            used: [0; WORDS],
        }
    }

    /// A pool over `pages` pages from `base` (page-aligned).
    pub fn new(base: u64, pages: usize) -> Result<Self, PoolError> {
        if !base.is_multiple_of(PAGE) || pages == 0 || pages > MAX_PAGES {
            return Err(PoolError::BadRegion);
        }
        base.checked_add(pages as u64 * PAGE)
            .ok_or(PoolError::BadRegion)?;
        Ok(Self {
            base,
            pages,
            used: [0; WORDS],
        })
    }

    /// Whether `addr` lies in the pool.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr < self.base + self.pages as u64 * PAGE
    }

    /// How many pages are free.
    pub fn free_pages(&self) -> usize {
        (0..self.pages).filter(|&i| !self.is_used(i)).count()
    }

    /// The address of `count` contiguous free pages, now allocated; `None` if there are none.
    pub fn allocate(&mut self, count: usize) -> Option<u64> {
        if count == 0 || count > self.pages {
            return None;
        }
        let mut run = 0;
        for i in 0..self.pages {
            if self.is_used(i) {
                run = 0;
                continue;
            }
            run += 1;
            if run == count {
                let first = i + 1 - count;
                (first..=i).for_each(|p| self.set(p, true));
                return Some(self.base + first as u64 * PAGE);
            }
        }
        None
    }

    /// Give back `count` pages from `addr`, which must all be allocated.
    pub fn free(&mut self, addr: u64, count: usize) -> Result<(), PoolError> {
        if !self.contains(addr) || !addr.is_multiple_of(PAGE) {
            return Err(PoolError::NotInPool);
        }
        let first = ((addr - self.base) / PAGE) as usize;
        let end = first.checked_add(count).ok_or(PoolError::NotInPool)?;
        if count == 0 || end > self.pages {
            return Err(PoolError::NotInPool);
        }
        if !(first..end).all(|p| self.is_used(p)) {
            return Err(PoolError::NotAllocated);
        }
        (first..end).for_each(|p| self.set(p, false));
        Ok(())
    }

    fn is_used(&self, page: usize) -> bool {
        self.used[page / 64] & (1 << (page % 64)) != 0
    }

    fn set(&mut self, page: usize, used: bool) {
        if used {
            self.used[page / 64] |= 1 << (page % 64);
        } else {
            self.used[page / 64] &= !(1 << (page % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_contiguous_allocation_and_free() {
        let mut pool = PagePool::new(0x10_0000, 8).unwrap();
        assert_eq!(pool.allocate(3), Some(0x10_0000));
        assert_eq!(pool.allocate(2), Some(0x10_3000));
        assert_eq!(pool.free_pages(), 3);
        pool.free(0x10_0000, 3).unwrap();
        // A 4-page run does not fit in the 3 freed pages before the used ones: it goes after.
        assert_eq!(pool.allocate(4), None);
        assert_eq!(pool.allocate(3), Some(0x10_0000));
        assert_eq!(pool.allocate(3), Some(0x10_5000));
        assert_eq!(pool.allocate(1), None);
        assert_eq!(pool.free_pages(), 0);
    }

    #[test]
    fn refuses_bad_regions_and_bad_frees() {
        assert_eq!(PagePool::new(0x1001, 1).unwrap_err(), PoolError::BadRegion);
        assert_eq!(PagePool::new(0x1000, 0).unwrap_err(), PoolError::BadRegion);
        assert_eq!(
            PagePool::new(0x1000, MAX_PAGES + 1).unwrap_err(),
            PoolError::BadRegion
        );
        assert_eq!(PagePool::new(!0xfff, 2).unwrap_err(), PoolError::BadRegion);
        let mut pool = PagePool::new(0x10_0000, 4).unwrap();
        let a = pool.allocate(2).unwrap();
        assert_eq!(pool.free(0x20_0000, 1), Err(PoolError::NotInPool));
        assert_eq!(pool.free(a + 1, 1), Err(PoolError::NotInPool));
        assert_eq!(pool.free(a, 3), Err(PoolError::NotAllocated));
        assert_eq!(pool.free(a + 0x3000, 2), Err(PoolError::NotInPool));
        assert_eq!(pool.free(a, 2), Ok(()));
        assert_eq!(
            pool.free(a, 2),
            Err(PoolError::NotAllocated),
            "no double free"
        );
        assert_eq!(PagePool::empty().allocate(1), None);
        assert_eq!(pool.allocate(0), None);
    }
}
