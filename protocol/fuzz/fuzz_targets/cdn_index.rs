//! Any bytes: CDN-index (`pp-cdn-index/1` log entry) parsing never panics; what parses re-parses
//! from its own encoding to the same index, whose ids are the derived ones.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_protocol::cdn_index::{CdnIndex, instance_id, parse_hash};

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = CdnIndex::parse(data) {
        assert_eq!(CdnIndex::parse(&index.to_vec()).unwrap(), index);
        for i in &index.instances {
            assert_eq!(i.id, instance_id(&parse_hash(&i.key_config_sha256).unwrap()));
        }
    }
});
