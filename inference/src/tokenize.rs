//! Tokenizers for both models, built from bytes only (no files, no hub).
//!
//! * MiniLM: WordPiece from the model's `tokenizer.json`, with its fixed padding and truncation
//!   turned off (we truncate ourselves, and say so).
//! * SmolLM2 (and Qwen2): byte-level BPE rebuilt from the GGUF's `tokenizer.ggml.tokens`/`merges`
//!   (`tokenizer.ggml.model = "gpt2"`), with the pre-tokenizer `tokenizer.ggml.pre` names:
//!   `smollm` (every digit alone, then the GPT-2 split) or `qwen2` (the regex of Qwen2's
//!   `tokenizer.json`); any other name is refused. Message text is encoded with **no** special tokens recognised, so text
//!   that contains `<|im_start|>` cannot forge ChatML structure; the template inserts the special
//!   ids itself.

use crate::config::ConfigError;
use crate::gguf::{Gguf, GgufError};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};
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
    /// The GGUF names a tokenizer model or pre-tokenizer this code does not implement.
    #[error("tokenizer: {0}")]
    Unsupported(ConfigError),
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

/// The pre-tokenizers (`tokenizer.ggml.pre`) implemented, as llama.cpp defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizerKind {
    /// `smollm`: every digit alone, then the GPT-2 regex split.
    SmolLm,
    /// `qwen2`: the one regex of Qwen2's `tokenizer.json` (case-insensitive contractions,
    /// letters with one leading non-letter, single digits, punctuation runs with their
    /// newlines, newline runs, spaces).
    Qwen2,
}

/// Qwen2's pre-tokenizer regex as its `tokenizer.json` states it (llama.cpp's `qwen2` entry
/// rewrites the `(?i:…)` group for `std::regex`; `fancy-regex` runs the original).
pub const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

impl PreTokenizerKind {
    /// The pre-tokenizer a `tokenizer.ggml.pre` value names, or a refusal naming it.
    pub fn from_name(name: &str) -> Result<Self, TokenizeError> {
        match name {
            "smollm" => Ok(Self::SmolLm),
            "qwen2" => Ok(Self::Qwen2),
            other => Err(TokenizeError::Unsupported(ConfigError::unsupported(
                "tokenizer.ggml.pre",
                other,
                "smollm, qwen2",
            ))),
        }
    }

    fn build(self) -> Result<Sequence, TokenizeError> {
        let pre: Vec<PreTokenizerWrapper> = match self {
            Self::SmolLm => vec![
                Digits::new(true).into(),
                ByteLevel::new(false, true, true).into(),
            ],
            Self::Qwen2 => vec![
                Split::new(
                    SplitPattern::Regex(QWEN2_PATTERN.into()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .map_err(|e| TokenizeError::Load(e.to_string()))?
                .into(),
                ByteLevel::new(false, false, false).into(),
            ],
        };
        Ok(Sequence::new(pre))
    }
}

impl SmolTokenizer {
    /// Builds the tokenizer from a GGUF's `tokenizer.ggml.*` metadata: a `gpt2` (byte-level
    /// BPE) model with a pre-tokenizer [`PreTokenizerKind::from_name`] knows.
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Self, TokenizeError> {
        let model = g.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(TokenizeError::Unsupported(ConfigError::unsupported(
                "tokenizer.ggml.model",
                model,
                "gpt2",
            )));
        }
        let pre = PreTokenizerKind::from_name(g.get_str("tokenizer.ggml.pre")?)?;
        let tokens = g.get_strings("tokenizer.ggml.tokens")?;
        let merges = g.get_strings("tokenizer.ggml.merges")?;
        Self::from_vocab(&tokens, &merges, pre)
    }

    /// Builds the tokenizer from byte-level token strings (index = id), `"a b"` merges and the
    /// pre-tokenizer `pre`.
    pub fn from_vocab(
        tokens: &[&str],
        merges: &[&str],
        pre: PreTokenizerKind,
    ) -> Result<Self, TokenizeError> {
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
        inner.with_pre_tokenizer(Some(pre.build()?));
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer as _};

    /// The pieces `kind` cuts `text` into, mapped back from byte-level symbols to text.
    fn pieces(kind: PreTokenizerKind, text: &str) -> Vec<String> {
        let alphabet = pp_weights::tiny::byte_level_alphabet();
        let unmap = |c: char| alphabet.iter().position(|&a| a == c).map(|b| b as u8);
        let mut p = PreTokenizedString::from(text);
        kind.build().unwrap().pre_tokenize(&mut p).unwrap();
        p.get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(s, _, _)| String::from_utf8(s.chars().filter_map(unmap).collect()).unwrap())
            .collect()
    }

    /// Pieces worked out by hand from Qwen2's regex, where they differ from `smollm`'s split:
    /// a letter run takes one leading non-letter non-space, contractions ignore case,
    /// punctuation keeps the newlines after it, digits stand alone.
    #[test]
    fn qwen2_pre_tokenizer_follows_its_regex() {
        let q = |t| pieces(PreTokenizerKind::Qwen2, t);
        let s = |t| pieces(PreTokenizerKind::SmolLm, t);
        assert_eq!(
            q("Hello (world) it's 2024!\n\nOK"),
            [
                "Hello", " (", "world", ")", " it", "'s", " ", "2", "0", "2", "4", "!\n\n", "OK"
            ]
        );
        assert_eq!(q("(x IT'S"), ["(x", " IT", "'S"]);
        assert_eq!(s("(x IT'S"), ["(", "x", " IT", "'", "S"]);
        assert_eq!(q("a\t\tb"), ["a", "\t", "\tb"]);
        assert_eq!(q("x.\r\n\ny"), ["x", ".\r\n\n", "y"]);
        assert_eq!(s("x.\r\n\ny"), ["x", ".", "\r\n", "\n", "y"]);
    }

    #[test]
    fn unknown_pre_tokenizer_is_refused_by_name() {
        let err = PreTokenizerKind::from_name("llama-bpe").unwrap_err();
        assert_eq!(
            err.to_string(),
            "tokenizer: model config: unsupported tokenizer.ggml.pre \"llama-bpe\" (supported: smollm, qwen2)"
        );
    }
}
