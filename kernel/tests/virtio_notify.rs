//! Our virtio notify-address check (`kernel/sev/notify.rs`, called from the kernel's PCI transport
//! in place of Hermit's unchecked `base + u32(queue_notify_off * multiplier)`) on the host, over
//! real `x86_64` 0.15.2 page tables built with our SEV paging helpers (C-bit 51).
//!
//! The layout: a device BAR of two 4 KiB shared pages at 0x401f_e000 (its notify capability is the
//! second page), then, right after it, private RAM in a 2 MiB page at 0x4020_0000. The host controls
//! `queue_notify_off` and the multiplier; whatever it picks, a notify store must stay inside the
//! capability and, under SEV, in shared memory.

#![allow(dead_code)]
// The mapper walks raw page tables in host memory.
#![allow(unsafe_code)]

mod common;

#[path = "../sev/notify.rs"]
mod notify;
#[path = "../sev/paging.rs"]
mod paging;

use common::{C, HostFrames, serial};

use notify::{NotifyRefusal, notify_address};
use paging::{PpIdentity, identity_map, set_c_bit};
use x86_64::PhysAddr;
use x86_64::structures::paging::mapper::MappedPageTable;
use x86_64::structures::paging::{PageTable, PageTableFlags as F, PhysFrame, Size2MiB, Size4KiB};

const BAR: u64 = 0x401f_e000;
/// The notify capability: offset 0x1000 in the BAR, 0x1000 bytes (QEMU: 4 x 1024 queues).
const NOTIFY_BASE: u64 = BAR + 0x1000;
const NOTIFY_LEN: u64 = 0x1000;
/// Private RAM right above the BAR.
const RAM: u64 = 0x4020_0000;
/// The identity map as the loader and kernel leave it under SEV: the BAR shared, RAM private.
fn tables() -> MappedPageTable<'static, PpIdentity> {
    set_c_bit(C);
    let pml4: &'static mut PageTable = Box::leak(Box::new(PageTable::new()));
    let mut pt = unsafe { MappedPageTable::new(pml4, PpIdentity) };
    let flags = F::PRESENT | F::WRITABLE;
    for page in [BAR, BAR + 0x1000] {
        let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(page));
        unsafe {
            identity_map(&mut pt, frame, flags | F::NO_CACHE, &mut HostFrames)
                .unwrap()
                .ignore();
        }
    }
    let ram = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(RAM));
    unsafe {
        identity_map(&mut pt, ram, flags, &mut HostFrames)
            .unwrap()
            .ignore();
    }
    pt
}

#[test]
fn every_queue_of_a_qemu_shaped_capability_is_accepted() {
    let _guard = serial();
    let pt = tables();
    // QEMU: multiplier 4, queue_notify_off = queue index; 1024 queues fill the 4 KiB.
    for off in [0u16, 1, 2, 511, 1023] {
        let want = NOTIFY_BASE + 4 * u64::from(off);
        assert_eq!(
            notify_address(&pt, NOTIFY_BASE, NOTIFY_LEN, off, 4, false),
            Ok(want)
        );
        assert_eq!(
            notify_address(&pt, NOTIFY_BASE, NOTIFY_LEN, off, 4, true),
            Ok(want)
        );
    }
    // Multiplier 0: every queue shares the first address.
    assert_eq!(
        notify_address(&pt, NOTIFY_BASE, NOTIFY_LEN, 9, 0, false),
        Ok(NOTIFY_BASE)
    );
    set_c_bit(0);
}

#[test]
fn a_multiplier_aimed_at_private_memory_is_refused() {
    let _guard = serial();
    let pt = tables();
    // The audit's attack: multiplier = target - base, queue_notify_off = 1. Hermit 0.11 wrote
    // every notify of that queue at `target`, in the enclave's private RAM.
    let target = RAM + 0x1234;
    let multiplier = u32::try_from(target - NOTIFY_BASE).unwrap();
    assert_eq!(
        notify_address(&pt, NOTIFY_BASE, NOTIFY_LEN, 1, multiplier, false),
        Err(NotifyRefusal::OutsideCapability {
            queue_notify_off: 1,
            multiplier,
            width: 2,
            length: NOTIFY_LEN,
        })
    );
    // Even without SEV: the address must be inside the capability the device described.
    set_c_bit(0);
    assert!(notify_address(&pt, NOTIFY_BASE, NOTIFY_LEN, 1, multiplier, false).is_err());
}

#[test]
fn a_product_that_wraps_in_u32_is_refused() {
    let _guard = serial();
    let pt = tables();
    // 2 x 0x8000_0004 is 8 in u32 (Hermit's arithmetic): a small, plausible offset. In u64 it is
    // 4 GiB + 8, far past the capability.
    assert_eq!(
        notify_address(&pt, NOTIFY_BASE, NOTIFY_LEN, 2, 0x8000_0004, false),
        Err(NotifyRefusal::OutsideCapability {
            queue_notify_off: 2,
            multiplier: 0x8000_0004,
            width: 2,
            length: NOTIFY_LEN,
        })
    );
    // The largest product a host can give is refused too, not wrapped.
    assert!(notify_address(&pt, NOTIFY_BASE, NOTIFY_LEN, u16::MAX, u32::MAX, true).is_err());
    set_c_bit(0);
}

#[test]
fn the_whole_store_must_fit_its_width() {
    let _guard = serial();
    let pt = tables();
    // Offset length - 2: a 2-byte store fits, a 4-byte one (VIRTIO_F_NOTIFICATION_DATA) does not.
    let last = u16::try_from((NOTIFY_LEN - 2) / 2).unwrap();
    assert_eq!(
        notify_address(&pt, NOTIFY_BASE, NOTIFY_LEN, last, 2, false),
        Ok(NOTIFY_BASE + NOTIFY_LEN - 2)
    );
    assert_eq!(
        notify_address(&pt, NOTIFY_BASE, NOTIFY_LEN, last, 2, true),
        Err(NotifyRefusal::OutsideCapability {
            queue_notify_off: last,
            multiplier: 2,
            width: 4,
            length: NOTIFY_LEN,
        })
    );
    // A capability shorter than one store holds no queue.
    assert!(notify_address(&pt, NOTIFY_BASE, 1, 0, 4, false).is_err());
    assert!(notify_address(&pt, NOTIFY_BASE, 0, 0, 0, false).is_err());
    set_c_bit(0);
}

#[test]
fn under_sev_the_store_must_be_in_shared_memory() {
    let _guard = serial();
    let pt = tables();
    // A capability (say, a BAR the shared check missed) over private RAM, or a store that starts
    // in the BAR's last bytes and reaches into RAM, or one that wraps the address space.
    assert_eq!(
        notify_address(&pt, RAM, NOTIFY_LEN, 0, 4, false),
        Err(NotifyRefusal::NotShared {
            address: RAM,
            width: 2
        })
    );
    assert_eq!(
        notify_address(&pt, RAM - 2, NOTIFY_LEN, 0, 4, true),
        Err(NotifyRefusal::NotShared {
            address: RAM - 2,
            width: 4
        })
    );
    assert_eq!(
        notify_address(&pt, u64::MAX - 1, NOTIFY_LEN, 0, 4, false),
        Err(NotifyRefusal::Wraps {
            base: u64::MAX - 1,
            offset: 0
        })
    );
    // Without SEV there is nothing private: only the capability's bounds apply.
    set_c_bit(0);
    assert_eq!(notify_address(&pt, RAM, NOTIFY_LEN, 0, 4, false), Ok(RAM));
}

#[test]
fn refusals_say_what_was_refused() {
    let refusal = NotifyRefusal::OutsideCapability {
        queue_notify_off: 1,
        multiplier: 0x1f_f234,
        width: 2,
        length: 4096,
    };
    assert_eq!(
        refusal.to_string(),
        "notify offset 1 x multiplier 2093620 + 2 bytes lies past the notify capability's 4096 bytes"
    );
    assert_eq!(
        NotifyRefusal::NotShared {
            address: 0x4020_0000,
            width: 4
        }
        .to_string(),
        "notify address 0x40200000 (4 bytes) is not shared device memory"
    );
}
