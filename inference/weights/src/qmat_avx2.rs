//! The AVX2 + FMA + F16C dot products of [`super`] — the crate's only `unsafe`.
//!
//! Per 32-element block: the weight's quants widened to i16 (nibbles zero-extended, Q8_0 bytes
//! sign-extended), `madd_epi16` against the activation's i16 quants (pairs summed in i32: at most
//! 2·128·32767, no overflow), the two halves added, then one FMA with the product of the two
//! block scales. The K-quants go by their sub-blocks of 32, each one activation block: Q4_K's
//! nibbles as above with `d·sc_j` as the weight scale and `dmin·m_j·s_a` subtracted; Q6_K's
//! quants made signed (`q − 32`, i8) and sign-extended, each half of 16's `madd` sums multiplied
//! by its i8 scale in i32 (`mullo_epi32`, at most 2²⁹ per lane) before the FMA with `d·d_a`.
//! The `unsafe` here is of two kinds only: unaligned loads from arrays of exactly
//! the loaded size, and calling `#[target_feature]` functions, which [`Avx2`] allows only after
//! run-time detection.

use super::{GgmlType, Q16Row, QK};
use crate::kquant::{Q4_K_BYTES, Q6_K_BYTES, QK_K, q4_k_scale_min};
use std::arch::x86_64::*;

/// Proof that this CPU has AVX2, FMA and F16C: only [`Avx2::detect`] makes one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// `Some` if the CPU runs AVX2, FMA and F16C (checked with CPUID/XGETBV by std).
    pub(crate) fn detect() -> Option<Self> {
        (is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c"))
        .then_some(Self(()))
    }

    /// One weight row (whole blocks of `ty`) · `N` Q16 activation rows (the weight blocks are
    /// unpacked once for all `N`). Blocks are indexed with bounds checks: lengths cannot make a
    /// load go out of bounds.
    pub(crate) fn dot<const N: usize>(
        self,
        ty: GgmlType,
        w: &[u8],
        a: [Q16Row<'_>; N],
    ) -> [f32; N] {
        match ty {
            // SAFETY: `self` exists only if `detect` saw AVX2, FMA and F16C on this CPU.
            GgmlType::Q8_0 => unsafe { dot_q8_0(w, a) },
            // SAFETY: as above.
            GgmlType::Q4_0 => unsafe { dot_q4(w, a, 18, false) },
            // SAFETY: as above.
            GgmlType::Q4_1 => unsafe { dot_q4(w, a, 20, true) },
            // SAFETY: as above.
            GgmlType::Q5_0 => unsafe { dot_q5_0(w, a) },
            // SAFETY: as above.
            GgmlType::Q4_K => unsafe { dot_q4_k(w, a) },
            // SAFETY: as above.
            GgmlType::Q6_K => unsafe { dot_q6_k(w, a) },
            GgmlType::F32 | GgmlType::F16 => a.map(|a| super::dot_portable(ty, w, a)),
        }
    }

    /// `out[o]` = weight row `o` of `w` (rows of `row_bytes`, whole blocks of `ty`) · `a` for
    /// every row in one call — one position (decode), with no call per row. `false` for the
    /// types without such a loop, which the caller multiplies row by row.
    pub(crate) fn dot_rows(
        self,
        ty: GgmlType,
        w: &[u8],
        row_bytes: usize,
        a: Q16Row<'_>,
        out: &mut [f32],
    ) -> bool {
        // Whole rows for every output, and activations as long as a row: otherwise some
        // outputs would be left or summed over part of a row, so the caller goes row by row.
        let (_, block_bytes) = ty.block();
        if row_bytes == 0
            || out.len().checked_mul(row_bytes) != Some(w.len())
            || a.d.len().checked_mul(block_bytes) != Some(row_bytes)
        {
            return false;
        }
        match ty {
            // SAFETY: `self` exists only if `detect` saw AVX2, FMA and F16C on this CPU.
            GgmlType::Q8_0 => unsafe { rows_q8_0(w, row_bytes, &a, out) },
            // SAFETY: as above.
            GgmlType::Q4_0 => unsafe { rows_q4::<false>(w, row_bytes, &a, out) },
            // SAFETY: as above.
            GgmlType::Q4_1 => unsafe { rows_q4::<true>(w, row_bytes, &a, out) },
            _ => return false,
        }
        true
    }

    /// Dequantizes whole blocks of `ty` from `w` into `out` (as many as both hold); `false`
    /// for the non-block types, which the caller dequantizes itself.
    pub(crate) fn dequantize(self, ty: GgmlType, w: &[u8], out: &mut [f32]) -> bool {
        match ty {
            // SAFETY: `self` exists only if `detect` saw AVX2, FMA and F16C on this CPU.
            GgmlType::Q8_0 => unsafe { dequant_q8_0(w, out) },
            // SAFETY: as above.
            GgmlType::Q4_0 => unsafe { dequant_q4(w, out, 18, false) },
            // SAFETY: as above.
            GgmlType::Q4_1 => unsafe { dequant_q4(w, out, 20, true) },
            // SAFETY: as above.
            GgmlType::Q4_K => unsafe { dequant_q4_k(w, out) },
            // SAFETY: as above.
            GgmlType::Q6_K => unsafe { dequant_q6_k(w, out) },
            GgmlType::Q5_0 | GgmlType::F32 | GgmlType::F16 => return false,
        }
        true
    }
}

#[target_feature(enable = "avx2")]
fn store8(o: &mut [f32; 8], v: __m256) {
    // SAFETY: writes the 32 bytes of `o`; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_ps(o.as_mut_ptr(), v) }
}

/// Q8_0 blocks to f32: `d·q`.
#[target_feature(enable = "avx2,fma,f16c")]
fn dequant_q8_0(w: &[u8], out: &mut [f32]) {
    let (blocks, _) = out.as_chunks_mut::<QK>();
    for (b, o) in w.chunks_exact(34).zip(blocks) {
        let (Ok(lo), Ok(hi)) = (
            <&[u8; 16]>::try_from(&b[2..18]),
            <&[u8; 16]>::try_from(&b[18..34]),
        ) else {
            break; // unreachable: `chunks_exact(34)` leaves 32 bytes after the scale
        };
        let (lo, hi) = (load16(lo), load16(hi));
        let d = _mm256_set1_ps(f16(b[0], b[1]));
        let parts = [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)];
        let (o8, _) = o.as_chunks_mut::<8>();
        for (o8, p) in o8.iter_mut().zip(parts) {
            let q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(p));
            store8(o8, _mm256_mul_ps(q, d));
        }
    }
}

/// Q4_0 / Q4_1 blocks to f32: `d·q − 8·d` / `d·q + m`.
#[target_feature(enable = "avx2,fma,f16c")]
fn dequant_q4(w: &[u8], out: &mut [f32], bb: usize, with_min: bool) {
    let mask = _mm_set1_epi8(0x0f);
    let (blocks, _) = out.as_chunks_mut::<QK>();
    for (b, o) in w.chunks_exact(bb).zip(blocks) {
        let Ok(nib) = <&[u8; 16]>::try_from(&b[bb - 16..]) else {
            break; // unreachable: the block ends with its 16 nibble bytes
        };
        let packed = load16(nib);
        let lo = _mm_and_si128(packed, mask);
        let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
        let dw = f16(b[0], b[1]);
        let d = _mm256_set1_ps(dw);
        let m = _mm256_set1_ps(if with_min { f16(b[2], b[3]) } else { -8.0 * dw });
        let parts = [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)];
        let (o8, _) = o.as_chunks_mut::<8>();
        for (o8, p) in o8.iter_mut().zip(parts) {
            let q = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(p));
            store8(o8, _mm256_fmadd_ps(q, d, m));
        }
    }
}

#[target_feature(enable = "avx2")]
fn load16(b: &[u8; 16]) -> __m128i {
    // SAFETY: reads the 16 bytes of `b`; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

#[target_feature(enable = "avx2")]
fn load_i16(b: &[i16; 16]) -> __m256i {
    // SAFETY: reads the 32 bytes of `b`; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

#[target_feature(enable = "avx2,f16c")]
fn f16(lo: u8, hi: u8) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
        u16::from_le_bytes([lo, hi]),
    ))))
}

#[target_feature(enable = "avx2")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
}

/// The activation row's block `i`: its two halves of 16 quants, scale, scaled sum.
fn act_block<'a>(a: &Q16Row<'a>, i: usize) -> Option<(&'a [i16; 16], &'a [i16; 16], f32, f32)> {
    let q = a.qs.get(i * QK..(i + 1) * QK)?;
    let (lo, hi) = q.split_at(QK / 2);
    Some((
        lo.try_into().ok()?,
        hi.try_into().ok()?,
        *a.d.get(i)?,
        *a.s.get(i)?,
    ))
}

/// Σ w·a over one block as 8 i32 lanes → f32: `w0`/`w1` are elements 0..16 and 16..32 as i16.
#[target_feature(enable = "avx2")]
fn block_dot(w0: __m256i, w1: __m256i, a0: &[i16; 16], a1: &[i16; 16]) -> __m256 {
    let p0 = _mm256_madd_epi16(w0, load_i16(a0));
    let p1 = _mm256_madd_epi16(w1, load_i16(a1));
    _mm256_cvtepi32_ps(_mm256_add_epi32(p0, p1))
}

/// Q8_0: `[d: f16][32 × i8]` per block.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q8_0<const N: usize>(w: &[u8], a: [Q16Row<'_>; N]) -> [f32; N] {
    if let [one] = a.as_slice() {
        let mut out = [0.0f32; N];
        out[0] = dot1_q8_0(w, one);
        return out;
    }
    let mut acc = [_mm256_setzero_ps(); N];
    for (i, b) in w.chunks_exact(34).enumerate() {
        let (Ok(lo), Ok(hi)) = (
            <&[u8; 16]>::try_from(&b[2..18]),
            <&[u8; 16]>::try_from(&b[18..34]),
        ) else {
            break; // unreachable: `chunks_exact(34)` leaves 32 bytes after the scale
        };
        let w0 = _mm256_cvtepi8_epi16(load16(lo));
        let w1 = _mm256_cvtepi8_epi16(load16(hi));
        let dw = f16(b[0], b[1]);
        for (acc, a) in acc.iter_mut().zip(&a) {
            let Some((a0, a1, d, _)) = act_block(a, i) else {
                break;
            };
            *acc = _mm256_fmadd_ps(block_dot(w0, w1, a0, a1), _mm256_set1_ps(dw * d), *acc);
        }
    }
    let mut out = [0.0f32; N];
    for (o, acc) in out.iter_mut().zip(acc) {
        *o = hsum(acc);
    }
    out
}

/// Q4_0 (`[d][16 nibble bytes]`, value `d·(q − 8)`) and Q4_1 (`[d][m][16 nibble bytes]`, value
/// `d·q + m`); `bb` is the block's bytes.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4<const N: usize>(w: &[u8], a: [Q16Row<'_>; N], bb: usize, with_min: bool) -> [f32; N] {
    if let [one] = a.as_slice() {
        let mut out = [0.0f32; N];
        out[0] = if with_min {
            dot1_q4::<true>(w, one)
        } else {
            dot1_q4::<false>(w, one)
        };
        return out;
    }
    let mask = _mm_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); N];
    let mut offset = [0.0f32; N];
    for (i, b) in w.chunks_exact(bb).enumerate() {
        let Ok(nib) = <&[u8; 16]>::try_from(&b[bb - 16..]) else {
            break; // unreachable: the block ends with its 16 nibble bytes
        };
        let packed = load16(nib);
        // Low nibbles are elements 0..16, high nibbles 16..32.
        let w0 = _mm256_cvtepu8_epi16(_mm_and_si128(packed, mask));
        let w1 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), mask));
        let dw = f16(b[0], b[1]);
        // Q4_1 adds `m·Σa`, Q4_0 subtracts `8·d·Σa`: both times the block's `s = d_a·Σq`.
        let per_s = if with_min { f16(b[2], b[3]) } else { -8.0 * dw };
        for ((acc, off), a) in acc.iter_mut().zip(&mut offset).zip(&a) {
            let Some((a0, a1, d, s)) = act_block(a, i) else {
                break;
            };
            *acc = _mm256_fmadd_ps(block_dot(w0, w1, a0, a1), _mm256_set1_ps(dw * d), *acc);
            *off += per_s * s;
        }
    }
    let mut out = [0.0f32; N];
    for ((o, acc), off) in out.iter_mut().zip(acc).zip(offset) {
        *o = hsum(acc) + off;
    }
    out
}

/// One activation row's halves of block `q` (elements 0..16 and 16..32).
fn halves(q: &[i16; QK]) -> (&[i16; 16], &[i16; 16]) {
    let (h, _) = q.as_chunks::<16>();
    (&h[0], &h[1])
}

/// [`dot1_q8_0`] of every row of `w` (rows of `row_bytes`) into `out`.
#[target_feature(enable = "avx2,fma,f16c")]
fn rows_q8_0(w: &[u8], row_bytes: usize, a: &Q16Row<'_>, out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        *o = dot1_q8_0(row, a);
    }
}

/// [`dot1_q4`] of every row of `w` (rows of `row_bytes`) into `out`.
#[target_feature(enable = "avx2,fma,f16c")]
fn rows_q4<const MIN: bool>(w: &[u8], row_bytes: usize, a: &Q16Row<'_>, out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        *o = dot1_q4::<MIN>(row, a);
    }
}

/// [`dot_q8_0`] for one activation row (decode): the weight and activation blocks zipped, so
/// no block is indexed (no bounds check per block).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot1_q8_0(w: &[u8], a: &Q16Row<'_>) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let (qs, _) = a.qs.as_chunks::<QK>();
    for ((b, q), &d) in w.chunks_exact(34).zip(qs).zip(a.d) {
        let (Ok(lo), Ok(hi)) = (
            <&[u8; 16]>::try_from(&b[2..18]),
            <&[u8; 16]>::try_from(&b[18..34]),
        ) else {
            break; // unreachable: `chunks_exact(34)` leaves 32 bytes after the scale
        };
        let (a0, a1) = halves(q);
        let w0 = _mm256_cvtepi8_epi16(load16(lo));
        let w1 = _mm256_cvtepi8_epi16(load16(hi));
        let dot = block_dot(w0, w1, a0, a1);
        acc = _mm256_fmadd_ps(dot, _mm256_set1_ps(f16(b[0], b[1]) * d), acc);
    }
    hsum(acc)
}

/// [`dot_q4`] for one activation row (decode), Q4_1 if `MIN` else Q4_0: blocks zipped (no
/// bounds check per block), the type fixed at compile time, and Q4_1's scale and minimum
/// converted from f16 by one instruction.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot1_q4<const MIN: bool>(w: &[u8], a: &Q16Row<'_>) -> f32 {
    let bb = if MIN { 20 } else { 18 };
    let mask = _mm_set1_epi8(0x0f);
    let mut acc = _mm256_setzero_ps();
    let mut off = 0.0f32;
    let (qs, _) = a.qs.as_chunks::<QK>();
    for (((b, q), &d), &s) in w.chunks_exact(bb).zip(qs).zip(a.d).zip(a.s) {
        let Ok(nib) = <&[u8; 16]>::try_from(&b[bb - 16..]) else {
            break; // unreachable: the block ends with its 16 nibble bytes
        };
        let (a0, a1) = halves(q);
        let packed = load16(nib);
        let w0 = _mm256_cvtepu8_epi16(_mm_and_si128(packed, mask));
        let w1 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), mask));
        let dot = block_dot(w0, w1, a0, a1);
        let (dw, per_s) = if MIN {
            // [d, m] as two f16 in one u32: lanes 0 and 1 after one conversion.
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from_le_bytes([
                b[0], b[1], b[2], b[3],
            ])));
            (_mm_cvtss_f32(dm), _mm_cvtss_f32(_mm_movehdup_ps(dm)))
        } else {
            let dw = f16(b[0], b[1]);
            (dw, -8.0 * dw)
        };
        acc = _mm256_fmadd_ps(dot, _mm256_set1_ps(dw * d), acc);
        off = per_s.mul_add(s, off);
    }
    hsum(acc) + off
}

/// 16 bits of `qh` as 16 i16 lanes of 16 (bit set) or 0: the 5th bit of 16 elements.
#[target_feature(enable = "avx2")]
fn high_bits(bits: u16) -> __m256i {
    let sel = _mm256_setr_epi16(
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        512,
        1024,
        2048,
        4096,
        8192,
        16384,
        i16::MIN,
    );
    let set = _mm256_cmpeq_epi16(_mm256_and_si256(_mm256_set1_epi16(bits as i16), sel), sel);
    _mm256_and_si256(set, _mm256_set1_epi16(16))
}

/// Q5_0 (`[d][qh: u32][16 nibble bytes]`, value `d·(q − 16)`).
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q5_0<const N: usize>(w: &[u8], a: [Q16Row<'_>; N]) -> [f32; N] {
    let mask = _mm_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); N];
    let mut offset = [0.0f32; N];
    for (i, b) in w.chunks_exact(22).enumerate() {
        let Ok(nib) = <&[u8; 16]>::try_from(&b[6..22]) else {
            break; // unreachable: the block ends with its 16 nibble bytes
        };
        let packed = load16(nib);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let w0 = _mm256_or_si256(
            _mm256_cvtepu8_epi16(_mm_and_si128(packed, mask)),
            high_bits(qh as u16),
        );
        let w1 = _mm256_or_si256(
            _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), mask)),
            high_bits((qh >> 16) as u16),
        );
        let dw = f16(b[0], b[1]);
        for ((acc, off), a) in acc.iter_mut().zip(&mut offset).zip(&a) {
            let Some((a0, a1, d, s)) = act_block(a, i) else {
                break;
            };
            *acc = _mm256_fmadd_ps(block_dot(w0, w1, a0, a1), _mm256_set1_ps(dw * d), *acc);
            *off -= 16.0 * dw * s;
        }
    }
    let mut out = [0.0f32; N];
    for ((o, acc), off) in out.iter_mut().zip(acc).zip(offset) {
        *o = hsum(acc) + off;
    }
    out
}

#[target_feature(enable = "avx2")]
fn load32(b: &[u8; 32]) -> __m256i {
    // SAFETY: reads the 32 bytes of `b`; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// The 32 bytes of `b` at `at`, if they are inside.
fn bytes32(b: &[u8], at: usize) -> Option<&[u8; 32]> {
    b.get(at..at + 32)?.try_into().ok()
}

/// Q4_K super-block `b`'s sub-blocks `2p` and `2p + 1` as 32 u8 quants each (low and high
/// nibbles of its bytes `16 + 32p ..`).
#[target_feature(enable = "avx2")]
fn q4_k_pair(b: &[u8], p: usize) -> Option<[__m256i; 2]> {
    let mask = _mm256_set1_epi8(0x0f);
    let packed = load32(bytes32(b, 16 + 32 * p)?);
    Some([
        _mm256_and_si256(packed, mask),
        _mm256_and_si256(_mm256_srli_epi16(packed, 4), mask),
    ])
}

/// Q6_K super-block `b`'s 32-element chunk `4n + r` as 32 i8 quants `q − 32`.
#[target_feature(enable = "avx2")]
fn q6_k_chunk(b: &[u8], n: usize, r: usize) -> Option<__m256i> {
    let ql = load32(bytes32(b, 64 * n + 32 * (r & 1))?);
    let qh = load32(bytes32(b, 128 + 32 * n)?);
    let mask = _mm256_set1_epi8(0x0f);
    let low = if r < 2 {
        _mm256_and_si256(ql, mask)
    } else {
        _mm256_and_si256(_mm256_srli_epi16(ql, 4), mask)
    };
    // Bits 2r, 2r+1 of each byte (bits shifted in from the next byte are masked off); ≤ 3, so
    // the 16-bit shift by 4 cannot carry into the next byte.
    let shift = _mm_cvtsi32_si128(2 * r as i32);
    let high = _mm256_and_si256(_mm256_srl_epi16(qh, shift), _mm256_set1_epi8(3));
    let q = _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
    Some(_mm256_sub_epi8(q, _mm256_set1_epi8(32)))
}

/// Q4_K: per sub-block of 32 (= activation block `8i + j`), one block dot product times
/// `d·sc_j·d_a`, and `dmin·m_j·s_a` subtracted.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4_k<const N: usize>(w: &[u8], a: [Q16Row<'_>; N]) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    let mut offset = [0.0f32; N];
    for (i, b) in w.chunks_exact(Q4_K_BYTES).enumerate() {
        let (d, dmin) = (f16(b[0], b[1]), f16(b[2], b[3]));
        for p in 0..4 {
            let Some(pair) = q4_k_pair(b, p) else {
                break; // unreachable: the super-block holds 4 × 32 nibble bytes
            };
            for (h, q) in pair.into_iter().enumerate() {
                let j = 2 * p + h;
                let (sc, m) = q4_k_scale_min(&b[4..16], j);
                let (dsc, dm) = (d * f32::from(sc), dmin * f32::from(m));
                let w0 = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(q));
                let w1 = _mm256_cvtepu8_epi16(_mm256_extracti128_si256::<1>(q));
                for ((acc, off), a) in acc.iter_mut().zip(&mut offset).zip(&a) {
                    let Some((a0, a1, da, s)) = act_block(a, 8 * i + j) else {
                        break;
                    };
                    let v = block_dot(w0, w1, a0, a1);
                    *acc = _mm256_fmadd_ps(v, _mm256_set1_ps(dsc * da), *acc);
                    *off -= dm * s;
                }
            }
        }
    }
    let mut out = [0.0f32; N];
    for ((o, acc), off) in out.iter_mut().zip(acc).zip(offset) {
        *o = hsum(acc) + off;
    }
    out
}

/// Q6_K: per activation block of 32, `madd` of the signed quants with the activations (pairs in
/// i32, ≤ 2·32·32767), times each half's i8 scale (`mullo`, ≤ 2²⁸), the halves added (≤ 2²⁹:
/// no overflow), then one FMA with `d·d_a`.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q6_k<const N: usize>(w: &[u8], a: [Q16Row<'_>; N]) -> [f32; N] {
    let mut acc = [_mm256_setzero_ps(); N];
    for (i, b) in w.chunks_exact(Q6_K_BYTES).enumerate() {
        let d = f16(b[208], b[209]);
        for c in 0..8 {
            let Some(q) = q6_k_chunk(b, c / 4, c % 4) else {
                break; // unreachable: the super-block holds `ql` and `qh` in full
            };
            let w0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
            let w1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(q));
            let s0 = _mm256_set1_epi32(i32::from(b[192 + 2 * c] as i8));
            let s1 = _mm256_set1_epi32(i32::from(b[193 + 2 * c] as i8));
            for (acc, a) in acc.iter_mut().zip(&a) {
                let Some((a0, a1, da, _)) = act_block(a, 8 * i + c) else {
                    break;
                };
                let p0 = _mm256_mullo_epi32(_mm256_madd_epi16(w0, load_i16(a0)), s0);
                let p1 = _mm256_mullo_epi32(_mm256_madd_epi16(w1, load_i16(a1)), s1);
                let v = _mm256_cvtepi32_ps(_mm256_add_epi32(p0, p1));
                *acc = _mm256_fmadd_ps(v, _mm256_set1_ps(d * da), *acc);
            }
        }
    }
    let mut out = [0.0f32; N];
    for (o, acc) in out.iter_mut().zip(acc) {
        *o = hsum(acc);
    }
    out
}

/// 32 quants (u8 or i8 by `signed`) to f32 `q·scale[k/16] + add` into `o`.
#[target_feature(enable = "avx2,fma")]
fn store32(o: &mut [f32; QK], q: __m256i, signed: bool, scale: [f32; 2], add: f32) {
    let (lo, hi) = (_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
    let parts = [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)];
    let (o8, _) = o.as_chunks_mut::<8>();
    for (k, (o8, p)) in o8.iter_mut().zip(parts).enumerate() {
        let wide = if signed {
            _mm256_cvtepi8_epi32(p)
        } else {
            _mm256_cvtepu8_epi32(p)
        };
        let v = _mm256_fmadd_ps(
            _mm256_cvtepi32_ps(wide),
            _mm256_set1_ps(scale[k / 2]),
            _mm256_set1_ps(add),
        );
        store8(o8, v);
    }
}

/// Q4_K super-blocks to f32: `d·sc·q − dmin·m`.
#[target_feature(enable = "avx2,fma,f16c")]
fn dequant_q4_k(w: &[u8], out: &mut [f32]) {
    let (blocks, _) = out.as_chunks_mut::<QK_K>();
    for (b, o) in w.chunks_exact(Q4_K_BYTES).zip(blocks) {
        let (d, dmin) = (f16(b[0], b[1]), f16(b[2], b[3]));
        let (subs, _) = o.as_chunks_mut::<QK>();
        for (p, two) in subs.chunks_exact_mut(2).enumerate() {
            let Some(pair) = q4_k_pair(b, p) else {
                break; // unreachable: the super-block holds 4 × 32 nibble bytes
            };
            for (h, (o, q)) in two.iter_mut().zip(pair).enumerate() {
                let (sc, m) = q4_k_scale_min(&b[4..16], 2 * p + h);
                let ds = d * f32::from(sc);
                store32(o, q, false, [ds, ds], -dmin * f32::from(m));
            }
        }
    }
}

/// Q6_K super-blocks to f32: `d·sc·(q − 32)`.
#[target_feature(enable = "avx2,fma,f16c")]
fn dequant_q6_k(w: &[u8], out: &mut [f32]) {
    let (blocks, _) = out.as_chunks_mut::<QK_K>();
    for (b, o) in w.chunks_exact(Q6_K_BYTES).zip(blocks) {
        let d = f16(b[208], b[209]);
        let (chunks, _) = o.as_chunks_mut::<QK>();
        for (c, o) in chunks.iter_mut().enumerate() {
            let Some(q) = q6_k_chunk(b, c / 4, c % 4) else {
                break; // unreachable: the super-block holds `ql` and `qh` in full
            };
            let s = |k: usize| d * f32::from(b[192 + k] as i8);
            store32(o, q, true, [s(2 * c), s(2 * c + 1)], 0.0);
        }
    }
}
