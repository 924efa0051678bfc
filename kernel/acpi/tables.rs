//! pp: the ACPI tables the kernel reads, checked before anything in them is used — our code, not
//! Hermit's.
//!
//! The tables come from the host (QEMU builds them, OVMF copies them into guest memory) and are
//! not in the launch digest. Hermit 0.11 trusted their lengths: a table shorter than its header,
//! an MADT entry of length 0 or an `_S5_` object at a table's end made it read outside the table,
//! loop for ever or panic. This module reads only through [`Memory`], which hands out a slice for
//! an address range or nothing, and every field is taken from inside the slice its table's checked
//! header bounds. Whatever does not check out is an [`AcpiError`]; the kernel stops on it.
//!
//! What is kept ([`Facts`]): from the MADT the enabled local APIC ids (the CPU count without
//! SEV), from the FADT and the DSDT (or an SSDT) the PM1a control port and `SLP_TYPa` for S5
//! (power-off). The APIC addresses are checked, not used: only the architectural ones are
//! accepted (see [`LOCAL_APIC_ADDRESS`]).
//!
//! Plain `core`, no kernel types: `kernel/tests/acpi_tables.rs` runs it on the host.

pub use super::error::{AcpiError, Signature};

/// Length of the common table header (signature … creator revision).
pub const HEADER_LEN: usize = 36;
/// The longest table accepted. QEMU's largest, the DSDT, is a few KiB to tens of KiB; the bound
/// keeps every scan short.
pub const MAX_TABLE_LEN: usize = 1 << 20;
/// The local APIC's architectural address (reset value of `IA32_APIC_BASE`), in the MMIO hole
/// below 4 GiB. An MADT that names another would point the kernel's APIC register writes (xAPIC
/// mode) at memory of the host's choosing. The memory map is the host's too: whether the page is
/// really device memory is checked by [`check_apic_pages`].
pub const LOCAL_APIC_ADDRESS: u32 = 0xFEE0_0000;
/// The I/O APIC's address on every PC chipset QEMU models (q35, i440fx), for the same reason.
pub const IO_APIC_ADDRESS: u32 = 0xFEC0_0000;
/// The APIC register pages the kernel uses through the identity map are one 4 KiB page each.
pub const APIC_PAGE_LEN: u64 = 0x1000;
/// At most this many enabled local APICs (8-bit ids; the kernel keeps them as `u8`).
pub const MAX_CPUS: usize = 256;

/// Physical memory the tables are read from.
pub trait Memory {
    /// The `len` bytes at physical address `address`, or `None` when the range is not one the
    /// tables may occupy (wraps, leaves the readable window, or is not mapped).
    fn read(&self, address: u64, len: usize) -> Option<&[u8]>;
}

/// The MADT's checked content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Madt {
    /// Ids of the enabled local APICs, in table order (`cpus` of them).
    pub apic_ids: [u8; MAX_CPUS],
    pub cpus: usize,
}

impl Madt {
    /// The enabled local APIC ids.
    pub fn apic_ids(&self) -> &[u8] {
        &self.apic_ids[..self.cpus]
    }
}

/// What ACPI power-off (S5) writes: `SLP_TYPa | SLP_EN` to the PM1a control port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Poweroff {
    pub pm1a_control_port: u16,
    /// 3 bits.
    pub slp_typa: u8,
}

/// Everything the kernel takes from the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    pub madt: Madt,
    /// `None` when no DSDT/SSDT declares `_S5_` (power-off then falls back to a triple fault).
    pub poweroff: Option<Poweroff>,
}

/// A table whose header was checked: its bytes (exactly `length` of them), signature, address.
#[derive(Clone, Copy)]
struct Table<'a> {
    bytes: &'a [u8],
    signature: Signature,
    address: u64,
}

impl<'a> Table<'a> {
    fn u8_at(&self, offset: usize, field: &'static str) -> Result<u8, AcpiError> {
        Ok(self.field::<1>(offset, field)?[0])
    }

    fn u32_at(&self, offset: usize, field: &'static str) -> Result<u32, AcpiError> {
        Ok(u32::from_le_bytes(self.field(offset, field)?))
    }

    fn u64_at(&self, offset: usize, field: &'static str) -> Result<u64, AcpiError> {
        Ok(u64::from_le_bytes(self.field(offset, field)?))
    }

    fn field<const N: usize>(
        &self,
        offset: usize,
        name: &'static str,
    ) -> Result<[u8; N], AcpiError> {
        offset
            .checked_add(N)
            .and_then(|end| self.bytes.get(offset..end))
            .and_then(|b| b.try_into().ok())
            .ok_or(AcpiError::FieldOutside {
                signature: self.signature,
                field: name,
                len: self.bytes.len() as u32,
            })
    }

    fn has(&self, offset: usize, n: usize) -> bool {
        offset
            .checked_add(n)
            .is_some_and(|end| end <= self.bytes.len())
    }
}

fn sums_to_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b)) == 0
}

fn read<'m, M: Memory>(
    mem: &'m M,
    what: &'static str,
    address: u64,
    len: usize,
) -> Result<&'m [u8], AcpiError> {
    mem.read(address, len)
        .filter(|b| b.len() == len)
        .ok_or(AcpiError::Unreadable {
            what,
            address,
            len: len as u64,
        })
}

/// Read and check one table: header inside the window, `HEADER_LEN ≤ length ≤ MAX_TABLE_LEN`,
/// the whole length inside the window, printable signature (the expected one if given), checksum.
fn table<'m, M: Memory>(
    mem: &'m M,
    address: u64,
    expected: Option<Signature>,
) -> Result<Table<'m>, AcpiError> {
    let header = read(mem, "a table header", address, HEADER_LEN)?;
    let signature = Signature([header[0], header[1], header[2], header[3]]);
    if !signature.printable() || expected.is_some_and(|want| want != signature) {
        return Err(AcpiError::BadSignature {
            found: signature,
            address,
            expected,
        });
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if (len as usize) < HEADER_LEN {
        return Err(AcpiError::TooShort {
            signature,
            address,
            len,
        });
    }
    if len as usize > MAX_TABLE_LEN {
        return Err(AcpiError::TooLong {
            signature,
            address,
            len,
        });
    }
    let bytes = read(mem, "a table", address, len as usize)?;
    if !sums_to_zero(bytes) {
        return Err(AcpiError::BadChecksum { signature, address });
    }
    Ok(Table {
        bytes,
        signature,
        address,
    })
}

/// The RSDP: signature, ACPI 1.0 checksum over 20 bytes, and from revision 2 the length (36 to
/// 4096) and the extended checksum over it. Returns the root table's address and entry size.
fn rsdp<M: Memory>(mem: &M, address: u64) -> Result<(u64, Signature, usize), AcpiError> {
    let v1 = read(mem, "the RSDP", address, 20)?;
    if &v1[..8] != b"RSD PTR " {
        return Err(AcpiError::BadRsdp("signature is not \"RSD PTR \""));
    }
    if !sums_to_zero(v1) {
        return Err(AcpiError::BadRsdp(
            "checksum of the first 20 bytes does not sum to zero",
        ));
    }
    if v1[15] < 2 {
        let rsdt = u32::from_le_bytes([v1[16], v1[17], v1[18], v1[19]]);
        return Ok((rsdt.into(), Signature::RSDT, 4));
    }
    let head = read(mem, "the RSDP", address, 36)?;
    let len = u32::from_le_bytes([head[20], head[21], head[22], head[23]]) as usize;
    if !(36..=4096).contains(&len) {
        return Err(AcpiError::BadRsdp("length is not between 36 and 4096"));
    }
    if !sums_to_zero(read(mem, "the RSDP", address, len)?) {
        return Err(AcpiError::BadRsdp("extended checksum does not sum to zero"));
    }
    let mut xsdt = [0; 8];
    xsdt.copy_from_slice(&head[24..32]);
    Ok((u64::from_le_bytes(xsdt), Signature::XSDT, 8))
}

/// Check every table the RSDP leads to and take what the kernel uses. Any table reachable from
/// the root must pass [`table`]'s checks, whether or not the kernel reads its body.
pub fn parse<M: Memory>(mem: &M, rsdp_address: u64) -> Result<Facts, AcpiError> {
    let (root_address, root_signature, entry_len) = rsdp(mem, rsdp_address)?;
    let root = table(mem, root_address, Some(root_signature))?;
    let entries = &root.bytes[HEADER_LEN..];
    if entries.len() % entry_len != 0 {
        return Err(AcpiError::RaggedRoot {
            signature: root.signature,
            len: root.bytes.len() as u32,
        });
    }
    // Every MADT and every SSDT's `_S5_` is checked as it is met, also those the kernel would
    // not use; then a second MADT or FADT is refused.
    let (mut madt, mut fadt, mut ssdt_s5) = (None, None, None);
    for entry in entries.chunks_exact(entry_len) {
        let mut address = [0; 8];
        address[..entry_len].copy_from_slice(entry);
        let t = table(mem, u64::from_le_bytes(address), None)?;
        match t.signature {
            Signature::MADT => once(&mut madt, parse_madt(&t)?, t.signature)?,
            Signature::FADT => once(&mut fadt, t, t.signature)?,
            // `_S5_` may also live in an SSDT: the first one counts if the DSDT has none.
            Signature::SSDT => ssdt_s5 = ssdt_s5.or(find_s5(&t)?),
            Signature::DSDT => return Err(AcpiError::Duplicate(Signature::DSDT)),
            _ => {}
        }
    }
    let madt = madt.ok_or(AcpiError::Missing(Signature::MADT))?;
    let fadt = fadt.ok_or(AcpiError::Missing(Signature::FADT))?;
    let (pm1a_control_port, dsdt_address) = parse_fadt(&fadt)?;
    let dsdt = table(mem, dsdt_address, Some(Signature::DSDT))?;
    let slp_typa = find_s5(&dsdt)?.or(ssdt_s5);
    Ok(Facts {
        madt,
        poweroff: slp_typa.map(|slp_typa| Poweroff {
            pm1a_control_port,
            slp_typa,
        }),
    })
}

/// Check that the APIC register pages the kernel writes through the identity map are device
/// memory shared with the host: the I/O APIC's always, the local APIC's when the kernel uses
/// xAPIC (MMIO) rather than x2APIC (MSRs; the CPUID bit decides, and under SNP the host writes the
/// CPUID page). `shared(address, len)` says whether the range is identity-mapped shared (under SEV
/// without the C-bit; always true without SEV for a non-empty range).
///
/// The addresses are architectural (the MADT must name them), but the memory map is the host's:
/// one that calls an APIC page RAM gets it mapped private by the loader, and the kernel's APIC
/// register writes would land in the enclave's own memory.
pub fn check_apic_pages(x2apic: bool, shared: impl Fn(u64, u64) -> bool) -> Result<(), AcpiError> {
    let pages = [
        ("I/O APIC", IO_APIC_ADDRESS, true),
        ("local APIC (xAPIC)", LOCAL_APIC_ADDRESS, !x2apic),
    ];
    for (what, address, used) in pages {
        if used && !shared(address.into(), APIC_PAGE_LEN) {
            return Err(AcpiError::ApicNotShared {
                what,
                address: address.into(),
            });
        }
    }
    Ok(())
}

/// Keep the one table of its kind; a second is refused.
fn once<T>(slot: &mut Option<T>, value: T, signature: Signature) -> Result<(), AcpiError> {
    match slot.replace(value) {
        Some(_) => Err(AcpiError::Duplicate(signature)),
        None => Ok(()),
    }
}

/// MADT (ACPI 6.5 §5.2.12): local APIC address, flags, then entries of `type, length, …`.
fn parse_madt(t: &Table<'_>) -> Result<Madt, AcpiError> {
    let local_apic = t.u32_at(36, "Local Interrupt Controller Address")?;
    if local_apic != LOCAL_APIC_ADDRESS {
        return Err(AcpiError::BadMadtValue(
            "local APIC address",
            local_apic.into(),
        ));
    }
    let mut madt = Madt {
        apic_ids: [0; MAX_CPUS],
        cpus: 0,
    };
    let mut io_apics = 0;
    let mut offset = 44;
    while offset < t.bytes.len() {
        let entry_type = t.bytes[offset];
        let len = t.bytes.get(offset + 1).copied().unwrap_or(0);
        // Each known entry type has a fixed length; others need only their 2-byte header.
        let want = match entry_type {
            0 => 8,      // Processor Local APIC
            1 | 5 => 12, // I/O APIC; Local APIC Address Override
            9 => 16,     // Processor Local x2APIC
            _ => 2,
        };
        let bad = AcpiError::BadMadtEntry {
            offset,
            entry_type,
            len,
        };
        if (len as usize) < want || ((entry_type <= 1 || entry_type == 5) && len as usize != want) {
            return Err(bad);
        }
        if !t.has(offset, len as usize) {
            return Err(bad);
        }
        let entry = &t.bytes[offset..offset + len as usize];
        match entry_type {
            0 if entry[4] & 1 != 0 => {
                let id = entry[3];
                if madt.apic_ids().contains(&id) {
                    return Err(AcpiError::BadMadtValue("repeated local APIC id", id.into()));
                }
                // 256 distinct u8 ids at most: the array cannot overflow.
                madt.apic_ids[madt.cpus] = id;
                madt.cpus += 1;
            }
            1 => {
                io_apics += 1;
                let address = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
                if address != IO_APIC_ADDRESS {
                    return Err(AcpiError::BadMadtValue("I/O APIC address", address.into()));
                }
            }
            5 => {
                let mut a = [0; 8];
                a.copy_from_slice(&entry[4..12]);
                let address = u64::from_le_bytes(a);
                if address != u64::from(LOCAL_APIC_ADDRESS) {
                    return Err(AcpiError::BadMadtValue(
                        "local APIC address override",
                        address,
                    ));
                }
            }
            _ => {}
        }
        offset += len as usize;
    }
    if io_apics != 1 {
        return Err(AcpiError::BadMadtValue("number of I/O APICs", io_apics));
    }
    if madt.cpus == 0 {
        return Err(AcpiError::BadMadtValue("number of enabled local APICs", 0));
    }
    Ok(madt)
}

/// FADT (ACPI 6.5 §5.2.9): the PM1a control port (`X_PM1a_CNT_BLK` when present and in I/O
/// space, else `PM1a_CNT_BLK`) and the DSDT's address (`X_DSDT` when present and non-zero, else
/// `DSDT`).
fn parse_fadt(t: &Table<'_>) -> Result<(u16, u64), AcpiError> {
    const SYSTEM_IO: u8 = 1;
    let port = if t.has(172, 12) && t.u8_at(172, "X_PM1a_CNT_BLK")? == SYSTEM_IO {
        t.u64_at(176, "X_PM1a_CNT_BLK")?
    } else {
        t.u32_at(64, "PM1a_CNT_BLK")?.into()
    };
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(AcpiError::BadPm1aPort(port))?;
    let x_dsdt = if t.has(140, 8) {
        t.u64_at(140, "X_DSDT")?
    } else {
        0
    };
    let dsdt = if x_dsdt != 0 {
        x_dsdt
    } else {
        t.u32_at(40, "DSDT")?.into()
    };
    Ok((port, dsdt))
}

/// AML opcodes (ACPI 6.5 §20.3) of the `_S5_` object: `Name(_S5_, Package(){ SLP_TYPa, … })`.
const AML_NAME: u8 = 0x08;
const AML_PACKAGE: u8 = 0x12;
const AML_ZERO: u8 = 0x00;
const AML_ONE: u8 = 0x01;
const AML_BYTE_PREFIX: u8 = 0x0A;
const AML_ROOT: u8 = b'\\';

/// `SLP_TYPa` from the first `Name(_S5_, Package)` in a DSDT/SSDT's AML, without an AML
/// interpreter: the name, then `PkgLength` (1 to 4 bytes), `NumElements`, and the first element
/// as `Zero`, `One` or `BytePrefix n` with `n < 8`. `None` when there is no such name; an
/// error when the object is cut off by the table's end or holds something else.
fn find_s5(t: &Table<'_>) -> Result<Option<u8>, AcpiError> {
    let aml = &t.bytes[HEADER_LEN..];
    let pattern = [b'_', b'S', b'5', b'_', AML_PACKAGE];
    let Some(at) = aml.windows(pattern.len()).enumerate().find_map(|(i, w)| {
        let named = i >= 1 && aml[i - 1] == AML_NAME
            || i >= 2 && aml[i - 2] == AML_NAME && aml[i - 1] == AML_ROOT;
        (w == pattern && named).then_some(i)
    }) else {
        return Ok(None);
    };
    let bad = |why| AcpiError::BadS5 {
        signature: t.signature,
        offset: HEADER_LEN + at,
        why,
    };
    let cut = bad("is cut off by the table's end");
    let mut rest = aml[at + pattern.len()..].iter().copied();
    let lead = rest.next().ok_or(cut)?;
    // PkgLength: bits 7:6 of the lead byte count the bytes that follow it.
    for _ in 0..lead >> 6 {
        rest.next().ok_or(cut)?;
    }
    let elements = rest.next().ok_or(cut)?;
    if elements == 0 {
        return Err(bad("is an empty package"));
    }
    let value = match rest.next().ok_or(cut)? {
        AML_ZERO => 0,
        AML_ONE => 1,
        AML_BYTE_PREFIX => rest.next().ok_or(cut)?,
        _ => return Err(bad("does not start with a byte constant")),
    };
    if value > 7 {
        return Err(bad("has an SLP_TYPa above 7 (a 3-bit field)"));
    }
    Ok(Some(value))
}
