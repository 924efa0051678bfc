//! The SNP guest request as a system call of ours, for the workload's attester
//! (`pp_attestation::SnpAttester` over a `Transport` that calls it): the workload seals the
//! request with VMPCK0 (read through [`sys_pp_snp_secrets`]); the kernel copies the sealed page
//! into shared pages, makes the `VMGEXIT` (0x8000_0011, or 0x8000_0012 with a certificate buffer)
//! and copies the answer back. The hypervisor only ever sees ciphertext and the certificates.

use core::sync::atomic::{AtomicU64, Ordering};

use super::ghcb::{Ghcb, exit_code};
use super::guest_call::{BAD_ARGUMENTS, MAX_CERT_PAGES, NO_SHARED_MEMORY, NOT_SNP, OK, encode};
use super::{shared, vc_handler};

static SECRETS: AtomicU64 = AtomicU64::new(0);

const PAGE: usize = 4096;

/// Remember where the secrets page is (SNP only).
pub(crate) fn init(secrets: u64) {
    SECRETS.store(secrets, Ordering::Relaxed);
}

/// The SNP secrets page (4 KiB, private, identity-mapped), or null when this is not an SNP guest.
#[unsafe(no_mangle)]
pub extern "C" fn sys_pp_snp_secrets() -> *mut u8 {
    core::ptr::with_exposed_provenance_mut(SECRETS.load(Ordering::Relaxed) as usize)
}

/// One guest request: `request` (a sealed 4 KiB message) in, `response` (4 KiB) out; with a
/// `certs` buffer of `certs_len` bytes (whole pages, at most `MAX_CERT_PAGES`) the extended
/// request, which also fills it with the host's certificate table. Result codes and `*info`:
/// `guest_call.rs`.
///
/// # Safety
/// `request` must be readable and `response` writable for 4096 bytes, `certs` writable for
/// `certs_len` bytes (or null with `certs_len` 0), `info` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sys_pp_snp_guest_request(
    request: *const u8,
    response: *mut u8,
    certs: *mut u8,
    certs_len: usize,
    info: *mut u64,
) -> i32 {
    if !vc_handler::active() || SECRETS.load(Ordering::Relaxed) == 0 {
        return NOT_SNP;
    }
    if request.is_null()
        || response.is_null()
        || info.is_null()
        || (certs.is_null() && certs_len != 0)
        || certs_len % PAGE != 0
        || certs_len > MAX_CERT_PAGES * PAGE
    {
        return BAD_ARGUMENTS;
    }
    let pages = 2 + certs_len / PAGE;
    let Some(Ok(buffer)) = shared::allocate(pages * PAGE) else {
        return NO_SHARED_MEMORY;
    };
    let base = buffer.as_ptr() as *mut u8;
    // SAFETY: `base` is `pages` fresh shared pages; the caller vouches for its own buffers.
    let code = unsafe {
        core::ptr::copy_nonoverlapping(request, base, PAGE);
        core::ptr::write_bytes(base.add(PAGE), 0, PAGE + certs_len);
        let code = exchange(base as u64, certs_len / PAGE, info);
        core::ptr::copy_nonoverlapping(base.add(PAGE), response, PAGE);
        if code == OK && certs_len != 0 {
            core::ptr::copy_nonoverlapping(base.add(2 * PAGE), certs, certs_len);
        }
        code
    };
    shared::deallocate(base as usize, pages * PAGE);
    code
}

/// The `VMGEXIT` on the GHCB, interrupts off: an interrupt handler's own #VC would reuse the
/// page mid-exchange.
///
/// # Safety
/// `info` must be writable; `shared_base` is two plus `cert_pages` shared pages.
unsafe fn exchange(shared_base: u64, cert_pages: usize, info: *mut u64) -> i32 {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let ghcb_gpa = vc_handler::ghcb_gpa();
        // SAFETY: the GHCB page (see `vc_handler`); interrupts are off and nothing here raises
        // #VC, so nothing else uses it meanwhile.
        let ghcb = unsafe { &mut *(ghcb_gpa as *mut Ghcb) };
        let (req, resp) = (shared_base, shared_base + PAGE as u64);
        let result = if cert_pages == 0 {
            ghcb.prepare_guest_request(exit_code::SNP_GUEST_REQUEST, req, resp);
            vc_handler::exit_with_ghcb();
            ghcb.guest_request_result()
        } else {
            let certs = shared_base + 2 * PAGE as u64;
            ghcb.prepare_ext_guest_request(req, resp, certs, cert_pages as u64);
            vc_handler::exit_with_ghcb();
            ghcb.ext_guest_request_result()
        };
        let (code, value) = encode(result);
        // SAFETY: the caller's `info`.
        unsafe { info.write(value) };
        code
    })
}
