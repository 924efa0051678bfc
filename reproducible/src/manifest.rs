//! The release manifest: what a release is made of, by hash, and the launch digests it implies.
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

/// Length of an SEV-SNP launch measurement (SHA-384), as the manifest's digests hold it.
pub const MEASUREMENT_LEN: usize = 48;

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
    /// The SEV-SNP launch: the exact QEMU line and the digests an honest enclave reports.
    pub measurement: Measurement,
    /// What a report of this release must show besides the measurement: the exact guest policy
    /// and the lowest TCB per product line. Absent only in manifests written before it existed;
    /// a device refuses such a release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_policy: Option<LaunchPolicy>,
    /// `release` or `test` (a test image carries the test attester and is never trusted by default).
    pub variant: String,
    /// What the enclave's evidence names this release by: sha256 over the `inputs` hashes.
    pub release_ref: String,
    /// Test images only: the measurement their test attester reports (hex). It is not a launch
    /// digest — no hardware measured anything — and only a device that trusts the test root
    /// explicitly ever accepts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_attester_measurement: Option<String>,
}

/// What the SEV-SNP launch digest of this release is computed from, and its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurement {
    /// The AmdSev firmware (with the kernel-hashes table) the digest assumes.
    pub firmware: Artifact,
    /// Kernel command line (QEMU `-append`), measured through the kernel-hashes table.
    pub append: String,
    /// QEMU vCPU model (`-cpu`), which fixes the VMSA's CPUID signature.
    pub vcpu_type: String,
    /// SEV features in the VMSA, as hex (`0x1` = SNP active).
    pub guest_features: String,
    pub vmm_type: String,
    /// The QEMU command line the digests assume (`{vcpus}` stands for the vCPU count).
    pub qemu_snp_command: String,
    /// vCPU count (decimal) → lowercase hex launch digest.
    pub digests: BTreeMap<String, String>,
}

/// What an enclave's SEV-SNP report must show for this release besides the measurement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchPolicy {
    /// The guest `POLICY` the launch sets (`policy=` on QEMU's `sev-snp-guest` object) and every
    /// report must carry exactly, as `0x`-prefixed lowercase hex (e.g. `0x30000`). The launch
    /// digests do not depend on it: the SNP measurement covers the launched pages and VMSAs, not
    /// the policy (sev-snp-measure takes none).
    pub guest_policy: String,
    /// The lowest TCB accepted, by product line (`Genoa`, `Milan`), component by component; the
    /// values and their sources (AMD's security bulletins) are in `pp_verifier`'s `tcb_floor`.
    pub minimum_tcb: BTreeMap<String, TcbMinimum>,
}

/// The minimum TCB for one product line: the lowest security version of each component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcbMinimum {
    pub boot_loader: u8,
    pub tee: u8,
    pub snp: u8,
    pub microcode: u8,
}

impl LaunchPolicy {
    /// The guest policy as a number. Only the canonical spelling (`format!("{:#x}")`) is read, so
    /// one value has one manifest text.
    pub fn guest_policy_value(&self) -> Result<u64> {
        let hex = self
            .guest_policy
            .strip_prefix("0x")
            .context("the guest policy is not 0x-prefixed hex")?;
        let value = u64::from_str_radix(hex, 16).context("the guest policy is not hex")?;
        anyhow::ensure!(
            format!("{value:#x}") == self.guest_policy,
            "the guest policy {:?} is not in canonical form ({value:#x})",
            self.guest_policy
        );
        Ok(value)
    }
}

impl Measurement {
    /// The vCPU count whose digest equals `digest`, if any.
    pub fn vcpus_for(&self, digest: &[u8]) -> Option<u32> {
        let hex = hex::encode(digest);
        self.digests
            .iter()
            .find(|(_, d)| **d == hex)
            .and_then(|(n, _)| n.parse().ok())
    }
}

impl Manifest {
    /// The measurements an enclave of this release may report: the launch digests for every
    /// listed vCPU count, and for a test image its test attester's measurement.
    pub fn accepted_measurements(&self) -> Result<Vec<[u8; MEASUREMENT_LEN]>> {
        let mut out = Vec::new();
        let test = match (&self.test_attester_measurement, self.variant.as_str()) {
            (Some(m), "test") => Some(m),
            (None, _) => None,
            (Some(_), other) => {
                anyhow::bail!("a {other} manifest names a test attester measurement")
            }
        };
        for hex_digest in self.measurement.digests.values().chain(test) {
            let bytes = hex::decode(hex_digest).context("a measurement is not hex")?;
            out.push(
                bytes
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("a measurement is not 48 bytes"))?,
            );
        }
        Ok(out)
    }

    /// The release reference as bytes.
    pub fn release_ref_bytes(&self) -> Result<[u8; 32]> {
        hex::decode(&self.release_ref)
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("release_ref is not 32 bytes of hex")
    }

    /// The manifest as written to `manifest.json`: pretty JSON, fields in declaration order, maps
    /// sorted, one trailing newline — the same bytes for the same release.
    pub fn to_json(&self) -> Result<String> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }

    /// Read and parse a manifest file, naming the file in any error.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        Self::from_json(&text)
            .with_context(|| format!("{} is not a valid release manifest", path.display()))
    }

    /// Parse a manifest, refusing documents of another schema.
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

/// Lowercase hex SHA-256, the form every hash in a manifest takes.
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
            measurement: Measurement {
                firmware: Artifact {
                    file: "OVMF.amdsev.fd".into(),
                    size: 4,
                    sha256: "33".into(),
                },
                append: String::new(),
                vcpu_type: "EPYC-v4".into(),
                guest_features: "0x1".into(),
                vmm_type: "QEMU".into(),
                qemu_snp_command: "qemu-system-x86_64 -smp {vcpus}".into(),
                digests: BTreeMap::from([
                    ("1".into(), "ab".repeat(48)),
                    ("2".into(), "cd".repeat(48)),
                ]),
            },
            launch_policy: Some(LaunchPolicy {
                guest_policy: "0x30000".into(),
                minimum_tcb: BTreeMap::from([
                    (
                        "Milan".into(),
                        TcbMinimum {
                            boot_loader: 3,
                            tee: 0,
                            snp: 24,
                            microcode: 219,
                        },
                    ),
                    (
                        "Genoa".into(),
                        TcbMinimum {
                            boot_loader: 7,
                            tee: 0,
                            snp: 23,
                            microcode: 84,
                        },
                    ),
                ]),
            }),
            variant: "release".into(),
            release_ref: "44".repeat(32),
            test_attester_measurement: None,
        }
    }

    #[test]
    fn launch_policy_round_trips_in_a_fixed_order() {
        let m = sample();
        let json = m.to_json().unwrap();
        let back = Manifest::from_json(&json).unwrap();
        assert_eq!(back.launch_policy, m.launch_policy);
        let launch = back.launch_policy.unwrap();
        assert_eq!(launch.guest_policy_value().unwrap(), 0x30000);
        // Products sorted by name, components in declaration order, after the measurement.
        let at = |needle: &str| json.find(needle).unwrap_or_else(|| panic!("{needle}"));
        assert!(at("\"measurement\"") < at("\"launch_policy\""));
        assert!(at("\"Genoa\"") < at("\"Milan\""));
        assert!(at("\"boot_loader\": 3") < at("\"microcode\": 219"));
    }

    #[test]
    fn a_manifest_without_a_launch_policy_still_reads_and_writes_the_same() {
        let mut m = sample();
        m.launch_policy = None;
        let json = m.to_json().unwrap();
        assert!(!json.contains("launch_policy"));
        let back = Manifest::from_json(&json).unwrap();
        assert_eq!(back.launch_policy, None);
        assert_eq!(back.to_json().unwrap(), json);
    }

    #[test]
    fn only_canonical_guest_policies_are_read() {
        let policy = |s: &str| LaunchPolicy {
            guest_policy: s.into(),
            minimum_tcb: BTreeMap::new(),
        };
        assert_eq!(policy("0x30000").guest_policy_value().unwrap(), 0x30000);
        for bad in [
            "0x030000", "0X30000", "30000", "0x3000g", "0x", "196608", "0x30000 ",
        ] {
            assert!(policy(bad).guest_policy_value().is_err(), "{bad}");
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
    fn finds_the_vcpu_count_of_a_digest() {
        let m = sample().measurement;
        assert_eq!(m.vcpus_for(&[0xcd; 48]), Some(2));
        assert_eq!(m.vcpus_for(&[0xee; 48]), None);
    }

    #[test]
    fn refuses_other_documents() {
        assert!(Manifest::from_json("{}").is_err());
        let json = sample().to_json().unwrap().replace(SCHEMA, "other/1");
        assert!(Manifest::from_json(&json).is_err());
    }
}
