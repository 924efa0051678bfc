//! Any bytes: parsing never panics, and whatever parses re-emits to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_protocol::key_config::{KeyConfig, KeyConfigRepr};

fuzz_target!(|data: &[u8]| {
    if let Ok(view) = KeyConfig::new_checked(data) {
        let _ = view.has_supported_suite();
        let repr = KeyConfigRepr::parse(&view).unwrap();
        assert_eq!(repr.to_vec().unwrap(), data);
    }
});
