//! Tests of `vc.rs`: decoding real instruction bytes (as assemblers emit them).

use super::super::ghcb::{IoSize, exit_code};
use super::*;

use IoSize::{Byte, Dword, Word};
use exit_code::{CPUID, IOIO, MMIO_READ, MMIO_WRITE, MSR};

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

/// Registers with recognisable values (also for the emulation tests).
pub(super) fn regs() -> Regs {
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

#[test]
fn rdrand_and_rdseed_are_never_emulated() {
    // rdrand rax, rdseed rax, rdrand ecx, rdseed r15w: refused under every exit code this handler
    // knows, ones it does not (RDTSC, VMMCALL, none) and VMX's RDRAND/RDSEED exit reasons (57,
    // 61), before anything reaches the GHCB. The kernel terminates with PP_ENTROPY.
    let insns: &[&[u8]] = &[
        &[0x48, 0x0F, 0xC7, 0xF0],
        &[0x48, 0x0F, 0xC7, 0xF8],
        &[0x0F, 0xC7, 0xF1],
        &[0x66, 0x41, 0x0F, 0xC7, 0xFF],
    ];
    for bytes in insns {
        for exit in [
            CPUID, IOIO, MSR, EXIT_NPF, MMIO_READ, MMIO_WRITE, 0x6E, 0x81, 57, 61, 0,
        ] {
            assert_eq!(
                decode(bytes, exit),
                Err(VcError::Entropy),
                "{bytes:02x?} {exit:#x}"
            );
        }
    }
    // RDPID (F3 0F C7 /7) is another instruction: refused as unsupported.
    assert_eq!(
        decode(&[0xF3, 0x0F, 0xC7, 0xF8], MSR),
        Err(VcError::Unsupported)
    );
}
