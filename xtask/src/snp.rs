//! The SEV-SNP launch of the image: the QEMU command line and the launch digests it implies.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use reproducible::release::{AMDSEV_FIRMWARE_FILE, IMAGE_FILE};
use reproducible::{Artifact, Measurement};

use crate::pins::SnpPins;
use pp_verifier::verify::RELEASE_GUEST_POLICY;

/// The QEMU arguments of an SNP launch of `efi` with `firmware` (AmdSev) and `vcpus` vCPUs.
/// With `kernel-hashes=on` OVMF checks pp.efi, the initrd and the command line against a table
/// that is part of the launch digest. The guest policy is set explicitly to
/// [`RELEASE_GUEST_POLICY`] (`0x30000`, QEMU's default), the value the manifest records and a
/// device requires exactly; the launch digest does not depend on it.
pub fn qemu_args(
    pins: &SnpPins,
    firmware: &str,
    efi: &str,
    append: &str,
    vcpus: &str,
) -> Vec<String> {
    let mem = pins.memory_mib;
    [
        "-accel",
        "kvm",
        "-machine",
        "q35,confidential-guest-support=sev0,memory-backend=ram1,vmport=off",
        "-object",
        &format!("memory-backend-memfd,id=ram1,size={mem}M,share=true,prealloc=false"),
        "-object",
        &format!(
            "sev-snp-guest,id=sev0,policy={RELEASE_GUEST_POLICY:#x},cbitpos={},\
             reduced-phys-bits={},kernel-hashes=on",
            pins.cbitpos, pins.reduced_phys_bits
        ),
        "-cpu",
        &pins.vcpu_type,
        "-smp",
        vcpus,
        "-m",
        &format!("{mem}M"),
        "-bios",
        firmware,
        "-kernel",
        efi,
        "-append",
        append,
        "-netdev",
        "user,id=net0",
        "-device",
        "virtio-net-pci,netdev=net0,disable-legacy=on,iommu_platform=true",
        "-nographic",
        "-no-reboot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The command line as the manifest records it (`{vcpus}` for the vCPU count, files by name).
pub fn command_template(pins: &SnpPins, append: &str) -> String {
    let args = qemu_args(pins, AMDSEV_FIRMWARE_FILE, IMAGE_FILE, append, "{vcpus}");
    shell_line(&args)
}

/// QEMU and `args` as one line a shell reads back as the same words (empty and spaced words
/// quoted).
fn shell_line(args: &[String]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| {
            if a.is_empty() || a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect();
    format!("{} {}", crate::qemu::QEMU, quoted.join(" "))
}

/// Why this host cannot launch an SNP guest, if it cannot.
pub fn host_lacks_snp() -> Option<String> {
    let param =
        std::fs::read_to_string("/sys/module/kvm_amd/parameters/sev_snp").unwrap_or_default();
    if !Path::new("/dev/sev").exists() {
        Some("there is no /dev/sev (no AMD secure processor driver)".into())
    } else if param.trim() != "Y" && param.trim() != "1" {
        Some(
            "kvm_amd does not have SEV-SNP enabled (/sys/module/kvm_amd/parameters/sev_snp)".into(),
        )
    } else {
        None
    }
}

/// `cargo xtask boot --snp`: print and run the measured launch of a release folder.
pub fn boot(
    root: &Path,
    pins: &crate::pins::Pins,
    args: &crate::BootArgs,
    vcpus: u32,
) -> Result<()> {
    let dir = crate::image_dir(root, pins, args)?;
    let efi = crate::qemu::check_image_dir(&dir)?;
    let manifest = reproducible::Manifest::read(&dir.join(reproducible::release::MANIFEST_FILE))?;
    let firmware = match &args.firmware {
        Some(f) => f.clone(),
        None => dir.join(AMDSEV_FIRMWARE_FILE),
    };
    let append = &manifest.measurement.append;
    if args.append != *append {
        eprintln!("boot: --snp uses the manifest's command line {append:?}; --append is ignored");
    }
    let qemu_args = qemu_args(
        &pins.snp,
        &firmware.to_string_lossy(),
        &efi.to_string_lossy(),
        append,
        &vcpus.to_string(),
    );
    let expected = manifest.measurement.digests.get(&vcpus.to_string());
    println!("{}", shell_line(&qemu_args));
    match expected {
        Some(d) => println!("expected launch digest ({vcpus} vCPU): {d}"),
        None => eprintln!(
            "boot: the manifest has no digest for {vcpus} vCPUs; attestation will not match a release"
        ),
    }
    if let Some(why) = host_lacks_snp() {
        anyhow::bail!("this host cannot run an SEV-SNP guest: {why}");
    }
    let status = std::process::Command::new(crate::qemu::QEMU)
        .args(&qemu_args)
        .status()?;
    anyhow::ensure!(status.success(), "QEMU exited with {status}");
    Ok(())
}

/// The manifest's measurement section for the release folder `dir` (holding pp.efi and the
/// AmdSev firmware).
pub fn measurement(pins: &SnpPins, dir: &Path, append: &str) -> Result<Measurement> {
    let mut measurement = Measurement {
        firmware: Artifact::of(&dir.join(AMDSEV_FIRMWARE_FILE), AMDSEV_FIRMWARE_FILE)?,
        append: append.to_string(),
        vcpu_type: pins.vcpu_type.clone(),
        guest_features: pins.guest_features.clone(),
        vmm_type: pins.vmm_type.clone(),
        qemu_snp_command: command_template(pins, append),
        digests: BTreeMap::new(),
    };
    // One pass over the firmware and pp.efi for all counts; each count adds its VMSA pages.
    let digests = measurement
        .launch_digests(dir, &pins.vcpus)
        .context("pins.toml [snp]")?;
    for (vcpus, digest) in pins.vcpus.iter().zip(digests) {
        measurement
            .digests
            .insert(vcpus.to_string(), hex::encode(digest));
    }
    Ok(measurement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launch_sets_the_release_guest_policy() {
        let pins = SnpPins {
            vcpu_type: "EPYC-v4".into(),
            guest_features: "0x1".into(),
            vmm_type: "QEMU".into(),
            vcpus: vec![1],
            memory_mib: 2048,
            cbitpos: 51,
            reduced_phys_bits: 1,
        };
        let line = command_template(&pins, "");
        assert!(
            line.contains(
                "sev-snp-guest,id=sev0,policy=0x30000,cbitpos=51,reduced-phys-bits=1,\
                 kernel-hashes=on"
            ),
            "{line}"
        );
    }
}
