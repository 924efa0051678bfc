//! A minimal GGUF v3 writer and the matching quantizers, so that tiny test models travel through
//! exactly the loading path the real model uses.

use crate::gguf::{DEFAULT_ALIGNMENT, GGUF_MAGIC, GgmlType, Value};
use half::f16;

/// Builds a GGUF v3 file in memory. Metadata and tensors are written in insertion order.
#[derive(Debug, Default)]
pub struct GgufWriter {
    kv: Vec<(String, Value)>,
    tensors: Vec<(String, Vec<u64>, GgmlType, Vec<u8>)>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_str(out, s),
        Value::Array(a) => {
            // An empty array is written as an array of u8.
            out.extend_from_slice(&a.first().map_or(0, type_id).to_le_bytes());
            out.extend_from_slice(&(a.len() as u64).to_le_bytes());
            for x in a {
                put_value(out, x);
            }
        }
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

/// Quantizes f32 values (a whole number of blocks) to `ty`'s bytes.
pub fn quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    match ty {
        GgmlType::F32 => x
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        GgmlType::F16 => x
            .iter()
            .for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
        GgmlType::Q8_0 => {
            for b in x.chunks(32) {
                let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if d == 0.0 { 0.0 } else { 1.0 / d };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend(b.iter().map(|v| (v * id).round() as i8 as u8));
            }
        }
        GgmlType::Q4_0 => {
            // As llama.cpp's reference quantizer: the value of largest magnitude maps to -8.
            for b in x.chunks(32) {
                let max = b
                    .iter()
                    .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
                let d = max / -8.0;
                let id = if d == 0.0 { 0.0 } else { 1.0 / d };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                let q = |v: f32| (v * id + 8.5).clamp(0.0, 15.0) as u8;
                for j in 0..16 {
                    out.push(q(b[j]) | (q(b[j + 16]) << 4));
                }
            }
        }
        GgmlType::Q5_0 => {
            // As llama.cpp's reference quantizer: the value of largest magnitude maps to -16.
            for b in x.chunks(32) {
                let max = b
                    .iter()
                    .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
                let d = max / -16.0;
                let id = if d == 0.0 { 0.0 } else { 1.0 / d };
                let q = |v: f32| (v * id + 16.5).clamp(0.0, 31.0) as u8;
                let mut qh = 0u32;
                let mut qs = [0u8; 16];
                for j in 0..16 {
                    let (q0, q1) = (q(b[j]), q(b[j + 16]));
                    qs[j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
                    qh |= u32::from(q0 >> 4) << j | u32::from(q1 >> 4) << (j + 16);
                }
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend_from_slice(&qh.to_le_bytes());
                out.extend_from_slice(&qs);
            }
        }
        GgmlType::Q4_1 => {
            for b in x.chunks(32) {
                let min = b.iter().fold(f32::INFINITY, |m, v| m.min(*v));
                let max = b.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
                let d = (max - min) / 15.0;
                let id = if d == 0.0 { 0.0 } else { 1.0 / d };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
                let q = |v: f32| ((v - min) * id).round().clamp(0.0, 15.0) as u8;
                for j in 0..16 {
                    out.push(q(b[j]) | (q(b[j + 16]) << 4));
                }
            }
        }
        GgmlType::Q4_K => crate::kquant::quantize_q4_k(x, &mut out),
        GgmlType::Q6_K => crate::kquant::quantize_q6_k(x, &mut out),
    }
    out
}

impl GgufWriter {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata key. `general.alignment` (a `U32`) changes the data alignment.
    pub fn metadata(&mut self, key: &str, v: Value) {
        self.kv.push((key.to_owned(), v));
    }

    /// Adds a tensor with ggml dims (fastest-varying first), quantized from `x` to `ty`.
    pub fn tensor(&mut self, name: &str, dims: &[usize], ty: GgmlType, x: &[f32]) {
        assert_eq!(
            dims.iter().product::<usize>(),
            x.len(),
            "tensor {name}: shape"
        );
        let dims = dims.iter().map(|&d| d as u64).collect();
        self.tensors
            .push((name.to_owned(), dims, ty, quantize(ty, x)));
    }

    /// Serializes the file. The data section ends with the last tensor (no trailing padding).
    pub fn finish(self) -> Vec<u8> {
        let align = self
            .kv
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .and_then(|(_, v)| v.as_u64())
            .unwrap_or(DEFAULT_ALIGNMENT) as usize;
        let mut out = Vec::new();
        out.extend_from_slice(&GGUF_MAGIC.to_le_bytes());
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kv.len() as u64).to_le_bytes());
        for (k, v) in &self.kv {
            put_str(&mut out, k);
            out.extend_from_slice(&type_id(v).to_le_bytes());
            put_value(&mut out, v);
        }
        let mut offset = 0usize;
        for (name, dims, ty, data) in &self.tensors {
            put_str(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ty.id().to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offset = (offset + data.len()).div_ceil(align) * align;
        }
        let start = out.len().div_ceil(align) * align;
        out.resize(start, 0);
        for (_, _, _, data) in &self.tensors {
            let at = (out.len() - start).div_ceil(align) * align + start;
            out.resize(at, 0);
            out.extend_from_slice(data);
        }
        out
    }
}
