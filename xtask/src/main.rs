//! `cargo xtask`: the project's task runner.

mod bench_llama;
mod bench_measure;
mod bench_path;
mod bench_setup;
mod checkout;
mod crates;
mod e2e;
mod e2e_index;
mod e2e_keys;
mod e2e_ohttp;
mod e2e_swap;
mod e2e_witness;
mod eval;
mod firmware;
mod host_enclave;
mod image;
mod interop;
mod kernel;
mod layout;
mod manifest;
mod ovmf;
mod pins;
mod qemu;
mod repro;
mod ring;
mod setup;
mod smoke;
mod snp;
mod stack;
mod stress;
mod test;
mod test_root;
mod toolchain;
mod util;
mod weights;
mod workload;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    about = "Build, boot and test the Private Processing enclave image",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// Where the image comes from and what firmware boots it.
#[derive(Args, Clone)]
pub struct BootArgs {
    /// Image folder holding pp.efi and manifest.json; without it the image is built first.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// OVMF firmware file (default: the pinned generic build; with --snp the folder's AmdSev one).
    #[arg(long)]
    pub firmware: Option<PathBuf>,
    /// Kernel command line (QEMU -append).
    #[arg(long, default_value = "")]
    pub append: String,
    /// Without --image: build and boot the test image (test attester) instead of the release.
    #[arg(long)]
    pub test_image: bool,
}

impl BootArgs {
    pub fn variant(&self) -> workload::Variant {
        if self.test_image {
            workload::Variant::Test
        } else {
            workload::Variant::Release
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Install and check the pinned toolchain and tools (needs root the first time).
    Setup,
    /// Build the pinned Hermit kernel into target/pp/kernel/libhermit.a.
    Kernel,
    /// Build the workload for Hermit (target/pp/workload/release/pp-workload).
    Workload,
    /// Build the release folder: DIR/pp.efi, both firmwares, DIR/manifest.json.
    Image {
        /// Output folder (default target/pp-image, or target/pp-image-test with --test-image).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Build the test image: the workload carries the test attester (never trusted by default).
        #[arg(long)]
        test_image: bool,
    },
    /// Boot the image under QEMU (TCG) and stream its serial console until QEMU exits.
    Boot {
        #[command(flatten)]
        boot: BootArgs,
        /// Host port forwarded to the workload's health port.
        #[arg(long, default_value_t = 8080)]
        health_port: u16,
        /// Host port forwarded to the workload's TLS port.
        #[arg(long, default_value_t = 8443)]
        tls_port: u16,
        /// Host port forwarded to the workload's one-shot port.
        #[arg(long, default_value_t = 8444)]
        oneshot_port: u16,
        /// Launch as an SEV-SNP guest with the exact QEMU line the manifest's digests assume
        /// (needs an SNP host; the AmdSev firmware; KVM).
        #[arg(long)]
        snp: bool,
        /// vCPUs for --snp (the manifest has digests for 1, 2, 4 and 8).
        #[arg(long, default_value_t = 1)]
        vcpus: u32,
    },
    /// Boot an image and talk to it as a device: health, then attestation (refused by a release
    /// image under TCG; a full attested session with sealed requests on a test image).
    Smoke {
        #[command(flatten)]
        boot: BootArgs,
    },
    /// Build the image, then rebuild it from a copy of this checkout at another path and compare.
    ReproCheck,
    /// SEV-SNP launch digest (sev-snp-measure's flags); the digest is the last line.
    Measure(reproducible::cli::MeasureArgs),
    /// Compare a built release folder with a manifest: every hash and launch digest recomputed.
    Compare {
        #[arg(long)]
        manifest: PathBuf,
        /// The release folder (pp.efi, OVMF.amdsev.fd, manifest.json).
        dir: PathBuf,
    },
    /// Time our launch digest against sev-snp-measure's on the same inputs (its flags).
    BenchMeasure(bench_measure::BenchArgs),
    /// Rebuild a release from this checkout at another path; compare every hash and digest.
    Verify {
        /// The release manifest (for example target/pp-image/manifest.json).
        manifest: PathBuf,
    },
    /// Check that an SNP attestation report's measurement belongs to a release.
    CheckReport {
        #[arg(long)]
        report: PathBuf,
        #[arg(long)]
        manifest: PathBuf,
    },
    /// Build or verify the pinned OVMF firmwares (AmdSev and generic).
    Ovmf {
        /// Build again from fresh source even when the cached firmwares match their pins.
        #[arg(long)]
        rebuild: bool,
    },
    /// Generate (once) the public test attestation root and print its folder.
    TestRoot,
    /// The whole test suite: host tests, the image, the smoke boot, the reproducibility check.
    Test,
    /// The demo: two enclave instances under QEMU, issuer, CDN, relay, gateway and log on
    /// loopback, and `pp summarize` / `pp suggest` on a sample thread.
    Demo,
    /// Summarize DialogSum dialogues natively with the real models; write one JSON line per
    /// dialogue and print ROUGE-1/2/L (abstractive, extractive, lead-3) and the hand-written
    /// threads' key-message recall.
    EvalSummaries(eval::EvalArgs),
    /// Suggest replies to DialogSum dialogues (50 by default); print how often a reply is empty,
    /// cut off, too long, an echo, starts with a speaker name or has a profanity.
    EvalSuggest(eval::EvalArgs),
    /// The end-to-end test alone (also a step of `test`).
    E2e {
        /// A test image folder built before (`target/pp-image-test` of another checkout) to boot
        /// instead of building one here: for changes outside the enclave.
        #[arg(long)]
        image: Option<PathBuf>,
    },
    /// Boot an image on a CPU without RDSEED/RDRAND and check that it refuses to start (also a
    /// step of `test`).
    EntropyRefusal {
        #[command(flatten)]
        boot: BootArgs,
    },
    /// Boot an image with a malformed ACPI table added by QEMU and check that the kernel refuses
    /// it (also a step of `test`).
    AcpiRefusal {
        #[command(flatten)]
        boot: BootArgs,
    },
    /// Benchmark: sessions through relay + gateway against direct, on loopback (host mode).
    BenchPath {
        #[arg(long, default_value_t = 100)]
        sessions: usize,
        /// A test image folder built before, whose release manifest to log, instead of building
        /// one here.
        #[arg(long)]
        image: Option<PathBuf>,
    },
    /// Benchmark: the device's session set-up phase by phase (log sync, CDN index, token,
    /// tunnel + attested session, receipt), with issue 13's checks against without, on a log
    /// with a history (host mode).
    BenchSetup(bench_setup::SetupArgs),
    /// Benchmark: SmolLM2 prefill (128-token prompt) and decode (64 tokens) on one thread, ours
    /// against llama.cpp's llama-bench on the same GGUF file, alternating runs, with the ratios.
    /// Builds llama-bench once into target/pp/llama-cpp (about 12 minutes). Not a CI step.
    BenchLlama(bench_llama::LlamaArgs),
    /// Boot one test-image enclave (TCG) and run many direct attested sessions against it,
    /// counting every failure by kind (a response that does not open included).
    StressEnclave {
        /// Image folder holding pp.efi and manifest.json; without it the test image is built.
        #[arg(long)]
        image: Option<PathBuf>,
        /// Sessions per client thread.
        #[arg(long, default_value_t = 100)]
        sessions: usize,
        /// Client threads running sessions at the same time.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// QEMU -cpu model (e.g. `max,-avx,-avx2` to compare).
        #[arg(long, default_value = qemu::CPU)]
        cpu: String,
    },
    /// Make the weights blob the loader embeds: tiny test models, or with --real the pinned models.
    Weights {
        #[arg(long)]
        real: bool,
    },
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let root = util::root();
    let pins = pins::Pins::load(&root)?;
    match cli.command {
        Cmd::Setup => setup::ensure(&pins),
        Cmd::Kernel => {
            setup::ensure(&pins)?;
            kernel::build(&root, &pins).map(drop)
        }
        Cmd::Workload => {
            setup::ensure(&pins)?;
            let lib = kernel::build(&root, &pins)?;
            let release_ref = manifest::release_ref(&root)?;
            workload::build(&root, &pins, &lib, workload::Variant::Release, &release_ref).map(drop)
        }
        Cmd::Image { out, test_image } => {
            let variant = if test_image {
                workload::Variant::Test
            } else {
                workload::Variant::Release
            };
            let out = out
                .map(|o| root.join(o))
                .unwrap_or_else(|| image::default_out(&root, variant));
            image::build(&root, &pins, &out, variant).map(drop)
        }
        Cmd::Boot {
            boot,
            snp: true,
            vcpus,
            ..
        } => snp::boot(&root, &pins, &boot, vcpus),
        Cmd::Boot {
            boot,
            health_port,
            tls_port,
            oneshot_port,
            ..
        } => {
            let (mut config, _) = boot_config(&root, &pins, &boot)?;
            config.host_health_port = health_port;
            config.host_tls_port = tls_port;
            config.host_oneshot_port = oneshot_port;
            let mut vm = qemu::Vm::start(&config, true)?;
            let status = vm.wait()?;
            eprintln!("boot: QEMU exited with {status}");
            Ok(())
        }
        Cmd::Smoke { boot } => {
            let (config, variant) = boot_config(&root, &pins, &boot)?;
            smoke::run(&config, &variant, &test_root::ensure(&root)?).map(drop)
        }
        Cmd::ReproCheck => repro::check(&root, &pins).map(drop),
        Cmd::Measure(args) => forward(reproducible::cli::Command::Measure(args)),
        Cmd::Compare { manifest, dir } => {
            forward(reproducible::cli::Command::Compare { manifest, dir })
        }
        Cmd::BenchMeasure(args) => bench_measure::run(&root, &pins, &args),
        Cmd::Verify { manifest } => repro::verify_manifest(&root, &manifest),
        Cmd::CheckReport { report, manifest } => {
            forward(reproducible::cli::Command::CheckReport { report, manifest })
        }
        Cmd::Ovmf { rebuild } => ovmf::command(&root, rebuild),
        Cmd::Test => test::run(&root, &pins),
        Cmd::TestRoot => {
            println!("{}", test_root::ensure(&root)?.display());
            Ok(())
        }
        Cmd::Demo => e2e::demo(&root, &pins),
        Cmd::E2e { image } => e2e::test(&root, &pins, image),
        Cmd::EvalSummaries(args) => eval::summaries(&root, &args).map(|s| {
            println!(
                "eval-summaries: {} dialogues; ROUGE-L abstractive {:.2}, extractive {:.2}, \
                 lead-3 {:.2}: the abstractive summary scores {} the extractive picks",
                s.dialogues,
                s.abstractive.rouge_l,
                s.extractive.rouge_l,
                s.lead3.rouge_l,
                if s.abstractive.rouge_l >= s.extractive.rouge_l {
                    "at least"
                } else {
                    "below"
                }
            )
        }),
        Cmd::EvalSuggest(args) => eval::suggest(&root, &args),
        Cmd::EntropyRefusal { boot } => {
            let (mut config, _) = boot_config(&root, &pins, &boot)?;
            config.cpu = qemu::CPU_WITHOUT_RNG.to_string();
            smoke::expect_entropy_refusal(&config)
        }
        Cmd::AcpiRefusal { boot } => {
            let (config, _) = boot_config(&root, &pins, &boot)?;
            smoke::expect_acpi_refusal(&config, &root.join("target/pp/acpi-refusal"))
        }
        Cmd::BenchPath { sessions, image } => bench_path::run(&root, &pins, sessions, image),
        Cmd::BenchSetup(args) => bench_setup::run(&root, &pins, &args),
        Cmd::BenchLlama(args) => bench_llama::run(&root, &args),
        Cmd::StressEnclave {
            image,
            sessions,
            threads,
            cpu,
        } => stress::run(
            &root,
            &pins,
            stress::StressArgs {
                image,
                sessions,
                threads,
                cpu,
            },
        ),
        Cmd::Weights { real } => {
            let models = if real {
                weights::Models::Real
            } else {
                weights::Models::Tiny
            };
            println!("{}", weights::ensure(&root, models)?.display());
            Ok(())
        }
    }
}

/// Run a `pp-reproducible` command in process; a "no" answer exits with status 1.
fn forward(command: reproducible::cli::Command) -> Result<()> {
    if !reproducible::cli::run(reproducible::cli::Cli { command })? {
        std::process::exit(1);
    }
    Ok(())
}

/// The image folder a boot uses: the one given, else the variant's default folder, built now.
pub fn image_dir(root: &Path, pins: &pins::Pins, boot: &BootArgs) -> Result<PathBuf> {
    setup::ensure(pins)?;
    Ok(match &boot.image {
        Some(dir) => dir.clone(),
        None => {
            let out = image::default_out(root, boot.variant());
            image::build(root, pins, &out, boot.variant())?;
            out
        }
    })
}

/// Resolve the image (building it when no folder was given) and the firmware for a boot;
/// returns the boot configuration and the image's variant (from its manifest).
fn boot_config(
    root: &Path,
    pins: &pins::Pins,
    boot: &BootArgs,
) -> Result<(qemu::BootConfig, String)> {
    let dir = image_dir(root, pins, boot)?;
    let efi = qemu::check_image_dir(&dir)?;
    let variant =
        reproducible::Manifest::read(&dir.join(reproducible::release::MANIFEST_FILE))?.variant;
    let firmware = match &boot.firmware {
        Some(path) => {
            firmware::check_user_firmware(path)?;
            path.clone()
        }
        None => firmware::pinned(root)?,
    };
    Ok((smoke::config_for(&efi, &firmware, &boot.append)?, variant))
}
