//! Any bytes: the GGUF reader never panics, and dequantizing any tensor it accepts stays in
//! bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_weights::gguf::Gguf;

fuzz_target!(|data: &[u8]| {
    if let Ok(gguf) = Gguf::parse(data) {
        for info in gguf.tensors.values() {
            let _ = info.to_f32();
        }
    }
});
