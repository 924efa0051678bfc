//! What the enclave's weights blob holds: the entry names, the `profile` entry that says which
//! model configuration the weights are for, and the two ways to make a blob — from the real
//! pinned models, or tiny seeded random models of the same architectures (for tests).

use crate::tiny;
use pp_weights_blob::{self as blob, BlobError};

/// Entry names in the blob.
pub mod entry {
    /// `real` or `tiny`.
    pub const PROFILE: &str = "profile";
    /// all-MiniLM-L6-v2 weights (safetensors, F32).
    pub const MINILM: &str = "minilm.safetensors";
    /// all-MiniLM-L6-v2 tokenizer (tokenizers JSON).
    pub const MINILM_TOKENIZER: &str = "minilm.tokenizer.json";
    /// SmolLM2-135M-Instruct (GGUF v3, vocabulary and merges inside).
    pub const SMOLLM2: &str = "smollm2.gguf";
}

/// The seed of the tiny models the test image carries.
pub const TINY_SEED: u64 = 7;

/// A blob from the real models' files.
pub fn real(
    minilm: &[u8],
    minilm_tokenizer: &[u8],
    smollm2_gguf: &[u8],
) -> Result<Vec<u8>, BlobError> {
    blob::pack(&[
        (entry::PROFILE, b"real"),
        (entry::MINILM, minilm),
        (entry::MINILM_TOKENIZER, minilm_tokenizer),
        (entry::SMOLLM2, smollm2_gguf),
    ])
}

/// A blob of tiny seeded random-weight models (same architectures, same formats).
pub fn tiny_blob(seed: u64) -> Result<Vec<u8>, BlobError> {
    let bert = tiny::tiny_bert_safetensors(&tiny::tiny_bert_config(), seed);
    let tokenizer = tiny::tiny_bert_tokenizer_json();
    let llama = tiny::tiny_llama_gguf(&tiny::tiny_llama_config(), seed);
    blob::pack(&[
        (entry::PROFILE, b"tiny"),
        (entry::MINILM, &bert),
        (entry::MINILM_TOKENIZER, &tokenizer),
        (entry::SMOLLM2, &llama),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_blob_is_deterministic_and_parses() {
        let a = tiny_blob(TINY_SEED).unwrap();
        assert_eq!(a, tiny_blob(TINY_SEED).unwrap());
        let parsed = blob::WeightsBlob::parse(&a).unwrap();
        assert_eq!(parsed.get(entry::PROFILE), Some(&b"tiny"[..]));
        assert_ne!(a, tiny_blob(TINY_SEED + 1).unwrap());
    }
}
