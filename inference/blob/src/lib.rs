//! `weights.bin`: the deterministic container that carries every model file into the enclave
//! (embedded in `pp.efi`, so measured with it; see image-builder/README.md).
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! "PPWEIGHTS1"  u32 count
//! count × { u16 name_len, name (UTF-8), u64 offset, u64 length, sha256[32] }
//! zero padding to a 64-byte boundary, then each entry's data at a 64-byte-aligned offset,
//! zero padding between entries, the blob ends with the last entry's data.
//! ```
//!
//! Entries are sorted by name (bytewise) and names are unique, so one set of files has exactly
//! one encoding. [`WeightsBlob::parse`] accepts only that canonical encoding: every byte of a
//! valid blob is determined by its files, which is what a measured input needs.
//!
//! A crate of its own, with no model code, so that the packer (`pp-weights`) builds without Burn
//! while the enclave (`pp-inference`, re-exported there as `blob`) parses with the same code.
#![warn(missing_docs)]

use sha2::{Digest, Sha256};

/// The 10-byte magic at the start of every blob.
pub const MAGIC: &[u8; 10] = b"PPWEIGHTS1";
/// Alignment of every entry's data, in bytes.
pub const ALIGN: usize = 64;
/// Upper bound on the number of entries: more is refused before anything is allocated.
pub const MAX_ENTRIES: usize = 1024;
/// Upper bound on an entry name's length in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Why a blob was refused (or could not be packed). Carries only structural facts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// The blob does not start with [`MAGIC`].
    #[error("weights blob: bad magic")]
    BadMagic,
    /// The header ends before all its fields were read.
    #[error("weights blob: header truncated")]
    Truncated,
    /// More entries than [`MAX_ENTRIES`].
    #[error("weights blob: {0} entries is too many")]
    TooManyEntries(u64),
    /// A name is empty, longer than [`MAX_NAME_LEN`] or not UTF-8.
    #[error("weights blob: entry {0} has an invalid name")]
    BadName(usize),
    /// Names are not strictly increasing (unsorted or duplicated).
    #[error("weights blob: entry {0} is out of order or duplicated")]
    NotSorted(usize),
    /// An entry's data lies (partly) outside the blob.
    #[error("weights blob: entry {0} is out of bounds")]
    OutOfBounds(usize),
    /// An entry's data overlaps the header or the previous entry.
    #[error("weights blob: entry {0} overlaps")]
    Overlap(usize),
    /// An entry's data is not where the canonical layout puts it (misaligned or gapped).
    #[error("weights blob: entry {0} is not at its canonical offset")]
    NotCanonical(usize),
    /// A padding byte is not zero.
    #[error("weights blob: non-zero padding at byte {0}")]
    NonZeroPadding(usize),
    /// Bytes follow the last entry's data.
    #[error("weights blob: trailing bytes")]
    TrailingBytes,
    /// An entry's data does not hash to its recorded sha256.
    #[error("weights blob: entry {0} fails its sha256")]
    HashMismatch(usize),
}

/// One named file inside a parsed blob; `data` borrows from the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobEntry<'a> {
    /// The entry's name (e.g. `model.safetensors`).
    pub name: &'a str,
    /// The entry's bytes.
    pub data: &'a [u8],
    /// sha256 of `data`, as recorded in the header and verified by [`WeightsBlob::parse`].
    pub sha256: [u8; 32],
}

/// A verified weights blob: every entry's bounds, placement and hash were checked.
#[derive(Debug, Clone)]
pub struct WeightsBlob<'a> {
    entries: Vec<BlobEntry<'a>>,
}

/// sha256 of a whole blob (what a release manifest records).
pub fn blob_sha256(blob: &[u8]) -> [u8; 32] {
    Sha256::digest(blob).into()
}

fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

fn header_len<'n>(names: impl Iterator<Item = &'n str>) -> usize {
    MAGIC.len() + 4 + names.map(|n| 2 + n.len() + 8 + 8 + 32).sum::<usize>()
}

/// Packs named files into a canonical blob. Order of `entries` does not matter; names must be
/// unique, non-empty and at most [`MAX_NAME_LEN`] bytes.
pub fn pack(entries: &[(&str, &[u8])]) -> Result<Vec<u8>, BlobError> {
    if entries.len() > MAX_ENTRIES {
        return Err(BlobError::TooManyEntries(entries.len() as u64));
    }
    let mut sorted: Vec<(&str, &[u8])> = entries.to_vec();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (i, (name, _)) in sorted.iter().enumerate() {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(BlobError::BadName(i));
        }
        if i > 0 && sorted[i - 1].0 == *name {
            return Err(BlobError::NotSorted(i));
        }
    }
    let mut offsets = Vec::with_capacity(sorted.len());
    let mut pos = align_up(header_len(sorted.iter().map(|e| e.0)));
    for (_, data) in &sorted {
        offsets.push(pos);
        pos = align_up(pos + data.len());
    }
    let total = sorted
        .last()
        .map_or(align_up(header_len(std::iter::empty())), |(_, d)| {
            offsets[offsets.len() - 1] + d.len()
        });
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for ((name, data), off) in sorted.iter().zip(&offsets) {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(*off as u64).to_le_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(&Sha256::digest(data));
    }
    for ((_, data), off) in sorted.iter().zip(&offsets) {
        out.resize(*off, 0);
        out.extend_from_slice(data);
    }
    out.resize(total, 0);
    Ok(out)
}

/// A bounds-checked little-endian reader over the header.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BlobError> {
        let end = self.pos.checked_add(n).ok_or(BlobError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(BlobError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, BlobError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    fn u32(&mut self) -> Result<u32, BlobError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn u64(&mut self) -> Result<u64, BlobError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
}

fn check_zero(blob: &[u8], from: usize, to: usize) -> Result<(), BlobError> {
    match blob[from..to].iter().position(|&b| b != 0) {
        Some(i) => Err(BlobError::NonZeroPadding(from + i)),
        None => Ok(()),
    }
}

impl<'a> WeightsBlob<'a> {
    /// Parses and fully verifies a blob: magic, header bounds, sorted unique names, every entry
    /// in bounds, non-overlapping, at its canonical aligned offset, zero padding, no trailing
    /// bytes, and each entry's sha256.
    pub fn parse(blob: &'a [u8]) -> Result<Self, BlobError> {
        let mut c = Cursor { buf: blob, pos: 0 };
        if c.take(MAGIC.len()).map_err(|_| BlobError::BadMagic)? != MAGIC {
            return Err(BlobError::BadMagic);
        }
        let count = c.u32()? as usize;
        // Each header entry takes at least 51 bytes: refuse counts the blob cannot hold.
        if count > MAX_ENTRIES || count * 51 > blob.len() {
            return Err(BlobError::TooManyEntries(count as u64));
        }
        let mut raw = Vec::with_capacity(count);
        for i in 0..count {
            let len = c.u16()? as usize;
            let name = c.take(len)?;
            let name = std::str::from_utf8(name).map_err(|_| BlobError::BadName(i))?;
            if name.is_empty() || name.len() > MAX_NAME_LEN {
                return Err(BlobError::BadName(i));
            }
            let off = c.u64()?;
            let len = c.u64()?;
            let sha: [u8; 32] = c.take(32)?.try_into().unwrap_or_default();
            raw.push((name, off, len, sha));
        }
        let mut entries = Vec::with_capacity(count);
        let mut pos = c.pos; // end of what is accounted for so far
        for (i, &(name, off, len, sha)) in raw.iter().enumerate() {
            if i > 0 && raw[i - 1].0.as_bytes() >= name.as_bytes() {
                return Err(BlobError::NotSorted(i));
            }
            let (off, len) = match (usize::try_from(off), usize::try_from(len)) {
                (Ok(o), Ok(l)) => (o, l),
                _ => return Err(BlobError::OutOfBounds(i)),
            };
            let end = off.checked_add(len).ok_or(BlobError::OutOfBounds(i))?;
            if end > blob.len() {
                return Err(BlobError::OutOfBounds(i));
            }
            if off < pos {
                return Err(BlobError::Overlap(i));
            }
            if off != align_up(pos) {
                return Err(BlobError::NotCanonical(i));
            }
            check_zero(blob, pos, off)?;
            let data = &blob[off..end];
            if <[u8; 32]>::from(Sha256::digest(data)) != sha {
                return Err(BlobError::HashMismatch(i));
            }
            entries.push(BlobEntry {
                name,
                data,
                sha256: sha,
            });
            pos = end;
        }
        if count == 0 {
            // An empty blob is the header padded to the alignment.
            let end = align_up(pos);
            if blob.len() < end {
                return Err(BlobError::Truncated);
            }
            check_zero(blob, pos, end)?;
            pos = end;
        }
        if blob.len() != pos {
            return Err(BlobError::TrailingBytes);
        }
        Ok(Self { entries })
    }

    /// The entries, sorted by name.
    pub fn entries(&self) -> &[BlobEntry<'a>] {
        &self.entries
    }

    /// The data of the entry called `name`.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.entries
            .binary_search_by(|e| e.name.as_bytes().cmp(name.as_bytes()))
            .ok()
            .map(|i| self.entries[i].data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        pack(&[
            ("tokenizer.json", b"{\"v\":1}"),
            ("a.gguf", &[7u8; 100]),
            ("model.safetensors", &[1u8, 2, 3]),
        ])
        .unwrap()
    }

    #[test]
    fn round_trip_sorted_aligned_deterministic() {
        let b = sample();
        assert_eq!(b, sample());
        let p = WeightsBlob::parse(&b).unwrap();
        let names: Vec<_> = p.entries().iter().map(|e| e.name).collect();
        assert_eq!(names, ["a.gguf", "model.safetensors", "tokenizer.json"]);
        for e in p.entries() {
            let off = e.data.as_ptr() as usize - b.as_ptr() as usize;
            assert_eq!(off % ALIGN, 0);
        }
        assert_eq!(p.get("model.safetensors"), Some(&[1u8, 2, 3][..]));
        assert_eq!(p.get("missing"), None);
        // Input order does not change the bytes.
        let b2 = pack(&[
            ("model.safetensors", &[1u8, 2, 3]),
            ("a.gguf", &[7u8; 100]),
            ("tokenizer.json", b"{\"v\":1}"),
        ])
        .unwrap();
        assert_eq!(b, b2);
        assert_eq!(blob_sha256(&b), blob_sha256(&b2));
    }

    #[test]
    fn empty_and_zero_length_entries() {
        let e = pack(&[]).unwrap();
        assert_eq!(e.len(), ALIGN);
        assert!(WeightsBlob::parse(&e).unwrap().entries().is_empty());
        let z = pack(&[("empty", &[])]).unwrap();
        assert_eq!(WeightsBlob::parse(&z).unwrap().get("empty"), Some(&[][..]));
    }

    #[test]
    fn pack_refuses_bad_names() {
        assert_eq!(
            pack(&[("x", b"1"), ("x", b"2")]),
            Err(BlobError::NotSorted(1))
        );
        assert_eq!(pack(&[("", b"1")]), Err(BlobError::BadName(0)));
        let long = "n".repeat(MAX_NAME_LEN + 1);
        assert_eq!(pack(&[(&long, b"1")]), Err(BlobError::BadName(0)));
    }

    /// Offset of entry `i`'s header field at `field` bytes after its name.
    fn field_pos(b: &[u8], i: usize, field: usize) -> usize {
        let mut pos = MAGIC.len() + 4;
        for _ in 0..i {
            let l = u16::from_le_bytes([b[pos], b[pos + 1]]) as usize;
            pos += 2 + l + 48;
        }
        let l = u16::from_le_bytes([b[pos], b[pos + 1]]) as usize;
        pos + 2 + l + field
    }

    fn set_u64(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn corruptions_are_refused() {
        let good = sample();
        let parse = |b: &[u8]| WeightsBlob::parse(b).map(|_| ());
        let mut b = good.clone();
        b[0] = b'Q';
        assert_eq!(parse(&b), Err(BlobError::BadMagic));
        assert_eq!(parse(&good[..5]), Err(BlobError::BadMagic));
        assert_eq!(parse(&good[..12]), Err(BlobError::Truncated));
        assert!(parse(&good[..40]).is_err());

        let mut b = good.clone();
        b[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&b), Err(BlobError::TooManyEntries(u32::MAX as u64)));

        // Flip one data byte of the last entry.
        let mut b = good.clone();
        let n = b.len();
        b[n - 1] ^= 1;
        assert_eq!(parse(&b), Err(BlobError::HashMismatch(2)));

        // Flip a hash byte.
        let mut b = good.clone();
        let at = field_pos(&b, 0, 16);
        b[at] ^= 0xff;
        assert_eq!(parse(&b), Err(BlobError::HashMismatch(0)));

        // Length past the end.
        let mut b = good.clone();
        let at = field_pos(&b, 2, 8);
        set_u64(&mut b, at, 1 << 40);
        assert_eq!(parse(&b), Err(BlobError::OutOfBounds(2)));
        let mut b = good.clone();
        let at = field_pos(&b, 2, 0);
        set_u64(&mut b, at, u64::MAX);
        assert_eq!(parse(&b), Err(BlobError::OutOfBounds(2)));

        // Second entry pointed into the first one: overlap.
        let mut b = good.clone();
        let off0 = u64::from_le_bytes(b[field_pos(&b, 0, 0)..][..8].try_into().unwrap());
        let at = field_pos(&b, 1, 0);
        set_u64(&mut b, at, off0);
        assert_eq!(parse(&b), Err(BlobError::Overlap(1)));

        // Entry pointed into the header.
        let mut b = good.clone();
        let at = field_pos(&b, 0, 0);
        set_u64(&mut b, at, 0);
        assert_eq!(parse(&b), Err(BlobError::Overlap(0)));

        // Misaligned offset (same data moved by one byte is out of place).
        let mut b = good.clone();
        let at = field_pos(&b, 0, 0);
        set_u64(&mut b, at, off0 + 1);
        assert_eq!(parse(&b), Err(BlobError::NotCanonical(0)));

        // Non-zero padding between header and first entry.
        let mut b = good.clone();
        b[off0 as usize - 1] = 1;
        assert_eq!(parse(&b), Err(BlobError::NonZeroPadding(off0 as usize - 1)));

        // Trailing byte.
        let mut b = good.clone();
        b.push(0);
        assert_eq!(parse(&b), Err(BlobError::TrailingBytes));

        // Swap the first name's first byte so the order breaks ("z.gguf" > "model...").
        let mut b = good.clone();
        b[MAGIC.len() + 4 + 2] = b'z';
        assert_eq!(parse(&b), Err(BlobError::NotSorted(1)));

        // Invalid UTF-8 name.
        let mut b = good.clone();
        b[MAGIC.len() + 4 + 2] = 0xff;
        assert_eq!(parse(&b), Err(BlobError::BadName(0)));
    }

    #[test]
    fn truncation_anywhere_is_refused() {
        let good = sample();
        for n in 0..good.len() {
            assert!(
                WeightsBlob::parse(&good[..n]).is_err(),
                "prefix {n} accepted"
            );
        }
    }
}
