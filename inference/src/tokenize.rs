//! Tokenizers for both models, built from bytes only (no files, no hub).
//!
//! * MiniLM: WordPiece from the model's `tokenizer.json`, with its fixed padding and truncation
//!   turned off (we truncate ourselves, and say so).
//! * SmolLM2: byte-level BPE rebuilt from the GGUF's `tokenizer.ggml.tokens`/`merges`, with the
//!   pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre = "smollm"` (every digit alone, then
//!   the GPT-2 split). Message text is encoded with **no** special tokens recognised, so text
//!   that contains `<|im_start|>` cannot forge ChatML structure; the template inserts the special
//!   ids itself.

use crate::gguf::{Gguf, GgufError};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{PreTokenizerWrapper, Tokenizer};
use zeroize::Zeroizing;

/// Why a tokenizer could not be built or used. Never carries the text being encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenizeError {
    /// The tokenizer definition could not be loaded (structural detail only).
    #[error("tokenizer: cannot load: {0}")]
    Load(String),
    /// The GGUF lacks tokenizer metadata.
    #[error("tokenizer: {0}")]
    Gguf(#[from] GgufError),
    /// A required special token is not in the vocabulary.
    #[error("tokenizer: special token {0} missing")]
    MissingSpecial(&'static str),
    /// Encoding or decoding failed (the input is not reported).
    #[error("tokenizer: encoding failed")]
    Encode,
}

/// The MiniLM (BERT WordPiece) tokenizer.
#[derive(Clone)]
pub struct MiniLmTokenizer {
    inner: Tokenizer,
    sep: u32,
}

impl std::fmt::Debug for MiniLmTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MiniLmTokenizer")
    }
}

impl MiniLmTokenizer {
    /// Loads a `tokenizer.json`, turning off its padding and truncation.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TokenizeError> {
        let mut inner =
            Tokenizer::from_bytes(bytes).map_err(|e| TokenizeError::Load(e.to_string()))?;
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| TokenizeError::Load(e.to_string()))?;
        let sep = inner
            .token_to_id("[SEP]")
            .ok_or(TokenizeError::MissingSpecial("[SEP]"))?;
        Ok(Self { inner, sep })
    }

    /// Token ids of `text` with `[CLS]` … `[SEP]`, cut to at most `max_len` tokens (the last
    /// kept token is `[SEP]`). Returns the ids and whether they were truncated.
    pub fn encode(&self, text: &str, max_len: usize) -> Result<(Vec<u32>, bool), TokenizeError> {
        let enc = self
            .inner
            .encode_fast(text, true)
            .map_err(|_| TokenizeError::Encode)?;
        let mut ids = enc.get_ids().to_vec();
        // The encoding's own buffers (its tokens, ids, offsets) are the tokenizer crate's: they
        // are freed when it drops, wiped by the enclave's allocator (`pp_workload::wipe`).
        let truncated = ids.len() > max_len;
        if truncated {
            ids.truncate(max_len.saturating_sub(1));
            ids.push(self.sep);
        }
        Ok((ids, truncated))
    }
}

/// The SmolLM2 byte-level BPE tokenizer with its ChatML special tokens.
#[derive(Clone)]
pub struct SmolTokenizer {
    inner: Tokenizer,
    /// `<|im_start|>`
    pub im_start: u32,
    /// `<|im_end|>`
    pub im_end: u32,
    /// `<|endoftext|>`
    pub end_of_text: u32,
    vocab_size: usize,
}

impl std::fmt::Debug for SmolTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmolTokenizer")
    }
}

/// One ChatML turn.
#[derive(Debug, Clone, Copy)]
pub struct ChatTurn<'a> {
    /// `system`, `user` or `assistant`.
    pub role: &'a str,
    /// The turn's text (encoded without special-token recognition).
    pub content: &'a str,
}

impl SmolTokenizer {
    /// Builds the tokenizer from a GGUF's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Self, TokenizeError> {
        let tokens = g.get_strings("tokenizer.ggml.tokens")?;
        let merges = g.get_strings("tokenizer.ggml.merges")?;
        Self::from_vocab(&tokens, &merges)
    }

    /// Builds the tokenizer from byte-level token strings (index = id) and `"a b"` merges.
    pub fn from_vocab(tokens: &[&str], merges: &[&str]) -> Result<Self, TokenizeError> {
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| ((*t).to_owned(), i as u32))
            .collect();
        let merges = merges
            .iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .ok_or_else(|| TokenizeError::Load("merge without a space".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let find = |name: &'static str| {
            tokens
                .iter()
                .position(|t| *t == name)
                .map(|i| i as u32)
                .ok_or(TokenizeError::MissingSpecial(name))
        };
        let (im_start, im_end, end_of_text) = (
            find("<|im_start|>")?,
            find("<|im_end|>")?,
            find("<|endoftext|>")?,
        );
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            // No word cache: it would keep every word of every message until evicted.
            .cache_capacity(0)
            .build()
            .map_err(|e| TokenizeError::Load(e.to_string()))?;
        let mut inner = Tokenizer::new(bpe);
        let pre: Vec<PreTokenizerWrapper> = vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ];
        inner.with_pre_tokenizer(Some(Sequence::new(pre)));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        Ok(Self {
            inner,
            im_start,
            im_end,
            end_of_text,
            vocab_size: tokens.len(),
        })
    }

    /// Number of token ids.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Token ids of plain text; special-token strings in `text` are treated as ordinary text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizeError> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|_| TokenizeError::Encode)?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of token ids (special ids are decoded to nothing).
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizeError> {
        let ids: Zeroizing<Vec<u32>> = Zeroizing::new(
            ids.iter()
                .copied()
                .filter(|&i| i != self.im_start && i != self.im_end && i != self.end_of_text)
                .collect(),
        );
        self.inner
            .decode(&ids, false)
            .map_err(|_| TokenizeError::Encode)
    }

    /// ChatML prompt: `<|im_start|>role\ncontent<|im_end|>\n` per turn, then
    /// `<|im_start|>assistant\n` to ask for the next turn. Every intermediate buffer (the turn
    /// texts, their ids) is overwritten; the result is one allocation of its final size.
    pub fn chat_prompt(&self, turns: &[ChatTurn<'_>]) -> Result<Vec<u32>, TokenizeError> {
        let newline = self.encode("\n")?;
        let mut pieces: Vec<Zeroizing<Vec<u32>>> = Vec::with_capacity(turns.len());
        for t in turns {
            let mut text =
                Zeroizing::new(String::with_capacity(t.role.len() + 1 + t.content.len()));
            text.push_str(t.role);
            text.push('\n');
            text.push_str(t.content);
            pieces.push(Zeroizing::new(self.encode(&text)?));
        }
        let tail = self.encode("assistant\n")?;
        let len = pieces
            .iter()
            .map(|p| p.len() + 2 + newline.len())
            .sum::<usize>()
            + 1
            + tail.len();
        let mut ids = Vec::with_capacity(len);
        for p in &pieces {
            ids.push(self.im_start);
            ids.extend_from_slice(p);
            ids.push(self.im_end);
            ids.extend_from_slice(&newline);
        }
        ids.push(self.im_start);
        ids.extend_from_slice(&tail);
        Ok(ids)
    }
}
