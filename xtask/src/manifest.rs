//! The release manifest of an image build: the paths and pins gathered here, the format and
//! `release_ref` defined by `reproducible::release`.

use std::collections::BTreeMap;

use anyhow::Result;
use pp_verifier::verify::{ProductLine, RELEASE_GUEST_POLICY, TcbFloor};
use reproducible::release::{self, ImageFiles, PatchedCrate, ReleaseParts};
use reproducible::{LaunchPolicy, Manifest, Measurement, PackagePin, TcbMinimum};

use crate::pins::Pins;
use crate::workload::Variant;

/// `release_ref` of the checkout at `root` (what the workload is built with and the manifest
/// records).
pub fn release_ref(root: &std::path::Path) -> Result<String> {
    Ok(release::release_ref(&release::input_hashes(root)?))
}

/// The launch policy every release states: the guest policy the QEMU line sets
/// ([`RELEASE_GUEST_POLICY`]) and the TCB floor from AMD's bulletins ([`TcbFloor::AMD_BULLETINS`],
/// sources next to the constants in `pp_verifier::verify::tcb_floor`), per product line.
pub fn launch_policy() -> LaunchPolicy {
    let minimum_tcb = ProductLine::ALL
        .into_iter()
        .map(|product| {
            let tcb = TcbFloor::AMD_BULLETINS.for_product(product);
            let minimum = TcbMinimum {
                boot_loader: tcb.boot_loader,
                tee: tcb.tee,
                snp: tcb.snp,
                microcode: tcb.microcode,
            };
            (product.as_str().to_string(), minimum)
        })
        .collect();
    LaunchPolicy {
        guest_policy: format!("{RELEASE_GUEST_POLICY:#x}"),
        minimum_tcb,
    }
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
        launch_policy: launch_policy(),
        variant,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launch_policy_is_the_verifier_s_and_the_test_attester_s() {
        let launch = launch_policy();
        assert_eq!(launch.guest_policy, "0x30000");
        assert_eq!(launch.guest_policy_value().unwrap(), RELEASE_GUEST_POLICY);
        // The test image's reports must meet the same policy: the e2e depends on it.
        assert_eq!(
            pp_attestation::test_signer::TEST_GUEST_POLICY,
            RELEASE_GUEST_POLICY
        );
        let names: Vec<_> = launch.minimum_tcb.keys().cloned().collect();
        assert_eq!(names, ["Genoa", "Milan"]);
        let milan = launch.minimum_tcb["Milan"];
        assert_eq!((milan.snp, milan.microcode), (0x18, 0xDB));
        let genoa = launch.minimum_tcb["Genoa"];
        assert_eq!((genoa.snp, genoa.microcode), (0x17, 0x54));
    }
}
