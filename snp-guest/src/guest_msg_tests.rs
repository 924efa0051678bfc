//! Guest messages checked byte by byte against the ABI spec's header table, and against an
//! independent AES-GCM implementation (RustCrypto `aes-gcm`) for the cryptography.

use std::vec;
use std::vec::Vec;

use super::*;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce as GcmNonce, Tag as GcmTag};

const KEY: [u8; 32] = [0x42; 32];

fn sealed(seqno: u64, payload: &[u8]) -> [u8; PAGE_LEN] {
    let mut page = [0xAA; PAGE_LEN];
    Vmpck::new(0, &KEY)
        .seal(seqno, MSG_REPORT_REQ, 1, payload, &mut page)
        .unwrap();
    page
}

#[test]
fn header_fields_sit_where_the_abi_spec_puts_them() {
    let page = sealed(0x0102_0304_0506_0708, &[7; 96]);
    assert_eq!(&page[0x20..0x28], &[8, 7, 6, 5, 4, 3, 2, 1]); // MSG_SEQNO, little-endian
    assert_eq!(page[0x30], 1); // ALGO: AES-256-GCM
    assert_eq!(page[0x31], 1); // HDR_VERSION
    assert_eq!(&page[0x32..0x34], &[0x60, 0]); // HDR_SIZE
    assert_eq!(page[0x34], 5); // MSG_TYPE: MSG_REPORT_REQ
    assert_eq!(page[0x35], 1); // MSG_VERSION
    assert_eq!(&page[0x36..0x38], &[96, 0]); // MSG_SIZE
    assert_eq!(page[0x3c], 0); // MSG_VMPCK
    assert!(page[0x10..0x20].iter().all(|&b| b == 0)); // AUTHTAG beyond the 16-byte tag
    assert!(page[0x28..0x30].iter().all(|&b| b == 0));
    assert!(page[0x38..0x3c].iter().all(|&b| b == 0));
    assert!(page[0x3d..0x60].iter().all(|&b| b == 0));
    assert!(
        page[0x60 + 96..].iter().all(|&b| b == 0),
        "the rest is cleared"
    );
    assert_ne!(&page[0x60..0x60 + 96], &[7; 96], "the payload is encrypted");
}

#[test]
fn iv_is_the_sequence_number_little_endian() {
    assert_eq!(iv(1), [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(iv(0x1_0000_0002), [2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn an_independent_aes_gcm_decrypts_what_seal_wrote() {
    let payload = report_request(&[0x5a; 64], 0);
    let page = sealed(3, &payload);
    let cipher = Aes256Gcm::new_from_slice(&KEY).unwrap();
    let mut body = page[0x60..0x60 + REPORT_REQ_LEN].to_vec();
    cipher
        .decrypt_in_place_detached(
            GcmNonce::from_slice(&iv(3)),
            &page[0x30..0x60],
            &mut body,
            GcmTag::from_slice(&page[..16]),
        )
        .unwrap();
    assert_eq!(body, payload);
}

/// A response page as the firmware would write it, encrypted with the independent AES-GCM.
fn firmware_page(seqno: u64, msg_type: u8, payload: &[u8]) -> [u8; PAGE_LEN] {
    let mut page = [0; PAGE_LEN];
    page[0x20..0x28].copy_from_slice(&seqno.to_le_bytes());
    page[0x30] = 1;
    page[0x31] = 1;
    page[0x32] = 0x60;
    page[0x34] = msg_type;
    page[0x35] = 1;
    page[0x36..0x38].copy_from_slice(&(payload.len() as u16).to_le_bytes());
    let mut body = payload.to_vec();
    let cipher = Aes256Gcm::new_from_slice(&KEY).unwrap();
    let tag = cipher
        .encrypt_in_place_detached(
            GcmNonce::from_slice(&iv(seqno)),
            &page[0x30..0x60],
            &mut body,
        )
        .unwrap();
    page[..16].copy_from_slice(&tag);
    page[0x60..0x60 + body.len()].copy_from_slice(&body);
    page
}

fn report_payload(status: u32, size: u32) -> Vec<u8> {
    let mut p = vec![0; REPORT_RSP_LEN];
    p[..4].copy_from_slice(&status.to_le_bytes());
    p[4..8].copy_from_slice(&size.to_le_bytes());
    p[32 + 0x50] = 0x77; // REPORT_DATA's first byte inside the report
    p
}

#[test]
fn opens_a_response_the_firmware_wrote() {
    let mut page = firmware_page(2, MSG_REPORT_RSP, &report_payload(0, 1184));
    let payload = Vmpck::new(0, &KEY)
        .open(2, MSG_REPORT_RSP, &mut page)
        .unwrap();
    let report = report_response(payload).unwrap();
    assert_eq!(report[0x50], 0x77);
}

#[test]
fn refuses_altered_or_unexpected_responses() {
    let key = Vmpck::new(0, &KEY);
    let good = firmware_page(2, MSG_REPORT_RSP, &report_payload(0, 1184));
    let open = |f: &dyn Fn(&mut [u8; PAGE_LEN]), seqno, ty| {
        let mut page = good;
        f(&mut page);
        key.open(seqno, ty, &mut page).map(|_| ())
    };
    assert_eq!(open(&|_| {}, 2, MSG_REPORT_RSP), Ok(()));
    assert_eq!(
        open(&|p| p[0x60 + 40] ^= 1, 2, MSG_REPORT_RSP),
        Err(MsgError::Authentication)
    );
    assert_eq!(
        open(&|p| p[0] ^= 1, 2, MSG_REPORT_RSP),
        Err(MsgError::Authentication)
    );
    // MSG_VERSION is authenticated (AAD) but not otherwise checked.
    assert_eq!(
        open(&|p| p[0x35] = 2, 2, MSG_REPORT_RSP),
        Err(MsgError::Authentication)
    );
    assert_eq!(
        open(&|_| {}, 4, MSG_REPORT_RSP),
        Err(MsgError::WrongSequence)
    );
    assert_eq!(
        open(&|_| {}, 2, MSG_REPORT_REQ),
        Err(MsgError::BadHeader(HeaderField::MessageType))
    );
    assert_eq!(
        open(&|p| p[0x30] = 2, 2, MSG_REPORT_RSP),
        Err(MsgError::BadHeader(HeaderField::Algorithm))
    );
    assert_eq!(
        open(
            &|p| p[0x36..0x38].copy_from_slice(&4001u16.to_le_bytes()),
            2,
            MSG_REPORT_RSP
        ),
        Err(MsgError::BadHeader(HeaderField::MessageSize))
    );
    assert_eq!(
        open(&|p| p[0x3c] = 1, 2, MSG_REPORT_RSP),
        Err(MsgError::BadHeader(HeaderField::Vmpck))
    );
    assert_eq!(
        open(&|p| p[0x40] = 1, 2, MSG_REPORT_RSP),
        Err(MsgError::BadHeader(HeaderField::Reserved))
    );
    assert_eq!(
        open(&|p| p[0x18] = 1, 2, MSG_REPORT_RSP),
        Err(MsgError::BadHeader(HeaderField::Reserved))
    );
    let other = Vmpck::new(0, &[0x43; 32]);
    let mut page = good;
    assert_eq!(
        other.open(2, MSG_REPORT_RSP, &mut page).map(|_| ()),
        Err(MsgError::Authentication)
    );
}

#[test]
fn report_request_and_response_layouts() {
    let req = report_request(&[9; 64], 2);
    assert_eq!(&req[..64], &[9; 64]);
    assert_eq!(&req[64..68], &[2, 0, 0, 0]);
    assert!(req[68..].iter().all(|&b| b == 0));
    assert_eq!(
        report_response(&report_payload(0x16, 1184)),
        Err(MsgError::ReportStatus(0x16))
    );
    assert_eq!(
        report_response(&report_payload(0, 1183)),
        Err(MsgError::BadReportResponse)
    );
    assert_eq!(
        report_response(&report_payload(0, 1184)[..REPORT_RSP_LEN - 1]),
        Err(MsgError::BadReportResponse)
    );
    assert_eq!(report_response(&[0; 3]), Err(MsgError::BadReportResponse));
}

#[test]
fn payload_longer_than_a_page_is_refused() {
    let mut page = [0; PAGE_LEN];
    assert_eq!(
        Vmpck::new(0, &KEY).seal(1, 5, 1, &[0; MAX_PAYLOAD + 1], &mut page),
        Err(MsgError::PayloadTooLong)
    );
    assert!(
        Vmpck::new(0, &KEY)
            .seal(1, 5, 1, &[0; MAX_PAYLOAD], &mut page)
            .is_ok()
    );
}

#[test]
fn sequence_numbers_advance_by_two_and_stop_at_the_32_bit_counter() {
    assert_eq!(
        SequencePair::after(0),
        Ok(SequencePair {
            request: 1,
            response: 2,
            next_counter: 2
        })
    );
    let last = SequencePair::after(u32::MAX - 2).unwrap();
    assert_eq!((last.request, last.response), (0xFFFF_FFFE, 0xFFFF_FFFF));
    assert_eq!(
        SequencePair::after(u32::MAX - 1),
        Err(MsgError::SequenceExhausted)
    );
}
