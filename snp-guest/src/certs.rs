//! The certificate table an extended guest request returns (GHCB spec 56421 §4.1.8.1, "SNP
//! Extended Guest Request"): entries of a 16-byte GUID, a 32-bit offset and a 32-bit length,
//! ended by an all-zero entry; each certificate lies at its offset from the start of the buffer.
//! GUIDs are stored in RFC 4122 byte order (as the `sev` crate and the host tools write them).

/// One table entry.
const ENTRY_LEN: usize = 24;

/// The certificates this guest looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// AMD Root Key, c0b406a4-a803-4952-9743-3fb6014cd0ae.
    Ark,
    /// AMD SEV Key, 4ab7b379-bbac-4fe4-a02f-05aef327c782.
    Ask,
    /// Versioned Chip Endorsement Key, 63da758d-e664-4564-adc5-f4b93be8accd.
    Vcek,
    /// Versioned Loaded Endorsement Key, a8074bc2-a25a-483e-aae6-39c045a0b8a1.
    Vlek,
}

impl CertKind {
    /// The GUID naming this certificate in the table.
    pub const fn guid(self) -> [u8; 16] {
        match self {
            Self::Ark => [
                0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52, 0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c,
                0xd0, 0xae,
            ],
            Self::Ask => [
                0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4, 0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27,
                0xc7, 0x82,
            ],
            Self::Vcek => [
                0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8,
                0xac, 0xcd,
            ],
            Self::Vlek => [
                0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e, 0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0,
                0xb8, 0xa1,
            ],
        }
    }
}

/// Why a certificate table was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertTableError {
    /// The buffer ends before the all-zero entry.
    Unterminated,
    /// An entry points outside the buffer (or into the table itself).
    OutOfBounds,
    /// Two entries carry the same GUID.
    Duplicate,
}

impl core::fmt::Display for CertTableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Unterminated => "certificate table has no terminating entry",
            Self::OutOfBounds => "certificate table entry points outside the buffer",
            Self::Duplicate => "certificate table names one GUID twice",
        })
    }
}

/// A checked view of a certificate table.
#[derive(Clone, Copy, Debug)]
pub struct CertTable<'a> {
    buf: &'a [u8],
    entries: usize,
}

impl<'a> CertTable<'a> {
    /// Check every entry of the table at the start of `buf`.
    pub fn parse(buf: &'a [u8]) -> Result<Self, CertTableError> {
        let mut entries = 0;
        loop {
            let entry = buf
                .get(entries * ENTRY_LEN..(entries + 1) * ENTRY_LEN)
                .ok_or(CertTableError::Unterminated)?;
            if entry.iter().all(|&b| b == 0) {
                break;
            }
            entries += 1;
        }
        let table = Self { buf, entries };
        let table_end = (entries + 1) * ENTRY_LEN;
        for i in 0..entries {
            let (guid, offset, len) = table.entry(i);
            let end = offset.checked_add(len).ok_or(CertTableError::OutOfBounds)?;
            if offset < table_end || end > buf.len() {
                return Err(CertTableError::OutOfBounds);
            }
            if (0..i).any(|j| table.entry(j).0 == guid) {
                return Err(CertTableError::Duplicate);
            }
        }
        Ok(table)
    }

    /// How many certificates the table lists.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether the table lists none.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The certificate of `kind`, if the table lists it.
    pub fn get(&self, kind: CertKind) -> Option<&'a [u8]> {
        let want = kind.guid();
        (0..self.entries).find_map(|i| {
            let (guid, offset, len) = self.entry(i);
            (guid == want).then(|| &self.buf[offset..offset + len])
        })
    }

    fn entry(&self, i: usize) -> ([u8; 16], usize, usize) {
        let e = &self.buf[i * ENTRY_LEN..(i + 1) * ENTRY_LEN];
        let mut guid = [0; 16];
        guid.copy_from_slice(&e[..16]);
        let word = |at: usize| u32::from_le_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
        (guid, word(16) as usize, word(20) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn table(entries: &[([u8; 16], u32, u32)], size: usize) -> Vec<u8> {
        let mut buf = std::vec![0u8; size];
        for (i, (guid, off, len)) in entries.iter().enumerate() {
            let e = &mut buf[i * 24..(i + 1) * 24];
            e[..16].copy_from_slice(guid);
            e[16..20].copy_from_slice(&off.to_le_bytes());
            e[20..24].copy_from_slice(&len.to_le_bytes());
        }
        buf
    }

    #[test]
    fn finds_each_certificate_by_guid() {
        let mut buf = table(
            &[
                (CertKind::Ark.guid(), 0x100, 3),
                (CertKind::Ask.guid(), 0x103, 2),
                (CertKind::Vcek.guid(), 0x200, 4),
            ],
            0x300,
        );
        buf[0x100..0x103].copy_from_slice(b"ark");
        buf[0x103..0x105].copy_from_slice(b"as");
        buf[0x200..0x204].copy_from_slice(b"vcek");
        let t = CertTable::parse(&buf).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.get(CertKind::Ark), Some(&b"ark"[..]));
        assert_eq!(t.get(CertKind::Ask), Some(&b"as"[..]));
        assert_eq!(t.get(CertKind::Vcek), Some(&b"vcek"[..]));
        assert_eq!(t.get(CertKind::Vlek), None);
    }

    #[test]
    fn the_vcek_guid_reads_as_its_rfc_4122_string() {
        let g = CertKind::Vcek.guid();
        let s: std::string::String = g.iter().map(|b| std::format!("{b:02x}")).collect();
        assert_eq!(s, "63da758de6644564adc5f4b93be8accd");
    }

    #[test]
    fn refuses_bad_tables() {
        let vcek = CertKind::Vcek.guid();
        assert_eq!(
            CertTable::parse(&table(&[(vcek, 48, 1)], 47)).unwrap_err(),
            CertTableError::Unterminated
        );
        assert_eq!(
            CertTable::parse(&table(&[(vcek, 0x100, 0x101)], 0x200)).unwrap_err(),
            CertTableError::OutOfBounds
        );
        assert_eq!(
            CertTable::parse(&table(&[(vcek, 0xffff_fff0, 0x20)], 0x200)).unwrap_err(),
            CertTableError::OutOfBounds
        );
        assert_eq!(
            CertTable::parse(&table(&[(vcek, 8, 4)], 0x200)).unwrap_err(),
            CertTableError::OutOfBounds,
            "a certificate inside the table"
        );
        assert_eq!(
            CertTable::parse(&table(&[(vcek, 0x100, 1), (vcek, 0x101, 1)], 0x200)).unwrap_err(),
            CertTableError::Duplicate
        );
        let empty = CertTable::parse(&[0; 24]).unwrap();
        assert!(empty.is_empty());
    }
}
