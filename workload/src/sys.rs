//! The workload's only `unsafe` code, on Hermit: our kernel's SNP system calls
//! (`kernel/sev/guest_request.rs`; their ABI in [`pp_snp_guest::guest_call`]) behind safe
//! wrappers, and the weights blob the loader left in memory as a slice. A Linux process (tests)
//! has neither, so this module exists only in the image.
//!
//! The kernel keeps the SNP secrets page: the workload gets a copy of VMPCK0 and its message
//! counter, can ask for a guest request (which the kernel checks against its counter) and can
//! have the key wiped; it never holds a pointer into the page.

#![allow(unsafe_code)]

use pp_snp_guest::guest_call::{self, NOT_SNP, OK, TransportError, VMPCK_LEN};
use pp_snp_guest::guest_msg::PAGE_LEN;
use zeroize::Zeroizing;

use crate::weights::{self, WeightsError};

unsafe extern "C" {
    fn sys_pp_snp_vmpck0(key_out: *mut u8, counter_out: *mut u32) -> i32;
    fn sys_pp_snp_guest_request(
        request: *const u8,
        response: *mut u8,
        certs: *mut u8,
        certs_len: usize,
        info: *mut u64,
    ) -> i32;
    fn sys_pp_snp_disable_vmpck0() -> i32;
}

/// VMPCK0 and its message counter, copied from the kernel. `Ok(None)` when this is not an SNP
/// guest; `Err` with the kernel's code (`KEY_DISABLED`) when it is but the key is wiped or was
/// never provisioned.
pub fn snp_vmpck0() -> Result<Option<(Zeroizing<[u8; VMPCK_LEN]>, u32)>, i32> {
    let mut key = Zeroizing::new([0; VMPCK_LEN]);
    let mut counter = 0u32;
    // SAFETY: `key` is VMPCK_LEN writable bytes and `counter` a writable u32, both locals; the
    // kernel copies into them and keeps no pointer.
    let code = unsafe { sys_pp_snp_vmpck0(key.as_mut_ptr(), &mut counter) };
    match code {
        OK => Ok(Some((key, counter))),
        NOT_SNP => Ok(None),
        other => Err(other),
    }
}

/// One guest request through the kernel: the sealed `request` out, the sealed `response` back;
/// with `certs`, the extended request that also fills it with the host's certificate table.
pub fn snp_guest_request(
    request: &[u8; PAGE_LEN],
    response: &mut [u8; PAGE_LEN],
    certs: Option<&mut [u8]>,
) -> Result<(), TransportError> {
    let (certs_ptr, certs_len) = match certs {
        Some(c) => (c.as_mut_ptr(), c.len()),
        None => (core::ptr::null_mut(), 0),
    };
    let mut info = 0u64;
    // SAFETY: both pages are PAGE_LEN bytes (the response writable), `certs` is `certs_len`
    // writable bytes or null with length 0, `info` a local; the kernel copies in and out and
    // keeps no pointer.
    let code = unsafe {
        sys_pp_snp_guest_request(
            request.as_ptr(),
            response.as_mut_ptr(),
            certs_ptr,
            certs_len,
            &mut info,
        )
    };
    guest_call::decode(code, info)
}

/// Have the kernel wipe VMPCK0 for the rest of the boot (one way). Without SNP there is no key
/// and nothing to do.
pub fn snp_disable_vmpck0() {
    // SAFETY: a kernel call without arguments.
    let _ = unsafe { sys_pp_snp_disable_vmpck0() };
}

/// The weights blob the loader names in `PP_WEIGHTS` (`<addr>,<len>`, hex), or `None` when the
/// variable is not set.
pub fn loader_weights() -> Option<Result<&'static [u8], WeightsError>> {
    let word = std::env::var("PP_WEIGHTS").ok()?;
    let Some((addr, len)) = weights::parse_location(&word) else {
        return Some(Err(WeightsError::BadLocation));
    };
    // SAFETY: on Hermit the environment comes from the kernel command line, at whose front the
    // loader (`image-builder/src/boot.rs`) writes `env=PP_WEIGHTS=` with the address and length
    // of its own `WEIGHTS` static: bytes inside pp.efi, which the firmware loaded into
    // LOADER_CODE pages. The loader gives the kernel only CONVENTIONAL and BOOT_SERVICES_* ranges
    // as free memory, so nothing ever allocates or writes those pages; its page tables, which the
    // kernel keeps, identity-map all RAM (private under SEV). So the range is readable and
    // unchanging for the rest of the boot.
    Some(Ok(unsafe {
        core::slice::from_raw_parts(addr as *const u8, len)
    }))
}
