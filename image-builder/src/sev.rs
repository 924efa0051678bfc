//! AMD SEV facts the loader needs, as pure functions over what the firmware reports.
//!
//! - [`CcBlob`]: OVMF's confidential-computing configuration table under SEV-SNP, which says where
//!   the SNP secrets page and CPUID page are (edk2 `ConfidentialComputingSevSnpBlob.h`, Linux
//!   `struct cc_blob_sev_info` in `arch/x86/include/asm/sev.h`).
//! - [`private_ranges`]: which physical memory the identity map gives the C-bit.
//! - [`refuse_unaccepted`]: this loader does not opt into unaccepted memory, so OVMF must have
//!   accepted (PVALIDATEd) all of it before ExitBootServices; a map that still has some is refused.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use uefi::{Guid, guid};

const PAGE: u64 = 4096;
/// x86-64 physical addresses have at most 52 bits.
const MAX_PHYS: u64 = 1 << 52;

/// `CONFIDENTIAL_COMPUTING_SNP_BLOB_GUID`: the UEFI configuration table holding a [`CcBlob`].
pub const CC_BLOB_GUID: Guid = guid!("067b1f5f-cf26-44c5-8554-93d777912d42");
/// "AMDE" read as a little-endian u32 (`CC_BLOB_SEV_HDR_MAGIC`).
pub const CC_BLOB_MAGIC: u32 = 0x4544_4d41;
/// Size of the packed table: u32 magic, u16 version, u16 reserved, u64 secrets, u32 len,
/// u32 reserved, u64 cpuid, u32 len, u32 reserved.
pub const CC_BLOB_LEN: usize = 40;

/// Where the SNP secrets page and CPUID page are, from the firmware's confidential-computing blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CcBlob {
    pub version: u16,
    /// The SNP secrets page (VMPCKs for attestation requests), one 4 KiB page.
    pub secrets: u64,
    /// The SNP CPUID page (the PSP-checked CPUID table), one 4 KiB page.
    pub cpuid: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CcBlobError {
    TooShort(usize),
    BadMagic(u32),
    BadLength {
        page: &'static str,
        len: u32,
    },
    ZeroAddress(&'static str),
    /// Beyond the 52-bit physical address space.
    TooHigh {
        page: &'static str,
        addr: u64,
    },
    Unaligned {
        page: &'static str,
        addr: u64,
    },
}

impl fmt::Display for CcBlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "SEV-SNP blob is {n} bytes, expected {CC_BLOB_LEN}"),
            Self::BadMagic(m) => write!(
                f,
                "SEV-SNP blob magic is {m:#x}, expected {CC_BLOB_MAGIC:#x}"
            ),
            Self::BadLength { page, len } => {
                write!(f, "SEV-SNP {page} page is {len} bytes, expected {PAGE}")
            }
            Self::ZeroAddress(page) => write!(f, "SEV-SNP {page} page address is 0"),
            Self::TooHigh { page, addr } => {
                write!(
                    f,
                    "SEV-SNP {page} page at {addr:#x} is beyond physical memory"
                )
            }
            Self::Unaligned { page, addr } => {
                write!(f, "SEV-SNP {page} page at {addr:#x} is not 4 KiB aligned")
            }
        }
    }
}

impl CcBlob {
    /// Parse the table the [`CC_BLOB_GUID`] configuration entry points at (its first
    /// [`CC_BLOB_LEN`] bytes; trailing bytes are ignored). The version is not checked: Linux does
    /// not either, and the layout has not changed since version 1.
    pub fn parse(bytes: &[u8]) -> Result<Self, CcBlobError> {
        let Some(raw) = bytes.first_chunk::<CC_BLOB_LEN>() else {
            return Err(CcBlobError::TooShort(bytes.len()));
        };
        let u16_at = |at: usize| u16::from_le_bytes([raw[at], raw[at + 1]]);
        let u32_at =
            |at: usize| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
        let u64_at = |at: usize| u64::from(u32_at(at)) | u64::from(u32_at(at + 4)) << 32;
        let magic = u32_at(0);
        if magic != CC_BLOB_MAGIC {
            return Err(CcBlobError::BadMagic(magic));
        }
        let page = |page: &'static str, addr: u64, len: u32| {
            if u64::from(len) != PAGE {
                Err(CcBlobError::BadLength { page, len })
            } else if addr == 0 {
                Err(CcBlobError::ZeroAddress(page))
            } else if addr >= MAX_PHYS {
                Err(CcBlobError::TooHigh { page, addr })
            } else if !addr.is_multiple_of(PAGE) {
                Err(CcBlobError::Unaligned { page, addr })
            } else {
                Ok(addr)
            }
        };
        Ok(Self {
            version: u16_at(4),
            secrets: page("secrets", u64_at(8), u32_at(16))?,
            cpuid: page("CPUID", u64_at(24), u32_at(32))?,
        })
    }

    /// The two pages, for [`private_ranges`]: OVMF reserves them as `EfiReservedMemoryType`
    /// (PlatformPei `SevInitializeRam`) but they are private, validated guest memory.
    pub fn pages(&self) -> [Range<u64>; 2] {
        [
            self.secrets..self.secrets + PAGE,
            self.cpuid..self.cpuid + PAGE,
        ]
    }
}

/// Which SEV features are active (from `snp::msr::detect`), with what only SNP has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SevLevel {
    Sev,
    SevEs,
    Snp(CcBlob),
}

impl SevLevel {
    /// The name the device tree gives this level.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sev => "sev",
            Self::SevEs => "sev-es",
            Self::Snp(_) => "sev-snp",
        }
    }
}

/// What the kernel is told about SEV (see `fdt::build`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SevFacts {
    pub level: SevLevel,
    /// C-bit position in page-table entries.
    pub c_bit: u8,
    /// Memory shared with the host (no C-bit; under SNP assigned to the hypervisor in the RMP),
    /// empty until the loader has prepared it: its first page is the boot CPU's GHCB, the rest
    /// the pool the kernel takes device (DMA) buffers from.
    pub shared: Range<u64>,
}

/// What a UEFI memory-map entry means for encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryKind {
    /// System memory (loader, boot/runtime services, conventional, ACPI, persistent): private.
    Ram,
    /// Device memory: shared with the host.
    Mmio,
    /// `EfiUnacceptedMemoryType` (15): not validated, must not be touched.
    Unaccepted,
    /// Reserved, unusable, vendor types: shared unless named private. Reserved is not uniformly
    /// private: the PCIe MMCONFIG window is reserved, not MMIO, and OVMF maps it shared
    /// (AmdSevDxe), while the SNP secrets and CPUID pages are reserved and private.
    Other,
}

impl MemoryKind {
    /// Classify an `EFI_MEMORY_TYPE`.
    pub fn from_efi(ty: u32) -> Self {
        match ty {
            1..=7 | 9 | 10 | 14 => Self::Ram,
            11 | 12 => Self::Mmio,
            15 => Self::Unaccepted,
            _ => Self::Other,
        }
    }
}

/// One memory-map entry, `start..end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    pub range: Range<u64>,
    pub kind: MemoryKind,
}

impl MapEntry {
    /// From a UEFI descriptor's start, page count and type.
    pub fn from_efi(start: u64, pages: u64, ty: u32) -> Result<Self, SevError> {
        let end = pages
            .checked_mul(PAGE)
            .and_then(|len| start.checked_add(len))
            .ok_or(SevError::Overflow { start, pages })?;
        Ok(Self {
            range: start..end,
            kind: MemoryKind::from_efi(ty),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SevError {
    Overflow {
        start: u64,
        pages: u64,
    },
    BadRange(Range<u64>),
    Unaccepted(Range<u64>),
    PrivateOverlapsDevice {
        private: Range<u64>,
        device: Range<u64>,
    },
}

impl fmt::Display for SevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Overflow { start, pages } => {
                write!(
                    f,
                    "memory map entry at {start:#x} with {pages} pages overflows"
                )
            }
            Self::BadRange(r) => write!(
                f,
                "memory range {:#x}..{:#x} is not 4 KiB aligned or ends before it starts",
                r.start, r.end
            ),
            Self::Unaccepted(r) => write!(
                f,
                "memory {:#x}..{:#x} is unaccepted: the firmware must accept all memory before \
                 ExitBootServices (this loader does not accept memory itself)",
                r.start, r.end
            ),
            Self::PrivateOverlapsDevice { private, device } => write!(
                f,
                "private range {:#x}..{:#x} overlaps device or unaccepted memory {:#x}..{:#x}",
                private.start, private.end, device.start, device.end
            ),
        }
    }
}

/// `ranges` (sorted, merged) without `hole`.
pub fn subtract(ranges: &[Range<u64>], hole: &Range<u64>) -> Vec<Range<u64>> {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for r in ranges {
        if hole.start >= hole.end || r.end <= hole.start || hole.end <= r.start {
            out.push(r.clone());
            continue;
        }
        if r.start < hole.start {
            out.push(r.start..hole.start);
        }
        if hole.end < r.end {
            out.push(hole.end..r.end);
        }
    }
    out
}

/// Refuse a map that still has unaccepted memory. OVMF accepts all memory before
/// ExitBootServices unless the loader calls `AllowUnacceptedMemory` (AmdSevDxe), which this one
/// never does; unaccepted memory left over means the firmware did not do what we rely on, and
/// touching such a page would raise #VC.
pub fn refuse_unaccepted(map: &[MapEntry]) -> Result<(), SevError> {
    match map
        .iter()
        .find(|e| e.kind == MemoryKind::Unaccepted && e.range.start < e.range.end)
    {
        Some(e) => Err(SevError::Unaccepted(e.range.clone())),
        None => Ok(()),
    }
}

/// The memory the identity map marks private: every `Ram` and `Unaccepted` entry plus
/// `firmware_private` (the
/// [`CcBlob::pages`] under SNP), sorted and merged, as `paging::Encryption` wants them. A
/// `firmware_private` range over MMIO or unaccepted memory is refused.
pub fn private_ranges(
    map: &[MapEntry],
    firmware_private: &[Range<u64>],
) -> Result<Vec<Range<u64>>, SevError> {
    let aligned = |r: &Range<u64>| {
        r.start.is_multiple_of(PAGE) && r.end.is_multiple_of(PAGE) && r.start <= r.end
    };
    if let Some(bad) = map
        .iter()
        .map(|e| &e.range)
        .chain(firmware_private)
        .find(|r| !aligned(r))
    {
        return Err(SevError::BadRange(bad.clone()));
    }
    for private in firmware_private {
        let device = map.iter().find(|e| {
            matches!(e.kind, MemoryKind::Mmio | MemoryKind::Unaccepted)
                && e.range.start < private.end
                && private.start < e.range.end
        });
        if let Some(device) = device {
            return Err(SevError::PrivateOverlapsDevice {
                private: private.clone(),
                device: device.range.clone(),
            });
        }
    }
    // Unaccepted memory (OVMF leaves RAM above 4 GiB so under SNP) is RAM too: the firmware
    // accepts it at ExitBootServices, because this loader never opts into unaccepted memory, and
    // the kernel then uses it as private memory.
    let ram = map
        .iter()
        .filter(|e| matches!(e.kind, MemoryKind::Ram | MemoryKind::Unaccepted))
        .map(|e| e.range.clone());
    Ok(crate::memory::merge(
        ram.chain(firmware_private.iter().cloned()).collect(),
    ))
}

#[cfg(test)]
// Lists of address ranges are the data here, one-element lists included.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn blob(secrets: u64, secrets_len: u32, cpuid: u64, cpuid_len: u32) -> Vec<u8> {
        let mut b = [CC_BLOB_MAGIC.to_le_bytes(), 1u32.to_le_bytes()].concat();
        b.extend([secrets.to_le_bytes(), u64::from(secrets_len).to_le_bytes()].concat());
        b.extend([cpuid.to_le_bytes(), u64::from(cpuid_len).to_le_bytes()].concat());
        b
    }

    #[test]
    fn guid_and_magic_match_edk2() {
        // { 0x067b1f5f, 0xcf26, 0x44c5, { 0x85, 0x54, 0x93, 0xd7, 0x77, 0x91, 0x2d, 0x42 } }
        let bytes = [
            0x5f, 0x1f, 0x7b, 0x06, 0x26, 0xcf, 0xc5, 0x44, 0x85, 0x54, 0x93, 0xd7, 0x77, 0x91,
            0x2d, 0x42,
        ];
        assert_eq!(CC_BLOB_GUID.to_bytes(), bytes);
        assert_eq!(&CC_BLOB_MAGIC.to_le_bytes(), b"AMDE");
    }

    #[test]
    fn parses_the_ovmf_blob() {
        let mut bytes = blob(0x80_d000, 4096, 0x80_e000, 4096);
        assert_eq!(bytes.len(), CC_BLOB_LEN);
        let (secrets, cpuid) = (0x80_d000, 0x80_e000);
        let expected = CcBlob {
            version: 1,
            secrets,
            cpuid,
        };
        assert_eq!(CcBlob::parse(&bytes), Ok(expected));
        bytes.push(0xff);
        assert_eq!(CcBlob::parse(&bytes), Ok(expected));
        let pages = [0x80_d000..0x80_e000, 0x80_e000..0x80_f000];
        assert_eq!(expected.pages(), pages);
    }

    #[test]
    fn refuses_bad_blobs() {
        let ok = blob(0x80_d000, 4096, 0x80_e000, 4096);
        assert_eq!(CcBlob::parse(&ok[..39]), Err(CcBlobError::TooShort(39)));
        assert_eq!(CcBlob::parse(&[]), Err(CcBlobError::TooShort(0)));
        let bad_magic = [b"AMDX", &ok[4..]].concat();
        let err = CcBlob::parse(&bad_magic);
        assert!(matches!(err, Err(CcBlobError::BadMagic(0x5844_4d41))));
        let cases = [
            (0x80_d000, 8192, 0x80_e000, 4096, "secrets page is 8192"),
            (0x80_d000, 4096, 0x80_e000, 0, "CPUID page is 0 bytes"),
            (0, 4096, 0x80_e000, 4096, "secrets page address is 0"),
            (0x80_d000, 4096, 0, 4096, "CPUID page address is 0"),
            (0x80_d010, 4096, 0x80_e000, 4096, "secrets page at 0x80d010"),
            (0x80_d000, 4096, 0x80_e800, 4096, "CPUID page at 0x80e800"),
            (1 << 52, 4096, 0x80_e000, 4096, "beyond physical memory"),
        ];
        for (secrets, secrets_len, cpuid, cpuid_len, message) in cases {
            let bytes = blob(secrets, secrets_len, cpuid, cpuid_len);
            let err = CcBlob::parse(&bytes).unwrap_err().to_string();
            assert!(err.contains(message), "{err}");
        }
    }

    #[test]
    fn subtracting_a_hole() {
        let ranges = vec![0x1000..0x5000, 0x8000..0x9000];
        assert_eq!(
            subtract(&ranges, &(0x2000..0x3000)),
            vec![0x1000..0x2000, 0x3000..0x5000, 0x8000..0x9000]
        );
        assert_eq!(subtract(&ranges, &(0x0..0x2000))[0], 0x2000..0x5000);
        assert_eq!(
            subtract(&ranges, &(0x4000..0x8800)),
            vec![0x1000..0x4000, 0x8800..0x9000]
        );
        assert_eq!(subtract(&ranges, &(0x6000..0x6000)), ranges);
        assert_eq!(subtract(&ranges, &(0x0..0x10000)), vec![]);
    }

    #[test]
    fn level_names_are_what_the_kernel_reads() {
        let b = CcBlob::parse(&blob(0x1000, 4096, 0x2000, 4096)).unwrap();
        assert_eq!(SevLevel::Sev.name(), "sev");
        assert_eq!(SevLevel::SevEs.name(), "sev-es");
        assert_eq!(SevLevel::Snp(b).name(), "sev-snp");
    }

    fn entry(start: u64, end: u64, kind: MemoryKind) -> MapEntry {
        let range = start..end;
        MapEntry { range, kind }
    }

    #[test]
    fn classifies_efi_types() {
        use MemoryKind::*;
        let kinds: Vec<_> = (0..=16).map(MemoryKind::from_efi).collect();
        let expected = [
            Other, Ram, Ram, Ram, Ram, Ram, Ram, Ram, Other, Ram, Ram, Mmio, Mmio, Other, Ram,
            Unaccepted, Other,
        ];
        assert_eq!(kinds, expected);
        assert_eq!(MemoryKind::from_efi(0x8000_0000), Other);
        assert_eq!(
            MapEntry::from_efi(0x1000, 2, 7),
            Ok(entry(0x1000, 0x3000, Ram))
        );
        for (start, pages) in [(u64::MAX - 0xfff, 1), (0, u64::MAX)] {
            let err = MapEntry::from_efi(start, pages, 7);
            assert_eq!(err, Err(SevError::Overflow { start, pages }));
        }
    }

    #[test]
    fn private_is_ram_plus_firmware_pages_merged() {
        use MemoryKind::*;
        let map = [
            entry(0, 0xa_0000, Ram),
            entry(0x10_0000, 0x80_0000, Ram),
            entry(0x80_0000, 0x80_d000, Other),
            entry(0x80_d000, 0x80_f000, Other), // SNP secrets + CPUID (reserved)
            entry(0x80_f000, 0x90_0000, Ram),
            entry(0xb000_0000, 0xc000_0000, Other), // PCIe MMCONFIG (reserved, shared)
            entry(0xfec0_0000, 0xfec0_1000, Mmio),
            entry(0x1_0000_0000, 0x1_8000_0000, Ram),
        ];
        let firmware = [0x80_d000..0x80_e000, 0x80_e000..0x80_f000];
        let low = [0..0xa_0000, 0x10_0000..0x80_0000, 0x80_d000..0x90_0000];
        let expected = [&low[..], &[0x1_0000_0000..0x1_8000_0000]].concat();
        assert_eq!(private_ranges(&map, &firmware), Ok(expected));
        assert_eq!(refuse_unaccepted(&map), Ok(()));
    }

    #[test]
    fn refuses_bad_maps() {
        use MemoryKind::*;
        let map = [entry(0, 0x1000, Ram), entry(0xfec0_0000, 0xfec0_1000, Mmio)];
        let apic = 0xfec0_0000..0xfec0_1000;
        let err = private_ranges(&map, core::slice::from_ref(&apic)).unwrap_err();
        let overlap = SevError::PrivateOverlapsDevice {
            private: apic.clone(),
            device: apic,
        };
        assert_eq!(err, overlap);
        let err = private_ranges(&map, &[0x800..0x1000]);
        assert_eq!(err, Err(SevError::BadRange(0x800..0x1000)));
        let err = private_ranges(&[entry(0, 0x1800, Ram)], &[]);
        assert_eq!(err, Err(SevError::BadRange(0..0x1800)));
        let unaccepted = entry(0x1_0000_0000, 0x2_0000_0000, Unaccepted);
        let map = [entry(0, 0x1000, Ram), unaccepted.clone()];
        let err = refuse_unaccepted(&map).unwrap_err();
        assert_eq!(err, SevError::Unaccepted(unaccepted.range));
        assert!(err.to_string().contains("must accept all memory"));
        // Before ExitBootServices unaccepted RAM is still RAM: OVMF accepts it then, and the
        // kernel uses it as private memory.
        assert_eq!(
            private_ranges(&map, &[]),
            Ok(vec![0..0x1000, 0x1_0000_0000..0x2_0000_0000])
        );
    }
}
