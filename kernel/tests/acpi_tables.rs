//! Our ACPI table checks (`kernel/acpi/tables.rs`, copied into the kernel as its `acpi` module's
//! parser) on the host: tables laid out as QEMU and OVMF lay them out, then one malformation at a
//! time, each of which must be refused with its reason and never read outside the memory given.

#![allow(dead_code)]

#[path = "../acpi/error.rs"]
mod error;
#[path = "../acpi/tables.rs"]
mod tables;

use tables::{AcpiError, Facts, HEADER_LEN, MAX_TABLE_LEN, Memory, Poweroff, Signature, parse};

/// Guest memory: `bytes` at physical address `BASE`; nothing else is readable.
struct Guest {
    bytes: Vec<u8>,
}

const BASE: u64 = 0x7f00_0000;
const SIZE: usize = 0x4_0000;
const RSDP: u64 = BASE;
const XSDT: u64 = BASE + 0x1000;
const FADT: u64 = BASE + 0x2000;
const MADT: u64 = BASE + 0x3000;
const DSDT: u64 = BASE + 0x4000;
const SSDT: u64 = BASE + 0x8000;
const EXTRA: u64 = BASE + 0x9000;
/// QEMU's PM1a control port (q35's ICH9 LPC, PM base 0x600).
const PM1A: u16 = 0x604;

impl Memory for Guest {
    fn read(&self, address: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(address.checked_sub(BASE)?).ok()?;
        self.bytes.get(start..start.checked_add(len)?)
    }
}

impl Guest {
    fn new() -> Self {
        Self {
            bytes: vec![0; SIZE],
        }
    }

    fn put(&mut self, address: u64, data: &[u8]) {
        let at = (address - BASE) as usize;
        self.bytes[at..at + data.len()].copy_from_slice(data);
    }

    fn parse(&self) -> Result<Facts, AcpiError> {
        parse(self, RSDP)
    }
}

fn fix_checksum(table: &mut [u8], at: usize) {
    table[at] = 0;
    let sum = table.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    table[at] = sum.wrapping_neg();
}

/// A table: header (length = header + body, checksum fixed) and body.
fn table(signature: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(HEADER_LEN + body.len());
    t.extend_from_slice(signature);
    t.extend_from_slice(&((HEADER_LEN + body.len()) as u32).to_le_bytes());
    t.push(1); // revision
    t.push(0); // checksum
    t.extend_from_slice(b"PPTEST");
    t.extend_from_slice(b"PPTABLES");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"PPTS");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(body);
    fix_checksum(&mut t, 9);
    t
}

/// Set a table's header length and fix its checksum again (over the bytes the header now claims,
/// when they exist).
fn set_len(t: &mut [u8], len: u32) {
    t[4..8].copy_from_slice(&len.to_le_bytes());
    let n = (len as usize).clamp(HEADER_LEN, t.len());
    fix_checksum(&mut t[..n], 9);
}

fn rsdp_v2(xsdt: u64) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(b"RSD PTR ");
    r.push(0);
    r.extend_from_slice(b"PPTEST");
    r.push(2);
    r.extend_from_slice(&0u32.to_le_bytes());
    r.extend_from_slice(&36u32.to_le_bytes());
    r.extend_from_slice(&xsdt.to_le_bytes());
    r.extend_from_slice(&[0; 4]);
    fix_checksum(&mut r[..20], 8);
    fix_checksum(&mut r, 32);
    r
}

fn xsdt(entries: &[u64]) -> Vec<u8> {
    let body: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
    table(b"XSDT", &body)
}

/// A FADT of ACPI 6 length (276 bytes) with `DSDT`, `X_DSDT` and `PM1a_CNT_BLK` set, as QEMU's.
fn fadt(dsdt: u64) -> Vec<u8> {
    let mut body = vec![0; 276 - HEADER_LEN];
    body[40 - HEADER_LEN..44 - HEADER_LEN].copy_from_slice(&(dsdt as u32).to_le_bytes());
    body[64 - HEADER_LEN..68 - HEADER_LEN].copy_from_slice(&u32::from(PM1A).to_le_bytes());
    body[140 - HEADER_LEN..148 - HEADER_LEN].copy_from_slice(&dsdt.to_le_bytes());
    table(b"FACP", &body)
}

fn lapic(id: u8, enabled: bool) -> Vec<u8> {
    vec![0, 8, id, id, u8::from(enabled), 0, 0, 0]
}

fn ioapic(address: u32) -> Vec<u8> {
    let mut e = vec![1, 12, 0, 0];
    e.extend_from_slice(&address.to_le_bytes());
    e.extend_from_slice(&0u32.to_le_bytes());
    e
}

fn madt_with(local_apic: u32, entries: &[Vec<u8>]) -> Vec<u8> {
    let mut body = local_apic.to_le_bytes().to_vec();
    body.extend_from_slice(&1u32.to_le_bytes());
    for e in entries {
        body.extend_from_slice(e);
    }
    table(b"APIC", &body)
}

/// QEMU's q35 MADT with two CPUs: local APICs, one I/O APIC, interrupt source overrides (type 2)
/// and a local APIC NMI (type 4).
fn madt() -> Vec<u8> {
    madt_with(
        0xFEE0_0000,
        &[
            lapic(0, true),
            lapic(1, true),
            ioapic(0xFEC0_0000),
            vec![2, 10, 0, 0, 2, 0, 0, 0, 0, 0],
            vec![4, 6, 0xff, 0, 0, 1],
        ],
    )
}

/// AML: some bytes, then `Name(_S5_, Package(4){0, 0, 0, 0})` as QEMU writes it, then more.
fn dsdt_aml() -> Vec<u8> {
    let mut aml = vec![0x10, 0x05, b'\\', b'_', b'S', b'B', b'_'];
    aml.extend_from_slice(&[0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0, 0, 0, 0]);
    aml.extend_from_slice(&[0x5b, 0x80, b'P', b'C', b'I', b'0']);
    aml
}

/// The tables as QEMU q35 + OVMF present them (the XSDT lists FACP, APIC and one unrelated
/// table; the FADT points at the DSDT).
fn qemu() -> Guest {
    let mut g = Guest::new();
    g.put(RSDP, &rsdp_v2(XSDT));
    g.put(XSDT, &xsdt(&[FADT, MADT, EXTRA]));
    g.put(FADT, &fadt(DSDT));
    g.put(MADT, &madt());
    g.put(DSDT, &table(b"DSDT", &dsdt_aml()));
    g.put(EXTRA, &table(b"WAET", &[0; 4]));
    g
}

#[test]
fn qemu_tables_are_accepted() {
    let facts = qemu().parse().unwrap();
    assert_eq!(facts.madt.apic_ids(), &[0, 1]);
    assert_eq!(
        facts.poweroff,
        Some(Poweroff {
            pm1a_control_port: PM1A,
            slp_typa: 0
        })
    );
}

#[test]
fn disabled_cpus_are_not_counted() {
    let mut g = qemu();
    g.put(
        MADT,
        &madt_with(
            0xFEE0_0000,
            &[lapic(0, true), lapic(1, false), ioapic(0xFEC0_0000)],
        ),
    );
    assert_eq!(g.parse().unwrap().madt.apic_ids(), &[0]);
}

#[test]
fn dsdt_shorter_than_its_header_is_refused() {
    // Hermit 0.11 sliced the AML from header end to header + length: start after end.
    let mut g = qemu();
    let mut dsdt = table(b"DSDT", &dsdt_aml());
    set_len(&mut dsdt, 20);
    g.put(DSDT, &dsdt);
    let err = g.parse().unwrap_err();
    assert_eq!(
        err,
        AcpiError::TooShort {
            signature: Signature(*b"DSDT"),
            address: DSDT,
            len: 20
        }
    );
    assert!(
        err.to_string()
            .contains("length 20 is below its 36-byte header")
    );
}

#[test]
fn table_running_out_of_memory_is_refused() {
    let mut g = qemu();
    let last = BASE + SIZE as u64 - 0x100;
    let mut t = table(b"SSDT", &[0; 8]);
    set_len(&mut t, 0x1000);
    g.put(last, &t);
    g.put(XSDT, &xsdt(&[FADT, MADT, last]));
    assert!(
        matches!(g.parse(), Err(AcpiError::Unreadable { address, len: 0x1000, .. }) if address == last)
    );
}

#[test]
fn table_above_the_size_limit_is_refused() {
    let mut g = qemu();
    let mut t = table(b"SSDT", &[0; 8]);
    set_len(&mut t, MAX_TABLE_LEN as u32 + 1);
    g.put(SSDT, &t);
    g.put(XSDT, &xsdt(&[FADT, MADT, SSDT]));
    assert!(matches!(g.parse(), Err(AcpiError::TooLong { .. })));
}

#[test]
fn bad_checksum_is_refused() {
    let mut g = qemu();
    let mut m = madt();
    m[9] ^= 1;
    g.put(MADT, &m);
    assert_eq!(
        g.parse(),
        Err(AcpiError::BadChecksum {
            signature: Signature(*b"APIC"),
            address: MADT
        })
    );
}

#[test]
fn madt_entry_of_length_zero_is_refused() {
    // Hermit 0.11 advanced by `length - 2`: a length of 0 never moved on (or wrapped).
    let mut g = qemu();
    g.put(
        MADT,
        &madt_with(
            0xFEE0_0000,
            &[lapic(0, true), ioapic(0xFEC0_0000), vec![0x7f, 0, 0, 0]],
        ),
    );
    assert_eq!(
        g.parse(),
        Err(AcpiError::BadMadtEntry {
            offset: 44 + 8 + 12,
            entry_type: 0x7f,
            len: 0
        })
    );
}

#[test]
fn madt_entry_past_the_table_end_is_refused() {
    let mut g = qemu();
    let mut cut = lapic(1, true);
    cut.truncate(5);
    g.put(
        MADT,
        &madt_with(0xFEE0_0000, &[ioapic(0xFEC0_0000), lapic(0, true), cut]),
    );
    assert!(matches!(
        g.parse(),
        Err(AcpiError::BadMadtEntry {
            entry_type: 0,
            len: 8,
            ..
        })
    ));
    // A header byte alone at the end.
    g.put(
        MADT,
        &madt_with(0xFEE0_0000, &[ioapic(0xFEC0_0000), lapic(0, true), vec![3]]),
    );
    assert!(matches!(
        g.parse(),
        Err(AcpiError::BadMadtEntry {
            entry_type: 3,
            len: 0,
            ..
        })
    ));
}

#[test]
fn madt_entry_shorter_than_its_type_is_refused() {
    let mut g = qemu();
    let mut short = ioapic(0xFEC0_0000);
    short[1] = 6;
    short.truncate(6);
    g.put(MADT, &madt_with(0xFEE0_0000, &[lapic(0, true), short]));
    assert!(matches!(
        g.parse(),
        Err(AcpiError::BadMadtEntry {
            entry_type: 1,
            len: 6,
            ..
        })
    ));
}

#[test]
fn a_second_madt_is_refused() {
    let mut g = qemu();
    g.put(EXTRA, &madt());
    assert_eq!(g.parse(), Err(AcpiError::Duplicate(Signature(*b"APIC"))));
}

#[test]
fn apic_addresses_other_than_the_architectural_ones_are_refused() {
    let mut g = qemu();
    g.put(
        MADT,
        &madt_with(0x7000_0000, &[lapic(0, true), ioapic(0xFEC0_0000)]),
    );
    assert_eq!(
        g.parse(),
        Err(AcpiError::BadMadtValue("local APIC address", 0x7000_0000))
    );
    g.put(
        MADT,
        &madt_with(0xFEE0_0000, &[lapic(0, true), ioapic(0x7000_0000)]),
    );
    assert_eq!(
        g.parse(),
        Err(AcpiError::BadMadtValue("I/O APIC address", 0x7000_0000))
    );
    let mut over = vec![5, 12, 0, 0];
    over.extend_from_slice(&0x7000_0000u64.to_le_bytes());
    g.put(
        MADT,
        &madt_with(0xFEE0_0000, &[lapic(0, true), ioapic(0xFEC0_0000), over]),
    );
    assert!(matches!(
        g.parse(),
        Err(AcpiError::BadMadtValue("local APIC address override", _))
    ));
}

#[test]
fn repeated_apic_ids_and_missing_parts_are_refused() {
    let mut g = qemu();
    g.put(
        MADT,
        &madt_with(
            0xFEE0_0000,
            &[lapic(0, true), lapic(0, true), ioapic(0xFEC0_0000)],
        ),
    );
    assert!(matches!(
        g.parse(),
        Err(AcpiError::BadMadtValue("repeated local APIC id", 0))
    ));
    g.put(MADT, &madt_with(0xFEE0_0000, &[lapic(0, true)]));
    assert!(matches!(
        g.parse(),
        Err(AcpiError::BadMadtValue("number of I/O APICs", 0))
    ));
    g.put(MADT, &madt_with(0xFEE0_0000, &[ioapic(0xFEC0_0000)]));
    assert!(matches!(
        g.parse(),
        Err(AcpiError::BadMadtValue("number of enabled local APICs", 0))
    ));
    g.put(XSDT, &xsdt(&[FADT]));
    assert_eq!(g.parse(), Err(AcpiError::Missing(Signature(*b"APIC"))));
}

#[test]
fn non_ascii_signature_is_refused() {
    // Hermit 0.11 turned every signature into a str with `unwrap()`: a panic.
    let mut g = qemu();
    g.put(EXTRA, &table(&[0xff, 0xfe, 0xfd, 0xfc], &[0; 4]));
    let err = g.parse().unwrap_err();
    assert!(matches!(
        err,
        AcpiError::BadSignature { expected: None, .. }
    ));
    assert!(
        err.to_string()
            .contains("[ff, fe, fd, fc] is not printable ASCII")
    );
}

#[test]
fn s5_cut_off_by_the_table_end_is_refused() {
    // Hermit 0.11 indexed the bytes after `_S5_` without a bound.
    for tail in [&[][..], &[0x06], &[0x06, 0x04], &[0x46, 0x00, 0x04, 0x0a]] {
        let mut aml = vec![0x08, b'_', b'S', b'5', b'_', 0x12];
        aml.extend_from_slice(tail);
        let mut g = qemu();
        g.put(DSDT, &table(b"DSDT", &aml));
        let err = g.parse().unwrap_err();
        assert!(
            matches!(
                err,
                AcpiError::BadS5 {
                    why: "is cut off by the table's end",
                    ..
                }
            ),
            "{tail:x?}: {err}"
        );
    }
}

#[test]
fn s5_values_are_checked() {
    let mut g = qemu();
    g.put(
        DSDT,
        &table(
            b"DSDT",
            &[
                0x08, b'_', b'S', b'5', b'_', 0x12, 0x07, 0x04, 0x0a, 0x05, 0, 0, 0,
            ],
        ),
    );
    assert_eq!(g.parse().unwrap().poweroff.unwrap().slp_typa, 5);
    g.put(
        DSDT,
        &table(
            b"DSDT",
            &[
                0x08, b'_', b'S', b'5', b'_', 0x12, 0x07, 0x04, 0x0a, 0x09, 0, 0, 0,
            ],
        ),
    );
    assert!(matches!(g.parse(), Err(AcpiError::BadS5 { .. })));
    g.put(
        DSDT,
        &table(
            b"DSDT",
            &[
                0x08, b'_', b'S', b'5', b'_', 0x12, 0x07, 0x04, 0x0b, 0x09, 0,
            ],
        ),
    );
    assert!(matches!(g.parse(), Err(AcpiError::BadS5 { .. })));
    // `_S5_` not declared by a Name: not the object, so no power-off.
    g.put(
        DSDT,
        &table(
            b"DSDT",
            &[0x00, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0, 0, 0, 0],
        ),
    );
    assert_eq!(g.parse().unwrap().poweroff, None);
}

#[test]
fn s5_from_an_ssdt_when_the_dsdt_has_none() {
    let mut g = qemu();
    g.put(DSDT, &table(b"DSDT", &[0x5b, 0x80]));
    g.put(
        SSDT,
        &table(
            b"SSDT",
            &[
                0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0x01, 0, 0,
            ],
        ),
    );
    g.put(XSDT, &xsdt(&[FADT, MADT, SSDT]));
    assert_eq!(g.parse().unwrap().poweroff.unwrap().slp_typa, 1);
}

#[test]
fn fadt_too_short_for_pm1a_is_refused() {
    let mut g = qemu();
    let mut f = fadt(DSDT);
    f.truncate(60);
    set_len(&mut f, 60);
    g.put(FADT, &f);
    assert!(matches!(
        g.parse(),
        Err(AcpiError::FieldOutside {
            field: "PM1a_CNT_BLK",
            len: 60,
            ..
        })
    ));
}

#[test]
fn pm1a_outside_io_space_is_refused() {
    let mut g = qemu();
    let mut f = fadt(DSDT);
    f[172] = 1; // X_PM1a_CNT_BLK in system I/O space …
    f[176..184].copy_from_slice(&0x1_0000u64.to_le_bytes()); // … at a port above 16 bits.
    fix_checksum(&mut f, 9);
    g.put(FADT, &f);
    assert_eq!(g.parse(), Err(AcpiError::BadPm1aPort(0x1_0000)));
}

#[test]
fn dsdt_pointer_to_another_table_is_refused() {
    let mut g = qemu();
    g.put(FADT, &fadt(MADT));
    assert!(matches!(
        g.parse(),
        Err(AcpiError::BadSignature { expected: Some(Signature(s)), .. }) if &s == b"DSDT"
    ));
}

#[test]
fn ragged_xsdt_and_bad_rsdp_are_refused() {
    let mut g = qemu();
    let mut x = xsdt(&[FADT, MADT]);
    x.extend_from_slice(&[0; 4]);
    set_len(&mut x, (HEADER_LEN + 20) as u32);
    g.put(XSDT, &x);
    assert!(matches!(g.parse(), Err(AcpiError::RaggedRoot { .. })));

    let mut g = qemu();
    let mut r = rsdp_v2(XSDT);
    r[32] ^= 1;
    g.put(RSDP, &r);
    assert_eq!(
        g.parse(),
        Err(AcpiError::BadRsdp("extended checksum does not sum to zero"))
    );
    g.put(RSDP, b"RSD PTX ");
    assert!(matches!(g.parse(), Err(AcpiError::BadRsdp(_))));
    assert!(matches!(
        parse(&g, 0x1000),
        Err(AcpiError::Unreadable { .. })
    ));
}

#[test]
fn null_table_pointer_is_refused() {
    let mut g = qemu();
    g.put(XSDT, &xsdt(&[FADT, MADT, 0]));
    assert!(matches!(
        g.parse(),
        Err(AcpiError::Unreadable { address: 0, .. })
    ));
}

#[test]
fn a_second_malformed_madt_is_refused_for_its_entry() {
    // What the boot test injects (`cargo xtask acpi-refusal`): QEMU's MADT, then one whose first
    // entry has length 0. Hermit 0.11 panicked on the second MADT (`OnceCell::set(..).unwrap()`).
    let mut g = qemu();
    g.put(EXTRA, &madt_with(0xFEE0_0000, &[vec![0x7f, 0]]));
    assert_eq!(
        g.parse(),
        Err(AcpiError::BadMadtEntry {
            offset: 44,
            entry_type: 0x7f,
            len: 0
        })
    );
}

#[test]
fn every_ssdt_s5_is_checked_even_when_the_dsdt_has_one() {
    let mut g = qemu();
    g.put(SSDT, &table(b"SSDT", &[0x08, b'_', b'S', b'5', b'_', 0x12]));
    g.put(XSDT, &xsdt(&[FADT, MADT, SSDT]));
    assert!(matches!(g.parse(), Err(AcpiError::BadS5 { .. })));
}
