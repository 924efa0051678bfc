//! The `pp-reproducible` command line (also reached through `cargo xtask measure|compare|check-report`).
//!
//! Everything it does needs only files: a rebuild from source is `cargo xtask verify`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::manifest::Manifest;
use crate::measure::{self, DEFAULT_GUEST_FEATURES, MeasureInputs, VcpuModel};

#[derive(Parser)]
#[command(
    name = "pp-reproducible",
    about = "Check a Private Processing release: launch digests, reports, built release folders"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Compute the SEV-SNP launch digest (same flags as sev-snp-measure); prints it as the last line.
    Measure(MeasureArgs),
    /// Check that an attestation report's measurement is one of a release's digests.
    CheckReport {
        /// The raw 1184-byte SNP attestation report.
        #[arg(long)]
        report: PathBuf,
        /// The release manifest.
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Recompute every hash and launch digest of a built release folder and compare them with a
    /// manifest (the folder's own manifest.json supplies the intermediate components).
    Compare {
        /// The release manifest to check against.
        #[arg(long)]
        manifest: PathBuf,
        /// The release folder (pp.efi, OVMF.amdsev.fd, manifest.json).
        dir: PathBuf,
    },
    /// Not here: rebuilding from source needs the task runner; run `cargo xtask verify MANIFEST`.
    Verify {
        /// The release manifest to check.
        manifest: PathBuf,
    },
}

/// sev-snp-measure's flags.
#[derive(Args, Debug)]
pub struct MeasureArgs {
    /// Guest mode; only `snp` is supported.
    #[arg(long, default_value = "snp")]
    pub mode: String,
    #[arg(long)]
    pub ovmf: PathBuf,
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    #[arg(long)]
    pub append: Option<String>,
    #[arg(long, default_value_t = 1)]
    pub vcpus: u32,
    /// QEMU vCPU model, e.g. EPYC-v4, EPYC-Milan, EPYC-Genoa.
    #[arg(long, conflicts_with_all = ["vcpu_sig", "vcpu_family"])]
    pub vcpu_type: Option<String>,
    /// CPUID signature (decimal or 0x hex).
    #[arg(long, value_parser = parse_int, conflicts_with = "vcpu_family")]
    pub vcpu_sig: Option<i64>,
    #[arg(long, requires_all = ["vcpu_model", "vcpu_stepping"])]
    pub vcpu_family: Option<i32>,
    #[arg(long)]
    pub vcpu_model: Option<i32>,
    #[arg(long)]
    pub vcpu_stepping: Option<i32>,
    /// SEV features of the VMSA, hex (default 0x1: SNP active).
    #[arg(long, value_parser = parse_int)]
    pub guest_features: Option<i64>,
    #[arg(long, default_value = "QEMU")]
    pub vmm_type: String,
}

fn parse_int(s: &str) -> Result<i64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("{s:?} is not a number"))
}

impl MeasureArgs {
    pub fn inputs(&self) -> Result<MeasureInputs> {
        if self.mode != "snp" {
            bail!("only --mode snp is supported, not {:?}", self.mode);
        }
        let vcpu = match (&self.vcpu_type, self.vcpu_sig, self.vcpu_family) {
            (Some(t), None, None) => VcpuModel::Named(t.clone()),
            (None, Some(sig), None) => {
                VcpuModel::Signature(i32::try_from(sig).context("--vcpu-sig does not fit 32 bits")?)
            }
            (None, None, Some(f)) => VcpuModel::FamilyModelStepping(
                f,
                self.vcpu_model
                    .context("--vcpu-model is required with --vcpu-family")?,
                self.vcpu_stepping
                    .context("--vcpu-stepping is required with --vcpu-family")?,
            ),
            _ => bail!(
                "give one of --vcpu-type, --vcpu-sig, or --vcpu-family/--vcpu-model/--vcpu-stepping"
            ),
        };
        let guest_features = match self.guest_features {
            Some(v) => u64::try_from(v).context("--guest-features must not be negative")?,
            None => DEFAULT_GUEST_FEATURES,
        };
        Ok(MeasureInputs {
            ovmf: self.ovmf.clone(),
            kernel: self.kernel.clone(),
            initrd: self.initrd.clone(),
            append: self.append.clone(),
            vcpus: self.vcpus,
            vcpu,
            guest_features,
            vmm_type: self.vmm_type.clone(),
        })
    }
}

/// Run a parsed command; `Ok(false)` means "ran, but the answer is no" (exit status 1).
pub fn run(cli: Cli) -> Result<bool> {
    match cli.command {
        Command::Measure(args) => {
            let digest = measure::launch_digest(&args.inputs()?)?;
            println!("{}", hex::encode(digest));
            Ok(true)
        }
        Command::CheckReport { report, manifest } => {
            let manifest = Manifest::read(&manifest)?;
            let bytes = std::fs::read(&report)
                .with_context(|| format!("cannot read report {}", report.display()))?;
            let vcpus = crate::report::check_measurement(&bytes, &manifest)?;
            println!("report measurement matches this release ({vcpus} vCPU)");
            Ok(true)
        }
        Command::Compare { manifest, dir } => {
            let expected = Manifest::read(&manifest)?;
            let rebuilt = Manifest::read(&dir.join(crate::release::MANIFEST_FILE))?;
            let rows = crate::verify::compare_dir(&expected, &dir, &rebuilt)?;
            let all = crate::verify::print_table(&rows);
            println!(
                "{}",
                if all {
                    "compare: the folder matches the manifest"
                } else {
                    "compare: MISMATCH"
                }
            );
            Ok(all)
        }
        Command::Verify { manifest } => bail!(
            "pp-reproducible does not rebuild: run `cargo xtask verify {}` in a checkout of the \
             release's source (it copies the checkout to another path, rebuilds there and \
             compares), or `pp-reproducible compare --manifest {0} DIR` on a folder you built",
            manifest.display()
        ),
    }
}
