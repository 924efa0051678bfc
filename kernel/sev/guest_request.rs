//! Our SNP system calls (their ABI: `guest_call.rs`), for the workload's attester
//! (`pp_attestation::SnpAttester` over a `GuestChannel` whose `Transport` calls them).
//!
//! The kernel keeps the SNP secrets page to itself, under the rules of `custody.rs`: it copies
//! VMPCK0 and its message counter out ([`sys_pp_snp_vmpck0`]), lets a sealed request through
//! only with the sequence number after its counter, moves the counter after the exchange or wipes
//! the key when the exchange failed ([`sys_pp_snp_guest_request`]), and wipes it on the
//! workload's word ([`sys_pp_snp_disable_vmpck0`]). No pointer into the page leaves the kernel.
//!
//! For the exchange the kernel copies the sealed page into shared pages, makes the `VMGEXIT`
//! (0x8000_0011, or 0x8000_0012 with a certificate buffer) and copies the answer back. The
//! hypervisor only ever sees ciphertext and the certificates.

use hermit_sync::InterruptTicketMutex;

use super::custody::{Custody, HEADER_LEN, SecretsPage};
use super::ghcb::{Ghcb, exit_code};
use super::guest_call::{
    BAD_ARGUMENTS, MAX_CERT_PAGES, NO_SHARED_MEMORY, NOT_SNP, OK, VMPCK_LEN, decode, encode,
};
use super::{shared, vc_handler};

const PAGE: usize = 4096;

/// The secrets page's address (0 when this is not an SNP guest) and what the kernel keeps about
/// VMPCK0. One lock for all three calls: an exchange is checked, made and settled as one step.
struct Keeper {
    secrets: usize,
    custody: Custody,
}

static KEEPER: InterruptTicketMutex<Keeper> = InterruptTicketMutex::new(Keeper {
    secrets: 0,
    custody: Custody::new(),
});

impl Keeper {
    /// The secrets page and the custody rules, or `None` when there is no SNP guest request.
    fn parts(&mut self) -> Option<(&mut SecretsPage, &mut Custody)> {
        if !vc_handler::active() || self.secrets == 0 {
            return None;
        }
        let page = core::ptr::with_exposed_provenance_mut::<SecretsPage>(self.secrets);
        // SAFETY: the firmware's secrets page (4 KiB, reserved in the memory map so never in the
        // kernel's free memory, identity-mapped private by the loader), which nothing but this
        // module touches, and only while holding `KEEPER`'s lock, as `&mut self` is here.
        Some((unsafe { &mut *page }, &mut self.custody))
    }
}

/// Remember where the secrets page is (SNP only).
pub(crate) fn init(secrets: u64) {
    KEEPER.lock().secrets = secrets as usize;
}

/// Copy VMPCK0 (`VMPCK_LEN` bytes) to `key_out` and its message counter to `counter_out`.
/// `NOT_SNP` without a secrets page, `KEY_DISABLED` once the key is wiped.
///
/// # Safety
/// `key_out` must be writable for `VMPCK_LEN` bytes and `counter_out` for a `u32` (or null:
/// `BAD_ARGUMENTS`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sys_pp_snp_vmpck0(key_out: *mut u8, counter_out: *mut u32) -> i32 {
    let mut keeper = KEEPER.lock();
    let Some((page, custody)) = keeper.parts() else {
        return NOT_SNP;
    };
    if key_out.is_null() || counter_out.is_null() {
        return BAD_ARGUMENTS;
    }
    let secrets = keeper_secrets_range(page);
    if overlaps(key_out as usize, VMPCK_LEN, &secrets)
        || overlaps(counter_out as usize, core::mem::size_of::<u32>(), &secrets)
        || shared::contains(key_out as usize, VMPCK_LEN)
    {
        return BAD_ARGUMENTS;
    }
    match custody.vmpck0(page) {
        Ok((mut key, counter)) => {
            // SAFETY: the caller vouches for both buffers; neither overlaps the kernel's copy,
            // the secrets page or the memory shared with the host (checked above).
            unsafe {
                core::ptr::copy_nonoverlapping(key.as_ptr(), key_out, VMPCK_LEN);
                counter_out.write_unaligned(counter);
            }
            wipe(&mut key);
            OK
        }
        Err(code) => code,
    }
}

/// Wipe VMPCK0 for the rest of the boot (the workload's channel asks after a response that does
/// not authenticate). One way: nothing brings the key back.
#[unsafe(no_mangle)]
pub extern "C" fn sys_pp_snp_disable_vmpck0() -> i32 {
    let mut keeper = KEEPER.lock();
    let Some((page, custody)) = keeper.parts() else {
        return NOT_SNP;
    };
    custody.disable(page);
    OK
}

/// One guest request: `request` (a sealed 4 KiB message) in, `response` (4 KiB) out; with a
/// `certs` buffer of `certs_len` bytes (whole pages, at most `MAX_CERT_PAGES`) the extended
/// request, which also fills it with the host's certificate table. The request's header must
/// pass `Custody::admit` (else `KEY_DISABLED` or `BAD_SEQUENCE`, and nothing leaves the guest);
/// the outcome goes to `Custody::settle`. Result codes and `*info`: `guest_call.rs`.
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
    let mut keeper = KEEPER.lock();
    let Some((page, custody)) = keeper.parts() else {
        return NOT_SNP;
    };
    if request.is_null()
        || response.is_null()
        || info.is_null()
        || (certs.is_null() && certs_len != 0)
        || certs_len % PAGE != 0
        || certs_len > MAX_CERT_PAGES * PAGE
    {
        return BAD_ARGUMENTS;
    }
    // What the kernel writes must not land on the secrets page (host-chosen bytes there could
    // roll the counter back) and no range may wrap the address space.
    let secrets = keeper_secrets_range(page);
    let writes = [
        (response as usize, PAGE),
        (certs as usize, certs_len),
        (info as usize, core::mem::size_of::<u64>()),
    ];
    if (request as usize).checked_add(PAGE).is_none()
        || writes
            .iter()
            .any(|&(at, len)| at.checked_add(len).is_none() || overlaps(at, len, &secrets))
    {
        return BAD_ARGUMENTS;
    }
    // The kernel's own copy of the header: what it checks is what the hypervisor gets.
    let mut header = [0u8; HEADER_LEN];
    // SAFETY: the caller's request is readable for a page; `header` is a local.
    unsafe { core::ptr::copy_nonoverlapping(request, header.as_mut_ptr(), HEADER_LEN) };
    if let Err(code) = custody.admit(page, &header) {
        return code;
    }
    let pages = 2 + certs_len / PAGE;
    let Some(Ok(buffer)) = shared::allocate(pages * PAGE) else {
        return NO_SHARED_MEMORY;
    };
    let base = buffer.as_ptr() as *mut u8;
    // SAFETY: `base` is `pages` fresh shared pages; the caller vouches for its own buffers.
    let (code, value) = unsafe {
        core::ptr::copy_nonoverlapping(header.as_ptr(), base, HEADER_LEN);
        core::ptr::copy_nonoverlapping(
            request.add(HEADER_LEN),
            base.add(HEADER_LEN),
            PAGE - HEADER_LEN,
        );
        core::ptr::write_bytes(base.add(PAGE), 0, PAGE + certs_len);
        let (code, value) = exchange(base as u64, certs_len / PAGE);
        core::ptr::copy_nonoverlapping(base.add(PAGE), response, PAGE);
        if code == OK && certs_len != 0 {
            core::ptr::copy_nonoverlapping(base.add(2 * PAGE), certs, certs_len);
        }
        info.write_unaligned(value);
        (code, value)
    };
    shared::deallocate(base as usize, pages * PAGE);
    custody.settle(page, &header, decode(code, value));
    code
}

/// The `VMGEXIT` on the GHCB, interrupts off (an interrupt handler's own #VC would reuse the
/// page mid-exchange): the result code and `info` word.
///
/// # Safety
/// `shared_base` is two plus `cert_pages` shared pages.
unsafe fn exchange(shared_base: u64, cert_pages: usize) -> (i32, u64) {
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
        encode(result)
    })
}

/// The secrets page's address range.
fn keeper_secrets_range(page: &SecretsPage) -> core::ops::Range<usize> {
    let start = core::ptr::from_ref(page) as usize;
    start..start + core::mem::size_of::<SecretsPage>()
}

/// Whether `len` bytes at `at` overlap `range` (an empty buffer overlaps nothing).
fn overlaps(at: usize, len: usize, range: &core::ops::Range<usize>) -> bool {
    len != 0 && at < range.end && at.saturating_add(len) > range.start
}

/// Overwrite a key copy so the compiler cannot drop the writes as dead.
fn wipe(key: &mut [u8; VMPCK_LEN]) {
    for byte in key.iter_mut() {
        // SAFETY: `byte` is a valid, aligned `&mut u8`.
        unsafe { core::ptr::write_volatile(byte, 0) };
    }
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
}
