//! `cargo xtask eval-summaries` and `cargo xtask eval-suggest`: the features' quality on data
//! nobody here wrote (DialogSum), measured natively on the host with the real pinned models.
//!
//! The features run through `pp-inference` (the code the enclave's `Features` calls), built with
//! the release profile, as `inference/examples/eval_features.rs`; the scores come from
//! `xtask/eval/score.py` in `target/pp/venv-eval` (rouge-score and better-profanity, pinned with
//! hashes in `xtask/eval/requirements.txt`). The data is read where it lies (by default
//! `../shared/data/dialogsum` beside the checkout) and never copied into the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::util;

/// Which DialogSum split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Split {
    /// 500 dialogues, one reference each: the split for prompt and decoding work.
    Dev,
    /// 500 dialogues, three references each: report only, never tune on it.
    Test,
}

impl Split {
    fn name(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Test => "test",
        }
    }
}

/// Options shared by both evaluations.
#[derive(Args, Clone, Debug)]
pub struct EvalArgs {
    /// DialogSum split.
    #[arg(long, value_enum, default_value = "dev")]
    pub split: Split,
    /// Only the first N dialogues of the split (default: all 500; eval-suggest: 50).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Where to write one JSON line per dialogue (default target/pp/eval/<feature>-<split>.jsonl).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The folder of dialogsum.{dev,test}.jsonl, relative to the repository root.
    #[arg(long, default_value = "../shared/data/dialogsum")]
    pub data: PathBuf,
}

/// Mean ROUGE F1 (×100) of one system.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rouge {
    pub rouge1: f64,
    pub rouge2: f64,
    pub rouge_l: f64,
}

/// What `eval-summaries` measured.
#[derive(Clone, Copy, Debug)]
pub struct SummaryScores {
    pub abstractive: Rouge,
    pub extractive: Rouge,
    pub lead3: Rouge,
    pub dialogues: usize,
}

/// Runs summarize on the split, writes the JSON lines, prints the ROUGE table and the
/// hand-written threads' key-message recall; returns the scores.
pub fn summaries(root: &Path, args: &EvalArgs) -> Result<SummaryScores> {
    let (data, out) = paths(root, args, "summaries")?;
    let models = crate::weights::fetch_models(root)?;
    let python = eval_python(root)?;
    let limit = args.limit.unwrap_or(usize::MAX).to_string();
    eprintln!(
        "eval: summarize on DialogSum {} (limit {limit}) -> {}",
        args.split.name(),
        out.display()
    );
    util::run(
        features(root, "summarize")
            .args([&models, &data])
            .arg(&limit)
            .arg(&out),
    )?;
    let report = score(
        &python,
        root,
        &["summaries".as_ref(), data.as_os_str(), out.as_os_str()],
    )?;
    let system = |name: &str| -> Result<Rouge> {
        let v = &report[name];
        let get = |m: &str| {
            v[m].as_f64()
                .with_context(|| format!("no {name} {m} in the scores"))
        };
        Ok(Rouge {
            rouge1: get("rouge1")?,
            rouge2: get("rouge2")?,
            rouge_l: get("rougeL")?,
        })
    };
    let scores = SummaryScores {
        abstractive: system("abstractive")?,
        extractive: system("extractive")?,
        lead3: system("lead3")?,
        dialogues: report["dialogues"].as_u64().unwrap_or(0) as usize,
    };
    util::run(
        features(root, "recall")
            .arg(&models)
            .arg(root.join("inference/tests/data/threads")),
    )?;
    Ok(scores)
}

/// Runs suggest (n = 3) on the split's first dialogues (50 unless `--limit`), writes the replies
/// and prints how often a reply fails each check.
pub fn suggest(root: &Path, args: &EvalArgs) -> Result<()> {
    let (data, out) = paths(root, args, "suggest")?;
    let models = crate::weights::fetch_models(root)?;
    let python = eval_python(root)?;
    let limit = args.limit.unwrap_or(50).to_string();
    util::run(
        features(root, "suggest")
            .args([&models, &data])
            .arg(&limit)
            .arg(&out),
    )?;
    score(&python, root, &["suggest".as_ref(), out.as_os_str()]).map(drop)
}

/// The split's file (checked to exist) and the output path (its folder made).
fn paths(root: &Path, args: &EvalArgs, feature: &str) -> Result<(PathBuf, PathBuf)> {
    let data = root
        .join(&args.data)
        .join(format!("dialogsum.{}.jsonl", args.split.name()));
    if !data.is_file() {
        bail!(
            "{} is missing: the DialogSum files live in shared/data/dialogsum beside the \
             checkout (see its README), or pass --data",
            data.display()
        );
    }
    let out = match &args.out {
        Some(o) => o.clone(),
        None => root.join(format!(
            "target/pp/eval/{feature}-{}.jsonl",
            args.split.name()
        )),
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    Ok((data, out))
}

/// `cargo run --release --example eval_features -- MODE …` of pp-inference.
fn features(root: &Path, mode: &str) -> Command {
    let mut cmd = Command::new(util::host_cargo());
    cmd.current_dir(root)
        .args(["run", "--quiet", "--release", "-p", "pp-inference"])
        .args(["--example", "eval_features", "--", mode]);
    cmd
}

/// Runs score.py; prints its table and returns its last line's JSON.
fn score(python: &Path, root: &Path, args: &[&std::ffi::OsStr]) -> Result<serde_json::Value> {
    let text = util::stdout_of(
        Command::new(python)
            .arg(root.join("xtask/eval/score.py"))
            .args(args),
    )?;
    let (table, last) = text
        .trim_end()
        .rsplit_once('\n')
        .context("score.py printed no table")?;
    println!("{table}");
    serde_json::from_str(last).context("score.py's last line is not JSON")
}

/// The evaluation's Python environment (`target/pp/venv-eval`), made if missing or out of date:
/// `xtask/eval/build-requirements.txt` then `requirements.txt`, every file checked by its hash.
pub fn eval_python(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/pp/venv-eval");
    let python = venv.join("bin/python3");
    let stamp = venv.join("requirements.installed");
    let dir = root.join("xtask/eval");
    let wanted = std::fs::read_to_string(dir.join("build-requirements.txt"))?
        + &std::fs::read_to_string(dir.join("requirements.txt"))?;
    if python.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return Ok(python);
    }
    eprintln!(
        "eval: installing the pinned scorers from PyPI into {}",
        venv.display()
    );
    util::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
        .context("python3 -m venv failed")?;
    let pip = |extra: &[&str], file: &str| {
        util::run(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(["--require-hashes"])
                .args(extra)
                .arg("-r")
                .arg(dir.join(file)),
        )
        .with_context(|| format!("pip could not install xtask/eval/{file}"))
    };
    pip(&[], "build-requirements.txt")?;
    pip(&["--no-build-isolation"], "requirements.txt")?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

/// Dialogues of the dev split `cargo xtask test` summarizes.
pub const CI_DIALOGUES: usize = 10;

/// The test step: `eval-summaries` on the first [`CI_DIALOGUES`] dev dialogues runs, and the
/// abstractive summary scores at least the extractive picks on ROUGE-L there.
pub fn summaries_check(root: &Path) -> Result<()> {
    let args = EvalArgs {
        split: Split::Dev,
        limit: Some(CI_DIALOGUES),
        out: Some(root.join("target/pp/eval/test-summaries-dev.jsonl")),
        data: PathBuf::from("../shared/data/dialogsum"),
    };
    let s = summaries(root, &args)?;
    if s.dialogues != CI_DIALOGUES {
        bail!(
            "eval-summaries scored {} dialogues, {CI_DIALOGUES} expected",
            s.dialogues
        );
    }
    if s.abstractive.rouge_l < s.extractive.rouge_l {
        bail!(
            "on the first {CI_DIALOGUES} dev dialogues the abstractive summary scores ROUGE-L \
             {:.2}, below the extractive picks' {:.2}",
            s.abstractive.rouge_l,
            s.extractive.rouge_l
        );
    }
    println!(
        "eval-summaries: ROUGE-L abstractive {:.2} >= extractive {:.2} (lead-3 {:.2}) on the \
         first {CI_DIALOGUES} dev dialogues",
        s.abstractive.rouge_l, s.extractive.rouge_l, s.lead3.rouge_l
    );
    Ok(())
}
