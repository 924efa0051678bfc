//! Any bytes: the batch parsers never panic, stay within 32 entries, and re-emit what they
//! accept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_tokens::{BatchTokenRequest, BatchTokenResponse, MAX_BATCH};

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = BatchTokenRequest::parse(data) {
        assert!((1..=MAX_BATCH).contains(&batch.requests().len()));
        assert_eq!(batch.to_vec(), data);
    }
    if let Ok(batch) = BatchTokenResponse::parse(data) {
        assert!((1..=MAX_BATCH).contains(&batch.responses().len()));
        assert_eq!(batch.to_vec(), data);
    }
});
