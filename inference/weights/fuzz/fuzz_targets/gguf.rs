//! Any bytes: the GGUF reader never panics, dequantizing any tensor it accepts stays in
//! bounds, and so do a quantized matrix over it (or its refusal) and a product with it. The
//! same bytes are also taken as raw blocks of each block type (the first byte picks the type
//! and the row length), so the kernels — the K-quants' super-blocks included — see arbitrary
//! scales, codes and quants without needing a valid GGUF around them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_weights::gguf::{GgmlType, Gguf, dequantize};
use pp_weights::qmat::{Activations, Kernel, QMatrix, SharedBytes};

const TYPES: [GgmlType; 8] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
];

/// Products with both kernels (5 positions: the 4-wide and the 1-wide paths; 1 position) and
/// the panels.
fn exercise(m: &QMatrix) {
    if m.cols() > 4096 {
        return;
    }
    let x: Vec<f32> = (0..5 * m.cols())
        .map(|i| {
            if i % 7 == 0 {
                -3.0e4
            } else {
                (i % 13) as f32 - 6.0
            }
        })
        .collect();
    // One position too: decode's whole-matrix loops (`dot_rows`).
    let one = Activations::new(x[..m.cols()].to_vec(), 1, m.cols()).unwrap();
    let x = Activations::new(x, 5, m.cols()).unwrap();
    for a in [&x, &one] {
        let _ = m.matmul_with(a, Kernel::Portable);
        let _ = m.matmul_with(a, Kernel::Avx2);
    }
    let _ = m.rows_f32(0..m.rows());
    let _ = m.row_f32(m.rows() - 1);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(gguf) = Gguf::parse(data) {
        for info in gguf.tensors.values() {
            let _ = info.to_f32();
            if let Ok(m) = QMatrix::from_tensor(info, None) {
                exercise(&m);
            }
        }
    }
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let ty = TYPES[usize::from(sel) % TYPES.len()];
    let (be, bb) = ty.block();
    let cols = be * (1 + usize::from(sel >> 6));
    let row_bytes = cols / be * bb;
    let rows = rest.len() / row_bytes;
    // The whole rest (usually not whole rows: refused), then its whole rows.
    let _ = QMatrix::new(ty, rows.max(1), cols, SharedBytes::copy_of(rest));
    if rows > 0 {
        let whole = &rest[..rows * row_bytes];
        let _ = dequantize(ty, whole, rows * cols);
        if let Ok(m) = QMatrix::new(ty, rows, cols, SharedBytes::copy_of(whole)) {
            exercise(&m);
        }
    }
});
