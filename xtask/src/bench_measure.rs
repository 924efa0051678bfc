//! `cargo xtask bench-measure`: our launch digest against sev-snp-measure's on the same inputs,
//! timed side by side, with the ratio printed.
//!
//! Both are timed as the commands a user runs (a process each: `xtask measure` — without cargo's
//! own start-up — and `sev-snp-measure`), plus ours in process for one count and for the four
//! counts a release records, computed in one pass. Best of `runs`. The digests must agree.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use reproducible::measure::{self, MeasureInputs};

use crate::pins::Pins;

/// What to measure and with which tool.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub measure: reproducible::cli::MeasureArgs,
    /// sev-snp-measure to compare with (default: $PP_SEV_SNP_MEASURE, else the pinned one that
    /// `cargo xtask test` installs into target/pp/venv).
    #[arg(long)]
    pub tool: Option<PathBuf>,
    /// Timed runs of each; the best is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
}

/// vCPU counts of the all-counts run (those of a release manifest).
const RELEASE_COUNTS: [u32; 4] = [1, 2, 4, 8];

pub fn run(root: &Path, pins: &Pins, args: &BenchArgs) -> Result<()> {
    ensure!(args.runs > 0, "--runs must be at least 1");
    let inputs = args.measure.inputs()?;
    let tool = match args
        .tool
        .clone()
        .or_else(|| std::env::var_os("PP_SEV_SNP_MEASURE").map(PathBuf::from))
    {
        Some(t) => t,
        None => crate::test::sev_snp_measure(root, pins)?,
    };
    let size = |p: &Option<PathBuf>| {
        p.as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len())
    };
    println!(
        "inputs: firmware {} ({} bytes), kernel {} bytes, initrd {} bytes, {} vCPU",
        inputs.ovmf.display(),
        size(&Some(inputs.ovmf.clone())),
        size(&inputs.kernel),
        size(&inputs.initrd),
        inputs.vcpus
    );

    let ours_cmd = || {
        let mut cmd = Command::new(std::env::current_exe().expect("the task runner's path"));
        cmd.arg("measure").args(flags(&inputs));
        cmd
    };
    let theirs_cmd = |vcpus: u32| {
        let mut cmd = Command::new(&tool);
        let mut one = inputs.clone();
        one.vcpus = vcpus;
        cmd.args(flags(&one));
        cmd
    };

    let (t_ours, d_ours) = best(args.runs, || last_line(&mut ours_cmd()))?;
    let (t_theirs, d_theirs) = best(args.runs, || last_line(&mut theirs_cmd(inputs.vcpus)))?;
    ensure!(
        d_ours == d_theirs,
        "the digests differ: ours {d_ours}, sev-snp-measure {d_theirs}"
    );
    let (t_lib, _) = best(args.runs, || Ok(measure::launch_digest(&inputs)?))?;
    let (t_all, all) = best(args.runs, || {
        Ok(measure::launch_digests(&inputs, &RELEASE_COUNTS)?)
    })?;
    let (t_theirs_all, theirs_all) = best(args.runs, || {
        RELEASE_COUNTS
            .iter()
            .map(|&n| last_line(&mut theirs_cmd(n)))
            .collect::<Result<Vec<_>>>()
    })?;
    let all: Vec<String> = all.iter().map(hex::encode).collect();
    ensure!(all == theirs_all, "the digests for 1, 2, 4, 8 vCPUs differ");

    println!("digest ({} vCPU): {d_ours} (equal)", inputs.vcpus);
    println!("{:<52} {:>9}", "what (best of runs)", "seconds");
    let row = |what: &str, t: Duration| println!("{what:<52} {:>9.3}", t.as_secs_f64());
    row("sev-snp-measure, one digest (process)", t_theirs);
    row("xtask measure, one digest (process)", t_ours);
    row("reproducible::measure::launch_digest (in process)", t_lib);
    row("sev-snp-measure, 1/2/4/8 vCPUs (4 processes)", t_theirs_all);
    row(
        "launch_digests, 1/2/4/8 vCPUs, one pass (in process)",
        t_all,
    );
    println!(
        "ratio ours/theirs: one digest {:.2}, four digests {:.2} (below 1: ours is faster)",
        t_ours.as_secs_f64() / t_theirs.as_secs_f64(),
        t_all.as_secs_f64() / t_theirs_all.as_secs_f64()
    );
    Ok(())
}

/// `inputs` as sev-snp-measure's flags (which `xtask measure` takes too).
fn flags(i: &MeasureInputs) -> Vec<String> {
    let mut f = vec![
        "--mode".into(),
        "snp".into(),
        "--vcpus".into(),
        i.vcpus.to_string(),
    ];
    f.extend(["--ovmf".into(), i.ovmf.display().to_string()]);
    match &i.vcpu {
        measure::VcpuModel::Named(t) => f.extend(["--vcpu-type".into(), t.clone()]),
        measure::VcpuModel::Signature(s) => f.extend(["--vcpu-sig".into(), s.to_string()]),
        measure::VcpuModel::FamilyModelStepping(fam, m, s) => f.extend([
            "--vcpu-family".into(),
            fam.to_string(),
            "--vcpu-model".into(),
            m.to_string(),
            "--vcpu-stepping".into(),
            s.to_string(),
        ]),
    }
    f.extend([
        "--guest-features".into(),
        format!("{:#x}", i.guest_features),
        "--vmm-type".into(),
        i.vmm_type.clone(),
    ]);
    if let Some(k) = &i.kernel {
        f.extend(["--kernel".into(), k.display().to_string()]);
    }
    if let Some(r) = &i.initrd {
        f.extend(["--initrd".into(), r.display().to_string()]);
    }
    if let Some(a) = &i.append {
        f.extend(["--append".into(), a.clone()]);
    }
    f
}

/// Run `cmd` and return the last line of its output (both tools print the digest last).
fn last_line(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("running {}", crate::util::describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            crate::util::describe(cmd),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    Ok(text.lines().last().unwrap_or_default().trim().to_string())
}

/// The shortest of `runs` timed calls of `f`, and its last result.
fn best<T>(runs: u32, mut f: impl FnMut() -> Result<T>) -> Result<(Duration, T)> {
    let mut fastest = Duration::MAX;
    let mut result = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f()?;
        fastest = fastest.min(t.elapsed());
        result = Some(r);
    }
    Ok((fastest, result.expect("at least one run")))
}
