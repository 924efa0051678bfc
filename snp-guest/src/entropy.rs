//! The enclave kernel's entropy source, without hardware access: which CPU instruction to ask,
//! how often to retry, and the health tests every value passes before the kernel uses it.
//!
//! Why: the pinned Hermit kernel seeds its ChaCha20 generator with RDSEED only when CPUID reports
//! RDSEED, and otherwise answers `sys_read_entropy` from a Park–Miller LCG seeded with 32 TSC
//! bits, reporting success. Under SEV-SNP the hypervisor writes the CPUID page: it could turn
//! every key of the enclave into one of at most 2^32. Here no CPUID bit decides anything: the
//! kernel executes RDSEED (and RDRAND, its conditioned fallback) directly, checks the carry flag,
//! retries within fixed bounds, health-tests every word, and stops the enclave on any failure.
//! There is no weaker fallback.
//!
//! Health tests (NIST SP 800-90B §4.4, applied to the instructions' output: the physical noise
//! source sits inside the CPU and is not visible to software):
//! - repetition count test on bytes, claimed min-entropy H = 4 bits per byte (half of what a
//!   conditioned source should give) and false-positive rate α = 2^-40: cutoff
//!   [`RCT_CUTOFF`] = 1 + ⌈40 / 4⌉ = 11 equal bytes in a row;
//! - adaptive proportion test on bytes, window [`APT_WINDOW`] = 512, same H and α: cutoff
//!   [`APT_CUTOFF`] = 1 + CRITBINOM(512, 2^-4, 1 - 2^-40) = 78;
//! - a stuck-output check: the same 64-bit word twice in a row (probability 2^-64 for a working
//!   source) fails.
//!
//! The 0 and all-ones words count as failed attempts, not as values (AMD RDRAND errata returned
//! all ones with the carry flag set). Startup testing (§4.3) runs each source through the tests
//! for [`STARTUP_WORDS`] words (1024 byte samples) before the first value is handed out; the tests
//! then run continuously on every word. RDSEED and RDRAND keep separate test state.
//!
//! Like `msr`, `ghcb` and `vc`, this module uses only `core`; the kernel copies it as it is and
//! supplies the instructions through [`Hardware`] (`kernel/entropy/mod.rs`).

use core::fmt;

/// A CPU random-number instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// RDSEED: output of the CPU's entropy source (NIST SP 800-90B/C seed grade).
    Rdseed,
    /// RDRAND: output of the CPU's DRBG, reseeded from the same entropy source.
    Rdrand,
}

impl Source {
    /// The mnemonic.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Rdseed => "RDSEED",
            Self::Rdrand => "RDRAND",
        }
    }
}

/// The instructions, as the kernel executes them.
pub trait Hardware {
    /// Execute `source` once (64-bit form): `Some(value)` when it set the carry flag.
    fn read(&mut self, source: Source) -> Option<u64>;
    /// Between two failed attempts (the kernel executes `pause`).
    fn backoff(&mut self) {}
}

/// Attempts per word for RDSEED, which may run dry under load.
pub const RDSEED_ATTEMPTS: u32 = 1024;
/// Attempts per word for RDRAND, after RDSEED ran dry (Intel's DRNG guide: 10 retries; more
/// failures mean a broken generator).
pub const RDRAND_ATTEMPTS: u32 = 10;
/// Words per source read and tested at startup before any value is used (1024 byte samples).
pub const STARTUP_WORDS: usize = 128;
/// Repetition count test cutoff (equal consecutive bytes that fail).
pub const RCT_CUTOFF: u32 = 11;
/// Adaptive proportion test window, in bytes.
pub const APT_WINDOW: u32 = 512;
/// Adaptive proportion test cutoff (occurrences of the window's first byte that fail).
pub const APT_CUTOFF: u32 = 78;

/// Why the source is refused. Each one stops the enclave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The instruction raised #UD: the CPU does not execute it (reported by the kernel's #UD
    /// handler).
    Faulted(Source),
    /// At startup: this instruction gave no usable value within its attempts.
    Exhausted(Source),
    /// RDSEED and then RDRAND gave no usable value within their attempts.
    BothExhausted,
    /// The same 64-bit word twice in a row.
    Stuck(Source),
    /// The repetition count test failed.
    RepetitionCount(Source),
    /// The adaptive proportion test failed.
    AdaptiveProportion(Source),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Faulted(s) => write!(f, "{} raised #UD: the CPU does not execute it", s.name()),
            Self::Exhausted(s) => write!(
                f,
                "{} gave no usable value in {} attempts",
                s.name(),
                attempts(s)
            ),
            Self::BothExhausted => write!(
                f,
                "RDSEED ({RDSEED_ATTEMPTS} attempts) and RDRAND ({RDRAND_ATTEMPTS}) gave no usable value"
            ),
            Self::Stuck(s) => write!(f, "{} returned the same 64-bit value twice", s.name()),
            Self::RepetitionCount(s) => write!(
                f,
                "{} failed the repetition count test ({RCT_CUTOFF} equal bytes in a row)",
                s.name()
            ),
            Self::AdaptiveProportion(s) => write!(
                f,
                "{} failed the adaptive proportion test ({APT_CUTOFF} equal bytes in {APT_WINDOW})",
                s.name()
            ),
        }
    }
}

const fn attempts(source: Source) -> u32 {
    match source {
        Source::Rdseed => RDSEED_ATTEMPTS,
        Source::Rdrand => RDRAND_ATTEMPTS,
    }
}

/// The continuous health tests of one source (SP 800-90B §4.4.1 and §4.4.2 on bytes, and the
/// stuck-word check).
#[derive(Clone, Copy, Debug)]
pub struct Health {
    last_word: Option<u64>,
    rct_byte: u8,
    rct_count: u32,
    apt_byte: u8,
    apt_count: u32,
    /// Bytes of the current window seen so far; 0 = the next byte opens a window.
    apt_seen: u32,
}

impl Health {
    pub const fn new() -> Self {
        Self {
            last_word: None,
            rct_byte: 0,
            rct_count: 0,
            apt_byte: 0,
            apt_count: 0,
            apt_seen: 0,
        }
    }

    /// Test one word (its bytes in little-endian order).
    pub fn check(&mut self, source: Source, word: u64) -> Result<(), Failure> {
        if self.last_word == Some(word) {
            return Err(Failure::Stuck(source));
        }
        self.last_word = Some(word);
        for b in word.to_le_bytes() {
            // Repetition count test: the run length of equal bytes.
            if self.rct_count > 0 && b == self.rct_byte {
                self.rct_count += 1;
                if self.rct_count >= RCT_CUTOFF {
                    return Err(Failure::RepetitionCount(source));
                }
            } else {
                (self.rct_byte, self.rct_count) = (b, 1);
            }
            // Adaptive proportion test: how often the window's first byte recurs in it.
            if self.apt_seen == 0 {
                (self.apt_byte, self.apt_count) = (b, 1);
            } else if b == self.apt_byte {
                self.apt_count += 1;
                if self.apt_count >= APT_CUTOFF {
                    return Err(Failure::AdaptiveProportion(source));
                }
            }
            self.apt_seen = (self.apt_seen + 1) % APT_WINDOW;
        }
        Ok(())
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

/// The source: retry policy, startup test, continuous tests. A failure is final: every later
/// call returns it again.
#[derive(Clone, Copy, Debug)]
pub struct Entropy {
    rdseed: Health,
    rdrand: Health,
    started: bool,
    failed: Option<Failure>,
}

impl Entropy {
    pub const fn new() -> Self {
        Self {
            rdseed: Health::new(),
            rdrand: Health::new(),
            started: false,
            failed: None,
        }
    }

    /// Whether the startup test passed (and nothing failed since).
    pub fn ready(&self) -> bool {
        self.started && self.failed.is_none()
    }

    /// The startup test: [`STARTUP_WORDS`] words from RDSEED, then from RDRAND, each within its
    /// attempts and through the health tests; the words are discarded. Runs once; [`Self::word`]
    /// runs it first if the kernel has not.
    pub fn startup(&mut self, hw: &mut impl Hardware) -> Result<(), Failure> {
        self.latched()?;
        if self.started {
            return Ok(());
        }
        for source in [Source::Rdseed, Source::Rdrand] {
            for _ in 0..STARTUP_WORDS {
                let word = self.try_source(hw, source);
                let word = self.latch(word.ok_or(Failure::Exhausted(source)))?;
                let checked = self.health(source).check(source, word);
                self.latch(checked)?;
            }
        }
        self.started = true;
        Ok(())
    }

    /// One health-tested 64-bit word: RDSEED within [`RDSEED_ATTEMPTS`], else RDRAND within
    /// [`RDRAND_ATTEMPTS`].
    pub fn word(&mut self, hw: &mut impl Hardware) -> Result<u64, Failure> {
        self.startup(hw)?;
        for source in [Source::Rdseed, Source::Rdrand] {
            if let Some(word) = self.try_source(hw, source) {
                let checked = self.health(source).check(source, word);
                self.latch(checked)?;
                return Ok(word);
            }
        }
        self.latch(Err(Failure::BothExhausted))
    }

    /// Fill `buf` with health-tested words (the last one cut to fit).
    pub fn fill(&mut self, hw: &mut impl Hardware, buf: &mut [u8]) -> Result<(), Failure> {
        for chunk in buf.chunks_mut(8) {
            let word = self.word(hw)?.to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(())
    }

    /// Up to the source's attempts; 0 and all ones are not values.
    fn try_source(&mut self, hw: &mut impl Hardware, source: Source) -> Option<u64> {
        for _ in 0..attempts(source) {
            match hw.read(source) {
                Some(w) if w != 0 && w != u64::MAX => return Some(w),
                _ => hw.backoff(),
            }
        }
        None
    }

    fn health(&mut self, source: Source) -> &mut Health {
        match source {
            Source::Rdseed => &mut self.rdseed,
            Source::Rdrand => &mut self.rdrand,
        }
    }

    fn latched(&self) -> Result<(), Failure> {
        self.failed.map_or(Ok(()), Err)
    }

    fn latch<T>(&mut self, r: Result<T, Failure>) -> Result<T, Failure> {
        if let Err(e) = &r {
            self.failed = Some(*e);
        }
        r
    }
}

impl Default for Entropy {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `bytes` (from an instruction pointer, 64-bit mode) start with RDRAND or RDSEED
/// (`0F C7 /6` or `/7` with a register operand, after optional `66`, segment or `67` prefixes and
/// a REX byte). `F2`/`F3` prefixes make it another instruction (`F3 0F C7 /7` is RDPID); `F0`
/// makes it invalid. The #VC handler uses this to refuse these instructions outright.
pub fn rng_instruction(bytes: &[u8]) -> Option<Source> {
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            0x66 | 0x67 | 0x26 | 0x2E | 0x36 | 0x3E | 0x64 | 0x65 => i += 1,
            _ => break,
        }
    }
    if bytes.get(i).is_some_and(|b| (0x40..=0x4F).contains(b)) {
        i += 1;
    }
    if i + 3 > 15 {
        return None;
    }
    match bytes.get(i..i + 3)? {
        [0x0F, 0xC7, m] if m >> 6 == 3 && (m >> 3) & 7 == 6 => Some(Source::Rdrand),
        [0x0F, 0xC7, m] if m >> 6 == 3 && (m >> 3) & 7 == 7 => Some(Source::Rdseed),
        _ => None,
    }
}

#[cfg(test)]
#[path = "entropy_tests.rs"]
mod tests;
