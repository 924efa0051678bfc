//! The release manifest of an image build: the paths and pins gathered here, the format and
//! `release_ref` defined by `reproducible::release`.

use std::collections::BTreeMap;

use anyhow::Result;
use reproducible::release::{self, ImageFiles, PatchedCrate, ReleaseParts};
use reproducible::{Manifest, Measurement, PackagePin};

use crate::pins::Pins;
use crate::workload::Variant;

/// `release_ref` of the checkout at `root` (what the workload is built with and the manifest
/// records).
pub fn release_ref(root: &std::path::Path) -> Result<String> {
    Ok(release::release_ref(&release::input_hashes(root)?))
}

/// Assemble the manifest of one build from its files, the input hashes it was built with, the
/// pins and the measured launch.
pub fn for_image(
    inputs: BTreeMap<String, String>,
    pins: &Pins,
    files: ImageFiles<'_>,
    measurement: Measurement,
    variant: Variant,
) -> Result<Manifest> {
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
        .map(|c| PatchedCrate {
            name: c.name.clone(),
            version: c.version.clone(),
            sha256: c.sha256.clone(),
        })
        .collect();
    let variant = match variant {
        Variant::Release => release::Variant::Release,
        Variant::Test => release::Variant::Test {
            attester_measurement: pp_attestation::test_signer::TEST_MEASUREMENT,
        },
    };
    release::assemble(ReleaseParts {
        files,
        inputs,
        toolchain,
        patched_crates,
        measurement,
        variant,
    })
}
