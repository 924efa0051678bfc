//! Runs the features natively on the real models over a JSONL file of dialogues, for
//! `cargo xtask eval-summaries` (which scores the output with ROUGE and the reply checks).
//!
//! ```text
//! eval_features summarize MODELS_DIR DIALOGUES.jsonl LIMIT OUT.jsonl
//! eval_features suggest   MODELS_DIR DIALOGUES.jsonl LIMIT OUT.jsonl
//! eval_features recall    MODELS_DIR THREADS_DIR
//! eval_features thread    MODELS_DIR THREAD.txt
//! ```
//!
//! `summarize` writes `{"fname","abstractive","extractive","lead3",…}` per dialogue (each summary
//! as plain text, one line per sentence or message, `sender: text` for messages; k = 3 picks, the
//! same count as lead-3); `suggest` writes the replies (n = 3, seed = the dialogue's position) for
//! the checks; `recall` prints how many hand-picked key messages of the hand-written threads the
//! extractive picks recover (k = number of keys), beside a random pick's expectation; `thread`
//! prints the summary of a thread file in the demo's `[time] sender: text` format.
//!
//! A dialogue is DialogSum's `{"fname", "dialogue"}` with turns `#Person1#: text` one per line;
//! each turn is one message with the speaker as its sender.

use std::io::{BufRead, Write};
use std::path::Path;

use burn::tensor::Device;
use pp_inference::bert::BertConfig;
use pp_inference::suggest::Generator;
use pp_inference::summarize::Embedder;
use pp_protocol::app::Message;
use serde_json::json;

const GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

const USAGE: &str = "usage: eval_features summarize|suggest MODELS_DIR DIALOGUES.jsonl LIMIT OUT.jsonl \
    | recall MODELS_DIR THREADS_DIR | thread MODELS_DIR THREAD.txt";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = USAGE;
    match args.as_slice() {
        [mode, models, dir] if mode == "recall" => {
            return recall(Path::new(models), Path::new(dir));
        }
        [mode, models, file] if mode == "thread" => {
            return thread(Path::new(models), Path::new(file));
        }
        _ => {}
    }
    let [mode, models, data, limit, out] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let models = Path::new(models);
    let limit: usize = limit.parse().expect("LIMIT is a number");
    let dialogues = read_dialogues(Path::new(data), limit);
    let mut out = std::io::BufWriter::new(std::fs::File::create(out).expect("OUT is writable"));
    match mode.as_str() {
        "summarize" => {
            let (e, g) = (embedder(models), generator(models));
            for (fname, thread) in &dialogues {
                let t = std::time::Instant::now();
                let k = 3.min(thread.len());
                let line = match summarize(&e, &g, thread, k) {
                    Ok(s) => {
                        let picks: Vec<usize> =
                            s.extractive.key_messages.iter().map(|m| m.index).collect();
                        json!({
                            "fname": fname,
                            "abstractive": s.bullets.iter().map(|b| b.text.as_str()).collect::<Vec<_>>().join("\n"),
                            "extractive": lines(thread, &picks),
                            "lead3": lines(thread, &(0..3.min(thread.len())).collect::<Vec<_>>()),
                            "bullets": s.bullets.iter().map(|b| json!({"text": b.text, "cites": b.cites})).collect::<Vec<_>>(),
                            "picks": picks,
                            "left_out": s.left_out,
                            "fell_back": s.fell_back,
                            "seconds": t.elapsed().as_secs_f64(),
                        })
                    }
                    Err(e) => json!({ "fname": fname, "error": e.to_string() }),
                };
                writeln!(out, "{line}").unwrap();
                eprint!(".");
            }
        }
        "suggest" => {
            let g = generator(models);
            for (i, (fname, thread)) in dialogues.iter().enumerate() {
                let line = match pp_inference::suggest::suggest(&g, thread, i as u64, 3) {
                    Ok(s) => json!({
                        "fname": fname,
                        "last": thread[thread.len() - 1].text,
                        "senders": senders(thread),
                        "replies": s.iter().map(|s| json!({
                            "text": s.text, "tokens": s.tokens.len(), "finished": s.finished,
                        })).collect::<Vec<_>>(),
                    }),
                    Err(e) => json!({ "fname": fname, "error": e.to_string() }),
                };
                writeln!(out, "{line}").unwrap();
                eprint!(".");
            }
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
    eprintln!();
}

/// The abstractive summary, with the prompt's words from `PP_EVAL_SYSTEM`, `PP_EVAL_HEAD`,
/// `PP_EVAL_TAIL`, `PP_EVAL_PREFIX`, `PP_EVAL_NAME_FIRST` (`0`: off) where set (prompt work on
/// the dev split; `\n` is a newline).
fn summarize<'a>(
    e: &Embedder,
    g: &Generator,
    thread: &'a [Message],
    k: usize,
) -> Result<pp_inference::abstractive::AbstractiveSummary<'a>, pp_inference::FeatureError> {
    use pp_inference::abstractive::{SummaryPrompt, summarize_with};
    let var = |name: &str| std::env::var(name).ok().map(|v| v.replace("\\n", "\n"));
    let (system, head, tail, prefix) = (
        var("PP_EVAL_SYSTEM"),
        var("PP_EVAL_HEAD"),
        var("PP_EVAL_TAIL"),
        var("PP_EVAL_PREFIX"),
    );
    let d = SummaryPrompt::DEFAULT;
    let words = SummaryPrompt {
        system: system.as_deref().unwrap_or(d.system),
        head: head.as_deref().unwrap_or(d.head),
        tail: tail.as_deref().unwrap_or(d.tail),
        prefix: prefix.as_deref().unwrap_or(d.prefix),
        name_first: match std::env::var("PP_EVAL_NAME_FIRST").as_deref() {
            Ok("0") => false,
            Ok(_) => true,
            Err(_) => d.name_first,
        },
    };
    summarize_with(e, g, thread, k, &words)
}

fn embedder(models: &Path) -> Embedder {
    Embedder::from_bytes(
        &std::fs::read(models.join("model.safetensors")).expect("read MiniLM"),
        &std::fs::read(models.join("tokenizer.json")).expect("read MiniLM's tokenizer"),
        BertConfig::minilm_l6(),
        &Device::flex(),
    )
    .expect("load MiniLM")
}

fn generator(models: &Path) -> Generator {
    Generator::from_gguf_bytes(
        &std::fs::read(models.join(GGUF)).expect("read the GGUF"),
        &Device::flex(),
    )
    .expect("load SmolLM2")
}

/// The messages at `idx` as `sender: text` lines.
fn lines(thread: &[Message], idx: &[usize]) -> String {
    idx.iter()
        .map(|&i| format!("{}: {}", thread[i].sender, thread[i].text))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A hand-written thread with its hand-picked key messages (`inference/tests/data/threads`).
#[derive(serde::Deserialize)]
struct LabelledThread {
    title: String,
    messages: Vec<Message>,
    key: Vec<usize>,
}

fn recall(models: &Path, dir: &Path) {
    let e = embedder(models);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read the threads")
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let (mut hit, mut total, mut random) = (0usize, 0usize, 0f64);
    for p in &files {
        let t: LabelledThread = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        let k = t.key.len();
        let s = pp_inference::summarize::summarize(&e, &t.messages, k).unwrap();
        let got: Vec<usize> = s.key_messages.iter().map(|m| m.index).collect();
        let h = got.iter().filter(|i| t.key.contains(i)).count();
        println!(
            "  {} ({}): key {:?} picked {got:?}: {h}/{k}",
            p.file_stem().unwrap().to_string_lossy(),
            t.title,
            t.key
        );
        hit += h;
        total += k;
        random += (k * k) as f64 / t.messages.len() as f64;
    }
    println!(
        "key-message recall on {} hand-written threads: {hit}/{total} (random pick: {random:.1})",
        files.len()
    );
}

fn thread(models: &Path, file: &Path) {
    let text = std::fs::read_to_string(file).expect("read the thread");
    let thread: Vec<Message> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let l = l.trim();
            let (time, rest) = match l.strip_prefix('[').and_then(|r| r.split_once("] ")) {
                Some((t, r)) => (Some(t.to_owned()), r),
                None => (None, l),
            };
            let (sender, text) = rest.split_once(": ")?;
            Some(Message {
                sender: sender.to_owned(),
                text: text.to_owned(),
                time,
            })
        })
        .collect();
    let (e, g) = (embedder(models), generator(models));
    let t = std::time::Instant::now();
    let s = summarize(&e, &g, &thread, 3.min(thread.len())).unwrap();
    for b in &s.bullets {
        println!("- {} (from {:?})", b.text, b.cites);
    }
    let picks: Vec<usize> = s.extractive.key_messages.iter().map(|m| m.index).collect();
    println!(
        "picks {picks:?}, left out {}, fell back {}, {:.1} s",
        s.left_out,
        s.fell_back,
        t.elapsed().as_secs_f64()
    );
    for seed in 0..2 {
        let r = pp_inference::suggest::suggest(&g, &thread, seed, 3).unwrap();
        println!(
            "suggestions (seed {seed}): {:?}",
            r.iter().map(|s| s.text.as_str()).collect::<Vec<_>>()
        );
    }
}

fn senders(thread: &[Message]) -> Vec<String> {
    let mut s: Vec<String> = thread.iter().map(|m| m.sender.clone()).collect();
    s.sort();
    s.dedup();
    s
}

/// The first `limit` dialogues of a DialogSum JSONL file, as threads.
fn read_dialogues(path: &Path, limit: usize) -> Vec<(String, Vec<Message>)> {
    let f = std::fs::File::open(path).expect("open the dialogues");
    std::io::BufReader::new(f)
        .lines()
        .take(limit)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l.unwrap()).expect("JSON line");
            let thread = v["dialogue"]
                .as_str()
                .expect("dialogue")
                .lines()
                .filter_map(|t| {
                    let (sender, text) = t.split_once(": ")?;
                    Some(Message {
                        sender: sender.trim().to_owned(),
                        text: text.trim().to_owned(),
                        time: None,
                    })
                })
                .collect();
            (v["fname"].as_str().expect("fname").to_owned(), thread)
        })
        .collect()
}
