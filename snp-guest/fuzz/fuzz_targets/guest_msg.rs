//! A response page from the hypervisor is untrusted: header parsing, opening and the report
//! response must refuse anything without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_snp_guest::guest_msg::{HeaderRepr, MSG_REPORT_RSP, PAGE_LEN, Vmpck, report_response};

fuzz_target!(|data: &[u8]| {
    let _ = report_response(data);
    let mut page = [0u8; PAGE_LEN];
    let n = data.len().min(PAGE_LEN);
    page[..n].copy_from_slice(&data[..n]);
    let _ = HeaderRepr::parse(&page);
    let seqno = HeaderRepr::parse(&page).map(|h| h.seqno).unwrap_or(2);
    let key = Vmpck::new(0, &[7; 32]);
    if let Ok(payload) = key.open(seqno, MSG_REPORT_RSP, &mut page) {
        let _ = report_response(payload);
    }
});
