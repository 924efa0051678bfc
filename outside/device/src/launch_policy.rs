//! What a logged release requires of an enclave's report besides its measurements, read from the
//! manifest's `launch_policy`: the exact guest policy and the TCB floor per product line.
//!
//! The manifest's `launch_policy` is not covered by its `release_ref` (which names the sources and
//! the image), so an operator could log a copy of a release's manifest with other values and point
//! chosen users at it. Nothing in it is therefore trusted to lower what the device requires:
//!
//! - a manifest without a `launch_policy` (written before it existed) is refused: the device
//!   never verifies a release without a floor;
//! - the guest policy must be exactly the one built into the device,
//!   [`RELEASE_GUEST_POLICY`] (`0x30000`); any other value refuses the release, naming both. A
//!   release that needs another policy needs a device update;
//! - the floor used is the component-wise maximum of the manifest's and the device's built-in
//!   one ([`TcbFloor::AMD_BULLETINS`]): a release can raise the floor, never lower it;
//! - entries for product lines the device does not know (e.g. `Turin`) are ignored, never
//!   trusted: the verifier refuses a VCEK of any product but Milan and Genoa whatever the
//!   manifest says, so such an entry can change nothing, and a newer release that adds a product
//!   line stays usable by older devices;
//! - `Milan` and `Genoa` must both have an entry: the release tooling (`cargo xtask image`)
//!   always writes both, so a manifest without one is malformed or hand-edited and is refused
//!   (failing closed costs nothing here, and the device's own floor would apply anyway).

use anyhow::{Context, Result};
use pp_attestation::TcbVersion;
use pp_verifier::verify::{GuestPolicyRule, ProductLine, RELEASE_GUEST_POLICY, TcbFloor};
use reproducible::{LaunchPolicy, Manifest};

use crate::verify_report::show_tcb;

fn launch_policy(manifest: &Manifest) -> Result<&LaunchPolicy> {
    manifest.launch_policy.as_ref().with_context(|| {
        format!(
            "the release manifest of {} states no launch policy (TCB floor and guest policy); \
             this device refuses releases without one",
            manifest.release_ref
        )
    })
}

/// The floor `launch` states for `product`, if it has an entry.
fn stated(launch: &LaunchPolicy, product: ProductLine) -> Option<TcbVersion> {
    let m = launch.minimum_tcb.get(product.as_str())?;
    Some(TcbVersion::new(m.boot_loader, m.tee, m.snp, m.microcode))
}

/// The TCB floor and the guest-policy rule a report of `manifest`'s release must meet (the rules
/// in the module doc).
pub fn requirements(manifest: &Manifest) -> Result<(TcbFloor, GuestPolicyRule)> {
    let (stated, rule) = stated_requirements(manifest)?;
    Ok((TcbFloor::AMD_BULLETINS.raised_to(&stated), rule))
}

/// The floor and the guest-policy rule exactly as `manifest` states them (not raised to this
/// device's built-in floor), with the same refusals as [`requirements`]. Tamper evidence judges
/// a report against these, so that a floor raised in a later `pp` never turns an honest
/// session into "proven".
pub fn stated_requirements(manifest: &Manifest) -> Result<(TcbFloor, GuestPolicyRule)> {
    let launch = launch_policy(manifest)?;
    let floor = |product: ProductLine| -> Result<TcbVersion> {
        stated(launch, product)
            .with_context(|| format!("the release's TCB floor has no entry for {product}"))
    };
    let stated = TcbFloor {
        milan: floor(ProductLine::Milan)?,
        genoa: floor(ProductLine::Genoa)?,
    };
    let guest_policy = launch
        .guest_policy_value()
        .context("the release's guest policy")?;
    anyhow::ensure!(
        guest_policy == RELEASE_GUEST_POLICY,
        "the release's guest policy {guest_policy:#x} is not the one this device requires \
         ({RELEASE_GUEST_POLICY:#x}): the release is refused"
    );
    let rule = GuestPolicyRule::exact(guest_policy)
        .map_err(|e| anyhow::anyhow!("the release's launch policy is refused: {e}"))?;
    Ok((stated, rule))
}

/// `pp verify-release`'s lines on the manifest's launch policy: the guest policy and the floor per
/// product as stated, what this device uses, and whether it refuses the release.
pub fn describe(manifest: &Manifest) -> Vec<String> {
    let Ok(launch) = launch_policy(manifest) else {
        return vec!["Launch policy: none (this device refuses the release)".to_owned()];
    };
    let mut lines = vec![format!(
        "Launch policy: guest policy {} (this device requires {RELEASE_GUEST_POLICY:#x})",
        launch.guest_policy
    )];
    let used = requirements(manifest).ok().map(|(floor, _)| floor);
    for (name, m) in &launch.minimum_tcb {
        let tcb = TcbVersion::new(m.boot_loader, m.tee, m.snp, m.microcode);
        let note = match (ProductLine::from_name(name), used) {
            (None, _) => "not a product this device verifies: ignored".to_owned(),
            (Some(p), Some(floor)) => {
                format!("this device uses {}", show_tcb(&floor.for_product(p)))
            }
            (Some(_), None) => "see below".to_owned(),
        };
        lines.push(format!("  TCB floor {name}: {} ({note})", show_tcb(&tcb)));
    }
    if let Err(e) = requirements(manifest) {
        lines.push(format!("This device refuses the release: {e:#}"));
    }
    lines
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pp_attestation::Attester;
    use pp_verifier::test_attester::{TestAttester, TestRoot};
    use pp_verifier::verify::{MILAN_MINIMUM_TCB, Policy};
    use reproducible::{Artifact, LaunchPolicy, Measurement, TcbMinimum};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    const MEASUREMENT: [u8; 48] = [0x5C; 48];

    fn minimum(tcb: TcbVersion) -> TcbMinimum {
        TcbMinimum {
            boot_loader: tcb.boot_loader,
            tee: tcb.tee,
            snp: tcb.snp,
            microcode: tcb.microcode,
        }
    }

    /// The launch policy `cargo xtask image` writes (the same constants).
    pub(crate) fn honest_launch() -> LaunchPolicy {
        LaunchPolicy {
            guest_policy: "0x30000".into(),
            minimum_tcb: ProductLine::ALL
                .into_iter()
                .map(|p| {
                    let tcb = TcbFloor::AMD_BULLETINS.for_product(p);
                    (p.as_str().to_string(), minimum(tcb))
                })
                .collect(),
        }
    }

    /// A release manifest with one digest ([`MEASUREMENT`]) and `launch_policy`.
    pub(crate) fn manifest(launch_policy: Option<LaunchPolicy>) -> Manifest {
        let artifact = || Artifact {
            file: "f".into(),
            size: 0,
            sha256: "00".into(),
        };
        Manifest {
            schema: reproducible::SCHEMA.into(),
            image: artifact(),
            components: BTreeMap::new(),
            inputs: BTreeMap::new(),
            toolchain: vec![],
            patched_crates: BTreeMap::new(),
            firmware: BTreeMap::new(),
            measurement: Measurement {
                firmware: artifact(),
                append: String::new(),
                vcpu_type: "EPYC-v4".into(),
                guest_features: "0x1".into(),
                vmm_type: "QEMU".into(),
                qemu_snp_command: String::new(),
                digests: BTreeMap::from([("1".into(), hex::encode(MEASUREMENT))]),
            },
            launch_policy,
            variant: "release".into(),
            release_ref: "ab".repeat(32),
            test_attester_measurement: None,
        }
    }

    fn err(manifest: &Manifest) -> String {
        format!("{:#}", requirements(manifest).unwrap_err())
    }

    #[test]
    fn a_manifest_without_a_launch_policy_is_refused() {
        let text = err(&manifest(None));
        assert!(text.contains("states no launch policy"), "{text}");
        assert!(text.contains(&"ab".repeat(32)), "{text}");
    }

    #[test]
    fn a_floor_missing_milan_or_genoa_is_refused() {
        let mut launch = honest_launch();
        launch.minimum_tcb.remove("Genoa");
        assert!(err(&manifest(Some(launch.clone()))).contains("no entry for Genoa"));
        // A misspelt entry does not stand in for it.
        launch
            .minimum_tcb
            .insert("genoa".into(), minimum(MILAN_MINIMUM_TCB));
        assert!(err(&manifest(Some(launch))).contains("no entry for Genoa"));
    }

    /// A release that adds a product line the device does not know is still usable: the entry
    /// is ignored (and changes nothing), the known floors apply.
    #[test]
    fn unknown_product_lines_in_the_floor_are_ignored() {
        let mut launch = honest_launch();
        launch
            .minimum_tcb
            .insert("Turin".into(), minimum(TcbVersion::new(0, 0, 0, 0)));
        let m = manifest(Some(launch));
        let (floor, _) = requirements(&m).unwrap();
        assert_eq!(floor, TcbFloor::AMD_BULLETINS);
        let lines = describe(&m);
        assert!(
            lines.iter().any(
                |l| l.starts_with("  TCB floor Turin: bl=0,tee=0,snp=0,ucode=0")
                    && l.ends_with("(not a product this device verifies: ignored)")
            ),
            "{lines:?}"
        );
    }

    /// The operator logs a copy of a release's manifest with another guest policy (e.g. without
    /// SMT, or with SINGLE_SOCKET) and points chosen users at it: the device requires its own.
    #[test]
    fn a_guest_policy_other_than_the_devices_is_refused() {
        for policy in ["0x230000", "0x20000", "0x130000"] {
            let mut launch = honest_launch();
            launch.guest_policy = policy.into();
            let m = manifest(Some(launch));
            let text = err(&m);
            assert_eq!(
                text,
                format!(
                    "the release's guest policy {policy} is not the one this device requires \
                     (0x30000): the release is refused"
                )
            );
            let lines = describe(&m);
            assert_eq!(
                lines[0],
                format!("Launch policy: guest policy {policy} (this device requires 0x30000)")
            );
            assert_eq!(
                lines.last().unwrap(),
                &format!("This device refuses the release: {text}")
            );
        }
    }

    #[test]
    fn a_debug_or_malformed_guest_policy_is_refused() {
        let mut launch = honest_launch();
        launch.guest_policy = "0xb0000".into();
        let text = err(&manifest(Some(launch.clone())));
        assert!(
            text.contains("guest policy 0xb0000 is not the one this device requires (0x30000)"),
            "{text}"
        );
        launch.guest_policy = "0x030000".into();
        assert!(err(&manifest(Some(launch))).contains("canonical"));
    }

    #[test]
    fn verify_release_prints_the_launch_policy() {
        let lines = describe(&manifest(Some(honest_launch())));
        assert_eq!(
            lines,
            [
                "Launch policy: guest policy 0x30000 (this device requires 0x30000)",
                "  TCB floor Genoa: bl=7,tee=0,snp=23,ucode=84 (0x5417000000000007) (this device \
                 uses bl=7,tee=0,snp=23,ucode=84 (0x5417000000000007))",
                "  TCB floor Milan: bl=3,tee=0,snp=24,ucode=219 (0xdb18000000000003) (this device \
                 uses bl=3,tee=0,snp=24,ucode=219 (0xdb18000000000003))",
            ]
        );
        assert_eq!(
            describe(&manifest(None)),
            ["Launch policy: none (this device refuses the release)"]
        );
    }

    #[test]
    fn a_release_cannot_lower_the_floor() {
        let mut launch = honest_launch();
        launch
            .minimum_tcb
            .insert("Milan".into(), minimum(TcbVersion::new(0, 0, 0, 0)));
        launch
            .minimum_tcb
            .insert("Genoa".into(), minimum(TcbVersion::new(9, 9, 0x30, 0x60)));
        let (floor, _) = requirements(&manifest(Some(launch))).unwrap();
        assert_eq!(floor.milan, MILAN_MINIMUM_TCB);
        assert_eq!(floor.genoa, TcbVersion::new(9, 9, 0x30, 0x60));
    }

    /// The honest manifest's requirements accept the test attester's reports and refuse one whose
    /// launch TCB is below the floor: the test root is held to the same floor and policy.
    #[test]
    fn the_requirements_verify_test_evidence() {
        let m = manifest(Some(honest_launch()));
        let (floor, rule) = requirements(&m).unwrap();
        let root = Arc::new(TestRoot::generate([9; 32]).unwrap());
        let policy =
            Policy::trusting_test_root(root.ark_der(), m.accepted_measurements().unwrap(), floor)
                .unwrap()
                .with_guest_policy(rule);
        let attester = TestAttester::new(root, MEASUREMENT);
        let data = [0x42; 64];
        // 2026-06-01, inside the test chain's validity.
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_780_272_000);
        let verdict = pp_verifier::verify(&attester.attest(&data).unwrap(), &policy, &data, now);
        assert!(verdict.accepted(), "{verdict}");

        let mut repr = attester.report_repr(&data);
        repr.launch_tcb = TcbVersion::new(4, 0, 0x17, 0xDB);
        let low = attester
            .evidence_for(attester.root.sign_report(&repr))
            .unwrap();
        let verdict = pp_verifier::verify(&low, &policy, &data, now);
        assert!(!verdict.accepted());
        assert!(
            verdict
                .to_string()
                .contains("FAIL  tcb-minimum: launch_tcb.snp 23 below the floor 24 (Milan)"),
            "{verdict}"
        );
    }
}
