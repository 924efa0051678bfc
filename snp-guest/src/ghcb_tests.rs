//! Tests of `ghcb.rs`, values worked out from the GHCB specification.

use super::super::msr::TerminationReason;
use super::*;
use Field::*;
use GuestRequestError as Gre;
use IoDirection::*;
use IoSize::*;
use std::string::ToString;

/// Several fields, read as the hypervisor left them.
fn raws<const N: usize>(g: &Ghcb, fields: [Field; N]) -> [u64; N] {
    fields.map(|f| g.raw(f))
}

#[test]
fn layout() {
    let mut g = Ghcb::new();
    g.set(Rax, 0x1122_3344_5566_7788);
    let b = g.as_bytes();
    assert_eq!(b[0x1F8..0x200], 0x1122_3344_5566_7788u64.to_le_bytes());
    // 0x1F8 / 8 = 63: byte 0x3F0 + 7, bit 7.
    assert_eq!(b[0x3F7], 0x80);
    assert_eq!(b.iter().filter(|&&x| x != 0).count(), 9);
    for (field, off) in [
        (Cpl, 0x0CB),
        (Xss, 0x140),
        (Dr7, 0x160),
        (Rcx, 0x308),
        (Rdx, 0x310),
        (Rbx, 0x318),
        (SwExitCode, 0x390),
        (SwExitInfo1, 0x398),
        (SwExitInfo2, 0x3A0),
        (SwScratch, 0x3A8),
        (Xcr0, 0x3E8),
    ] {
        let mut g = Ghcb::new();
        g.set(field, 0xA5);
        let b = g.as_bytes();
        assert_eq!(b[off], 0xA5, "{field:?}");
        assert_eq!(b[0x3F0 + off / 64], 1 << ((off / 8) % 8), "{field:?}");
        assert_eq!(g.get(field), Ok(0xA5));
    }
    // CPL is one byte: quadword 25, byte 0x3F3 bit 1.
    assert_eq!(Cpl.valid_bit(), 25);
    let mut g = Ghcb::new();
    g.set_exit(exit_code::CPUID, 0, 0);
    let b = g.as_bytes();
    assert_eq!(b[0xFFA..0x1000], [2, 0, 0, 0, 0, 0]);
    assert_eq!((g.protocol_version(), g.usage()), (2, 0));
    assert_eq!(Ghcb::from_bytes(&b).as_bytes(), b);
    assert_eq!(Ghcb::shared_buffer_gpa(0x7_F000), 0x7_F800);
}

#[test]
fn clear() {
    let mut g = Ghcb::from_bytes(&[0xFF; GHCB_SIZE]);
    g.clear_save_area();
    assert!(g.as_bytes()[..0x800].iter().all(|&b| b == 0));
    assert!(g.shared_buffer().iter().all(|&b| b == 0xFF));
    assert!(g.as_bytes()[0xFF0..].iter().all(|&b| b == 0));
    g.clear();
    assert!(g.as_bytes().iter().all(|&b| b == 0));
    assert_eq!(g.get(Rax), Err(GhcbError::NotValid(Rax)));
}

#[test]
fn responses() {
    let mut g = Ghcb::new();
    g.prepare_cpuid(0x8000_001F, 0, 1);
    assert_eq!(
        raws(&g, [SwExitCode, Rax, Rcx, Xcr0]),
        [0x72, 0x8000_001F, 0, 1]
    );
    // The hypervisor answers (setting valid bits), but not RBX.
    assert_eq!(g.cpuid_result(), Err(GhcbError::NotValid(Rbx)));
    for (f, v) in [(Rax, 0x1B), (Rbx, 0x4033), (Rcx, 0), (Rdx, 0)] {
        g.set(f, v);
    }
    assert_eq!(g.cpuid_result(), Ok([0x1B, 0x4033, 0, 0]));
    // #GP (vector 13, exception, error code 0 valid, valid).
    g.set(SwExitInfo1, 1);
    g.set(SwExitInfo2, 0x8000_0B0D);
    let Err(GhcbError::Exception(ev)) = g.check_response() else {
        panic!()
    };
    let decoded = (ev.vector(), ev.kind(), ev.error_code(), ev.valid());
    assert_eq!(decoded, (13, 3, Some(0), true));
    g.set(SwExitInfo1, 2);
    g.set(SwExitInfo2, input_error::MISSING_INPUT);
    let invalid = GhcbError::InvalidInput { reason: 4 };
    assert_eq!(g.check_response(), Err(invalid));
    // Only the low 32 bits are the result.
    g.set(SwExitInfo1, 0xFFFF_FFFF_0000_0000);
    assert_eq!(g.check_response(), Ok(()));
    g.set(SwExitInfo1, 3);
    let unknown = GhcbError::UnknownResult { code: 3 };
    assert_eq!(g.check_response(), Err(unknown));
    assert!(!unknown.to_string().is_empty());
}

#[test]
fn ioio() {
    // IN AL, 0x60: TYPE | SZ8 | port << 16.
    assert_eq!(ioio_exit_info(0x60, Byte, In), 0x0060_0011);
    // OUT DX=0x3F8, AX: SZ16.
    assert_eq!(ioio_exit_info(0x3F8, Word, Out), 0x03F8_0020);
    // OUT 0xCF8, EAX: SZ32.
    assert_eq!(ioio_exit_info(0xCF8, Dword, Out), 0x0CF8_0040);
    assert_eq!(ioio_exit_info(0xFFFF, Dword, In), 0xFFFF_0041);
    let mut g = Ghcb::new();
    g.prepare_io(0x3F8, Byte, Out, 0x1234);
    assert_eq!(
        raws(&g, [SwExitCode, SwExitInfo1, Rax]),
        [0x7B, 0x03F8_0010, 0x34]
    );
    g.prepare_io(0x60, Byte, In, 0);
    assert_eq!(g.raw(Rax), 0);
    g.set(SwExitInfo1, 0);
    g.set(Rax, 0xABCD);
    assert_eq!(g.io_in_result(Byte), Ok(0xCD));
}

#[test]
fn msr() {
    let mut g = Ghcb::new();
    g.prepare_msr_write(0xC000_0080, 0x1122_3344_5566_7788);
    let regs = raws(&g, [SwExitCode, SwExitInfo1, Rcx, Rax, Rdx]);
    assert_eq!(regs, [0x7C, 1, 0xC000_0080, 0x5566_7788, 0x1122_3344]);
    g.prepare_msr_read(0x10);
    assert_eq!(raws(&g, [SwExitInfo1, Rcx]), [0, 0x10]);
    assert!(!g.is_valid(Rax));
    g.set(Rax, 0xFFFF_FFFF_0000_0001);
    assert_eq!(g.msr_read_result(), Err(GhcbError::NotValid(Rdx)));
    g.set(Rdx, 2);
    assert_eq!(g.msr_read_result(), Ok(0x2_0000_0001));
}

#[test]
fn guest_requests() {
    let mut g = Ghcb::new();
    g.prepare_guest_request(exit_code::SNP_GUEST_REQUEST, 0x1000, 0x2000);
    let exit = raws(&g, [SwExitCode, SwExitInfo1, SwExitInfo2]);
    assert_eq!(exit, [0x8000_0011, 0x1000, 0x2000]);
    g.set(SwExitInfo1, 0);
    for (info_2, result) in [
        (0, Ok(())),
        (0x16, Err(Gre::Firmware { code: 0x16 })),
        (0x0000_0002_0000_0000, Err(Gre::Busy)),
        (0x0000_0001_0000_0000, Err(Gre::Hypervisor { code: 1 })),
        (0x0000_0007_0000_0016, Err(Gre::Hypervisor { code: 7 })),
    ] {
        g.set(SwExitInfo2, info_2);
        assert_eq!(g.guest_request_result(), result);
    }

    g.prepare_ext_guest_request(0x1000, 0x2000, 0x10_0000, 4);
    assert_eq!(
        raws(&g, [SwExitCode, Rax, Rbx]),
        [0x8000_0012, 0x10_0000, 4]
    );
    g.set(SwExitInfo1, 0);
    g.set(SwExitInfo2, 0x0000_0001_0000_0000);
    g.set(Rbx, 9);
    let too_small = Err(Gre::InvalidLength { pages: 9 });
    assert_eq!(g.ext_guest_request_result(), too_small);
    g.clear();
    g.set(SwExitInfo2, 0x0000_0001_0000_0000);
    let no_rbx = Err(Gre::Ghcb(GhcbError::NotValid(Rbx)));
    assert_eq!(g.ext_guest_request_result(), no_rbx);
    g.set(SwExitInfo1, 2);
    assert!(matches!(g.ext_guest_request_result(), Err(Gre::Ghcb(_))));
    assert!(!Gre::Busy.to_string().is_empty());
}

#[test]
fn psc_and_termination() {
    let mut g = Ghcb::new();
    g.shared_buffer_mut()[0] = 7;
    g.set(Rax, 1);
    g.prepare_psc(0x12_3000);
    assert_eq!(g.shared_buffer()[0], 7);
    assert!(!g.is_valid(Rax));
    assert_eq!(raws(&g, [SwExitCode, SwScratch]), [0x8000_0010, 0x12_3800]);
    g.prepare_termination(TerminationReason::PP_GUEST_REQUEST);
    assert_eq!(raws(&g, [SwExitCode, SwExitInfo1]), [0x8000_FFFE, 0x41]);
}
