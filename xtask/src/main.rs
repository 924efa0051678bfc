//! `cargo xtask`: the project's task runner.

mod crates;
mod image;
mod kernel;
mod manifest;
mod pins;
mod ring;
mod workload;
mod setup;
mod toolchain;
mod util;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Build, boot and test the Private Processing enclave image")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
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
        out: std::path::PathBuf,
    },
}

fn main() -> Result<()> {
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
            workload::build(&root, &pins, &lib).map(drop)
        }
        Cmd::Image { out } => image::build(&root, &pins, &root.join(out)).map(drop),
    }
}
