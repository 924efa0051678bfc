//! Tests of `vc.rs`: `prepare`/`complete` round trips against a GHCB filled the way a hypervisor
//! fills it.

use super::super::cpuid::CpuidPage;
use super::super::ghcb::{Field, Ghcb, GhcbError, IoSize, exit_code, ioio_exit_info};
use super::tests::regs;
use super::*;
use std::string::ToString;
use std::vec::Vec;

use IoSize::Byte;
use exit_code::{CPUID, IOIO, MMIO_READ, MMIO_WRITE, MSR};

const GHCB_GPA: u64 = 0x7_F000;
const MMIO_GPA: u64 = 0xFEE0_0030;

fn ctx(page: Option<CpuidPage<'_>>) -> Context<'_> {
    Context {
        cpuid_page: page,
        xcr0: 0b111,
        xss: 0,
        cr4: 1 << 18, // CR4.OSXSAVE, as the kernel sets it
        ghcb_gpa: GHCB_GPA,
        mmio_gpa: MMIO_GPA,
    }
}

/// The hypervisor's side: success, and the given fields marked valid.
fn answer(ghcb: &mut Ghcb, fields: &[(Field, u64)]) {
    ghcb.set(Field::SwExitInfo1, 0);
    ghcb.set(Field::SwExitInfo2, 0);
    for &(f, v) in fields {
        ghcb.set(f, v);
    }
}

/// Decodes, prepares, answers and completes; returns the registers and the prepared GHCB.
fn round_trip(
    bytes: &[u8],
    exit: u64,
    mut r: Regs,
    hv: &[(Field, u64)],
    shared: &[u8],
) -> (Regs, Ghcb) {
    let insn = decode(bytes, exit).unwrap();
    let mut ghcb = Ghcb::new();
    assert_eq!(
        prepare(&insn, &mut r, &mut ghcb, &ctx(None)),
        Ok(Step::Exit)
    );
    let prepared = ghcb.clone();
    answer(&mut ghcb, hv);
    ghcb.shared_buffer_mut()[..shared.len()].copy_from_slice(shared);
    let rip = r.rip;
    complete(&insn, &mut r, &ghcb).unwrap();
    assert_eq!(r.rip, rip + bytes.len() as u64);
    (r, prepared)
}

#[test]
fn port_io() {
    use Field::{Rax, SwExitCode, SwExitInfo1};
    let mut r = regs();
    r.rdx = 0xFFFF_0000_0000_03F8;
    // in al, 0x71: exit info = port, SZ8, IN; AL merged, the rest of RAX kept.
    let (out, g) = round_trip(&[0xE4, 0x71], IOIO, r, &[(Rax, 0xFFFF_FFAB)], &[]);
    assert_eq!(
        [g.raw(SwExitCode), g.raw(SwExitInfo1)],
        [IOIO, ioio_exit_info(0x71, Byte, IoDirection::In)]
    );
    assert_eq!(g.raw(SwExitInfo1), 0x0071_0011);
    assert_eq!(out.rax, 0x8877_6655_4433_22AB);
    assert_eq!(out.rdx, r.rdx);
    // in ax, dx: AX merged.
    let (out, g) = round_trip(&[0x66, 0xED], IOIO, r, &[(Rax, 0xABCD_1234)], &[]);
    assert_eq!(g.raw(SwExitInfo1), 0x03F8_0021);
    assert_eq!(out.rax, 0x8877_6655_4433_1234);
    // in eax, dx: zero-extended.
    let (out, _) = round_trip(&[0xED], IOIO, r, &[(Rax, 0x1_DEAD_BEEF)], &[]);
    assert_eq!(out.rax, 0xDEAD_BEEF);
    // out dx, ax: RAX truncated to the size; registers unchanged but RIP.
    let (out, g) = round_trip(&[0x66, 0xEF], IOIO, r, &[], &[]);
    assert_eq!([g.raw(SwExitInfo1), g.raw(Rax)], [0x03F8_0020, 0x2211]);
    assert_eq!(Regs { rip: r.rip, ..out }, r);
    let (_, g) = round_trip(&[0xE6, 0x80], IOIO, r, &[], &[]);
    assert_eq!([g.raw(SwExitInfo1), g.raw(Rax)], [0x0080_0010, 0x11]);
    // IN without RAX marked valid: an error, nothing written.
    let insn = decode(&[0xEC], IOIO).unwrap();
    let mut ghcb = Ghcb::new();
    let mut r2 = r;
    prepare(&insn, &mut r2, &mut ghcb, &ctx(None)).unwrap();
    answer(&mut ghcb, &[]);
    ghcb.clear();
    ghcb.set(Field::SwExitInfo1, 0);
    assert_eq!(
        complete(&insn, &mut r2, &ghcb),
        Err(VcError::Ghcb(GhcbError::NotValid(Rax)))
    );
    assert_eq!(r2, r);
}

#[test]
fn msrs() {
    use Field::{Rax, Rcx, Rdx, SwExitCode, SwExitInfo1};
    let mut r = regs();
    r.rcx = 0xFFFF_FFFF_C000_0080;
    let hv = [(Rax, 0xFFFF_FFFF_0000_0D01), (Rdx, 0x1234)];
    let (out, g) = round_trip(&[0x0F, 0x32], MSR, r, &hv, &[]);
    assert_eq!(
        [g.raw(SwExitCode), g.raw(SwExitInfo1), g.raw(Rcx)],
        [MSR, 0, 0xC000_0080]
    );
    assert_eq!([out.rax, out.rdx, out.rcx], [0xD01, 0x1234, r.rcx]);
    // wrmsr: EDX:EAX, the upper halves of RAX/RDX ignored; exit info 1 = 1.
    let (out, g) = round_trip(&[0x0F, 0x30], MSR, r, &[], &[]);
    let sent = [g.raw(SwExitInfo1), g.raw(Rcx), g.raw(Rax), g.raw(Rdx)];
    assert_eq!(sent, [1, 0xC000_0080, 0x4433_2211, 0xDDDD_DD0D]);
    assert_eq!(Regs { rip: r.rip, ..out }, r);
}

#[test]
fn mmio_reads() {
    use Field::{SwExitCode, SwExitInfo1, SwExitInfo2, SwScratch};
    let r = regs();
    let data = [0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18];
    // mov eax, [rbp+0x10]: 4 bytes, zero-extended.
    let (out, g) = round_trip(&[0x8B, 0x45, 0x10], EXIT_NPF, r, &[], &data);
    let exit = [
        g.raw(SwExitCode),
        g.raw(SwExitInfo1),
        g.raw(SwExitInfo2),
        g.raw(SwScratch),
    ];
    assert_eq!(exit, [MMIO_READ, MMIO_GPA, 4, GHCB_GPA + 0x800]);
    assert!(g.is_valid(SwScratch));
    assert_eq!(out.rax, 0xD4C3_B2A1);
    // mov rax, [..]: all 8.
    let (out, g) = round_trip(
        &[0x48, 0x8B, 0x04, 0x25, 0, 0, 0xE0, 0xFE],
        EXIT_NPF,
        r,
        &[],
        &data,
    );
    assert_eq!(g.raw(SwExitInfo2), 8);
    assert_eq!(out.rax, 0x1807_F6E5_D4C3_B2A1);
    // mov cx, [rax]: low word only.
    let (out, _) = round_trip(&[0x66, 0x8B, 0x08], EXIT_NPF, r, &[], &data);
    assert_eq!(out.rcx, 0x0CCC_CCCC_CCCC_B2A1);
    // mov al, [rax] and mov ah, [rax]: one byte, in place.
    let (out, _) = round_trip(&[0x8A, 0x00], EXIT_NPF, r, &[], &data);
    assert_eq!(out.rax, 0x8877_6655_4433_22A1);
    let (out, g) = round_trip(&[0x8A, 0x20], EXIT_NPF, r, &[], &data);
    assert_eq!(g.raw(SwExitInfo2), 1);
    assert_eq!(out.rax, 0x8877_6655_4433_A111);
    // mov dh, [rax] writes RDX bits 15:8, not RSI.
    let (out, _) = round_trip(&[0x8A, 0x30], EXIT_NPF, r, &[], &data);
    assert_eq!([out.rdx, out.rsi], [0x0DDD_DDDD_DDDD_A10D, 0]);
    // mov sil, [rax] (REX): RSI low byte.
    let (out, _) = round_trip(&[0x40, 0x8A, 0x30], EXIT_NPF, r, &[], &data);
    assert_eq!([out.rdx, out.rsi], [r.rdx, 0xA1]);
    // movzx ecx, byte [rax]: zero-extends to 64.
    let (out, _) = round_trip(&[0x0F, 0xB6, 0x08], EXIT_NPF, r, &[], &data);
    assert_eq!(out.rcx, 0xA1);
    // movzx cx, byte [rax]: 16-bit destination, the rest kept.
    let (out, _) = round_trip(&[0x66, 0x0F, 0xB6, 0x08], EXIT_NPF, r, &[], &data);
    assert_eq!(out.rcx, 0x0CCC_CCCC_CCCC_00A1);
    // movzx r9, word [rax].
    let (out, g) = round_trip(&[0x4C, 0x0F, 0xB7, 0x08], EXIT_NPF, r, &[], &data);
    assert_eq!(g.raw(SwExitInfo2), 2);
    assert_eq!(out.r9, 0xB2A1);
    // The destination RSP is refused before any exit.
    let insn = decode(&[0x8B, 0x20], EXIT_NPF).unwrap();
    let (mut r2, mut ghcb) = (r, Ghcb::new());
    assert_eq!(
        prepare(&insn, &mut r2, &mut ghcb, &ctx(None)),
        Err(VcError::Unsupported)
    );
    assert_eq!(ghcb.raw(SwExitCode), 0);
    assert_eq!(complete(&insn, &mut r2, &ghcb), Err(VcError::Unsupported));
    assert_eq!(r2, r);
}

#[test]
fn mmio_writes() {
    use Field::{SwExitCode, SwExitInfo1, SwExitInfo2, SwScratch};
    let r = regs();
    let written = |bytes: &[u8]| {
        let (out, g) = round_trip(bytes, EXIT_NPF, r, &[], &[]);
        assert_eq!(Regs { rip: r.rip, ..out }, r);
        assert_eq!(
            [g.raw(SwExitCode), g.raw(SwExitInfo1), g.raw(SwScratch)],
            [MMIO_WRITE, MMIO_GPA, GHCB_GPA + 0x800]
        );
        let n = g.raw(SwExitInfo2) as usize;
        // Only the size's bytes: the rest of the shared buffer stays zero.
        assert!(g.shared_buffer()[n..].iter().all(|&b| b == 0));
        g.shared_buffer()[..n].to_vec()
    };
    assert_eq!(written(&[0x41, 0x89, 0x11]), [0x0D, 0xDD, 0xDD, 0xDD]);
    assert_eq!(written(&[0x48, 0x89, 0x00]), r.rax.to_le_bytes());
    assert_eq!(written(&[0x66, 0x89, 0x08]), [0x0C, 0xCC]);
    assert_eq!(written(&[0x88, 0x20]), [0x22]);
    assert_eq!(written(&[0x88, 0x3F]), [0xBB]);
    assert_eq!(written(&[0x88, 0x18]), [0x0B]);
    assert_eq!(
        written(&[0xC7, 0x40, 0x04, 0x78, 0x56, 0x34, 0x12]),
        [0x78, 0x56, 0x34, 0x12]
    );
    assert_eq!(
        written(&[0x48, 0xC7, 0x00, 0xFE, 0xFF, 0xFF, 0xFF]),
        [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
    );
    assert_eq!(written(&[0x66, 0xC7, 0x00, 0xEF, 0xBE]), [0xEF, 0xBE]);
    assert_eq!(written(&[0xC6, 0x00, 0x80]), [0x80]);
    // mov [rax], rsp: RSP is not in the saved registers.
    let insn = decode(&[0x48, 0x89, 0x20], EXIT_NPF).unwrap();
    let mut r2 = r;
    assert_eq!(
        prepare(&insn, &mut r2, &mut Ghcb::new(), &ctx(None)),
        Err(VcError::Unsupported)
    );
}

/// A CPUID page as the firmware lays it out (cpuid.rs documents the format).
fn cpuid_page(entries: &[(u32, u32, u64, [u32; 4])]) -> Vec<u8> {
    let mut b = std::vec![0u8; 4096];
    b[0..4].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    for (i, (eax_in, ecx_in, xcr0_in, out)) in entries.iter().enumerate() {
        let e = &mut b[16 + 48 * i..16 + 48 * (i + 1)];
        e[0..4].copy_from_slice(&eax_in.to_le_bytes());
        e[4..8].copy_from_slice(&ecx_in.to_le_bytes());
        e[8..16].copy_from_slice(&xcr0_in.to_le_bytes());
        for (r, v) in out.iter().enumerate() {
            e[24 + 4 * r..28 + 4 * r].copy_from_slice(&v.to_le_bytes());
        }
    }
    b
}

#[test]
fn cpuid_from_page() {
    let bytes = cpuid_page(&[
        (0x0, 0, 0, [0xD, 0x6874_7541, 0x444D_4163, 0x6974_6E65]),
        (
            0x1,
            0,
            0,
            [0x00A0_0F11, 0x0080_0800, 0xFEDA_3203, 0x178B_FBFF],
        ),
        (0x7, 0, 0, [1, 0x219C_97A9, 0x0040_069C, 0]),
        (0xD, 0, 1, [0x7, 0x240, 0x340, 0]),
        (0x8000_0000, 0, 0, [0x8000_0021, 0, 0, 0]),
        (0x8000_001F, 0, 0, [0b1_1010, (1 << 6) | 51, 0, 0]),
    ]);
    let page = CpuidPage::parse(&bytes).unwrap();
    let insn = decode(&[0x0F, 0xA2], CPUID).unwrap();
    let run = |leaf: u64, subleaf: u64, xcr0: u64| {
        let mut r = Regs {
            rax: leaf,
            rcx: subleaf,
            ..regs()
        };
        r.rbx = u64::MAX;
        let mut ghcb = Ghcb::new();
        ghcb.set(Field::Rax, 5);
        let c = Context {
            xcr0,
            ..ctx(Some(page))
        };
        let step = prepare(&insn, &mut r, &mut ghcb, &c)?;
        assert_eq!(step, Step::Done);
        // No exit: the GHCB is left clear, and a stray `complete` fails.
        assert!(ghcb.as_bytes().iter().all(|&b| b == 0));
        let mut r2 = r;
        assert!(complete(&insn, &mut r2, &ghcb).is_err());
        assert_eq!(r.rip, regs().rip + 2);
        Ok::<_, VcError>([r.rax, r.rbx, r.rcx, r.rdx])
    };
    // The upper halves of RAX (leaf in EAX only) and the outputs are cleared.
    let one = Ok([0x00A0_0F11, 0x0080_0800, 0xFEDA_3203, 0x178B_FBFF]);
    assert_eq!(run(0xFFFF_FFFF_0000_0001, 0, 1), one);
    // In range but absent: zeros. Out of range: zeros too.
    assert_eq!(run(0x5, 0, 1), Ok([0; 4]));
    assert_eq!(run(0x8000_0021, 0, 1), Ok([0; 4]));
    assert_eq!(run(0xE, 0, 1), Ok([0; 4]));
    assert_eq!(run(0x4000_0000, 0, 1), Ok([0; 4]));
    // Leaf 0xD subleaf 0: EBX computed for XCR0 = x87|SSE; for AVX the page lacks subleaf 2.
    assert_eq!(run(0xD, 0, 0b11), Ok([0x7, 0x240, 0x340, 0]));
    assert_eq!(run(0xD, 0, 0b111), Err(VcError::CpuidPage));
}

#[test]
fn cpuid_through_ghcb() {
    use Field::{Rax, Rbx, Rcx, Rdx, SwExitCode, Xcr0, Xss};
    let r = Regs {
        rax: 0xFFFF_0000_8000_001F,
        rcx: 0xFFFF_0000_0000_0003,
        ..regs()
    };
    let hv = [
        (Rax, 0xFFFF_0000_0001_B01B),
        (Rbx, 0x4033),
        (Rcx, 0),
        (Rdx, 7),
    ];
    let (out, g) = round_trip(&[0x0F, 0xA2], CPUID, r, &hv, &[]);
    assert_eq!(
        [g.raw(SwExitCode), g.raw(Rax), g.raw(Rcx), g.raw(Xcr0)],
        [CPUID, 0x8000_001F, 3, 0b111]
    );
    assert!(!g.is_valid(Xss));
    assert_eq!(
        [out.rax, out.rbx, out.rcx, out.rdx],
        [0x0001_B01B, 0x4033, 0, 7]
    );
    // Leaf 0xD subleaf 1 also sends XSS.
    let r = Regs {
        rax: 0xD,
        rcx: 1,
        ..regs()
    };
    let insn = decode(&[0x0F, 0xA2], CPUID).unwrap();
    let mut ghcb = Ghcb::new();
    let mut r2 = r;
    let c = Context {
        xss: 1 << 11,
        ..ctx(None)
    };
    prepare(&insn, &mut r2, &mut ghcb, &c).unwrap();
    assert_eq!(ghcb.get(Xss), Ok(1 << 11));
    // An answer without RDX: an error, registers untouched.
    answer(&mut ghcb, &hv[..3]);
    assert_eq!(
        complete(&insn, &mut r2, &ghcb),
        Err(VcError::Ghcb(GhcbError::NotValid(Rdx)))
    );
    assert_eq!(r2, r);
}

#[test]
fn hypervisor_errors() {
    let r = regs();
    for (bytes, exit) in [
        (&[0xE4, 0x71][..], IOIO),
        (&[0x0F, 0x30], MSR),
        (&[0x89, 0x00], EXIT_NPF),
        (&[0x0F, 0xA2], CPUID),
    ] {
        let insn = decode(bytes, exit).unwrap();
        let mut ghcb = Ghcb::new();
        let mut r2 = r;
        prepare(&insn, &mut r2, &mut ghcb, &ctx(None)).unwrap();
        // #GP injection requested, then an invalid-input answer, then an unknown result.
        for (info_1, info_2) in [(1, 0x8000_0B0D), (2, 4), (3, 0)] {
            ghcb.set(Field::SwExitInfo1, info_1);
            ghcb.set(Field::SwExitInfo2, info_2);
            ghcb.set(Field::Rax, 0);
            let e = complete(&insn, &mut r2, &ghcb);
            assert!(matches!(e, Err(VcError::Ghcb(_))), "{bytes:02x?}: {e:?}");
            assert_eq!(r2, r);
        }
    }
}

#[test]
fn display() {
    let all = [
        VcError::Truncated,
        VcError::Unsupported,
        VcError::Mismatch,
        VcError::Ghcb(GhcbError::UnknownResult { code: 3 }),
        VcError::CpuidPage,
    ];
    let texts: Vec<_> = all.iter().map(ToString::to_string).collect();
    for (i, t) in texts.iter().enumerate() {
        assert!(t.starts_with("#VC: "));
        assert!(!texts[..i].contains(t));
    }
    assert_eq!(
        VcError::from(GhcbError::UnknownResult { code: 1 }),
        VcError::Ghcb(GhcbError::UnknownResult { code: 1 })
    );
}

#[test]
fn registers() {
    let mut r = Regs::default();
    for n in (0..16).filter(|&n| n != 4) {
        *r.gpr_mut(n).unwrap() = u64::from(n) + 100;
    }
    assert_eq!(
        [r.rax, r.rcx, r.rdx, r.rbx, r.rbp, r.rsi, r.rdi],
        [100, 101, 102, 103, 105, 106, 107]
    );
    assert_eq!([r.r8, r.r15], [108, 115]);
    assert_eq!((r.gpr(4), r.gpr(16), r.gpr(9)), (None, None, Some(109)));
}

#[test]
fn cpuid_from_the_page_reports_the_guests_own_cr4_bits() {
    // The table says OSXSAVE (leaf 1 ECX bit 27) is clear and OSPKE (leaf 7 ECX bit 4) is set;
    // CR4 says the opposite, and CR4 wins.
    assert_eq!(os_bits(1, 0, [0, 0, 0, 0], 1 << 18), [0, 0, 1 << 27, 0]);
    assert_eq!(os_bits(1, 0, [0, 0, 1 << 27, 0], 0), [0; 4]);
    assert_eq!(os_bits(7, 0, [0, 0, 1 << 4, 0], 0), [0; 4]);
    assert_eq!(os_bits(7, 0, [0, 0, 0, 0], 1 << 22), [0, 0, 1 << 4, 0]);
    assert_eq!(os_bits(7, 1, [0, 0, 1 << 4, 0], 0), [0, 0, 1 << 4, 0]);
    assert_eq!(os_bits(0xD, 0, [5, 6, 7, 8], u64::MAX), [5, 6, 7, 8]);
}
