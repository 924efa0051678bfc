//! Extractive thread summary: embed every message with MiniLM, then pick the `k` most central
//! messages that are not redundant with each other (maximal marginal relevance), and return them
//! in thread order.

use crate::MAX_EMBED_TOKENS;
use crate::bert::{BertConfig, MiniLm};
use crate::error::{FeatureError, LoadError};
use crate::tokenize::MiniLmTokenizer;
use burn::tensor::Device;
use pp_protocol::app::{Message, check_thread};
use zeroize::Zeroizing;

/// MMR trade-off: weight of centrality against redundancy with already picked messages.
pub const MMR_LAMBDA: f32 = 0.7;

/// The MiniLM tokenizer and encoder together: text in, unit-length embeddings out.
#[derive(Debug, Clone)]
pub struct Embedder {
    tokenizer: MiniLmTokenizer,
    model: MiniLm,
}

/// Embeddings of a batch of texts.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One unit-length vector per text, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Indices of texts cut to [`MAX_EMBED_TOKENS`] tokens.
    pub truncated: Vec<usize>,
}

impl Embedder {
    /// Pairs a tokenizer with a model.
    pub fn new(tokenizer: MiniLmTokenizer, model: MiniLm) -> Self {
        Self { tokenizer, model }
    }

    /// Loads both from bytes (`model.safetensors`, `tokenizer.json`).
    pub fn from_bytes(
        safetensors: &[u8],
        tokenizer_json: &[u8],
        cfg: BertConfig,
        dev: &Device,
    ) -> Result<Self, LoadError> {
        Ok(Self::new(
            MiniLmTokenizer::from_json(tokenizer_json)?,
            MiniLm::from_safetensors(safetensors, cfg, dev)?,
        ))
    }

    /// Embeds texts; each is cut to `min(MAX_EMBED_TOKENS, max_positions)` tokens.
    pub fn embed(&self, texts: &[&str]) -> Result<Embeddings, FeatureError> {
        let max = MAX_EMBED_TOKENS.min(self.model.config().max_positions);
        // Token ids of the messages: overwritten when dropped, whatever happens.
        let mut ids: Zeroizing<Vec<Vec<u32>>> = Zeroizing::new(Vec::with_capacity(texts.len()));
        let mut truncated = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            let (v, cut) = self.tokenizer.encode(t, max)?;
            if cut {
                truncated.push(i);
            }
            ids.push(v);
        }
        Ok(Embeddings {
            vectors: self.model.embed(&ids)?,
            truncated,
        })
    }
}

/// A message picked for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyMessage<'a> {
    /// Its position in the thread slice.
    pub index: usize,
    /// The message.
    pub message: &'a Message,
}

/// The result of [`summarize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary<'a> {
    /// The key messages, in thread order.
    pub key_messages: Vec<KeyMessage<'a>>,
    /// Indices of messages whose embedding saw only their first [`MAX_EMBED_TOKENS`] tokens.
    pub truncated: Vec<usize>,
}

/// Picks the `k` key messages of a thread (1 ≤ k ≤ thread length, so an empty thread is refused
/// by `k`). Only the texts are read. Deterministic. The thread must be within the protocol's
/// bounds ([`check_thread`]), which the enclave checks when it parses the request.
pub fn summarize<'a>(
    embedder: &Embedder,
    thread: &'a [Message],
    k: usize,
) -> Result<Summary<'a>, FeatureError> {
    debug_assert!(
        check_thread(thread).is_ok(),
        "thread outside the protocol's bounds"
    );
    summarize_with_vectors(embedder, thread, k).map(|(s, _)| s)
}

/// [`summarize`], also returning every message's embedding (for the abstractive summary's
/// citations).
pub(crate) fn summarize_with_vectors<'a>(
    embedder: &Embedder,
    thread: &'a [Message],
    k: usize,
) -> Result<(Summary<'a>, Vec<Vec<f32>>), FeatureError> {
    if k == 0 || k > thread.len() {
        return Err(FeatureError::BadParameter {
            name: "k",
            value: k,
            min: 1,
            max: thread.len(),
        });
    }
    let texts: Vec<&str> = thread.iter().map(|m| m.text.as_str()).collect();
    let emb = embedder.embed(&texts)?;
    let picked = select_central(&emb.vectors, k, MMR_LAMBDA);
    let summary = Summary {
        key_messages: picked
            .into_iter()
            .map(|index| KeyMessage {
                index,
                message: &thread[index],
            })
            .collect(),
        truncated: emb.truncated,
    };
    Ok((summary, emb.vectors))
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The selection itself, over unit vectors: centrality of `i` is its mean cosine to all other
/// vectors; then `k` greedy MMR steps pick the unpicked `i` maximising
/// `λ·centrality(i) − (1−λ)·max cos(i, picked)`. Ties go to the earlier index. Returns sorted
/// indices.
pub fn select_central(vectors: &[Vec<f32>], k: usize, lambda: f32) -> Vec<usize> {
    let n = vectors.len();
    let k = k.min(n);
    let sim: Vec<Vec<f32>> = vectors
        .iter()
        .map(|a| vectors.iter().map(|b| dot(a, b)).collect())
        .collect();
    let centrality: Vec<f32> = (0..n)
        .map(|i| {
            if n < 2 {
                0.0
            } else {
                (sim[i].iter().sum::<f32>() - sim[i][i]) / (n - 1) as f32
            }
        })
        .collect();
    let mut picked: Vec<usize> = Vec::with_capacity(k);
    // Highest similarity of each message to anything picked so far.
    let mut redundancy = vec![0f32; n];
    while picked.len() < k {
        let mut best: Option<(usize, f32)> = None;
        for i in (0..n).filter(|i| !picked.contains(i)) {
            let red = if picked.is_empty() {
                0.0
            } else {
                redundancy[i]
            };
            let score = lambda * centrality[i] - (1.0 - lambda) * red;
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((i, score));
            }
        }
        let Some((i, _)) = best else { break };
        for j in 0..n {
            redundancy[j] = if picked.is_empty() {
                sim[j][i]
            } else {
                redundancy[j].max(sim[j][i])
            };
        }
        picked.push(i);
    }
    picked.sort_unstable();
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = dot(v, v).sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn central_and_non_redundant() {
        // Two near-duplicates of the centre and one outlier: MMR takes one duplicate, then
        // prefers the other cluster member over the second duplicate.
        let v = vec![
            unit(&[1.0, 0.0, 0.0]),
            unit(&[1.0, -0.01, 0.0]),
            unit(&[0.7, 0.7, 0.0]),
            unit(&[0.0, 0.0, 1.0]),
        ];
        assert_eq!(select_central(&v, 1, 0.7), [0]);
        assert_eq!(select_central(&v, 2, 0.7), [0, 2]);
        // λ = 1 is pure centrality: the duplicate comes second.
        assert_eq!(select_central(&v, 2, 1.0), [0, 1]);
        assert_eq!(select_central(&v, 9, 0.7), [0, 1, 2, 3]);
    }
}
