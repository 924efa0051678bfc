//! Our launch digest must equal sev-snp-measure 0.0.13's on the same inputs.
//!
//! `cargo xtask test` installs the pinned sev-snp-measure from PyPI and sets PP_SEV_SNP_MEASURE,
//! PP_GENERIC_OVMF (Debian's generic OVMF: SNP metadata, no kernel-hashes table) and
//! PP_AMDSEV_OVMF (our AmdSev build) and PP_KERNEL (pp.efi); without them these tests say so and
//! pass vacuously, so a plain `cargo test` on a machine without the tool still runs the rest.

use std::path::PathBuf;
use std::process::Command;

use reproducible::measure::{MeasureError, MeasureInputs, VcpuModel, launch_digest};

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
