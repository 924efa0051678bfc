//! Any bytes: request and CDN-index parsing never panics; what parses re-parses from its own
//! encoding, and a response parsed against it stays within the request's bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_protocol::app::{AppRequest, AppResponse};
use pp_protocol::cdn_index::CdnIndex;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = AppRequest::parse(data) {
        assert_eq!(AppRequest::parse(&request.to_vec()).unwrap(), request);
        let _ = AppResponse::parse_for(data, &request);
    }
    if let Ok(index) = CdnIndex::parse(data) {
        assert_eq!(CdnIndex::parse(&index.to_vec()).unwrap(), index);
    }
});
