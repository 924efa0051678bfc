//! Release manifests: what a release is made of, by hash, so an outsider can rebuild and compare.
//!
//! A manifest holds no time, path or host name: two honest builds of the same source produce the
//! same manifest byte for byte.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Identifies this manifest format.
pub const SCHEMA: &str = "pp-release-manifest/1";

/// A file by name, size and sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

impl Artifact {
    /// Hash a file; `name` is what the manifest calls it (never a local path).
    pub fn of(path: &Path, name: &str) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self {
            file: name.to_string(),
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        })
    }
}

/// One pinned Debian package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackagePin {
    pub name: String,
    pub version: String,
    pub deb_sha256: String,
}

/// The release manifest written next to `pp.efi`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    /// The bootable image.
    pub image: Artifact,
    /// Intermediate artifacts, by role (`kernel-library`, `workload-elf`).
    pub components: BTreeMap<String, Artifact>,
    /// sha256 of each build input file, by repository-relative path (pins, lock files).
    pub inputs: BTreeMap<String, String>,
    /// The pinned toolchain and tools.
    pub toolchain: Vec<PackagePin>,
    /// Registry crates built from edited copies, `name-version` → checksum.
    pub patched_crates: BTreeMap<String, String>,
    /// Firmware the boot uses: role → (file, sha256).
    pub firmware: BTreeMap<String, Artifact>,
}

impl Manifest {
    pub fn to_json(&self) -> Result<String> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let manifest: Self = serde_json::from_str(text).context("not a release manifest")?;
        if manifest.schema != SCHEMA {
            anyhow::bail!(
                "manifest schema is {:?}, expected {SCHEMA:?}",
                manifest.schema
            );
        }
        Ok(manifest)
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            schema: SCHEMA.into(),
            image: Artifact {
                file: "pp.efi".into(),
                size: 3,
                sha256: sha256_hex(b"abc"),
            },
            components: BTreeMap::from([(
                "workload-elf".into(),
                Artifact {
                    file: "pp-workload".into(),
                    size: 1,
                    sha256: "00".into(),
                },
            )]),
            inputs: BTreeMap::from([("pins.toml".into(), "11".into())]),
            toolchain: vec![PackagePin {
                name: "rustc-web".into(),
                version: "1".into(),
                deb_sha256: "22".into(),
            }],
            patched_crates: BTreeMap::new(),
            firmware: BTreeMap::new(),
        }
    }

    #[test]
    fn round_trips_and_is_stable() {
        let m = sample();
        let json = m.to_json().unwrap();
        assert_eq!(Manifest::from_json(&json).unwrap(), m);
        assert_eq!(json, Manifest::from_json(&json).unwrap().to_json().unwrap());
        assert_eq!(
            m.image.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn refuses_other_documents() {
        assert!(Manifest::from_json("{}").is_err());
        let json = sample().to_json().unwrap().replace(SCHEMA, "other/1");
        assert!(Manifest::from_json(&json).is_err());
    }
}
