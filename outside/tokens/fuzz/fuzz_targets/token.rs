//! Any bytes: parsing never panics, and whatever parses re-emits to the same bytes (and the same
//! base64url).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_tokens::Token;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = Token::parse(data) {
        assert_eq!(token.to_vec(), data);
        assert_eq!(Token::from_base64url(&token.to_base64url()).unwrap(), token);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(token) = Token::from_base64url(text) {
            assert_eq!(token.to_base64url(), text);
        }
    }
});
