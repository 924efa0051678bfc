//! `pins.toml`: every outside input of the build, pinned by version and hash, read in one place.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The whole pin file.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Pins {
    pub apt: AptPins,
    /// Registry crates whose source we copy and edit at build time.
    #[serde(rename = "crate")]
    pub crates: Vec<CratePin>,
    pub snp: SnpPins,
    pub python: PythonPins,
}

/// Python tools the tests compare against, by exact version.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PythonPins {
    pub sev_snp_measure: String,
}

/// The SEV-SNP launch parameters that enter the launch digest.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SnpPins {
    /// QEMU `-cpu` model; fixes the CPUID signature in each VMSA.
    pub vcpu_type: String,
    /// VMSA SEV features, hex.
    pub guest_features: String,
    pub vmm_type: String,
    /// vCPU counts the manifest gives digests for.
    pub vcpus: Vec<u32>,
    pub memory_mib: u32,
    pub cbitpos: u32,
    pub reduced_phys_bits: u32,
}

/// Debian packages and the extra archive suites they come from.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AptPins {
    /// Suites added to apt's sources when missing (same mirror as the system's `bookworm`).
    pub suites: Vec<SuitePin>,
    /// Build inputs: they shape the image, and the release manifest lists them.
    pub package: Vec<AptPackage>,
    /// Services the tests and the local stack run (the shared spent-token store): installed by
    /// `setup` like the build inputs, but not build inputs, so not in the release manifest.
    #[serde(default)]
    pub service: Vec<AptPackage>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SuitePin {
    pub name: String,
    /// apt pin priority; below 500 so nothing is upgraded from it by accident.
    pub priority: u32,
}

/// One Debian package at one exact version.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AptPackage {
    pub name: String,
    pub version: String,
    /// sha256 of the .deb as the archive's index lists it.
    pub sha256: String,
    /// Suite to install from (`-t`), when not the default one.
    #[serde(default)]
    pub suite: Option<String>,
}

/// A crates.io crate pinned by the checksum its registry index records.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CratePin {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

impl Pins {
    pub fn load(root: &Path) -> Result<Self> {
        let path = root.join("pins.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn crate_pin(&self, name: &str) -> Result<&CratePin> {
        self.crates
            .iter()
            .find(|c| c.name == name)
            .with_context(|| format!("pins.toml has no [[crate]] named {name}"))
    }

    pub fn apt_package(&self, name: &str) -> Result<&AptPackage> {
        self.apt
            .package
            .iter()
            .find(|p| p.name == name)
            .with_context(|| format!("pins.toml has no [[apt.package]] named {name}"))
    }
}
