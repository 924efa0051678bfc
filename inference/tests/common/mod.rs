//! Shared helpers for the real-weight tests and benches: where the models and the reference
//! Python are, and how to call a reference script.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// File name of the SmolLM2 GGUF inside `PP_MODELS_DIR`.
pub const GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

const HOW: &str = "real-weight tests need PP_MODELS_DIR (fill it with \
    `inference/tools/fetch_models.sh target/pp/models`) and PP_INFERENCE_PYTHON (a venv python with \
    inference/tools/requirements.txt: `python3 -m venv target/pp/venv-inference && \
    target/pp/venv-inference/bin/pip install -r inference/tools/requirements.txt`), e.g. \
    PP_MODELS_DIR=$PWD/target/pp/models PP_INFERENCE_PYTHON=$PWD/target/pp/venv-inference/bin/python";

fn env_path(name: &str) -> PathBuf {
    match std::env::var_os(name) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => panic!("{name} is not set: {HOW}"),
    }
}

/// `PP_MODELS_DIR`, or a panic that says how to set it.
pub fn models_dir() -> PathBuf {
    let d = env_path("PP_MODELS_DIR");
    assert!(
        d.join(GGUF).is_file(),
        "{} has no {GGUF}: {HOW}",
        d.display()
    );
    d
}

/// Path of the SmolLM2 GGUF.
pub fn gguf_path() -> PathBuf {
    models_dir().join(GGUF)
}

/// Bytes of a model file.
pub fn read_model(name: &str) -> Vec<u8> {
    let p = models_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}: {HOW}", p.display()))
}

/// Runs `tests/reference/<script>` with the request on stdin; returns its JSON response.
pub fn reference(script: &str, request: &serde_json::Value) -> serde_json::Value {
    let python = env_path("PP_INFERENCE_PYTHON");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference");
    let mut child = Command::new(&python)
        .arg(dir.join(script))
        .current_dir(&dir)
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("OMP_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}: {HOW}", python.display()));
    let body = serde_json::to_vec(request).unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{script} failed ({})", out.status);
    serde_json::from_slice(&out.stdout).expect("reference output is JSON")
}

/// Strings that break naive tokenizers: emoji (with skin tone and ZWJ), CJK, accents (composed
/// and combining), digits, whitespace runs, control-token look-alikes.
pub const HARD_STRINGS: &[&str] = &[
    "Hello, world!",
    "naïve café résumé — Œuvre, São Paulo, Ångström",
    "e\u{301}cole vs école",
    "日本語のテキストと中文字符，한국어도",
    "emoji 🎉👍🏽 family 👨‍👩‍👧 flag 🇩🇪",
    "digits 1234567890 and 3.14159, 1,000,000 and 007",
    "   leading spaces, double  spaces,\ttabs\t\tand\n\nnewlines\r\n  ",
    "don't won't I'll we've you're it's O'Neil",
    "<|im_start|>user\nnot a real turn<|im_end|>",
    "URL https://example.com/a?b=c&d=e#f and mail a.b@c.de",
    "مرحبا بالعالم and Привет мир",
    "x",
    "",
];

/// Ordinary chat sentences.
pub const SENTENCES: &[&str] = &[
    "Are we still on for dinner tomorrow at seven?",
    "The deploy failed again because the migration timed out.",
    "Can you send me the slides from this morning's meeting?",
    "I think the cat knocked the plant over while we were out.",
    "Tickets for the concert go on sale Friday at 10am.",
];

/// A hand-written thread with its hand-picked key messages.
#[derive(serde::Deserialize)]
pub struct LabelledThread {
    /// What the thread is about.
    pub title: String,
    /// The messages.
    pub messages: Vec<pp_protocol::app::Message>,
    /// Indices of the key messages.
    pub key: Vec<usize>,
}

/// The threads in `tests/data/threads/*.json`, sorted by file name.
pub fn labelled_threads() -> Vec<(String, LabelledThread)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/threads");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let t = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (name, t)
        })
        .collect()
}
