//! Any bytes: request parsing never panics; what parses re-parses from its own encoding, and a
//! response parsed against it stays within the request's bounds. (The CDN index has its own
//! target, `cdn_index`.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_protocol::app::{AppRequest, AppResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = AppRequest::parse(data) {
        assert_eq!(AppRequest::parse(&request.to_vec()).unwrap(), request);
        let _ = AppResponse::parse_for(data, &request);
    }
});
