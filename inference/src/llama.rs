//! The SmolLM2 decoder: a Llama transformer (RMSNorm, grouped-query attention with RoPE,
//! SwiGLU feed-forward, tied input/output embeddings) with a KV cache. Weights come from a GGUF
//! file through [`crate::gguf`], dequantized to f32 at load.
//!
//! RoPE: llama.cpp's converter permutes the Q/K rows of HF checkpoints so that each rotated pair
//! is two *adjacent* dimensions — the layout Burn's `RotaryEncoding` rotates. So the GGUF
//! weights are used as they are; the numpy reference (which un-permutes to HF layout and uses
//! HF's rotate-half RoPE) checks that claim.

use crate::error::{FeatureError, LoadError};
use crate::gguf::Gguf;
use crate::tensor::{float, ids, transpose, values};
use burn::nn::{RotaryEncoding, RotaryEncodingConfig};
use burn::tensor::activation::silu;
use burn::tensor::module::{attention, linear};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor};
pub use pp_weights::config::LlamaConfig;

#[derive(Debug, Clone)]
struct Block {
    attn_norm: Tensor<1>,
    wq: Tensor<2>, // [in, out]
    wk: Tensor<2>,
    wv: Tensor<2>,
    wo: Tensor<2>,
    ffn_norm: Tensor<1>,
    gate: Tensor<2>,
    up: Tensor<2>,
    down: Tensor<2>,
}

/// A loaded Llama decoder.
#[derive(Debug, Clone)]
pub struct Llama {
    cfg: LlamaConfig,
    embd: Tensor<2>,   // [vocab, hidden]
    output: Tensor<2>, // [hidden, vocab]
    norm: Tensor<1>,
    blocks: Vec<Block>,
    rope: RotaryEncoding,
    device: Device,
}

/// Keys and values of the positions seen so far, per block: `[1, kv_heads, len, head_dim]`.
#[derive(Debug, Clone)]
pub struct KvCache {
    k: Vec<Option<Tensor<4>>>,
    v: Vec<Option<Tensor<4>>>,
    len: usize,
}

impl KvCache {
    /// Positions cached.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn load_matrix(g: &Gguf<'_>, name: &str, inp: usize, out: usize) -> Result<Vec<f32>, LoadError> {
    let t = g.tensor(name)?;
    if t.dims != [inp, out] {
        return Err(LoadError::Shape {
            name: name.to_owned(),
            got: t.dims.clone(),
            expected: vec![inp, out],
        });
    }
    Ok(t.to_f32())
}

impl Llama {
    /// Loads and dequantizes the decoder (`token_embd`, `blk.N.*`, `output_norm`, and
    /// `output.weight` if the embeddings are not tied), checking every shape.
    pub fn from_gguf(g: &Gguf<'_>, cfg: LlamaConfig, dev: &Device) -> Result<Self, LoadError> {
        let (h, kvd, i) = (cfg.hidden, cfg.kv_heads * cfg.head_dim(), cfg.intermediate);
        // A `[out, in]` weight (ggml dims `[in, out]`) stored transposed for `x · W`.
        let lin = |name: &str, inp: usize, out: usize| -> Result<Tensor<2>, LoadError> {
            let w = load_matrix(g, name, inp, out)?;
            Ok(float(transpose(&w, out, inp), [inp, out], dev))
        };
        let vec = |name: &str| -> Result<Tensor<1>, LoadError> {
            Ok(float(load_matrix_1d(g, name, h)?, [h], dev))
        };
        let mut blocks = Vec::with_capacity(cfg.layers);
        for n in 0..cfg.layers {
            let p = format!("blk.{n}");
            blocks.push(Block {
                attn_norm: vec(&format!("{p}.attn_norm.weight"))?,
                wq: lin(&format!("{p}.attn_q.weight"), h, h)?,
                wk: lin(&format!("{p}.attn_k.weight"), h, kvd)?,
                wv: lin(&format!("{p}.attn_v.weight"), h, kvd)?,
                wo: lin(&format!("{p}.attn_output.weight"), h, h)?,
                ffn_norm: vec(&format!("{p}.ffn_norm.weight"))?,
                gate: lin(&format!("{p}.ffn_gate.weight"), h, i)?,
                up: lin(&format!("{p}.ffn_up.weight"), h, i)?,
                down: lin(&format!("{p}.ffn_down.weight"), i, h)?,
            });
        }
        let embd = load_matrix(g, "token_embd.weight", h, cfg.vocab_size)?;
        let output = if g.tensors.contains_key("output.weight") {
            lin("output.weight", h, cfg.vocab_size)?
        } else {
            float(
                transpose(&embd, cfg.vocab_size, h),
                [h, cfg.vocab_size],
                dev,
            )
        };
        let rope = RotaryEncodingConfig::new(cfg.max_seq, cfg.head_dim())
            .with_theta(cfg.rope_theta)
            .init(dev);
        Ok(Self {
            cfg,
            embd: float(embd, [cfg.vocab_size, h], dev),
            output,
            norm: vec("output_norm.weight")?,
            blocks,
            rope,
            device: dev.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> LlamaConfig {
        self.cfg
    }

    /// An empty cache.
    pub fn new_cache(&self) -> KvCache {
        KvCache {
            k: vec![None; self.cfg.layers],
            v: vec![None; self.cfg.layers],
            len: 0,
        }
    }

    fn rms_norm(&self, x: Tensor<3>, g: &Tensor<1>) -> Tensor<3> {
        let ms = x.clone().powf_scalar(2.0).mean_dim(2);
        x * (ms + self.cfg.rms_eps).sqrt().recip() * g.clone().unsqueeze::<3>()
    }

    /// Runs `tokens` (positions `cache.len()..`) through the decoder, extends the cache, and
    /// returns the next-token logits after the last of them.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, FeatureError> {
        let (h, nh, nkv, hd) = (
            self.cfg.hidden,
            self.cfg.heads,
            self.cfg.kv_heads,
            self.cfg.head_dim(),
        );
        let (l, start) = (tokens.len(), cache.len);
        if l == 0 || start + l > self.cfg.max_seq {
            return Err(FeatureError::PromptTooLong {
                tokens: start + l,
                max: self.cfg.max_seq,
            });
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= self.cfg.vocab_size) {
            return Err(FeatureError::BadParameter {
                name: "token id",
                value: t as usize,
                min: 0,
                max: self.cfg.vocab_size - 1,
            });
        }
        let mut x = self
            .embd
            .clone()
            .select(0, ids(tokens, &self.device))
            .reshape([1, l, h]);
        let heads = |t: Tensor<3>, n: usize| t.reshape([1, l, n, hd]).swap_dims(1, 2);
        let group = nh / nkv;
        let repeat = |t: Tensor<4>| -> Tensor<4> {
            if group == 1 {
                return t;
            }
            let total = t.dims()[2];
            t.unsqueeze_dim::<5>(2)
                .expand([1, nkv, group, total, hd])
                .reshape([1, nh, total, hd])
        };
        let opts = AttentionModuleOptions {
            is_causal: true,
            ..Default::default()
        };
        for (n, b) in self.blocks.iter().enumerate() {
            let y = self.rms_norm(x.clone(), &b.attn_norm);
            let q = self
                .rope
                .apply(heads(linear(y.clone(), b.wq.clone(), None), nh), start);
            let k = self
                .rope
                .apply(heads(linear(y.clone(), b.wk.clone(), None), nkv), start);
            let v = heads(linear(y, b.wv.clone(), None), nkv);
            let k = match cache.k[n].take() {
                Some(prev) => Tensor::cat(vec![prev, k], 2),
                None => k,
            };
            let v = match cache.v[n].take() {
                Some(prev) => Tensor::cat(vec![prev, v], 2),
                None => v,
            };
            cache.k[n] = Some(k.clone());
            cache.v[n] = Some(v.clone());
            let a = attention(q, repeat(k), repeat(v), None, None, opts);
            let a = a.swap_dims(1, 2).reshape([1, l, h]);
            x = x + linear(a, b.wo.clone(), None);
            let y = self.rms_norm(x.clone(), &b.ffn_norm);
            let f = silu(linear(y.clone(), b.gate.clone(), None)) * linear(y, b.up.clone(), None);
            x = x + linear(f, b.down.clone(), None);
        }
        cache.len += l;
        let last = x.slice([0..1, l - 1..l]);
        let last = self.rms_norm(last, &self.norm).reshape([1, h]);
        values(last.matmul(self.output.clone()))
    }
}

fn load_matrix_1d(g: &Gguf<'_>, name: &str, n: usize) -> Result<Vec<f32>, LoadError> {
    let t = g.tensor(name)?;
    if t.dims != [n] {
        return Err(LoadError::Shape {
            name: name.to_owned(),
            got: t.dims.clone(),
            expected: vec![n],
        });
    }
    Ok(t.to_f32())
}
