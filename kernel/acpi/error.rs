//! pp: why the kernel refused the host's ACPI tables (see `tables.rs`).

use core::fmt;

use super::tables::{HEADER_LEN, MAX_TABLE_LEN};

/// A 4-byte table signature, printed as text when it is printable ASCII.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 4]);

impl Signature {
    pub(crate) const RSDT: Self = Self(*b"RSDT");
    pub(crate) const XSDT: Self = Self(*b"XSDT");
    pub(crate) const MADT: Self = Self(*b"APIC");
    pub(crate) const FADT: Self = Self(*b"FACP");
    pub(crate) const DSDT: Self = Self(*b"DSDT");
    pub(crate) const SSDT: Self = Self(*b"SSDT");

    pub(crate) fn printable(self) -> bool {
        self.0.iter().all(|b| (0x20..0x7f).contains(b))
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.printable() {
            for b in self.0 {
                write!(f, "{}", b as char)?;
            }
            Ok(())
        } else {
            write!(f, "{:02x?}", self.0)
        }
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why the tables were refused. Each names the table and what is wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    /// The loader passed no RSDP.
    NoRsdp,
    /// A range the tables claim lies outside what may be read (or wraps).
    Unreadable {
        what: &'static str,
        address: u64,
        len: u64,
    },
    /// The RSDP's signature or checksums are wrong, or its length is out of range.
    BadRsdp(&'static str),
    /// A table's header length is below the header itself.
    TooShort {
        signature: Signature,
        address: u64,
        len: u32,
    },
    /// A table's header length is above [`MAX_TABLE_LEN`].
    TooLong {
        signature: Signature,
        address: u64,
        len: u32,
    },
    /// A table's bytes do not sum to zero.
    BadChecksum { signature: Signature, address: u64 },
    /// A table's signature is not printable ASCII, or not the one its pointer promised.
    BadSignature {
        found: Signature,
        address: u64,
        expected: Option<Signature>,
    },
    /// The RSDT/XSDT's entry area is not a whole number of entries.
    RaggedRoot { signature: Signature, len: u32 },
    /// A table that must be unique appears twice.
    Duplicate(Signature),
    /// A table the kernel needs is missing.
    Missing(Signature),
    /// A table is too short for a field the kernel needs.
    FieldOutside {
        signature: Signature,
        field: &'static str,
        len: u32,
    },
    /// An MADT entry's length is below its header or runs past the table's end.
    BadMadtEntry {
        offset: usize,
        entry_type: u8,
        len: u8,
    },
    /// An MADT value the kernel will not accept.
    BadMadtValue(&'static str, u64),
    /// The FADT's PM1a control block is not a usable I/O port.
    BadPm1aPort(u64),
    /// An `_S5_` object that runs past its table's end or is not a small package of integers.
    BadS5 {
        signature: Signature,
        offset: usize,
        why: &'static str,
    },
    /// An APIC register page the kernel writes is not identity-mapped shared device memory
    /// (under SEV: the host's memory map called it RAM, so the loader mapped it private).
    ApicNotShared { what: &'static str, address: u64 },
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoRsdp => write!(f, "the loader passed no ACPI RSDP"),
            Self::Unreadable { what, address, len } => write!(
                f,
                "{what} at {address:#x} ({len} bytes) lies outside the readable window"
            ),
            Self::BadRsdp(why) => write!(f, "RSDP: {why}"),
            Self::TooShort {
                signature,
                address,
                len,
            } => write!(
                f,
                "{signature} at {address:#x}: length {len} is below its {HEADER_LEN}-byte header"
            ),
            Self::TooLong {
                signature,
                address,
                len,
            } => write!(
                f,
                "{signature} at {address:#x}: length {len} is above the limit of {MAX_TABLE_LEN}"
            ),
            Self::BadChecksum { signature, address } => {
                write!(
                    f,
                    "{signature} at {address:#x}: checksum does not sum to zero"
                )
            }
            Self::BadSignature {
                found,
                address,
                expected: Some(want),
            } => {
                write!(
                    f,
                    "table at {address:#x}: signature {found}, expected {want}"
                )
            }
            Self::BadSignature {
                found,
                address,
                expected: None,
            } => write!(
                f,
                "table at {address:#x}: signature {found} is not printable ASCII"
            ),
            Self::RaggedRoot { signature, len } => write!(
                f,
                "{signature}: length {len} is not the header plus whole entries"
            ),
            Self::Duplicate(signature) => write!(f, "a second {signature} table"),
            Self::Missing(signature) => write!(f, "no {signature} table"),
            Self::FieldOutside {
                signature,
                field,
                len,
            } => write!(
                f,
                "{signature}: length {len} does not reach the field {field}"
            ),
            Self::BadMadtEntry {
                offset,
                entry_type,
                len,
            } => write!(
                f,
                "APIC (MADT): entry of type {entry_type} at offset {offset} has length {len}, \
                 below its header or past the table's end"
            ),
            Self::BadMadtValue(what, value) => {
                write!(f, "APIC (MADT): {what} {value:#x} is not accepted")
            }
            Self::BadPm1aPort(port) => {
                write!(f, "FACP: PM1a control block {port:#x} is not an I/O port")
            }
            Self::BadS5 {
                signature,
                offset,
                why,
            } => {
                write!(f, "{signature}: _S5_ object at offset {offset} {why}")
            }
            Self::ApicNotShared { what, address } => write!(
                f,
                "the {what} page at {address:#x} is not identity-mapped shared device memory \
                 (the memory map made it RAM?): its register writes would land in private memory"
            ),
        }
    }
}
