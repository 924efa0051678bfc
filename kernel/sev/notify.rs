//! Where a virtqueue's notify write may land — our code, not Hermit's.
//!
//! Virtio over PCI (virtio 1.2, §4.1.4.4) has the driver notify queue `q` by writing at
//! `notify capability offset + queue_notify_off(q) * notify_off_multiplier` in the capability's
//! BAR: `queue_notify_off` comes from the common configuration (MMIO) and the multiplier from PCI
//! configuration space, both the host's. The device must keep every queue's address inside the
//! capability (`cap.length >= queue_notify_off * notify_off_multiplier + 2`, `+ 4` with
//! `VIRTIO_F_NOTIFICATION_DATA`, §4.1.4.4.1); Hermit 0.11 did not check it, and multiplied in
//! `u32` (wrapping). A host that picks `multiplier = target - base` and `queue_notify_off = 1`
//! would aim every notify store (2 bytes, 4 with notification data) at any address — under SEV
//! at the enclave's private memory, even with a BAR that passed the shared check.

use core::fmt;

use x86_64::structures::paging::Translate;

use super::paging::identity_mapped_shared;

/// Why a queue's notify address was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotifyRefusal {
    /// `queue_notify_off * notify_off_multiplier + width` is past the notify capability's end.
    OutsideCapability {
        queue_notify_off: u16,
        multiplier: u32,
        width: u64,
        length: u64,
    },
    /// The capability's address plus the offset wraps around the address space.
    Wraps { base: u64, offset: u64 },
    /// Under SEV: the bytes the notify store writes are not identity-mapped shared.
    NotShared { address: u64, width: u64 },
}

impl fmt::Display for NotifyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutsideCapability {
                queue_notify_off,
                multiplier,
                width,
                length,
            } => write!(
                f,
                "notify offset {queue_notify_off} x multiplier {multiplier} + {width} bytes lies \
                 past the notify capability's {length} bytes"
            ),
            Self::Wraps { base, offset } => write!(
                f,
                "notify capability at {base:#x} plus offset {offset:#x} wraps"
            ),
            Self::NotShared { address, width } => write!(
                f,
                "notify address {address:#x} ({width} bytes) is not shared device memory"
            ),
        }
    }
}

/// The address a queue's notify store writes to: `base + queue_notify_off * multiplier`,
/// computed without wrapping, with the whole store (`width` 4 bytes when
/// `VIRTIO_F_NOTIFICATION_DATA` is used, else 2) inside the notify capability's `length` bytes
/// from `base`, and under SEV identity-mapped shared in `table` (always true without SEV). A
/// refused address must not be written.
pub(crate) fn notify_address<T: Translate>(
    table: &T,
    base: u64,
    length: u64,
    queue_notify_off: u16,
    multiplier: u32,
    notification_data: bool,
) -> Result<u64, NotifyRefusal> {
    let width: u64 = if notification_data { 4 } else { 2 };
    // At most (2^16 - 1)(2^32 - 1) < 2^48: no overflow in u64.
    let offset = u64::from(queue_notify_off) * u64::from(multiplier);
    if offset.checked_add(width).is_none_or(|end| end > length) {
        return Err(NotifyRefusal::OutsideCapability {
            queue_notify_off,
            multiplier,
            width,
            length,
        });
    }
    let address = base
        .checked_add(offset)
        .filter(|a| a.checked_add(width).is_some())
        .ok_or(NotifyRefusal::Wraps { base, offset })?;
    if !identity_mapped_shared(table, address, width) {
        return Err(NotifyRefusal::NotShared { address, width });
    }
    Ok(address)
}
