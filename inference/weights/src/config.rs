//! The models' hyper-parameters, as plain data: the tiny models are generated from them (by the
//! packer, without Burn) and the enclave's models are built from them (on Burn). SmolLM2's are
//! read from its GGUF metadata; MiniLM's are fixed ([`BertConfig::minilm_l6`]). The decoder
//! config ([`LlamaConfig`]) covers the `llama` and `qwen2` GGUF architectures, which differ in
//! RoPE layout and Q/K/V biases (see [`Arch`]).

use crate::gguf::{Gguf, GgufError};

/// Why a GGUF file's metadata does not give a usable configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key or tensor is missing or mistyped.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The values are inconsistent or unsupported (the reason is a fixed phrase).
    #[error("model config: {0}")]
    Invalid(&'static str),
    /// A metadata value names something this code does not implement (architecture, chat
    /// template, pre-tokenizer). The value is the model file's own, shortened to
    /// [`MAX_VALUE_CHARS`] characters.
    #[error("model config: unsupported {key} {value:?} (supported: {supported})")]
    Unsupported {
        /// The metadata key.
        key: &'static str,
        /// Its value, shortened.
        value: String,
        /// What is accepted, as a fixed phrase.
        supported: &'static str,
    },
}

/// Longest metadata value an error repeats (a chat template can be kilobytes).
pub const MAX_VALUE_CHARS: usize = 48;

impl ConfigError {
    /// An [`ConfigError::Unsupported`] with `value` shortened to [`MAX_VALUE_CHARS`].
    pub fn unsupported(key: &'static str, value: &str, supported: &'static str) -> Self {
        let mut v: String = value.chars().take(MAX_VALUE_CHARS).collect();
        if value.chars().nth(MAX_VALUE_CHARS).is_some() {
            v.push('…');
        }
        Self::Unsupported {
            key,
            value: v,
            supported,
        }
    }
}

/// BERT hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Number of encoder layers.
    pub layers: usize,
    /// Attention heads per layer.
    pub heads: usize,
    /// Feed-forward inner size.
    pub intermediate: usize,
    /// Number of learned positions (the longest input).
    pub max_positions: usize,
    /// Number of token types.
    pub type_vocab: usize,
    /// LayerNorm epsilon.
    pub eps: f64,
}

impl BertConfig {
    /// all-MiniLM-L6-v2.
    pub const fn minilm_l6() -> Self {
        Self {
            vocab_size: 30522,
            hidden: 384,
            layers: 6,
            heads: 12,
            intermediate: 1536,
            max_positions: 512,
            type_vocab: 2,
            eps: 1e-12,
        }
    }
}

/// The GGUF decoder architectures this code runs (`general.architecture`). Both are Llama
/// transformers (RMSNorm, grouped-query attention, RoPE, SwiGLU); they differ in what
/// [`Arch::rope`] and [`Arch::qkv_bias`] say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `llama` (SmolLM2): no Q/K/V biases required, RoPE on adjacent pairs.
    Llama,
    /// `qwen2`: Q/K/V biases (`blk.N.attn_{q,k,v}.bias`), NeoX RoPE.
    Qwen2,
}

/// How RoPE pairs the dimensions of a head, as llama.cpp's `llama_model_rope_type` assigns it
/// per architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// `LLAMA_ROPE_TYPE_NORM`: dimensions `2i` and `2i+1` rotate together. llama.cpp's
    /// converter permutes HF's Q/K rows into this layout for `llama`.
    Adjacent,
    /// `LLAMA_ROPE_TYPE_NEOX`: dimensions `i` and `i + d/2` rotate together (HF's
    /// rotate-half); the GGUF keeps HF's Q/K row order.
    NeoX,
}

impl Arch {
    /// The architecture named by `general.architecture`, or a refusal naming it.
    pub fn from_name(name: &str) -> Result<Self, ConfigError> {
        match name {
            "llama" => Ok(Self::Llama),
            "qwen2" => Ok(Self::Qwen2),
            other => Err(ConfigError::unsupported(
                "general.architecture",
                other,
                "llama, qwen2",
            )),
        }
    }

    /// The `general.architecture` value and metadata key prefix.
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
        }
    }

    /// The RoPE pairing of the architecture (llama.cpp: `llama` → NORM, `qwen2` → NEOX).
    pub fn rope(self) -> RopeStyle {
        match self {
            Self::Llama => RopeStyle::Adjacent,
            Self::Qwen2 => RopeStyle::NeoX,
        }
    }

    /// Whether Q, K and V must have biases (`qwen2`). A `llama` file may still carry them;
    /// they are then used, as llama.cpp does.
    pub fn qkv_bias(self) -> bool {
        matches!(self, Self::Qwen2)
    }
}

/// Decoder hyper-parameters of a `llama` or `qwen2` GGUF.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LlamaConfig {
    /// The architecture (RoPE style, Q/K/V biases).
    pub arch: Arch,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Decoder blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: usize,
    /// Feed-forward inner size.
    pub intermediate: usize,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Longest sequence (prompt + generated) the RoPE table and cache allow.
    pub max_seq: usize,
}

/// The ChatML markers a chat template must use: the prompts are built for them.
const CHATML: [&str; 2] = ["<|im_start|>", "<|im_end|>"];

impl LlamaConfig {
    /// Reads `general.architecture` and the `{arch}.*` metadata of a GGUF file; `max_seq` is
    /// capped by the caller's need. Refuses another architecture, inconsistent sizes, partial
    /// RoPE, and a `tokenizer.chat_template` that is not ChatML.
    pub fn from_gguf(g: &Gguf<'_>, max_seq: usize) -> Result<Self, ConfigError> {
        let arch = Arch::from_name(g.get_str("general.architecture")?)?;
        let p = arch.name();
        let u = |k: &str| -> Result<usize, ConfigError> {
            Ok(g.get_u64(&format!("{p}.{k}"))? as usize)
        };
        let embd = g.tensor("token_embd.weight")?;
        let cfg = Self {
            arch,
            vocab_size: *embd
                .dims
                .get(1)
                .ok_or(ConfigError::Invalid("token_embd rank"))?,
            hidden: u("embedding_length")?,
            layers: u("block_count")?,
            heads: u("attention.head_count")?,
            kv_heads: u("attention.head_count_kv")?,
            intermediate: u("feed_forward_length")?,
            rope_theta: g.get_f32(&format!("{p}.rope.freq_base"))?,
            rms_eps: g.get_f32(&format!("{p}.attention.layer_norm_rms_epsilon"))?,
            max_seq: max_seq.min(u("context_length")?),
        };
        if cfg.heads == 0
            || cfg.kv_heads == 0
            || !cfg.hidden.is_multiple_of(cfg.heads)
            || !cfg.heads.is_multiple_of(cfg.kv_heads)
            || !(cfg.hidden / cfg.heads).is_multiple_of(2)
            || cfg.layers == 0
            || cfg.max_seq == 0
            || cfg.rope_theta.is_nan()
            || cfg.rope_theta <= 0.0
            || !cfg.rms_eps.is_finite()
            || cfg.rms_eps < 0.0
        {
            return Err(ConfigError::Invalid(
                "inconsistent decoder head counts or sizes",
            ));
        }
        // Each block has several tensors: more blocks than tensors is a corrupt count, refused
        // before anything is sized by it.
        if cfg.layers > g.tensors.len() {
            return Err(ConfigError::Invalid(
                "block_count exceeds the file's tensors",
            ));
        }
        if let Ok(d) = g.get_u64(&format!("{p}.rope.dimension_count"))
            && d as usize != cfg.hidden / cfg.heads
        {
            return Err(ConfigError::Invalid("partial RoPE is not supported"));
        }
        check_chat_template(g)?;
        Ok(cfg)
    }

    /// Size of one attention head (`hidden / heads`).
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}

/// Accepts a file without `tokenizer.chat_template` (the prompts are ChatML by construction)
/// or with a template that uses ChatML's `<|im_start|>` and `<|im_end|>`; refuses any other
/// (a model trained on another format would get prompts it does not understand).
fn check_chat_template(g: &Gguf<'_>) -> Result<(), ConfigError> {
    let key = "tokenizer.chat_template";
    if !g.metadata.contains_key(key) {
        return Ok(());
    }
    let t = g.get_str(key)?;
    if CHATML.iter().all(|m| t.contains(m)) {
        Ok(())
    } else {
        Err(ConfigError::unsupported(
            key,
            t,
            "a ChatML template (<|im_start|>role\\ncontent<|im_end|>)",
        ))
    }
}
