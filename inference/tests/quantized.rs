//! The decoder with its matrices kept quantized, on tiny random-weight models: logits against
//! the same weights dequantized to F32 (so multiplied in plain f32), every block type, sharing
//! the file instead of copying it, and malformed weights refused at load.

use burn::tensor::Device;
use pp_inference::LoadError;
use pp_inference::gguf::{GgmlType, Gguf};
use pp_inference::gguf_write::GgufWriter;
use pp_inference::llama::{Llama, LlamaConfig};
use pp_inference::qmat::{QError, SharedBytes};
use pp_inference::suggest::Generator;
use pp_inference::tiny::{tiny_llama_config, tiny_llama_gguf};
use std::sync::Arc;

/// The GGUF `bytes` rewritten with each 2-d tensor's type chosen by `ty` (values dequantized
/// and quantized again), metadata unchanged.
fn retype(bytes: &[u8], ty: impl Fn(GgmlType) -> GgmlType) -> Vec<u8> {
    let g = Gguf::parse(bytes).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in &g.metadata {
        w.metadata(k, v.clone());
    }
    for (name, t) in &g.tensors {
        let to = if t.dims.len() == 2 { ty(t.ty) } else { t.ty };
        w.tensor(name, &t.dims, to, &t.to_f32());
    }
    w.finish()
}

fn logits(bytes: &[u8], ids: &[u32]) -> Vec<f32> {
    let g = Gguf::parse(bytes).unwrap();
    let m = Llama::from_gguf(&g, tiny_llama_config(), &Device::flex()).unwrap();
    m.forward(ids, &mut m.new_cache()).unwrap()
}

const IDS: [u32; 10] = [1, 150, 45, 77, 2, 13, 1, 80, 81, 82];

/// Quantized kernels (8-bit activations) against the same weights in F32 (f32 activations):
/// for the tiny model as written (Q4_1, Q8_0, F16) and with every matrix in Q4_0, Q5_0 or Q8_0. The
/// tolerance, 5e-4 of the largest |logit| (seen: 5e-5), is what rounding the activations to 16
/// bits may cost.
#[test]
fn quantized_logits_match_the_f32_model() {
    let base = tiny_llama_gguf(&tiny_llama_config(), 12);
    for (label, bytes) in [
        ("as written", base.clone()),
        ("all Q4_0", retype(&base, |_| GgmlType::Q4_0)),
        ("all Q5_0", retype(&base, |_| GgmlType::Q5_0)),
        ("all Q8_0", retype(&base, |_| GgmlType::Q8_0)),
    ] {
        let q = logits(&bytes, &IDS);
        let f = logits(&retype(&bytes, |_| GgmlType::F32), &IDS);
        let scale = f.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = q
            .iter()
            .zip(&f)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{label}: max |Δlogit| {diff} (max |logit| {scale})");
        assert!(
            diff <= 5e-4 * scale,
            "{label}: max |Δlogit| {diff} > 5e-4 of {scale}"
        );
    }
}

/// The K-quants need rows of whole 256-element super-blocks: the tiny Llama widened to hidden
/// 256 and intermediate 512 (head size 64), otherwise as [`tiny_llama_config`].
fn tiny_llama_config_256() -> LlamaConfig {
    LlamaConfig {
        hidden: 256,
        intermediate: 512,
        ..tiny_llama_config()
    }
}

/// Every matrix in Q4_K and in Q6_K against the same weights in F32, by the decode kernels (10
/// positions) and by the prompt path's dequantized panels (20 positions). Same tolerance as
/// above: 5e-4 of the largest |logit|.
#[test]
fn k_quant_logits_match_the_f32_model() {
    let cfg = tiny_llama_config_256();
    let base = tiny_llama_gguf(&cfg, 13);
    let long: Vec<u32> = (0..20).map(|i| 3 + 7 * i).collect();
    for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
        let bytes = retype(&base, |_| ty);
        let g = Gguf::parse(&bytes).unwrap();
        assert!(g.tensors.values().all(|t| t.dims.len() != 2 || t.ty == ty));
        let f32_bytes = retype(&bytes, |_| GgmlType::F32);
        for ids in [&IDS[..], &long] {
            let q = logits_with(&bytes, cfg, ids);
            let f = logits_with(&f32_bytes, cfg, ids);
            let scale = f.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = q
                .iter()
                .zip(&f)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!(
                "{ty:?}, {} positions: max |Δlogit| {diff} (max |logit| {scale})",
                ids.len()
            );
            assert!(
                diff <= 5e-4 * scale,
                "{ty:?}: max |Δlogit| {diff} > 5e-4 of {scale}"
            );
        }
    }
}

fn logits_with(bytes: &[u8], cfg: LlamaConfig, ids: &[u32]) -> Vec<f32> {
    let g = Gguf::parse(bytes).unwrap();
    let m = Llama::from_gguf(&g, cfg, &Device::flex()).unwrap();
    m.forward(ids, &mut m.new_cache()).unwrap()
}

/// Pointing into the file gives the very logits a copy gives, and a copy of the file (other
/// memory) is not accepted as "the file".
#[test]
fn shared_file_equals_copy_and_must_be_the_parsed_file() {
    let bytes = tiny_llama_gguf(&tiny_llama_config(), 4);
    let copied = logits(&bytes, &IDS);
    let file = SharedBytes::new(Arc::new(bytes.clone()));
    let g = Gguf::parse(file.as_slice()).unwrap();
    let m = Llama::from_gguf_shared(&g, &file, tiny_llama_config(), &Device::flex()).unwrap();
    assert_eq!(m.forward(&IDS, &mut m.new_cache()).unwrap(), copied);
    // Only the file's size in matrices: nothing dequantized.
    assert!(m.matrix_bytes() < bytes.len());
    let other = SharedBytes::copy_of(&bytes);
    let err = Llama::from_gguf_shared(&g, &other, tiny_llama_config(), &Device::flex())
        .err()
        .unwrap();
    assert!(matches!(
        err,
        LoadError::Quant {
            error: QError::NotFromFile,
            ..
        }
    ));
    assert!(Generator::from_shared_gguf(file, &Device::flex()).is_ok());
}

/// A NaN or infinite block scale (as llama.cpp's row validation refuses) makes the load fail
/// with the tensor's name; before, it was dequantized into NaN logits.
#[test]
fn non_finite_block_scale_is_refused_at_load() {
    let bytes = tiny_llama_gguf(&tiny_llama_config(), 5);
    let name = "blk.1.ffn_up.weight";
    let at = {
        let g = Gguf::parse(&bytes).unwrap();
        let t = g.tensor(name).unwrap();
        assert_eq!(t.ty, GgmlType::Q4_1);
        t.offset + 2 * 20 // block 2's scale
    };
    for bad in [0x7e00u16, 0x7c00, 0xfc00] {
        let mut b = bytes.clone();
        b[at..at + 2].copy_from_slice(&bad.to_le_bytes());
        let err = Generator::from_gguf_bytes(&b, &Device::flex())
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "tensor blk.1.ffn_up.weight: quantized matrix: block 2 has a non-finite scale or value"
        );
    }
}
