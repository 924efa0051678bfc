//! Benchmarks on the real weights against the numpy references, on this machine, one core each.
//!
//! `PP_MODELS_DIR=… PP_INFERENCE_PYTHON=… cargo bench -p pp-inference --bench inference`
//!
//! Each phase runs in its own child process so that its peak RSS (VmHWM) is its own:
//! `simd` (what burn-flex can use here, and a matmul rate that shows whether it does),
//! `minilm` (50 messages), `smollm` (prompt + 20 greedy tokens, then one `suggest`).

#[path = "../tests/common/mod.rs"]
mod common;

use burn::tensor::{Device, Tensor};
use common::{read_model, reference};
use pp_inference::qmat::{Kernel, SharedBytes};
use pp_inference::suggest::{Generator, suggest};
use pp_inference::summarize::Embedder;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn simd() {
    println!(
        "cpu: sse4.2 {} avx {} avx2 {} fma {} avx512f {}",
        is_x86_feature_detected!("sse4.2"),
        is_x86_feature_detected!("avx"),
        is_x86_feature_detected!("avx2"),
        is_x86_feature_detected!("fma"),
        is_x86_feature_detected!("avx512f")
    );
    println!(
        "burn-flex elementwise kernels dispatch on macerator::Arch::detect() = {:?} \
         (V2 = SSE4.2, V3 = AVX2+FMA, V4 = AVX-512); matmul is gemm 0.19 with runtime detection \
         (its AVX-512 kernels need burn-flex's `x86-v4` feature, off here: AVX2+FMA)",
        macerator::Arch::detect()
    );
    let dev = Device::flex();
    for n in [256usize, 512] {
        let a = Tensor::<2>::ones([n, n], &dev);
        let b = Tensor::<2>::ones([n, n], &dev);
        let _ = a.clone().matmul(b.clone()).into_data();
        let reps = 20;
        let t = Instant::now();
        for _ in 0..reps {
            let _ = a.clone().matmul(b.clone()).into_data();
        }
        let per = secs(t.elapsed()) / reps as f64;
        let gflops = 2.0 * (n * n * n) as f64 / per / 1e9;
        println!(
            "burn-flex matmul {n}x{n}: {:.3} ms, {gflops:.1} GFLOP/s (scalar f32 code manages ~1-4)",
            per * 1e3
        );
    }
}

fn minilm() {
    let texts: Vec<String> = common::labelled_threads()
        .into_iter()
        .flat_map(|(_, t)| t.messages.into_iter().map(|m| m.text))
        .take(50)
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let t = Instant::now();
    let st = read_model("model.safetensors");
    let tj = read_model("tokenizer.json");
    let e = Embedder::from_bytes(
        &st,
        &tj,
        pp_inference::bert::BertConfig::minilm_l6(),
        &Device::flex(),
    )
    .unwrap();
    let load = secs(t.elapsed());
    let _ = e.embed(&refs[..5]).unwrap();
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let _ = e.embed(&refs).unwrap();
            secs(t.elapsed())
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    let t = Instant::now();
    for r in &refs {
        let _ = e.embed(&[r]).unwrap();
    }
    let one_by_one = secs(t.elapsed());
    let rss = peak_rss_mib();
    let py = reference(
        "minilm.py",
        &json!({
            "model": common::models_dir().join("model.safetensors"),
            "tokenizer_json": common::models_dir().join("tokenizer.json"),
            "texts": refs,
            "max_len": 512,
        }),
    );
    let np = py["seconds"].as_f64().unwrap();
    println!(
        "MiniLM-L6, 50 messages: load {load:.2} s; embed (batched by length) median {:.3} s (min {:.3}), one message at a time {one_by_one:.3} s; peak RSS {rss:.0} MiB",
        runs[2], runs[0]
    );
    println!(
        "numpy reference (one at a time, forward only): {np:.3} s, peak RSS {:.0} MiB -> numpy/burn = {:.2} (batched), {:.2} (one at a time)",
        py["max_rss_kb"].as_f64().unwrap() / 1024.0,
        np / runs[2],
        np / one_by_one
    );
}

fn smollm() {
    let t = Instant::now();
    // The model points into the file's bytes (no copy, no f32 expansion).
    let file = SharedBytes::new(Arc::new(read_model(common::GGUF)));
    let g = Generator::from_shared_gguf(file, &Device::flex()).unwrap();
    let load = secs(t.elapsed());
    let threads = common::labelled_threads();
    let msgs = &threads[0].1.messages;
    let tail = &msgs[msgs.len() - 6..];
    let prompt = g.prompt(tail).unwrap();
    let m = g.model();
    let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap() as u32;
    let mut cache = m.new_cache();
    let t = Instant::now();
    let mut logits = m.forward(&prompt, &mut cache).unwrap();
    let prefill = secs(t.elapsed());
    let mut greedy = Vec::new();
    let t = Instant::now();
    for _ in 0..20 {
        let next = argmax(&logits);
        greedy.push(next);
        logits = m.forward(&[next], &mut cache).unwrap();
    }
    let decode = secs(t.elapsed());
    // "Load + one suggest": the bench's own cache is not part of it.
    drop(cache);
    let t = Instant::now();
    let s = suggest(&g, tail, 7, 1).unwrap();
    let one = secs(t.elapsed());
    let rss = peak_rss_mib();
    let py = reference(
        "smollm.py",
        &json!({ "gguf": common::gguf_path(), "ids": prompt, "generate": 20 }),
    );
    let np_pre = py["prefill_seconds"].as_f64().unwrap();
    let np_dec = py["decode_seconds"].as_f64().unwrap();
    let np_ids: Vec<u32> = serde_json::from_value(py["generated"].clone()).unwrap();
    let same = np_ids
        .iter()
        .zip(&greedy)
        .take_while(|(a, b)| a == b)
        .count();
    println!(
        "SmolLM2-135M ({:?} kernels): load {load:.2} s; prompt {} tokens prefill {prefill:.3} s; 20 greedy tokens {decode:.3} s = {:.1} tokens/s ({:.1} ms/token); one suggest() call ({} tokens) {one:.3} s; peak RSS {rss:.0} MiB",
        Kernel::best(),
        prompt.len(),
        20.0 / decode,
        decode / 20.0 * 1e3,
        s[0].tokens.len()
    );
    println!(
        "numpy reference: prefill {np_pre:.3} s, 20 tokens {np_dec:.3} s = {:.1} tokens/s, peak RSS {:.0} MiB -> numpy/burn = {:.2} (prefill), {:.2} (decode); greedy tokens agree for {same}/20",
        20.0 / np_dec,
        py["max_rss_kb"].as_f64().unwrap() / 1024.0,
        np_pre / prefill,
        np_dec / decode
    );
}

fn main() {
    match std::env::var("PP_BENCH_PHASE").as_deref() {
        Ok("simd") => return simd(),
        Ok("minilm") => return minilm(),
        Ok("smollm") => return smollm(),
        _ => {}
    }
    // `cargo bench` passes `--bench`; filters select phases.
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let exe = std::env::current_exe().unwrap();
    for phase in ["simd", "minilm", "smollm"] {
        if !wanted.is_empty() && !wanted.iter().any(|w| phase.contains(w.as_str())) {
            continue;
        }
        if phase != "simd" {
            let _ = common::models_dir(); // fails with instructions when unset
        }
        let st = std::process::Command::new(&exe)
            .env("PP_BENCH_PHASE", phase)
            .status()
            .unwrap();
        assert!(st.success(), "bench phase {phase} failed");
    }
}
