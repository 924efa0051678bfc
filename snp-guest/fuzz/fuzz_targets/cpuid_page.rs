//! Arbitrary bytes through the checked CPUID page view: nothing may panic, and a page that parses
//! answers lookups (leaves, subleaves, XCR0/XSS taken from the input too) without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_snp_guest::cpuid::{CPUID_TABLE_SIZE, CpuidPage};

fuzz_target!(|data: &[u8]| {
    let Ok(page) = CpuidPage::parse(data) else {
        return;
    };
    let _ = page.check_c_bit(51);
    let _ = page.memory_encryption_info();
    // Query parameters from the bytes after the table, defaulting to interesting values.
    let word = |i: usize| {
        data.get(CPUID_TABLE_SIZE + 8 * i..CPUID_TABLE_SIZE + 8 * i + 8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    let (xcr0, xss, extra) = (word(0) | 1, word(1), word(2));
    let mut leaves = [0, 1, 7, 0xB, 0xD, 0x4000_0000, 0x8000_0000, 0x8000_001F, u32::MAX, 0];
    leaves[9] = extra as u32;
    for leaf in leaves {
        for subleaf in [0, 1, 2, 63, 64, (extra >> 32) as u32] {
            let _ = page.lookup(leaf, subleaf, xcr0, xss);
        }
    }
    for entry in page.entries() {
        let answer = page.lookup(entry.eax_in, entry.ecx_in, xcr0, xss);
        // An entry's own inputs are always in range, except leaf 0xD subleaves 0/1, whose size
        // may not compute.
        assert!(answer.is_some() || (entry.eax_in == 0xD && entry.ecx_in <= 1));
    }
    for compacted in [false, true] {
        let _ = page.xsave_size(xcr0, xss, compacted);
    }
});
