//! `cargo xtask setup`: install and check the pinned Debian packages (toolchain, linker, QEMU, and
//! the Valkey server the tests and the local stack use as the gateways' shared spent-token store).
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
        .chain(&pins.apt.service)
        .filter(|p| installed_version(&p.name).as_deref() != Some(&p.version))
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

/// One apt source entry: its types (`deb`, `deb-src`), URIs and suites.
struct SourceEntry {
    types: Vec<String>,
    uris: Vec<String>,
    suites: Vec<String>,
}

impl SourceEntry {
    fn has_type(&self, kind: &str) -> bool {
        self.types.iter().any(|t| t == kind)
    }

    fn has_suite(&self, suite: &str) -> bool {
        self.suites.iter().any(|s| s == suite)
    }
}

/// All enabled apt source entries, binary (`deb`) and source (`deb-src`).
fn source_entries() -> Result<Vec<SourceEntry>> {
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
            entries.extend(parse_deb822_sources(&text));
        } else if name.ends_with(".list") {
            entries.extend(parse_one_line_sources(&text));
        }
    }
    Ok(entries)
}

/// Entries of a deb822 `.sources` file (blocks separated by blank lines).
fn parse_deb822_sources(text: &str) -> Vec<SourceEntry> {
    let mut entries = Vec::new();
    for block in text.split("\n\n") {
        let field = |key: &str| -> Vec<String> {
            block
                .lines()
                .filter_map(|l| l.strip_prefix(key))
                .flat_map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .collect()
        };
        let enabled = !block.lines().any(|l| l.trim() == "Enabled: no");
        let suites = field("Suites:");
        if enabled && !suites.is_empty() {
            let mut types = field("Types:");
            if types.is_empty() {
                types.push("deb".to_owned());
            }
            entries.push(SourceEntry {
                types,
                uris: field("URIs:"),
                suites,
            });
        }
    }
    entries
}

/// Entries of a one-line-style `.list` file (`deb [opts] URI SUITE COMPONENTS...`).
fn parse_one_line_sources(text: &str) -> Vec<SourceEntry> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(&kind) = words.first() else {
            continue;
        };
        if kind == "deb" || kind == "deb-src" {
            // Skip the `[key=value ...]` options, which may span several words.
            let mut rest: &[&str] = &words[1..];
            if rest.first().is_some_and(|w| w.starts_with('[')) {
                let end = rest.iter().position(|w| w.ends_with(']'));
                rest = end.map_or(&[][..], |end| &rest[end + 1..]);
            }
            if rest.len() >= 2 {
                entries.push(SourceEntry {
                    types: vec![kind.to_owned()],
                    uris: vec![rest[0].to_owned()],
                    suites: vec![rest[1].to_owned()],
                });
            }
        }
    }
    entries
}

fn suite_configured(suite: &str) -> Result<bool> {
    Ok(source_entries()?
        .iter()
        .any(|e| e.has_type("deb") && e.has_suite(suite)))
}

/// Make `apt-get source` able to fetch source packages of `suite`: add a `deb-src` entry for it
/// (on the mirror the system uses for bookworm) when no apt source has one, then refresh the
/// indexes. Needs root only when something must be added.
pub fn ensure_source_suite(suite: &str) -> Result<()> {
    let configured = source_entries()?
        .iter()
        .any(|e| e.has_type("deb-src") && e.has_suite(suite));
    if configured {
        return Ok(());
    }
    require_root(&format!(
        "add a deb-src entry for {suite} (source packages)"
    ))?;
    let mirror = debian_mirror()?;
    let sources = Path::new(SOURCES_DIR).join(format!("pp-{suite}-src.sources"));
    let text = format!(
        "# Added by `cargo xtask` (Private Processing pins): source packages, for `apt-get source`.\n\
         Types: deb-src\nURIs: {mirror}\nSuites: {suite}\nComponents: main\n\
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    );
    fs::write(&sources, text).with_context(|| format!("writing {}", sources.display()))?;
    eprintln!(
        "setup: added apt source entry deb-src {suite} ({})",
        sources.display()
    );
    apt_update()
}

/// Refresh apt's indexes (needs root).
pub fn refresh_indexes(why: &str) -> Result<()> {
    require_root(why)?;
    apt_update()
}

fn debian_mirror() -> Result<String> {
    source_entries()?
        .into_iter()
        .find(|e| e.has_type("deb") && e.has_suite("bookworm"))
        .and_then(|e| e.uris.into_iter().next())
        .context(
            "no apt source serves Debian bookworm; cannot tell which mirror to add suites from",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_types_and_suites() {
        let text = "Types: deb\nURIs: http://m/debian\nSuites: bookworm bookworm-updates\n\
                    Components: main\n\nTypes: deb-src\nURIs: http://m/debian\nSuites: trixie\n\n\
                    Types: deb deb-src\nURIs: http://x\nSuites: sid\nEnabled: no\n";
        let entries = parse_deb822_sources(text);
        assert_eq!(entries.len(), 2);
        assert!(entries[0].has_type("deb") && entries[0].has_suite("bookworm-updates"));
        assert!(!entries[0].has_type("deb-src"));
        assert!(entries[1].has_type("deb-src") && entries[1].has_suite("trixie"));
        assert!(!entries[1].has_type("deb"));
        assert_eq!(entries[1].uris, ["http://m/debian"]);
    }

    #[test]
    fn one_line_types_and_options() {
        let text = "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main\n\
                    deb-src http://m/debian trixie main\n";
        let entries = parse_one_line_sources(text);
        assert_eq!(entries.len(), 2);
        assert!(entries[0].has_type("deb") && entries[0].has_suite("bookworm"));
        assert_eq!(entries[0].uris, ["http://m/debian"]);
        assert!(entries[1].has_type("deb-src") && entries[1].has_suite("trixie"));
    }
}
