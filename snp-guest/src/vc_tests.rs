//! Tests of `vc.rs`: real instruction bytes (as assemblers emit them), and `prepare`/`complete`
//! round trips against a GHCB filled the way a hypervisor fills it.

use super::super::cpuid::CpuidPage;
use super::super::ghcb::{Field, Ghcb, GhcbError, IoSize, exit_code, ioio_exit_info};
use super::*;
use std::string::ToString;
use std::vec::Vec;

use IoSize::{Byte, Dword, Word};
use exit_code::{CPUID, IOIO, MMIO_READ, MMIO_WRITE, MSR};

const GHCB_GPA: u64 = 0x7_F000;
const MMIO_GPA: u64 = 0xFEE0_0030;

fn ctx(page: Option<CpuidPage<'_>>) -> Context<'_> {
    Context {
        cpuid_page: page,
        xcr0: 0b111,
        xss: 0,
        ghcb_gpa: GHCB_GPA,
        mmio_gpa: MMIO_GPA,
    }
}

fn op(bytes: &[u8], exit: u64) -> (u8, Op) {
    let i = decode(bytes, exit).unwrap_or_else(|e| panic!("{bytes:02x?}: {e:?}"));
    (i.len, i.op)
}

fn mem(base: Option<u8>, index: Option<u8>, scale: u8, disp: i32) -> Option<MemOperand> {
    let rip_relative = false;
    Some(MemOperand {
        base,
        index,
        scale,
        disp,
        rip_relative,
    })
}

/// Registers with recognisable values: register n holds 0x1111_1111_1111_1111 * (n + 1)-ish.
fn regs() -> Regs {
    Regs {
        rax: 0x8877_6655_4433_2211,
        rbx: 0x0BBB_BBBB_BBBB_BB0B,
        rcx: 0x0CCC_CCCC_CCCC_CC0C,
        rdx: 0x0DDD_DDDD_DDDD_DD0D,
        rbp: 0x1000,
        r9: 0x2000,
        rip: 0x40_0000,
        ..Regs::default()
    }
}

#[test]
fn decodes_mmio() {
    let gpr = |n| MmioSource::Reg(Reg::Gpr(n));
    let read = |n, size| Op::MmioRead {
        reg: Reg::Gpr(n),
        size,
        dest_size: size,
    };
    let cases: &[(&[u8], u8, Op)] = &[
        // mov eax, [rbp+0x10]
        (&[0x8B, 0x45, 0x10], 3, read(0, 4)),
        // mov rax, [0xfee00000] (SIB, no base, no index, disp32)
        (
            &[0x48, 0x8B, 0x04, 0x25, 0x00, 0x00, 0xE0, 0xFE],
            8,
            read(0, 8),
        ),
        // mov [r9], edx
        (
            &[0x41, 0x89, 0x11],
            3,
            Op::MmioWrite {
                source: gpr(2),
                size: 4,
            },
        ),
        // mov [rax], cx
        (
            &[0x66, 0x89, 0x08],
            3,
            Op::MmioWrite {
                source: gpr(1),
                size: 2,
            },
        ),
        // mov [rax], ah
        (
            &[0x88, 0x20],
            2,
            Op::MmioWrite {
                source: MmioSource::Reg(Reg::HighByte(0)),
                size: 1,
            },
        ),
        // mov [rax], spl (REX: not AH)
        (
            &[0x40, 0x88, 0x20],
            3,
            Op::MmioWrite {
                source: gpr(4),
                size: 1,
            },
        ),
        // mov bh, [rax]
        (
            &[0x8A, 0x38],
            2,
            Op::MmioRead {
                reg: Reg::HighByte(3),
                size: 1,
                dest_size: 1,
            },
        ),
        // mov r15b, [rax]
        (
            &[0x44, 0x8A, 0x38],
            3,
            Op::MmioRead {
                reg: Reg::Gpr(15),
                size: 1,
                dest_size: 1,
            },
        ),
        // mov dword [rax+4], 0x12345678
        (
            &[0xC7, 0x40, 0x04, 0x78, 0x56, 0x34, 0x12],
            7,
            Op::MmioWrite {
                source: MmioSource::Imm(0x1234_5678),
                size: 4,
            },
        ),
        // mov qword [rax], -2 (imm32 sign-extended)
        (
            &[0x48, 0xC7, 0x00, 0xFE, 0xFF, 0xFF, 0xFF],
            7,
            Op::MmioWrite {
                source: MmioSource::Imm(u64::MAX - 1),
                size: 8,
            },
        ),
        // mov word [rax], 0xBEEF
        (
            &[0x66, 0xC7, 0x00, 0xEF, 0xBE],
            5,
            Op::MmioWrite {
                source: MmioSource::Imm(0xBEEF),
                size: 2,
            },
        ),
        // mov byte [rax], 0x80
        (
            &[0xC6, 0x00, 0x80],
            3,
            Op::MmioWrite {
                source: MmioSource::Imm(0x80),
                size: 1,
            },
        ),
        // movzx ecx, byte [rax]
        (
            &[0x0F, 0xB6, 0x08],
            3,
            Op::MmioRead {
                reg: Reg::Gpr(1),
                size: 1,
                dest_size: 4,
            },
        ),
        // movzx r10, word [rax] (REX.W R)
        (
            &[0x4C, 0x0F, 0xB7, 0x10],
            4,
            Op::MmioRead {
                reg: Reg::Gpr(10),
                size: 2,
                dest_size: 8,
            },
        ),
        // movzx ax, byte [rax]
        (
            &[0x66, 0x0F, 0xB6, 0x00],
            4,
            Op::MmioRead {
                reg: Reg::Gpr(0),
                size: 1,
                dest_size: 2,
            },
        ),
        // mov eax, [rip+0x1234]
        (&[0x8B, 0x05, 0x34, 0x12, 0x00, 0x00], 6, read(0, 4)),
        // mov eax, [rbx+rcx*4+0x11223344]
        (&[0x8B, 0x84, 0x8B, 0x44, 0x33, 0x22, 0x11], 7, read(0, 4)),
        // mov eax, [r13+0] (mod 01: r13 needs a displacement)
        (&[0x41, 0x8B, 0x45, 0x00], 4, read(0, 4)),
        // mov eax, [rsp+8]
        (&[0x8B, 0x44, 0x24, 0x08], 4, read(0, 4)),
        // ds: mov eax, [rax] (segment override ignored)
        (&[0x3E, 0x8B, 0x00], 3, read(0, 4)),
        // mov rax, [r12+r12*2] (REX.X: index 12 is r12, not "none")
        (&[0x4F, 0x8B, 0x04, 0x64], 4, read(8, 8)),
    ];
    for &(bytes, len, expected) in cases {
        for exit in [
            EXIT_NPF,
            if matches!(expected, Op::MmioRead { .. }) {
                MMIO_READ
            } else {
                MMIO_WRITE
            },
        ] {
            assert_eq!(op(bytes, exit), (len, expected), "{bytes:02x?}");
        }
    }
}

#[test]
fn memory_operands() {
    let m = |bytes: &[u8]| decode(bytes, EXIT_NPF).unwrap().mem;
    assert_eq!(m(&[0x8B, 0x45, 0x10]), mem(Some(5), None, 1, 0x10));
    assert_eq!(
        m(&[0x8B, 0x04, 0x25, 0x00, 0x00, 0xE0, 0xFE]),
        mem(None, None, 1, 0xFEE0_0000u32 as i32)
    );
    assert_eq!(m(&[0x41, 0x89, 0x11]), mem(Some(9), None, 1, 0));
    assert_eq!(
        m(&[0x8B, 0x84, 0x8B, 0x44, 0x33, 0x22, 0x11]),
        mem(Some(3), Some(1), 4, 0x1122_3344)
    );
    assert_eq!(m(&[0x4F, 0x8B, 0x04, 0x64]), mem(Some(12), Some(12), 2, 0));
    assert_eq!(m(&[0x8B, 0x44, 0x24, 0xF8]), mem(Some(4), None, 1, -8));
    // SIB base 101 with mod 00 and REX.B: still no base.
    assert_eq!(
        m(&[0x41, 0x8B, 0x04, 0x25, 1, 0, 0, 0]),
        mem(None, None, 1, 1)
    );
    let rip = decode(&[0x8B, 0x05, 0xFC, 0xFF, 0xFF, 0xFF], EXIT_NPF).unwrap();
    assert!(
        rip.mem
            .is_some_and(|m| m.rip_relative && m.base.is_none() && m.disp == -4)
    );

    let r = regs();
    let ea = |bytes: &[u8]| {
        decode(bytes, EXIT_NPF)
            .unwrap()
            .effective_address(&r, 0x9000)
    };
    assert_eq!(ea(&[0x8B, 0x45, 0x10]), Some(0x1010));
    assert_eq!(
        ea(&[0x48, 0x8B, 0x04, 0x25, 0x00, 0x00, 0xE0, 0xFE]),
        Some(0xFFFF_FFFF_FEE0_0000)
    );
    assert_eq!(ea(&[0x41, 0x89, 0x11]), Some(0x2000));
    // RIP-relative: from the end of the instruction (6 bytes).
    assert_eq!(ea(&[0x8B, 0x05, 0xFC, 0xFF, 0xFF, 0xFF]), Some(0x40_0002));
    // With an immediate, the end includes it: mov dword [rip+0x10], 1 is 10 bytes.
    assert_eq!(
        ea(&[0xC7, 0x05, 0x10, 0, 0, 0, 1, 0, 0, 0]),
        Some(0x40_001A)
    );
    assert_eq!(ea(&[0x8B, 0x44, 0x24, 0xF8]), Some(0x8FF8));
    let sib = r.rbx.wrapping_add(r.rcx * 4).wrapping_add(0x1122_3344);
    assert_eq!(ea(&[0x8B, 0x84, 0x8B, 0x44, 0x33, 0x22, 0x11]), Some(sib));
    assert_eq!(
        Insn {
            len: 2,
            op: Op::Cpuid,
            mem: None
        }
        .effective_address(&r, 0),
        None
    );
}

#[test]
fn decodes_io_cpuid_msr() {
    use PortSource::{Dx, Imm};
    assert_eq!(
        op(&[0xE4, 0x71], IOIO),
        (
            2,
            Op::In {
                port: Imm(0x71),
                size: Byte
            }
        )
    );
    assert_eq!(
        op(&[0xE5, 0x60], IOIO),
        (
            2,
            Op::In {
                port: Imm(0x60),
                size: Dword
            }
        )
    );
    assert_eq!(
        op(&[0x66, 0xE5, 0x60], IOIO),
        (
            3,
            Op::In {
                port: Imm(0x60),
                size: Word
            }
        )
    );
    assert_eq!(
        op(&[0xEC], IOIO),
        (
            1,
            Op::In {
                port: Dx,
                size: Byte
            }
        )
    );
    assert_eq!(
        op(&[0xED], IOIO),
        (
            1,
            Op::In {
                port: Dx,
                size: Dword
            }
        )
    );
    assert_eq!(
        op(&[0xE6, 0x80], IOIO),
        (
            2,
            Op::Out {
                port: Imm(0x80),
                size: Byte
            }
        )
    );
    assert_eq!(
        op(&[0x66, 0xE7, 0x80], IOIO),
        (
            3,
            Op::Out {
                port: Imm(0x80),
                size: Word
            }
        )
    );
    assert_eq!(
        op(&[0xEE], IOIO),
        (
            1,
            Op::Out {
                port: Dx,
                size: Byte
            }
        )
    );
    assert_eq!(
        op(&[0x66, 0xEF], IOIO),
        (
            2,
            Op::Out {
                port: Dx,
                size: Word
            }
        )
    );
    assert_eq!(
        op(&[0xEF], IOIO),
        (
            1,
            Op::Out {
                port: Dx,
                size: Dword
            }
        )
    );
    // REX.W does not make IN/OUT 64-bit, and overrides 66.
    assert_eq!(
        op(&[0x66, 0x48, 0xEF], IOIO),
        (
            3,
            Op::Out {
                port: Dx,
                size: Dword
            }
        )
    );
    assert_eq!(op(&[0x0F, 0xA2], CPUID), (2, Op::Cpuid));
    assert_eq!(op(&[0x0F, 0x32], MSR), (2, Op::Rdmsr));
    assert_eq!(op(&[0x0F, 0x30], MSR), (2, Op::Wrmsr));
    assert_eq!(op(&[0x48, 0x0F, 0x30], MSR), (3, Op::Wrmsr));
    // Trailing bytes (the next instructions) are not part of it.
    assert_eq!(op(&[0x0F, 0xA2, 0x90, 0x90], CPUID), (2, Op::Cpuid));
}

/// Every valid sequence of the tests, cut short at every length, is `Truncated`.
#[test]
fn truncated_at_every_length() {
    let cases: &[(&[u8], u64)] = &[
        (&[0x8B, 0x45, 0x10], EXIT_NPF),
        (&[0x48, 0x8B, 0x04, 0x25, 0x00, 0x00, 0xE0, 0xFE], EXIT_NPF),
        (&[0x8B, 0x84, 0x8B, 0x44, 0x33, 0x22, 0x11], EXIT_NPF),
        (&[0x66, 0xC7, 0x40, 0x04, 0xEF, 0xBE], EXIT_NPF),
        (&[0x48, 0xC7, 0x05, 1, 2, 3, 4, 5, 6, 7, 8], EXIT_NPF),
        (&[0x3E, 0x4C, 0x0F, 0xB7, 0x10], EXIT_NPF),
        (&[0x8B, 0x05, 0x34, 0x12, 0x00, 0x00], EXIT_NPF),
        (&[0x66, 0xE5, 0x60], IOIO),
        (&[0x66, 0xEF], IOIO),
        (&[0x48, 0x0F, 0xA2], CPUID),
        (&[0x0F, 0x32], MSR),
    ];
    for &(bytes, exit) in cases {
        assert_eq!(decode(bytes, exit).map(|i| i.len as usize), Ok(bytes.len()));
        for n in 0..bytes.len() {
            assert_eq!(
                decode(&bytes[..n], exit),
                Err(VcError::Truncated),
                "{:02x?}",
                &bytes[..n]
            );
        }
    }
}

#[test]
fn mismatches() {
    for (bytes, exit) in [
        (&[0x0F, 0xA2][..], IOIO),
        (&[0x0F, 0xA2], MSR),
        (&[0x0F, 0x32], CPUID),
        (&[0xEC], CPUID),
        (&[0xEC], EXIT_NPF),
        (&[0x8B, 0x00], IOIO),
        // A read reported as an MMIO write, and the reverse.
        (&[0x8B, 0x00], MMIO_WRITE),
        (&[0x89, 0x00], MMIO_READ),
        (&[0xC6, 0x00, 1], MMIO_READ),
        (&[0x0F, 0xB6, 0x00], MMIO_WRITE),
    ] {
        assert_eq!(
            decode(bytes, exit),
            Err(VcError::Mismatch),
            "{bytes:02x?} {exit:#x}"
        );
    }
}

#[test]
fn unsupported() {
    for (bytes, exit) in [
        // Exit codes not handled here: RDTSC, VMMCALL, DR7 write.
        (&[0x0F, 0x31][..], 0x6E),
        (&[0x0F, 0x01, 0xD9], 0x81),
        (&[0x0F, 0xA2], 0x37),
        // String I/O, with and without REP.
        (&[0x6C], IOIO),
        (&[0x6F], IOIO),
        (&[0xF3, 0x6E], IOIO),
        (&[0xF3, 0x66, 0x6D], IOIO),
        // Prefixes: LOCK, REP, FS, GS, address size, 66 or a segment on CPUID/MSR.
        (&[0xF0, 0x89, 0x00], EXIT_NPF),
        (&[0xF3, 0x8B, 0x00], EXIT_NPF),
        (&[0xF2, 0x8B, 0x00], EXIT_NPF),
        (&[0x64, 0x8B, 0x00], EXIT_NPF),
        (&[0x65, 0x48, 0x8B, 0x04, 0x25, 0, 0, 0, 0], EXIT_NPF),
        (&[0x67, 0x8B, 0x00], EXIT_NPF),
        (&[0x66, 0x0F, 0xA2], CPUID),
        (&[0x2E, 0x0F, 0x32], MSR),
        (&[0xF3, 0x0F, 0xA2], CPUID),
        // A prefix after REX, two REX.
        (&[0x48, 0x66, 0x8B, 0x00], EXIT_NPF),
        (&[0x48, 0x41, 0x8B, 0x00], EXIT_NPF),
        // Register operands (mod 11): no memory access.
        (&[0x89, 0xC0], EXIT_NPF),
        (&[0x8B, 0xC1], EXIT_NPF),
        (&[0x0F, 0xB6, 0xC1], EXIT_NPF),
        // C6/C7 other than /0, other opcodes (MOVSX, MOVS, MOV moffs, ADD).
        (&[0xC7, 0x48, 0x04, 1, 0, 0, 0], EXIT_NPF),
        (&[0xC6, 0xF8, 0x00], EXIT_NPF),
        (&[0x0F, 0xBE, 0x00], EXIT_NPF),
        (&[0xA5], EXIT_NPF),
        (&[0xA1, 0, 0, 0, 0, 0, 0, 0, 0], EXIT_NPF),
        (&[0x01, 0x00], EXIT_NPF),
        (&[0x0F, 0x0B], CPUID),
    ] {
        assert_eq!(
            decode(bytes, exit),
            Err(VcError::Unsupported),
            "{bytes:02x?} {exit:#x}"
        );
    }
    // Longer than 15 bytes: unsupported even though more bytes are given; 15 is fine.
    let mut long = [0x66u8; 20];
    long[15..18].copy_from_slice(&[0x89, 0x45, 0x10]);
    assert_eq!(decode(&long, EXIT_NPF), Err(VcError::Unsupported));
    assert_eq!(decode(&long[3..], EXIT_NPF).map(|i| i.len), Ok(15));
    // The exit code is checked first.
    assert_eq!(decode(&[], 0x6E), Err(VcError::Unsupported));
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
