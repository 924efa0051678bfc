//! SNP page state change requests in the GHCB shared buffer (GHCB spec, AMD 56421, §4.1.6 "SNP
//! Page State Change"; Linux `struct snp_psc_desc` in `arch/x86/include/asm/sev-common.h`, edk2
//! `SNP_PAGE_STATE_CHANGE_INFO` in `MdePkg/Include/Register/Amd/Ghcb.h`).
//!
//! The buffer holds a header `{cur_entry: u16, end_entry: u16, reserved: u32}` and up to 253
//! entries of one `u64` each: bits 11:0 `cur_page`, 51:12 the GFN, 55:52 the operation, 56 the
//! page size, 63:57 reserved. The guest writes entries `0..=end_entry` with `cur_entry = 0`; the
//! hypervisor advances `cur_entry` as it works and may return before it is done, in which case
//! the guest issues the same buffer again. The request is done when `cur_entry > end_entry`.
//! The hypervisor only changes the RMP assignment: the guest `PVALIDATE`s pages after making them
//! private, and rescinds validation before making them shared.

use core::fmt;

/// The size of the GHCB shared buffer the request lives in.
pub const PSC_BUFFER_SIZE: usize = super::ghcb::SHARED_BUFFER_SIZE;
/// The most entries one request holds: (2032 - 8) / 8.
pub const PSC_MAX_ENTRIES: usize = 253;
/// The header: `cur_entry`, `end_entry`, reserved.
const HEADER_SIZE: usize = 8;
/// GFNs are 40 bits (entry bits 51:12).
const GFN_MAX: u64 = (1 << 40) - 1;

/// What to do with a page (entry bits 55:52).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum PscOp {
    /// Assign to the guest.
    Private = 1,
    /// Share with the hypervisor.
    Shared = 2,
    /// Split a 2M RMP entry into 4K entries.
    Psmash = 3,
    /// Merge 4K RMP entries into a 2M entry.
    Unsmash = 4,
}

/// Page size (entry bit 56).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum PageSize {
    Size4K = 0,
    Size2M = 1,
}

impl PageSize {
    /// How many 4K frames (GFNs) the page covers.
    pub const fn frames(self) -> u64 {
        match self {
            Self::Size4K => 1,
            Self::Size2M => 512,
        }
    }
}

/// A request that cannot be built, or an answer that is an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PscError {
    /// A GFN beyond 40 bits, or a range that runs past it.
    GfnTooLarge,
    /// A 2M page whose GFN is not a multiple of 512.
    Misaligned,
    /// No entries to write.
    Empty,
    /// The hypervisor reported an error in `SW_EXIT_INFO_2`.
    Hypervisor { sw_exit_info_2: u64 },
    /// The header's reserved field is nonzero.
    ReservedNonZero,
    /// The hypervisor changed `end_entry`.
    EndChanged,
    /// `cur_entry` went backwards.
    WentBackwards,
    /// `cur_entry` is past `end_entry + 1`.
    BeyondEnd,
}

impl fmt::Display for PscError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::GfnTooLarge => "page state change GFN does not fit 40 bits",
            Self::Misaligned => "page state change: 2M page GFN not 512-aligned",
            Self::Empty => "page state change request with no entries",
            Self::Hypervisor { .. } => "hypervisor reported a page state change error",
            Self::ReservedNonZero => "page state change header: reserved field set",
            Self::EndChanged => "page state change header: end_entry changed",
            Self::WentBackwards => "page state change header: cur_entry went backwards",
            Self::BeyondEnd => "page state change header: cur_entry beyond the entries written",
        })
    }
}

/// One entry (`cur_page` 0), checking the GFN's width and a 2M page's alignment.
pub fn encode_entry(gfn: u64, op: PscOp, size: PageSize) -> Result<u64, PscError> {
    if gfn > GFN_MAX {
        return Err(PscError::GfnTooLarge);
    }
    if !gfn.is_multiple_of(size.frames()) {
        return Err(PscError::Misaligned);
    }
    Ok(((size as u64) << 56) | ((op as u64) << 52) | (gfn << 12))
}

/// Writes the header and `entries` (`cur_entry` = 0, `end_entry` = count - 1); zeroes the rest.
fn write(buf: &mut [u8; PSC_BUFFER_SIZE], entries: impl Iterator<Item = u64>) -> PscBatch {
    buf.fill(0);
    let mut count: u16 = 0;
    let slots = buf
        .get_mut(HEADER_SIZE..)
        .unwrap_or_default()
        .chunks_exact_mut(8);
    for (slot, entry) in slots.zip(entries) {
        slot.copy_from_slice(&entry.to_le_bytes());
        count += 1;
    }
    let end = count.saturating_sub(1);
    buf[2..4].copy_from_slice(&end.to_le_bytes());
    PscBatch { count, cur: 0 }
}

/// Fills `buf` from a list of `(gfn, op, size)`: takes the first [`PSC_MAX_ENTRIES`] (the
/// returned batch says how many), checking each before writing any.
pub fn write_request(
    buf: &mut [u8; PSC_BUFFER_SIZE],
    entries: &[(u64, PscOp, PageSize)],
) -> Result<PscBatch, PscError> {
    let entries = entries.get(..PSC_MAX_ENTRIES).unwrap_or(entries);
    if entries.is_empty() {
        return Err(PscError::Empty);
    }
    for &(gfn, op, size) in entries {
        encode_entry(gfn, op, size)?;
    }
    let encoded = entries
        .iter()
        .filter_map(|&(g, o, s)| encode_entry(g, o, s).ok());
    Ok(write(buf, encoded))
}

/// A run of pages of one size and operation, cut into batches of at most [`PSC_MAX_ENTRIES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PscRange {
    next_gfn: u64,
    end_gfn: u64,
    op: PscOp,
    size: PageSize,
}

impl PscRange {
    /// `pages` pages of `size` from `start_gfn` (512-aligned for 2M pages).
    pub fn new(start_gfn: u64, pages: u64, op: PscOp, size: PageSize) -> Result<Self, PscError> {
        encode_entry(start_gfn, op, size)?;
        let end_gfn = pages
            .checked_mul(size.frames())
            .and_then(|frames| start_gfn.checked_add(frames))
            .filter(|&end| end <= GFN_MAX + 1)
            .ok_or(PscError::GfnTooLarge)?;
        Ok(Self {
            next_gfn: start_gfn,
            end_gfn,
            op,
            size,
        })
    }

    /// Pages not yet written into a batch.
    pub const fn remaining(&self) -> u64 {
        (self.end_gfn - self.next_gfn) / self.size.frames()
    }

    /// Writes the next batch into `buf` and returns it, or `None` when all pages were written.
    pub fn next_batch(&mut self, buf: &mut [u8; PSC_BUFFER_SIZE]) -> Option<PscBatch> {
        if self.next_gfn >= self.end_gfn {
            return None;
        }
        let (start, step, op, size) = (self.next_gfn, self.size.frames(), self.op, self.size);
        let n = self.remaining().min(PSC_MAX_ENTRIES as u64);
        self.next_gfn += n * step;
        let entries = (0..n)
            .map(|i| ((size as u64) << 56) | ((op as u64) << 52) | ((start + i * step) << 12));
        Some(write(buf, entries))
    }
}

/// Where a request stands after the hypervisor's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PscProgress {
    /// Every entry was processed.
    Done,
    /// The hypervisor returned early: issue the same buffer again (bound the retries).
    Pending { cur_entry: u16 },
}

/// A request written into the buffer, tracking `cur_entry` across the hypervisor's answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PscBatch {
    count: u16,
    cur: u16,
}

impl PscBatch {
    /// How many entries (pages) the batch holds.
    pub const fn len(&self) -> usize {
        self.count as usize
    }
    /// Always false: a batch holds at least one entry.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Checks the header after a `VMGEXIT` (as Linux `vmgexit_psc` does, and stricter): no error
    /// in `SW_EXIT_INFO_2`, reserved zero, `end_entry` unchanged, `cur_entry` not going backwards
    /// nor past `end_entry + 1`.
    pub fn check_response(
        &mut self,
        buf: &[u8; PSC_BUFFER_SIZE],
        sw_exit_info_2: u64,
    ) -> Result<PscProgress, PscError> {
        if sw_exit_info_2 != 0 {
            return Err(PscError::Hypervisor { sw_exit_info_2 });
        }
        let cur = u16::from_le_bytes([buf[0], buf[1]]);
        let end = u16::from_le_bytes([buf[2], buf[3]]);
        if buf[4..8] != [0; 4] {
            return Err(PscError::ReservedNonZero);
        }
        let written_end = self.count.saturating_sub(1);
        if end != written_end {
            return Err(PscError::EndChanged);
        }
        if cur < self.cur {
            return Err(PscError::WentBackwards);
        }
        if cur > written_end + 1 {
            return Err(PscError::BeyondEnd);
        }
        self.cur = cur;
        Ok(if cur > end {
            PscProgress::Done
        } else {
            PscProgress::Pending { cur_entry: cur }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PageSize::*;
    use PscOp::*;
    use std::string::ToString;

    fn entry(buf: &[u8; PSC_BUFFER_SIZE], i: usize) -> u64 {
        u64::from_le_bytes(buf[8 + 8 * i..16 + 8 * i].try_into().unwrap())
    }

    #[test]
    fn entries() {
        assert_eq!(
            encode_entry(0x12345, Shared, Size4K),
            Ok(0x0020_0000_1234_5000)
        );
        assert_eq!(
            encode_entry(0x12345, Private, Size4K),
            Ok(0x0010_0000_1234_5000)
        );
        assert_eq!(
            encode_entry(0x200, Private, Size2M),
            Ok(0x0110_0000_0020_0000)
        );
        assert_eq!(
            encode_entry(0x400, Psmash, Size2M),
            Ok(0x0130_0000_0040_0000)
        );
        assert_eq!(
            encode_entry(0x400, Unsmash, Size2M),
            Ok(0x0140_0000_0040_0000)
        );
        let max = encode_entry(0xFF_FFFF_FFFF, Shared, Size4K);
        assert_eq!(max, Ok(0x002F_FFFF_FFFF_F000));
        assert_eq!(
            encode_entry(1 << 40, Shared, Size4K),
            Err(PscError::GfnTooLarge)
        );
        assert_eq!(
            encode_entry(0x201, Shared, Size2M),
            Err(PscError::Misaligned)
        );
    }

    #[test]
    fn list() {
        let mut buf = [0xAA; PSC_BUFFER_SIZE];
        let list = [(0x12345, Shared, Size4K), (0x200, Private, Size2M)];
        let batch = write_request(&mut buf, &list).unwrap();
        assert_eq!((batch.len(), batch.is_empty()), (2, false));
        assert_eq!(buf[..8], [0, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(entry(&buf, 0), 0x0020_0000_1234_5000);
        assert_eq!(entry(&buf, 1), 0x0110_0000_0020_0000);
        assert!(buf[24..].iter().all(|&b| b == 0));
        assert_eq!(write_request(&mut buf, &[]), Err(PscError::Empty));
        let bad = [(1, Shared, Size4K), (0x201, Shared, Size2M)];
        assert_eq!(write_request(&mut buf, &bad), Err(PscError::Misaligned));
        // More than 253: the first 253 are taken.
        let many = [(7, Shared, Size4K); 300];
        assert_eq!(write_request(&mut buf, &many).unwrap().len(), 253);
        assert_eq!(buf[2..4], [252, 0]);
        assert_eq!(entry(&buf, 252), 0x0020_0000_0000_7000);
    }

    #[test]
    fn range_batches() {
        let mut buf = [0; PSC_BUFFER_SIZE];
        let mut range = PscRange::new(0x1000, 600, Shared, Size4K).unwrap();
        assert_eq!(range.remaining(), 600);
        let first = range.next_batch(&mut buf).unwrap();
        assert_eq!((first.len(), range.remaining()), (253, 347));
        assert_eq!(entry(&buf, 0), 0x0020_0000_0100_0000);
        assert_eq!(entry(&buf, 252), 0x0020_0000_010F_C000);
        assert_eq!(range.next_batch(&mut buf).unwrap().len(), 253);
        assert_eq!(entry(&buf, 0), 0x0020_0000_010F_D000);
        let last = range.next_batch(&mut buf).unwrap();
        assert_eq!(
            (last.len(), buf[2], entry(&buf, 93)),
            (94, 93, 0x0020_0000_0125_7000)
        );
        assert!(buf[8 + 94 * 8..].iter().all(|&b| b == 0));
        assert_eq!(range.next_batch(&mut buf), None);

        let mut huge = PscRange::new(0x200, 2, Private, Size2M).unwrap();
        let batch = huge.next_batch(&mut buf).unwrap();
        assert_eq!((batch.len(), entry(&buf, 1)), (2, 0x0110_0000_0040_0000));
        assert_eq!(
            PscRange::new(0x201, 1, Private, Size2M),
            Err(PscError::Misaligned)
        );
        assert_eq!(
            PscRange::new(GFN_MAX, 2, Private, Size4K),
            Err(PscError::GfnTooLarge)
        );
        assert_eq!(
            PscRange::new(0, u64::MAX, Private, Size2M),
            Err(PscError::GfnTooLarge)
        );
        assert!(PscRange::new(GFN_MAX, 1, Private, Size4K).is_ok());
        let mut none = PscRange::new(5, 0, Shared, Size4K).unwrap();
        assert_eq!(none.next_batch(&mut buf), None);
    }

    #[test]
    fn responses() {
        let mut buf = [0; PSC_BUFFER_SIZE];
        let mut batch = write_request(&mut buf, &[(1, Shared, Size4K); 3]).unwrap();
        let mut answer = |cur: u16, end: u16, reserved: u32, info_2: u64| {
            buf[0..2].copy_from_slice(&cur.to_le_bytes());
            buf[2..4].copy_from_slice(&end.to_le_bytes());
            buf[4..8].copy_from_slice(&reserved.to_le_bytes());
            batch.check_response(&buf, info_2)
        };
        assert_eq!(
            answer(0, 2, 0, 0),
            Ok(PscProgress::Pending { cur_entry: 0 })
        );
        assert_eq!(
            answer(2, 2, 0, 0),
            Ok(PscProgress::Pending { cur_entry: 2 })
        );
        assert_eq!(answer(1, 2, 0, 0), Err(PscError::WentBackwards));
        assert_eq!(answer(4, 2, 0, 0), Err(PscError::BeyondEnd));
        assert_eq!(answer(3, 3, 0, 0), Err(PscError::EndChanged));
        assert_eq!(answer(3, 1, 0, 0), Err(PscError::EndChanged));
        assert_eq!(answer(3, 2, 1, 0), Err(PscError::ReservedNonZero));
        let invalid_entry = (1 << 32) | 2;
        let hv = PscError::Hypervisor {
            sw_exit_info_2: invalid_entry,
        };
        assert_eq!(answer(3, 2, 0, invalid_entry), Err(hv));
        assert!(!hv.to_string().is_empty());
        assert_eq!(answer(3, 2, 0, 0), Ok(PscProgress::Done));
    }
}
