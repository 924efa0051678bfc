//! Any bytes: the weights-blob parser never panics, and a blob it accepts re-packs to the same
//! bytes (the layout is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_weights_blob::{WeightsBlob, pack};

fuzz_target!(|data: &[u8]| {
    if let Ok(blob) = WeightsBlob::parse(data) {
        let entries: Vec<(&str, &[u8])> =
            blob.entries().iter().map(|e| (e.name, e.data)).collect();
        assert_eq!(pack(&entries).unwrap(), data);
    }
});
