//! The models' hyper-parameters, as plain data: the tiny models are generated from them (by the
//! packer, without Burn) and the enclave's models are built from them (on Burn). SmolLM2's are
//! read from its GGUF metadata; MiniLM's are fixed ([`BertConfig::minilm_l6`]).

use crate::gguf::{Gguf, GgufError};

/// Why a GGUF file's `llama.*` metadata does not give a usable configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key or tensor is missing or mistyped.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The values are inconsistent or unsupported (the reason is a fixed phrase).
    #[error("model config: {0}")]
    Invalid(&'static str),
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

/// Llama hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LlamaConfig {
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

impl LlamaConfig {
    /// Reads the `llama.*` metadata of a GGUF file; `max_seq` is capped by the caller's need.
    pub fn from_gguf(g: &Gguf<'_>, max_seq: usize) -> Result<Self, ConfigError> {
        if g.get_str("general.architecture")? != "llama" {
            return Err(ConfigError::Invalid("general.architecture is not llama"));
        }
        let u = |k: &str| -> Result<usize, ConfigError> { Ok(g.get_u64(k)? as usize) };
        let embd = g.tensor("token_embd.weight")?;
        let cfg = Self {
            vocab_size: *embd
                .dims
                .get(1)
                .ok_or(ConfigError::Invalid("token_embd rank"))?,
            hidden: u("llama.embedding_length")?,
            layers: u("llama.block_count")?,
            heads: u("llama.attention.head_count")?,
            kv_heads: u("llama.attention.head_count_kv")?,
            intermediate: u("llama.feed_forward_length")?,
            rope_theta: g.get_f32("llama.rope.freq_base")?,
            rms_eps: g.get_f32("llama.attention.layer_norm_rms_epsilon")?,
            max_seq: max_seq.min(u("llama.context_length")?),
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
        {
            return Err(ConfigError::Invalid(
                "inconsistent llama head counts or sizes",
            ));
        }
        if let Ok(d) = g.get_u64("llama.rope.dimension_count")
            && d as usize != cfg.hidden / cfg.heads
        {
            return Err(ConfigError::Invalid("partial RoPE is not supported"));
        }
        Ok(cfg)
    }

    /// Size of one attention head (`hidden / heads`).
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}
