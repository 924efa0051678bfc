//! Prefill and decode speed of the SmolLM2 decoder on one thread, measured the way llama.cpp's
//! `llama-bench` measures (`-p N -n M`), for `cargo xtask bench-llama`:
//!
//! ```text
//! speed GGUF PROMPT_TOKENS DECODE_TOKENS
//! ```
//!
//! - prefill: `PROMPT_TOKENS` token ids in one forward pass on an empty cache (llama-bench's
//!   `pp` test);
//! - decode: `DECODE_TOKENS` forward passes of one token each, starting on an empty cache, each
//!   feeding the greedy next token (llama-bench's `tg` test: one token at a time from position 0).
//!
//! The token ids are fixed pseudo-random ids (as llama-bench uses random ones): speed does not
//! depend on what they say. One untimed warm-up pass of each runs first (llama-bench warms up
//! too). Prints one JSON line: `{"prefill_tps", "decode_tps", "prefill_s", "decode_s", "kernel"}`.
//! Burn runs single-threaded here (pp-inference without its `rayon` feature).

use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;
use pp_inference::qmat::{Kernel, SharedBytes};
use pp_inference::suggest::Generator;
use serde_json::json;

const USAGE: &str = "usage: speed GGUF PROMPT_TOKENS DECODE_TOKENS";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [gguf, prompt, decode] = args.as_slice() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let (Ok(prompt), Ok(decode)) = (prompt.parse::<usize>(), decode.parse::<usize>()) else {
        eprintln!("{USAGE} (counts are whole numbers)");
        std::process::exit(2);
    };
    if prompt == 0 || decode == 0 {
        eprintln!("{USAGE} (counts are at least 1)");
        std::process::exit(2);
    }
    let bytes = match std::fs::read(gguf) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("speed: cannot read {gguf}: {e}");
            std::process::exit(1);
        }
    };
    let g = Generator::from_shared_gguf(SharedBytes::new(Arc::new(bytes)), &Device::flex())
        .unwrap_or_else(|e| {
            eprintln!("speed: cannot load {gguf}: {e}");
            std::process::exit(1);
        });
    let m = g.model();
    let vocab = m.config().vocab_size as u64;
    // A fixed linear congruential sequence of ids (Knuth's MMIX constants).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let ids: Vec<u32> = (0..prompt)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) % vocab) as u32
        })
        .collect();
    let argmax = |v: &[f32]| {
        (0..v.len())
            .max_by(|&a, &b| v[a].total_cmp(&v[b]))
            .unwrap_or(0)
    };

    let run_prefill = || {
        let mut cache = m.new_cache();
        let t = Instant::now();
        m.forward(&ids, &mut cache).expect("prefill");
        t.elapsed().as_secs_f64()
    };
    let run_decode = || {
        let mut cache = m.new_cache();
        let mut next = ids[0];
        let t = Instant::now();
        for _ in 0..decode {
            let logits = m.forward(&[next], &mut cache).expect("decode step");
            next = argmax(&logits) as u32;
        }
        t.elapsed().as_secs_f64()
    };
    // Warm-up (untimed): page the file in, fill the allocator's pools.
    run_prefill();
    let mut cache = m.new_cache();
    m.forward(&ids[..1], &mut cache).expect("warm-up step");
    drop(cache);

    let prefill_s = run_prefill();
    let decode_s = run_decode();
    println!(
        "{}",
        json!({
            "prefill_tokens": prompt,
            "decode_tokens": decode,
            "prefill_s": prefill_s,
            "decode_s": decode_s,
            "prefill_tps": prompt as f64 / prefill_s,
            "decode_tps": decode as f64 / decode_s,
            "kernel": format!("{:?}", Kernel::best()),
        })
    );
}
