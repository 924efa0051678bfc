//! Any bytes: the checkpoint, note and receipt parsers never panic, and whatever parses
//! re-emits to text that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_translog::checkpoint::{self, ALG_ED25519, NoteKey};
use pp_translog::{Checkpoint, Receipt};

fuzz_target!(|data: &[u8]| {
    if let Ok(cp) = Checkpoint::parse_body(data) {
        assert_eq!(Checkpoint::parse_body(cp.body().as_bytes()).unwrap(), cp);
    }
    // A random note must not verify under a fixed key.
    let key = NoteKey::new("fuzz.example/log", ALG_ED25519, [7; 32]).unwrap();
    assert!(checkpoint::open_log_signed(data, &key).is_err());
    if let Ok(receipt) = Receipt::from_json(data) {
        assert_eq!(
            Receipt::from_json(receipt.to_json().as_bytes()).unwrap(),
            receipt
        );
    }
});
