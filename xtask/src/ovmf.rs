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

/// The pin file, relative to the workspace root.
const PIN_FILE: &str = "ovmf/pins.toml";
/// Where the verified firmwares (and the fetched source tarballs) are kept, under the root.
const CACHE_DIR: &str = "target/pp/ovmf";
/// Names another cache folder, e.g. the first checkout's for a rebuild at another path: cached
/// files are only ever used after their hash is checked against the pins, so sharing is safe.
pub const CACHE_ENV: &str = "PP_OVMF_CACHE";
/// The cached firmware's file name inside `CACHE_DIR/<sha256>/`.
const FD_NAME: &str = "OVMF.fd";

/// The two firmware files, verified against their pinned sha256.
#[derive(Debug, Clone)]
pub struct OvmfFirmwares {
    /// AmdSevX64: SEV-SNP boots and the launch measurement.
    pub amdsev: PathBuf,
    /// OvmfPkgX64: boots without SEV.
    pub generic: PathBuf,
}

/// `ovmf/pins.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OvmfPins {
    pub source: SourcePin,
    pub patches: PatchesPin,
    pub build: BuildPin,
    pub firmware: Vec<FirmwarePin>,
}

/// The Debian source package and its tarballs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePin {
    pub package: String,
    pub version: String,
    /// Suite whose deb-src index lists the version.
    pub suite: String,
    /// Top folder of the orig tarball (the edk2 WORKSPACE).
    pub dir: String,
    pub tarball: Vec<TarballPin>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TarballPin {
    pub name: String,
    pub sha256: String,
}

/// Debian's quilt series.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchesPin {
    /// Path of the series file inside the WORKSPACE; the patches sit beside it.
    pub series: String,
    /// How many patches the series lists (a check that the series was read as intended).
    pub count: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildPin {
    /// Fixed absolute folder the source is unpacked and built in.
    pub dir: String,
    pub arch: String,
    pub toolchain: String,
    pub target: String,
    /// `build -n`: AutoGen workers and parallel module builds (1 for a fixed order).
    pub threads: u32,
    /// Files created empty in the WORKSPACE before building.
    pub empty_files: Vec<String>,
    /// Build tools, each also pinned as an `[[apt.package]]` in `pins.toml` at this version.
    pub tools: Vec<ToolPin>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolPin {
    pub name: String,
    pub version: String,
}

/// One firmware flavour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwarePin {
    /// `amdsev` or `generic`.
    pub name: String,
    /// Platform description, relative to the WORKSPACE.
    pub dsc: String,
    /// The flash image the build writes, relative to the WORKSPACE.
    pub output: String,
    /// `-D` defines passed to `build` (`NAME=VALUE` or `NAME`).
    pub defines: Vec<String>,
    /// Expected sha256 of the output.
    pub sha256: String,
}

/// Which way a source tarball is unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TarballKind {
    /// `*.orig.tar.*`: unpacked in the build folder; holds the WORKSPACE folder.
    Orig,
    /// `*.debian.tar.*`: unpacked inside the WORKSPACE (it holds `debian/`).
    Debian,
}

impl TarballPin {
    fn kind(&self) -> Option<TarballKind> {
        if self.name.contains(".orig.tar.") {
            Some(TarballKind::Orig)
        } else if self.name.contains(".debian.tar.") {
            Some(TarballKind::Debian)
        } else {
            None
        }
    }
}

impl OvmfPins {
    pub fn load(root: &Path) -> Result<Self> {
        let path = root.join(PIN_FILE);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let pins: Self = toml::from_str(text).context("parsing the OVMF pin file")?;
        pins.validate()?;
        Ok(pins)
    }

    fn validate(&self) -> Result<()> {
        for t in &self.source.tarball {
            check_sha256(&t.sha256, &t.name)?;
            if t.name.contains('/') || t.name.starts_with('.') {
                bail!("tarball name {:?} must be a plain file name", t.name);
            }
        }
        for kind in [TarballKind::Orig, TarballKind::Debian] {
            let n = self
                .source
                .tarball
                .iter()
                .filter(|t| t.kind() == Some(kind))
                .count();
            if n != 1 {
                bail!(
                    "[[source.tarball]] needs exactly one {kind:?} tarball (*.{}.tar.*), found {n}",
                    if kind == TarballKind::Orig {
                        "orig"
                    } else {
                        "debian"
                    }
                );
            }
        }
        if let Some(t) = self.source.tarball.iter().find(|t| t.kind().is_none()) {
            bail!(
                "tarball {} is neither *.orig.tar.* nor *.debian.tar.*",
                t.name
            );
        }
        if self.source.dir.is_empty() || self.source.dir.contains('/') {
            bail!("source.dir {:?} must be one folder name", self.source.dir);
        }
        let dir = Path::new(&self.build.dir);
        if !dir.is_absolute() || dir.parent().is_none() {
            bail!(
                "build.dir {:?} must be a fixed absolute path (the firmware bytes depend on it)",
                self.build.dir
            );
        }
        if self.build.threads == 0 {
            bail!("build.threads must be at least 1 (0 would mean one per CPU, a varying order)");
        }
        for name in ["amdsev", "generic"] {
            let n = self.firmware.iter().filter(|f| f.name == name).count();
            if n != 1 {
                bail!("[[firmware]] needs exactly one entry named {name:?}, found {n}");
            }
        }
        if let Some(f) = self
            .firmware
            .iter()
            .find(|f| f.name != "amdsev" && f.name != "generic")
        {
            bail!(
                "unknown [[firmware]] {:?} (expected amdsev or generic)",
                f.name
            );
        }
        for f in &self.firmware {
            check_sha256(&f.sha256, &f.name)?;
        }
        Ok(())
    }

    fn firmware(&self, name: &str) -> &FirmwarePin {
        self.firmware
            .iter()
            .find(|f| f.name == name)
            .expect("validated: both firmwares are pinned")
    }

    fn tarball(&self, kind: TarballKind) -> &TarballPin {
        self.source
            .tarball
            .iter()
            .find(|t| t.kind() == Some(kind))
            .expect("validated: one tarball of each kind")
    }

    /// The WORKSPACE: the fixed build folder's unpacked source tree.
    fn workspace(&self) -> PathBuf {
        Path::new(&self.build.dir).join(&self.source.dir)
    }
}

fn check_sha256(value: &str, what: &str) -> Result<()> {
    if value.len() != 64
        || !value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        bail!("the sha256 of {what} must be 64 lowercase hex digits, not {value:?}");
    }
    Ok(())
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

/// Each build tool must be pinned in `pins.toml` at the version the firmware hashes hold for.
fn check_tools(pins: &OvmfPins, main_pins: &Pins) -> Result<()> {
    for tool in &pins.build.tools {
        let package = main_pins
            .apt_package(&tool.name)
            .with_context(|| format!("{PIN_FILE} needs the build tool {}", tool.name))?;
        if package.version != tool.version {
            bail!(
                "{PIN_FILE} builds with {} {}, but pins.toml pins {}; keep the two in step \
                 (and re-check the firmware hashes)",
                tool.name,
                tool.version,
                package.version
            );
        }
    }
    Ok(())
}

/// The pinned source tarballs in `dir`, fetched with `apt-get source` when missing, each
/// checked against its pinned sha256. Returns them in pin order.
fn fetch_sources(dir: &Path, pins: &OvmfPins) -> Result<Vec<(TarballPin, PathBuf)>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut missing = false;
    for t in &pins.source.tarball {
        let path = dir.join(&t.name);
        if path.is_file() {
            if sha256_file(&path)? == t.sha256 {
                continue;
            }
            fs::remove_file(&path)?;
        }
        missing = true;
    }
    if missing {
        let spec = format!("{}={}", pins.source.package, pins.source.version);
        eprintln!("ovmf: fetching the {spec} source package with apt-get source");
        setup::ensure_source_suite(&pins.source.suite)?;
        check_archive_lists_source(pins)?;
        // Only the tarballs matter: the archive's .dsc for this version may be missing (404), so
        // apt-get's exit status is not the verdict; the pinned hashes below are.
        let out = Command::new("apt-get")
            .args(["source", "--download-only", "--only-source", "-q", &spec])
            .current_dir(dir)
            .output()
            .context("running apt-get source")?;
        for t in &pins.source.tarball {
            if !dir.join(&t.name).is_file() {
                bail!(
                    "`apt-get source --download-only --only-source {spec}` did not fetch {} \
                     (is the Debian archive reachable?):\n{}",
                    t.name,
                    tail(&String::from_utf8_lossy(&out.stderr), 15)
                );
            }
        }
    }
    let mut found = Vec::new();
    for t in &pins.source.tarball {
        let path = dir.join(&t.name);
        let got = sha256_file(&path)?;
        if got != t.sha256 {
            fs::remove_file(&path)?;
            bail!(
                "{} has sha256 {got}, but {PIN_FILE} expects {}; refusing it",
                t.name,
                t.sha256
            );
        }
        found.push((t.clone(), path));
    }
    Ok(found)
}

/// The archive's Sources index must list the pinned version with the pinned tarball hashes.
fn check_archive_lists_source(pins: &OvmfPins) -> Result<()> {
    let spec = format!("{}={}", pins.source.package, pins.source.version);
    let lookup = || -> Result<Option<Vec<(String, String)>>> {
        let text = stdout_of(Command::new("apt-cache").args(["showsrc", &pins.source.package]))
            .unwrap_or_default();
        Ok(listed_checksums(
            &text,
            &pins.source.package,
            &pins.source.version,
        ))
    };
    let listed = match lookup()? {
        Some(listed) => listed,
        None => {
            setup::refresh_indexes("refresh apt's source package indexes")?;
            lookup()?.with_context(|| {
                format!(
                    "the pinned source package {spec} is no longer listed by any deb-src index \
                     (expected in {}); update {PIN_FILE} deliberately",
                    pins.source.suite
                )
            })?
        }
    };
    for t in &pins.source.tarball {
        match listed.iter().find(|(name, _)| *name == t.name) {
            Some((_, sha)) if *sha == t.sha256 => {}
            Some((_, sha)) => bail!(
                "the archive lists {} of {spec} with sha256 {sha}, but {PIN_FILE} expects {}",
                t.name,
                t.sha256
            ),
            None => bail!(
                "the archive's {spec} has no file {} (it lists {:?})",
                t.name,
                listed.iter().map(|(n, _)| n).collect::<Vec<_>>()
            ),
        }
    }
    Ok(())
}

/// From `apt-cache showsrc` output: the (file name, sha256) pairs of the record of `package` at
/// `version`, or None when no record has that version.
fn listed_checksums(text: &str, package: &str, version: &str) -> Option<Vec<(String, String)>> {
    for record in text.split("\n\n") {
        let field = |key: &str| {
            record
                .lines()
                .find_map(|l| l.strip_prefix(key).map(str::trim))
        };
        if field("Package:") != Some(package) || field("Version:") != Some(version) {
            continue;
        }
        let mut sums = Vec::new();
        let mut inside = false;
        for line in record.lines() {
            if line.starts_with("Checksums-Sha256:") {
                inside = true;
            } else if inside && line.starts_with(' ') {
                let words: Vec<&str> = line.split_whitespace().collect();
                if let [sha, _size, name] = words[..] {
                    sums.push((name.to_owned(), sha.to_owned()));
                }
            } else {
                inside = false;
            }
        }
        return Some(sums);
    }
    None
}

/// One entry of a quilt series file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SeriesPatch {
    name: String,
    /// Leading path components to strip (`patch -pN`); 1 unless the line says otherwise.
    strip: u32,
}

/// Parse a quilt `series` file: one patch per line, optionally followed by `-pN`; `#` starts a
/// comment; blank lines are skipped. Any other option is an error (it would change the result).
fn parse_series(text: &str) -> Result<Vec<SeriesPatch>> {
    let mut patches = Vec::new();
    for (number, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let name = words.next().expect("non-empty line").to_owned();
        if name.contains("..") || name.starts_with('/') {
            bail!(
                "series line {}: patch path {name:?} leaves the patch folder",
                number + 1
            );
        }
        let mut strip = 1;
        for option in words {
            match option.strip_prefix("-p").map(str::parse::<u32>) {
                Some(Ok(n)) => strip = n,
                _ => bail!(
                    "series line {}: unsupported option {option:?} for {name}",
                    number + 1
                ),
            }
        }
        patches.push(SeriesPatch { name, strip });
    }
    Ok(patches)
}

/// Take the build folder for this process (another checkout may build at the same fixed path).
fn lock_build_dir(build_dir: &Path) -> Result<fs::File> {
    let path = build_dir.join(".lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if file.try_lock().is_err() {
        eprintln!(
            "ovmf: waiting for another OVMF build in {}",
            build_dir.display()
        );
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
    }
    Ok(file)
}

/// A fresh WORKSPACE: both tarballs unpacked, the patch series applied, the empty files created.
fn prepare_workspace(pins: &OvmfPins, tarballs: &[(TarballPin, PathBuf)], ws: &Path) -> Result<()> {
    if ws.exists() {
        fs::remove_dir_all(ws).with_context(|| format!("removing the old {}", ws.display()))?;
    }
    let build_dir = ws
        .parent()
        .expect("the workspace is inside the build folder");
    let path_of = |kind: TarballKind| {
        let name = &pins.tarball(kind).name;
        tarballs
            .iter()
            .find(|(t, _)| t.name == *name)
            .map(|(_, p)| p.clone())
            .expect("every pinned tarball was fetched")
    };
    eprintln!("ovmf: unpacking the source into {}", ws.display());
    run(Command::new("tar")
        .arg("-xJf")
        .arg(path_of(TarballKind::Orig))
        .arg("--no-same-owner")
        .arg("-C")
        .arg(build_dir))?;
    if !ws.is_dir() {
        bail!(
            "the orig tarball did not unpack into {} (source.dir in {PIN_FILE})",
            ws.display()
        );
    }
    run(Command::new("tar")
        .arg("-xJf")
        .arg(path_of(TarballKind::Debian))
        .arg("--no-same-owner")
        .arg("-C")
        .arg(ws))?;

    let series_path = ws.join(&pins.patches.series);
    let series = fs::read_to_string(&series_path)
        .with_context(|| format!("reading {}", series_path.display()))?;
    let patches = parse_series(&series)?;
    if patches.len() != pins.patches.count {
        bail!(
            "{} lists {} patches, {PIN_FILE} expects {}",
            pins.patches.series,
            patches.len(),
            pins.patches.count
        );
    }
    let patch_dir = series_path
        .parent()
        .expect("the series file is in a folder");
    eprintln!("ovmf: applying {} Debian patches", patches.len());
    for (i, p) in patches.iter().enumerate() {
        let mut cmd = Command::new("patch");
        cmd.arg(format!("-p{}", p.strip))
            .args([
                "--forward",
                "--batch",
                "--fuzz=0",
                "--no-backup-if-mismatch",
                "--reject-file=-",
                "--quiet",
                "-d",
            ])
            .arg(ws)
            .arg("-i")
            .arg(patch_dir.join(&p.name));
        run(&mut cmd).with_context(|| {
            format!(
                "Debian patch {} ({} of {}) does not apply cleanly",
                p.name,
                i + 1,
                patches.len()
            )
        })?;
    }

    for file in &pins.build.empty_files {
        let path = ws.join(file);
        fs::write(&path, b"").with_context(|| format!("creating the empty {}", path.display()))?;
    }
    Ok(())
}

/// The `build` arguments for one firmware.
fn build_args(pins: &OvmfPins, fw: &FirmwarePin) -> Vec<String> {
    let threads = pins.build.threads.to_string();
    let mut args: Vec<String> = [
        "-n",
        &threads,
        "-a",
        &pins.build.arch,
        "-t",
        &pins.build.toolchain,
        "-b",
        &pins.build.target,
        "-p",
        &fw.dsc,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for define in &fw.defines {
        args.push("-D".to_owned());
        args.push(define.clone());
    }
    args
}

/// A bash that sources `edksetup.sh` in the WORKSPACE and runs `script` (which sees `args` as
/// the array `args`), in a clean environment: only the system PATH and the pinned python3, so
/// nothing of the caller's environment (pyenv, compiler flags) reaches the build.
fn edk2_shell(pins: &OvmfPins, ws: &Path, script: &str, args: &[String]) -> Command {
    let mut cmd = Command::new("/bin/bash");
    cmd.arg("-c")
        .arg(format!(
            "set -e\nargs=(\"$@\")\nset --\n. ./edksetup.sh\n{script}\n"
        ))
        .arg("bash")
        .args(args)
        .current_dir(ws)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", Path::new(&pins.build.dir).join("home"))
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("TZ", "UTC")
        .env("SOURCE_DATE_EPOCH", "0")
        .env("PYTHON_COMMAND", "/usr/bin/python3")
        .env("PYTHONHASHSEED", "0");
    cmd
}

/// Run a command with its output in `log`; on failure, show the log's last lines.
fn run_logged(cmd: &mut Command, log: &Path, what: &str) -> Result<()> {
    let file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    cmd.stdout(file.try_clone()?).stderr(file);
    let status = cmd
        .status()
        .with_context(|| format!("could not start {}", describe(cmd)))?;
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        bail!(
            "the {what} build failed ({status}); last lines of {}:\n{}",
            log.display(),
            tail(&text, 30)
        );
    }
    Ok(())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const PINS: &str = include_str!("../../ovmf/pins.toml");

    fn temp_dir() -> PathBuf {
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

    fn sha256_of(bytes: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn the_pin_file_parses() {
        let pins = OvmfPins::parse(PINS).unwrap();
        assert_eq!(pins.source.package, "edk2");
        assert_eq!(
            pins.tarball(TarballKind::Orig).name,
            "edk2_2025.02.orig.tar.xz"
        );
        assert!(
            pins.tarball(TarballKind::Debian)
                .name
                .ends_with(".debian.tar.xz")
        );
        assert_eq!(pins.firmware("amdsev").dsc, "OvmfPkg/AmdSev/AmdSevX64.dsc");
        assert_eq!(pins.firmware("generic").dsc, "OvmfPkg/OvmfPkgX64.dsc");
        assert!(Path::new(&pins.build.dir).is_absolute());
        assert!(
            pins.build
                .empty_files
                .contains(&"OvmfPkg/AmdSev/Grub/grub.efi".to_owned())
        );
        let args = build_args(&pins, pins.firmware("amdsev"));
        assert_eq!(
            args[..8],
            ["-n", "1", "-a", "X64", "-t", "GCC5", "-b", "RELEASE"].map(String::from)
        );
        let generic = build_args(&pins, pins.firmware("generic"));
        assert!(generic.ends_with(&["-D".to_owned(), "NETWORK_ISCSI_ENABLE=FALSE".to_owned()]));
    }

    #[test]
    fn the_tools_agree_with_the_main_pins() {
        let pins = OvmfPins::parse(PINS).unwrap();
        let main: Pins = toml::from_str(include_str!("../../pins.toml")).unwrap();
        check_tools(&pins, &main).unwrap();

        let mut drifted = main.clone();
        let nasm = drifted
            .apt
            .package
            .iter_mut()
            .find(|p| p.name == "nasm")
            .unwrap();
        nasm.version = "9.9".into();
        let err = check_tools(&pins, &drifted).unwrap_err().to_string();
        assert!(err.contains("nasm") && err.contains("9.9"), "{err}");
    }

    #[test]
    fn bad_pins_are_refused() {
        let bad_sha = PINS.replacen(
            "b63b6053d6d89c74d9291f9e96fde1584be99e6fb9c169ba9511505129d6b049",
            "B63B",
            1,
        );
        assert!(OvmfPins::parse(&bad_sha).is_err());
        let relative = PINS.replace("dir = \"/var/tmp/pp-ovmf-build\"", "dir = \"build\"");
        let err = OvmfPins::parse(&relative).unwrap_err();
        assert!(format!("{err:#}").contains("absolute"), "{err:#}");
        let no_generic = PINS.replace("name = \"generic\"", "name = \"other\"");
        assert!(OvmfPins::parse(&no_generic).is_err());
        let unknown_key = PINS.replace("[patches]", "[patches]\nfuzz = 2");
        assert!(OvmfPins::parse(&unknown_key).is_err());
    }

    #[test]
    fn series_comments_blank_lines_and_strip_options() {
        let text = "# Debian patches\n\nfirst.diff\n  second.patch   -p0 \nthird.patch # why\n\
                    #disabled.patch\nsub/fourth.patch -p2\n";
        let patches = parse_series(text).unwrap();
        let got: Vec<(&str, u32)> = patches.iter().map(|p| (p.name.as_str(), p.strip)).collect();
        assert_eq!(
            got,
            [
                ("first.diff", 1),
                ("second.patch", 0),
                ("third.patch", 1),
                ("sub/fourth.patch", 2)
            ]
        );
        assert!(parse_series("a.patch -R\n").is_err());
        assert!(parse_series("a.patch -px\n").is_err());
        assert!(parse_series("../escape.patch\n").is_err());
        assert!(parse_series("\n# nothing\n").unwrap().is_empty());
    }

    #[test]
    fn showsrc_checksums_of_the_pinned_version() {
        let text = "Package: edk2\nVersion: 2025.02-8\nChecksums-Sha256:\n aa 1 old.tar.xz\n\n\
                    Package: edk2\nBinary: ovmf\nVersion: 2025.02-8+deb13u1\nFiles:\n 00 2 x.dsc\n\
                    Checksums-Sha256:\n 11 2656 edk2_2025.02-8+deb13u1.dsc\n 22 29646336 \
                    edk2_2025.02.orig.tar.xz\n 33 53652 edk2_2025.02-8+deb13u1.debian.tar.xz\n\
                    Homepage: http://example\n";
        let sums = listed_checksums(text, "edk2", "2025.02-8+deb13u1").unwrap();
        assert_eq!(
            sums,
            [
                ("edk2_2025.02-8+deb13u1.dsc", "11"),
                ("edk2_2025.02.orig.tar.xz", "22"),
                ("edk2_2025.02-8+deb13u1.debian.tar.xz", "33")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert!(listed_checksums(text, "edk2", "2024.11-1").is_none());
        assert!(listed_checksums(text, "other", "2025.02-8").is_none());
    }

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
