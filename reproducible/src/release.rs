//! What a release is made of and what it is called: the release folder's file names, the build
//! input files, `release_ref`, and the assembly of a [`Manifest`] from files, hashes and pins.
//!
//! This is the format a verifier depends on, so it is defined here rather than in the task
//! runner: the task runner gathers the paths and pins and calls [`assemble`].

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use crate::manifest::{
    Artifact, LaunchPolicy, MEASUREMENT_LEN, Manifest, Measurement, PackagePin, SCHEMA, sha256_hex,
};

/// The bootable image in a release folder.
pub const IMAGE_FILE: &str = "pp.efi";
/// The AmdSev firmware (SNP kernel-hashes table) the launch digests assume.
pub const AMDSEV_FIRMWARE_FILE: &str = "OVMF.amdsev.fd";
/// The generic firmware for boots without SEV.
pub const GENERIC_FIRMWARE_FILE: &str = "OVMF.fd";
/// The manifest in a release folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Build inputs recorded by hash, repository-relative: the pin files and every lock file.
pub const INPUT_FILES: &[&str] = &[
    "pins.toml",
    "ovmf/pins.toml",
    "Cargo.lock",
    "image-builder/Cargo.lock",
    "kernel/builtins/Cargo.lock",
];

/// sha256 of each of [`INPUT_FILES`] under the checkout `root`.
pub fn input_hashes(root: &Path) -> Result<BTreeMap<String, String>> {
    INPUT_FILES
        .iter()
        .map(|rel| Ok((rel.to_string(), Artifact::of(&root.join(rel), rel)?.sha256)))
        .collect()
}

/// The release reference the enclave puts in its evidence: sha256 over the lines
/// `"{sha256}  {file}\n"` of the input hashes in file-name order. It names the source
/// configuration (pins and lock files) without depending on the image's own bytes, so it can be
/// built into the image.
pub fn release_ref(inputs: &BTreeMap<String, String>) -> String {
    let mut text = String::new();
    for (file, sha) in inputs {
        text.push_str(&format!("{sha}  {file}\n"));
    }
    sha256_hex(text.as_bytes())
}

/// A registry crate built from an edited copy, by the checksum its registry index records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchedCrate {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// Which image a manifest describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variant {
    /// The release image: attests with SEV-SNP hardware only.
    Release,
    /// The test image: carries the test attester, which reports `attester_measurement`.
    Test {
        attester_measurement: [u8; MEASUREMENT_LEN],
    },
}

/// The files of one image build (local paths; the manifest records them by name only).
#[derive(Debug, Clone, Copy)]
pub struct ImageFiles<'a> {
    pub efi: &'a Path,
    /// The Hermit kernel static library (`libhermit.a`).
    pub kernel_lib: &'a Path,
    pub workload_elf: &'a Path,
    /// The model weights blob embedded in the loader.
    pub weights: &'a Path,
    /// The generic (non-SEV) firmware.
    pub generic_firmware: &'a Path,
}

/// Everything a manifest is assembled from, as plain data.
#[derive(Debug, Clone)]
pub struct ReleaseParts<'a> {
    pub files: ImageFiles<'a>,
    /// [`input_hashes`] of the checkout the image was built from.
    pub inputs: BTreeMap<String, String>,
    /// The pinned toolchain and tools.
    pub toolchain: Vec<PackagePin>,
    pub patched_crates: Vec<PatchedCrate>,
    /// The launch measurement section (digests already computed).
    pub measurement: Measurement,
    /// The exact guest policy and the TCB floor a report of this release must meet.
    pub launch_policy: LaunchPolicy,
    pub variant: Variant,
}

/// Hash the image files and assemble the manifest; `release_ref` is derived from `inputs`.
pub fn assemble(parts: ReleaseParts<'_>) -> Result<Manifest> {
    let ReleaseParts {
        files,
        inputs,
        toolchain,
        patched_crates,
        measurement,
        launch_policy,
        variant,
    } = parts;
    let patched_crates = patched_crates
        .into_iter()
        .map(|c| (format!("{}-{}", c.name, c.version), c.sha256))
        .collect();
    // The firmware the non-SEV boot uses; the AmdSev firmware is in the measurement section.
    let firmware = BTreeMap::from([(
        "ovmf-generic".to_string(),
        Artifact::of(files.generic_firmware, GENERIC_FIRMWARE_FILE)?,
    )]);
    let (variant, test_attester_measurement) = match variant {
        Variant::Release => ("release", None),
        Variant::Test {
            attester_measurement,
        } => ("test", Some(hex::encode(attester_measurement))),
    };
    Ok(Manifest {
        schema: SCHEMA.to_string(),
        image: Artifact::of(files.efi, IMAGE_FILE)?,
        components: BTreeMap::from([
            (
                "kernel-library".to_string(),
                Artifact::of(files.kernel_lib, "libhermit.a")?,
            ),
            (
                "workload-elf".to_string(),
                Artifact::of(files.workload_elf, "pp-workload")?,
            ),
            (
                "weights-blob".to_string(),
                Artifact::of(files.weights, "weights.bin")?,
            ),
        ]),
        release_ref: release_ref(&inputs),
        inputs,
        toolchain,
        patched_crates,
        firmware,
        measurement,
        launch_policy: Some(launch_policy),
        variant: variant.to_string(),
        test_attester_measurement,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_ref_is_the_hash_of_the_input_lines() {
        let inputs = BTreeMap::from([
            ("b.lock".to_string(), "22".to_string()),
            ("a.toml".to_string(), "11".to_string()),
        ]);
        assert_eq!(
            release_ref(&inputs),
            sha256_hex(b"11  a.toml\n22  b.lock\n")
        );
    }

    /// The manifest of fixed files and pins, byte for byte: any change here changes what
    /// verifiers read and what a release is called.
    #[test]
    fn assembles_the_same_bytes() {
        let dir = std::env::temp_dir().join(format!("pp-release-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, body: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, body).unwrap();
            p
        };
        let (efi, lib, elf, weights, fw) = (
            file("a.efi", b"efi"),
            file("lib.a", b"lib"),
            file("elf", b"elf"),
            file("w", b"w"),
            file("fw", b"fw"),
        );
        let measurement = Measurement {
            firmware: Artifact {
                file: AMDSEV_FIRMWARE_FILE.into(),
                size: 1,
                sha256: "aa".into(),
            },
            append: String::new(),
            vcpu_type: "EPYC-v4".into(),
            guest_features: "0x1".into(),
            vmm_type: "QEMU".into(),
            qemu_snp_command: "q -smp {vcpus}".into(),
            digests: BTreeMap::from([("1".into(), "bb".into())]),
        };
        let manifest = assemble(ReleaseParts {
            files: ImageFiles {
                efi: &efi,
                kernel_lib: &lib,
                workload_elf: &elf,
                weights: &weights,
                generic_firmware: &fw,
            },
            inputs: BTreeMap::from([("pins.toml".into(), "11".into())]),
            toolchain: vec![PackagePin {
                name: "rustc-web".into(),
                version: "1".into(),
                deb_sha256: "22".into(),
            }],
            patched_crates: vec![PatchedCrate {
                name: "ring".into(),
                version: "0.17.14".into(),
                sha256: "33".into(),
            }],
            measurement,
            launch_policy: LaunchPolicy {
                guest_policy: "0x30000".into(),
                minimum_tcb: BTreeMap::from([(
                    "Milan".into(),
                    crate::manifest::TcbMinimum {
                        boot_loader: 3,
                        tee: 0,
                        snp: 24,
                        microcode: 219,
                    },
                )]),
            },
            variant: Variant::Test {
                attester_measurement: [0xab; MEASUREMENT_LEN],
            },
        })
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let json = manifest.to_json().unwrap();
        assert_eq!(
            sha256_hex(json.as_bytes()),
            "f51f65dc14536d51bdad42fc58735808829cddc6bdad3b61b29bba9223fc7e2a",
            "{json}"
        );
    }
}
