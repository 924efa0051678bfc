//! Any bytes: the GGUF reader never panics, dequantizing any tensor it accepts stays in
//! bounds, and so do a quantized matrix over it (or its refusal) and a product with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_weights::gguf::Gguf;
use pp_weights::qmat::{Activations, Kernel, QMatrix};

fuzz_target!(|data: &[u8]| {
    if let Ok(gguf) = Gguf::parse(data) {
        for info in gguf.tensors.values() {
            let _ = info.to_f32();
            if let Ok(m) = QMatrix::from_tensor(info, None) {
                if m.cols() <= 4096 {
                    let x = Activations::new(vec![0.5; 2 * m.cols()], 2, m.cols()).unwrap();
                    let _ = m.matmul_with(&x, Kernel::Portable);
                    let _ = m.matmul_with(&x, Kernel::Avx2);
                }
            }
        }
    }
});
