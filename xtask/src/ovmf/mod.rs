//! `cargo xtask ovmf`: the two OVMF firmwares, built from one pinned source (`ovmf/pins.toml`).
//!
//! - `amdsev`: `OvmfPkg/AmdSev/AmdSevX64.dsc`, with the SEV-SNP kernel-hashes table (SNP boots and
//!   the launch measurement). It refuses `-kernel` without SEV.
//! - `generic`: `OvmfPkg/OvmfPkgX64.dsc`, for boots without SEV (QEMU TCG here).
//!
//! The source is Debian's edk2 source package, fetched with `apt-get source` and checked against
//! the pinned tarball hashes; Debian's patch series is applied; the build runs in a FIXED absolute
//! folder (the bytes depend on the workspace path's length). The results are cached under
//! `target/pp/ovmf/<sha256>/OVMF.fd` and are only returned when their hash is the pinned one.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::pins::Pins;
use crate::setup;
use crate::util::{describe, run, sha256_file, stdout_of};

mod edk2;
mod pins;
mod source;

use edk2::*;
pub use pins::*;
use source::*;

/// The pin file, relative to the workspace root.
pub(super) const PIN_FILE: &str = "ovmf/pins.toml";
/// Where the verified firmwares (and the fetched source tarballs) are kept, under the root.
pub(super) const CACHE_DIR: &str = "target/pp/ovmf";
/// Names another cache folder, e.g. the first checkout's for a rebuild at another path: cached
/// files are only ever used after their hash is checked against the pins, so sharing is safe.
pub const CACHE_ENV: &str = "PP_OVMF_CACHE";
/// The cached firmware's file name inside `CACHE_DIR/<sha256>/`.
pub(super) const FD_NAME: &str = "OVMF.fd";

/// The two firmware files, verified against their pinned sha256.
#[derive(Debug, Clone)]
pub struct OvmfFirmwares {
    /// AmdSevX64: SEV-SNP boots and the launch measurement.
    pub amdsev: PathBuf,
    /// OvmfPkgX64: boots without SEV.
    pub generic: PathBuf,
}

/// The cache folder: `$PP_OVMF_CACHE` when set, else `target/pp/ovmf` under the root.
pub fn cache_dir(root: &Path) -> PathBuf {
    match std::env::var_os(CACHE_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => root.join(CACHE_DIR),
    }
}

/// `cargo xtask ovmf [--rebuild]`: print the two verified firmware paths.
pub fn command(root: &Path, rebuild: bool) -> Result<()> {
    let firmwares = if rebuild {
        build(root, &OvmfPins::load(root)?)?
    } else {
        ensure(root)?
    };
    println!("amdsev  {}", firmwares.amdsev.display());
    println!("generic {}", firmwares.generic.display());
    Ok(())
}

/// The pinned firmwares: from the cache when present and matching their hashes, else built.
pub fn ensure(root: &Path) -> Result<OvmfFirmwares> {
    let pins = OvmfPins::load(root)?;
    if let Some(found) = cached_all(&cache_dir(root), &pins)? {
        eprintln!("ovmf: both pinned firmwares present and verified");
        return Ok(found);
    }
    build(root, &pins)
}

/// Both firmwares from the cache, or None when either is missing (or was corrupt and removed).
fn cached_all(cache: &Path, pins: &OvmfPins) -> Result<Option<OvmfFirmwares>> {
    let amdsev = cached(cache, &pins.firmware("amdsev").sha256)?;
    let generic = cached(cache, &pins.firmware("generic").sha256)?;
    Ok(match (amdsev, generic) {
        (Some(amdsev), Some(generic)) => Some(OvmfFirmwares { amdsev, generic }),
        _ => None,
    })
}

/// `cache/<sha256>/OVMF.fd` when it exists and hashes to `sha256`. A file that does not match
/// is removed (it is rebuilt).
fn cached(cache: &Path, sha256: &str) -> Result<Option<PathBuf>> {
    let path = cache.join(sha256).join(FD_NAME);
    if !path.is_file() {
        return Ok(None);
    }
    let got = sha256_file(&path)?;
    if got == sha256 {
        return Ok(Some(path));
    }
    eprintln!(
        "ovmf: cached {} has sha256 {got}, not {sha256}; removing it",
        path.display()
    );
    fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    Ok(None)
}

/// Copy a built firmware into `cache/<sha256>/OVMF.fd` (atomically), after checking its hash.
fn store(cache: &Path, built: &Path, sha256: &str) -> Result<PathBuf> {
    let got = sha256_file(built)?;
    if got != sha256 {
        bail!("{} has sha256 {got}, expected {sha256}", built.display());
    }
    let dir = cache.join(sha256);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!("{FD_NAME}.tmp"));
    fs::copy(built, &tmp).with_context(|| format!("copying {}", built.display()))?;
    let path = dir.join(FD_NAME);
    fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Fetch, patch and build both firmwares, check them against the pins and cache them.
fn build(root: &Path, pins: &OvmfPins) -> Result<OvmfFirmwares> {
    let main_pins = Pins::load(root)?;
    check_tools(pins, &main_pins)?;
    setup::ensure(&main_pins)?;
    if Command::new("xz").arg("--version").output().is_err() {
        bail!("xz is missing (the edk2 tarballs are .tar.xz): install Debian's xz-utils");
    }
    let cache = cache_dir(root);
    let tarballs = fetch_sources(&cache.join("src"), pins)?;

    let build_dir = PathBuf::from(&pins.build.dir);
    fs::create_dir_all(&build_dir)
        .with_context(|| format!("creating the OVMF build folder {}", build_dir.display()))?;
    let _lock = lock_build_dir(&build_dir)?;
    let ws = pins.workspace();
    let logs = build_dir.join("logs");
    fs::create_dir_all(&logs)?;

    prepare_workspace(pins, &tarballs, &ws)?;

    let started = Instant::now();
    eprintln!(
        "ovmf: building BaseTools (log: {})",
        logs.join("basetools.log").display()
    );
    let mut basetools = edk2_shell(
        pins,
        &ws,
        &format!("make -C BaseTools ARCH={}", pins.build.arch),
        &[],
    );
    run_logged(&mut basetools, &logs.join("basetools.log"), "BaseTools")?;
    eprintln!("ovmf: BaseTools built in {}", minutes(started.elapsed()));

    let mut mismatches = Vec::new();
    let mut stored = Vec::new();
    for name in ["amdsev", "generic"] {
        let fw = pins.firmware(name);
        let log = logs.join(format!("{name}.log"));
        eprintln!(
            "ovmf: building {name} ({}, {} {} {}; log: {})",
            fw.dsc,
            pins.build.arch,
            pins.build.toolchain,
            pins.build.target,
            log.display()
        );
        let started = Instant::now();
        let mut cmd = edk2_shell(pins, &ws, "build \"${args[@]}\"", &build_args(pins, fw));
        run_logged(&mut cmd, &log, name)?;
        let built = ws.join(&fw.output);
        let got = sha256_file(&built)
            .with_context(|| format!("the {name} build left no {}", fw.output))?;
        eprintln!(
            "ovmf: {name} built in {}: sha256 {got}",
            minutes(started.elapsed())
        );
        if got == fw.sha256 {
            stored.push(store(&cache, &built, &fw.sha256)?);
        } else {
            mismatches.push(format!(
                "{name} ({}): expected sha256 {}, got {got} (built file: {})",
                fw.dsc,
                fw.sha256,
                built.display()
            ));
        }
    }
    if !mismatches.is_empty() {
        bail!(
            "the OVMF build does not reproduce the pinned firmware:\n  {}\n\
             The build folder is kept for inspection. If the change is deliberate (new source or \
             tools), record the new hashes in {PIN_FILE}.",
            mismatches.join("\n  ")
        );
    }
    fs::remove_dir_all(&ws).with_context(|| format!("removing {}", ws.display()))?;
    eprintln!(
        "ovmf: both firmwares match their pins; cached under {}",
        cache.display()
    );
    Ok(OvmfFirmwares {
        amdsev: stored[0].clone(),
        generic: stored[1].clone(),
    })
}

#[cfg(test)]
pub(super) mod test_util {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub(super) const PINS: &str = include_str!("../../../ovmf/pins.toml");

    pub(super) fn temp_dir() -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pp-ovmf-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub(super) fn sha256_of(bytes: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovmf::test_util::*;

    #[test]
    fn cache_returns_only_matching_files() {
        let cache = temp_dir();
        let content = b"not really a firmware";
        let sha = sha256_of(content);
        assert_eq!(cached(&cache, &sha).unwrap(), None);

        let path = cache.join(&sha).join(FD_NAME);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        assert_eq!(cached(&cache, &sha).unwrap(), Some(path.clone()));

        // A corrupted cache entry is removed, so the next step rebuilds it.
        fs::write(&path, b"tampered").unwrap();
        assert_eq!(cached(&cache, &sha).unwrap(), None);
        assert!(!path.exists());
        fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn store_checks_the_hash_and_cached_all_needs_both() {
        let cache = temp_dir();
        let built = cache.join("built.fd");
        fs::write(&built, b"amdsev bytes").unwrap();
        let sha = sha256_of(b"amdsev bytes");
        let err = store(&cache, &built, &"0".repeat(64))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&sha) && err.contains(&"0".repeat(64)), "{err}");
        let stored = store(&cache, &built, &sha).unwrap();
        assert_eq!(stored, cache.join(&sha).join(FD_NAME));

        let mut pins = OvmfPins::parse(PINS).unwrap();
        for fw in &mut pins.firmware {
            fw.sha256 = if fw.name == "amdsev" {
                sha.clone()
            } else {
                "f".repeat(64)
            };
        }
        assert!(cached_all(&cache, &pins).unwrap().is_none());
        fs::write(&built, b"generic bytes").unwrap();
        let generic_sha = sha256_of(b"generic bytes");
        store(&cache, &built, &generic_sha).unwrap();
        pins.firmware
            .iter_mut()
            .find(|f| f.name == "generic")
            .unwrap()
            .sha256 = generic_sha.clone();
        let both = cached_all(&cache, &pins).unwrap().unwrap();
        assert_eq!(both.amdsev, cache.join(&sha).join(FD_NAME));
        assert_eq!(both.generic, cache.join(&generic_sha).join(FD_NAME));
        fs::remove_dir_all(&cache).unwrap();
    }
}
