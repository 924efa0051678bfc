//! ggml's K-quant super-blocks Q4_K and Q6_K (256 elements each): layout, dequantization, simple
//! quantizers and the portable dot product against 16-bit activation blocks of 32.
//!
//! Layouts (ggml-common.h, `block_q4_K` / `block_q6_K`; element order from
//! `dequantize_row_q4_K` / `dequantize_row_q6_K`):
//!
//! - **Q4_K**, 144 bytes: f16 `d`, f16 `dmin`, 12 bytes of 6-bit scale and min codes for 8
//!   sub-blocks of 32, 128 bytes of nibbles. Sub-block `j` is byte range `32·(j/2)..+32`, low
//!   nibbles for even `j`, high for odd; `x = d·sc_j·q − dmin·m_j`. Codes `j < 4`: `sc = s[j] &
//!   63`, `m = s[j+4] & 63`; `j ≥ 4`: `sc = s[j+4] & 15 | (s[j−4] >> 6) << 4`, `m = s[j+4] >> 4 |
//!   (s[j] >> 6) << 4`.
//! - **Q6_K**, 210 bytes: 128 bytes `ql` (low 4 bits), 64 bytes `qh` (high 2 bits), 16 i8
//!   scales for sub-blocks of 16, f16 `d`; `x = d·sc_s·(q − 32)`. Element `128n + 32r + l`
//!   (`n < 2`, `r < 4`, `l < 32`) has its low bits in `ql[64n + 32·(r&1) + l]` (low nibble for
//!   `r < 2`, high for `r ≥ 2`), its high bits at bit `2r` of `qh[32n + l]`, its scale
//!   `sc[8n + 2r + l/16]`.

use crate::qmat::{Q16Row, QK};
use half::f16;

/// Elements per K-quant super-block.
pub(crate) const QK_K: usize = 256;
/// Bytes per Q4_K super-block.
pub(crate) const Q4_K_BYTES: usize = 144;
/// Bytes per Q6_K super-block.
pub(crate) const Q6_K_BYTES: usize = 210;

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Q4_K sub-block `j`'s 6-bit (scale, min) codes from the 12 packed bytes.
pub(crate) fn q4_k_scale_min(s: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Packs 8 (scale, min) 6-bit codes into Q4_K's 12 bytes (the inverse of [`q4_k_scale_min`]).
fn q4_k_pack_scales(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4);
    }
    s
}

/// Q4_K sub-block `j`'s 32 quants (0..=15) from the super-block's 128 nibble bytes.
pub(crate) fn q4_k_quants(qs: &[u8], j: usize) -> impl Iterator<Item = u8> + '_ {
    let shift = 4 * (j % 2);
    qs[32 * (j / 2)..32 * (j / 2) + 32]
        .iter()
        .map(move |&b| (b >> shift) & 0x0f)
}

/// Q6_K: the 32 quants (0..=63) of the super-block's 32-element chunk `c` (`0..8`).
pub(crate) fn q6_k_quants(b: &[u8], c: usize) -> impl Iterator<Item = u8> + '_ {
    let (n, r) = (c / 4, c % 4);
    let ql = &b[64 * n + 32 * (r & 1)..][..32];
    let qh = &b[128 + 32 * n..][..32];
    let shift = 4 * (r / 2);
    ql.iter()
        .zip(qh)
        .map(move |(&l, &h)| ((l >> shift) & 0x0f) | (((h >> (2 * r)) & 3) << 4))
}

/// Q6_K's i8 scale of sub-block `s` (`0..16`).
pub(crate) fn q6_k_scale(b: &[u8], s: usize) -> i8 {
    b[192 + s] as i8
}

/// Dequantizes whole Q4_K super-blocks of `data` onto `out`.
pub(crate) fn dequantize_q4_k(data: &[u8], out: &mut Vec<f32>) {
    for b in data.chunks_exact(Q4_K_BYTES) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        for j in 0..8 {
            let (sc, m) = q4_k_scale_min(&b[4..16], j);
            let (d1, m1) = (d * f32::from(sc), dmin * f32::from(m));
            out.extend(q4_k_quants(&b[16..], j).map(|q| d1 * f32::from(q) - m1));
        }
    }
}

/// Dequantizes whole Q6_K super-blocks of `data` onto `out`.
pub(crate) fn dequantize_q6_k(data: &[u8], out: &mut Vec<f32>) {
    for b in data.chunks_exact(Q6_K_BYTES) {
        let d = f16_at(b, 208);
        for c in 0..8 {
            let (s0, s1) = (q6_k_scale(b, 2 * c), q6_k_scale(b, 2 * c + 1));
            out.extend(q6_k_quants(b, c).enumerate().map(|(l, q)| {
                let sc = if l < 16 { s0 } else { s1 };
                d * f32::from(sc) * f32::from(i16::from(q) - 32)
            }));
        }
    }
}

/// Whether every super-block's `d` (and Q4_K's `dmin`) is finite; `Err(block)` names the first
/// that is not.
pub(crate) fn check_finite(q4: bool, data: &[u8]) -> Result<(), usize> {
    let bad = if q4 {
        data.chunks_exact(Q4_K_BYTES)
            .position(|b| !(f16_at(b, 0).is_finite() && f16_at(b, 2).is_finite()))
    } else {
        data.chunks_exact(Q6_K_BYTES)
            .position(|b| !f16_at(b, 208).is_finite())
    };
    bad.map_or(Ok(()), Err)
}

/// Quantizes whole super-blocks of 256 to Q4_K. Simple, not llama.cpp's search: per sub-block
/// of 32 the range `[min(0, lo), hi]` is split into 15 steps; the largest step and the largest
/// `−min` become `d·63` and `dmin·63`, the 6-bit codes round up to them, and each quant rounds
/// against the stored (f16, coded) scale and min.
pub(crate) fn quantize_q4_k(x: &[f32], out: &mut Vec<u8>) {
    for sb in x.chunks(QK_K) {
        let mut step = [0f32; 8];
        let mut neg_min = [0f32; 8];
        for (j, sub) in sb.chunks(32).enumerate() {
            let lo = sub.iter().fold(0f32, |m, &v| m.min(v));
            let hi = sub.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            step[j] = (hi - lo).max(0.0) / 15.0;
            neg_min[j] = -lo;
        }
        let d = f16::from_f32(step.iter().fold(0f32, |m, &v| m.max(v)) / 63.0);
        let dmin = f16::from_f32(neg_min.iter().fold(0f32, |m, &v| m.max(v)) / 63.0);
        let code = |v: f32, unit: f32| {
            if unit > 0.0 {
                (v / unit).ceil().clamp(0.0, 63.0) as u8
            } else {
                0
            }
        };
        // Codes round up, so the stored step and min still cover the sub-block's range.
        let sc: [u8; 8] = std::array::from_fn(|j| code(step[j], d.to_f32()));
        let m: [u8; 8] = std::array::from_fn(|j| code(neg_min[j], dmin.to_f32()));
        out.extend_from_slice(&d.to_le_bytes());
        out.extend_from_slice(&dmin.to_le_bytes());
        out.extend_from_slice(&q4_k_pack_scales(&sc, &m));
        let q: Vec<u8> = sb
            .chunks(32)
            .enumerate()
            .flat_map(|(j, sub)| {
                let de = d.to_f32() * f32::from(sc[j]);
                let me = dmin.to_f32() * f32::from(m[j]);
                let inv = if de > 0.0 { 1.0 / de } else { 0.0 };
                sub.iter()
                    .map(move |&v| ((v + me) * inv).round().clamp(0.0, 15.0) as u8)
            })
            .collect();
        for pair in q.chunks(64) {
            out.extend((0..32).map(|l| pair[l] | (pair[l + 32] << 4)));
        }
    }
}

/// Quantizes whole super-blocks of 256 to Q6_K. Simple: per sub-block of 16 the step is
/// `max|x| / 31`; the largest step becomes `d·127`, the i8 scales round up to it, and each quant
/// rounds against the stored (f16, coded) scale into −32..=31.
pub(crate) fn quantize_q6_k(x: &[f32], out: &mut Vec<u8>) {
    for sb in x.chunks(QK_K) {
        let step: Vec<f32> = sb
            .chunks(16)
            .map(|s| s.iter().fold(0f32, |m, v| m.max(v.abs())) / 31.0)
            .collect();
        let d = f16::from_f32(step.iter().fold(0f32, |m, &v| m.max(v)) / 127.0);
        let sc: Vec<i8> = step
            .iter()
            .map(|&s| {
                if d.to_f32() > 0.0 {
                    (s / d.to_f32()).ceil().clamp(0.0, 127.0) as i8
                } else {
                    0
                }
            })
            .collect();
        let q: Vec<u8> = sb
            .iter()
            .enumerate()
            .map(|(e, &v)| {
                let de = d.to_f32() * f32::from(sc[e / 16]);
                let inv = if de > 0.0 { 1.0 / de } else { 0.0 };
                ((v * inv).round().clamp(-32.0, 31.0) + 32.0) as u8
            })
            .collect();
        let mut block = [0u8; Q6_K_BYTES];
        for (e, &qe) in q.iter().enumerate() {
            let (n, r, l) = (e / 128, e % 128 / 32, e % 32);
            block[64 * n + 32 * (r & 1) + l] |= (qe & 0x0f) << (4 * (r / 2));
            block[128 + 32 * n + l] |= (qe >> 4) << (2 * r);
        }
        for (s, &v) in sc.iter().enumerate() {
            block[192 + s] = v as u8;
        }
        block[208..].copy_from_slice(&d.to_le_bytes());
        out.extend_from_slice(&block);
    }
}

/// One Q4_K weight row · one Q16 activation row (whole super-blocks; sub-block `j` of
/// super-block `i` is activation block `8i + j`): `Σ d·sc·d_a·Σ q·a_q − dmin·m·s_a`. Loops over
/// fixed-size arrays, so the compiler vectorizes them.
pub(crate) fn dot_q4_k(w: &[u8], a: Q16Row<'_>) -> f32 {
    let (aq, _) = a.qs.as_chunks::<QK>();
    let mut sum = 0f32;
    for (i, b) in w.chunks_exact(Q4_K_BYTES).enumerate() {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let (pairs, _) = b[16..].as_chunks::<32>();
        for (p, qs) in pairs.iter().enumerate() {
            // Sub-blocks 2p (low nibbles) and 2p + 1 (high nibbles) in one pass.
            let k = 8 * i + 2 * p;
            let (x0, x1) = (&aq[k], &aq[k + 1]);
            let (mut lo, mut hi) = (0i32, 0i32);
            for l in 0..QK {
                lo += i32::from(qs[l] & 0x0f) * i32::from(x0[l]);
                hi += i32::from(qs[l] >> 4) * i32::from(x1[l]);
            }
            for (h, isum) in [lo, hi].into_iter().enumerate() {
                let (sc, m) = q4_k_scale_min(&b[4..16], 2 * p + h);
                let k = k + h;
                sum += d * f32::from(sc) * a.d[k] * isum as f32 - dmin * f32::from(m) * a.s[k];
            }
        }
    }
    sum
}

/// One Q6_K weight row · one Q16 activation row: per activation block of 32, two integer sums
/// of `(q − 32)·a_q` over 16 elements each (at most 32·32767·16 < 2²⁵), weighted by their
/// sub-blocks' i8 scales in i64.
pub(crate) fn dot_q6_k(w: &[u8], a: Q16Row<'_>) -> f32 {
    let (aq, _) = a.qs.as_chunks::<QK>();
    let mut sum = 0f32;
    for (i, b) in w.chunks_exact(Q6_K_BYTES).enumerate() {
        let d = f16_at(b, 208);
        let (ql, _) = b[..128].as_chunks::<32>();
        let (qh, _) = b[128..192].as_chunks::<32>();
        for c in 0..8 {
            let (n, r) = (c / 4, c % 4);
            let (ql, qh) = (&ql[2 * n + (r & 1)], &qh[n]);
            let (sl, sh) = (4 * (r / 2), 2 * r);
            let k = 8 * i + c;
            let x = &aq[k];
            let mut half = [0i32; 2];
            for (hs, half) in half.iter_mut().enumerate() {
                for l in 16 * hs..16 * hs + 16 {
                    let q = ((ql[l] >> sl) & 0x0f) | (((qh[l] >> sh) & 3) << 4);
                    *half += (i32::from(q) - 32) * i32::from(x[l]);
                }
            }
            let isum = i64::from(q6_k_scale(b, 2 * c)) * i64::from(half[0])
                + i64::from(q6_k_scale(b, 2 * c + 1)) * i64::from(half[1]);
            sum += d * a.d[k] * isum as f32;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use crate::gguf::{GgmlType, Gguf, GgufError};
    use crate::gguf_write::GgufWriter;

    /// Q4_K and Q6_K tensors go through the GGUF writer and reader; a row that is not whole
    /// super-blocks is refused at parse time.
    #[test]
    fn gguf_round_trip_and_partial_super_block() {
        let v: Vec<f32> = (0..512)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0)
            .collect();
        let mut w = GgufWriter::new();
        w.tensor("q4k", &[256, 2], GgmlType::Q4_K, &v);
        w.tensor("q6k", &[512], GgmlType::Q6_K, &v);
        let b = w.finish();
        let g = Gguf::parse(&b).unwrap();
        for (name, ty, tol) in [("q4k", GgmlType::Q4_K, 0.1), ("q6k", GgmlType::Q6_K, 0.025)] {
            let t = g.tensor(name).unwrap();
            assert_eq!((t.ty, t.data.len()), (ty, 2 * ty.block().1));
            let worst = t
                .to_f32()
                .iter()
                .zip(&v)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst <= tol, "{name}: {worst}");
        }
        // The same bytes claiming rows of 128 (4 × 128 elements).
        let mut w = GgufWriter::new();
        w.tensor("q4k", &[256, 2], GgmlType::Q4_K, &v);
        let mut b = w.finish();
        let at = b.windows(3).position(|w| w == b"q4k").unwrap() + 3 + 4;
        b[at..at + 8].copy_from_slice(&128u64.to_le_bytes());
        b[at + 8..at + 16].copy_from_slice(&4u64.to_le_bytes());
        assert_eq!(
            Gguf::parse(&b).err(),
            Some(GgufError::PartialBlock("q4k".into()))
        );
    }
}
