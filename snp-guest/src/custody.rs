//! The kernel's custody of VMPCK0 and its message counter in the SNP secrets page: what
//! `sys_pp_snp_vmpck0` hands out, which sealed requests `sys_pp_snp_guest_request` lets through,
//! and what the kernel writes back into the page after each exchange (the calls:
//! [`super::guest_call`]). Only the kernel writes the page. The workload seals and opens messages
//! with a copy of the key, but cannot move the counter back, nor show the hypervisor two
//! different messages under one sequence number (one AES-GCM IV).
//!
//! The rules (ABI spec 56860 "SNP_GUEST_REQUEST", GHCB spec 56421 §4.1.8; Linux's sev-guest
//! driver keeps the same):
//! - the counter is the last sequence number the firmware used; a request must carry the next
//!   one, and the firmware answers with the one after it;
//! - once the firmware has answered, both numbers are used: the counter moves to the request's
//!   number + 1;
//! - when the hypervisor refuses before the firmware sees the request (busy, certificate buffer
//!   too small), no number is used but the hypervisor has seen the ciphertext: under that number
//!   only the same message may go out again;
//! - any other failure leaves the firmware's count unknown: VMPCK0 is wiped for the rest of the
//!   boot.
//!
//! Uses only `core` and `super::`: the kernel build copies this file as it is.

use super::guest_call::{BAD_SEQUENCE, KEY_DISABLED, TransportError, VMPCK_LEN};
use super::secrets::{self, SECRETS_PAGE_LEN};

/// The guest-message header (ABI spec 56860 "Message Header Format"): `AUTHTAG`, then `SEQNO`
/// at 0x20, then the authenticated fields. It is not encrypted, so the kernel reads it.
pub const HEADER_LEN: usize = 0x60;
const SEQNO: usize = 0x20;

/// The key the workload's channel uses: VMPL 0's.
const VMPCK0: u8 = 0;

/// The secrets page, as the kernel holds it.
pub type SecretsPage = [u8; SECRETS_PAGE_LEN];

/// What the kernel keeps besides the page: the header of a request the hypervisor has seen but
/// the firmware has not consumed (its tag differs for any other message under that number).
#[derive(Default)]
pub struct Custody {
    shown: Option<[u8; HEADER_LEN]>,
}

impl Custody {
    /// Nothing shown yet.
    pub const fn new() -> Self {
        Self { shown: None }
    }

    /// VMPCK0 and its counter (`sys_pp_snp_vmpck0`); [`KEY_DISABLED`] once wiped.
    pub fn vmpck0(&self, page: &SecretsPage) -> Result<([u8; VMPCK_LEN], u32), i32> {
        let key = secrets::vmpck(page, VMPCK0).map_err(|_| KEY_DISABLED)?;
        let counter = secrets::msg_seqno(page, VMPCK0).map_err(|_| KEY_DISABLED)?;
        Ok((key, counter))
    }

    /// Before an exchange: whether the request with `header` may go to the hypervisor.
    pub fn admit(&self, page: &SecretsPage, header: &[u8; HEADER_LEN]) -> Result<(), i32> {
        // The counter only, and the key checked in place: no copy of VMPCK0 on this stack.
        if !secrets::vmpck_is_set(page, VMPCK0).map_err(|_| KEY_DISABLED)? {
            return Err(KEY_DISABLED);
        }
        let counter = secrets::msg_seqno(page, VMPCK0).map_err(|_| KEY_DISABLED)?;
        if counter > u32::MAX - 2 || sequence_number(header) != u64::from(counter) + 1 {
            return Err(BAD_SEQUENCE);
        }
        match &self.shown {
            Some(shown) if shown != header => Err(BAD_SEQUENCE),
            _ => Ok(()),
        }
    }

    /// After the exchange of the admitted request with `header`: record `outcome` (as the
    /// workload will read it) in the page.
    pub fn settle(
        &mut self,
        page: &mut SecretsPage,
        header: &[u8; HEADER_LEN],
        outcome: Result<(), TransportError>,
    ) {
        match outcome {
            Ok(()) => {
                self.shown = None;
                // Admitted, so the request's number is at most u32::MAX - 1.
                match u32::try_from(sequence_number(header) + 1) {
                    Ok(used) => {
                        let _ = secrets::set_msg_seqno(page, VMPCK0, used);
                    }
                    Err(_) => self.disable(page),
                }
            }
            Err(TransportError::Busy | TransportError::CertsTooSmall { .. }) => {
                self.shown = Some(*header);
            }
            Err(_) => self.disable(page),
        }
    }

    /// Wipe VMPCK0 in the page (`sys_pp_snp_disable_vmpck0`, or after a failure): one way.
    pub fn disable(&mut self, page: &mut SecretsPage) {
        self.shown = None;
        let _ = secrets::wipe_vmpck(page, VMPCK0);
    }
}

/// The `SEQNO` field of a message header.
pub fn sequence_number(header: &[u8; HEADER_LEN]) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&header[SEQNO..SEQNO + 8]);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
#[path = "custody_tests.rs"]
mod tests;
