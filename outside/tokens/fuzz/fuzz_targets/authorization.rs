//! Any text: the `Authorization` parser never panics, and a token it accepts formats back to a
//! value that parses to the same token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_tokens::{authorization_value, parse_authorization};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(token) = parse_authorization(text) {
            assert_eq!(
                parse_authorization(&authorization_value(&token)).unwrap(),
                token
            );
        }
    }
});
