//! `cargo xtask kernel`: the pinned Hermit kernel as `libhermit.a`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pp_kernel_build::{
    KERNEL_EDITS, KERNEL_FEATURES, KERNEL_MODULES, KERNEL_TARGET, SYMBOL_PREFIX, archive, edit,
};

use crate::pins::Pins;
use crate::{crates, toolchain, util};

/// Build (or rebuild incrementally) the kernel library; returns the folder holding `libhermit.a`.
pub fn build(root: &Path, pins: &Pins) -> Result<PathBuf> {
    let work = root.join("target/pp");
    let src = prepare_source(root, &work, pins)?;
    let target_dir = work.join("kernel-target");
    let started = std::time::Instant::now();
    eprintln!(
        "kernel: building hermit-kernel {} ({})",
        pins.crate_pin("hermit-kernel")?.version,
        KERNEL_FEATURES.join(" ")
    );
    let mut cmd = toolchain::cargo(
        "build",
        &src,
        &target_dir,
        &["-Zmutable-noalias=no", "-Awarnings"],
    );
    cmd.args([
        "--target",
        KERNEL_TARGET,
        "-Zbuild-std=core,alloc",
        "-Zbuild-std-features=compiler-builtins-mem",
    ])
    .args([
        "--no-default-features",
        "--features",
        &KERNEL_FEATURES.join(","),
    ])
    .env("PP_LLVM_AS", Path::new(toolchain::LLVM_BIN).join("llvm-as"))
    .env("PP_RUST_LLD", toolchain::RUST_LLD);
    util::run(&mut cmd).context("building the Hermit kernel")?;

    let builtins = build_builtins(root, &work)?;
    let out_dir = work.join("kernel");
    fs::create_dir_all(&out_dir)?;
    let lib = out_dir.join("libhermit.a");
    fs::copy(
        toolchain::release_dir(&target_dir, KERNEL_TARGET).join("libhermit.a"),
        &lib,
    )?;
    let tools = archive::LlvmTools::in_dir(Path::new(toolchain::LLVM_BIN));
    let mut keep = archive::syscall_symbols(&tools, &lib)?;
    keep.extend(
        archive::KERNEL_EXPLICIT_EXPORTS
            .iter()
            .map(|s| s.to_string()),
    );
    archive::retain_symbols(&tools, &lib, SYMBOL_PREFIX, &keep)?;
    archive::append(&tools, &lib, &builtins)?;
    let mut bytes = fs::read(&lib)?;
    let members = archive::set_osabi(&mut bytes, archive::ELFOSABI_STANDALONE)?;
    fs::write(&lib, bytes)?;
    eprintln!(
        "kernel: {} ({} ELF members, {} exported symbols + math builtins) in {:.1} s",
        lib.display(),
        members,
        keep.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(out_dir)
}

/// A fresh, edited copy of the pinned kernel source with our modules (SEV, entropy, ACPI) in it, redone
/// only when the pin, the edits or a module file change.
fn prepare_source(repo: &Path, work: &Path, pins: &Pins) -> Result<PathBuf> {
    let pin = pins.crate_pin("hermit-kernel")?;
    let parent = work.join("kernel-src");
    let root = parent.join(format!("{}-{}", pin.name, pin.version));
    let stamp = parent.join("prepared.stamp");
    let mut module = Vec::new();
    for (dir, files) in KERNEL_MODULES {
        for (from, to) in *files {
            let text = fs::read(repo.join(from)).with_context(|| format!("reading {from}"))?;
            module.push((format!("{dir}/{to}"), text));
        }
    }
    let module_hash = {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        for (name, text) in &module {
            hash.update(name.as_bytes());
            hash.update([0]);
            hash.update((text.len() as u64).to_le_bytes());
            hash.update(text);
        }
        hex::encode(hash.finalize())
    };
    let want = format!(
        "{}\n{}\n{module_hash}",
        pin.sha256,
        edit::fingerprint(KERNEL_EDITS)
    );
    if fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) && root.is_dir() {
        return Ok(root);
    }
    let _ = fs::remove_file(&stamp);
    let roots = crates::unpack_fresh(work, &[pin], &parent)?;
    edit::apply_all(&roots[0], KERNEL_EDITS)?;
    for (name, text) in &module {
        let file = roots[0].join(name);
        fs::create_dir_all(file.parent().context("module file without a folder")?)?;
        fs::write(file, text)?;
    }
    fs::write(&stamp, want)?;
    eprintln!(
        "kernel: prepared {} with {} source edits and our SEV, entropy and ACPI modules (see kernel/README.md)",
        root.display(),
        KERNEL_EDITS.len()
    );
    Ok(root)
}

/// The math builtins, with only their C names left visible.
fn build_builtins(root: &Path, work: &Path) -> Result<PathBuf> {
    let dir = root.join("kernel/builtins");
    let target_dir = work.join("builtins-target");
    let mut cmd = toolchain::cargo("build", &dir, &target_dir, &[]);
    cmd.args([
        "--target",
        "x86_64-unknown-hermit",
        "-Zbuild-std=core",
        "-Zbuild-std-features=compiler-builtins-mem",
    ]);
    util::run(&mut cmd).context("building the math builtins")?;
    let lib = work.join("kernel/libpp_builtins.a");
    fs::create_dir_all(lib.parent().unwrap())?;
    fs::copy(
        toolchain::release_dir(&target_dir, "x86_64-unknown-hermit").join("libpp_builtins.a"),
        &lib,
    )?;
    let tools = archive::LlvmTools::in_dir(Path::new(toolchain::LLVM_BIN));
    let keep = archive::builtin_symbols(&tools, &lib)?;
    archive::retain_symbols(&tools, &lib, "pp_builtins", &keep)?;
    Ok(lib)
}
