//! The SEV-SNP launch digest, computed offline from the same inputs QEMU hands the secure processor.
//!
//! A checked front to the `sev` crate's `snp_calc_launch_digest` (which agrees with
//! `sev-snp-measure`): inputs are validated first so that every failure names what is wrong.
//! Digests for several vCPU counts share their work: the firmware, metadata and kernel-hashes
//! pages (one pass over the kernel) are measured once, then only each count's VMSA pages
//! ([`vmsa_tail`]).

mod vmsa_tail;

use std::fmt;
use std::path::{Path, PathBuf};

use sev::measurement::ovmf::{OVMF, SectionType};
use sev::measurement::snp::{SnpMeasurementArgs, snp_calc_launch_digest};
use sev::measurement::vcpu_types::{CpuType, cpu_sig};
use sev::measurement::vmsa::{GuestFeatures, VMMType, VMSA};
use sev::parser::ByteParser;

/// Length of a launch digest (SHA-384).
pub const DIGEST_LEN: usize = crate::manifest::MEASUREMENT_LEN;
/// The SNP "SNPActive" guest feature, sev-snp-measure's default.
pub const DEFAULT_GUEST_FEATURES: u64 = 0x1;
/// Most vCPUs we measure for (QEMU's SNP VMSA layout is per vCPU; the bound keeps work bounded).
pub const MAX_VCPUS: u32 = 512;

/// How the guest's vCPU model is named: a QEMU CPU model, or CPUID family/model/stepping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VcpuModel {
    /// A QEMU model name such as `EPYC-v4` or `EPYC-Milan`.
    Named(String),
    /// A CPUID signature (`--vcpu-sig`).
    Signature(i32),
    /// Family, model, stepping.
    FamilyModelStepping(i32, i32, i32),
}

/// Everything the launch digest depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureInputs {
    pub ovmf: PathBuf,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub append: Option<String>,
    pub vcpus: u32,
    pub vcpu: VcpuModel,
    pub guest_features: u64,
    /// Only `QEMU` (see [`MeasureError::UnsupportedVmmType`]).
    pub vmm_type: String,
}

/// Why a digest could not be computed.
#[derive(Debug)]
pub enum MeasureError {
    MissingFile { role: &'static str, path: PathBuf },
    InitrdWithoutKernel,
    AppendWithoutKernel,
    VcpuCount(u32),
    UnknownVcpuType(String),
    UnknownVcpuSignature(i32),
    UnsupportedVmmType(String),
    NoSnpMetadata(PathBuf),
    NoKernelHashesTable(PathBuf),
    Calculation(String),
}

impl fmt::Display for MeasureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingFile { role, path } => {
                write!(f, "{role} file {} cannot be read", path.display())
            }
            Self::InitrdWithoutKernel => f.write_str("--initrd needs --kernel"),
            Self::AppendWithoutKernel => f.write_str("--append needs --kernel"),
            Self::VcpuCount(n) => write!(f, "--vcpus must be 1..={MAX_VCPUS}, not {n}"),
            Self::UnknownVcpuType(t) => write!(
                f,
                "unknown vCPU type {t:?} (known: EPYC, EPYC-v1..v4, EPYC-IBPB, EPYC-Rome[-v1..v3], \
                 EPYC-Milan[-v1,-v2], EPYC-Genoa[-v1], EPYC-Turin[-v1,-v2])"
            ),
            Self::UnknownVcpuSignature(s) => write!(
                f,
                "vCPU signature {s:#x} is not a known EPYC generation (Naples, Rome, Milan, Genoa, Turin)"
            ),
            Self::UnsupportedVmmType(t) => write!(
                f,
                "VMM type {t:?} is not supported: only QEMU (for ec2 the sev crate 8.0.0 and \
                 sev-snp-measure 0.0.13 give different digests, so neither can be trusted here)"
            ),
            Self::NoSnpMetadata(p) => write!(
                f,
                "{} is not an OVMF firmware with SEV-SNP metadata",
                p.display()
            ),
            Self::NoKernelHashesTable(p) => write!(
                f,
                "{} has no SNP kernel-hashes table, so a measured -kernel boot is impossible with it \
                 (use the AmdSev firmware from `cargo xtask ovmf`)",
                p.display()
            ),
            Self::Calculation(e) => write!(f, "launch digest calculation failed: {e}"),
        }
    }
}

impl std::error::Error for MeasureError {}

impl MeasureInputs {
    fn check(&self) -> Result<CpuType, MeasureError> {
        readable("firmware", &self.ovmf)?;
        if let Some(k) = &self.kernel {
            readable("kernel", k)?;
        }
        if let Some(i) = &self.initrd {
            readable("initrd", i)?;
        }
        if self.kernel.is_none() && self.initrd.is_some() {
            return Err(MeasureError::InitrdWithoutKernel);
        }
        if self.kernel.is_none() && self.append.is_some() {
            return Err(MeasureError::AppendWithoutKernel);
        }
        let sig = match &self.vcpu {
            VcpuModel::Named(name) => {
                return CpuType::try_from(name.as_str())
                    .map_err(|_| MeasureError::UnknownVcpuType(name.clone()));
            }
            VcpuModel::Signature(sig) => *sig,
            VcpuModel::FamilyModelStepping(f, m, s) => cpu_sig(*f, *m, *s),
        };
        CpuType::try_from(sig).map_err(|_| MeasureError::UnknownVcpuSignature(sig))
    }

    fn vmm(&self) -> Result<VMMType, MeasureError> {
        match self.vmm_type.parse::<VMMType>() {
            Ok(VMMType::QEMU) => Ok(VMMType::QEMU),
            _ => Err(MeasureError::UnsupportedVmmType(self.vmm_type.clone())),
        }
    }
}

fn check_count(vcpus: u32) -> Result<(), MeasureError> {
    if vcpus == 0 || vcpus > MAX_VCPUS {
        return Err(MeasureError::VcpuCount(vcpus));
    }
    Ok(())
}

fn readable(role: &'static str, path: &Path) -> Result<(), MeasureError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        _ => Err(MeasureError::MissingFile {
            role,
            path: path.to_path_buf(),
        }),
    }
}

/// The firmware must carry SEV metadata, and the kernel-hashes section when a kernel is measured.
fn check_firmware(inputs: &MeasureInputs) -> Result<OVMF, MeasureError> {
    let ovmf = OVMF::new(inputs.ovmf.clone())
        .map_err(|_| MeasureError::NoSnpMetadata(inputs.ovmf.clone()))?;
    if ovmf.metadata_items().is_empty() || ovmf.sev_es_reset_eip().is_err() {
        return Err(MeasureError::NoSnpMetadata(inputs.ovmf.clone()));
    }
    if inputs.kernel.is_some()
        && (!ovmf.has_metadata_section(SectionType::SnpKernelHashes)
            || !ovmf.is_sev_hashes_table_supported())
    {
        return Err(MeasureError::NoKernelHashesTable(inputs.ovmf.clone()));
    }
    Ok(ovmf)
}

/// Compute the SNP launch digest for `inputs.vcpus` vCPUs.
pub fn launch_digest(inputs: &MeasureInputs) -> Result<[u8; DIGEST_LEN], MeasureError> {
    let [digest] = launch_digests(inputs, &[inputs.vcpus])?
        .try_into()
        .expect("one count gives one digest");
    Ok(digest)
}

/// Compute the SNP launch digest for each of `vcpu_counts` (`inputs.vcpus` is ignored), in order.
///
/// QEMU adds the VMSA pages last, after every memory page, so the digest of the firmware,
/// metadata and kernel-hashes pages (what the `sev` crate gives for zero vCPUs) is a prefix shared
/// by every count: it is computed once, and each count adds only its VMSA pages.
pub fn launch_digests(
    inputs: &MeasureInputs,
    vcpu_counts: &[u32],
) -> Result<Vec<[u8; DIGEST_LEN]>, MeasureError> {
    let vcpu_type = inputs.check()?;
    for &n in vcpu_counts {
        check_count(n)?;
    }
    let vmm_type = inputs.vmm()?;
    let ovmf = check_firmware(inputs)?;
    let reset_eip = ovmf
        .sev_es_reset_eip()
        .map_err(|_| MeasureError::NoSnpMetadata(inputs.ovmf.clone()))?;
    let guest_features = GuestFeatures::from_bytes_with(&inputs.guest_features.to_le_bytes(), ())
        .map_err(|e| MeasureError::Calculation(e.to_string()))?;
    let args = SnpMeasurementArgs {
        vcpus: 0,
        vcpu_type,
        ovmf_file: inputs.ovmf.clone(),
        guest_features,
        kernel_file: inputs.kernel.clone(),
        initrd_file: inputs.initrd.clone(),
        append: inputs.append.as_deref(),
        ovmf_hash_str: None,
        vmm_type: Some(vmm_type),
    };
    let prefix = snp_calc_launch_digest(args)
        .map_err(|e| MeasureError::Calculation(e.to_string()))
        .and_then(|d| digest_bytes(&d.get_hex_ld()))?;
    vcpu_counts
        .iter()
        .map(|&n| {
            let vmsa = VMSA::new(
                reset_eip.into(),
                vcpu_type,
                vmm_type,
                Some(n.into()),
                guest_features,
            );
            let pages = vmsa
                .pages(n as usize)
                .map_err(|e| MeasureError::Calculation(e.to_string()))?;
            Ok(vmsa_tail::extend(prefix, &pages))
        })
        .collect()
}

fn digest_bytes(hex: &str) -> Result<[u8; DIGEST_LEN], MeasureError> {
    let bytes = hex::decode(hex).map_err(|e| MeasureError::Calculation(e.to_string()))?;
    bytes
        .try_into()
        .map_err(|_| MeasureError::Calculation("digest is not 48 bytes".into()))
}
