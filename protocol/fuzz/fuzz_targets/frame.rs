//! Any bytes: parsing never panics, and whatever parses re-emits to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_protocol::frame::{Frame, FrameRepr, header_payload_len};

fuzz_target!(|data: &[u8]| {
    let _ = header_payload_len(data);
    if let Ok(frame) = Frame::new_checked(data) {
        if let Ok(repr) = FrameRepr::parse(&frame) {
            assert_eq!(repr.to_vec().unwrap(), data);
        }
    }
});
