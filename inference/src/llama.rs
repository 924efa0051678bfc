//! The SmolLM2 decoder: a Llama transformer (RMSNorm, grouped-query attention with RoPE,
//! SwiGLU feed-forward, tied or untied input/output embeddings) with a KV cache, for the GGUF
//! architectures `llama` and `qwen2` (= `llama` + Q/K/V biases + NeoX RoPE, see [`Arch`]).
//! Weights come from a GGUF file through [`crate::gguf`]; the matrices (linear layers,
//! embeddings, output) stay in their storage type ([`QMatrix`]: Q4_0, Q4_1, Q8_0, F16, F32)
//! and are multiplied with kernels that dequantize inside the dot product, so no f32 copy of
//! them exists. Norms, biases, RoPE and attention run on Burn tensors.
//!
//! RoPE: llama.cpp's converter permutes the Q/K rows of HF checkpoints so that each rotated pair
//! is two *adjacent* dimensions — the layout Burn's `RotaryEncoding` rotates. So the GGUF
//! weights are used as they are; the numpy reference (which un-permutes to HF layout and uses
//! HF's rotate-half RoPE) checks that claim. `qwen2` files keep HF's row order and rotate
//! dimension `i` with `i + d/2` (llama.cpp: `LLAMA_ROPE_TYPE_NEOX`); there each Q and K head
//! is reordered to `(0, d/2, 1, d/2+1, …)` before the same adjacent-pair rotation. Scores are
//! dot products of Q and K heads reordered alike, so nothing is reordered back.

use crate::error::{FeatureError, LoadError};
use crate::gguf::Gguf;
use crate::tensor::{float, values};
use burn::nn::{RotaryEncoding, RotaryEncodingConfig};
use burn::tensor::activation::silu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor};
pub use pp_weights::config::{Arch, LlamaConfig, RopeStyle};
use pp_weights::qmat::{Activations, QMatrix, SharedBytes};

#[derive(Debug, Clone)]
struct Block {
    attn_norm: Tensor<1>,
    wq: QMatrix, // [out, in]
    wk: QMatrix,
    wv: QMatrix,
    /// Q, K, V biases (`qwen2`; a `llama` file's if it has them).
    bias: Option<[Tensor<1>; 3]>,
    wo: QMatrix,
    ffn_norm: Tensor<1>,
    gate: QMatrix,
    up: QMatrix,
    down: QMatrix,
}

/// A loaded Llama decoder.
#[derive(Debug, Clone)]
pub struct Llama {
    cfg: LlamaConfig,
    embd: QMatrix,           // [vocab, hidden]
    output: Option<QMatrix>, // [vocab, hidden]; `None`: tied to `embd`
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

/// A `[out, in]` matrix (ggml dims `[in, out]`) kept in its storage type: over `file` (the
/// bytes `g` was parsed from) if given, else over a copy of the tensor's bytes.
fn load_matrix(
    g: &Gguf<'_>,
    file: Option<&SharedBytes>,
    name: &str,
    inp: usize,
    out: usize,
) -> Result<QMatrix, LoadError> {
    let t = g.tensor(name)?;
    if t.dims != [inp, out] {
        return Err(LoadError::Shape {
            name: name.to_owned(),
            got: t.dims.clone(),
            expected: vec![inp, out],
        });
    }
    QMatrix::from_tensor(t, file).map_err(|error| LoadError::Quant {
        name: name.to_owned(),
        error,
    })
}

impl Llama {
    /// Loads the decoder (`token_embd`, `blk.N.*`, `output_norm`, and `output.weight` if the
    /// embeddings are not tied), checking every shape and block, with its matrices copied out
    /// of `g` in their storage type (no dequantizing).
    pub fn from_gguf(g: &Gguf<'_>, cfg: LlamaConfig, dev: &Device) -> Result<Self, LoadError> {
        Self::load(g, None, cfg, dev)
    }

    /// As [`Llama::from_gguf`], but the matrices point into `file` — the bytes `g` was parsed
    /// from — instead of copying them: the model then holds the file and little else.
    pub fn from_gguf_shared(
        g: &Gguf<'_>,
        file: &SharedBytes,
        cfg: LlamaConfig,
        dev: &Device,
    ) -> Result<Self, LoadError> {
        Self::load(g, Some(file), cfg, dev)
    }

    fn load(
        g: &Gguf<'_>,
        file: Option<&SharedBytes>,
        cfg: LlamaConfig,
        dev: &Device,
    ) -> Result<Self, LoadError> {
        let (h, kvd, i) = (cfg.hidden, cfg.kv_heads * cfg.head_dim(), cfg.intermediate);
        let lin = |name: &str, inp: usize, out: usize| load_matrix(g, file, name, inp, out);
        let vec_n = |name: &str, n: usize| -> Result<Tensor<1>, LoadError> {
            Ok(float(load_matrix_1d(g, name, n)?, [n], dev))
        };
        let vec = |name: &str| vec_n(name, h);
        let mut blocks = Vec::with_capacity(cfg.layers);
        for n in 0..cfg.layers {
            let p = format!("blk.{n}");
            let bias_names = ["attn_q", "attn_k", "attn_v"].map(|m| format!("{p}.{m}.bias"));
            let bias =
                if cfg.arch.qkv_bias() || bias_names.iter().any(|b| g.tensors.contains_key(b)) {
                    Some([
                        vec_n(&bias_names[0], h)?,
                        vec_n(&bias_names[1], kvd)?,
                        vec_n(&bias_names[2], kvd)?,
                    ])
                } else {
                    None
                };
            blocks.push(Block {
                bias,
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
        let embd = lin("token_embd.weight", h, cfg.vocab_size)?;
        let output = if g.tensors.contains_key("output.weight") {
            Some(lin("output.weight", h, cfg.vocab_size)?)
        } else {
            None
        };
        let rope = RotaryEncodingConfig::new(cfg.max_seq, cfg.head_dim())
            .with_theta(cfg.rope_theta)
            .init(dev);
        Ok(Self {
            cfg,
            embd,
            output,
            norm: vec("output_norm.weight")?,
            blocks,
            rope,
            device: dev.clone(),
        })
    }

    /// Bytes the model's matrices hold (their storage types, shared or not).
    pub fn matrix_bytes(&self) -> usize {
        let blocks: usize = self
            .blocks
            .iter()
            .flat_map(|b| [&b.wq, &b.wk, &b.wv, &b.wo, &b.gate, &b.up, &b.down])
            .map(QMatrix::storage_bytes)
            .sum();
        blocks + self.embd.storage_bytes() + self.output.as_ref().map_or(0, QMatrix::storage_bytes)
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
        let mut rows = Vec::with_capacity(l * h);
        for &t in tokens {
            rows.extend(self.embd.row_f32(t as usize).map_err(quant)?);
        }
        let mut x = float(rows, [1, l, h], &self.device);
        let i = self.cfg.intermediate;
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
            let y = input(self.rms_norm(x.clone(), &b.attn_norm), l, h)?;
            let (mut q, mut k, mut v) = (
                self.linear(&b.wq, &y)?,
                self.linear(&b.wk, &y)?,
                self.linear(&b.wv, &y)?,
            );
            if let Some([bq, bk, bv]) = &b.bias {
                q = q + bq.clone().unsqueeze::<3>();
                k = k + bk.clone().unsqueeze::<3>();
                v = v + bv.clone().unsqueeze::<3>();
            }
            let q = self.rope.apply(self.rope_layout(heads(q, nh)), start);
            let k = self.rope.apply(self.rope_layout(heads(k, nkv)), start);
            let v = heads(v, nkv);
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
            x = x + self.linear(&b.wo, &input(a, l, h)?)?;
            let y = input(self.rms_norm(x.clone(), &b.ffn_norm), l, h)?;
            let f = silu(self.linear(&b.gate, &y)?) * self.linear(&b.up, &y)?;
            x = x + self.linear(&b.down, &input(f, l, i)?)?;
        }
        cache.len += l;
        let last = x.slice([0..1, l - 1..l]);
        let last =
            Activations::new(values(self.rms_norm(last, &self.norm))?, 1, h).map_err(quant)?;
        self.output
            .as_ref()
            .unwrap_or(&self.embd)
            .matmul(&last)
            .map_err(quant)
    }

    /// Q or K heads `[1, n, l, d]` in the layout Burn's adjacent-pair `RotaryEncoding`
    /// rotates: as they are for [`RopeStyle::Adjacent`]; for [`RopeStyle::NeoX`] the halves
    /// are interleaved, so that NeoX's pair `(i, i + d/2)` becomes `(2i, 2i+1)` with the same
    /// frequency `θ^(-2i/d)`.
    fn rope_layout(&self, t: Tensor<4>) -> Tensor<4> {
        match self.cfg.arch.rope() {
            RopeStyle::Adjacent => t,
            RopeStyle::NeoX => {
                let [b, n, l, d] = t.dims();
                t.reshape([b, n, l, 2, d / 2])
                    .swap_dims(3, 4)
                    .reshape([b, n, l, d])
            }
        }
    }

    /// `x · Wᵀ` for `l` positions: `[1, l, out]`. A few positions (decode) go through the
    /// quantized kernels; a prompt is multiplied panel by panel: [`PANEL`] rows of `W`
    /// dequantized at a time (a transient few MB, never the whole matrix) and a dense f32 matmul,
    /// which is faster once the panel is shared by [`DENSE_FROM`] or more positions.
    fn linear(&self, w: &QMatrix, x: &Input) -> Result<Tensor<3>, FeatureError> {
        match x {
            Input::Quantized(a) => {
                let y = w.matmul(a).map_err(quant)?;
                Ok(float(y, [1, a.rows(), w.rows()], &self.device))
            }
            Input::Dense(t) => {
                let [l, cols] = t.dims();
                if cols != w.cols() {
                    return Err(FeatureError::Backend);
                }
                let mut parts = Vec::with_capacity(w.rows().div_ceil(PANEL));
                for r in (0..w.rows()).step_by(PANEL) {
                    let r1 = (r + PANEL).min(w.rows());
                    let panel = float(
                        w.rows_f32(r..r1).map_err(quant)?,
                        [r1 - r, cols],
                        &self.device,
                    );
                    parts.push(t.clone().matmul(panel.transpose()));
                }
                Ok(Tensor::cat(parts, 1).reshape([1, l, w.rows()]))
            }
        }
    }
}

/// A kernel refusal mid-forward (a shape the loader checked: not expected to happen). Its
/// text has no message content either way; the feature reports a backend failure.
fn quant(_: pp_weights::qmat::QError) -> FeatureError {
    FeatureError::Backend
}

/// Rows of `W` dequantized at once for a dense product.
const PANEL: usize = 256;
/// Positions from which a product goes dense (panels + f32 matmul) rather than through the
/// quantized kernels.
const DENSE_FROM: usize = 16;

/// The input of the linear layers of one step.
enum Input {
    /// A few positions, quantized for the kernels.
    Quantized(Activations),
    /// Many positions, `[l, n]`.
    Dense(Tensor<2>),
}

/// A `[1, l, n]` tensor as the input of linear layers.
fn input(t: Tensor<3>, l: usize, n: usize) -> Result<Input, FeatureError> {
    if l >= DENSE_FROM {
        return Ok(Input::Dense(t.reshape([l, n])));
    }
    Ok(Input::Quantized(
        Activations::new(values(t)?, l, n).map_err(quant)?,
    ))
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
    let v = t.to_f32();
    // A NaN or infinite norm weight or bias would make every logit NaN: refused like a
    // matrix's non-finite scale.
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(LoadError::Quant {
            name: name.to_owned(),
            error: crate::qmat::QError::NonFinite { block: i },
        });
    }
    Ok(v)
}
