//! Our launch digest must equal sev-snp-measure 0.0.13's on the same inputs.
//!
//! `cargo xtask test` installs the pinned sev-snp-measure from PyPI and sets PP_SEV_SNP_MEASURE,
//! PP_GENERIC_OVMF (Debian's generic OVMF: SNP metadata, no kernel-hashes table) and
//! PP_AMDSEV_OVMF (our AmdSev build) and PP_KERNEL (pp.efi); without them these tests say so and
//! pass vacuously, so a plain `cargo test` on a machine without the tool still runs the rest.
//! `shares_one_pass_across_vcpu_counts` needs only PP_GENERIC_OVMF (and uses the others when set).

use std::path::PathBuf;
use std::process::Command;

use reproducible::measure::{
    MeasureError, MeasureInputs, VcpuModel, launch_digest, launch_digests,
};
use sev::measurement::snp::{SnpMeasurementArgs, snp_calc_launch_digest};
use sev::measurement::vcpu_types::CpuType;
use sev::measurement::vmsa::{GuestFeatures, VMMType};
use sev::parser::ByteParser;

struct Env {
    tool: PathBuf,
    generic: PathBuf,
    amdsev: PathBuf,
    kernel: PathBuf,
}

fn env() -> Option<Env> {
    let get = |k| std::env::var_os(k).map(PathBuf::from);
    match (
        get("PP_SEV_SNP_MEASURE"),
        get("PP_GENERIC_OVMF"),
        get("PP_AMDSEV_OVMF"),
        get("PP_KERNEL"),
    ) {
        (Some(tool), Some(generic), Some(amdsev), Some(kernel)) => Some(Env {
            tool,
            generic,
            amdsev,
            kernel,
        }),
        _ => {
            eprintln!(
                "sev-snp-measure comparison not run: use `cargo xtask test` (it sets PP_SEV_SNP_MEASURE etc.)"
            );
            None
        }
    }
}

fn theirs(env: &Env, i: &MeasureInputs) -> String {
    let mut cmd = Command::new(&env.tool);
    cmd.args(["--mode", "snp", "--vcpus", &i.vcpus.to_string()])
        .arg("--ovmf")
        .arg(&i.ovmf);
    match &i.vcpu {
        VcpuModel::Named(t) => cmd.args(["--vcpu-type", t]),
        VcpuModel::Signature(s) => cmd.args(["--vcpu-sig", &s.to_string()]),
        VcpuModel::FamilyModelStepping(f, m, s) => cmd.args([
            "--vcpu-family",
            &f.to_string(),
            "--vcpu-model",
            &m.to_string(),
            "--vcpu-stepping",
            &s.to_string(),
        ]),
    };
    cmd.args([
        "--guest-features",
        &format!("{:#x}", i.guest_features),
        "--vmm-type",
        &i.vmm_type,
    ]);
    if let Some(k) = &i.kernel {
        cmd.arg("--kernel").arg(k);
    }
    if let Some(r) = &i.initrd {
        cmd.arg("--initrd").arg(r);
    }
    if let Some(a) = &i.append {
        cmd.args(["--append", a]);
    }
    let out = cmd.output().expect("sev-snp-measure runs");
    assert!(
        out.status.success(),
        "sev-snp-measure failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}

fn inputs(ovmf: &std::path::Path, vcpus: u32, vcpu: VcpuModel) -> MeasureInputs {
    MeasureInputs {
        ovmf: ovmf.to_path_buf(),
        kernel: None,
        initrd: None,
        append: None,
        vcpus,
        vcpu,
        guest_features: 0x1,
        vmm_type: "QEMU".into(),
    }
}

#[test]
fn equals_sev_snp_measure() {
    let Some(env) = env() else { return };
    let dir = std::env::temp_dir().join(format!("pp-measure-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let initrd = dir.join("initrd.bin");
    std::fs::write(
        &initrd,
        (0..100_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();

    let named = |s: &str| VcpuModel::Named(s.into());
    let mut cases = vec![
        inputs(&env.generic, 1, named("EPYC-v4")),
        inputs(&env.generic, 4, named("EPYC-Milan")),
        inputs(&env.generic, 2, VcpuModel::FamilyModelStepping(25, 17, 0)),
        inputs(&env.generic, 1, VcpuModel::Signature(0xa00f11)),
        inputs(&env.amdsev, 1, named("EPYC-v4")),
        inputs(&env.amdsev, 8, named("EPYC-Genoa")),
    ];
    let mut with_features = inputs(&env.generic, 2, named("EPYC-v4"));
    with_features.guest_features = 0x21;
    cases.push(with_features);
    for (vcpus, append, with_initrd) in [
        (1, None, false),
        (2, Some(""), false),
        (4, Some("env=A=1 -- x"), true),
    ] {
        let mut i = inputs(&env.amdsev, vcpus, named("EPYC-v4"));
        i.kernel = Some(env.kernel.clone());
        i.append = append.map(str::to_owned);
        i.initrd = with_initrd.then(|| initrd.clone());
        cases.push(i);
    }
    for case in &cases {
        let ours = hex::encode(launch_digest(case).unwrap());
        assert_eq!(ours, theirs(&env, case), "inputs: {case:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The `sev` crate's digest computed from scratch for one count (no shared prefix).
fn from_scratch(i: &MeasureInputs, vcpus: u32) -> String {
    let VcpuModel::Named(name) = &i.vcpu else {
        panic!("named vCPU types only here")
    };
    snp_calc_launch_digest(SnpMeasurementArgs {
        vcpus,
        vcpu_type: CpuType::try_from(name.as_str()).unwrap(),
        ovmf_file: i.ovmf.clone(),
        guest_features: GuestFeatures::from_bytes_with(&i.guest_features.to_le_bytes(), ())
            .unwrap(),
        kernel_file: i.kernel.clone(),
        initrd_file: i.initrd.clone(),
        append: i.append.as_deref(),
        ovmf_hash_str: None,
        vmm_type: Some(VMMType::QEMU),
    })
    .unwrap()
    .get_hex_ld()
}

/// Several vCPU counts from one pass (shared prefix, then each count's VMSA pages) give the same
/// digests as the `sev` crate from scratch and as sev-snp-measure, count by count.
#[test]
fn shares_one_pass_across_vcpu_counts() {
    let get = |k| std::env::var_os(k).map(PathBuf::from);
    let Some(generic) = get("PP_GENERIC_OVMF") else {
        eprintln!("shared-pass check not run: set PP_GENERIC_OVMF (`cargo xtask test` does)");
        return;
    };
    let tool = get("PP_SEV_SNP_MEASURE");
    let mut cases = vec![
        inputs(&generic, 1, VcpuModel::Named("EPYC-v4".into())),
        inputs(&generic, 1, VcpuModel::Named("EPYC-Genoa".into())),
    ];
    if let (Some(amdsev), Some(kernel)) = (get("PP_AMDSEV_OVMF"), get("PP_KERNEL")) {
        let mut i = inputs(&amdsev, 1, VcpuModel::Named("EPYC-v4".into()));
        i.kernel = Some(kernel);
        i.append = Some(String::new());
        cases.push(i);
    }
    let counts = [1, 2, 3, 4, 8];
    for case in &cases {
        let ours = launch_digests(case, &counts).unwrap();
        for (n, digest) in counts.iter().zip(&ours) {
            let ours = hex::encode(digest);
            assert_eq!(ours, from_scratch(case, *n), "{n} vCPU, inputs: {case:?}");
            if let Some(tool) = &tool {
                let env = Env {
                    tool: tool.clone(),
                    generic: generic.clone(),
                    amdsev: generic.clone(),
                    kernel: generic.clone(),
                };
                let mut one = case.clone();
                one.vcpus = *n;
                assert_eq!(ours, theirs(&env, &one), "{n} vCPU, inputs: {case:?}");
            }
        }
    }
}

#[test]
fn refuses_what_cannot_be_measured() {
    let Some(env) = env() else { return };
    let mut kernel_on_generic = inputs(&env.generic, 1, VcpuModel::Named("EPYC-v4".into()));
    kernel_on_generic.kernel = Some(env.kernel.clone());
    assert!(matches!(
        launch_digest(&kernel_on_generic),
        Err(MeasureError::NoKernelHashesTable(_))
    ));
}

#[test]
fn refuses_bad_inputs_without_the_tool() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let not_firmware = here.join("Cargo.toml");
    let mut i = inputs(&not_firmware, 1, VcpuModel::Named("EPYC-v4".into()));
    assert!(matches!(
        launch_digest(&i),
        Err(MeasureError::NoSnpMetadata(_))
    ));
    i.vcpu = VcpuModel::Named("EPYC-v9".into());
    assert!(matches!(
        launch_digest(&i),
        Err(MeasureError::UnknownVcpuType(_))
    ));
    i.vcpu = VcpuModel::Signature(0x12345);
    assert!(matches!(
        launch_digest(&i),
        Err(MeasureError::UnknownVcpuSignature(_))
    ));
    i.vcpu = VcpuModel::Named("EPYC-v4".into());
    i.vcpus = 0;
    assert!(matches!(launch_digest(&i), Err(MeasureError::VcpuCount(0))));
    i.vcpus = 1;
    i.vmm_type = "ec2".into();
    assert!(matches!(
        launch_digest(&i),
        Err(MeasureError::UnsupportedVmmType(_))
    ));
    i.vmm_type = "QEMU".into();
    i.ovmf = here.join("no-such-file");
    assert!(matches!(
        launch_digest(&i),
        Err(MeasureError::MissingFile {
            role: "firmware",
            ..
        })
    ));
    i.ovmf = not_firmware;
    i.initrd = Some(here.join("Cargo.toml"));
    assert!(matches!(
        launch_digest(&i),
        Err(MeasureError::InitrdWithoutKernel)
    ));
}
