//! The kernel's rules for VMPCK0 on a simulated secrets page.

use super::*;
use crate::guest_call::FAILED;

const KEY: [u8; 32] = [0x5a; 32];

fn page(counter: u32) -> SecretsPage {
    let mut page = [0; SECRETS_PAGE_LEN];
    page[0x20..0x40].copy_from_slice(&KEY);
    secrets::set_msg_seqno(&mut page, 0, counter).unwrap();
    page
}

/// A header with sequence number `seqno`, and `tag` standing in for the rest.
fn header(seqno: u64, tag: u8) -> [u8; HEADER_LEN] {
    let mut h = [tag; HEADER_LEN];
    h[SEQNO..SEQNO + 8].copy_from_slice(&seqno.to_le_bytes());
    h
}

#[test]
fn a_completed_exchange_moves_the_counter_past_both_numbers_and_never_back() {
    let (mut page, mut custody) = (page(6), Custody::new());
    assert_eq!(custody.vmpck0(&page), Ok((KEY, 6)));
    let h = header(7, 1);
    assert_eq!(custody.admit(&page, &h), Ok(()));
    custody.settle(&mut page, &h, Ok(()));
    assert_eq!(custody.vmpck0(&page), Ok((KEY, 8)));
    for old in [header(7, 1), header(5, 1), header(1, 2)] {
        assert_eq!(custody.admit(&page, &old), Err(BAD_SEQUENCE), "rolled back");
    }
    assert_eq!(
        custody.admit(&page, &header(11, 1)),
        Err(BAD_SEQUENCE),
        "skipped"
    );
    assert_eq!(custody.admit(&page, &header(9, 3)), Ok(()));
}

#[test]
fn a_number_the_hypervisor_has_seen_goes_out_again_only_with_the_same_message() {
    for refusal in [
        TransportError::Busy,
        TransportError::CertsTooSmall { pages: 4 },
    ] {
        let (mut page, mut custody) = (page(0), Custody::new());
        let h = header(1, 1);
        custody.settle(&mut page, &h, Err(refusal));
        assert_eq!(custody.vmpck0(&page), Ok((KEY, 0)), "no number used");
        assert_eq!(custody.admit(&page, &header(1, 2)), Err(BAD_SEQUENCE));
        assert_eq!(custody.admit(&page, &h), Ok(()));
        custody.settle(&mut page, &h, Ok(()));
        assert_eq!(
            custody.admit(&page, &header(3, 2)),
            Ok(()),
            "then free again"
        );
    }
}

#[test]
fn any_other_failure_wipes_the_key_for_good() {
    let failures = [
        TransportError::Firmware(0x16),
        TransportError::Hypervisor(5),
        TransportError::Kernel(crate::guest_call::GHCB_ERROR),
    ];
    for failure in failures {
        let (mut page, mut custody) = (page(0), Custody::new());
        custody.settle(&mut page, &header(1, 1), Err(failure));
        assert_eq!(custody.vmpck0(&page), Err(KEY_DISABLED), "{failure:?}");
        assert_eq!(custody.admit(&page, &header(1, 1)), Err(KEY_DISABLED));
        assert!(page[0x20..0x40].iter().all(|&b| b == 0));
    }
    let decoded = crate::guest_call::decode(FAILED, 2 << 32);
    assert_eq!(decoded, Err(TransportError::Busy), "busy is not a failure");
}

#[test]
fn the_workload_can_wipe_the_key_but_not_bring_it_back() {
    let (mut page, mut custody) = (page(0), Custody::new());
    custody.disable(&mut page);
    assert_eq!(custody.vmpck0(&page), Err(KEY_DISABLED));
    custody.disable(&mut page);
    assert_eq!(custody.vmpck0(&page), Err(KEY_DISABLED));
}

#[test]
fn an_exhausted_counter_admits_nothing() {
    let (page, custody) = (page(u32::MAX - 1), Custody::new());
    assert_eq!(
        custody.admit(&page, &header(u64::from(u32::MAX), 1)),
        Err(BAD_SEQUENCE)
    );
    let page = self::page(u32::MAX - 2);
    assert_eq!(
        custody.admit(&page, &header(u64::from(u32::MAX) - 1, 1)),
        Ok(())
    );
}

#[cfg(feature = "guest-request")]
#[test]
fn the_kernel_reads_the_sequence_number_the_channel_sealed() {
    use crate::guest_msg::{self, MSG_REPORT_REQ, PAGE_LEN, Vmpck};
    assert_eq!(HEADER_LEN, guest_msg::HEADER_LEN);
    let mut message = [0; PAGE_LEN];
    Vmpck::new(0, &KEY)
        .seal(0x0102_0304_0506, MSG_REPORT_REQ, 1, &[7; 96], &mut message)
        .unwrap();
    let header: &[u8; HEADER_LEN] = message[..HEADER_LEN].try_into().unwrap();
    assert_eq!(sequence_number(header), 0x0102_0304_0506);
}
