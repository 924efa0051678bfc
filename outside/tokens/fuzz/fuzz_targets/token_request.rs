//! Any bytes: the single request and response parsers never panic and re-emit what they accept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_tokens::{TokenRequest, TokenResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = TokenRequest::parse(data) {
        assert_eq!(request.to_vec(), data);
    }
    if let Ok(response) = TokenResponse::parse(data) {
        assert_eq!(response.to_vec(), data);
    }
});
