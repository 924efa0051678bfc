//! Tests of `entropy.rs`: retry bounds, fallback, health tests, and the instruction decoder, with
//! scripted instructions.

use super::*;

/// A good source: SplitMix64 (well-distributed words, never the same twice in a row).
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Instructions scripted by a closure; counts reads per source and backoffs.
struct Script<F: FnMut(Source, u32) -> Option<u64>> {
    f: F,
    reads: [u32; 2],
    backoffs: u32,
}

impl<F: FnMut(Source, u32) -> Option<u64>> Script<F> {
    fn new(f: F) -> Self {
        Self {
            f,
            reads: [0; 2],
            backoffs: 0,
        }
    }
}

impl<F: FnMut(Source, u32) -> Option<u64>> Hardware for Script<F> {
    /// The closure sees the source and how often that source was read before.
    fn read(&mut self, source: Source) -> Option<u64> {
        let n = &mut self.reads[source as usize];
        *n += 1;
        (self.f)(source, *n - 1)
    }
    fn backoff(&mut self) {
        self.backoffs += 1;
    }
}

fn good() -> impl FnMut(Source, u32) -> Option<u64> {
    let mut state = 1;
    move |_, _| Some(splitmix(&mut state))
}

const STARTUP: u32 = STARTUP_WORDS as u32;

#[test]
fn good_source_passes_startup_then_serves() {
    let mut hw = Script::new(good());
    let mut e = Entropy::new();
    assert!(!e.ready());
    e.startup(&mut hw).unwrap();
    assert!(e.ready());
    assert_eq!(hw.reads, [STARTUP, STARTUP]);
    let mut buf = [0u8; 4099];
    e.fill(&mut hw, &mut buf).unwrap();
    // 513 words, all from RDSEED; the tail of the last one is dropped.
    assert_eq!(hw.reads, [STARTUP + 513, STARTUP]);
    assert!(buf[4096..].iter().any(|&b| b != 0));
    // A second startup does nothing.
    e.startup(&mut hw).unwrap();
    assert_eq!(hw.reads, [STARTUP + 513, STARTUP]);
}

#[test]
fn startup_runs_before_the_first_word() {
    let mut hw = Script::new(good());
    let mut e = Entropy::new();
    e.word(&mut hw).unwrap();
    assert_eq!(hw.reads, [STARTUP + 1, STARTUP]);
}

#[test]
fn stuck_source_is_refused_for_good() {
    let mut hw = Script::new(|_, _| Some(0x0123_4567_89AB_CDEF));
    let mut e = Entropy::new();
    assert_eq!(e.startup(&mut hw), Err(Failure::Stuck(Source::Rdseed)));
    assert!(!e.ready());
    // Latched: no value ever comes out, and the hardware is not asked again.
    let reads = hw.reads;
    assert_eq!(e.word(&mut hw), Err(Failure::Stuck(Source::Rdseed)));
    let mut buf = [0u8; 8];
    assert!(e.fill(&mut hw, &mut buf).is_err());
    assert_eq!(buf, [0; 8]);
    assert_eq!(hw.reads, reads);
}

#[test]
fn source_stuck_after_startup_is_refused() {
    let mut state = 7;
    let mut hw = Script::new(move |_, n| Some(if n < 200 { splitmix(&mut state) } else { 42 }));
    let mut e = Entropy::new();
    e.startup(&mut hw).unwrap();
    let mut served = 0;
    let err = loop {
        match e.word(&mut hw) {
            Ok(_) => served += 1,
            Err(f) => break f,
        }
    };
    assert_eq!(err, Failure::Stuck(Source::Rdseed));
    // 200 - 128 good words, then 42 once (a new value), then 42 again is refused.
    assert_eq!(served, 200 - STARTUP + 1);
    assert!(!e.ready());
}

#[test]
fn flaky_rdseed_is_retried_within_its_bound() {
    // Every word needs RDSEED_ATTEMPTS attempts: the last attempt delivers.
    let mut state = 3;
    let mut hw = Script::new(move |source, n| match source {
        Source::Rdseed if n % RDSEED_ATTEMPTS != RDSEED_ATTEMPTS - 1 => None,
        _ => Some(splitmix(&mut state)),
    });
    let mut e = Entropy::new();
    let mut buf = [0u8; 64];
    e.fill(&mut hw, &mut buf).unwrap();
    assert_eq!(hw.reads, [(STARTUP + 8) * RDSEED_ATTEMPTS, STARTUP]);
    assert_eq!(hw.backoffs, (STARTUP + 8) * (RDSEED_ATTEMPTS - 1));
}

#[test]
fn dry_rdseed_falls_back_to_rdrand() {
    let mut state = 5;
    let mut hw = Script::new(move |source, n| match source {
        Source::Rdseed if n >= STARTUP => None,
        // RDRAND needs a few attempts too.
        Source::Rdrand if n >= STARTUP && (n - STARTUP) % 3 != 2 => None,
        _ => Some(splitmix(&mut state)),
    });
    let mut e = Entropy::new();
    e.startup(&mut hw).unwrap();
    for _ in 0..10 {
        e.word(&mut hw).unwrap();
    }
    assert_eq!(hw.reads, [STARTUP + 10 * RDSEED_ATTEMPTS, STARTUP + 10 * 3]);
}

#[test]
fn exhausted_retries_are_refused() {
    let mut state = 9;
    let mut hw = Script::new(move |_, n| (n < STARTUP).then(|| splitmix(&mut state)));
    let mut e = Entropy::new();
    e.startup(&mut hw).unwrap();
    assert_eq!(e.word(&mut hw), Err(Failure::BothExhausted));
    assert_eq!(
        hw.reads,
        [STARTUP + RDSEED_ATTEMPTS, STARTUP + RDRAND_ATTEMPTS]
    );
    assert!(!e.ready());
    assert_eq!(e.word(&mut hw), Err(Failure::BothExhausted));
}

#[test]
fn startup_needs_both_instructions() {
    let mut state = 11;
    let mut no_rdseed =
        Script::new(move |s, _| (s == Source::Rdrand).then(|| splitmix(&mut state)));
    assert_eq!(
        Entropy::new().startup(&mut no_rdseed),
        Err(Failure::Exhausted(Source::Rdseed))
    );
    assert_eq!(no_rdseed.reads, [RDSEED_ATTEMPTS, 0]);
    let mut no_rdrand =
        Script::new(move |s, _| (s == Source::Rdseed).then(|| splitmix(&mut state)));
    assert_eq!(
        Entropy::new().startup(&mut no_rdrand),
        Err(Failure::Exhausted(Source::Rdrand))
    );
    assert_eq!(no_rdrand.reads, [STARTUP, RDRAND_ATTEMPTS]);
}

#[test]
fn zero_and_all_ones_are_not_values() {
    for bad in [0, u64::MAX] {
        let mut hw = Script::new(move |_, _| Some(bad));
        let mut e = Entropy::new();
        assert_eq!(e.startup(&mut hw), Err(Failure::Exhausted(Source::Rdseed)));
        assert_eq!(hw.backoffs, RDSEED_ATTEMPTS);
    }
}

#[test]
fn repetition_count_test() {
    let mut h = Health::new();
    // 8 equal bytes, then 2 more: a run of 10 passes.
    h.check(Source::Rdseed, 0x4141_4141_4141_4141).unwrap();
    h.check(Source::Rdseed, 0x1234_5678_9ABC_4141).unwrap();
    // A run of 11 fails.
    let mut h = Health::new();
    h.check(Source::Rdrand, 0x4141_4141_4141_4141).unwrap();
    assert_eq!(
        h.check(Source::Rdrand, 0x1234_5678_9A41_4141),
        Err(Failure::RepetitionCount(Source::Rdrand))
    );
}

#[test]
fn adaptive_proportion_test() {
    // Every other byte is 0xAA (the window's first byte): 78 of them within 512 bytes fail, though
    // no run is long and no word repeats.
    let mut state = 13;
    let biased =
        |state: &mut u64| (splitmix(state) & 0x007F_007F_007F_007F) | 0xAA00_AA00_AA00_AA00;
    let mut h = Health::new();
    h.check(Source::Rdseed, 0xAA).unwrap();
    let mut words = 1;
    let err = loop {
        match h.check(Source::Rdseed, biased(&mut state)) {
            Ok(()) => words += 1,
            Err(f) => break f,
        }
    };
    assert_eq!(err, Failure::AdaptiveProportion(Source::Rdseed));
    // 0xAA once in the first word, then 4 per word: the 78th is in the 20th biased word.
    assert_eq!(words, 1 + 19);
    // A good source passes many windows.
    let mut h = Health::new();
    for _ in 0..100_000 {
        h.check(Source::Rdseed, splitmix(&mut state)).unwrap();
    }
}

/// One 512-byte window whose first byte recurs `n` times in all (every 6th byte), the other bytes
/// random and different from it.
fn window(n: usize, state: &mut u64) -> [u8; 512] {
    let mut bytes = [0u8; 512];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = if i % 6 == 0 && i / 6 < n {
            0x5A
        } else {
            splitmix(state) as u8 | 0x80
        };
    }
    bytes
}

fn check_window(h: &mut Health, bytes: &[u8; 512]) -> Result<(), Failure> {
    for w in bytes.chunks(8) {
        h.check(Source::Rdseed, u64::from_le_bytes(w.try_into().unwrap()))?;
    }
    Ok(())
}

#[test]
fn adaptive_proportion_window_restarts() {
    // 77 occurrences per window pass, window after window: each window counts afresh.
    let mut h = Health::new();
    let mut state = 17;
    for _ in 0..4 {
        check_window(&mut h, &window(77, &mut state)).unwrap();
    }
    // 78 fail.
    assert_eq!(
        check_window(&mut h, &window(78, &mut state)),
        Err(Failure::AdaptiveProportion(Source::Rdseed))
    );
}

#[test]
fn failures_name_the_instruction() {
    extern crate std;
    use std::string::ToString;
    let ud = Failure::Faulted(Source::Rdseed).to_string();
    assert_eq!(ud, "RDSEED raised #UD: the CPU does not execute it");
    assert!(
        Failure::Exhausted(Source::Rdrand)
            .to_string()
            .contains("RDRAND")
    );
    assert!(Failure::BothExhausted.to_string().contains("1024 attempts"));
    assert!(
        Failure::AdaptiveProportion(Source::Rdseed)
            .to_string()
            .contains("78 equal bytes in 512")
    );
}

#[test]
fn recognises_rdrand_and_rdseed() {
    use Source::{Rdrand, Rdseed};
    let cases: &[(&[u8], Option<Source>)] = &[
        // rdrand rax / rdseed rax
        (&[0x48, 0x0F, 0xC7, 0xF0], Some(Rdrand)),
        (&[0x48, 0x0F, 0xC7, 0xF8], Some(Rdseed)),
        // rdrand eax, rdseed ecx, rdrand r8, rdseed ax
        (&[0x0F, 0xC7, 0xF0], Some(Rdrand)),
        (&[0x0F, 0xC7, 0xF9], Some(Rdseed)),
        (&[0x49, 0x0F, 0xC7, 0xF0], Some(Rdrand)),
        (&[0x66, 0x0F, 0xC7, 0xF8], Some(Rdseed)),
        // with a segment prefix, and followed by other bytes
        (&[0x2E, 0x48, 0x0F, 0xC7, 0xF3, 0x90, 0x90], Some(Rdrand)),
        // rdpid rax (F3 0F C7 /7)
        (&[0xF3, 0x0F, 0xC7, 0xF8], None),
        // cmpxchg16b [rdi], vmptrld [rax] (/6 with a memory operand)
        (&[0x48, 0x0F, 0xC7, 0x0F], None),
        (&[0x0F, 0xC7, 0x30], None),
        // cpuid, truncated, empty
        (&[0x0F, 0xA2], None),
        (&[0x48, 0x0F, 0xC7], None),
        (&[], None),
        // 15 prefixes: longer than any instruction
        (&[0x66; 15], None),
    ];
    for (bytes, want) in cases {
        assert_eq!(rng_instruction(bytes), *want, "{bytes:02x?}");
    }
}
