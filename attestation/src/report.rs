//! The SEV-SNP `ATTESTATION_REPORT` (AMD SEV-SNP ABI specification, publication 56860, table
//! "ATTESTATION_REPORT Structure"): 1184 (`0x4A0`) bytes, all integers little-endian.
//!
//! Two levels, in the style of smoltcp's `wire` module:
//! - [`Report`] is a view over bytes. [`Report::new_checked`] checks the length and the version,
//!   and after that no accessor can panic. It is what the verifier reads the signed bytes from.
//! - [`ReportRepr`] is a plain struct that [`ReportRepr::parse`] fills from a view and
//!   [`ReportRepr::emit`] writes back.
//!
//! The offsets (in [`field`]) were checked against the `sev` crate 8.0.0 decoder, and a test parses
//! an emitted report with it. Reserved areas are not represented: `emit` writes them as zero (the
//! spec says they must be zero) and `parse` ignores them; the signature covers them either way
//! because the verifier checks it over the original bytes, never over a re-encoding.

use crate::tcb::TcbVersion;

/// The length of a report.
pub const REPORT_LEN: usize = 0x4A0;
/// The length of the signed part: bytes `0x000..0x2A0`.
pub const SIGNED_LEN: usize = 0x2A0;
/// The lowest report version this crate reads (ABI 1.51; no CPUID fields).
pub const MIN_VERSION: u32 = 2;
/// The highest report version this crate reads (ABI 1.57 and later; mitigation vectors).
pub const MAX_VERSION: u32 = 5;

/// Guest policy bits (the `POLICY` field, a `u64`).
pub mod policy {
    /// Bits 7:0: the lowest ABI minor version the guest accepts.
    pub const ABI_MINOR_MASK: u64 = 0xFF;
    /// Bits 15:8: the lowest ABI major version the guest accepts.
    pub const ABI_MAJOR_MASK: u64 = 0xFF << 8;
    /// Bit 16: simultaneous multithreading is allowed.
    pub const SMT: u64 = 1 << 16;
    /// Bit 17: reserved, must be one.
    pub const RESERVED_MUST_BE_ONE: u64 = 1 << 17;
    /// Bit 18: a migration agent may be associated with the guest.
    pub const MIGRATE_MA: u64 = 1 << 18;
    /// Bit 19: debugging is allowed (the hypervisor can read and write guest memory).
    pub const DEBUG: u64 = 1 << 19;
    /// Bit 20: the guest may be activated on one socket only.
    pub const SINGLE_SOCKET: u64 = 1 << 20;
}

/// Errors from reading a report. They carry no bytes of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer is not exactly [`REPORT_LEN`] bytes long.
    #[error("an attestation report must be exactly 1184 bytes")]
    BadLength,
    /// The version field is outside [`MIN_VERSION`]..=[`MAX_VERSION`].
    #[error("unsupported attestation report version")]
    UnsupportedVersion,
}

/// Byte ranges of the report's fields. Reserved areas are listed as comments.
pub mod field {
    use core::ops::Range;

    /// A field's byte range.
    pub type Field = Range<usize>;

    pub const VERSION: Field = 0x000..0x004;
    pub const GUEST_SVN: Field = 0x004..0x008;
    pub const POLICY: Field = 0x008..0x010;
    pub const FAMILY_ID: Field = 0x010..0x020;
    pub const IMAGE_ID: Field = 0x020..0x030;
    pub const VMPL: Field = 0x030..0x034;
    pub const SIGNATURE_ALGO: Field = 0x034..0x038;
    pub const CURRENT_TCB: Field = 0x038..0x040;
    pub const PLATFORM_INFO: Field = 0x040..0x048;
    /// Bit 0 `AUTHOR_KEY_EN`, bit 1 `MASK_CHIP_KEY`, bits 4:2 `SIGNING_KEY`.
    pub const KEY_INFO: Field = 0x048..0x04C;
    // 0x04C..0x050 reserved
    pub const REPORT_DATA: Field = 0x050..0x090;
    pub const MEASUREMENT: Field = 0x090..0x0C0;
    pub const HOST_DATA: Field = 0x0C0..0x0E0;
    pub const ID_KEY_DIGEST: Field = 0x0E0..0x110;
    pub const AUTHOR_KEY_DIGEST: Field = 0x110..0x140;
    pub const REPORT_ID: Field = 0x140..0x160;
    pub const REPORT_ID_MA: Field = 0x160..0x180;
    pub const REPORTED_TCB: Field = 0x180..0x188;
    /// Version 3 and later; zero before.
    pub const CPUID_FAM_ID: Field = 0x188..0x189;
    pub const CPUID_MOD_ID: Field = 0x189..0x18A;
    pub const CPUID_STEP: Field = 0x18A..0x18B;
    // 0x18B..0x1A0 reserved
    pub const CHIP_ID: Field = 0x1A0..0x1E0;
    pub const COMMITTED_TCB: Field = 0x1E0..0x1E8;
    pub const CURRENT_BUILD: Field = 0x1E8..0x1E9;
    pub const CURRENT_MINOR: Field = 0x1E9..0x1EA;
    pub const CURRENT_MAJOR: Field = 0x1EA..0x1EB;
    // 0x1EB reserved
    pub const COMMITTED_BUILD: Field = 0x1EC..0x1ED;
    pub const COMMITTED_MINOR: Field = 0x1ED..0x1EE;
    pub const COMMITTED_MAJOR: Field = 0x1EE..0x1EF;
    // 0x1EF reserved
    pub const LAUNCH_TCB: Field = 0x1F0..0x1F8;
    /// Version 5 and later; zero before.
    pub const LAUNCH_MIT_VECTOR: Field = 0x1F8..0x200;
    pub const CURRENT_MIT_VECTOR: Field = 0x200..0x208;
    // 0x208..0x2A0 reserved
    /// ECDSA P-384 `r`, little-endian, zero-padded to 72 bytes.
    pub const SIGNATURE_R: Field = 0x2A0..0x2E8;
    /// ECDSA P-384 `s`, little-endian, zero-padded to 72 bytes.
    pub const SIGNATURE_S: Field = 0x2E8..0x330;
    // 0x330..0x4A0 reserved
    /// The bytes the signature covers.
    pub const SIGNED: Field = 0x000..super::SIGNED_LEN;
}

/// The `SIGNATURE_ALGO` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureAlgo {
    /// 1: ECDSA on P-384 with SHA-384.
    EcdsaP384Sha384,
    /// Any other value.
    Unknown(u32),
}

impl From<u32> for SignatureAlgo {
    fn from(value: u32) -> Self {
        match value {
            1 => Self::EcdsaP384Sha384,
            other => Self::Unknown(other),
        }
    }
}

impl From<SignatureAlgo> for u32 {
    fn from(value: SignatureAlgo) -> Self {
        match value {
            SignatureAlgo::EcdsaP384Sha384 => 1,
            SignatureAlgo::Unknown(other) => other,
        }
    }
}

/// The key that signed the report (`KEY_INFO` bits 4:2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigningKey {
    /// 0: the VCEK.
    Vcek,
    /// 1: the VLEK.
    Vlek,
    /// 7: the report is not signed.
    None,
    /// Any other value.
    Unknown(u8),
}

impl SigningKey {
    /// Reads bits 4:2 of `KEY_INFO`.
    pub fn from_key_info(key_info: u32) -> Self {
        match (key_info >> 2) & 0b111 {
            0 => Self::Vcek,
            1 => Self::Vlek,
            7 => Self::None,
            // The mask keeps the value below 8.
            other => Self::Unknown(other as u8),
        }
    }
}

/// The report signature as it is on the wire: `r` and `s` little-endian, zero-padded to 72 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReportSignature {
    /// `r`, little-endian.
    pub r: [u8; 72],
    /// `s`, little-endian.
    pub s: [u8; 72],
}

impl ReportSignature {
    /// From the big-endian 48-byte scalars that P-384 ECDSA libraries use.
    pub fn from_p384_be(r: &[u8; 48], s: &[u8; 48]) -> Self {
        fn le(be: &[u8; 48]) -> [u8; 72] {
            let mut out = [0; 72];
            for (dst, src) in out.iter_mut().zip(be.iter().rev()) {
                *dst = *src;
            }
            out
        }
        Self { r: le(r), s: le(s) }
    }

    /// The big-endian 48-byte scalars, or `None` if the padding (bytes 48..72) is not zero.
    pub fn to_p384_be(&self) -> Option<([u8; 48], [u8; 48])> {
        fn be(le: &[u8; 72]) -> Option<[u8; 48]> {
            let (value, padding) = le.split_at(48);
            if padding.iter().any(|b| *b != 0) {
                return None;
            }
            let mut out = [0; 48];
            for (dst, src) in out.iter_mut().zip(value.iter().rev()) {
                *dst = *src;
            }
            Some(out)
        }
        Some((be(&self.r)?, be(&self.s)?))
    }
}

/// A checked view over the bytes of an attestation report.
#[derive(Debug, Clone)]
pub struct Report<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Report<T> {
    /// Checks that `buffer` is exactly [`REPORT_LEN`] bytes and that the version is supported.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let report = Self { buffer };
        report.check_len()?;
        if !(MIN_VERSION..=MAX_VERSION).contains(&report.version()) {
            return Err(WireError::UnsupportedVersion);
        }
        Ok(report)
    }

    /// `Ok` if the buffer is exactly [`REPORT_LEN`] bytes long.
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() == REPORT_LEN {
            Ok(())
        } else {
            Err(WireError::BadLength)
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole report.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The bytes the signature covers (`0x000..0x2A0`).
    pub fn signed_bytes(&self) -> &[u8] {
        self.buffer.as_ref().get(field::SIGNED).unwrap_or(&[])
    }

    // Reads never panic: `get` returns `None` rather than panicking, and the length was checked
    // by `new_checked`, so the zero fallback is never taken for a checked view.
    fn array<const N: usize>(&self, field: field::Field) -> [u8; N] {
        let mut out = [0; N];
        if let Some(src) = self.buffer.as_ref().get(field)
            && src.len() == N
        {
            out.copy_from_slice(src);
        }
        out
    }

    fn u8_at(&self, field: field::Field) -> u8 {
        self.array::<1>(field)[0]
    }

    fn u32_at(&self, field: field::Field) -> u32 {
        u32::from_le_bytes(self.array(field))
    }

    fn u64_at(&self, field: field::Field) -> u64 {
        u64::from_le_bytes(self.array(field))
    }

    pub fn version(&self) -> u32 {
        self.u32_at(field::VERSION)
    }
    pub fn guest_svn(&self) -> u32 {
        self.u32_at(field::GUEST_SVN)
    }
    /// The guest policy; see [`policy`] for the bits.
    pub fn policy(&self) -> u64 {
        self.u64_at(field::POLICY)
    }
    pub fn family_id(&self) -> [u8; 16] {
        self.array(field::FAMILY_ID)
    }
    pub fn image_id(&self) -> [u8; 16] {
        self.array(field::IMAGE_ID)
    }
    pub fn vmpl(&self) -> u32 {
        self.u32_at(field::VMPL)
    }
    pub fn signature_algo(&self) -> SignatureAlgo {
        self.u32_at(field::SIGNATURE_ALGO).into()
    }
    pub fn current_tcb(&self) -> TcbVersion {
        TcbVersion::from_u64(self.u64_at(field::CURRENT_TCB))
    }
    pub fn platform_info(&self) -> u64 {
        self.u64_at(field::PLATFORM_INFO)
    }
    pub fn key_info(&self) -> u32 {
        self.u32_at(field::KEY_INFO)
    }
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_key_info(self.key_info())
    }
    pub fn report_data(&self) -> [u8; 64] {
        self.array(field::REPORT_DATA)
    }
    pub fn measurement(&self) -> [u8; 48] {
        self.array(field::MEASUREMENT)
    }
    pub fn host_data(&self) -> [u8; 32] {
        self.array(field::HOST_DATA)
    }
    pub fn id_key_digest(&self) -> [u8; 48] {
        self.array(field::ID_KEY_DIGEST)
    }
    pub fn author_key_digest(&self) -> [u8; 48] {
        self.array(field::AUTHOR_KEY_DIGEST)
    }
    pub fn report_id(&self) -> [u8; 32] {
        self.array(field::REPORT_ID)
    }
    pub fn report_id_ma(&self) -> [u8; 32] {
        self.array(field::REPORT_ID_MA)
    }
    /// The TCB the VCEK that signs this report was derived for.
    pub fn reported_tcb(&self) -> TcbVersion {
        TcbVersion::from_u64(self.u64_at(field::REPORTED_TCB))
    }
    pub fn cpuid_fam_id(&self) -> u8 {
        self.u8_at(field::CPUID_FAM_ID)
    }
    pub fn cpuid_mod_id(&self) -> u8 {
        self.u8_at(field::CPUID_MOD_ID)
    }
    pub fn cpuid_step(&self) -> u8 {
        self.u8_at(field::CPUID_STEP)
    }
    pub fn chip_id(&self) -> [u8; 64] {
        self.array(field::CHIP_ID)
    }
    pub fn committed_tcb(&self) -> TcbVersion {
        TcbVersion::from_u64(self.u64_at(field::COMMITTED_TCB))
    }
    pub fn current_build(&self) -> u8 {
        self.u8_at(field::CURRENT_BUILD)
    }
    pub fn current_minor(&self) -> u8 {
        self.u8_at(field::CURRENT_MINOR)
    }
    pub fn current_major(&self) -> u8 {
        self.u8_at(field::CURRENT_MAJOR)
    }
    pub fn committed_build(&self) -> u8 {
        self.u8_at(field::COMMITTED_BUILD)
    }
    pub fn committed_minor(&self) -> u8 {
        self.u8_at(field::COMMITTED_MINOR)
    }
    pub fn committed_major(&self) -> u8 {
        self.u8_at(field::COMMITTED_MAJOR)
    }
    pub fn launch_tcb(&self) -> TcbVersion {
        TcbVersion::from_u64(self.u64_at(field::LAUNCH_TCB))
    }
    pub fn launch_mit_vector(&self) -> u64 {
        self.u64_at(field::LAUNCH_MIT_VECTOR)
    }
    pub fn current_mit_vector(&self) -> u64 {
        self.u64_at(field::CURRENT_MIT_VECTOR)
    }
    pub fn signature(&self) -> ReportSignature {
        ReportSignature {
            r: self.array(field::SIGNATURE_R),
            s: self.array(field::SIGNATURE_S),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Report<T> {
    // Writes never panic either; a write to a short buffer (impossible for a checked view) is
    // dropped.
    fn put(&mut self, field: field::Field, value: &[u8]) {
        if let Some(dst) = self.buffer.as_mut().get_mut(field)
            && dst.len() == value.len()
        {
            dst.copy_from_slice(value);
        }
    }

    /// Overwrites the version (tests use it to make malformed reports).
    pub fn set_version(&mut self, value: u32) {
        self.put(field::VERSION, &value.to_le_bytes());
    }
    pub fn set_policy(&mut self, value: u64) {
        self.put(field::POLICY, &value.to_le_bytes());
    }
    pub fn set_report_data(&mut self, value: &[u8; 64]) {
        self.put(field::REPORT_DATA, value);
    }
    pub fn set_measurement(&mut self, value: &[u8; 48]) {
        self.put(field::MEASUREMENT, value);
    }
    pub fn set_signature(&mut self, value: &ReportSignature) {
        self.put(field::SIGNATURE_R, &value.r);
        self.put(field::SIGNATURE_S, &value.s);
    }
}

/// Every field of a report, as plain values.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReportRepr {
    pub version: u32,
    pub guest_svn: u32,
    pub policy: u64,
    pub family_id: [u8; 16],
    pub image_id: [u8; 16],
    pub vmpl: u32,
    pub signature_algo: SignatureAlgo,
    pub current_tcb: TcbVersion,
    pub platform_info: u64,
    pub key_info: u32,
    pub report_data: [u8; 64],
    pub measurement: [u8; 48],
    pub host_data: [u8; 32],
    pub id_key_digest: [u8; 48],
    pub author_key_digest: [u8; 48],
    pub report_id: [u8; 32],
    pub report_id_ma: [u8; 32],
    pub reported_tcb: TcbVersion,
    pub cpuid_fam_id: u8,
    pub cpuid_mod_id: u8,
    pub cpuid_step: u8,
    pub chip_id: [u8; 64],
    pub committed_tcb: TcbVersion,
    pub current_build: u8,
    pub current_minor: u8,
    pub current_major: u8,
    pub committed_build: u8,
    pub committed_minor: u8,
    pub committed_major: u8,
    pub launch_tcb: TcbVersion,
    pub launch_mit_vector: u64,
    pub current_mit_vector: u64,
    pub signature: ReportSignature,
}

impl Default for ReportRepr {
    /// All zero, except the version ([`MAX_VERSION`]) and the signature algorithm (ECDSA P-384).
    fn default() -> Self {
        Self {
            version: MAX_VERSION,
            guest_svn: 0,
            policy: 0,
            family_id: [0; 16],
            image_id: [0; 16],
            vmpl: 0,
            signature_algo: SignatureAlgo::EcdsaP384Sha384,
            current_tcb: TcbVersion::default(),
            platform_info: 0,
            key_info: 0,
            report_data: [0; 64],
            measurement: [0; 48],
            host_data: [0; 32],
            id_key_digest: [0; 48],
            author_key_digest: [0; 48],
            report_id: [0; 32],
            report_id_ma: [0; 32],
            reported_tcb: TcbVersion::default(),
            cpuid_fam_id: 0,
            cpuid_mod_id: 0,
            cpuid_step: 0,
            chip_id: [0; 64],
            committed_tcb: TcbVersion::default(),
            current_build: 0,
            current_minor: 0,
            current_major: 0,
            committed_build: 0,
            committed_minor: 0,
            committed_major: 0,
            launch_tcb: TcbVersion::default(),
            launch_mit_vector: 0,
            current_mit_vector: 0,
            signature: ReportSignature {
                r: [0; 72],
                s: [0; 72],
            },
        }
    }
}

impl ReportRepr {
    /// Reads every field of a checked report.
    pub fn parse<T: AsRef<[u8]>>(report: &Report<T>) -> Result<Self, WireError> {
        report.check_len()?;
        Ok(Self {
            version: report.version(),
            guest_svn: report.guest_svn(),
            policy: report.policy(),
            family_id: report.family_id(),
            image_id: report.image_id(),
            vmpl: report.vmpl(),
            signature_algo: report.signature_algo(),
            current_tcb: report.current_tcb(),
            platform_info: report.platform_info(),
            key_info: report.key_info(),
            report_data: report.report_data(),
            measurement: report.measurement(),
            host_data: report.host_data(),
            id_key_digest: report.id_key_digest(),
            author_key_digest: report.author_key_digest(),
            report_id: report.report_id(),
            report_id_ma: report.report_id_ma(),
            reported_tcb: report.reported_tcb(),
            cpuid_fam_id: report.cpuid_fam_id(),
            cpuid_mod_id: report.cpuid_mod_id(),
            cpuid_step: report.cpuid_step(),
            chip_id: report.chip_id(),
            committed_tcb: report.committed_tcb(),
            current_build: report.current_build(),
            current_minor: report.current_minor(),
            current_major: report.current_major(),
            committed_build: report.committed_build(),
            committed_minor: report.committed_minor(),
            committed_major: report.committed_major(),
            launch_tcb: report.launch_tcb(),
            launch_mit_vector: report.launch_mit_vector(),
            current_mit_vector: report.current_mit_vector(),
            signature: report.signature(),
        })
    }

    /// Writes every field into `buffer`, which must be exactly [`REPORT_LEN`] bytes; reserved
    /// areas are zeroed. The version is written as it is, valid or not.
    pub fn emit(&self, buffer: &mut [u8]) -> Result<(), WireError> {
        let mut report = Report { buffer };
        report.check_len()?;
        report.buffer.fill(0);
        let r = &mut report;
        r.put(field::VERSION, &self.version.to_le_bytes());
        r.put(field::GUEST_SVN, &self.guest_svn.to_le_bytes());
        r.put(field::POLICY, &self.policy.to_le_bytes());
        r.put(field::FAMILY_ID, &self.family_id);
        r.put(field::IMAGE_ID, &self.image_id);
        r.put(field::VMPL, &self.vmpl.to_le_bytes());
        let algo: u32 = self.signature_algo.into();
        r.put(field::SIGNATURE_ALGO, &algo.to_le_bytes());
        r.put(field::CURRENT_TCB, &self.current_tcb.to_u64().to_le_bytes());
        r.put(field::PLATFORM_INFO, &self.platform_info.to_le_bytes());
        r.put(field::KEY_INFO, &self.key_info.to_le_bytes());
        r.put(field::REPORT_DATA, &self.report_data);
        r.put(field::MEASUREMENT, &self.measurement);
        r.put(field::HOST_DATA, &self.host_data);
        r.put(field::ID_KEY_DIGEST, &self.id_key_digest);
        r.put(field::AUTHOR_KEY_DIGEST, &self.author_key_digest);
        r.put(field::REPORT_ID, &self.report_id);
        r.put(field::REPORT_ID_MA, &self.report_id_ma);
        r.put(
            field::REPORTED_TCB,
            &self.reported_tcb.to_u64().to_le_bytes(),
        );
        r.put(field::CPUID_FAM_ID, &[self.cpuid_fam_id]);
        r.put(field::CPUID_MOD_ID, &[self.cpuid_mod_id]);
        r.put(field::CPUID_STEP, &[self.cpuid_step]);
        r.put(field::CHIP_ID, &self.chip_id);
        r.put(
            field::COMMITTED_TCB,
            &self.committed_tcb.to_u64().to_le_bytes(),
        );
        r.put(field::CURRENT_BUILD, &[self.current_build]);
        r.put(field::CURRENT_MINOR, &[self.current_minor]);
        r.put(field::CURRENT_MAJOR, &[self.current_major]);
        r.put(field::COMMITTED_BUILD, &[self.committed_build]);
        r.put(field::COMMITTED_MINOR, &[self.committed_minor]);
        r.put(field::COMMITTED_MAJOR, &[self.committed_major]);
        r.put(field::LAUNCH_TCB, &self.launch_tcb.to_u64().to_le_bytes());
        r.put(
            field::LAUNCH_MIT_VECTOR,
            &self.launch_mit_vector.to_le_bytes(),
        );
        r.put(
            field::CURRENT_MIT_VECTOR,
            &self.current_mit_vector.to_le_bytes(),
        );
        r.set_signature(&self.signature);
        Ok(())
    }

    /// [`ReportRepr::emit`] into a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0; REPORT_LEN];
        // The buffer has the right length, the only thing `emit` checks.
        let _ = self.emit(&mut out);
        out
    }

    /// The signing key named in `KEY_INFO`.
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_key_info(self.key_info)
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
