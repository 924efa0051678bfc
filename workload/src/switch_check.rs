//! Startup check that a task switch leaves this task's vector registers alone, for the one
//! instruction family where that went wrong: the SHA extensions. Hermit 0.11 switched the FPU
//! state lazily (CR0.TS + #NM), and QEMU TCG executes `sha256msg1` and its siblings without the
//! #NM that CR0.TS demands, so a task resumed right before one computed on another task's
//! registers (a wrong SHA-256; seen as sealed responses that did not open). The kernel now
//! switches eagerly (`kernel/README.md`, "FPU state"); this check refuses to start an enclave
//! whose kernel or CPU still loses the registers, rather than serve wrong cryptography.
//!
//! Unsafe code (inline assembly around `sys_yield`), so only in the image; skipped where the
//! CPU has no SHA extensions.

#![allow(unsafe_code)]

use std::arch::asm;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

unsafe extern "C" {
    fn sys_yield();
}

/// Rounds of "load, yield, SHA instruction" the check runs.
const ROUNDS: usize = 32;

const A0: [u32; 4] = [0x0123_4567, 0x89ab_cdef, 0xfedc_ba98, 0x7654_3210];
const A1: [u32; 4] = [0x0f1e_2d3c, 0x4b5a_6978, 0x8796_a5b4, 0xc3d2_e1f0];
/// What the other thread keeps loading into the same registers.
const B: [u32; 4] = [0xdead_beef; 4];

/// `sha256msg1(a0, a1)`, optionally with a `sys_yield` between loading the registers and the
/// SHA instruction (its first vector instruction after the switch back).
#[target_feature(enable = "sha,sse2")]
unsafe fn msg1(a0: &[u32; 4], a1: &[u32; 4], yield_between: bool) -> [u32; 4] {
    let mut out = [0u32; 4];
    // SAFETY: reads 16 bytes from each input and writes 16 to `out`, all locals (the output
    // pointer in callee-saved r12, so it survives the call); the red zone is stepped over
    // before the call; every register the C ABI lets `sys_yield` change is declared clobbered
    // (xmm0/xmm1 included: what the check tests is that the kernel preserves them anyway).
    unsafe {
        if yield_between {
            asm!(
                "movdqu xmm0, [{a0}]",
                "movdqu xmm1, [{a1}]",
                "sub rsp, 128",
                "call {y}",
                "add rsp, 128",
                "sha256msg1 xmm0, xmm1",
                "movdqu [r12], xmm0",
                a0 = in(reg) a0.as_ptr(),
                a1 = in(reg) a1.as_ptr(),
                // Callee-saved, so the pointer survives the call.
                in("r12") out.as_mut_ptr(),
                y = sym sys_yield,
                clobber_abi("C"),
            );
        } else {
            asm!(
                "movdqu xmm0, [{a0}]",
                "movdqu xmm1, [{a1}]",
                "sha256msg1 xmm0, xmm1",
                "movdqu [{out}], xmm0",
                a0 = in(reg) a0.as_ptr(),
                a1 = in(reg) a1.as_ptr(),
                out = in(reg) out.as_mut_ptr(),
                out("xmm0") _,
                out("xmm1") _,
            );
        }
    }
    out
}

/// Load [`B`] into the registers the check uses and yield, until `stop`.
fn other_task(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: loads from a local; red zone stepped over; C-ABI clobbers declared.
        unsafe {
            asm!(
                "movdqu xmm0, [{b}]",
                "movdqu xmm1, [{b}]",
                "sub rsp, 128",
                "call {y}",
                "add rsp, 128",
                b = in(reg) B.as_ptr(),
                y = sym sys_yield,
                clobber_abi("C"),
            );
        }
    }
}

/// Run the check: `Err` with what went wrong when a task switch changed this task's registers
/// as seen by a SHA instruction. `Ok` also when the CPU has no SHA extensions (nothing to check).
pub fn check() -> Result<(), String> {
    if !(std::arch::is_x86_feature_detected!("sha") && std::arch::is_x86_feature_detected!("sse2"))
    {
        return Ok(());
    }
    // SAFETY: the features the function enables were detected above.
    let expected = unsafe { msg1(&A0, &A1, false) };
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let stop = stop.clone();
        std::thread::spawn(move || other_task(&stop))
    };
    let mut wrong = 0;
    for _ in 0..ROUNDS {
        // SAFETY: as above.
        if unsafe { msg1(&A0, &A1, true) } != expected {
            wrong += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = other.join();
    if wrong > 0 {
        return Err(format!(
            "vector registers changed across a task switch ({wrong} of {ROUNDS} SHA instructions \
             after sys_yield computed on another task's registers): the kernel's FPU switching \
             cannot be trusted with cryptography"
        ));
    }
    Ok(())
}
