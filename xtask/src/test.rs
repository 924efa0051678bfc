//! `cargo xtask test`: everything CI runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::pins::Pins;
use crate::workload::Variant;
use crate::{firmware, image, qemu, repro, setup, smoke, test_root, toolchain, util};

pub fn run(root: &Path, pins: &Pins) -> Result<()> {
    setup::ensure(pins)?;
    let mut passed = Vec::new();
    let mut step = |name: &'static str, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        eprintln!("\n=== test: {name}");
        f().with_context(|| format!("test step `{name}` failed"))?;
        passed.push(name);
        Ok(())
    };
    step(
        "layout: nothing outside the trust boundary in the image's dependency graphs",
        &mut || crate::layout::check(root),
    )?;
    let out = image::default_out(root, Variant::Release);
    let test_out = image::default_out(root, Variant::Test);
    step(
        "release image (kernel, workload, loader, firmwares, manifest)",
        &mut || image::build(root, pins, &out, Variant::Release).map(drop),
    )?;
    step("test image (the same with the test attester)", &mut || {
        image::build(root, pins, &test_out, Variant::Test).map(drop)
    })?;
    let tool = sev_snp_measure(root, pins)?;
    let host_cargo = crate::util::host_cargo();
    step(
        "host tests (workspace: workload, protocol, attestation, client, reproducible, kernel build)",
        &mut || {
            // Every locked crate, also those behind a cfg no build here sets (fiat-crypto, from
            // signed_note's ed25519-dalek): a test runs `cargo metadata --offline`, which needs
            // them all.
            util::run(
                Command::new(&host_cargo)
                    .current_dir(root)
                    .args(["fetch", "--locked", "--quiet"]),
            )?;
            util::run(
                Command::new(&host_cargo)
                    .current_dir(root)
                    .env("PP_SEV_SNP_MEASURE", &tool)
                    .env("PP_GENERIC_OVMF", out.join(image::GENERIC_FIRMWARE_FILE))
                    .env(
                        "PP_AMDSEV_OVMF",
                        out.join(reproducible::release::AMDSEV_FIRMWARE_FILE),
                    )
                    .env("PP_KERNEL", out.join(reproducible::release::IMAGE_FILE))
                    .env("PP_RELEASE_DIR", &out)
                    .env("PP_TEST_ROOT_DIR", test_root::ensure(root)?)
                    // pp-inference runs in its own step: its real-weight tests need the models,
                    // the reference tools and an optimised build.
                    .args(["test", "--workspace", "--all-features", "--quiet"])
                    .args(["--exclude", "pp-inference"]),
            )
        },
    )?;
    step(
        "inference: tiny models, and the real pinned models against numpy references",
        &mut || {
            let models = crate::weights::fetch_models(root)?;
            let python = crate::weights::reference_python(root)?;
            util::run(
                Command::new(&host_cargo)
                    .current_dir(root)
                    .env("PP_MODELS_DIR", &models)
                    .env("PP_INFERENCE_PYTHON", &python)
                    .args(["test", "--quiet", "--release", "-p", "pp-inference"])
                    .args(["--features", "real-weights"]),
            )
        },
    )?;
    step(
        "summary quality: DialogSum dev, first 10 dialogues, abstractive >= extractive on ROUGE-L",
        &mut || crate::eval::summaries_check(root),
    )?;
    step(
        "privacypass-ts interop: its token from pp-issuer passes our gateway, ours verifies there",
        &mut || crate::interop::privacypass_ts(root),
    )?;
    step(
        "bhttp-js interop: the one-shot path's inner BHTTP messages, ours → bhttp-js and back",
        &mut || crate::interop::bhttp_js(root),
    )?;
    step("task runner unit tests", &mut || {
        util::run(Command::new(&host_cargo).current_dir(root).args([
            "test",
            "--manifest-path",
            "xtask/Cargo.toml",
            "--quiet",
        ]))
    })?;
    step("loader unit tests (host)", &mut || {
        util::run(&mut pinned_host_test(&root.join("image-builder")))
    })?;
    let fw = firmware::pinned(root)?;
    let test_root = test_root::ensure(root)?;
    step(
        "smoke: release image under TCG (health; attestation refused)",
        &mut || {
            let efi = qemu::check_image_dir(&out)?;
            smoke::run(&smoke::config_for(&efi, &fw, "")?, "release", &test_root).map(drop)
        },
    )?;
    step(
        "smoke: test image under TCG (attested session, sealed requests, no canary in the log)",
        &mut || {
            let efi = qemu::check_image_dir(&test_out)?;
            smoke::run(&smoke::config_for(&efi, &fw, "")?, "test", &test_root).map(drop)
        },
    )?;
    step(
        "entropy: the test image on a CPU without RDSEED/RDRAND refuses to start",
        &mut || {
            let efi = qemu::check_image_dir(&test_out)?;
            smoke::expect_entropy_refusal(&no_rng_config(&efi, &fw)?)
        },
    )?;
    step(
        "acpi: the test image refuses a malformed ACPI table from the host",
        &mut || {
            let efi = qemu::check_image_dir(&test_out)?;
            smoke::expect_acpi_refusal(
                &smoke::config_for(&efi, &fw, "")?,
                &root.join("target/pp/acpi-refusal"),
            )
        },
    )?;
    step(
        "end to end: pp through relay and gateway to two booted enclaves; attacks refused",
        &mut || crate::e2e::test(root, pins, None),
    )?;
    step("loader refuses an over-long command line", &mut || {
        let efi = qemu::check_image_dir(&out)?;
        let append = "x".repeat(5000);
        smoke::expect_loader_error(&smoke::config_for(&efi, &fw, &append)?, "command line is")
    })?;
    step(
        "loader refuses an ELF that is not a Hermit image",
        &mut || {
            let tiny = crate::weights::ensure(root, crate::weights::Models::Tiny)?;
            let bad =
                image::build_loader(root, Path::new("/bin/true"), &tiny, "loader-bad-elf-target")?;
            smoke::expect_loader_error(&smoke::config_for(&bad, &fw, "")?, "not a Hermit image")
        },
    )?;
    step(
        "verify: a rebuild at another path matches the manifest",
        &mut || repro::verify_manifest(root, &out.join("manifest.json")),
    )?;
    println!("\nxtask test: {} passed, 0 failed", passed.len());
    Ok(())
}

/// Boot config for `efi` on [`qemu::CPU_WITHOUT_RNG`].
fn no_rng_config(efi: &Path, firmware: &Path) -> Result<qemu::BootConfig> {
    let mut config = smoke::config_for(efi, firmware, "")?;
    config.cpu = qemu::CPU_WITHOUT_RNG.to_string();
    Ok(config)
}

/// The pinned sev-snp-measure from PyPI, in a virtual environment under target/.
/// The pinned sev-snp-measure, installed from PyPI into target/pp/venv when missing.
pub fn sev_snp_measure(root: &Path, pins: &Pins) -> Result<PathBuf> {
    let venv = root.join("target/pp/venv");
    let tool = venv.join("bin/sev-snp-measure");
    let spec = format!("sev-snp-measure=={}", pins.python.sev_snp_measure);
    let have = Command::new(venv.join("bin/python3"))
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('sev-snp-measure'))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if have.as_deref() == Some(pins.python.sev_snp_measure.as_str()) && tool.is_file() {
        return Ok(tool);
    }
    eprintln!("test: installing {spec} from PyPI into {}", venv.display());
    crate::weights::venv_python(root)?;
    util::run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &spec,
    ]))
    .with_context(|| format!("pip could not install {spec}"))?;
    Ok(tool)
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
