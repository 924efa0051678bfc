//! Tests against the real weights and the numpy/Python references. Run with
//! `PP_MODELS_DIR=… PP_INFERENCE_PYTHON=… cargo test -p pp-inference --release --features real-weights`
//! (see inference/README.md). Without the variables every test here fails, on purpose.
#![cfg(feature = "real-weights")]

mod common;

use burn::tensor::Device;
use common::{HARD_STRINGS, gguf_path, models_dir, read_model, reference};
use pp_inference::bert::{BertConfig, MiniLm};
use pp_inference::tokenize::{MiniLmTokenizer, PreTokenizerKind, SmolTokenizer};
use serde_json::json;

fn ids_of(v: &serde_json::Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).expect("reference ids")
}

#[test]
fn tokenizers_match_references_on_hard_strings() {
    let dir = models_dir();
    // Where Qwen2's split differs from SmolLM2's (a letter run with one leading symbol,
    // uppercase contractions, punctuation with its newlines, tabs).
    let qwen2_extra = [
        "Hello (world) it's 2024!\n\nOK",
        "(x IT'S WE'LL",
        "x.\r\n\ny\t\tz  \n end",
    ];
    let texts: Vec<&str> = HARD_STRINGS.iter().copied().chain(qwen2_extra).collect();
    let resp = reference(
        "tokens.py",
        &json!({
            "tokenizer_json": dir.join("tokenizer.json"),
            "gguf": gguf_path(),
            "texts": texts,
        }),
    );
    let mini = MiniLmTokenizer::from_json(&read_model("tokenizer.json")).unwrap();
    let gguf_bytes = read_model(common::GGUF);
    let g = pp_inference::gguf::Gguf::parse(&gguf_bytes).unwrap();
    let smol = SmolTokenizer::from_gguf(&g).unwrap();
    let (want_mini, want_hf, want_py) = (
        ids_of(&resp["minilm"]),
        ids_of(&resp["smol_hf"]),
        ids_of(&resp["smol_bpe"]),
    );
    for (i, text) in HARD_STRINGS.iter().enumerate() {
        assert_eq!(
            mini.encode(text, 100_000).unwrap().0,
            want_mini[i],
            "MiniLM, string {i}"
        );
        let got = smol.encode(text).unwrap();
        assert_eq!(
            got, want_hf[i],
            "SmolLM2 vs tokenizers (Python), string {i}"
        );
        assert_eq!(got, want_py[i], "SmolLM2 vs pure-Python BPE, string {i}");
        assert_eq!(
            smol.decode(&got).unwrap(),
            *text,
            "SmolLM2 round trip, string {i}"
        );
    }
    // SmolLM2's vocabulary and merges with the `qwen2` pre-tokenizer against the pure-Python
    // BPE with Qwen2's regex (the `regex` module): the split points of `qwen2`.
    let want_qwen2 = ids_of(&resp["qwen2_bpe"]);
    let (tokens, merges) = (
        g.get_strings("tokenizer.ggml.tokens").unwrap(),
        g.get_strings("tokenizer.ggml.merges").unwrap(),
    );
    let qwen2 = SmolTokenizer::from_vocab(&tokens, &merges, PreTokenizerKind::Qwen2).unwrap();
    let mut differ = 0;
    for (i, text) in texts.iter().enumerate() {
        let got = qwen2.encode(text).unwrap();
        assert_eq!(
            got, want_qwen2[i],
            "qwen2 split vs pure-Python BPE, string {i}"
        );
        assert_eq!(
            qwen2.decode(&got).unwrap(),
            *text,
            "qwen2 round trip, string {i}"
        );
        differ += usize::from(got != smol.encode(text).unwrap());
    }
    eprintln!(
        "qwen2 pre-tokenizer: {differ} of {} strings split unlike smollm",
        texts.len()
    );
    assert!(
        differ >= qwen2_extra.len(),
        "the strings must tell the two splits apart"
    );
}

#[test]
fn minilm_embeddings_match_numpy() {
    let dir = models_dir();
    let texts: Vec<&str> = HARD_STRINGS
        .iter()
        .copied()
        .chain(common::SENTENCES.iter().copied())
        .collect();
    let resp = reference(
        "minilm.py",
        &json!({
            "model": dir.join("model.safetensors"),
            "tokenizer_json": dir.join("tokenizer.json"),
            "texts": texts,
            "max_len": 512,
        }),
    );
    let want: Vec<Vec<f32>> = serde_json::from_value(resp["embeddings"].clone()).unwrap();
    let tok = MiniLmTokenizer::from_json(&read_model("tokenizer.json")).unwrap();
    let model = MiniLm::from_safetensors(
        &read_model("model.safetensors"),
        BertConfig::minilm_l6(),
        &Device::flex(),
    )
    .unwrap();
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| tok.encode(t, 512).unwrap().0)
        .collect();
    let got = model.embed(&ids).unwrap();
    let mut worst = 1.0f32;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let cos: f32 = g.iter().zip(w).map(|(a, b)| a * b).sum();
        worst = worst.min(cos);
        assert!(cos >= 1.0 - 1e-4, "text {i}: cosine {cos}");
    }
    eprintln!(
        "MiniLM vs numpy: worst cosine {worst} over {} texts",
        texts.len()
    );
}

fn real_embedder() -> pp_inference::summarize::Embedder {
    pp_inference::summarize::Embedder::from_bytes(
        &read_model("model.safetensors"),
        &read_model("tokenizer.json"),
        BertConfig::minilm_l6(),
        &Device::flex(),
    )
    .unwrap()
}

/// Reports how many hand-picked key messages `summarize` recovers with k = number of keys.
/// The number is reported, not asserted against a threshold (the data must not tune the method);
/// the expected count for a random pick is printed beside it.
#[test]
fn summarize_quality_on_hand_written_threads() {
    let e = real_embedder();
    let (mut hit, mut total, mut random) = (0usize, 0usize, 0f64);
    for (name, t) in common::labelled_threads() {
        let k = t.key.len();
        let s = pp_inference::summarize::summarize(&e, &t.messages, k).unwrap();
        let got: Vec<usize> = s.key_messages.iter().map(|m| m.index).collect();
        let h = got.iter().filter(|i| t.key.contains(i)).count();
        eprintln!(
            "{name} ({}): key {:?} picked {got:?}: {h}/{k}",
            t.title, t.key
        );
        hit += h;
        total += k;
        random += (k * k) as f64 / t.messages.len() as f64;
    }
    eprintln!("summarize recovered {hit}/{total} key messages (random pick: {random:.1})");
    assert!(total > 0);
}

fn top_k(v: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx.truncate(k);
    idx
}

/// Next-token logits for a short ChatML prompt against the numpy reference (HF layout and
/// rotate-half RoPE): this also checks that GGUF's Q/K layout fits Burn's RotaryEncoding.
#[test]
fn smollm_logits_match_numpy() {
    use pp_inference::llama::{Llama, LlamaConfig};
    use pp_inference::tokenize::ChatTurn;
    let bytes = read_model(common::GGUF);
    let g = pp_inference::gguf::Gguf::parse(&bytes).unwrap();
    let tok = SmolTokenizer::from_gguf(&g).unwrap();
    let prompt = tok
        .chat_prompt(&[
            ChatTurn {
                role: "system",
                content: "You are a helpful assistant.",
            },
            ChatTurn {
                role: "user",
                content: "What is the capital of France? Answer in one word.",
            },
        ])
        .unwrap();
    let resp = reference("smollm.py", &json!({ "gguf": gguf_path(), "ids": prompt }));
    let want: Vec<f32> = serde_json::from_value(resp["logits"].clone()).unwrap();
    let cfg = LlamaConfig::from_gguf(&g, 2048).unwrap();
    let model = Llama::from_gguf(&g, cfg, &Device::flex()).unwrap();
    let mut cache = model.new_cache();
    let got = model.forward(&prompt, &mut cache).unwrap();
    assert_eq!(got.len(), want.len());
    let max_diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    eprintln!(
        "SmolLM2 vs numpy, {}-token prompt: max |Δlogit| {max_diff} (max |logit| {scale}), top-5 {:?} vs {:?} = {:?}",
        prompt.len(),
        top_k(&got, 5),
        top_k(&want, 5),
        tok.decode(&top_k(&got, 1).iter().map(|&i| i as u32).collect::<Vec<_>>())
            .unwrap()
    );
    assert_eq!(top_k(&got, 5), top_k(&want, 5), "top-5 differ");
    assert!(max_diff < 1e-2, "max |Δlogit| {max_diff}");
    // The same prompt one token at a time: every product through the quantized kernels
    // (16-bit activations) instead of the dense prompt path.
    let mut cache = model.new_cache();
    let mut step = Vec::new();
    for &t in &prompt {
        step = model.forward(&[t], &mut cache).unwrap();
    }
    let step_diff = step
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("token by token (quantized kernels): max |Δlogit| {step_diff}");
    assert_eq!(
        top_k(&step, 5),
        top_k(&want, 5),
        "top-5 differ (token by token)"
    );
    assert!(
        step_diff < 1e-2,
        "max |Δlogit| {step_diff} (token by token)"
    );
}

#[test]
fn smollm_suggestions_are_deterministic_per_seed() {
    use pp_inference::suggest::{Generator, suggest};
    let g = Generator::from_gguf_bytes(&read_model(common::GGUF), &Device::flex()).unwrap();
    let threads = common::labelled_threads();
    let t = &threads[0].1.messages;
    let tail = &t[t.len().saturating_sub(6)..];
    let a = suggest(&g, tail, 1, 3).unwrap();
    for s in &a {
        eprintln!(
            "seed 1: {:?} ({} tokens, finished {})",
            s.text,
            s.tokens.len(),
            s.finished
        );
        let d = pp_inference::suggest::SamplingParams::default();
        assert!(s.tokens.len() <= d.max_tokens);
        assert!(!s.finished || s.tokens.len() >= d.min_tokens);
        assert!(!s.text.contains('\n'), "one line: {:?}", s.text);
    }
    assert_eq!(
        a,
        suggest(&g, tail, 1, 3).unwrap(),
        "same seed, same suggestions"
    );
    let b = suggest(&g, tail, 2, 3).unwrap();
    for s in &b {
        eprintln!("seed 2: {:?}", s.text);
    }
    assert_ne!(a, b, "another seed takes another sampling path");
}

/// Writes bytes to a fresh file under the system temp dir (the references read files).
fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pp-inference-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The tiny models through the same numpy references: checks the tiny serializers and, for
/// Llama, GQA with 2 query heads per KV head and the F16 path.
#[test]
fn tiny_models_match_numpy() {
    use pp_inference::gguf::GgmlType;
    use pp_inference::tiny::*;
    let cfg = tiny_bert_config();
    let st = temp_file("tiny.safetensors", &tiny_bert_safetensors(&cfg, 11));
    let tj = temp_file("tiny-tokenizer.json", &tiny_bert_tokenizer_json());
    let texts = ["hello there", "see you at 7:30!", "x"];
    let resp = reference(
        "minilm.py",
        &json!({ "model": st, "tokenizer_json": tj, "texts": texts, "max_len": 64, "heads": cfg.heads }),
    );
    let want: Vec<Vec<f32>> = serde_json::from_value(resp["embeddings"].clone()).unwrap();
    let e = pp_inference::summarize::Embedder::from_bytes(
        &std::fs::read(&st).unwrap(),
        &std::fs::read(&tj).unwrap(),
        cfg,
        &Device::flex(),
    )
    .unwrap();
    for (g, w) in e.embed(&texts).unwrap().vectors.iter().zip(&want) {
        let cos: f32 = g.iter().zip(w).map(|(a, b)| a * b).sum();
        assert!(cos >= 1.0 - 1e-5, "tiny BERT cosine {cos}");
    }

    let lcfg = tiny_llama_config();
    let written = tiny_llama_gguf(&lcfg, 12);
    // As written (Q4_1, Q8_0, F16), and with every matrix in Q4_0 and in Q5_0: the numpy side
    // dequantizes with the `gguf` package, so this also checks our block layouts.
    for ty in [None, Some(GgmlType::Q4_0), Some(GgmlType::Q5_0)] {
        let bytes = match ty {
            None => written.clone(),
            Some(ty) => retype(&written, ty),
        };
        tiny_llama_matches_numpy(&bytes, lcfg);
    }
    // Q4_K and Q6_K need rows of whole 256-element super-blocks: the same model widened to
    // hidden 256 and intermediate 512, every matrix retyped; `gguf` dequantizes them for numpy,
    // an independent reading of the K-quant layouts.
    let kcfg = pp_inference::llama::LlamaConfig {
        hidden: 256,
        intermediate: 512,
        ..lcfg
    };
    let wide = tiny_llama_gguf(&kcfg, 12);
    for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
        tiny_llama_matches_numpy(&retype(&wide, ty), kcfg);
    }
    // Qwen2: Q/K/V biases, NeoX RoPE, untied output, 4:1 GQA, Q8_0/Q4_0/Q5_0/Q4_1/F16 as
    // written, and every matrix in Q4_0.
    let qcfg = tiny_qwen2_config();
    let written = tiny_llama_gguf(&qcfg, 13);
    tiny_llama_matches_numpy(&written, qcfg);
    tiny_llama_matches_numpy(&retype(&written, GgmlType::Q4_0), qcfg);
}

/// `bytes` with every 2-d tensor re-quantized to `ty`.
fn retype(bytes: &[u8], ty: pp_inference::gguf::GgmlType) -> Vec<u8> {
    let g = pp_inference::gguf::Gguf::parse(bytes).unwrap();
    let mut w = pp_inference::gguf_write::GgufWriter::new();
    for (k, v) in &g.metadata {
        w.metadata(k, v.clone());
    }
    for (name, t) in &g.tensors {
        let to = if t.dims.len() == 2 { ty } else { t.ty };
        w.tensor(name, &t.dims, to, &t.to_f32());
    }
    w.finish()
}

fn tiny_llama_matches_numpy(bytes: &[u8], lcfg: pp_inference::llama::LlamaConfig) {
    let path = temp_file("tiny.gguf", bytes);
    let ids: Vec<u32> = vec![1, 150, 45, 77, 2, 13, 1, 80, 81, 82];
    let resp = reference(
        "smollm.py",
        &json!({ "gguf": path, "ids": ids, "generate": 5 }),
    );
    let want: Vec<f32> = serde_json::from_value(resp["logits"].clone()).unwrap();
    let g = pp_inference::gguf::Gguf::parse(bytes).unwrap();
    let m = pp_inference::llama::Llama::from_gguf(&g, lcfg, &Device::flex()).unwrap();
    let got = m.forward(&ids, &mut m.new_cache()).unwrap();
    let diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    eprintln!(
        "tiny {:?} vs numpy: max |Δlogit| {diff} (max |logit| {scale})",
        lcfg.arch
    );
    // 1e-4, relative once logits exceed 1 (the tiny Qwen2's untied output reaches 2.2).
    assert!(
        diff < 1e-4 * scale.max(1.0),
        "tiny {:?} max |Δlogit| {diff}",
        lcfg.arch
    );
    assert_eq!(top_k(&got, 5), top_k(&want, 5));
}

/// The real files packed into `weights.bin`, parsed back, and the models loaded from it.
#[test]
fn weights_blob_of_real_models() {
    use pp_inference::blob::{WeightsBlob, blob_sha256, pack};
    let (st, tj, gg) = (
        read_model("model.safetensors"),
        read_model("tokenizer.json"),
        read_model(common::GGUF),
    );
    let blob = pack(&[
        ("minilm/model.safetensors", &st),
        ("minilm/tokenizer.json", &tj),
        ("smollm2/model.gguf", &gg),
    ])
    .unwrap();
    let b = WeightsBlob::parse(&blob).unwrap();
    let sha: String = blob_sha256(&blob)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    eprintln!("weights.bin: {} bytes, sha256 {sha}", blob.len());
    assert_eq!(b.get("smollm2/model.gguf").unwrap(), &gg[..]);
    pp_inference::suggest::Generator::from_gguf_bytes(
        b.get("smollm2/model.gguf").unwrap(),
        &Device::flex(),
    )
    .unwrap();
}
