//! Which physical memory the kernel may take: free RAM after ExitBootServices, merged.

use alloc::vec::Vec;
use core::ops::Range;

/// Sort and merge touching or overlapping ranges.
pub fn merge(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn merges_adjacent_and_drops_empty() {
        let got = merge(vec![
            0x3000..0x4000,
            0x1000..0x2000,
            0x2000..0x3000,
            0x9000..0x9000,
            0x8000..0xa000,
        ]);
        assert_eq!(got, vec![0x1000..0x4000, 0x8000..0xa000]);
    }
}
