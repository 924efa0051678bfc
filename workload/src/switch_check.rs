//! Startup check that a task switch leaves this task's vector registers alone, for the one
//! instruction family where that went wrong: the SHA extensions. Hermit 0.11 switched the FPU
//! state lazily (CR0.TS + #NM), and QEMU TCG executes `sha256msg1` and its siblings without the
//! #NM that CR0.TS demands, so a task resumed right before one computed on another task's
//! registers (a wrong SHA-256; seen as sealed responses that did not open). The kernel now
//! switches eagerly (`kernel/README.md`, "FPU state"); this check refuses to start an enclave
//! whose kernel or CPU still loses the registers, rather than serve wrong cryptography.
//!
//! It also checks that a switch keeps the upper halves of the YMM registers (AVX state, which
//! only an XSAVE-based switch with AVX in XCR0 keeps): the quantized matrix kernels hold
//! request-derived activations there.
//!
//! Unsafe code (inline assembly around `sys_yield`), so only in the image; each part is skipped
//! where the CPU lacks its extension (SHA, AVX).

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

/// What this thread loads into all of `ymm0` and expects back after a switch.
const A_WIDE: [u32; 8] = [
    0x0123_4567,
    0x89ab_cdef,
    0xfedc_ba98,
    0x7654_3210,
    0x0f1e_2d3c,
    0x4b5a_6978,
    0x8796_a5b4,
    0xc3d2_e1f0,
];
/// What the other thread keeps loading into `ymm0`.
const B_WIDE: [u32; 8] = [0xdead_beef; 8];

/// Loads `a` into all 256 bits of `ymm0`, yields, and returns what `ymm0` holds after the
/// switch back.
#[target_feature(enable = "avx")]
unsafe fn ymm_across_yield(a: &[u32; 8]) -> [u32; 8] {
    let mut out = [0u32; 8];
    // SAFETY: reads 32 bytes from `a` and writes 32 to `out`, both locals (the output pointer in
    // callee-saved r12, so it survives the call); the red zone is stepped over before the call;
    // every register the C ABI lets `sys_yield` change is declared clobbered (ymm0 included:
    // what the check tests is that the kernel preserves it anyway).
    unsafe {
        asm!(
            "vmovdqu ymm0, [{a}]",
            "sub rsp, 128",
            "call {y}",
            "add rsp, 128",
            "vmovdqu [r12], ymm0",
            "vzeroupper",
            a = in(reg) a.as_ptr(),
            in("r12") out.as_mut_ptr(),
            y = sym sys_yield,
            clobber_abi("C"),
        );
    }
    out
}

/// Loads `b` into all of `ymm0` and yields.
#[target_feature(enable = "avx")]
unsafe fn ymm_load_and_yield(b: &[u32; 8]) {
    // SAFETY: reads 32 bytes from `b`; red zone stepped over; C-ABI clobbers declared.
    unsafe {
        asm!(
            "vmovdqu ymm0, [{b}]",
            "sub rsp, 128",
            "call {y}",
            "add rsp, 128",
            "vzeroupper",
            b = in(reg) b.as_ptr(),
            y = sym sys_yield,
            clobber_abi("C"),
        );
    }
}

/// Load [`B`] (and with `avx` [`B_WIDE`]) into the registers the check uses and yield, until
/// `stop`.
fn other_task(stop: &AtomicBool, avx: bool) {
    while !stop.load(Ordering::Relaxed) {
        if avx {
            // SAFETY: AVX was detected by the caller.
            unsafe { ymm_load_and_yield(&B_WIDE) };
        }
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
/// as seen by a SHA instruction or in a YMM register's upper half. Each part runs only where the
/// CPU has its extension (`Ok` with neither: nothing to check).
pub fn check() -> Result<(), String> {
    let sha =
        std::arch::is_x86_feature_detected!("sha") && std::arch::is_x86_feature_detected!("sse2");
    let avx = std::arch::is_x86_feature_detected!("avx");
    if !(sha || avx) {
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let stop = stop.clone();
        std::thread::spawn(move || other_task(&stop, avx))
    };
    let mut wrong = 0;
    let mut wrong_wide = 0;
    if sha {
        // SAFETY: the features the function enables were detected above.
        let expected = unsafe { msg1(&A0, &A1, false) };
        for _ in 0..ROUNDS {
            // SAFETY: as above.
            if unsafe { msg1(&A0, &A1, true) } != expected {
                wrong += 1;
            }
        }
    }
    if avx {
        for _ in 0..ROUNDS {
            // SAFETY: AVX was detected above.
            if unsafe { ymm_across_yield(&A_WIDE) } != A_WIDE {
                wrong_wide += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = other.join();
    if wrong_wide > 0 {
        return Err(format!(
            "YMM registers changed across a task switch ({wrong_wide} of {ROUNDS} rounds): the \
             kernel's FPU switching does not keep AVX state"
        ));
    }
    if wrong > 0 {
        return Err(format!(
            "vector registers changed across a task switch ({wrong} of {ROUNDS} SHA instructions \
             after sys_yield computed on another task's registers): the kernel's FPU switching \
             cannot be trusted with cryptography"
        ));
    }
    Ok(())
}
