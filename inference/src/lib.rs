//! Models and AI features of the Private Processing enclave.
//!
//! Everything is loaded from byte slices (the measured `weights.bin`), runs on Burn's `flex` CPU
//! backend without threads, and never puts message text into an error. Modules:
//! [`blob`] (the weights container), [`gguf`] (GGUF reader), [`tokenize`], [`bert`] (MiniLM
//! sentence embeddings), [`llama`] (SmolLM2 decoder), [`summarize`] (extractive picks), [`abstractive`]
//! (bullet sentences citing the picks), [`suggest`], and [`tiny`]
//! (seeded random-weight models of the same architectures, for tests).
//!
//! A thread is a slice of `pp_protocol::app::Message`, the type the device sends. Its bounds
//! (message count and length) are the protocol's, checked once where the enclave parses a request
//! (`AppRequest::parse`); the features assume them (a debug build asserts them) and check only
//! what is their own: `k`, `n`, and the model input budgets below.
#![warn(missing_docs)]

pub mod bert;
pub mod error;
pub mod llama;
mod tensor;
pub mod tokenize;

// The file formats and tiny models live in Burn-free crates (shared with the `pp-weights` packer);
// re-exported here so the enclave reads its files with exactly the code that wrote them.
pub use pp_weights::{bundle, config, gguf, gguf_write, qmat, tiny};
pub use pp_weights_blob as blob;

pub use error::{FeatureError, LoadError};
pub mod abstractive;
pub mod suggest;
pub mod summarize;

/// Longest MiniLM input in tokens (with `[CLS]`/`[SEP]`); longer messages are cut and reported.
pub const MAX_EMBED_TOKENS: usize = 512;
/// Longest SmolLM2 prompt in tokens.
pub const MAX_PROMPT_TOKENS: usize = 1024;
