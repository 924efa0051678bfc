//! The release manifest of an image build.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use reproducible::{Artifact, Manifest, PackagePin, SCHEMA};

use crate::pins::Pins;
use crate::util::sha256_file;

/// Build inputs recorded by hash (repository-relative).
pub const INPUT_FILES: &[&str] = &[
    "pins.toml",
    "Cargo.lock",
    "workload/Cargo.lock",
    "image-builder/Cargo.lock",
    "kernel/builtins/Cargo.lock",
];

pub fn for_image(
    root: &Path,
    pins: &Pins,
    efi: &Path,
    kernel_lib: &Path,
    workload_elf: &Path,
    firmware: &Path,
) -> Result<Manifest> {
    let mut inputs = BTreeMap::new();
    for rel in INPUT_FILES {
        inputs.insert(rel.to_string(), sha256_file(&root.join(rel))?);
    }
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
        ]),
        inputs,
        toolchain,
        patched_crates,
        firmware,
    })
}
