//! Any bytes: the tree head and receipt parsers never panic, and whatever parses re-emits to
//! text that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_translog::{Receipt, SignedTreeHead};

fuzz_target!(|data: &[u8]| {
    if let Ok(sth) = SignedTreeHead::from_json(data) {
        let again = SignedTreeHead::from_json(sth.to_json().as_bytes()).unwrap();
        assert_eq!(again, sth);
        // A random signature must not verify under a fixed key.
        assert!(sth.verify(&[7; 32]).is_err());
    }
    if let Ok(receipt) = Receipt::from_json(data) {
        assert_eq!(
            Receipt::from_json(receipt.to_json().as_bytes()).unwrap(),
            receipt
        );
    }
});
