//! The identity page tables the Hermit kernel starts on.
//!
//! OVMF maps RAM with 1 GiB pages when the CPU has them, and the kernel cannot split those
//! (it panics with `ParentEntryHugePage` when it maps its heap), so we build our own tables:
//! 2 MiB pages up to max(4 GiB, top of RAM), then 1 GiB pages up to the physical address width
//! (OVMF places 64-bit PCI BARs high), but never at or above 64 TiB: the kernel allocates its
//! virtual addresses from 64–128 TiB and must find that part of the address space unmapped.
//!
//! Under AMD SEV the C-bit of a leaf entry makes the page private (encrypted with the guest key).
//! [`Encryption`] names the private memory: 2 MiB pages wholly inside it get the C-bit, pages
//! wholly outside (MMIO, holes) do not, pages with both are split into 4 KiB pages, and the 1 GiB
//! region above stays shared. Table pointers and CR3 carry the C-bit too, as Linux does
//! (`_KERNPG_TABLE` includes `_ENC`, `build_cr3` uses `__sme_pa`): needed under SME; under SEV
//! the hardware treats guest page-table walks as private whatever the bit (Oak's stage0 leaves it
//! off table pointers for that reason), so it is harmless there.

use core::fmt;
use core::ops::Range;

pub const PAGE_SIZE: u64 = 4096;
pub const GIB: u64 = 1 << 30;
const LARGE: u64 = 2 << 20;
const ENTRIES: u64 = 512;
const PML4_SPAN: u64 = ENTRIES * GIB;
/// Start of the kernel's virtual allocation window (PML4 index 128).
pub const KERNEL_VIRTUAL_START: u64 = 1 << 46;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const HUGE: u64 = 1 << 7;
/// Bits 12..=51 of an entry hold the address; a C-bit must be one of them.
const ADDRESS_BITS: Range<u32> = 12..52;

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

/// Memory encryption: the C-bit and the memory that gets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encryption<'a> {
    c_bit_mask: u64,
    private: &'a [Range<u64>],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncryptionError {
    /// The mask is not one bit among the address bits 12..=51 of an entry.
    BadMask(u64),
    /// Private ranges must be non-empty, 4 KiB-aligned, sorted and merged (not touching).
    BadRange(Range<u64>),
    /// The C-bit is an address bit of the mapped region.
    Collides { c_bit_mask: u64, limit: u64 },
    /// Private memory above the 2 MiB-mapped region would be mapped shared.
    PrivateAbove { range: Range<u64>, small_limit: u64 },
}

impl fmt::Display for EncryptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMask(m) => write!(f, "C-bit mask {m:#x} is not a single bit in 12..=51"),
            Self::BadRange(r) => write!(
                f,
                "private range {:#x}..{:#x} is empty, not 4 KiB aligned, or not sorted and merged",
                r.start, r.end
            ),
            Self::Collides { c_bit_mask, limit } => write!(
                f,
                "C-bit {c_bit_mask:#x} collides with the mapped physical addresses (up to {limit:#x})"
            ),
            Self::PrivateAbove { range, small_limit } => write!(
                f,
                "private range {:#x}..{:#x} reaches above the 2 MiB-mapped region ({small_limit:#x})",
                range.start, range.end
            ),
        }
    }
}

impl<'a> Encryption<'a> {
    /// No memory encryption: the tables are what they were before SEV support.
    pub const NONE: Encryption<'static> = Encryption {
        c_bit_mask: 0,
        private: &[],
    };

    /// `c_bit_mask` is `1 << position` (0 for none); `private` is sorted, merged, 4 KiB-aligned
    /// (as `sev::private_ranges` returns it).
    pub fn new(c_bit_mask: u64, private: &'a [Range<u64>]) -> Result<Self, EncryptionError> {
        if c_bit_mask != 0
            && (!c_bit_mask.is_power_of_two()
                || !ADDRESS_BITS.contains(&c_bit_mask.trailing_zeros()))
        {
            return Err(EncryptionError::BadMask(c_bit_mask));
        }
        let mut previous_end = None;
        for r in private {
            let aligned = r.start.is_multiple_of(PAGE_SIZE) && r.end.is_multiple_of(PAGE_SIZE);
            if !aligned || r.start >= r.end || previous_end.is_some_and(|end| r.start <= end) {
                return Err(EncryptionError::BadRange(r.clone()));
            }
            previous_end = Some(r.end);
        }
        Ok(Self {
            c_bit_mask,
            private,
        })
    }

    fn is_private(&self, addr: u64) -> bool {
        let i = self.private.partition_point(|r| r.end <= addr);
        self.private.get(i).is_some_and(|r| r.start <= addr)
    }

    /// Numbers of the 2 MiB pages that are partly private, ascending: those holding a range
    /// boundary that is not 2 MiB aligned (ranges are merged, so the other side of a boundary is
    /// never private).
    fn split_pages(&self) -> impl Iterator<Item = u64> + '_ {
        let mut last = None;
        let enabled = self.c_bit_mask != 0;
        self.private
            .iter()
            .filter(move |_| enabled)
            .flat_map(|r| [r.start, r.end])
            .filter(|addr| !addr.is_multiple_of(LARGE))
            .map(|addr| addr / LARGE)
            .filter(move |&page| last.replace(page) != Some(page))
    }
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

    /// Pages [`build`] needs: the PML4, the PDPTs, the PDs, one page table per split 2 MiB page.
    /// Refuses a C-bit that is an address bit of the mapping, and private memory above
    /// `small_limit` (it would be mapped shared by the 1 GiB pages).
    pub fn tables_needed(&self, enc: &Encryption<'_>) -> Result<usize, EncryptionError> {
        let mask = enc.c_bit_mask;
        if mask != 0 {
            if mask < self.limit {
                return Err(EncryptionError::Collides {
                    c_bit_mask: mask,
                    limit: self.limit,
                });
            }
            if let Some(r) = enc.private.iter().find(|r| r.end > self.small_limit) {
                return Err(EncryptionError::PrivateAbove {
                    range: r.clone(),
                    small_limit: self.small_limit,
                });
            }
        }
        Ok(1 + self.pdpt_count() + self.pd_count() + enc.split_pages().count())
    }
}

/// Fill `tables` (physically contiguous at `base`, [`Layout::tables_needed`] pages) with the
/// identity mapping; returns the CR3 value.
pub fn build(tables: &mut [Table], base: u64, layout: Layout, enc: &Encryption<'_>) -> u64 {
    let needed = layout
        .tables_needed(enc)
        .expect("call Layout::tables_needed first");
    assert_eq!(tables.len(), needed);
    assert_eq!(base % PAGE_SIZE, 0);
    let c = enc.c_bit_mask;
    let addr_of = |index: usize| base + index as u64 * PAGE_SIZE;
    // The kernel edits these tables through the identity map: they must be mapped private.
    assert!(c == 0 || (0..needed).all(|i| enc.is_private(addr_of(i))));
    for table in tables.iter_mut() {
        table.fill(0);
    }
    let private_bit = |addr: u64| if c != 0 && enc.is_private(addr) { c } else { 0 };
    let (pml4, rest) = tables.split_first_mut().expect("at least one table");
    let (pdpts, rest) = rest.split_at_mut(layout.pdpt_count());
    let (pds, pts) = rest.split_at_mut(layout.pd_count());
    for (i, _) in pdpts.iter().enumerate() {
        pml4[i] = addr_of(1 + i) | PRESENT | WRITABLE | c;
    }
    let first_pd = 1 + pdpts.len();
    let first_pt = first_pd + pds.len();
    let mut splits = enc.split_pages().peekable();
    let mut pts = pts.iter_mut().enumerate();
    let mut gib = 0u64;
    while gib * GIB < layout.limit {
        let pdpt = &mut pdpts[(gib / ENTRIES) as usize];
        let slot = (gib % ENTRIES) as usize;
        if gib * GIB < layout.small_limit {
            let pd_index = gib as usize;
            pdpt[slot] = addr_of(first_pd + pd_index) | PRESENT | WRITABLE | c;
            for (j, entry) in pds[pd_index].iter_mut().enumerate() {
                let addr = gib * GIB + j as u64 * LARGE;
                if splits.next_if_eq(&(addr / LARGE)).is_some() {
                    let (k, pt) = pts.next().expect("one page table per split page");
                    *entry = addr_of(first_pt + k) | PRESENT | WRITABLE | c;
                    for (i, small) in pt.iter_mut().enumerate() {
                        let a = addr + i as u64 * PAGE_SIZE;
                        *small = a | PRESENT | WRITABLE | private_bit(a);
                    }
                } else {
                    *entry = addr | PRESENT | WRITABLE | HUGE | private_bit(addr);
                }
            }
        } else {
            pdpt[slot] = (gib * GIB) | PRESENT | WRITABLE | HUGE;
        }
        gib += 1;
    }
    assert!(splits.next().is_none() && pts.next().is_none());
    base | c
}

#[cfg(test)]
// Lists of address ranges are the data here, one-element lists included.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    const ADDR: u64 = 0x000f_ffff_ffff_f000;

    /// Walk the tables the way the MMU would: (physical address, leaf has the C-bit). The C-bit is
    /// masked out of every address; CR3 and every table pointer must carry it when `c` is set.
    fn translate(tables: &[Table], base: u64, cr3: u64, c: u64, va: u64) -> Option<(u64, bool)> {
        let mut pointer = cr3;
        for shift in [39, 30, 21, 12] {
            assert_eq!(
                pointer & c,
                c,
                "table pointer {pointer:#x} without the C-bit"
            );
            let table = &tables[((pointer & ADDR & !c) - base) as usize / 4096];
            let entry = table[((va >> shift) & 511) as usize];
            if entry & PRESENT == 0 {
                return None;
            }
            if shift == 12 || (shift != 39 && entry & HUGE != 0) {
                let offset = (1u64 << shift) - 1;
                return Some((
                    (entry & ADDR & !c & !offset) | (va & offset),
                    entry & c != 0,
                ));
            }
            pointer = entry;
        }
        unreachable!()
    }

    fn tables_for(layout: Layout, enc: &Encryption<'_>, base: u64) -> (Vec<Table>, u64) {
        let mut tables = vec![[0u64; 512]; layout.tables_needed(enc).unwrap()];
        let cr3 = build(&mut tables, base, layout, enc);
        (tables, cr3)
    }

    #[test]
    fn identity_maps_ram_small_and_high_space_huge() {
        let layout = Layout::new(6 * GIB + 5, 40);
        assert_eq!((layout.small_limit, layout.limit), (7 * GIB, 1 << 40));
        let base = 0x10_0000;
        let (tables, cr3) = tables_for(layout, &Encryption::NONE, base);
        assert_eq!(cr3, base);
        let vas = [
            0,
            0x1234,
            4 * GIB - 1,
            6 * GIB + 0x20_1234,
            0xC0_0000_0000,
            (1 << 40) - 1,
        ];
        for va in vas {
            let got = translate(&tables, base, cr3, 0, va);
            assert_eq!(got, Some((va, false)), "{va:#x}");
        }
        assert_eq!(translate(&tables, base, cr3, 0, 1 << 40), None);
    }

    #[test]
    fn never_maps_the_kernel_virtual_window() {
        let layout = Layout::new(2 * GIB, 52);
        assert_eq!(
            (layout.small_limit, layout.limit),
            (4 * GIB, KERNEL_VIRTUAL_START)
        );
        let (tables, cr3) = tables_for(layout, &Encryption::NONE, 0);
        let top = KERNEL_VIRTUAL_START - 1;
        assert_eq!(translate(&tables, 0, cr3, 0, top), Some((top, false)));
        assert_eq!(translate(&tables, 0, cr3, 0, KERNEL_VIRTUAL_START), None);
        assert_eq!(translate(&tables, 0, cr3, 0, 0x7fff_ffff_f000), None);
    }

    /// `build` as it was before memory encryption, verbatim.
    fn build_before_sev(tables: &mut [Table], base: u64, layout: Layout) -> u64 {
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

    #[test]
    fn mask_zero_is_bit_identical_to_the_tables_before_sev() {
        let private = [0x1000..0xa_0000, 0x10_0000..0x7fe0_1000];
        for (layout, base) in [
            (Layout::new(6 * GIB + 5, 40), 0x10_0000),
            (Layout::new(2 * GIB, 52), 0),
            (Layout::new(700 * GIB, 48), 0x7f00_0000),
        ] {
            for enc in [Encryption::NONE, Encryption::new(0, &private).unwrap()] {
                let count = 1 + layout.pdpt_count() + layout.pd_count();
                assert_eq!(layout.tables_needed(&enc), Ok(count));
                let mut old = vec![[0u64; 512]; count];
                let old_cr3 = build_before_sev(&mut old, base, layout);
                let (new, cr3) = tables_for(layout, &enc, base);
                assert_eq!(cr3, old_cr3);
                assert!(new == old, "{layout:?}");
            }
        }
    }

    #[test]
    fn private_ram_gets_the_c_bit_and_mmio_does_not() {
        let c = 1 << 47;
        // Low RAM below the legacy hole, RAM to 2 GiB - 2 MiB, the 32-bit MMIO hole, high RAM
        // ending 1 MiB into a 2 MiB page.
        let private = [
            0..0xa_0000,
            0x10_0000..0x7fe0_0000,
            0x1_0000_0000..0x1_8010_0000,
        ];
        let enc = Encryption::new(c, &private).unwrap();
        let layout = Layout::new(0x1_8010_0000, 40);
        assert_eq!(layout.small_limit, 7 * GIB);
        // Two split 2 MiB pages: the first (both edges of the legacy hole) and the last.
        assert_eq!(layout.tables_needed(&enc), Ok(1 + 2 + 7 + 2));
        let base = 0x20_0000;
        let (tables, cr3) = tables_for(layout, &enc, base);
        assert_eq!(cr3, base | c);
        let private_low = [0, 0x9_f000, 0x10_0000, 0x20_0000, 0x7fdf_ffff];
        let private_high = [4 * GIB, 6 * GIB, 6 * GIB + 0xf_ffff];
        let holes = [0xa_0000, 0xf_ffff, 0x7fe0_0000, 0x8000_0000, 0xfec0_0000];
        let shared_high = [
            6 * GIB + 0x10_0000,
            6 * GIB + 0x1f_f000,
            7 * GIB,
            (1 << 40) - 1,
        ];
        let expected = [
            (&private_low[..], true),
            (&private_high, true),
            (&holes, false),
            (&shared_high, false),
        ];
        for (vas, private) in expected {
            for &va in vas {
                let got = translate(&tables, base, cr3, c, va);
                assert_eq!(got, Some((va, private)), "{va:#x}");
            }
        }
        assert_eq!(translate(&tables, base, cr3, c, 1 << 40), None);
        // The first PD: entry 0 points to a page table, entry 1 is a private 2 MiB page.
        assert_eq!(tables[3][0] & HUGE, 0);
        assert_eq!(tables[3][1], 0x20_0000 | PRESENT | WRITABLE | HUGE | c);
    }

    #[test]
    fn split_count_matches_a_page_by_page_count() {
        // Pseudo-random merged ranges in the first 64 MiB, checked against a brute-force walk.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (layout, base, c) = (Layout::new(0, 36), 0x4000_0000, 1 << 51);
        let mut total_mixed = 0;
        for _ in 0..20 {
            let mut private = Vec::new();
            let mut at = next(4) * LARGE + next(512) * PAGE_SIZE;
            while at < 64 << 20 {
                let end = (at + (1 + next(700)) * PAGE_SIZE).min(64 << 20);
                private.push(at..end);
                at = end + (1 + next(600)) * PAGE_SIZE;
            }
            private.push(base..base + LARGE); // where the tables are
            let enc = Encryption::new(c, &private).unwrap();
            let inside = |a: u64| private.iter().any(|r| r.contains(&a));
            let private_pages = |p| {
                (0..512)
                    .filter(|i| inside(p * LARGE + i * PAGE_SIZE))
                    .count()
            };
            let mixed = (0..32)
                .filter(|&p| !matches!(private_pages(p), 0 | 512))
                .count();
            total_mixed += mixed;
            assert_eq!(layout.tables_needed(&enc), Ok(1 + 1 + 4 + mixed));
            let (tables, cr3) = tables_for(layout, &enc, base);
            for va in (0x123..64u64 << 20).step_by(PAGE_SIZE as usize) {
                let got = translate(&tables, base, cr3, c, va);
                assert_eq!(got, Some((va, inside(va))), "{va:#x}");
            }
        }
        assert!(total_mixed > 100, "{total_mixed}");
    }

    #[test]
    fn refuses_bad_encryption() {
        let e = Encryption::new;
        for mask in [3, 1 << 11, 1 << 52, 1 << 63] {
            assert_eq!(e(mask, &[]), Err(EncryptionError::BadMask(mask)));
        }
        let unaligned = [0x800..0x1000];
        let empty = [0x2000..0x2000];
        let unsorted = [0x3000..0x4000, 0x1000..0x2000];
        let touching = [0x1000..0x2000, 0x2000..0x3000];
        for bad in [&unaligned[..], &empty, &unsorted, &touching] {
            let err = e(1 << 51, bad);
            assert!(matches!(err, Err(EncryptionError::BadRange(_))), "{bad:?}");
        }
        let layout = Layout::new(6 * GIB, 40);
        let err = layout.tables_needed(&e(1 << 39, &[]).unwrap()).unwrap_err();
        assert!(matches!(err, EncryptionError::Collides { limit, .. } if limit == 1 << 40));
        assert!(alloc::format!("{err}").contains("collides"));
        assert_eq!(layout.tables_needed(&e(1 << 40, &[]).unwrap()), Ok(9));
        let above = [0..0x1000, 6 * GIB..6 * GIB + 0x1000];
        let err = layout.tables_needed(&e(1 << 47, &above).unwrap());
        assert!(matches!(err, Err(EncryptionError::PrivateAbove { .. })));
    }

    #[test]
    #[should_panic]
    fn refuses_tables_in_shared_memory() {
        let private = [0..0x10_0000];
        tables_for(
            Layout::new(0, 36),
            &Encryption::new(1 << 51, &private).unwrap(),
            0x20_0000,
        );
    }
}
