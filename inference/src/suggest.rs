//! Reply suggestions: a ChatML prompt asking SmolLM2 for a short reply to the last message,
//! then temperature + top-p sampling with a repetition penalty, driven by a ChaCha20 RNG seeded
//! from the request's seed, so the same request and seed always give the same suggestions.
//!
//! A reply is kept short and clean by stop rules and one pass over its text ([`clean_reply`]):
//! generation stops at a newline, or at the end of a sentence once [`SENTENCE_TOKENS`] tokens are
//! written, or at `max_tokens`; a reply that hit the limit is cut back to its last sentence end
//! when it has one; a leading `Name:` turn label is removed.

use crate::MAX_PROMPT_TOKENS;
use crate::error::{FeatureError, LoadError};
use crate::gguf::Gguf;
use crate::llama::{KvCache, Llama, LlamaConfig};
use crate::qmat::SharedBytes;
use crate::tokenize::{ChatTurn, SmolTokenizer};
use burn::tensor::Device;
use pp_protocol::app::{Message, check_thread};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use zeroize::{Zeroize, Zeroizing};

/// Most suggestions per request.
pub const MAX_SUGGESTIONS: usize = 3;
/// The system turn of the prompt.
pub const SYSTEM_PROMPT: &str = "You suggest what to answer in a chat. Write only the reply \
    itself: one short, friendly sentence that answers the last message, in the language of the \
    conversation. No names, no labels, no quotes.";
/// After this many tokens, the end of a sentence ends the reply.
pub const SENTENCE_TOKENS: usize = 4;

/// Sampling settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature (> 0).
    pub temperature: f32,
    /// Nucleus: sample from the smallest set of tokens whose probability reaches this.
    pub top_p: f32,
    /// Divides positive (multiplies negative) logits of tokens already generated (≥ 1).
    pub repetition_penalty: f32,
    /// The reply may not end (end of turn, newline, sentence end) before this many tokens.
    pub min_tokens: usize,
    /// Generation stops after this many tokens.
    pub max_tokens: usize,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.6,
            top_p: 0.9,
            repetition_penalty: 1.1,
            min_tokens: 2,
            max_tokens: 32,
        }
    }
}

/// SmolLM2's tokenizer and decoder together.
#[derive(Debug, Clone)]
pub struct Generator {
    tokenizer: SmolTokenizer,
    model: Llama,
}

/// One suggested reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// The reply text, cleaned by [`clean_reply`].
    pub text: String,
    /// The generated token ids (without the end-of-turn token).
    pub tokens: Vec<u32>,
    /// Whether the reply ended by itself (end of turn, newline or sentence end) rather than at
    /// `max_tokens`.
    pub finished: bool,
}

impl Suggestion {
    /// Overwrites the reply's text and token ids (text about the thread).
    pub fn wipe(&mut self) {
        self.text.zeroize();
        self.tokens.zeroize();
    }
}

impl Generator {
    /// Pairs a tokenizer with a model.
    pub fn new(tokenizer: SmolTokenizer, model: Llama) -> Self {
        Self { tokenizer, model }
    }

    /// Loads both from GGUF bytes; the KV cache and RoPE table are sized for
    /// [`MAX_PROMPT_TOKENS`] plus the longest generation.
    pub fn from_gguf_bytes(bytes: &[u8], dev: &Device) -> Result<Self, LoadError> {
        Self::load(bytes, None, dev)
    }

    /// As [`Generator::from_gguf_bytes`], but the model's matrices point into `file` instead
    /// of copying it: the generator holds the GGUF file and little more.
    pub fn from_shared_gguf(file: SharedBytes, dev: &Device) -> Result<Self, LoadError> {
        Self::load(file.as_slice(), Some(&file), dev)
    }

    fn load(bytes: &[u8], file: Option<&SharedBytes>, dev: &Device) -> Result<Self, LoadError> {
        let g = Gguf::parse(bytes)?;
        let tokenizer = SmolTokenizer::from_gguf(&g)?;
        let cfg = LlamaConfig::from_gguf(&g, MAX_PROMPT_TOKENS + 64)?;
        if cfg.vocab_size != tokenizer.vocab_size() {
            return Err(LoadError::Config(
                "tokenizer and embedding vocab sizes differ",
            ));
        }
        let model = match file {
            Some(f) => Llama::from_gguf_shared(&g, f, cfg, dev)?,
            None => Llama::from_gguf(&g, cfg, dev)?,
        };
        Ok(Self::new(tokenizer, model))
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &SmolTokenizer {
        &self.tokenizer
    }

    /// The model.
    pub fn model(&self) -> &Llama {
        &self.model
    }

    /// The prompt's token ids for a thread tail.
    /// The ChatML prompt's token ids for the thread. The conversation text it is built from is
    /// one allocation of its final size, overwritten once encoded.
    pub fn prompt(&self, thread_tail: &[Message]) -> Result<Vec<u32>, FeatureError> {
        const HEAD: &str = "Conversation:\n";
        const TAIL: &str =
            "\nWrite a short reply to the last message. Reply with the message text only.";
        let len = HEAD.len()
            + TAIL.len()
            + thread_tail
                .iter()
                .map(|m| m.sender.len() + 2 + m.text.len() + 1)
                .sum::<usize>();
        let mut convo = Zeroizing::new(String::with_capacity(len));
        convo.push_str(HEAD);
        for m in thread_tail {
            convo.push_str(&m.sender);
            convo.push_str(": ");
            convo.push_str(&m.text);
            convo.push('\n');
        }
        convo.push_str(TAIL);
        Ok(self.tokenizer.chat_prompt(&[
            ChatTurn {
                role: "system",
                content: SYSTEM_PROMPT,
            },
            ChatTurn {
                role: "user",
                content: &convo,
            },
        ])?)
    }

    /// Samples one continuation from a prefilled cache and its logits.
    fn sample(
        &self,
        senders: &[&str],
        mut cache: KvCache,
        mut logits: Vec<f32>,
        rng: &mut ChaCha20Rng,
        p: &SamplingParams,
    ) -> Result<Suggestion, FeatureError> {
        let tok = &self.tokenizer;
        // Sized for the most tokens up front: growing would leave copies behind.
        let mut out: Vec<u32> = Vec::with_capacity(p.max_tokens);
        let mut finished = false;
        while out.len() < p.max_tokens {
            penalize(&mut logits, &out, p.repetition_penalty);
            if out.len() < p.min_tokens {
                for id in [tok.im_end, tok.end_of_text] {
                    if let Some(l) = logits.get_mut(id as usize) {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
            let next = sample_top_p(&logits, p.temperature, p.top_p, rng);
            if next == tok.im_end || next == tok.end_of_text {
                finished = true;
                break;
            }
            out.push(next);
            let text = Zeroizing::new(tok.decode(&out)?);
            let body = text.trim();
            // A newline after some text ends the reply; a first line that is a salutation
            // ("Hi Chen,") does not count as that text.
            let after_salutation = match text.trim_start().split_once('\n') {
                Some((first, rest)) if first.trim_end().ends_with(',') => rest,
                _ => text.trim_start(),
            };
            let at_newline = after_salutation.trim_start().contains('\n');
            let at_sentence_end = out.len() >= SENTENCE_TOKENS && body.ends_with(['.', '!', '?']);
            if out.len() >= p.min_tokens && (at_newline || at_sentence_end) {
                finished = true;
                break;
            }
            if out.len() < p.max_tokens {
                logits = self.model.forward(&[next], &mut cache)?;
            }
        }
        let decoded = Zeroizing::new(tok.decode(&out)?);
        Ok(Suggestion {
            text: clean_reply(&decoded, finished, senders),
            tokens: out,
            finished,
        })
    }
}

/// Suggests `n` (1..=3) short replies to the last message of `thread_tail`, deterministic for
/// `seed`. Suggestion `i` uses ChaCha20 stream `i` of the seed; the prompt is prefilled once.
pub fn suggest(
    generator: &Generator,
    thread_tail: &[Message],
    seed: u64,
    n: usize,
) -> Result<Vec<Suggestion>, FeatureError> {
    suggest_with(generator, thread_tail, seed, n, &SamplingParams::default())
}

/// [`suggest`] with explicit sampling settings. The thread must be within the protocol's bounds
/// ([`check_thread`]), which the enclave checks when it parses the request; it must not be empty,
/// since the reply answers its last message.
pub fn suggest_with(
    generator: &Generator,
    thread_tail: &[Message],
    seed: u64,
    n: usize,
    params: &SamplingParams,
) -> Result<Vec<Suggestion>, FeatureError> {
    if thread_tail.is_empty() {
        return Err(FeatureError::EmptyThread);
    }
    debug_assert!(
        check_thread(thread_tail).is_ok(),
        "thread outside the protocol's bounds"
    );
    if n == 0 || n > MAX_SUGGESTIONS {
        return Err(FeatureError::BadParameter {
            name: "n",
            value: n,
            min: 1,
            max: MAX_SUGGESTIONS,
        });
    }
    if params.max_tokens == 0 || params.max_tokens > 64 {
        return Err(FeatureError::BadParameter {
            name: "max_tokens",
            value: params.max_tokens,
            min: 1,
            max: 64,
        });
    }
    let prompt = Zeroizing::new(generator.prompt(thread_tail)?);
    if prompt.len() > MAX_PROMPT_TOKENS {
        return Err(FeatureError::PromptTooLong {
            tokens: prompt.len(),
            max: MAX_PROMPT_TOKENS,
        });
    }
    let mut cache = generator.model.new_cache();
    let logits = generator.model.forward(&prompt, &mut cache)?;
    let senders: Vec<&str> = thread_tail.iter().map(|m| m.sender.as_str()).collect();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        rng.set_stream(i as u64);
        // The last suggestion takes the prompt's cache itself: a shared one would be copied on
        // its first extension, two caches in memory instead of one.
        let c = if i + 1 == n {
            std::mem::replace(&mut cache, generator.model.new_cache())
        } else {
            cache.clone()
        };
        out.push(generator.sample(&senders, c, logits.clone(), &mut rng, params)?);
    }
    Ok(out)
}

/// Labels a model writes before a reply as if it were a transcript, besides the senders' names.
const LABELS: &[&str] = &[
    "me",
    "you",
    "user",
    "assistant",
    "reply",
    "answer",
    "response",
];

/// The reply in a model's turn: its first non-empty line (the next one if the first is a
/// salutation ending in a comma), without a leading turn label (one of
/// the thread's sender names, with or without `#`s, or [`LABELS`], then a colon) or wrapping
/// quotes; if the turn was cut by the token limit, up to its last sentence end when it has one.
pub fn clean_reply(turn: &str, finished: bool, senders: &[&str]) -> String {
    let mut lines = turn.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut line = lines.next().unwrap_or("");
    // A salutation line ("Hi Chen,") is not the reply when a line follows it.
    if line.ends_with(',')
        && let Some(next) = lines.next()
    {
        line = next;
    }
    let bare = |s: &str| s.trim().trim_matches('#').to_lowercase();
    let mut r = line;
    if let Some((label, rest)) = r.split_once(':') {
        let label = bare(label);
        let is_label = LABELS.contains(&label.as_str())
            || senders
                .iter()
                .any(|s| !s.trim().is_empty() && bare(s) == label);
        if is_label && !rest.trim().is_empty() {
            r = rest.trim();
        }
    }
    let r = r
        .trim_matches(|c| matches!(c, '"' | '\u{201c}' | '\u{201d}'))
        .trim();
    if !finished && let Some(end) = r.rfind(['.', '!', '?']).filter(|&e| e > 0) {
        return r[..=end].to_owned();
    }
    r.to_owned()
}

/// CTRL-style repetition penalty over the distinct tokens generated so far.
pub(crate) fn penalize(logits: &mut [f32], seen: &[u32], penalty: f32) {
    let mut seen = Zeroizing::new(seen.to_vec());
    seen.sort_unstable();
    seen.dedup();
    for &id in seen.iter() {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    }
}

/// Uniform in [0, 1) with 53 random bits.
fn uniform(rng: &mut ChaCha20Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Samples from softmax(logits / temperature) restricted to the top-p nucleus. Ties in
/// probability are ordered by token id, so the result depends only on the logits and the RNG.
pub fn sample_top_p(logits: &[f32], temperature: f32, top_p: f32, rng: &mut ChaCha20Rng) -> u32 {
    let t = f64::from(temperature.max(1e-4));
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .map(|(i, &l)| (i as u32, (f64::from(l - max) / t).exp()))
        .collect();
    if probs.is_empty() {
        return 0;
    }
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let total: f64 = probs.iter().map(|p| p.1).sum();
    let mut kept = 0;
    let mut cum = 0.0;
    for p in &probs {
        cum += p.1 / total;
        kept += 1;
        if cum >= f64::from(top_p) {
            break;
        }
    }
    probs.truncate(kept);
    let mass: f64 = probs.iter().map(|p| p.1).sum();
    let mut u = uniform(rng) * mass;
    for &(id, p) in &probs {
        if u < p {
            return id;
        }
        u -= p;
    }
    probs[probs.len() - 1].0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        // One token has almost all mass: top-p 0.5 must always pick it.
        let logits = [0.0, 10.0, 0.0, 0.0];
        for _ in 0..100 {
            assert_eq!(sample_top_p(&logits, 1.0, 0.5, &mut rng), 1);
        }
        // Uniform logits with top-p 1: every token appears.
        let mut seen = [false; 4];
        for _ in 0..200 {
            seen[sample_top_p(&[1.0; 4], 1.0, 1.0, &mut rng) as usize] = true;
        }
        assert_eq!(seen, [true; 4]);
        // -inf is never sampled.
        let l = [f32::NEG_INFINITY, 0.0];
        assert!((0..50).all(|_| sample_top_p(&l, 1.0, 1.0, &mut rng) == 1));
    }

    #[test]
    fn replies_are_cleaned() {
        let s = ["Chen", "#Person2#", "Bo"];
        assert_eq!(
            clean_reply("Chen: Sure, see you at six.", true, &s),
            "Sure, see you at six."
        );
        assert_eq!(clean_reply("Person2: Yes.", true, &s), "Yes.");
        assert_eq!(clean_reply("Reply: Yes.", true, &s), "Yes.");
        assert_eq!(
            clean_reply("Hi Chen,\nSee you at six.", true, &s),
            "See you at six."
        );
        assert_eq!(clean_reply("Hi Chen,", true, &s), "Hi Chen,");
        assert_eq!(
            clean_reply("\n\"Sounds good!\"\nBo: me too", true, &s),
            "Sounds good!"
        );
        // Cut by the limit: back to the last sentence end, if any.
        assert_eq!(clean_reply("Great. I will bring the", false, &s), "Great.");
        assert_eq!(
            clean_reply("I will bring the", false, &s),
            "I will bring the"
        );
        // A colon that follows no label is text.
        assert_eq!(
            clean_reply("Note this: at 7:30", true, &s),
            "Note this: at 7:30"
        );
        assert_eq!(clean_reply("At 7:30 then", true, &s), "At 7:30 then");
    }

    #[test]
    fn penalty_pushes_seen_tokens_down() {
        let mut l = [2.0, -2.0, 1.0];
        penalize(&mut l, &[0, 1, 0], 2.0);
        assert_eq!(l, [1.0, -4.0, 1.0]);
    }
}
