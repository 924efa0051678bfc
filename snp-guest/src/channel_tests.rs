//! The channel against a simulated secure processor: a test double that plays the firmware's
//! side of the ABI (checks the request's sequence number, answers with request + 1 under the
//! same VMPCK) and the hypervisor's answers (busy, short certificate buffer, errors). The real
//! firmware cannot run here; everything the guest does with its answers is real.

use std::vec;
use std::vec::Vec;

use super::*;
use crate::guest_msg::REPORT_RSP_LEN;

const KEY: [u8; 32] = [0x11; 32];

#[derive(Default)]
struct Firmware {
    /// The sequence number the firmware expects next.
    expected: u64,
    busy_first: u32,
    certs_pages_needed: Option<u64>,
    fail: Option<TransportError>,
    tamper: bool,
    status: u32,
    seen: Vec<u64>,
    /// What the channel told its transport: key wipes, busy waits.
    wiped: bool,
    waits: u32,
}

impl Firmware {
    fn new() -> Self {
        Self {
            expected: 1,
            ..Self::default()
        }
    }
}

impl Transport for &mut Firmware {
    fn request(
        &mut self,
        request: &[u8; PAGE_LEN],
        response: &mut [u8; PAGE_LEN],
        certs: Option<&mut [u8]>,
    ) -> Result<(), TransportError> {
        if self.busy_first > 0 {
            self.busy_first -= 1;
            return Err(TransportError::Busy);
        }
        if let (Some(pages), Some(buf)) = (self.certs_pages_needed, &certs)
            && (buf.len() as u64) < pages * 4096
        {
            return Err(TransportError::CertsTooSmall { pages });
        }
        if let Some(e) = self.fail {
            return Err(e);
        }
        let key = Vmpck::new(0, &KEY);
        let mut req = *request;
        let seqno = u64::from_le_bytes(req[0x20..0x28].try_into().unwrap());
        self.seen.push(seqno);
        let payload = key
            .open(self.expected, MSG_REPORT_REQ, &mut req)
            .map_err(|_| TransportError::Firmware(0x27))?; // AEAD_OFLOW-like: refuse
        let mut rsp = vec![0u8; REPORT_RSP_LEN];
        rsp[..4].copy_from_slice(&self.status.to_le_bytes());
        rsp[4..8].copy_from_slice(&1184u32.to_le_bytes());
        rsp[32 + 0x50..32 + 0x90].copy_from_slice(&payload[..64]);
        key.seal(self.expected + 1, MSG_REPORT_RSP, 1, &rsp, response)
            .unwrap();
        if self.tamper {
            response[0x60 + 100] ^= 1;
        }
        self.expected += 2;
        if let Some(buf) = certs {
            buf[..4].copy_from_slice(b"cert");
        }
        Ok(())
    }

    fn key_disabled(&mut self) {
        self.wiped = true;
    }

    fn busy_wait(&mut self, attempt: u32) {
        self.waits = attempt;
    }
}

fn channel(fw: &mut Firmware, counter: u32) -> GuestChannel<&mut Firmware> {
    GuestChannel::new(fw, Vmpck::new(0, &KEY), counter)
}

#[test]
fn reports_carry_the_report_data_and_numbers_advance() {
    let mut fw = Firmware::new();
    let mut ch = channel(&mut fw, 0);
    let report = ch.report(&[0xab; 64], 0, None).unwrap();
    assert_eq!(&report[0x50..0x90], &[0xab; 64]);
    let report = ch.report(&[0xcd; 64], 0, None).unwrap();
    assert_eq!(&report[0x50..0x90], &[0xcd; 64]);
    assert_eq!(ch.counter(), 4);
    assert_eq!(fw.seen, [1, 3]);
    assert!(!fw.wiped);
}

#[test]
fn a_counter_the_firmware_disagrees_with_fails_and_disables_the_key() {
    let mut fw = Firmware::new();
    let mut ch = channel(&mut fw, 6);
    assert_eq!(
        ch.report(&[0; 64], 0, None),
        Err(ChannelError::Transport(TransportError::Firmware(0x27)))
    );
    assert!(ch.is_disabled());
    assert_eq!(
        ch.report(&[0; 64], 0, None),
        Err(ChannelError::Message(MsgError::KeyDisabled))
    );
}

#[test]
fn an_altered_response_disables_the_key() {
    let mut fw = Firmware::new();
    fw.tamper = true;
    let mut ch = channel(&mut fw, 0);
    assert_eq!(
        ch.report(&[0; 64], 0, None),
        Err(ChannelError::Message(MsgError::Authentication))
    );
    assert!(ch.is_disabled());
    assert_eq!(ch.counter(), 2, "the firmware consumed the numbers");
    assert!(fw.wiped, "the key is wiped where it came from");
}

#[test]
fn a_firmware_status_error_keeps_the_key_but_consumes_the_numbers() {
    let mut fw = Firmware::new();
    fw.status = 0x16;
    let mut ch = channel(&mut fw, 0);
    assert_eq!(
        ch.report(&[0; 64], 0, None),
        Err(ChannelError::Message(MsgError::ReportStatus(0x16)))
    );
    assert!(!ch.is_disabled());
    assert_eq!(ch.counter(), 2);
}

#[test]
fn busy_is_retried_with_the_same_message_then_given_up() {
    let mut fw = Firmware::new();
    fw.busy_first = 3;
    let mut ch = channel(&mut fw, 0);
    assert!(ch.report(&[1; 64], 0, None).is_ok());
    assert_eq!(fw.seen, [1]);
    assert_eq!(fw.waits, 3, "a wait before each resend");

    let mut fw = Firmware::new();
    fw.busy_first = BUSY_RETRIES + 1;
    let mut ch = channel(&mut fw, 0);
    assert_eq!(
        ch.report(&[1; 64], 0, None),
        Err(ChannelError::Transport(TransportError::Busy))
    );
    assert!(ch.is_disabled());
    assert!(fw.wiped);
}

#[test]
fn a_short_certificate_buffer_still_consumes_the_sequence_number() {
    let mut fw = Firmware::new();
    fw.certs_pages_needed = Some(2);
    let mut small = [0u8; 4096];
    let mut ch = channel(&mut fw, 0);
    assert_eq!(
        ch.report(&[1; 64], 0, Some(&mut small)),
        Err(ChannelError::CertsTooSmall { pages: 2 })
    );
    assert_eq!(ch.counter(), 2);
    assert!(!ch.is_disabled());
    let mut big = [0u8; 8192];
    assert!(ch.report(&[1; 64], 0, Some(&mut big)).is_ok());
    assert_eq!(&big[..4], b"cert");
    assert_eq!(
        fw.seen,
        [1, 3],
        "the same message was sent again without certificates"
    );
}

#[test]
fn hypervisor_errors_and_an_exhausted_counter_fail_clearly() {
    let mut fw = Firmware::new();
    fw.fail = Some(TransportError::Hypervisor(5));
    let mut ch = channel(&mut fw, 0);
    let err = ch.report(&[1; 64], 0, None).unwrap_err();
    assert_eq!(err, ChannelError::Transport(TransportError::Hypervisor(5)));
    assert_eq!(
        std::format!("{err}"),
        "guest request refused by the hypervisor (0x5)"
    );

    let mut fw = Firmware::new();
    let mut ch = channel(&mut fw, u32::MAX - 1);
    assert_eq!(
        ch.report(&[1; 64], 0, None),
        Err(ChannelError::Message(MsgError::SequenceExhausted))
    );
    assert!(fw.seen.is_empty(), "nothing was sent");
}
