//! The K-quant (Q4_K, Q6_K) kernels: against dequantize-then-f32, exact integer arithmetic on raw
//! super-blocks (every 6-bit code, every quant, every Q6_K scale), the layouts as ggml states
//! them, AVX2 panels, and malformed super-blocks refused.

use super::*;
use crate::gguf_write::quantize;
use crate::kquant::{Q4_K_BYTES, Q6_K_BYTES, QK_K};
use rand_chacha::rand_core::RngCore;

const KTYPES: [GgmlType; 2] = [GgmlType::Q4_K, GgmlType::Q6_K];

use super::tests::{assert_exact, assert_within_bound, floats, rng};

fn f16b(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_le_bytes()
}

/// The quantizers round-trip within a step, and every kernel is within the Q16 bound
/// `Σ |w_i|·d_a(i)/2` (+ f32 rounding) of dequantize-then-f32 on unquantized activations; 5
/// positions run the 4-wide kernel and the 1-wide rest.
#[test]
fn k_kernels_match_dequantize_then_f32() {
    let mut r = rng(11);
    let (rows, cols, n) = (7, 512, 5);
    for (ty, tol) in [(GgmlType::Q4_K, 0.08), (GgmlType::Q6_K, 0.02)] {
        let w = floats(&mut r, rows * cols, 1.0);
        let data = quantize(ty, &w);
        assert_eq!(data.len(), rows * cols / QK_K * ty.block().1);
        let wd = dequantize(ty, &data, rows * cols);
        let worst = w
            .iter()
            .zip(&wd)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{ty:?}: quantizer max error {worst} on U(-1, 1)");
        assert!(worst <= tol, "{ty:?}: quantizer error {worst} > {tol}");
        let m = QMatrix::new(ty, rows, cols, SharedBytes::copy_of(&data)).unwrap();
        let mut x = floats(&mut r, n * cols, 3.0);
        x[cols + 300] = 40.0;
        assert_within_bound(&m, &wd, &x, n);
    }
}

/// Random raw super-blocks (any scale codes and quants; `d`, `dmin` of both signs) against the
/// exact product, for 5 positions; and the AVX2 panel dequantizer equals the portable one.
#[test]
fn k_kernels_exact_on_random_blocks() {
    let mut r = rng(12);
    let (rows, cols) = (6, 768);
    for ty in KTYPES {
        let bb = ty.block().1;
        let mut data = vec![0u8; rows * cols / QK_K * bb];
        r.fill_bytes(&mut data);
        for b in data.chunks_exact_mut(bb) {
            let v = floats(&mut r, 2, 0.05);
            match ty {
                GgmlType::Q4_K => {
                    b[0..2].copy_from_slice(&f16b(v[0]));
                    b[2..4].copy_from_slice(&f16b(v[1]));
                }
                _ => b[208..210].copy_from_slice(&f16b(v[0])),
            }
        }
        // Activations hitting +32767 and -32767 in one block.
        let mut x = floats(&mut r, 5 * cols, 2.0);
        x[3] = 2.5;
        x[4] = -2.5;
        assert_exact(ty, rows, cols, &data, &x);
        let m = QMatrix::new(ty, rows, cols, SharedBytes::copy_of(&data)).unwrap();
        let want = dequantize(ty, &data[2 * cols / QK_K * bb..], 3 * cols);
        let got = m.rows_f32(2..5).unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1e-3),
                "{ty:?}: {g} vs {w}"
            );
        }
    }
}

/// Q4_K with every 6-bit scale code and every min code (8 super-blocks × 8 sub-blocks = 64
/// codes each, scales rising while mins fall) and every nibble in every sub-block: dequantized
/// as `d·sc·q − dmin·m` with the codes as placed, and the kernels exact on it.
#[test]
fn q4_k_all_codes_and_quants() {
    let (d, dmin) = (0.5f32, 0.25f32);
    let mut data = Vec::new();
    let mut want = Vec::new();
    for t in 0..8usize {
        let sc: [u8; 8] = std::array::from_fn(|j| (8 * t + j) as u8);
        let m: [u8; 8] = std::array::from_fn(|j| 63 - (8 * t + j) as u8);
        // The 12 bytes as ggml's `get_scale_min_k4` reads them.
        let mut s = [0u8; 12];
        for j in 0..4 {
            s[j] = sc[j] | (sc[j + 4] >> 4) << 6;
            s[j + 4] = m[j] | (m[j + 4] >> 4) << 6;
            s[j + 8] = (sc[j + 4] & 15) | (m[j + 4] & 15) << 4;
        }
        let q = |j: usize, l: usize| ((l + 3 * j + t) % 16) as u8;
        let mut qs = [0u8; 128];
        for j in 0..8 {
            for l in 0..32 {
                qs[32 * (j / 2) + l] |= q(j, l) << (4 * (j % 2));
                want.push(d * f32::from(sc[j]) * f32::from(q(j, l)) - dmin * f32::from(m[j]));
            }
        }
        data.extend_from_slice(&f16b(d));
        data.extend_from_slice(&f16b(dmin));
        data.extend_from_slice(&s);
        data.extend_from_slice(&qs);
    }
    assert_eq!(data.len(), 8 * Q4_K_BYTES);
    assert_eq!(dequantize(GgmlType::Q4_K, &data, 8 * QK_K), want);
    let mut r = rng(13);
    assert_exact(
        GgmlType::Q4_K,
        2,
        4 * QK_K,
        &data,
        &floats(&mut r, 4 * QK_K * 3, 1.0),
    );
}

/// Q6_K with every 6-bit quant in every chunk and every i8 scale (16 super-blocks × 16
/// sub-blocks = all 256 values, −128 and 127 included): dequantized as `d·sc·(q − 32)` and the
/// kernels exact on it (the largest |scale·(q − 32)| products stress the i32 sums).
#[test]
fn q6_k_all_quants_and_scales() {
    let d = 0.125f32;
    let mut data = Vec::new();
    let mut want = Vec::new();
    for t in 0..16usize {
        let mut b = [0u8; Q6_K_BYTES];
        for e in 0..QK_K {
            let q = ((e + 5 * t) % 64) as u8;
            let sc = (16 * t + e / 16) as u8 as i8;
            // ggml's `dequantize_row_q6_K`: half n, quarter r, lane l.
            let (n, r, l) = (e / 128, e % 128 / 32, e % 32);
            b[64 * n + 32 * (r % 2) + l] |= (q & 15) << (4 * (r / 2));
            b[128 + 32 * n + l] |= (q >> 4) << (2 * r);
            b[192 + e / 16] = sc as u8;
            want.push(d * f32::from(sc) * f32::from(i16::from(q) - 32));
        }
        b[208..].copy_from_slice(&f16b(d));
        data.extend_from_slice(&b);
    }
    assert_eq!(dequantize(GgmlType::Q6_K, &data, 16 * QK_K), want);
    let mut r = rng(14);
    let mut x = floats(&mut r, 8 * QK_K * 2, 1.0);
    // Full-scale activations of the sign that makes scale·(q − 32)·a largest.
    for v in x.iter_mut().take(64) {
        *v = -1.0;
    }
    assert_exact(GgmlType::Q6_K, 2, 8 * QK_K, &data, &x);
}

/// Single bits placed where ggml's block structs and dequantizers say they are land on exactly
/// the element they name (an independent reading of the layout, not the quantizer's inverse).
#[test]
fn k_layouts_single_elements() {
    // Q4_K, sub-block 5: high nibbles of qs[64..96]; scale code `s[9] & 15 | (s[1] >> 6) << 4`.
    let mut b = [0u8; Q4_K_BYTES];
    b[0..2].copy_from_slice(&f16b(1.0));
    b[4 + 9] = 0x03; // scale code low bits 3, min code 0
    b[4 + 1] = 0x40; // scale code bit 4 (+16) = 19; sub-block 1's scale code stays 0
    b[16 + 64 + 7] = 0x90; // element 7 of sub-block 5 has q = 9
    let x = dequantize(GgmlType::Q4_K, &b, QK_K);
    for (e, &v) in x.iter().enumerate() {
        assert_eq!(
            v,
            if e == 5 * 32 + 7 { 19.0 * 9.0 } else { 0.0 },
            "Q4_K element {e}"
        );
    }
    // Q6_K, element 128 + 64 + 21 (n 1, r 2, l 21): high nibble of ql[64 + 21], bits 4..6 of
    // qh[32 + 21], scale sc[8 + 4 + 1]; every other quant is 32 (zero).
    let mut b = [0u8; Q6_K_BYTES];
    for e in 0..QK_K {
        let (n, r, l) = (e / 128, e % 128 / 32, e % 32);
        b[128 + 32 * n + l] |= 2 << (2 * r); // q = 32
    }
    b[64 + 21] = 0x50;
    b[128 + 32 + 21] = (b[128 + 32 + 21] & !0x30) | 0x30; // high bits 3: q = 48 + 5 = 53
    b[192 + 13] = (-3i8) as u8;
    b[208..].copy_from_slice(&f16b(2.0));
    let x = dequantize(GgmlType::Q6_K, &b, QK_K);
    for (e, &v) in x.iter().enumerate() {
        let want = if e == 128 + 64 + 21 {
            2.0 * -3.0 * 21.0
        } else {
            0.0
        };
        assert_eq!(v, want, "Q6_K element {e}");
    }
}

/// Short, long, partial super-blocks and NaN/infinite `d` or `dmin` are refused, naming the
/// super-block.
#[test]
fn malformed_k_blocks_are_refused() {
    let x = floats(&mut rng(15), 2 * QK_K, 1.0);
    for ty in KTYPES {
        let good = quantize(ty, &x);
        let bb = ty.block().1;
        let bytes = |b: &[u8]| SharedBytes::copy_of(b);
        for data in [
            &good[..2 * bb - 1],
            &[&good[..], &[0]].concat()[..],
            &good[..bb],
        ] {
            assert!(matches!(
                QMatrix::new(ty, 2, QK_K, bytes(data)),
                Err(QError::Length { .. })
            ));
        }
        // 128 columns: half a super-block per row.
        assert_eq!(
            QMatrix::new(ty, 4, 128, bytes(&good)).err(),
            Some(QError::PartialBlock {
                cols: 128,
                block: 256
            })
        );
        let scales: &[usize] = if ty == GgmlType::Q4_K {
            &[0, 2]
        } else {
            &[208]
        };
        for &at in scales {
            for v in [f16::NAN, f16::INFINITY, f16::NEG_INFINITY] {
                let mut b = good.clone();
                b[bb + at..bb + at + 2].copy_from_slice(&v.to_le_bytes());
                assert_eq!(
                    QMatrix::new(ty, 2, QK_K, bytes(&b)).err(),
                    Some(QError::NonFinite { block: 1 }),
                    "{ty:?} byte {at} = {v}"
                );
            }
        }
        assert!(QMatrix::new(ty, 2, QK_K, bytes(&good)).is_ok());
    }
}
