//! Models and AI features of the Private Processing enclave.
//!
//! Everything is loaded from byte slices (the measured `weights.bin`), runs on Burn's `flex` CPU
//! backend without threads, and never puts message text into an error. Modules:
//! [`blob`] (the weights container), [`gguf`] (GGUF reader), [`tokenize`], [`bert`] (MiniLM
//! sentence embeddings), [`llama`] (SmolLM2 decoder), [`summarize`], [`suggest`], and [`tiny`]
//! (seeded random-weight models of the same architectures, for tests).
#![warn(missing_docs)]

pub mod bert;
pub mod error;
pub mod llama;
mod tensor;
pub mod tokenize;

// The file formats and tiny models live in Burn-free crates (shared with the `pp-weights` packer);
// re-exported here so the enclave reads its files with exactly the code that wrote them.
pub use pp_weights::{bundle, config, gguf, gguf_write, tiny};
pub use pp_weights_blob as blob;

pub use error::{FeatureError, LoadError};
pub mod suggest;
pub mod summarize;

/// Most messages a request may carry.
pub const MAX_MESSAGES: usize = 200;
/// Longest message, in chars (Unicode scalar values).
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// Longest MiniLM input in tokens (with `[CLS]`/`[SEP]`); longer messages are cut and reported.
pub const MAX_EMBED_TOKENS: usize = 512;
/// Longest SmolLM2 prompt in tokens.
pub const MAX_PROMPT_TOKENS: usize = 1024;

/// Checks a thread's message count and lengths against the bounds above.
pub(crate) fn check_thread<'a>(
    texts: impl ExactSizeIterator<Item = &'a str>,
) -> Result<(), FeatureError> {
    let count = texts.len();
    if count == 0 {
        return Err(FeatureError::EmptyThread);
    }
    if count > MAX_MESSAGES {
        return Err(FeatureError::TooManyMessages {
            count,
            max: MAX_MESSAGES,
        });
    }
    for (index, t) in texts.enumerate() {
        let chars = t.chars().count();
        if chars > MAX_MESSAGE_CHARS {
            return Err(FeatureError::MessageTooLong {
                index,
                chars,
                max: MAX_MESSAGE_CHARS,
            });
        }
    }
    Ok(())
}
