//! Seeded random-weight models of the real architectures, serialized in the real formats
//! (safetensors + `tokenizer.json` for BERT, GGUF with a byte-level BPE vocabulary for the
//! `llama` and `qwen2` decoders),
//! so tests and the in-image smoke test run the exact loading path in milliseconds.

use crate::config::{Arch, BertConfig, LlamaConfig};
use crate::gguf::{GgmlType, Value};
use crate::gguf_write::GgufWriter;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use safetensors::tensor::TensorView;

/// A deterministic uniform sampler for weights.
struct Init(ChaCha20Rng);

impl Init {
    fn new(seed: u64) -> Self {
        Self(ChaCha20Rng::seed_from_u64(seed))
    }
    /// Uniform in [-scale, scale).
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| ((self.0.next_u32() >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * scale)
            .collect()
    }
    /// Around `center`, for norm gains.
    fn near(&mut self, n: usize, center: f32, spread: f32) -> Vec<f32> {
        self.vec(n, spread)
            .into_iter()
            .map(|v| v + center)
            .collect()
    }
}

/// BERT: 2 layers, hidden 32, 4 heads, intermediate 64, 64 positions, over [`tiny_bert_vocab`].
pub fn tiny_bert_config() -> BertConfig {
    BertConfig {
        vocab_size: tiny_bert_vocab().len(),
        hidden: 32,
        layers: 2,
        heads: 4,
        intermediate: 64,
        max_positions: 64,
        type_vocab: 2,
        eps: 1e-12,
    }
}

/// The tiny WordPiece vocabulary: specials at the BERT ids' relative order, then single
/// characters (`a`–`z`, digits, punctuation) and their `##` continuations.
pub fn tiny_bert_vocab() -> Vec<String> {
    let mut v: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let chars: Vec<char> = ('a'..='z')
        .chain('0'..='9')
        .chain(".,!?'-".chars())
        .collect();
    v.extend(chars.iter().map(|c| c.to_string()));
    v.extend(chars.iter().map(|c| format!("##{c}")));
    v
}

/// A BERT `tokenizer.json` (normalizer, pre-tokenizer, WordPiece, `[CLS] … [SEP]` template)
/// over [`tiny_bert_vocab`], with padding and truncation on, as the real file has them.
pub fn tiny_bert_tokenizer_json() -> Vec<u8> {
    let vocab = tiny_bert_vocab();
    let entries: Vec<String> = vocab
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{}:{i}", serde_json_string(t)))
        .collect();
    let special = |id: usize, s: &str| {
        format!(
            r#"{{"id":{id},"content":"{s}","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}}"#
        )
    };
    let added: Vec<String> = (0..5).map(|i| special(i, &vocab[i])).collect();
    format!(
        r###"{{"version":"1.0",
"truncation":{{"direction":"Right","max_length":16,"strategy":"LongestFirst","stride":0}},
"padding":{{"strategy":{{"Fixed":16}},"direction":"Right","pad_to_multiple_of":null,"pad_id":0,"pad_type_id":0,"pad_token":"[PAD]"}},
"added_tokens":[{}],
"normalizer":{{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true}},
"pre_tokenizer":{{"type":"BertPreTokenizer"}},
"post_processor":{{"type":"TemplateProcessing",
 "single":[{{"SpecialToken":{{"id":"[CLS]","type_id":0}}}},{{"Sequence":{{"id":"A","type_id":0}}}},{{"SpecialToken":{{"id":"[SEP]","type_id":0}}}}],
 "pair":[{{"SpecialToken":{{"id":"[CLS]","type_id":0}}}},{{"Sequence":{{"id":"A","type_id":0}}}},{{"SpecialToken":{{"id":"[SEP]","type_id":0}}}},{{"Sequence":{{"id":"B","type_id":1}}}},{{"SpecialToken":{{"id":"[SEP]","type_id":1}}}}],
 "special_tokens":{{"[CLS]":{{"id":"[CLS]","ids":[2],"tokens":["[CLS]"]}},"[SEP]":{{"id":"[SEP]","ids":[3],"tokens":["[SEP]"]}}}}}},
"decoder":{{"type":"WordPiece","prefix":"##","cleanup":true}},
"model":{{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,"vocab":{{{}}}}}}}"###,
        added.join(","),
        entries.join(",")
    )
    .into_bytes()
}

fn serde_json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Random BERT weights for `cfg` as safetensors bytes with the HF `BertModel` names.
pub fn tiny_bert_safetensors(cfg: &BertConfig, seed: u64) -> Vec<u8> {
    let mut init = Init::new(seed);
    let (h, i) = (cfg.hidden, cfg.intermediate);
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut add =
        |name: String, shape: Vec<usize>, data: Vec<f32>| tensors.push((name, shape, data));
    add(
        "embeddings.word_embeddings.weight".into(),
        vec![cfg.vocab_size, h],
        init.vec(cfg.vocab_size * h, 1.0),
    );
    add(
        "embeddings.position_embeddings.weight".into(),
        vec![cfg.max_positions, h],
        init.vec(cfg.max_positions * h, 0.3),
    );
    add(
        "embeddings.token_type_embeddings.weight".into(),
        vec![cfg.type_vocab, h],
        init.vec(cfg.type_vocab * h, 0.1),
    );
    add(
        "embeddings.LayerNorm.weight".into(),
        vec![h],
        init.near(h, 1.0, 0.1),
    );
    add(
        "embeddings.LayerNorm.bias".into(),
        vec![h],
        init.vec(h, 0.1),
    );
    for n in 0..cfg.layers {
        let p = format!("encoder.layer.{n}");
        for (name, out, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", i, h),
            ("output.dense", h, i),
        ] {
            let scale = 1.0 / (inp as f32).sqrt();
            add(
                format!("{p}.{name}.weight"),
                vec![out, inp],
                init.vec(out * inp, scale),
            );
            add(format!("{p}.{name}.bias"), vec![out], init.vec(out, 0.05));
        }
        for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
            add(
                format!("{p}.{name}.weight"),
                vec![h],
                init.near(h, 1.0, 0.1),
            );
            add(format!("{p}.{name}.bias"), vec![h], init.vec(h, 0.1));
        }
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, d)| (n, s, d.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, d)| {
            let v = TensorView::new(safetensors::Dtype::F32, s.clone(), d);
            (
                n.clone(),
                v.unwrap_or_else(|_| unreachable!("shape matches data")),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap_or_else(|_| unreachable!("valid views"))
}

/// Llama: 2 blocks, hidden 32, 4 heads, 2 KV heads, intermediate 64, over [`tiny_bpe`].
pub fn tiny_llama_config() -> LlamaConfig {
    LlamaConfig {
        arch: Arch::Llama,
        vocab_size: tiny_bpe().0.len(),
        hidden: 32,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        intermediate: 64,
        rope_theta: 10000.0,
        rms_eps: 1e-5,
        max_seq: 2048,
    }
}

/// Qwen2: the tiny Llama's sizes as `qwen2` (Q/K/V biases, NeoX RoPE), Qwen2's RoPE base and
/// RMSNorm epsilon, 4 query heads per KV head.
pub fn tiny_qwen2_config() -> LlamaConfig {
    LlamaConfig {
        arch: Arch::Qwen2,
        kv_heads: 1,
        rope_theta: 1_000_000.0,
        rms_eps: 1e-6,
        ..tiny_llama_config()
    }
}

/// A ChatML chat template in Qwen2's style (the tiny `qwen2` file carries it, as real ones do).
pub const TINY_CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + \
    message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}\
    {% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// A small printable byte-level BPE: `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` (ids 0–2,
/// as in SmolLM2), the byte symbols of newline and printable ASCII (space to `~`), then tokens
/// merged from a few common English pieces. Whatever the random weights pick, the text decodes
/// to printable ASCII and newlines. Other bytes (controls, non-ASCII) are not in the vocabulary:
/// the tokenizer (no unknown token) drops them from its input — acceptable for a stand-in that
/// only has to run the real code paths. Returns (tokens by id, merges as `"a b"`).
pub fn tiny_bpe() -> (Vec<String>, Vec<String>) {
    let alphabet = byte_level_alphabet();
    let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let printable = |b: usize| b == usize::from(b'\n') || (0x20..=0x7e).contains(&b);
    tokens.extend(
        alphabet
            .iter()
            .enumerate()
            .filter(|(b, _)| printable(*b))
            .map(|(_, c)| c.to_string()),
    );
    let mut merges: Vec<String> = Vec::new();
    let words = [
        "Ġthe",
        "Ġyou",
        "Ġand",
        "ing",
        "Ġto",
        "Ġis",
        "Ġit",
        "Ġwe",
        "Ġok",
        "Ġthanks",
        "Ġsee",
        "user",
        "assistant",
        "system",
        "Ġreply",
        "Ġmessage",
        "Ġshort",
        "ĊĊ",
        "Ġtomorrow",
    ];
    for w in words {
        let chars: Vec<String> = w.chars().map(|c| c.to_string()).collect();
        let mut acc = chars[0].clone();
        for c in &chars[1..] {
            let m = format!("{acc} {c}");
            acc.push_str(c);
            if !merges.contains(&m) {
                merges.push(m);
                tokens.push(acc.clone());
            }
        }
    }
    (tokens, merges)
}

/// Random decoder weights for `cfg` with the [`tiny_bpe`] vocabulary, as GGUF v3 bytes in the
/// real files' types and metadata of `cfg.arch`. `llama` (SmolLM2's types): Q8_0 token
/// embedding (tied output), Q4_1 matrices (F16 for `attn_v`), F32 norms, the `smollm`
/// pre-tokenizer, no chat template. `qwen2` adds F32 Q/K/V biases, an untied Q8_0
/// `output.weight`, the `qwen2` pre-tokenizer and a ChatML `tokenizer.chat_template`, with Q8_0,
/// Q4_0 and Q5_0 matrices besides Q4_1 and F16. (The `llama` bytes are those of the image's tiny
/// model: the random draws of `qwen2`'s extra tensors come after all of `llama`'s.)
pub fn tiny_llama_gguf(cfg: &LlamaConfig, seed: u64) -> Vec<u8> {
    let mut init = Init::new(seed);
    let (tokens, merges) = tiny_bpe();
    assert_eq!(tokens.len(), cfg.vocab_size, "tiny decoder vocab");
    let qwen = cfg.arch == Arch::Qwen2;
    let a = cfg.arch.name();
    let u32v = |n: usize| Value::U32(n as u32);
    let strings = |v: &[String]| Value::Array(v.iter().map(|s| Value::String(s.clone())).collect());
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String(a.into()));
    w.metadata("general.alignment", Value::U32(32));
    w.metadata(&format!("{a}.block_count"), u32v(cfg.layers));
    w.metadata(&format!("{a}.context_length"), u32v(cfg.max_seq));
    w.metadata(&format!("{a}.embedding_length"), u32v(cfg.hidden));
    w.metadata(&format!("{a}.feed_forward_length"), u32v(cfg.intermediate));
    w.metadata(&format!("{a}.attention.head_count"), u32v(cfg.heads));
    w.metadata(&format!("{a}.attention.head_count_kv"), u32v(cfg.kv_heads));
    w.metadata(&format!("{a}.rope.freq_base"), Value::F32(cfg.rope_theta));
    w.metadata(
        &format!("{a}.attention.layer_norm_rms_epsilon"),
        Value::F32(cfg.rms_eps),
    );
    w.metadata(
        &format!("{a}.rope.dimension_count"),
        u32v(cfg.hidden / cfg.heads),
    );
    w.metadata("tokenizer.ggml.model", Value::String("gpt2".into()));
    let pre = if qwen { "qwen2" } else { "smollm" };
    w.metadata("tokenizer.ggml.pre", Value::String(pre.into()));
    w.metadata("tokenizer.ggml.tokens", strings(&tokens));
    w.metadata("tokenizer.ggml.merges", strings(&merges));
    w.metadata("tokenizer.ggml.eos_token_id", Value::U32(2));
    if qwen {
        let t = Value::String(TINY_CHATML_TEMPLATE.into());
        w.metadata("tokenizer.chat_template", t);
    }
    let (h, i) = (cfg.hidden, cfg.intermediate);
    let kvd = cfg.kv_heads * (h / cfg.heads);
    let v = cfg.vocab_size;
    // Small embeddings keep the tied output from just repeating the input token.
    w.tensor(
        "token_embd.weight",
        &[h, v],
        GgmlType::Q8_0,
        &init.vec(h * v, 0.05),
    );
    for n in 0..cfg.layers {
        let p = format!("blk.{n}");
        let mut mat = |name: &str, inp: usize, out: usize, ty: GgmlType| {
            let x = init.vec(inp * out, 1.0 / (inp as f32).sqrt());
            w.tensor(&format!("{p}.{name}.weight"), &[inp, out], ty, &x);
        };
        // qwen2 spreads the matrices over more types (the numpy reference dequantizes them
        // independently); llama keeps SmolLM2's.
        let (tq, tk, to) = if qwen {
            (GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0)
        } else {
            (GgmlType::Q4_1, GgmlType::Q4_1, GgmlType::Q4_1)
        };
        mat("attn_q", h, h, tq);
        mat("attn_k", h, kvd, tk);
        mat("attn_v", h, kvd, GgmlType::F16);
        mat("attn_output", h, h, to);
        mat("ffn_gate", h, i, GgmlType::Q4_1);
        mat("ffn_up", h, i, GgmlType::Q4_1);
        mat("ffn_down", i, h, GgmlType::Q4_1);
        for name in ["attn_norm", "ffn_norm"] {
            let g = init.near(h, 1.0, 0.1);
            w.tensor(&format!("{p}.{name}.weight"), &[h], GgmlType::F32, &g);
        }
        if qwen {
            // Large enough to move the logits (Qwen2's own K biases are large).
            for (name, n) in [("attn_q", h), ("attn_k", kvd), ("attn_v", kvd)] {
                let b = init.vec(n, 0.5);
                w.tensor(&format!("{p}.{name}.bias"), &[n], GgmlType::F32, &b);
            }
        }
    }
    let g = init.near(h, 1.0, 0.1);
    w.tensor("output_norm.weight", &[h], GgmlType::F32, &g);
    if qwen {
        let x = init.vec(h * v, 0.2);
        w.tensor("output.weight", &[h, v], GgmlType::Q8_0, &x);
    }
    w.finish()
}

/// GPT-2's byte-to-character map used by byte-level BPE vocabularies: printable bytes map to
/// themselves, the others to `U+0100` onwards (so a space is `Ġ`).
pub fn byte_level_alphabet() -> [char; 256] {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut out = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        let c = if printable(b) {
            b
        } else {
            next += 1;
            next - 1
        };
        out[b as usize] = char::from_u32(c).unwrap_or('\u{fffd}');
    }
    out
}
