//! pp: the kernel's entropy source — our code, not Hermit's.
//!
//! The kernel build (`xtask/src/kernel.rs`) copies this file into the pinned kernel source as
//! `src/arch/x86_64/kernel/pp_entropy/mod.rs`; `KERNEL_EDITS` (`kernel/src/lib.rs`) make the
//! kernel's `seed_entropy` (the ChaCha20 pool's seed, hence `sys_read_entropy` and
//! `sys_secure_rand32/64`) and smoltcp's seed come from here, run [`startup`] once interrupts are
//! installed, call [`on_invalid_opcode`] first in the #UD handler, and replace the kernel's LCG
//! fallback by [`fatal`].
//!
//! The policy and the health tests are `entropy.rs` from `snp-guest` (copied into `pp_sev`, where
//! the #VC handler uses its instruction decoder too); here are only the instructions and the
//! stop. No CPUID bit is consulted: under SEV-SNP the hypervisor writes the CPUID page. A CPU
//! that does not execute RDSEED or RDRAND raises #UD, which ends the boot with a serial line
//! naming the instruction; so does a source that runs dry or fails a health test.

use core::arch::x86_64::{_rdrand64_step, _rdseed64_step};
use core::sync::atomic::{AtomicU8, Ordering};

use hermit_sync::InterruptTicketMutex;

use super::pp_sev::entropy::{Entropy, Failure, Hardware, Source};
use super::pp_sev::msr::TerminationReason;
use super::pp_sev::vc_handler;

/// The source's state: retry policy and health tests, shared by every caller.
static ENTROPY: InterruptTicketMutex<Entropy> = InterruptTicketMutex::new(Entropy::new());

/// Which instruction is executing (0 none, 1 RDSEED, 2 RDRAND), for [`on_invalid_opcode`].
static IN_FLIGHT: AtomicU8 = AtomicU8::new(0);

/// The instructions, executed directly.
struct Cpu;

impl Hardware for Cpu {
    fn read(&mut self, source: Source) -> Option<u64> {
        let mut value = 0;
        IN_FLIGHT.store(source as u8 + 1, Ordering::SeqCst);
        // SAFETY: RDSEED/RDRAND write only `value` and the flags. On a CPU that lacks them they
        // raise #UD, which `on_invalid_opcode` turns into `fatal` (it never returns here).
        let ok = unsafe {
            match source {
                Source::Rdseed => _rdseed64_step(&mut value),
                Source::Rdrand => _rdrand64_step(&mut value),
            }
        };
        IN_FLIGHT.store(0, Ordering::SeqCst);
        (ok == 1).then_some(value)
    }

    fn backoff(&mut self) {
        core::hint::spin_loop();
    }
}

/// The startup health test (both instructions, 1024 byte samples each), on the boot CPU before
/// any device, network or application code runs: a missing or broken source stops the boot here.
pub(crate) fn startup() {
    let result = ENTROPY.lock().startup(&mut Cpu);
    match result {
        Ok(()) => info!(
            "pp-entropy: RDSEED and RDRAND passed the startup health tests; no CPUID bit consulted"
        ),
        Err(failure) => fatal(failure),
    }
}

/// 32 health-tested bytes: the seed of the kernel's ChaCha20 pool. Never fails: a failure stops
/// the enclave.
pub(crate) fn seed() -> [u8; 32] {
    let mut seed = [0; 32];
    fill(&mut seed);
    seed
}

/// One health-tested word (smoltcp's seed for TCP sequence numbers, ports and DHCP/DNS ids).
pub(crate) fn random_u64() -> u64 {
    let mut word = [0; 8];
    fill(&mut word);
    u64::from_le_bytes(word)
}

fn fill(buf: &mut [u8]) {
    let result = ENTROPY.lock().fill(&mut Cpu, buf);
    if let Err(failure) = result {
        fatal(failure);
    }
}

/// First thing in the kernel's #UD handler: a #UD raised by our RDSEED or RDRAND means the CPU
/// does not execute it; stop with that reason instead of the kernel's generic abort.
pub(crate) fn on_invalid_opcode() {
    let source = match IN_FLIGHT.load(Ordering::SeqCst) {
        1 => Source::Rdseed,
        2 => Source::Rdrand,
        _ => return,
    };
    fatal(Failure::Faulted(source));
}

/// Where the kernel's `sys_read_entropy` fell back to its LCG: the pool had no seed. Unreachable
/// now that [`seed`] never returns without one; kept as a stop rather than a weaker answer.
pub(crate) fn unavailable() -> ! {
    fatal(Failure::BothExhausted)
}

/// Stop the enclave: one serial line, then under SEV-ES/SNP a GHCB termination request (reason
/// set 1, code 7), otherwise QEMU's debug exit or ACPI power-off.
pub(crate) fn fatal(failure: Failure) -> ! {
    error!("pp-entropy: fatal: {failure}; stopping (there is no weaker fallback)");
    if vc_handler::active() {
        vc_handler::terminate(TerminationReason::PP_ENTROPY);
    }
    crate::arch::x86_64::kernel::processor::shutdown(1)
}
