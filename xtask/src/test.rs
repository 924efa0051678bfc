//! `cargo xtask test`: everything CI runs, in order of cost.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::pins::Pins;
use crate::{firmware, image, qemu, repro, ring, setup, smoke, toolchain, util};

pub fn run(root: &Path, pins: &Pins) -> Result<()> {
    setup::ensure(pins)?;
    let mut passed = Vec::new();
    let mut step = |name: &'static str, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        eprintln!("\n=== test: {name}");
        f().with_context(|| format!("test step `{name}` failed"))?;
        passed.push(name);
        Ok(())
    };
    let host_cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    step(
        "host tests (xtask, kernel build, reproducible)",
        &mut || {
            util::run(Command::new(&host_cargo).current_dir(root).args([
                "test",
                "--workspace",
                "--quiet",
            ]))
        },
    )?;
    step("loader unit tests (host)", &mut || {
        util::run(&mut pinned_host_test(&root.join("image-builder")))
    })?;
    step("workload unit tests (host)", &mut || {
        ring::prepare(root, pins)?;
        util::run(&mut pinned_host_test(&root.join("workload")))
    })?;
    let out = root.join("target/pp-image");
    step("image build", &mut || {
        image::build(root, pins, &out).map(drop)
    })?;
    step("smoke boot under TCG", &mut || {
        let efi = qemu::check_image_dir(&out)?;
        let fw = firmware::pinned(root, pins)?;
        smoke::run(&smoke::config_for(&efi, &fw, "")?)
    })?;
    step("loader refuses an over-long command line", &mut || {
        let efi = qemu::check_image_dir(&out)?;
        let fw = firmware::pinned(root, pins)?;
        let append = "x".repeat(5000);
        smoke::expect_loader_error(&smoke::config_for(&efi, &fw, &append)?, "command line is")
    })?;
    step(
        "loader refuses an ELF that is not a Hermit image",
        &mut || {
            let bad = image::build_loader(root, Path::new("/bin/true"), "loader-bad-elf-target")?;
            let fw = firmware::pinned(root, pins)?;
            smoke::expect_loader_error(&smoke::config_for(&bad, &fw, "")?, "not a Hermit image")
        },
    )?;
    step("reproducible across checkout paths", &mut || {
        repro::check(root, pins).map(drop)
    })?;
    println!("\nxtask test: {} passed, 0 failed", passed.len());
    Ok(())
}

/// `cargo test` with the pinned toolchain for the host, for the crates that also build for the image.
fn pinned_host_test(dir: &Path) -> Command {
    let mut cmd = Command::new(toolchain::CARGO);
    cmd.current_dir(dir)
        .env("RUSTC", toolchain::RUSTC)
        .env_remove("RUSTFLAGS")
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .args(["test", "--locked", "--quiet"]);
    cmd
}
