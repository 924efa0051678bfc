//! `cargo xtask setup`: install and check the pinned Debian packages (toolchain, linker, QEMU).
//!
//! Idempotent: when every pinned package is installed at its pinned version, it changes nothing and
//! needs no network. Otherwise it adds the missing apt suites (on the same mirror the system already
//! uses for `bookworm`), checks that the archive still offers each pinned version with the pinned
//! .deb hash, and installs exactly those versions.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::pins::{AptPackage, Pins};
use crate::util::{run, stdout_of};

const SOURCES_DIR: &str = "/etc/apt/sources.list.d";
const PREFERENCES_DIR: &str = "/etc/apt/preferences.d";

/// Ensure every installable pinned package is present at its pinned version.
pub fn ensure(pins: &Pins) -> Result<()> {
    let missing: Vec<&AptPackage> = pins
        .apt
        .package
        .iter()
        .filter(|p| !p.download_only && installed_version(&p.name).as_deref() != Some(&p.version))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = missing
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();
    eprintln!("setup: installing pinned packages: {}", names.join(" "));
    require_root("install the pinned Debian packages")?;
    ensure_suites(pins)?;
    apt_update()?;
    for package in &missing {
        check_archive_offers(package)?;
    }
    let mut by_suite: Vec<(Option<&str>, Vec<String>)> = Vec::new();
    for package in &missing {
        let spec = format!("{}={}", package.name, package.version);
        let suite = package.suite.as_deref();
        match by_suite.iter_mut().find(|(s, _)| *s == suite) {
            Some((_, specs)) => specs.push(spec),
            None => by_suite.push((suite, vec![spec])),
        }
    }
    for (suite, specs) in by_suite {
        let mut cmd = Command::new("apt-get");
        cmd.env("DEBIAN_FRONTEND", "noninteractive").args([
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
        ]);
        if let Some(suite) = suite {
            cmd.args(["-t", suite]);
        }
        cmd.args(&specs);
        run(&mut cmd).context("apt-get install of the pinned packages failed")?;
    }
    for package in &missing {
        let got = installed_version(&package.name);
        if got.as_deref() != Some(&package.version) {
            bail!(
                "after installing, {} is at {:?}, not the pinned {}",
                package.name,
                got,
                package.version
            );
        }
    }
    eprintln!("setup: all pinned packages installed");
    Ok(())
}

/// Download (not install) a pinned package's .deb into `dir` and check its sha256.
pub fn download_deb(pins: &Pins, name: &str, dir: &Path) -> Result<std::path::PathBuf> {
    let package = pins.apt_package(name)?;
    fs::create_dir_all(dir)?;
    if let Some(found) = find_deb(dir, name)? {
        if crate::util::sha256_file(&found)? == package.sha256 {
            return Ok(found);
        }
        fs::remove_file(&found)?;
    }
    require_root("add the apt suite that ships the pinned firmware")?;
    ensure_suites(pins)?;
    let spec = format!("{name}={}", package.version);
    let try_download = |dir: &Path| {
        Command::new("apt-get")
            .args(["download", "-q", &spec])
            .current_dir(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !try_download(dir) {
        apt_update()?;
        check_archive_offers(package)?;
        if !try_download(dir) {
            bail!("apt-get download {spec} failed");
        }
    }
    let deb = find_deb(dir, name)?.context("apt-get download left no .deb")?;
    let got = crate::util::sha256_file(&deb)?;
    if got != package.sha256 {
        fs::remove_file(&deb)?;
        bail!(
            "{} has sha256 {got}, but pins.toml expects {}; refusing it",
            deb.display(),
            package.sha256
        );
    }
    Ok(deb)
}

fn find_deb(dir: &Path, name: &str) -> Result<Option<std::path::PathBuf>> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
        if file.starts_with(&format!("{name}_")) && file.ends_with(".deb") {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

fn installed_version(name: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status} ${Version}", name])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.strip_prefix("installed ").map(str::to_owned)
}

fn require_root(what: &str) -> Result<()> {
    let uid = stdout_of(Command::new("id").arg("-u"))?;
    if uid.trim() != "0" {
        bail!("setup must run as root to {what}; run `sudo cargo xtask setup` once, then retry");
    }
    Ok(())
}

fn apt_update() -> Result<()> {
    eprintln!("setup: apt-get update");
    let ok = Command::new("apt-get")
        .args(["update", "-q"])
        .status()
        .context("running apt-get")?
        .success();
    if !ok {
        bail!("apt-get update failed: the Debian archive is unreachable or a source is broken");
    }
    Ok(())
}

/// The archive must still offer the exact version, and list the pinned .deb hash for it.
fn check_archive_offers(package: &AptPackage) -> Result<()> {
    let spec = format!("{}={}", package.name, package.version);
    let out = Command::new("apt-cache").args(["show", &spec]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.trim().is_empty() {
        bail!(
            "the pinned version {spec} is no longer offered by any configured apt source{}; \
             update pins.toml deliberately (and the release manifest will change)",
            package
                .suite
                .as_deref()
                .map(|s| format!(" (expected in {s})"))
                .unwrap_or_default()
        );
    }
    let listed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("SHA256: "))
        .map(str::trim)
        .collect();
    if !listed.contains(&package.sha256.as_str()) {
        bail!(
            "the archive lists {spec} with sha256 {listed:?}, but pins.toml expects {}",
            package.sha256
        );
    }
    Ok(())
}

/// Add each pinned suite as a deb822 source on the mirror the system uses for bookworm.
fn ensure_suites(pins: &Pins) -> Result<()> {
    let mut changed = false;
    for suite in &pins.apt.suites {
        let sources = Path::new(SOURCES_DIR).join(format!("pp-{}.sources", suite.name));
        if !sources.exists() && !suite_configured(&suite.name)? {
            let mirror = debian_mirror()?;
            let text = format!(
                "# Added by `cargo xtask setup` (Private Processing pins).\nTypes: deb\nURIs: {mirror}\n\
                 Suites: {}\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
                suite.name
            );
            fs::write(&sources, text).with_context(|| format!("writing {}", sources.display()))?;
            eprintln!(
                "setup: added apt suite {} ({})",
                suite.name,
                sources.display()
            );
            changed = true;
        }
        let pref = Path::new(PREFERENCES_DIR).join(format!("pp-{}", suite.name));
        let pref_text = format!(
            "# Added by `cargo xtask setup`: only pinned packages come from this suite.\n\
             Package: *\nPin: release n={}\nPin-Priority: {}\n",
            suite.name, suite.priority
        );
        if fs::read_to_string(&pref).ok().as_deref() != Some(pref_text.as_str()) {
            fs::create_dir_all(PREFERENCES_DIR)?;
            fs::write(&pref, pref_text).with_context(|| format!("writing {}", pref.display()))?;
            changed = true;
        }
    }
    if changed {
        apt_update()?;
    }
    Ok(())
}

/// All apt source entries as (uris, suites).
fn source_entries() -> Result<Vec<(Vec<String>, Vec<String>)>> {
    let mut entries = Vec::new();
    let mut files = vec![Path::new("/etc/apt/sources.list").to_path_buf()];
    if let Ok(dir) = fs::read_dir(SOURCES_DIR) {
        let mut more: Vec<_> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        let name = file.to_string_lossy();
        if name.ends_with(".sources") {
            for block in text.split("\n\n") {
                let field = |key: &str| -> Vec<String> {
                    block
                        .lines()
                        .filter_map(|l| l.strip_prefix(key))
                        .flat_map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                        .collect()
                };
                let enabled = !block.lines().any(|l| l.trim() == "Enabled: no");
                if enabled {
                    entries.push((field("URIs:"), field("Suites:")));
                }
            }
        } else if name.ends_with(".list") {
            for line in text.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                if words.first() == Some(&"deb") {
                    let rest: Vec<&str> = words[1..]
                        .iter()
                        .copied()
                        .filter(|w| !w.starts_with('['))
                        .collect();
                    if rest.len() >= 2 {
                        entries.push((vec![rest[0].to_owned()], vec![rest[1].to_owned()]));
                    }
                }
            }
        }
    }
    Ok(entries)
}

fn suite_configured(suite: &str) -> Result<bool> {
    Ok(source_entries()?
        .iter()
        .any(|(_, suites)| suites.iter().any(|s| s == suite)))
}

fn debian_mirror() -> Result<String> {
    source_entries()?
        .into_iter()
        .find(|(_, suites)| suites.iter().any(|s| s == "bookworm"))
        .and_then(|(uris, _)| uris.into_iter().next())
        .context(
            "no apt source serves Debian bookworm; cannot tell which mirror to add suites from",
        )
}
