//! Any bytes: challenge parsing never panics, and whatever parses re-emits to the same bytes, so
//! the digest a token commits to is that of the bytes received.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_tokens::TokenChallenge;

fuzz_target!(|data: &[u8]| {
    if let Ok(challenge) = TokenChallenge::parse(data) {
        assert_eq!(challenge.to_vec(), data);
        assert_eq!(challenge.encoded_len(), data.len());
    }
});
