//! What a logged release requires of an enclave's report besides its measurements, read from the
//! manifest's `launch_policy`: the exact guest policy and the TCB floor per product line.
//!
//! The rules:
//! - a manifest without a `launch_policy` (written before it existed) is refused: the device
//!   never verifies a release without a floor;
//! - the floor must name exactly the product lines the verifier reads (`Genoa`, `Milan`);
//! - the floor used is the component-wise maximum of the manifest's and the device's built-in
//!   one ([`TcbFloor::AMD_BULLETINS`]): a release can raise the floor, never lower it;
//! - the guest policy must be in canonical hex and pass the checks a report's policy always must
//!   (no debug, no migration agent, bit 17 set); every report must then carry it exactly.

use anyhow::{Context, Result};
use pp_attestation::TcbVersion;
use pp_verifier::verify::{GuestPolicyRule, ProductLine, TcbFloor};
use reproducible::Manifest;

/// The TCB floor and the guest-policy rule a report of `manifest`'s release must meet.
pub fn requirements(manifest: &Manifest) -> Result<(TcbFloor, GuestPolicyRule)> {
    let launch = manifest.launch_policy.as_ref().with_context(|| {
        format!(
            "the release manifest of {} states no launch policy (TCB floor and guest policy); \
             this device refuses releases without one",
            manifest.release_ref
        )
    })?;
    for name in launch.minimum_tcb.keys() {
        anyhow::ensure!(
            ProductLine::from_name(name).is_some(),
            "the release's TCB floor names product {name:?}, which this device does not verify"
        );
    }
    let floor = |product: ProductLine| -> Result<TcbVersion> {
        let m = launch
            .minimum_tcb
            .get(product.as_str())
            .with_context(|| format!("the release's TCB floor has no entry for {product}"))?;
        Ok(TcbVersion::new(m.boot_loader, m.tee, m.snp, m.microcode))
    };
    let stated = TcbFloor {
        milan: floor(ProductLine::Milan)?,
        genoa: floor(ProductLine::Genoa)?,
    };
    let guest_policy = launch
        .guest_policy_value()
        .context("the release's guest policy")?;
    let rule = GuestPolicyRule::exact(guest_policy)
        .map_err(|e| anyhow::anyhow!("the release's launch policy is refused: {e}"))?;
    Ok((TcbFloor::AMD_BULLETINS.raised_to(&stated), rule))
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
    fn a_floor_for_unknown_or_missing_products_is_refused() {
        let mut launch = honest_launch();
        launch.minimum_tcb.remove("Genoa");
        assert!(err(&manifest(Some(launch.clone()))).contains("no entry for Genoa"));
        launch
            .minimum_tcb
            .insert("genoa".into(), minimum(MILAN_MINIMUM_TCB));
        assert!(err(&manifest(Some(launch))).contains("product \"genoa\""));
    }

    #[test]
    fn a_debug_or_malformed_guest_policy_is_refused() {
        let mut launch = honest_launch();
        launch.guest_policy = "0xb0000".into();
        let text = err(&manifest(Some(launch.clone())));
        assert!(
            text.contains("guest policy 0xb0000 is not acceptable: guest policy allows debugging"),
            "{text}"
        );
        launch.guest_policy = "0x030000".into();
        assert!(err(&manifest(Some(launch))).contains("canonical"));
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
