//! Arbitrary bytes at RIP, under each #VC exit code: decoding must not panic, and an instruction
//! that decodes goes through `prepare` and `complete` (the GHCB as prepared, zeroed, and answered
//! with the fuzzer's bytes) without panicking, and `complete` either advances RIP or changes
//! nothing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_snp_guest::ghcb::{Field, Ghcb, exit_code};
use pp_snp_guest::vc::{Context, EXIT_NPF, MAX_INSN_LEN, Regs, complete, decode, prepare};

fuzz_target!(|data: &[u8]| {
    let (insn_bytes, rest) = data.split_at(data.len().min(MAX_INSN_LEN));
    // Register and answer values from the bytes after the instruction.
    let word = |i: usize| {
        rest.get(8 * i..8 * i + 8)
            .map_or(0x8877_6655_4433_2211 ^ i as u64, |b| {
                u64::from_le_bytes(b.try_into().unwrap_or_default())
            })
    };
    let exits = [
        exit_code::CPUID,
        exit_code::IOIO,
        exit_code::MSR,
        EXIT_NPF,
        exit_code::MMIO_READ,
        exit_code::MMIO_WRITE,
        0x6E,
        word(0),
    ];
    for exit in exits {
        let Ok(insn) = decode(insn_bytes, exit) else {
            continue;
        };
        assert!((1..=MAX_INSN_LEN).contains(&usize::from(insn.len)));
        let regs = Regs {
            rax: word(1),
            rbx: word(2),
            rcx: word(3),
            rdx: word(4),
            rip: word(5),
            ..Regs::default()
        };
        let _ = insn.effective_address(&regs, word(6));
        let ctx = Context {
            cpuid_page: None,
            xcr0: word(7),
            xss: word(8),
            cr4: word(11),
            ghcb_gpa: word(9),
            mmio_gpa: word(10),
        };
        // The GHCB as prepared (an error result), zeroed, and answered by a "hypervisor".
        for mode in 0..3 {
            let mut r = regs;
            let mut ghcb = Ghcb::new();
            if prepare(&insn, &mut r, &mut ghcb, &ctx).is_err() {
                continue;
            }
            if mode == 1 {
                ghcb = Ghcb::new();
            } else if mode == 2 {
                ghcb.set(Field::SwExitInfo1, word(11) & 0xFFFF_FFFF_0000_0000);
                let fields = [Field::Rax, Field::Rbx, Field::Rcx, Field::Rdx];
                for (i, f) in fields.into_iter().enumerate() {
                    ghcb.set(f, word(12 + i));
                }
                for (i, b) in ghcb.shared_buffer_mut().iter_mut().take(8).enumerate() {
                    *b = (word(16) >> (8 * i)) as u8;
                }
            }
            let before = r;
            match complete(&insn, &mut r, &ghcb) {
                Ok(()) => assert_eq!(r.rip, before.rip.wrapping_add(insn.len.into())),
                Err(_) => assert_eq!(r, before),
            }
        }
    }
});
