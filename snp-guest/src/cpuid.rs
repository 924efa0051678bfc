//! The SNP CPUID page (SEV-SNP ABI spec, AMD 56860, "CPUID Reporting" (§7.1 in rev 0.9) and table
//! "CPUID_FUNCTION"; Linux `struct snp_cpuid_table`, `snp_cpuid` in `arch/x86/coco/sev/`).
//!
//! The firmware checks the hypervisor's CPUID values when the guest is launched and places them
//! in a page of the guest's memory, which is measured. An SNP guest answers `CPUID` from this
//! page instead of asking the hypervisor. Layout (little-endian): `count: u32`, reserved `u32`
//! and `u64`, then 64 entries of 48 bytes: `eax_in: u32, ecx_in: u32, xcr0_in: u64, xss_in: u64,
//! eax, ebx, ecx, edx: u32`, reserved `u64`. Entries past `count` are ignored.
//!
//! Like smoltcp's `wire` views, [`CpuidPage::parse`] checks once and lookups cannot fail after.
//! Lookups follow Linux `snp_cpuid` up to its post-processing: the per-CPU fix-ups Linux takes
//! from the hypervisor or CR4 (APIC IDs in 0x1/0xB/0x8000_001E, OSXSAVE, OSPKE) are the caller's.

use super::msr::{MEMORY_ENCRYPTION_LEAF, MemoryEncryptionInfo};
use core::fmt;

/// The firmware's limit on entries.
pub const CPUID_MAX_ENTRIES: usize = 64;
/// One entry.
pub const CPUID_ENTRY_SIZE: usize = 48;
/// `count` and the two reserved fields.
pub const CPUID_HEADER_SIZE: usize = 16;
/// Header and all 64 entries: the least [`CpuidPage::parse`] accepts (the page is 4096 bytes).
pub const CPUID_TABLE_SIZE: usize = CPUID_HEADER_SIZE + CPUID_MAX_ENTRIES * CPUID_ENTRY_SIZE;

/// Leaves whose output depends on ECX (Linux `cpuid_function_is_indexed`, plus AMD's indexed
/// 0x8000_0020 (platform QoS) and 0x8000_0026 (extended topology), which Linux's list lacks).
pub const fn is_indexed(leaf: u32) -> bool {
    matches!(
        leaf,
        0x4 | 0x7 | 0xB | 0xD | 0xF | 0x10 | 0x12 | 0x14 | 0x17 | 0x18 | 0x1D | 0x1E | 0x1F | 0x24
    ) || matches!(leaf, 0x8000_001D | 0x8000_0020 | 0x8000_0026)
}

/// One entry of the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidEntry {
    pub eax_in: u32,
    pub ecx_in: u32,
    pub xcr0_in: u64,
    pub xss_in: u64,
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

impl CpuidEntry {
    fn read(b: &[u8]) -> Self {
        let (eax_in, ecx_in, xcr0_in, xss_in) = (le32(b, 0), le32(b, 4), le64(b, 8), le64(b, 16));
        let (eax, ebx, ecx, edx) = (le32(b, 24), le32(b, 28), le32(b, 32), le32(b, 36));
        Self {
            eax_in,
            ecx_in,
            xcr0_in,
            xss_in,
            eax,
            ebx,
            ecx,
            edx,
        }
    }
    /// `[eax, ebx, ecx, edx]`.
    pub const fn output(&self) -> [u32; 4] {
        [self.eax, self.ebx, self.ecx, self.edx]
    }
}

/// A CPUID page that fails its checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuidPageError {
    /// Fewer than [`CPUID_TABLE_SIZE`] bytes.
    TooShort,
    /// `count` is 0 or above 64.
    BadCount { count: u32 },
    /// A reserved header field is nonzero.
    ReservedNonZero,
    /// Two of the first `count` entries have the same inputs.
    Duplicate { leaf: u32, subleaf: u32 },
    /// A leaf the guest needs (0x0, 0x8000_0000, 0x8000_001F) is missing.
    MissingLeaf { leaf: u32 },
    /// 0x8000_0000 EAX (the highest extended leaf) is below 0x8000_001F.
    ExtendedRangeTooSmall { max: u32 },
    /// 0x8000_001F EAX does not have SEV (bit 1) set.
    NoSev,
    /// 0x8000_001F EAX does not have SEV-SNP (bit 4) set.
    NoSnp,
    /// 0x8000_001F EBX bits 5:0 is not the C-bit the guest detected.
    CBitMismatch { expected: u8, found: u8 },
}

impl fmt::Display for CpuidPageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooShort => "CPUID page shorter than its table",
            Self::BadCount { .. } => "CPUID page count not in 1..=64",
            Self::ReservedNonZero => "CPUID page reserved header field is nonzero",
            Self::Duplicate { .. } => "CPUID page has two entries with the same inputs",
            Self::MissingLeaf { .. } => "CPUID page lacks a required leaf",
            Self::ExtendedRangeTooSmall { .. } => {
                "CPUID page: highest extended leaf below 0x8000001F"
            }
            Self::NoSev => "CPUID page: leaf 0x8000001F does not report SEV",
            Self::NoSnp => "CPUID page: leaf 0x8000001F does not report SEV-SNP",
            Self::CBitMismatch { .. } => "CPUID page C-bit differs from the detected one",
        })
    }
}

/// A checked view of a CPUID page.
#[derive(Clone, Copy, Debug)]
pub struct CpuidPage<'a> {
    /// The first `count` entries, exactly.
    entries: &'a [u8],
    /// EAX of leaf 0x0, 0x4000_0000 (0 when absent) and 0x8000_0000: the ranges' tops.
    std_max: u32,
    hyp_max: u32,
    ext_max: u32,
}

impl<'a> CpuidPage<'a> {
    /// Checks `bytes` (at least [`CPUID_TABLE_SIZE`]): `count` in 1..=64, reserved header fields
    /// zero, no two of the first `count` entries with the same `(eax_in, ecx_in, xcr0_in,
    /// xss_in)`, leaves 0x0 and 0x8000_0000 present, the extended range reaching 0x8000_001F,
    /// and 0x8000_001F present with SEV and SNP set.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, CpuidPageError> {
        use CpuidPageError::*;
        let table = bytes.get(..CPUID_TABLE_SIZE).ok_or(TooShort)?;
        let count = le32(table, 0);
        if count == 0 || count as usize > CPUID_MAX_ENTRIES {
            return Err(BadCount { count });
        }
        if le32(table, 4) != 0 || le64(table, 8) != 0 {
            return Err(ReservedNonZero);
        }
        let len = count as usize * CPUID_ENTRY_SIZE;
        let entries = table
            .get(CPUID_HEADER_SIZE..CPUID_HEADER_SIZE + len)
            .unwrap_or_default();
        let mut page = Self {
            entries,
            std_max: 0,
            hyp_max: 0,
            ext_max: 0,
        };
        let key = |e: &CpuidEntry| (e.eax_in, e.ecx_in, e.xcr0_in, e.xss_in);
        for (i, a) in page.entries().enumerate() {
            if page.entries().skip(i + 1).any(|b| key(&a) == key(&b)) {
                let (leaf, subleaf) = (a.eax_in, a.ecx_in);
                return Err(Duplicate { leaf, subleaf });
            }
        }
        let required = |leaf| page.first(leaf).map(|e| e.eax).ok_or(MissingLeaf { leaf });
        let (std_max, ext_max) = (required(0)?, required(0x8000_0000)?);
        page.hyp_max = page.first(0x4000_0000).map_or(0, |e| e.eax);
        (page.std_max, page.ext_max) = (std_max, ext_max);
        if page.ext_max < MEMORY_ENCRYPTION_LEAF {
            return Err(ExtendedRangeTooSmall { max: page.ext_max });
        }
        let leaf = MEMORY_ENCRYPTION_LEAF;
        let info = page.memory_encryption_info().ok_or(MissingLeaf { leaf })?;
        if !info.sev {
            return Err(NoSev);
        }
        if !info.snp {
            return Err(NoSnp);
        }
        Ok(page)
    }

    /// The first `count` entries.
    pub fn entries(&self) -> impl Iterator<Item = CpuidEntry> + 'a {
        self.entries
            .chunks_exact(CPUID_ENTRY_SIZE)
            .map(CpuidEntry::read)
    }

    fn first(&self, leaf: u32) -> Option<CpuidEntry> {
        self.entries().find(|e| e.eax_in == leaf)
    }

    /// Leaf 0x8000_001F decoded (present once parsed).
    pub fn memory_encryption_info(&self) -> Option<MemoryEncryptionInfo> {
        let e = self.first(MEMORY_ENCRYPTION_LEAF)?;
        Some(MemoryEncryptionInfo::from_cpuid(e.eax, e.ebx))
    }

    /// Checks that 0x8000_001F EBX bits 5:0 is the C-bit position the guest detected (e.g. from
    /// `super::msr::detect`), so that the page and the hardware agree.
    pub fn check_c_bit(&self, expected: u8) -> Result<(), CpuidPageError> {
        let found = self.memory_encryption_info().map_or(0, |i| i.c_bit);
        if found == expected {
            Ok(())
        } else {
            Err(CpuidPageError::CBitMismatch { expected, found })
        }
    }

    /// Whether `leaf` is in the standard (0..=leaf 0 EAX), hypervisor (0x4000_0000..=its EAX, if
    /// present) or extended (0x8000_0000..=its EAX) range.
    pub fn in_range(&self, leaf: u32) -> bool {
        leaf <= self.std_max
            || (0x4000_0000..=self.hyp_max).contains(&leaf)
            || (0x8000_0000..=self.ext_max).contains(&leaf)
    }

    /// The CPUID answer `[eax, ebx, ecx, edx]` for `leaf`/`subleaf`, given the guest's XCR0 and
    /// XSS (Linux `snp_cpuid`):
    /// - `subleaf` selects the entry only for [`is_indexed`] leaves; the first match counts;
    /// - a leaf not in the page but in range is all zeros; out of range is `None`;
    /// - leaf 0xD subleaves 0 and 1 use the entry for the base XSAVE area (`xcr0_in` 1 or 3,
    ///   `xss_in` 0), with EBX recomputed by [`CpuidPage::xsave_size`] for `xcr0` (and, for
    ///   subleaf 1, `xss` when XSAVES is supported). `None` when that fails: XCR0/XSS bits the
    ///   page does not describe, or subleaf 1 without XSAVEC/XSAVES (Linux: fatal).
    pub fn lookup(&self, leaf: u32, subleaf: u32, xcr0: u64, xss: u64) -> Option<[u32; 4]> {
        let xsave_base = leaf == 0xD && subleaf <= 1;
        let found = self.entries().find(|e| {
            e.eax_in == leaf
                && (!is_indexed(leaf) || e.ecx_in == subleaf)
                && (!xsave_base || ((e.xcr0_in == 1 || e.xcr0_in == 3) && e.xss_in == 0))
        });
        let mut out = match found {
            Some(e) => e.output(),
            None if self.in_range(leaf) => [0; 4],
            None => return None,
        };
        if xsave_base {
            out[1] = if subleaf == 0 {
                self.xsave_size(xcr0, 0, false)?
            } else {
                // EAX bit 1 XSAVEC, bit 3 XSAVES.
                if out[0] & 0b1010 == 0 {
                    return None;
                }
                let xss = if out[0] & 0b1000 != 0 { xss } else { 0 };
                self.xsave_size(xcr0, xss, true)?
            };
        }
        Some(out)
    }

    /// The XSAVE area size for the features in `xcr0 | xss` (Linux `snp_cpuid_calc_xsave_size`,
    /// APM vol 3 Appendix E.3.8): 0x240 (legacy area and header) plus, for each feature bit 2..=63,
    /// the leaf 0xD subleaf-n entry: compacted, the sum of the sizes (EAX, no alignment, as
    /// Linux); standard, the largest `offset (EBX) + size (EAX)`. `None` if a requested feature
    /// has no entry or a sum overflows.
    pub fn xsave_size(&self, xcr0: u64, xss: u64, compacted: bool) -> Option<u32> {
        let wanted = xcr0 | xss;
        let (mut found, mut size) = (0u64, 0x240u32);
        for e in self
            .entries()
            .filter(|e| e.eax_in == 0xD && (2..64).contains(&e.ecx_in))
        {
            let bit = 1u64 << e.ecx_in;
            if wanted & bit == 0 || found & bit != 0 {
                continue;
            }
            found |= bit;
            size = match compacted {
                true => size.checked_add(e.eax)?,
                false => size.max(e.eax.checked_add(e.ebx)?),
            };
        }
        (found == wanted & !0b11).then_some(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    /// `(eax_in, ecx_in, xcr0_in, xss_in, [eax, ebx, ecx, edx])`.
    type E = (u32, u32, u64, u64, [u32; 4]);

    fn page(entries: &[E]) -> Vec<u8> {
        let mut b = std::vec![0u8; 4096];
        b[0..4].copy_from_slice(&(entries.len() as u32).to_le_bytes());
        for (i, (eax_in, ecx_in, xcr0, xss, out)) in entries.iter().enumerate() {
            let e = &mut b[16 + 48 * i..16 + 48 * (i + 1)];
            e[0..4].copy_from_slice(&eax_in.to_le_bytes());
            e[4..8].copy_from_slice(&ecx_in.to_le_bytes());
            e[8..16].copy_from_slice(&xcr0.to_le_bytes());
            e[16..24].copy_from_slice(&xss.to_le_bytes());
            for (r, v) in out.iter().enumerate() {
                e[24 + 4 * r..28 + 4 * r].copy_from_slice(&v.to_le_bytes());
            }
        }
        b
    }

    /// SEV, SEV-ES, SNP; C-bit 51.
    const MEM: E = (0x8000_001F, 0, 0, 0, [0b1_1010, (1 << 6) | 51, 0, 0]);

    fn good() -> Vec<E> {
        std::vec![
            (0x0, 0, 0, 0, [0xD, 0x6874_7541, 0x444D_4163, 0x6974_6E65]),
            (
                0x1,
                0,
                0,
                0,
                [0x00A0_0F11, 0x0080_0800, 0xFEDA_3203, 0x178B_FBFF]
            ),
            (0x7, 0, 0, 0, [1, 0x219C_97A9, 0x0040_069C, 0]),
            (0x7, 1, 0, 0, [0x10, 0, 0, 0]),
            // 0xD: base entries for XCR0 = 1 and 3, and a variant the lookup must skip.
            (0xD, 0, 1, 0, [0x7, 0x240, 0x340, 0]),
            (0xD, 0, 3, 0, [0x7, 0x240, 0x340, 0]),
            (0xD, 0, 7, 0, [0x7, 0x999, 0x340, 0]),
            (0xD, 1, 3, 0, [0xF, 0x240, 0, 0]),
            (0xD, 2, 0, 0, [0x100, 0x240, 0, 0]),
            (0xD, 11, 0, 0, [0x10, 0, 1, 0]),
            (0x4000_0000, 0, 0, 0, [0x4000_0001, 0, 0, 0]),
            (0x8000_0000, 0, 0, 0, [0x8000_0021, 0, 0, 0]),
            MEM,
        ]
    }

    #[test]
    fn parses_and_looks_up() {
        let bytes = page(&good());
        let p = CpuidPage::parse(&bytes).unwrap();
        assert_eq!(p.entries().count(), 13);
        assert_eq!(
            p.lookup(0x1, 0, 1, 0),
            Some([0x00A0_0F11, 0x0080_0800, 0xFEDA_3203, 0x178B_FBFF])
        );
        // Non-indexed: the subleaf is ignored. Indexed: it selects.
        assert_eq!(p.lookup(0x1, 5, 1, 0), p.lookup(0x1, 0, 1, 0));
        assert_eq!(p.lookup(0x7, 1, 1, 0), Some([0x10, 0, 0, 0]));
        assert_eq!(p.lookup(0x7, 2, 1, 0), Some([0; 4]));
        // In range but absent: zeros; out of range: None.
        assert_eq!(p.lookup(0x5, 0, 1, 0), Some([0; 4]));
        assert_eq!(p.lookup(0x4000_0001, 0, 1, 0), Some([0; 4]));
        assert_eq!(p.lookup(0x8000_0021, 0, 1, 0), Some([0; 4]));
        for leaf in [0xE, 0x4000_0002, 0x8000_0022, 0x2000_0000, 0xFFFF_FFFF] {
            assert_eq!(p.lookup(leaf, 0, 1, 0), None, "{leaf:#x}");
        }
        assert!(p.check_c_bit(51).is_ok());
        let mismatch = CpuidPageError::CBitMismatch {
            expected: 47,
            found: 51,
        };
        assert_eq!(p.check_c_bit(47), Err(mismatch));
        assert_eq!(p.memory_encryption_info().map(|i| i.snp), Some(true));
        // Entries past `count` are ignored: a duplicate there is fine.
        let mut bytes = page(&[good(), std::vec![MEM]].concat());
        bytes[0] = 13;
        assert!(CpuidPage::parse(&bytes).is_ok());
    }

    #[test]
    fn xsave() {
        let bytes = page(&good());
        let p = CpuidPage::parse(&bytes).unwrap();
        // Standard: max(0x240, 0x240 + 0x100); compacted: 0x240 + 0x100 (+ 0x10 for XSS bit 11).
        assert_eq!(p.xsave_size(0b111, 0, false), Some(0x340));
        assert_eq!(p.xsave_size(0b111, 0, true), Some(0x340));
        assert_eq!(p.xsave_size(0b111, 1 << 11, true), Some(0x350));
        assert_eq!(p.xsave_size(0b11, 0, false), Some(0x240));
        // Bit 5 (AVX-512 opmask) has no entry.
        assert_eq!(p.xsave_size(0b10_0111, 0, false), None);
        assert_eq!(p.lookup(0xD, 0, 0b111, 0), Some([0x7, 0x340, 0x340, 0]));
        assert_eq!(p.lookup(0xD, 0, 0b11, 0), Some([0x7, 0x240, 0x340, 0]));
        assert_eq!(p.lookup(0xD, 1, 0b111, 1 << 11), Some([0xF, 0x350, 0, 0]));
        assert_eq!(p.lookup(0xD, 2, 0b111, 0), Some([0x100, 0x240, 0, 0]));
        assert_eq!(p.lookup(0xD, 0, 0b10_0111, 0), None);
        // Without XSAVES (EAX bit 3), XSS is not counted; without XSAVEC either, no answer.
        let mut entries = good();
        entries[7].4[0] = 0b0111;
        let bytes = page(&entries);
        let p = CpuidPage::parse(&bytes).unwrap();
        assert_eq!(
            p.lookup(0xD, 1, 0b111, 1 << 11),
            Some([0b0111, 0x340, 0, 0])
        );
        entries[7].4[0] = 0b0101;
        let bytes = page(&entries);
        assert_eq!(
            CpuidPage::parse(&bytes).unwrap().lookup(0xD, 1, 0b111, 0),
            None
        );
    }

    #[test]
    fn each_check_fails() {
        use CpuidPageError::*;
        let err = |bytes: &[u8]| CpuidPage::parse(bytes).unwrap_err();
        assert_eq!(err(&page(&good())[..CPUID_TABLE_SIZE - 1]), TooShort);
        let mut b = page(&good());
        b[0..4].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(err(&b), BadCount { count: 0 });
        b[0..4].copy_from_slice(&65u32.to_le_bytes());
        assert_eq!(err(&b), BadCount { count: 65 });
        for at in [4, 8, 15] {
            let mut b = page(&good());
            b[at] = 1;
            assert_eq!(err(&b), ReservedNonZero);
        }
        let with = |f: &dyn Fn(&mut Vec<E>)| {
            let mut entries = good();
            f(&mut entries);
            err(&page(&entries))
        };
        assert_eq!(
            with(&|e| e.push((0x7, 1, 0, 0, [9; 4]))),
            Duplicate {
                leaf: 7,
                subleaf: 1
            }
        );
        // Same leaf, other XCR0: not a duplicate.
        assert!(
            CpuidPage::parse(&page(
                &[good(), std::vec![(0xD, 0, 0xF, 0, [0; 4])]].concat()
            ))
            .is_ok()
        );
        assert_eq!(with(&|e| e.retain(|x| x.0 != 0)), MissingLeaf { leaf: 0 });
        assert_eq!(
            with(&|e| e.retain(|x| x.0 != 0x8000_0000)),
            MissingLeaf { leaf: 0x8000_0000 }
        );
        assert_eq!(
            with(&|e| e.retain(|x| x.0 != 0x8000_001F)),
            MissingLeaf { leaf: 0x8000_001F }
        );
        assert_eq!(
            with(&|e| e[11].4[0] = 0x8000_001E),
            ExtendedRangeTooSmall { max: 0x8000_001E }
        );
        assert_eq!(with(&|e| e[12].4[0] = 0b1_1000), NoSev);
        assert_eq!(with(&|e| e[12].4[0] = 0b0_1010), NoSnp);
        assert!(!NoSnp.to_string().is_empty());
        // Without a hypervisor leaf, 0x4000_0000.. is out of range.
        let bytes = page(
            &good()
                .into_iter()
                .filter(|x| x.0 != 0x4000_0000)
                .collect::<Vec<_>>(),
        );
        assert_eq!(
            CpuidPage::parse(&bytes)
                .unwrap()
                .lookup(0x4000_0000, 0, 1, 0),
            None
        );
    }

    #[test]
    fn indexed_leaves() {
        for leaf in [
            0x4,
            0x7,
            0xB,
            0xD,
            0xF,
            0x10,
            0x1F,
            0x8000_001D,
            0x8000_0020,
            0x8000_0026,
        ] {
            assert!(is_indexed(leaf), "{leaf:#x}");
        }
        for leaf in [0x0, 0x1, 0x6, 0x4000_0000, 0x8000_0000, 0x8000_001F] {
            assert!(!is_indexed(leaf), "{leaf:#x}");
        }
    }
}
