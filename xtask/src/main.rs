//! `cargo xtask`: the project's task runner.

mod crates;
mod firmware;
mod image;
mod kernel;
mod manifest;
mod pins;
mod qemu;
mod repro;
mod ring;
mod setup;
mod smoke;
mod test;
mod tls_client;
mod toolchain;
mod util;
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
struct BootArgs {
    /// Image folder holding pp.efi and manifest.json; without it the image is built first.
    #[arg(long)]
    image: Option<PathBuf>,
    /// OVMF firmware file (default: the pinned generic OVMF, fetched and checked by hash).
    #[arg(long)]
    firmware: Option<PathBuf>,
    /// Kernel command line (QEMU -append).
    #[arg(long, default_value = "")]
    append: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install and check the pinned toolchain and tools (needs root the first time).
    Setup,
    /// Build the pinned Hermit kernel into target/pp/kernel/libhermit.a.
    Kernel,
    /// Build the workload for Hermit (target/pp/workload/pp-workload).
    Workload,
    /// Build the bootable image: DIR/pp.efi and DIR/manifest.json.
    Image {
        /// Output folder.
        #[arg(long, default_value = "target/pp-image")]
        out: PathBuf,
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
    },
    /// Boot the image, do a health request and a TLS 1.3 handshake from the host, shut down.
    Smoke {
        #[command(flatten)]
        boot: BootArgs,
    },
    /// Rebuild the image from a copy of this checkout at another path and compare the bytes.
    ReproCheck,
    /// The whole test suite: host tests, the image, the smoke boot, the reproducibility check.
    Test,
    /// The demo: build the image, boot it, and talk to it (health over TCP and TLS 1.3).
    Demo,
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
    let default_out = root.join("target/pp-image");
    match cli.command {
        Cmd::Setup => setup::ensure(&pins),
        Cmd::Kernel => {
            setup::ensure(&pins)?;
            kernel::build(&root, &pins).map(drop)
        }
        Cmd::Workload => {
            setup::ensure(&pins)?;
            let lib = kernel::build(&root, &pins)?;
            workload::build(&root, &pins, &lib).map(drop)
        }
        Cmd::Image { out } => image::build(&root, &pins, &root.join(out)).map(drop),
        Cmd::Boot {
            boot,
            health_port,
            tls_port,
        } => {
            let mut config = boot_config(&root, &pins, &boot, &default_out)?;
            config.host_health_port = health_port;
            config.host_tls_port = tls_port;
            let mut vm = qemu::Vm::start(&config, true)?;
            let status = vm.wait()?;
            eprintln!("boot: QEMU exited with {status}");
            Ok(())
        }
        Cmd::Smoke { boot } => smoke::run(&boot_config(&root, &pins, &boot, &default_out)?),
        Cmd::ReproCheck => repro::check(&root, &pins).map(drop),
        Cmd::Test => test::run(&root, &pins),
        Cmd::Demo => {
            let boot = BootArgs {
                image: None,
                firmware: None,
                append: String::new(),
            };
            smoke::run(&boot_config(&root, &pins, &boot, &default_out)?)
        }
    }
}

/// Resolve the image (building it when no folder was given) and the firmware for a boot.
fn boot_config(
    root: &Path,
    pins: &pins::Pins,
    boot: &BootArgs,
    default_out: &Path,
) -> Result<qemu::BootConfig> {
    setup::ensure(pins)?;
    let dir = match &boot.image {
        Some(dir) => dir.clone(),
        None => {
            image::build(root, pins, default_out)?;
            default_out.to_path_buf()
        }
    };
    let efi = qemu::check_image_dir(&dir)?;
    let firmware = match &boot.firmware {
        Some(path) => {
            firmware::check_user_firmware(path)?;
            path.clone()
        }
        None => firmware::pinned(root, pins)?,
    };
    smoke::config_for(&efi, &firmware, &boot.append)
}
