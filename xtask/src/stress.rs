//! `cargo xtask stress-enclave`: boot one test-image enclave under QEMU TCG and run many direct
//! attested sessions against it (one sealed request each, from several threads at once), counting
//! every failure by kind (`outside/device/benches/stress.rs`). Made to chase a rare
//! "the response did not open" seen in the end-to-end test; `--cpu` boots with another QEMU CPU
//! model (e.g. `max,-avx,-avx2`) to compare.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::qemu::Vm;
use crate::{pins, smoke, test_root, util};

/// What one stress run uses.
pub struct StressArgs {
    pub image: Option<std::path::PathBuf>,
    pub sessions: usize,
    pub threads: usize,
    pub cpu: String,
}

pub fn run(root: &Path, pins: &pins::Pins, args: StressArgs) -> Result<()> {
    let boot = crate::BootArgs {
        image: args.image,
        firmware: None,
        append: String::new(),
        test_image: true,
    };
    let dir = crate::image_dir(root, pins, &boot)?;
    let efi = crate::qemu::check_image_dir(&dir)?;
    let fw = crate::firmware::pinned(root)?;
    let ark = test_root::ensure(root)?.join("ark.der");
    let mut config = smoke::config_for(&efi, &fw, "")?;
    config.cpu = args.cpu.clone();
    let mut vm = Vm::start(&config, false)?;
    vm.wait_for(
        "pp-workload: ready",
        smoke::FATAL_LINES,
        Duration::from_secs(180),
    )
    .context("the enclave did not boot")?;
    println!(
        "stress: enclave up under -cpu {}; {} thread(s) x {} sessions",
        args.cpu, args.threads, args.sessions
    );
    let result = util::run(
        Command::new(util::host_cargo())
            .current_dir(root)
            .env(
                "PP_STRESS_ADDR",
                format!("127.0.0.1:{}", config.host_tls_port),
            )
            .env("PP_STRESS_ARK", &ark)
            .env("PP_STRESS_SESSIONS", args.sessions.to_string())
            .env("PP_STRESS_THREADS", args.threads.to_string())
            .args(["bench", "--quiet", "-p", "pp-device", "--bench", "stress"]),
    );
    drop(vm);
    result
}
