use super::*;
use crate::gguf_write::quantize;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

const QTYPES: [GgmlType; 4] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
];

pub(super) fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Uniform in [-scale, scale).
pub(super) fn floats(r: &mut ChaCha20Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| (r.next_u32() as f32 / u32::MAX as f32 * 2.0 - 1.0) * scale)
        .collect()
}

/// The kernels to check: both where this CPU runs AVX2, else the portable one (and says so).
pub(super) fn kernels() -> Vec<Kernel> {
    if Kernel::Avx2.available() {
        vec![Kernel::Portable, Kernel::Avx2]
    } else {
        eprintln!("this CPU lacks AVX2/FMA/F16C: only the portable kernel is checked");
        vec![Kernel::Portable]
    }
}

fn matrix(ty: GgmlType, rows: usize, cols: usize, w: &[f32]) -> QMatrix {
    QMatrix::new(ty, rows, cols, SharedBytes::copy_of(&quantize(ty, w))).unwrap()
}

/// Every kernel against dequantize-then-f32 on unquantized activations. The allowed error per
/// output is what rounding the activations to Q16 can cost, `Σ |w_i|·d_a(i)/2`, plus f32 rounding
/// (1e-5 of `Σ |w_i·x_i|`).
#[test]
fn kernels_match_dequantize_then_f32() {
    let mut r = rng(1);
    let (rows, cols, n) = (13, 256, 5);
    for ty in QTYPES {
        let w = floats(&mut r, rows * cols, 0.5);
        let m = matrix(ty, rows, cols, &w);
        let wd = dequantize(ty, &quantize(ty, &w), rows * cols);
        // Rows of different magnitudes, one with an outlier.
        let mut x = floats(&mut r, n * cols, 3.0);
        x[cols + 7] = 40.0;
        assert_within_bound(&m, &wd, &x, n);
    }
}

/// Every kernel's product of `m` (whose dequantized weights are `wd`) with the `n` rows of `x`
/// against the exact f64 product: within `Σ |w_i|·d_a(i)/2` plus f32 rounding.
pub(super) fn assert_within_bound(m: &QMatrix, wd: &[f32], x: &[f32], n: usize) {
    let (ty, rows, cols) = (m.ty(), m.rows(), m.cols());
    let act = Activations::new(x.to_vec(), n, cols).unwrap();
    let q = quantize_q16(x);
    for k in kernels() {
        let got = m.matmul_with(&act, k).unwrap();
        for t in 0..n {
            for o in 0..rows {
                let (mut exact, mut bound, mut mag) = (0f64, 0f64, 0f64);
                for i in 0..cols {
                    let (wi, xi) = (f64::from(wd[o * cols + i]), f64::from(x[t * cols + i]));
                    exact += wi * xi;
                    bound += wi.abs() * f64::from(q.d[(t * cols + i) / QK]) / 2.0;
                    mag += (wi * xi).abs();
                }
                let err = (f64::from(got[t * rows + o]) - exact).abs();
                assert!(
                    err <= bound + 1e-5 * mag + 1e-6,
                    "{ty:?} {k:?} [{t},{o}]: error {err} > bound {bound}"
                );
            }
        }
    }
}

/// Random raw blocks (every nibble and byte pattern, Q8_0's -128 included, scales of both
/// signs) against the exact dot product of the dequantized weights with the *quantized*
/// activations: the kernels' integer arithmetic must be exact, only f32 sums may round.
#[test]
fn kernels_exact_on_random_blocks() {
    let mut r = rng(2);
    let (rows, cols) = (9, 160);
    for ty in QTYPES {
        let data = random_blocks(&mut r, ty, rows, cols);
        // Activations hitting +32767 and -32767 in the same block.
        let mut x = floats(&mut r, 2 * cols, 2.0);
        x[3] = 2.5;
        x[4] = -2.5;
        assert_exact(ty, rows, cols, &data, &x);
    }
}

/// Random raw blocks of `ty` (every nibble and byte pattern) with finite scales of both signs.
fn random_blocks(r: &mut ChaCha20Rng, ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let (_, bb) = ty.block();
    let mut data = vec![0u8; rows * cols / QK * bb];
    r.fill_bytes(&mut data);
    for b in data.chunks_exact_mut(bb) {
        let scales = if ty == GgmlType::Q4_1 { 2 } else { 1 };
        for s in 0..scales {
            let v = floats(r, 1, 0.1)[0];
            b[2 * s..2 * s + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
        }
    }
    data
}

/// Every kernel's product with `data` (a `rows × cols` matrix of `ty`) against the exact (f64)
/// product of its dequantized weights with the *quantized* activations of `x`: the integer
/// arithmetic must be exact, only f32 sums and scale products may round (1e-5 of Σ|w·a|).
pub(super) fn assert_exact(ty: GgmlType, rows: usize, cols: usize, data: &[u8], x: &[f32]) {
    let n = x.len() / cols;
    let m = QMatrix::new(ty, rows, cols, SharedBytes::copy_of(data)).unwrap();
    let wd = dequantize(ty, data, rows * cols);
    let act = Activations::new(x.to_vec(), n, cols).unwrap();
    let q = quantize_q16(x);
    for k in kernels() {
        let got = m.matmul_with(&act, k).unwrap();
        assert_eq!(got.len(), n * rows);
        for t in 0..n {
            for o in 0..rows {
                let (mut exact, mut mag) = (0f64, 0f64);
                for i in 0..cols {
                    let j = t * cols + i;
                    let p =
                        f64::from(wd[o * cols + i]) * f64::from(q.d[j / QK]) * f64::from(q.qs[j]);
                    exact += p;
                    mag += p.abs();
                }
                let err = (f64::from(got[t * rows + o]) - exact).abs();
                assert!(
                    err <= 1e-5 * mag + 1e-6,
                    "{ty:?} {k:?} [{t},{o}]: {} vs {exact}",
                    got[t * rows + o]
                );
            }
        }
    }
}

#[test]
fn f16_and_f32_rows_multiply_in_f32() {
    let mut r = rng(3);
    let (rows, cols) = (4, 40); // not a whole number of blocks: no Q16 activations needed
    let w = floats(&mut r, rows * cols, 1.0);
    let x = floats(&mut r, cols, 1.0);
    for ty in [GgmlType::F32, GgmlType::F16] {
        let m = matrix(ty, rows, cols, &w);
        let wd = dequantize(ty, &quantize(ty, &w), rows * cols);
        let got = m
            .matmul(&Activations::new(x.clone(), 1, cols).unwrap())
            .unwrap();
        for o in 0..rows {
            let exact: f32 = (0..cols).map(|i| wd[o * cols + i] * x[i]).sum();
            assert!((got[o] - exact).abs() < 1e-5, "{ty:?} row {o}");
        }
    }
}

#[test]
fn row_lookup_dequantizes_one_row() {
    let mut r = rng(4);
    let w = floats(&mut r, 3 * 64, 1.0);
    let m = matrix(GgmlType::Q8_0, 3, 64, &w);
    let wd = dequantize(GgmlType::Q8_0, &quantize(GgmlType::Q8_0, &w), 3 * 64);
    assert_eq!(m.row_f32(2).unwrap(), wd[128..]);
    assert_eq!(m.row_f32(3), Err(QError::Row { row: 3, rows: 3 }));
    assert_eq!(m.storage_bytes(), 3 * 2 * 34);
}

#[test]
fn malformed_matrices_are_refused() {
    let good = quantize(GgmlType::Q4_1, &[0.5; 64]);
    let bytes = |b: &[u8]| SharedBytes::copy_of(b);
    // Short by one byte, one byte too many, no rows.
    for data in [&good[..39], &[&good[..], &[0]].concat()[..], &[][..]] {
        let n = data.len() / 40;
        assert!(matches!(
            QMatrix::new(GgmlType::Q4_1, n.max(1), 32, bytes(data)),
            Err(QError::Length { .. })
        ));
    }
    // Sizes whose byte count overflows: refused, not wrapped into a small match.
    let huge = usize::MAX / 4 + 2; // × 4 bytes wraps to 4
    assert!(matches!(
        QMatrix::new(GgmlType::F32, 1, huge, bytes(&[0; 4])),
        Err(QError::Length { .. })
    ));
    assert!(matches!(
        QMatrix::new(GgmlType::Q4_1, usize::MAX, 32, bytes(&good[..20])),
        Err(QError::Length { .. })
    ));
    assert_eq!(
        QMatrix::new(GgmlType::Q4_1, 1, 48, bytes(&good)).err(),
        Some(QError::PartialBlock {
            cols: 48,
            block: 32
        })
    );
    // A NaN or infinite scale or minimum in block 1.
    for (at, v) in [(20, f16::NAN), (22, f16::INFINITY)] {
        let mut b = good.clone();
        b[at..at + 2].copy_from_slice(&v.to_le_bytes());
        assert_eq!(
            QMatrix::new(GgmlType::Q4_1, 2, 32, bytes(&b)).err(),
            Some(QError::NonFinite { block: 1 })
        );
    }
    let m = QMatrix::new(GgmlType::Q4_1, 2, 32, bytes(&good)).unwrap();
    let act = Activations::new(vec![1.0; 64], 1, 64).unwrap();
    assert_eq!(
        m.matmul(&act).err(),
        Some(QError::Width { got: 64, cols: 32 })
    );
    assert!(Activations::new(vec![1.0; 63], 1, 64).is_err());
    // A slice outside the shared bytes.
    assert!(bytes(&good).slice(30..41).is_none());
}

#[test]
fn activations_quantize_within_half_a_step() {
    let mut r = rng(5);
    let x = floats(&mut r, 4 * QK, 10.0);
    let q = quantize_q16(&x);
    for (j, &v) in x.iter().enumerate() {
        let d = q.d[j / QK];
        assert!((v - d * f32::from(q.qs[j])).abs() <= d / 2.0 * 1.0001 + 1e-7);
    }
    for (b, s) in q.s.iter().enumerate() {
        let sum: i32 = q.qs[b * QK..(b + 1) * QK]
            .iter()
            .map(|&v| i32::from(v))
            .sum();
        assert!((s - q.d[b] * sum as f32).abs() < 1e-4);
    }
    // All-zero block: zero scale, zero quants, no NaN.
    let z = quantize_q16(&[0.0; QK]);
    assert_eq!((z.d[0], z.s[0]), (0.0, 0.0));
}

/// The AVX2 dequantizer (dense prefill panels) equals the portable one on random blocks.
#[test]
fn panel_dequantize_matches_portable() {
    let mut r = rng(6);
    let (rows, cols) = (5, 96);
    for ty in QTYPES {
        let (_, bb) = ty.block();
        let mut data = vec![0u8; rows * cols / QK * bb];
        r.fill_bytes(&mut data);
        for b in data.chunks_exact_mut(bb) {
            let v = floats(&mut r, 2, 0.1);
            b[0..2].copy_from_slice(&f16::from_f32(v[0]).to_le_bytes());
            b[2..4].copy_from_slice(&f16::from_f32(v[1]).to_le_bytes());
        }
        let m = QMatrix::new(ty, rows, cols, SharedBytes::copy_of(&data)).unwrap();
        let want = dequantize(ty, &data[bb * 3 * 2..], 3 * cols);
        let got = m.rows_f32(2..5).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1e-3),
                "{ty:?}: {g} vs {w}"
            );
        }
        assert_eq!(got.len(), want.len());
        assert!(m.rows_f32(4..6).is_err());
    }
}

/// One position (decode), which takes its own path (every row in one kernel call): random raw
/// blocks against the exact dot product with the quantized activations, as above.
#[test]
fn one_position_is_exact_on_random_blocks() {
    let mut r = rng(3);
    let (rows, cols) = (11, 224);
    for ty in QTYPES {
        let data = random_blocks(&mut r, ty, rows, cols);
        assert_exact(ty, rows, cols, &data, &floats(&mut r, cols, 2.0));
    }
}
