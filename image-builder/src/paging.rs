//! The identity page tables the Hermit kernel starts on.
//!
//! OVMF maps RAM with 1 GiB pages when the CPU has them, and the kernel cannot split those
//! (it panics with `ParentEntryHugePage` when it maps its heap), so we build our own tables:
//! 2 MiB pages up to max(4 GiB, top of RAM), then 1 GiB pages up to the physical address width
//! (OVMF places 64-bit PCI BARs high), but never at or above 64 TiB: the kernel allocates its
//! virtual addresses from 64–128 TiB and must find that part of the address space unmapped.

pub const PAGE_SIZE: u64 = 4096;
pub const GIB: u64 = 1 << 30;
const ENTRIES: u64 = 512;
const PML4_SPAN: u64 = ENTRIES * GIB;
/// Start of the kernel's virtual allocation window (PML4 index 128).
pub const KERNEL_VIRTUAL_START: u64 = 1 << 46;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const HUGE: u64 = 1 << 7;

/// One 4 KiB page table.
pub type Table = [u64; ENTRIES as usize];

/// What the tables cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Mapped with 2 MiB pages below this (a multiple of 1 GiB).
    pub small_limit: u64,
    /// Mapped with 1 GiB pages from `small_limit` up to this (a multiple of 1 GiB).
    pub limit: u64,
}

impl Layout {
    pub fn new(top_of_ram: u64, phys_bits: u8) -> Self {
        let small_limit = top_of_ram
            .max(4 * GIB)
            .next_multiple_of(GIB)
            .min(KERNEL_VIRTUAL_START);
        let width = 1u64.checked_shl(u32::from(phys_bits)).unwrap_or(u64::MAX);
        let limit = width
            .min(KERNEL_VIRTUAL_START)
            .max(small_limit)
            .next_multiple_of(GIB);
        Self { small_limit, limit }
    }

    fn pdpt_count(&self) -> usize {
        self.limit.div_ceil(PML4_SPAN) as usize
    }

    fn pd_count(&self) -> usize {
        (self.small_limit / GIB) as usize
    }

    /// Pages needed: the PML4, the PDPTs, the PDs.
    pub fn tables_needed(&self) -> usize {
        1 + self.pdpt_count() + self.pd_count()
    }
}

/// Fill `tables` (physically contiguous at `base`) with the identity mapping; returns the CR3 value.
pub fn build(tables: &mut [Table], base: u64, layout: Layout) -> u64 {
    assert_eq!(tables.len(), layout.tables_needed());
    assert_eq!(base % PAGE_SIZE, 0);
    for table in tables.iter_mut() {
        table.fill(0);
    }
    let addr_of = |index: usize| base + index as u64 * PAGE_SIZE;
    let (pml4, rest) = tables.split_first_mut().expect("at least one table");
    let (pdpts, pds) = rest.split_at_mut(layout.pdpt_count());
    for (i, _) in pdpts.iter().enumerate() {
        pml4[i] = addr_of(1 + i) | PRESENT | WRITABLE;
    }
    let first_pd = 1 + pdpts.len();
    let mut gib = 0u64;
    while gib * GIB < layout.limit {
        let pdpt = &mut pdpts[(gib / ENTRIES) as usize];
        let slot = (gib % ENTRIES) as usize;
        if gib * GIB < layout.small_limit {
            let pd_index = gib as usize;
            pdpt[slot] = addr_of(first_pd + pd_index) | PRESENT | WRITABLE;
            for (j, entry) in pds[pd_index].iter_mut().enumerate() {
                *entry = (gib * GIB + j as u64 * (2 << 20)) | PRESENT | WRITABLE | HUGE;
            }
        } else {
            pdpt[slot] = (gib * GIB) | PRESENT | WRITABLE | HUGE;
        }
        gib += 1;
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Walk the tables in memory the way the MMU would, for an identity check.
    fn translate(tables: &[Table], base: u64, va: u64) -> Option<u64> {
        let table = |addr: u64| &tables[((addr & !0xfff) - base) as usize / 4096];
        let l4 = table(base)[((va >> 39) & 511) as usize];
        if l4 & PRESENT == 0 {
            return None;
        }
        let l3 = table(l4 & 0x000f_ffff_ffff_f000)[((va >> 30) & 511) as usize];
        if l3 & PRESENT == 0 {
            return None;
        }
        if l3 & HUGE != 0 {
            return Some((l3 & 0x000f_ffff_c000_0000) | (va & (GIB - 1)));
        }
        let l2 = table(l3 & 0x000f_ffff_ffff_f000)[((va >> 21) & 511) as usize];
        if l2 & PRESENT == 0 || l2 & HUGE == 0 {
            return None;
        }
        Some((l2 & 0x000f_ffff_ffe0_0000) | (va & ((2 << 20) - 1)))
    }

    #[test]
    fn identity_maps_ram_small_and_high_space_huge() {
        let layout = Layout::new(6 * GIB + 5, 40);
        assert_eq!(
            layout,
            Layout {
                small_limit: 7 * GIB,
                limit: 1 << 40
            }
        );
        let base = 0x10_0000;
        let mut tables = vec![[0u64; 512]; layout.tables_needed()];
        assert_eq!(build(&mut tables, base, layout), base);
        for va in [
            0,
            0x1234,
            4 * GIB - 1,
            6 * GIB + 0x20_1234,
            0xC0_0000_0000,
            (1 << 40) - 1,
        ] {
            assert_eq!(translate(&tables, base, va), Some(va), "{va:#x}");
        }
        assert_eq!(translate(&tables, base, 1 << 40), None);
    }

    #[test]
    fn never_maps_the_kernel_virtual_window() {
        let layout = Layout::new(2 * GIB, 52);
        assert_eq!(layout.small_limit, 4 * GIB);
        assert_eq!(layout.limit, KERNEL_VIRTUAL_START);
        let base = 0;
        let mut tables = vec![[0u64; 512]; layout.tables_needed()];
        build(&mut tables, base, layout);
        assert_eq!(
            translate(&tables, base, KERNEL_VIRTUAL_START - 1),
            Some(KERNEL_VIRTUAL_START - 1)
        );
        assert_eq!(translate(&tables, base, KERNEL_VIRTUAL_START), None);
        assert_eq!(translate(&tables, base, 0x7fff_ffff_f000), None);
    }
}
