//! The guest-request system call between our kernel and the workload
//! (`sys_pp_snp_guest_request`, `kernel/sev/guest_request.rs`): its result codes and the one
//! mapping from a GHCB guest-request outcome to a code and `info` word and back, so that both
//! sides read the same ABI. Uses only `core`: the kernel build copies this file as it is.

use super::ghcb::GuestRequestError;

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
}
