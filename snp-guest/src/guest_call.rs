//! The SNP system calls between our kernel and the workload (`kernel/sev/guest_request.rs`): their
//! lengths and result codes, and the one mapping from a GHCB guest-request outcome to a code and
//! `info` word and back, so that both sides read the same ABI. Uses only `core`: the kernel build
//! copies this file as it is.
//!
//! The kernel keeps the SNP secrets page to itself ([`super::custody`]); the workload sees it
//! only through these calls:
//!
//! | call | does | codes |
//! |---|---|---|
//! | `sys_pp_snp_vmpck0(key_out: *mut u8, counter_out: *mut u32) -> i32` | copies VMPCK0 ([`VMPCK_LEN`] bytes) and its message counter out | [`OK`], [`NOT_SNP`], [`KEY_DISABLED`], [`BAD_ARGUMENTS`] |
//! | `sys_pp_snp_guest_request(request, response, certs, certs_len, info: *mut u64) -> i32` | one exchange; the kernel checks the request's sequence number against its counter and advances or wipes | all |
//! | `sys_pp_snp_disable_vmpck0() -> i32` | wipes VMPCK0 for the rest of the boot (one way) | [`OK`], [`NOT_SNP`] |

use super::ghcb::GuestRequestError;

/// A VMPCK: an AES-256-GCM key.
pub const VMPCK_LEN: usize = 32;

/// Most certificate pages the guest hands the hypervisor (VCEK, ASK and ARK take about 5 KiB).
pub const MAX_CERT_PAGES: usize = 16;

/// The exchange completed.
pub const OK: i32 = 0;
/// `info` holds `SW_EXIT_INFO_2`: bits 63:32 a hypervisor error (2 = busy), 31:0 the firmware's.
pub const FAILED: i32 = 1;
/// The certificate buffer is too small: `info` holds the pages needed. Nothing reached the
/// firmware.
pub const CERTS_TOO_SMALL: i32 = 2;
/// This guest is not an SNP guest (or the kernel has no GHCB).
pub const NOT_SNP: i32 = -1;
/// The GHCB exchange itself failed.
pub const GHCB_ERROR: i32 = -2;
/// Bad arguments (null pointers, a certificate buffer over [`MAX_CERT_PAGES`] or not whole pages).
pub const BAD_ARGUMENTS: i32 = -3;
/// No shared memory left for the exchange.
pub const NO_SHARED_MEMORY: i32 = -4;
/// VMPCK0 is wiped (after a failure, or never provisioned): no guest messages for the rest of
/// this boot. Nothing reached the hypervisor.
pub const KEY_DISABLED: i32 = -5;
/// The request's sequence number is not the one after the kernel's counter, or that number was
/// already shown to the hypervisor with another message. Nothing reached the hypervisor.
pub const BAD_SEQUENCE: i32 = -6;

/// Hypervisor error code for "busy" (upper half of `SW_EXIT_INFO_2`).
const BUSY: u32 = 2;

/// A failed exchange, as the GHCB reports it in `SW_EXIT_INFO_2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The certificate buffer is too small; the hypervisor needs this many pages. The request
    /// did not reach the firmware.
    CertsTooSmall { pages: u64 },
    /// The hypervisor is throttling guest requests; the same request may be sent again.
    Busy,
    /// Any other hypervisor error (upper 32 bits of `SW_EXIT_INFO_2`).
    Hypervisor(u32),
    /// The firmware failed the request (lower 32 bits of `SW_EXIT_INFO_2`).
    Firmware(u32),
    /// The kernel could not make the exchange (its own result code).
    Kernel(i32),
}

/// The kernel's side: the result code and `info` word of a guest-request outcome.
pub fn encode(outcome: Result<(), GuestRequestError>) -> (i32, u64) {
    match outcome {
        Ok(()) => (OK, 0),
        Err(GuestRequestError::InvalidLength { pages }) => (CERTS_TOO_SMALL, pages),
        Err(GuestRequestError::Busy) => (FAILED, u64::from(BUSY) << 32),
        Err(GuestRequestError::Hypervisor { code }) => (FAILED, u64::from(code) << 32),
        Err(GuestRequestError::Firmware { code }) => (FAILED, u64::from(code)),
        Err(GuestRequestError::Ghcb(_)) => (GHCB_ERROR, 0),
    }
}

/// The caller's side: what a result code and `info` word mean.
pub fn decode(code: i32, info: u64) -> Result<(), TransportError> {
    match code {
        OK => Ok(()),
        FAILED => match ((info >> 32) as u32, info as u32) {
            (BUSY, _) => Err(TransportError::Busy),
            (0, firmware) => Err(TransportError::Firmware(firmware)),
            (hypervisor, _) => Err(TransportError::Hypervisor(hypervisor)),
        },
        CERTS_TOO_SMALL => Err(TransportError::CertsTooSmall { pages: info }),
        other => Err(TransportError::Kernel(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::ghcb::GhcbError;
    use super::*;

    #[test]
    fn every_outcome_reads_back_as_the_kernel_meant_it() {
        let cases = [
            (Ok(()), Ok(())),
            (
                Err(GuestRequestError::InvalidLength { pages: 3 }),
                Err(TransportError::CertsTooSmall { pages: 3 }),
            ),
            (Err(GuestRequestError::Busy), Err(TransportError::Busy)),
            (
                Err(GuestRequestError::Hypervisor { code: 5 }),
                Err(TransportError::Hypervisor(5)),
            ),
            (
                Err(GuestRequestError::Firmware { code: 0x16 }),
                Err(TransportError::Firmware(0x16)),
            ),
            (
                Err(GuestRequestError::Ghcb(GhcbError::UnknownResult {
                    code: 9,
                })),
                Err(TransportError::Kernel(GHCB_ERROR)),
            ),
        ];
        for (outcome, expected) in cases {
            let (code, info) = encode(outcome);
            assert_eq!(decode(code, info), expected, "{outcome:?}");
        }
        assert_eq!(encode(Err(GuestRequestError::Busy)), (FAILED, 2 << 32));
        assert_eq!(decode(NOT_SNP, 0), Err(TransportError::Kernel(NOT_SNP)));
    }

    #[test]
    fn the_kernels_own_codes_are_distinct_and_read_back_as_kernel_errors() {
        let own = [
            NOT_SNP,
            GHCB_ERROR,
            BAD_ARGUMENTS,
            NO_SHARED_MEMORY,
            KEY_DISABLED,
            BAD_SEQUENCE,
        ];
        for (i, &code) in own.iter().enumerate() {
            assert!(code < 0, "{code}");
            assert!(!own[..i].contains(&code), "{code} twice");
            assert_eq!(decode(code, 0), Err(TransportError::Kernel(code)));
        }
        assert_eq!(VMPCK_LEN, 32, "AES-256");
    }
}
