//! Matrices that stay in their GGUF storage type (F32, F16, Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K) and are multiplied
//! without expanding them to f32: each product dequantizes inside the dot product, block by block.
//!
//! The activations are first quantized to 16 bits in blocks of 32 (one f32 scale `d = max|x| /
//! 32767` and the block's sum `s = d·Σq` per block), so a weight block's dot product is one
//! integer dot product and two multiply-adds:
//!
//! - Q8_0: `d_w·d_a·Σ w_q·a_q`
//! - Q4_0: `d_w·(d_a·Σ w_q·a_q − 8·s_a)` (stored nibbles are `w_q + 8`)
//! - Q4_1: `d_w·d_a·Σ w_q·a_q + m_w·s_a`
//! - Q5_0: `d_w·(d_a·Σ w_q·a_q − 16·s_a)` (5-bit quants: 4 low bits + one bit of `qh`)
//! - Q4_K (super-blocks of 256, sub-blocks of 32 = one activation block each):
//!   `d·sc_j·d_a·Σ w_q·a_q − dmin·m_j·s_a`
//! - Q6_K (sub-blocks of 16, two per activation block): `d·d_a·(sc_0·Σ₀ + sc_1·Σ₁)`, where
//!   `Σ₀`, `Σ₁` are the integer sums of `(w_q − 32)·a_q` over each half of 16 — the quants are
//!   made signed before the product, so no per-16 activation sums are needed
//!
//! Layouts and the K-quant arithmetic: `kquant`.
//!
//! The only error against dequantize-then-f32 is the activations' rounding: at most `d_a / 2`
//! per element, so at most `Σ |w_i|·d_a(i)/2` per output (plus f32 rounding) — the bound the tests
//! assert. llama.cpp rounds activations to 8 bits (Q8_0/Q8_1), 256× coarser: on SmolLM2 that
//! moved logits by up to 0.75 against the f32 reference (top-5 changed); 16 bits keep them within
//! the reference test's 1e-2 at about the same speed (`madd_epi16` instead of `maddubs_epi16`). F32 and F16 rows (the tiny test models use F16) are dequantized one row at a time and
//! multiplied with the f32 activations as they are.
//!
//! Two kernels compute the same integer dot products: a portable one, and AVX2 + FMA + F16C chosen
//! at run time ([`Kernel::best`]); the AVX2 one lives in `qmat_avx2`, the crate's only `unsafe`.

use crate::gguf::{GgmlType, TensorInfo, dequantize};
use half::f16;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// Elements per quantized block (the 32-element block types, the K-quants' sub-blocks of 32
/// and the activations' Q16 blocks).
pub const QK: usize = 32;

/// Why a quantized matrix or product was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QError {
    /// The row length is not a whole number of the type's blocks.
    #[error("quantized matrix: {cols} columns are not a whole number of {block}-element blocks")]
    PartialBlock {
        /// Row length.
        cols: usize,
        /// Elements per block of the type.
        block: usize,
    },
    /// The data is not exactly `rows × cols` elements of the type.
    #[error("quantized matrix: {got} bytes of data, {expected} expected for {rows}×{cols} {ty:?}")]
    Length {
        /// Bytes given.
        got: usize,
        /// Bytes a `rows × cols` matrix of `ty` takes.
        expected: usize,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// Storage type.
        ty: GgmlType,
    },
    /// A block's scale or minimum (or an F32/F16 element) is NaN or infinite.
    #[error("quantized matrix: block {block} has a non-finite scale or value")]
    NonFinite {
        /// Index of the block (super-block for Q4_K/Q6_K; element for F32/F16) in the matrix.
        block: usize,
    },
    /// The activations' width or length does not fit.
    #[error("quantized matrix: activations of width {got}, the matrix has {cols} columns")]
    Width {
        /// Width (or length) given.
        got: usize,
        /// The matrix's columns.
        cols: usize,
    },
    /// The shared bytes given are not the file the tensor was parsed from.
    #[error("quantized matrix: the tensor's bytes are not inside the shared file")]
    NotFromFile,
    /// A row index past the end.
    #[error("quantized matrix: row {row} out of range ({rows} rows)")]
    Row {
        /// Index asked for.
        row: usize,
        /// Rows in the matrix.
        rows: usize,
    },
}

/// Bytes shared by whoever reads them: a whole weights file, or one tensor's copy. Lets a
/// [`QMatrix`] point into the file it was loaded from instead of holding a second copy.
#[derive(Clone)]
pub struct SharedBytes {
    buf: Arc<dyn AsRef<[u8]> + Send + Sync>,
    range: Range<usize>,
}

impl fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedBytes({} bytes)", self.range.len())
    }
}

impl SharedBytes {
    /// All of `buf`.
    pub fn new(buf: Arc<dyn AsRef<[u8]> + Send + Sync>) -> Self {
        let range = 0..(*buf).as_ref().len();
        Self { buf, range }
    }
    /// A copy of `bytes`.
    pub fn copy_of(bytes: &[u8]) -> Self {
        Self::new(Arc::new(bytes.to_vec()))
    }
    /// The part `range` of these bytes (relative to them), if it lies inside.
    pub fn slice(&self, range: Range<usize>) -> Option<Self> {
        let start = self.range.start.checked_add(range.start)?;
        let end = self.range.start.checked_add(range.end)?;
        (start <= end && end <= self.range.end).then(|| Self {
            buf: Arc::clone(&self.buf),
            range: start..end,
        })
    }
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &(*self.buf).as_ref()[self.range.clone()]
    }
}

/// Which dot-product kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust, any CPU.
    Portable,
    /// AVX2 + FMA + F16C (x86-64 only; falls back to [`Kernel::Portable`] where missing).
    Avx2,
}

impl Kernel {
    /// The fastest kernel this CPU runs, detected at run time.
    pub fn best() -> Self {
        if Self::Avx2.available() {
            Self::Avx2
        } else {
            Self::Portable
        }
    }
    /// Whether this CPU runs the kernel.
    pub fn available(self) -> bool {
        match self {
            Self::Portable => true,
            Self::Avx2 => simd::Avx2::detect().is_some(),
        }
    }
}

/// `rows` activation vectors of `cols` elements, in f32 and (when `cols` is a whole number of
/// blocks) quantized to 16-bit blocks for the quantized kernels. Quantized once, used by every
/// matrix that multiplies the same input (Q, K and V; gate and up).
#[derive(Debug, Clone)]
pub struct Activations {
    rows: usize,
    cols: usize,
    x: Vec<f32>,
    q16: Option<Q16>,
}

/// Activations in 16-bit blocks: `qs` (32 per block), the scale `d` and `s = d·Σq` per block.
#[derive(Debug, Clone)]
struct Q16 {
    qs: Vec<i16>,
    d: Vec<f32>,
    s: Vec<f32>,
}

/// One activation row's Q16 blocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Q16Row<'a> {
    pub(crate) qs: &'a [i16],
    pub(crate) d: &'a [f32],
    pub(crate) s: &'a [f32],
}

impl Activations {
    /// Row-major `rows × cols` activations.
    pub fn new(x: Vec<f32>, rows: usize, cols: usize) -> Result<Self, QError> {
        if cols == 0 || rows.checked_mul(cols) != Some(x.len()) {
            return Err(QError::Width { got: x.len(), cols });
        }
        let q16 = cols.is_multiple_of(QK).then(|| quantize_q16(&x));
        Ok(Self { rows, cols, x, q16 })
    }
    /// Number of vectors.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Elements per vector.
    pub fn cols(&self) -> usize {
        self.cols
    }
    fn q16_row(&self, t: usize) -> Option<Q16Row<'_>> {
        let q = self.q16.as_ref()?;
        let nb = self.cols / QK;
        Some(Q16Row {
            qs: &q.qs[t * self.cols..(t + 1) * self.cols],
            d: &q.d[t * nb..(t + 1) * nb],
            s: &q.s[t * nb..(t + 1) * nb],
        })
    }
}

/// Quantizes to 16-bit blocks of 32 (`d = max|x| / 32767`, `q = round(x / d)`): llama.cpp's
/// Q8_1 activation blocks with 16-bit quants and f32 scales.
fn quantize_q16(x: &[f32]) -> Q16 {
    let nb = x.len() / QK;
    let mut q = Q16 {
        qs: Vec::with_capacity(x.len()),
        d: Vec::with_capacity(nb),
        s: Vec::with_capacity(nb),
    };
    for b in x.chunks_exact(QK) {
        let amax = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 32767.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for &v in b {
            // `as` saturates (and maps NaN to 0): never out of the i16 range.
            let qi = (v * inv).round() as i16;
            sum += i32::from(qi);
            q.qs.push(qi);
        }
        q.d.push(d);
        q.s.push(d * sum as f32);
    }
    q
}

/// A `rows × cols` matrix (a linear layer's `[out, in]` weight: ggml dims `[cols, rows]`) kept in
/// its storage type.
#[derive(Debug, Clone)]
pub struct QMatrix {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: SharedBytes,
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

impl QMatrix {
    /// Checks `data` (exactly `rows × cols` elements of `ty`, whole blocks per row, finite
    /// scales — as llama.cpp's row validation) and keeps it as it is.
    pub fn new(ty: GgmlType, rows: usize, cols: usize, data: SharedBytes) -> Result<Self, QError> {
        let (be, bb) = ty.block();
        if cols == 0 || !cols.is_multiple_of(be) {
            return Err(QError::PartialBlock { cols, block: be });
        }
        let row_bytes = (cols / be).checked_mul(bb);
        let bytes = data.as_slice();
        let total = row_bytes.and_then(|r| rows.checked_mul(r));
        let Some(row_bytes) = row_bytes.filter(|_| rows != 0 && total == Some(bytes.len())) else {
            return Err(QError::Length {
                got: bytes.len(),
                expected: total.unwrap_or(usize::MAX),
                rows,
                cols,
                ty,
            });
        };
        let bad = match ty {
            GgmlType::F32 => bytes
                .chunks_exact(4)
                .position(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite()),
            GgmlType::F16 => bytes
                .chunks_exact(2)
                .position(|c| !f16_at(c, 0).is_finite()),
            GgmlType::Q8_0 => bytes
                .chunks_exact(bb)
                .position(|c| !f16_at(c, 0).is_finite()),
            GgmlType::Q4_0 | GgmlType::Q5_0 => bytes
                .chunks_exact(bb)
                .position(|c| !f16_at(c, 0).is_finite()),
            GgmlType::Q4_1 => bytes
                .chunks_exact(bb)
                .position(|c| !(f16_at(c, 0).is_finite() && f16_at(c, 2).is_finite())),
            GgmlType::Q4_K | GgmlType::Q6_K => {
                crate::kquant::check_finite(ty == GgmlType::Q4_K, bytes).err()
            }
        };
        if let Some(block) = bad {
            return Err(QError::NonFinite { block });
        }
        Ok(Self {
            ty,
            rows,
            cols,
            row_bytes,
            data,
        })
    }

    /// A GGUF tensor of 1 or 2 dims as a `dims[1] × dims[0]` matrix over `data` (the file the
    /// tensor was parsed from, shared; any other bytes are refused), or over a copy of its
    /// bytes when `data` is `None`.
    pub fn from_tensor(t: &TensorInfo<'_>, data: Option<&SharedBytes>) -> Result<Self, QError> {
        let (cols, rows) = match t.dims[..] {
            [c, r] => (c, r),
            [c] => (c, 1),
            _ => {
                return Err(QError::Width {
                    got: t.dims.len(),
                    cols: 2,
                });
            }
        };
        let bytes = match data {
            Some(d) => d
                .slice(
                    t.offset
                        ..t.offset
                            .checked_add(t.data.len())
                            .ok_or(QError::NotFromFile)?,
                )
                // The very bytes `t` was parsed from, not just equal ones.
                .filter(|s| std::ptr::eq(s.as_slice(), t.data))
                .ok_or(QError::NotFromFile)?,
            None => SharedBytes::copy_of(t.data),
        };
        Self::new(t.ty, rows, cols, bytes)
    }

    /// Storage type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }
    /// Rows (outputs).
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns (inputs).
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Bytes held (the storage, not an f32 copy).
    pub fn storage_bytes(&self) -> usize {
        self.rows * self.row_bytes
    }

    fn row_data(&self, r: usize) -> &[u8] {
        &self.data.as_slice()[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// Row `r` dequantized to f32 (an embedding lookup).
    pub fn row_f32(&self, r: usize) -> Result<Vec<f32>, QError> {
        if r >= self.rows {
            return Err(QError::Row {
                row: r,
                rows: self.rows,
            });
        }
        Ok(dequantize(self.ty, self.row_data(r), self.cols))
    }

    /// Rows `rows` dequantized to f32, row-major (a panel for a dense product; AVX2 where the
    /// CPU has it).
    pub fn rows_f32(&self, rows: Range<usize>) -> Result<Vec<f32>, QError> {
        if rows.start > rows.end || rows.end > self.rows {
            return Err(QError::Row {
                row: rows.end,
                rows: self.rows,
            });
        }
        let bytes = &self.data.as_slice()[rows.start * self.row_bytes..rows.end * self.row_bytes];
        let n = rows.len() * self.cols;
        if let Some(k) = simd::Avx2::detect() {
            let mut out = vec![0.0f32; n];
            if k.dequantize(self.ty, bytes, &mut out) {
                return Ok(out);
            }
        }
        Ok(dequantize(self.ty, bytes, n))
    }

    /// `x · Wᵀ` with the fastest kernel: row-major `x.rows() × self.rows()`.
    pub fn matmul(&self, x: &Activations) -> Result<Vec<f32>, QError> {
        self.matmul_with(x, Kernel::best())
    }

    /// `x · Wᵀ` with `kernel` (portable where the CPU lacks it).
    pub fn matmul_with(&self, x: &Activations, kernel: Kernel) -> Result<Vec<f32>, QError> {
        if x.cols != self.cols {
            return Err(QError::Width {
                got: x.cols,
                cols: self.cols,
            });
        }
        let (n, m) = (x.rows, self.rows);
        let mut out = vec![0.0f32; n * m];
        let avx2 = match kernel {
            Kernel::Avx2 => simd::Avx2::detect(),
            Kernel::Portable => None,
        };
        match self.ty {
            GgmlType::F32 | GgmlType::F16 => {
                for o in 0..m {
                    let w = dequantize(self.ty, self.row_data(o), self.cols);
                    for (t, xr) in x.x.chunks_exact(self.cols).enumerate() {
                        out[t * m + o] = dot_f32(&w, xr);
                    }
                }
            }
            ty => {
                // Whole blocks per row (checked in `new`), so the activations were quantized.
                let rows: Vec<Q16Row<'_>> = (0..n).filter_map(|t| x.q16_row(t)).collect();
                if rows.len() != n {
                    return Err(QError::PartialBlock {
                        cols: self.cols,
                        block: QK,
                    });
                }
                // One position (decode): every row in one kernel call where there is one.
                if let (Some(k), [a]) = (avx2, rows.as_slice())
                    && k.dot_rows(ty, self.data.as_slice(), self.row_bytes, *a, &mut out)
                {
                    return Ok(out);
                }
                for o in 0..m {
                    let w = self.row_data(o);
                    let (quads, rest) = rows.as_chunks::<4>();
                    for (c, quad) in quads.iter().enumerate() {
                        let y = match avx2 {
                            Some(k) => k.dot(ty, w, *quad),
                            None => quad.map(|a| dot_portable(ty, w, a)),
                        };
                        for (j, v) in y.into_iter().enumerate() {
                            out[(4 * c + j) * m + o] = v;
                        }
                    }
                    for (j, &a) in rest.iter().enumerate() {
                        out[(4 * quads.len() + j) * m + o] = match avx2 {
                            Some(k) => k.dot(ty, w, [a])[0],
                            None => dot_portable(ty, w, a),
                        };
                    }
                }
            }
        }
        Ok(out)
    }
}

/// f32 dot product with 8 partial sums (lets the compiler vectorize).
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, ar) = a.as_chunks::<8>();
    let (bc, br) = b.as_chunks::<8>();
    for (x, y) in ac.iter().zip(bc) {
        for i in 0..8 {
            acc[i] = x[i].mul_add(y[i], acc[i]);
        }
    }
    let tail: f32 = ar.iter().zip(br).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// One weight row (whole blocks of `ty`) · one Q16 activation row, plain Rust.
pub(crate) fn dot_portable(ty: GgmlType, w: &[u8], a: Q16Row<'_>) -> f32 {
    let blocks = a.qs.chunks_exact(QK).zip(a.d.iter().zip(a.s));
    match ty {
        GgmlType::Q8_0 => w
            .chunks_exact(34)
            .zip(blocks)
            .map(|(b, (q, (&d, _)))| {
                let isum: i32 = b[2..]
                    .iter()
                    .zip(q)
                    .map(|(&w, &a)| i32::from(w as i8) * i32::from(a))
                    .sum();
                f16_at(b, 0) * d * isum as f32
            })
            .sum(),
        GgmlType::Q4_0 => w
            .chunks_exact(18)
            .zip(blocks)
            .map(|(b, (q, (&d, &s)))| f16_at(b, 0) * (d * nibble_dot(&b[2..], q) as f32 - 8.0 * s))
            .sum(),
        GgmlType::Q5_0 => w
            .chunks_exact(22)
            .zip(blocks)
            .map(|(b, (q, (&d, &s)))| {
                let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                let isum: i32 = (0..16)
                    .map(|j| {
                        let q5 = |n: u8, bit: usize| i32::from(n) | (((qh >> bit) & 1) << 4) as i32;
                        q5(b[6 + j] & 0x0f, j) * i32::from(q[j])
                            + q5(b[6 + j] >> 4, j + 16) * i32::from(q[j + 16])
                    })
                    .sum();
                f16_at(b, 0) * (d * isum as f32 - 16.0 * s)
            })
            .sum(),
        GgmlType::Q4_1 => w
            .chunks_exact(20)
            .zip(blocks)
            .map(|(b, (q, (&d, &s)))| {
                f16_at(b, 0) * d * nibble_dot(&b[4..], q) as f32 + f16_at(b, 2) * s
            })
            .sum(),
        GgmlType::Q4_K => crate::kquant::dot_q4_k(w, a),
        GgmlType::Q6_K => crate::kquant::dot_q6_k(w, a),
        // Not block types: `matmul_with` multiplies them in f32.
        GgmlType::F32 | GgmlType::F16 => f32::NAN,
    }
}

/// Σ over a 16-byte nibble block: low nibbles are elements 0..16, high nibbles 16..32.
fn nibble_dot(qs: &[u8], a: &[i16]) -> i32 {
    qs.iter()
        .zip(a.iter().zip(&a[16..]))
        .map(|(&q, (&lo, &hi))| {
            i32::from(q & 0x0f) * i32::from(lo) + i32::from(q >> 4) * i32::from(hi)
        })
        .sum()
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[path = "qmat_avx2.rs"]
mod simd;

/// Where there is no x86-64, there is no AVX2 kernel.
#[cfg(not(target_arch = "x86_64"))]
mod simd {
    use super::{GgmlType, Q16Row};
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Avx2(());
    impl Avx2 {
        pub(crate) fn detect() -> Option<Self> {
            None
        }
        pub(crate) fn dequantize(self, _: GgmlType, _: &[u8], _: &mut [f32]) -> bool {
            false
        }
        pub(crate) fn dot_rows(
            self,
            _: GgmlType,
            _: &[u8],
            _: usize,
            _: Q16Row<'_>,
            _: &mut [f32],
        ) -> bool {
            false
        }
        pub(crate) fn dot<const N: usize>(
            self,
            ty: GgmlType,
            w: &[u8],
            a: [Q16Row<'_>; N],
        ) -> [f32; N] {
            a.map(|a| super::dot_portable(ty, w, a))
        }
    }
}

#[cfg(test)]
#[path = "qmat_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "qmat_ktests.rs"]
mod ktests;
