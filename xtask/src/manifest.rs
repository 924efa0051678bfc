//! The release manifest of an image build.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use reproducible::{Artifact, Manifest, Measurement, PackagePin, SCHEMA};

use crate::pins::Pins;
use crate::util::sha256_file;
use crate::workload::Variant;

/// Build inputs recorded by hash (repository-relative).
pub const INPUT_FILES: &[&str] = &[
    "pins.toml",
    "ovmf/pins.toml",
    "Cargo.lock",
    "image-builder/Cargo.lock",
    "kernel/builtins/Cargo.lock",
];

fn input_hashes(root: &Path) -> Result<BTreeMap<String, String>> {
    INPUT_FILES
        .iter()
        .map(|rel| Ok((rel.to_string(), sha256_file(&root.join(rel))?)))
        .collect()
}

/// The release reference the enclave puts in its evidence: sha256 over the input hashes (pins and
/// lock files), so it names the source configuration without depending on the image's own bytes.
pub fn release_ref(root: &Path) -> Result<String> {
    let mut text = String::new();
    for (file, sha) in input_hashes(root)? {
        text.push_str(&format!("{sha}  {file}\n"));
    }
    Ok(reproducible::sha256_hex(text.as_bytes()))
}

/// The files of one image build.
pub struct ImageFiles<'a> {
    pub efi: &'a Path,
    pub kernel_lib: &'a Path,
    pub workload_elf: &'a Path,
    /// The model weights blob embedded in the loader.
    pub weights: &'a Path,
    /// The generic (non-SEV) firmware.
    pub firmware: &'a Path,
}

pub fn for_image(
    root: &Path,
    pins: &Pins,
    files: ImageFiles<'_>,
    measurement: Measurement,
    variant: Variant,
    release_ref: String,
) -> Result<Manifest> {
    let ImageFiles {
        efi,
        kernel_lib,
        workload_elf,
        weights,
        firmware,
    } = files;
    let inputs = input_hashes(root)?;
    let toolchain = pins
        .apt
        .package
        .iter()
        .map(|p| PackagePin {
            name: p.name.clone(),
            version: p.version.clone(),
            deb_sha256: p.sha256.clone(),
        })
        .collect();
    let patched_crates = pins
        .crates
        .iter()
        .map(|c| (format!("{}-{}", c.name, c.version), c.sha256.clone()))
        .collect();
    // The firmware the non-SEV boot uses; the AmdSev firmware joins it with the ovmf/ recipe.
    let firmware = BTreeMap::from([(
        "ovmf-generic".to_string(),
        Artifact::of(firmware, "OVMF.fd")?,
    )]);
    Ok(Manifest {
        schema: SCHEMA.to_string(),
        image: Artifact::of(efi, "pp.efi")?,
        components: BTreeMap::from([
            (
                "kernel-library".to_string(),
                Artifact::of(kernel_lib, "libhermit.a")?,
            ),
            (
                "workload-elf".to_string(),
                Artifact::of(workload_elf, "pp-workload")?,
            ),
            (
                "weights-blob".to_string(),
                Artifact::of(weights, "weights.bin")?,
            ),
        ]),
        inputs,
        toolchain,
        patched_crates,
        firmware,
        measurement,
        variant: variant.name().to_string(),
        release_ref,
        test_attester_measurement: (variant == Variant::Test)
            .then(|| hex::encode(pp_attestation::test_signer::TEST_MEASUREMENT)),
    })
}
