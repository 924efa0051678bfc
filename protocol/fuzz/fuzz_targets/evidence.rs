//! Any bytes: parsing never panics, and whatever parses re-emits to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_protocol::evidence::{Evidence, EvidenceRepr};

fuzz_target!(|data: &[u8]| {
    if let Ok(view) = Evidence::new_checked(data) {
        let repr = EvidenceRepr::parse(&view).unwrap();
        assert_eq!(repr.to_vec().unwrap(), data);
    }
});
