//! A small GGUF v3 reader (and the writer the tiny models use): header, metadata, tensor infos,
//! alignment, and dequantization of F32, F16, Q4_0, Q4_1, Q5_0, Q8_0, Q4_K and Q6_K to f32 (the models keep the
//! matrices in these types and multiply them with [`crate::qmat`]; dequantizing is for norms,
//! embedding rows and references). Any other tensor type is refused. Everything is read from a byte slice; nothing is trusted: every count and
//! offset is bounds-checked before it is used to allocate or index.

use crate::kquant;
use half::f16;
use std::collections::BTreeMap;

/// `"GGUF"` as a little-endian u32.
pub const GGUF_MAGIC: u32 = 0x4655_4747;
/// Alignment of the tensor data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
const MAX_DIMS: usize = 4;
const MAX_ARRAY_DEPTH: usize = 2;

/// Why a GGUF file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GgufError {
    /// The file does not start with `GGUF`.
    #[error("gguf: bad magic")]
    BadMagic,
    /// A version other than 3.
    #[error("gguf: unsupported version {0}")]
    UnsupportedVersion(u32),
    /// The file ends before a field was complete.
    #[error("gguf: truncated")]
    Truncated,
    /// A string is not UTF-8.
    #[error("gguf: string is not UTF-8")]
    BadString,
    /// An unknown metadata value type.
    #[error("gguf: unknown metadata value type {0}")]
    BadValueType(u32),
    /// Arrays nested deeper than this reader allows.
    #[error("gguf: arrays nested too deep")]
    NestedTooDeep,
    /// A key or tensor name appears twice.
    #[error("gguf: duplicate key or tensor name")]
    Duplicate,
    /// `general.alignment` is zero, not a power of two, or not a u32.
    #[error("gguf: bad alignment")]
    BadAlignment,
    /// A tensor has 0 or more than 4 dimensions, a zero dimension, or too many elements.
    #[error("gguf: tensor {0} has a bad shape")]
    BadShape(String),
    /// A tensor type this reader does not dequantize.
    #[error("gguf: tensor {0} has unsupported type {1}")]
    UnsupportedType(String, u32),
    /// A tensor's element count does not fit its type's block size.
    #[error("gguf: tensor {0} is not a whole number of blocks")]
    PartialBlock(String),
    /// A tensor's data lies outside the file or is misaligned.
    #[error("gguf: tensor {0} data out of bounds or misaligned")]
    DataOutOfBounds(String),
    /// A tensor the model needs is missing.
    #[error("gguf: missing tensor {0}")]
    MissingTensor(String),
    /// A metadata key the model needs is missing or has the wrong type.
    #[error("gguf: missing or mistyped metadata {0}")]
    MissingKey(String),
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    /// The value as a float, if it is F32 or F64.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Value::F32(v) => Some(v),
            Value::F64(v) => Some(v as f32),
            _ => None,
        }
    }
    /// The value as a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    /// The value as an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// ggml tensor types this crate reads (and writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// Blocks of 32: f16 scale `d`, 16 bytes of 4-bit `q`; x = d·(q − 8).
    Q4_0,
    /// Blocks of 32: f16 scale `d`, `qh` (u32: bit j is the 5th bit of element j), 16 bytes of
    /// low 4 bits; x = d·(q − 16).
    Q5_0,
    /// Blocks of 32: f16 scale `d`, f16 minimum `m`, 16 bytes of 4-bit `q`; x = d·q + m.
    Q4_1,
    /// Blocks of 32: f16 scale `d`, 32 signed bytes `q`; x = d·q.
    Q8_0,
    /// Super-blocks of 256 (144 bytes): f16 `d`, f16 `dmin`, 12 bytes of 6-bit scale/min codes
    /// for 8 sub-blocks of 32, 128 bytes of nibbles; x = d·sc·q − dmin·m.
    #[allow(non_camel_case_types)] // ggml's name, as `{:?}` prints it in errors
    Q4_K,
    /// Super-blocks of 256 (210 bytes): 128 bytes of low 4 bits, 64 of high 2 bits, 16 i8
    /// scales for sub-blocks of 16, f16 `d`; x = d·sc·(q − 32).
    #[allow(non_camel_case_types)] // ggml's name
    Q6_K,
}

impl GgmlType {
    /// The type for a ggml type id, or `None` for types this crate does not read.
    pub fn from_id(id: u32) -> Option<Self> {
        match id {
            0 => Some(Self::F32),
            1 => Some(Self::F16),
            2 => Some(Self::Q4_0),
            3 => Some(Self::Q4_1),
            6 => Some(Self::Q5_0),
            8 => Some(Self::Q8_0),
            12 => Some(Self::Q4_K),
            14 => Some(Self::Q6_K),
            _ => None,
        }
    }
    /// The ggml type id.
    pub fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q8_0 => 8,
            Self::Q4_K => 12,
            Self::Q6_K => 14,
        }
    }
    /// (elements per block, bytes per block).
    pub fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q8_0 => (32, 34),
            Self::Q4_K => (kquant::QK_K, kquant::Q4_K_BYTES),
            Self::Q6_K => (kquant::QK_K, kquant::Q6_K_BYTES),
        }
    }
}

/// One tensor's description; `data` borrows its raw (still quantized) bytes from the file.
#[derive(Debug, Clone)]
pub struct TensorInfo<'a> {
    /// ggml dimensions, fastest-varying first (a `[out, in]` weight has `dims = [in, out]`).
    pub dims: Vec<usize>,
    /// Storage type.
    pub ty: GgmlType,
    /// Raw bytes of the tensor.
    pub data: &'a [u8],
    /// Where `data` starts in the parsed file (lets a model share the file instead of copying).
    pub offset: usize,
}

impl TensorInfo<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }
    /// Whether the tensor has no elements (never true for a parsed tensor).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Dequantizes to f32 in ggml order (row-major over the reversed dims).
    pub fn to_f32(&self) -> Vec<f32> {
        dequantize(self.ty, self.data, self.len())
    }
}

/// A parsed GGUF file.
#[derive(Debug, Clone)]
pub struct Gguf<'a> {
    /// Metadata key/value pairs.
    pub metadata: BTreeMap<String, Value>,
    /// Tensors by name.
    pub tensors: BTreeMap<String, TensorInfo<'a>>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], GgufError> {
        let end = self.pos.checked_add(n).ok_or(GgufError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(GgufError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// A count that is checked against what the rest of the file could hold.
    fn count(&mut self, min_item_bytes: usize) -> Result<usize, GgufError> {
        let n = self.u64()?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_item_bytes) <= self.remaining() => Ok(n),
            _ => Err(GgufError::Truncated),
        }
    }
    fn string(&mut self) -> Result<String, GgufError> {
        let n = self.count(1)?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| GgufError::BadString)
    }
    fn value(&mut self, ty: u32, depth: usize) -> Result<Value, GgufError> {
        Ok(match ty {
            0 => Value::U8(self.arr::<1>()?[0]),
            1 => Value::I8(i8::from_le_bytes(self.arr()?)),
            2 => Value::U16(u16::from_le_bytes(self.arr()?)),
            3 => Value::I16(i16::from_le_bytes(self.arr()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.arr()?)),
            6 => Value::F32(f32::from_le_bytes(self.arr()?)),
            7 => match self.arr::<1>()?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                _ => return Err(GgufError::BadValueType(7)),
            },
            8 => Value::String(self.string()?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(GgufError::NestedTooDeep);
                }
                let ety = self.u32()?;
                let n = self.count(1)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.value(ety, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.arr()?)),
            12 => Value::F64(f64::from_le_bytes(self.arr()?)),
            t => return Err(GgufError::BadValueType(t)),
        })
    }
}

impl<'a> Gguf<'a> {
    /// Parses a GGUF v3 file and checks every tensor's type, shape, alignment and bounds.
    pub fn parse(buf: &'a [u8]) -> Result<Self, GgufError> {
        let mut r = Reader { buf, pos: 0 };
        if r.u32().map_err(|_| GgufError::BadMagic)? != GGUF_MAGIC {
            return Err(GgufError::BadMagic);
        }
        let version = r.u32()?;
        if version != 3 {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors = r.count(8 + 4 + 8 + 4 + 8)?;
        let n_kv = r.count(8 + 4 + 1)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let ty = r.u32()?;
            let v = r.value(ty, 0)?;
            if metadata.insert(key, v).is_some() {
                return Err(GgufError::Duplicate);
            }
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(Value::U32(a)) if *a != 0 && a.is_power_of_two() => u64::from(*a),
            Some(_) => return Err(GgufError::BadAlignment),
        };
        let mut infos = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = r.string()?;
            let n_dims = r.u32()? as usize;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(GgufError::BadShape(name));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                dims.push(r.u64()?);
            }
            let ty_id = r.u32()?;
            let offset = r.u64()?;
            infos.push((name, dims, ty_id, offset));
        }
        let data_start = (r.pos as u64).div_ceil(alignment) * alignment;
        let mut tensors = BTreeMap::new();
        for (name, dims, ty_id, offset) in infos {
            let ty = match GgmlType::from_id(ty_id) {
                Some(t) => t,
                None => return Err(GgufError::UnsupportedType(name, ty_id)),
            };
            let mut n: u64 = 1;
            let mut udims = Vec::with_capacity(dims.len());
            for d in dims {
                n = match n.checked_mul(d) {
                    Some(n) if d > 0 && n <= (1 << 34) => n,
                    _ => return Err(GgufError::BadShape(name)),
                };
                udims.push(d as usize);
            }
            let (block_elems, block_bytes) = ty.block();
            if udims[0] % block_elems != 0 {
                return Err(GgufError::PartialBlock(name));
            }
            let size = n / block_elems as u64 * block_bytes as u64;
            let start = data_start.checked_add(offset);
            let end = start.and_then(|s| s.checked_add(size));
            let (start, end) = match (start, end) {
                (Some(s), Some(e)) if e <= buf.len() as u64 && offset % alignment == 0 => {
                    (s as usize, e as usize)
                }
                _ => return Err(GgufError::DataOutOfBounds(name)),
            };
            let info = TensorInfo {
                dims: udims,
                ty,
                data: &buf[start..end],
                offset: start,
            };
            if tensors.insert(name, info).is_some() {
                return Err(GgufError::Duplicate);
            }
        }
        Ok(Self { metadata, tensors })
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo<'a>, GgufError> {
        self.tensors
            .get(name)
            .ok_or_else(|| GgufError::MissingTensor(name.to_owned()))
    }

    /// An unsigned integer metadata value.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.metadata
            .get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| GgufError::MissingKey(key.to_owned()))
    }

    /// A float metadata value.
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        self.metadata
            .get(key)
            .and_then(Value::as_f32)
            .ok_or_else(|| GgufError::MissingKey(key.to_owned()))
    }

    /// A string metadata value.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        self.metadata
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| GgufError::MissingKey(key.to_owned()))
    }

    /// An array-of-strings metadata value (e.g. `tokenizer.ggml.tokens`).
    pub fn get_strings(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        let bad = || GgufError::MissingKey(key.to_owned());
        let arr = self
            .metadata
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(bad)?;
        arr.iter().map(|v| v.as_str().ok_or_else(bad)).collect()
    }
}

/// Dequantizes `n` elements of `ty` from `data` (which the parser sized exactly).
pub fn dequantize(ty: GgmlType, data: &[u8], n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    match ty {
        GgmlType::F32 => out.extend(
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        GgmlType::F16 => out.extend(
            data.chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        GgmlType::Q8_0 => {
            for b in data.chunks_exact(34) {
                let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                out.extend(b[2..].iter().map(|&q| d * f32::from(q as i8)));
            }
        }
        GgmlType::Q4_0 => {
            for b in data.chunks_exact(18) {
                let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                let qs = &b[2..];
                out.extend(qs.iter().map(|&q| d * (f32::from(q & 0x0f) - 8.0)));
                out.extend(qs.iter().map(|&q| d * (f32::from(q >> 4) - 8.0)));
            }
        }
        GgmlType::Q5_0 => {
            for b in data.chunks_exact(22) {
                let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                let qs = &b[6..];
                let q5 = |j: usize, nib: u8| f32::from(nib | (((qh >> j) & 1) << 4) as u8) - 16.0;
                out.extend(qs.iter().enumerate().map(|(j, &q)| d * q5(j, q & 0x0f)));
                out.extend(qs.iter().enumerate().map(|(j, &q)| d * q5(j + 16, q >> 4)));
            }
        }
        GgmlType::Q4_1 => {
            for b in data.chunks_exact(20) {
                let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                let m = f16::from_le_bytes([b[2], b[3]]).to_f32();
                let qs = &b[4..];
                out.extend(qs.iter().map(|&q| d * f32::from(q & 0x0f) + m));
                out.extend(qs.iter().map(|&q| d * f32::from(q >> 4) + m));
            }
        }
        GgmlType::Q4_K => kquant::dequantize_q4_k(data, &mut out),
        GgmlType::Q6_K => kquant::dequantize_q6_k(data, &mut out),
    }
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf_write::{GgufWriter, quantize};

    fn sample() -> Vec<u8> {
        let mut w = GgufWriter::new();
        w.metadata("general.architecture", Value::String("llama".into()));
        w.metadata("general.alignment", Value::U32(64));
        w.metadata("x.theta", Value::F32(10000.0));
        w.metadata(
            "tok",
            Value::Array(vec![Value::String("a".into()), Value::String("é".into())]),
        );
        let v: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) / 7.0).collect();
        w.tensor("f32", &[64], GgmlType::F32, &v);
        w.tensor("f16", &[32, 2], GgmlType::F16, &v);
        w.tensor("q8", &[64], GgmlType::Q8_0, &v);
        w.tensor("q41", &[32, 2], GgmlType::Q4_1, &v);
        w.tensor("q40", &[64], GgmlType::Q4_0, &v);
        w.tensor("q50", &[64], GgmlType::Q5_0, &v);
        w.finish()
    }

    #[test]
    fn read_back_and_dequantize() {
        let b = sample();
        let g = Gguf::parse(&b).unwrap();
        assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
        assert_eq!(g.get_f32("x.theta").unwrap(), 10000.0);
        assert_eq!(g.get_strings("tok").unwrap(), ["a", "é"]);
        let v: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) / 7.0).collect();
        assert_eq!(g.tensor("f32").unwrap().to_f32(), v);
        for (name, tol) in [
            ("f16", 2e-3),
            ("q8", 0.04),
            ("q41", 0.35),
            ("q40", 0.5),
            ("q50", 0.25),
        ] {
            let t = g.tensor(name).unwrap();
            assert_eq!(t.len(), 64);
            let got = t.to_f32();
            for (a, b) in got.iter().zip(&v) {
                assert!((a - b).abs() <= tol, "{name}: {a} vs {b}");
            }
        }
        assert_eq!(g.tensor("f16").unwrap().dims, [32, 2]);
        assert!(matches!(g.tensor("nope"), Err(GgufError::MissingTensor(_))));
    }

    #[test]
    fn q4_1_layout_low_nibbles_first() {
        // d = 1, m = -8: element j is (qs[j] & 15) - 8, element j+16 is (qs[j] >> 4) - 8.
        let mut block = vec![0u8; 20];
        block[0..2].copy_from_slice(&f16::from_f32(1.0).to_le_bytes());
        block[2..4].copy_from_slice(&f16::from_f32(-8.0).to_le_bytes());
        for j in 0..16 {
            block[4 + j] = (j as u8) | ((15 - j as u8) << 4);
        }
        let x = dequantize(GgmlType::Q4_1, &block, 32);
        for j in 0..16 {
            assert_eq!(x[j], j as f32 - 8.0);
            assert_eq!(x[j + 16], (15 - j) as f32 - 8.0);
        }
        let q = quantize(GgmlType::Q4_1, &x);
        assert_eq!(dequantize(GgmlType::Q4_1, &q, 32), x);
    }

    #[test]
    fn corruptions_are_refused() {
        let good = sample();
        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(Gguf::parse(&b).err(), Some(GgufError::BadMagic));
        let mut b = good.clone();
        b[4] = 2;
        assert_eq!(
            Gguf::parse(&b).err(),
            Some(GgufError::UnsupportedVersion(2))
        );
        // Huge tensor count.
        let mut b = good.clone();
        b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Gguf::parse(&b).err(), Some(GgufError::Truncated));
        for n in 0..good.len() - 1 {
            assert!(Gguf::parse(&good[..n]).is_err(), "prefix {n} accepted");
        }
    }

    #[test]
    fn unsupported_type_is_refused() {
        let mut b = sample();
        // The last tensor info's type field: find the "q41" name and patch the u32 after dims.
        let pos = b.windows(3).position(|w| w == b"q41").unwrap();
        let ty_at = pos + 3 + 4 + 2 * 8;
        b[ty_at..ty_at + 4].copy_from_slice(&7u32.to_le_bytes()); // Q5_1
        assert_eq!(
            Gguf::parse(&b).err(),
            Some(GgufError::UnsupportedType("q41".into(), 7))
        );
    }
}
