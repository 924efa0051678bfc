//! The GHCB MSR protocol (GHCB spec, AMD 56421, §2.3.1 "GHCB MSR Protocol") and SEV detection.
//!
//! Before a GHCB page exists, the guest talks to the hypervisor through MSR `0xC001_0130`: it
//! writes a request, executes `VMGEXIT`, and reads the response from the same MSR. Bits 11:0
//! (GHCBInfo) say which request or response it is; bits 63:12 (GHCBData) carry its data.
//! This module only encodes requests and checks responses; the `wrmsr`/`VMGEXIT`/`rdmsr` are the
//! caller's. Facts checked against Linux `arch/x86/include/asm/sev-common.h` and
//! `arch/x86/include/asm/msr-index.h`, and edk2 `MdePkg/Include/Register/Amd/Fam17Msr.h`.

use core::fmt;

/// The GHCB MSR (APM vol 2 §15.35, SEV-ES): the GHCB's GPA, or an MSR-protocol message.
pub const GHCB_MSR: u32 = 0xC001_0130;
/// The `SEV_STATUS` MSR (APM vol 2 §15.34.10): which SEV features are active for this guest.
pub const SEV_STATUS_MSR: u32 = 0xC001_0131;

/// Bits 11:0 of the MSR value: the GHCBInfo code.
pub const GHCB_INFO_MASK: u64 = 0xFFF;

/// GHCBInfo codes (GHCB spec §2.3.1, table "GHCB MSR Protocol").
pub mod info {
    pub const SEV_INFO_RESPONSE: u16 = 0x001;
    pub const SEV_INFO_REQUEST: u16 = 0x002;
    pub const CPUID_REQUEST: u16 = 0x004;
    pub const CPUID_RESPONSE: u16 = 0x005;
    pub const AP_RESET_HOLD_REQUEST: u16 = 0x006;
    pub const AP_RESET_HOLD_RESPONSE: u16 = 0x007;
    pub const GHCB_GPA_REGISTER_REQUEST: u16 = 0x012;
    pub const GHCB_GPA_REGISTER_RESPONSE: u16 = 0x013;
    pub const PSC_REQUEST: u16 = 0x014;
    pub const PSC_RESPONSE: u16 = 0x015;
    pub const HV_FEATURES_REQUEST: u16 = 0x080;
    pub const HV_FEATURES_RESPONSE: u16 = 0x081;
    pub const TERMINATION_REQUEST: u16 = 0x100;
}

/// Largest GFN the GHCB GPA registration carries (GHCBData bits 63:12, 52 bits).
const GFN_MAX_52: u64 = (1 << 52) - 1;
/// Largest GFN the MSR page state change carries (GHCBData bits 51:12, 40 bits).
const GFN_MAX_40: u64 = (1 << 40) - 1;

/// A GHCB MSR response that is not the one asked for or reports a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrProtocolError {
    /// GHCBInfo is not the expected response code.
    WrongInfo { expected: u16, found: u16 },
    /// The SEV information response has a minimum version above its maximum.
    BadVersionRange,
    /// The CPUID response is for another register than the one asked for.
    CpuidRegisterMismatch,
    /// The hypervisor registered another GHCB GFN than ours (or refused ours).
    GfnMismatch,
    /// A GFN does not fit its field (52 bits for registration, 40 for page state change).
    GfnTooLarge,
    /// The page state change response carries a nonzero error code.
    PageStateChangeFailed { code: u32 },
}

impl fmt::Display for MsrProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::WrongInfo { .. } => "GHCB MSR response has an unexpected GHCBInfo code",
            Self::BadVersionRange => "GHCB SEV information: minimum protocol version above maximum",
            Self::CpuidRegisterMismatch => "GHCB MSR CPUID response is for another register",
            Self::GfnMismatch => "hypervisor did not register the GHCB at the requested GFN",
            Self::GfnTooLarge => "GFN does not fit the GHCB MSR request field",
            Self::PageStateChangeFailed { .. } => "GHCB MSR page state change failed",
        })
    }
}

/// Checks GHCBInfo and returns the value for its data bits.
fn expect_info(value: u64, expected: u16) -> Result<u64, MsrProtocolError> {
    let found = (value & GHCB_INFO_MASK) as u16;
    if found == expected {
        Ok(value)
    } else {
        Err(MsrProtocolError::WrongInfo { expected, found })
    }
}

/// SEV information request (0x002): asks for the GHCB protocol versions and the C-bit.
pub const fn sev_info_request() -> u64 {
    info::SEV_INFO_REQUEST as u64
}

/// SEV information response (0x001, GHCB spec §2.3.1): the protocol versions the hypervisor
/// speaks, and where it says the C-bit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SevInfo {
    /// GHCBData bits 63:48.
    pub max_version: u16,
    /// GHCBData bits 47:32.
    pub min_version: u16,
    /// GHCBData bits 31:24: the C-bit position (the hypervisor's word; compare with CPUID).
    pub c_bit: u8,
}

impl SevInfo {
    /// Decodes a response; rejects another GHCBInfo or `min_version > max_version`.
    pub fn decode(value: u64) -> Result<Self, MsrProtocolError> {
        let v = expect_info(value, info::SEV_INFO_RESPONSE)?;
        let info = Self {
            max_version: (v >> 48) as u16,
            min_version: (v >> 32) as u16,
            c_bit: (v >> 24) as u8,
        };
        if info.min_version > info.max_version {
            return Err(MsrProtocolError::BadVersionRange);
        }
        Ok(info)
    }

    /// Whether `version` is within the hypervisor's range. SNP needs version 2.
    pub const fn supports(&self, version: u16) -> bool {
        self.min_version <= version && version <= self.max_version
    }
}

/// Which CPUID output register an MSR-protocol CPUID request asks for (GHCBData bits 31:30).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CpuidRegister {
    Eax = 0,
    Ebx = 1,
    Ecx = 2,
    Edx = 3,
}

/// CPUID request (0x004): leaf in bits 63:32, register in bits 31:30. The protocol has no
/// subleaf: it is for non-indexed leaves (subleaf 0) only.
pub const fn cpuid_request(leaf: u32, register: CpuidRegister) -> u64 {
    ((leaf as u64) << 32) | ((register as u64) << 30) | info::CPUID_REQUEST as u64
}

/// Decodes a CPUID response (0x005): the value in bits 63:32, after checking that bits 31:30 name
/// the register asked for.
pub fn decode_cpuid_response(value: u64, asked: CpuidRegister) -> Result<u32, MsrProtocolError> {
    let v = expect_info(value, info::CPUID_RESPONSE)?;
    if (v >> 30) & 0x3 != asked as u64 {
        return Err(MsrProtocolError::CpuidRegisterMismatch);
    }
    Ok((v >> 32) as u32)
}

/// AP reset hold request (0x006): park this AP until the hypervisor wakes it.
pub const fn ap_reset_hold_request() -> u64 {
    info::AP_RESET_HOLD_REQUEST as u64
}

/// Decodes an AP reset hold response (0x007): `true` when GHCBData bits 63:12 is nonzero (woken by
/// an INIT-SIPI), `false` when the hypervisor returned for another reason.
pub fn decode_ap_reset_hold_response(value: u64) -> Result<bool, MsrProtocolError> {
    let v = expect_info(value, info::AP_RESET_HOLD_RESPONSE)?;
    Ok(v >> 12 != 0)
}

/// GHCB GPA registration request (0x012, GHCB spec §2.3.1, SNP only): the GHCB's GFN in bits
/// 63:12. SNP requires it before the first GHCB-page `VMGEXIT`.
pub fn ghcb_gpa_register_request(gfn: u64) -> Result<u64, MsrProtocolError> {
    if gfn > GFN_MAX_52 {
        return Err(MsrProtocolError::GfnTooLarge);
    }
    Ok((gfn << 12) | info::GHCB_GPA_REGISTER_REQUEST as u64)
}

/// Checks a GHCB GPA registration response (0x013): it must echo `gfn`. Any other GFN (the spec's
/// all-ones "not accepted" included) is an error.
pub fn decode_ghcb_gpa_register_response(value: u64, gfn: u64) -> Result<(), MsrProtocolError> {
    let v = expect_info(value, info::GHCB_GPA_REGISTER_RESPONSE)?;
    if v >> 12 != gfn {
        return Err(MsrProtocolError::GfnMismatch);
    }
    Ok(())
}

/// Page state change operation of the MSR protocol (GHCBData bits 55:52). PSMASH and UNSMASH exist
/// only in the GHCB-page request (see `super::psc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PscMsrOp {
    /// Assign the page to the guest (private).
    Private = 1,
    /// Make the page shared with the hypervisor.
    Shared = 2,
}

/// SNP page state change request (0x014): operation in bits 55:52, GFN in bits 51:12; one 4K page.
pub fn psc_request(gfn: u64, op: PscMsrOp) -> Result<u64, MsrProtocolError> {
    if gfn > GFN_MAX_40 {
        return Err(MsrProtocolError::GfnTooLarge);
    }
    Ok(((op as u64) << 52) | (gfn << 12) | info::PSC_REQUEST as u64)
}

/// Checks a page state change response (0x015): error code in bits 63:32, 0 = success.
pub fn decode_psc_response(value: u64) -> Result<(), MsrProtocolError> {
    let v = expect_info(value, info::PSC_RESPONSE)?;
    match (v >> 32) as u32 {
        0 => Ok(()),
        code => Err(MsrProtocolError::PageStateChangeFailed { code }),
    }
}

/// Hypervisor feature support request (0x080, GHCB protocol version 2).
pub const fn hv_features_request() -> u64 {
    info::HV_FEATURES_REQUEST as u64
}

/// The hypervisor's feature bitmap (response 0x081, GHCBData bits 63:12; GHCB spec §2.3.1 and
/// "Hypervisor Feature Support").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvFeatures(pub u64);

impl HvFeatures {
    /// Bit 0: SEV-SNP.
    pub const SNP: u64 = 1 << 0;
    /// Bit 1: SEV-SNP AP creation NAE event.
    pub const SNP_AP_CREATION: u64 = 1 << 1;
    /// Bit 2: SEV-SNP restricted injection.
    pub const RESTRICTED_INJECTION: u64 = 1 << 2;
    /// Bit 3: SEV-SNP restricted injection timer support.
    pub const RESTRICTED_INJECTION_TIMER: u64 = 1 << 3;

    /// Decodes a response (0x081).
    pub fn decode(value: u64) -> Result<Self, MsrProtocolError> {
        let v = expect_info(value, info::HV_FEATURES_RESPONSE)?;
        Ok(Self(v >> 12))
    }
    pub const fn snp(self) -> bool {
        self.0 & Self::SNP != 0
    }
    pub const fn snp_ap_creation(self) -> bool {
        self.0 & Self::SNP_AP_CREATION != 0
    }
    pub const fn restricted_injection(self) -> bool {
        self.0 & Self::RESTRICTED_INJECTION != 0
    }
    pub const fn restricted_injection_timer(self) -> bool {
        self.0 & Self::RESTRICTED_INJECTION_TIMER != 0
    }
}

/// A termination reason (GHCB spec §2.3.1, request 0x100): a reason code set in bits 15:12 and a
/// code in bits 23:16. Set 0 is the spec's; sets 1..=0xF are for the guest to define.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TerminationReason {
    /// 4 bits; higher bits are dropped on encoding.
    pub set: u8,
    pub code: u8,
}

impl TerminationReason {
    /// Set 0, code 0: general termination request.
    pub const GENERAL: Self = Self { set: 0, code: 0 };
    /// Set 0, code 1: the GHCB protocol version range is not supported.
    pub const PROTOCOL_UNSUPPORTED: Self = Self { set: 0, code: 1 };
    /// Set 0, code 2: an SEV-SNP feature the guest needs is not supported.
    pub const SNP_UNSUPPORTED: Self = Self { set: 0, code: 2 };

    /// Our own reason code set ("pp"). Not in any spec: these codes are this project's.
    pub const PP_SET: u8 = 1;
    /// pp: the SNP CPUID page failed its checks.
    pub const PP_CPUID_PAGE: Self = Self { set: 1, code: 0 };
    /// pp: a GHCB-page `VMGEXIT` answered with an error.
    pub const PP_GHCB_RESPONSE: Self = Self { set: 1, code: 1 };
    /// pp: a #VC exception with an exit code the guest does not handle.
    pub const PP_UNHANDLED_VC: Self = Self { set: 1, code: 2 };
    /// pp: a page state change failed.
    pub const PP_PAGE_STATE_CHANGE: Self = Self { set: 1, code: 3 };
    /// pp: an SNP guest request failed.
    pub const PP_GUEST_REQUEST: Self = Self { set: 1, code: 4 };
    /// pp: the guest-message sequence number would overflow (VMPCK must not be reused).
    pub const PP_SEQUENCE_OVERFLOW: Self = Self { set: 1, code: 5 };
    /// pp: the hypervisor did not register the GHCB GPA.
    pub const PP_GHCB_REGISTRATION: Self = Self { set: 1, code: 6 };
    /// pp: no trustworthy hardware entropy (RDSEED/RDRAND fault, run dry or fail their health
    /// tests), or a #VC for RDRAND/RDSEED.
    pub const PP_ENTROPY: Self = Self { set: 1, code: 7 };
    /// pp: a host-supplied ACPI table failed its checks.
    pub const PP_ACPI: Self = Self { set: 1, code: 8 };

    /// The MSR value of a termination request (0x100).
    pub const fn request(self) -> u64 {
        (((self.set & 0xF) as u64) << 12)
            | ((self.code as u64) << 16)
            | info::TERMINATION_REQUEST as u64
    }
}

/// The `SEV_STATUS` MSR (APM vol 2 §15.34.10; Linux `msr-index.h` `MSR_AMD64_SNP_*`): bit n
/// set = feature active for this guest. Read-only for the guest, not interceptable under SEV-ES.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SevStatus(pub u64);

impl SevStatus {
    pub const SEV: u64 = 1 << 0;
    pub const SEV_ES: u64 = 1 << 1;
    pub const SNP: u64 = 1 << 2;
    pub const VTOM: u64 = 1 << 3;
    pub const REFLECT_VC: u64 = 1 << 4;
    pub const RESTRICTED_INJECTION: u64 = 1 << 5;
    pub const ALTERNATE_INJECTION: u64 = 1 << 6;
    pub const DEBUG_SWAP: u64 = 1 << 7;
    pub const PREVENT_HOST_IBS: u64 = 1 << 8;
    pub const BTB_ISOLATION: u64 = 1 << 9;
    pub const VMPL_SSS: u64 = 1 << 10;
    pub const SECURE_TSC: u64 = 1 << 11;
    pub const VMGEXIT_PARAMETER: u64 = 1 << 12;
    pub const IBS_VIRTUALIZATION: u64 = 1 << 14;
    pub const VMSA_REG_PROTECTION: u64 = 1 << 16;
    pub const SMT_PROTECTION: u64 = 1 << 17;

    /// Whether every bit of `mask` is set.
    pub const fn has(self, mask: u64) -> bool {
        self.0 & mask == mask
    }
    pub const fn sev(self) -> bool {
        self.has(Self::SEV)
    }
    pub const fn sev_es(self) -> bool {
        self.has(Self::SEV_ES)
    }
    pub const fn snp(self) -> bool {
        self.has(Self::SNP)
    }
}

/// CPUID leaf 0x8000_001F, "AMD memory encryption" (APM vol 3 Appendix E, CPUID Fn8000_001F).
pub const MEMORY_ENCRYPTION_LEAF: u32 = 0x8000_001F;

/// What CPUID 0x8000_001F says the processor supports (not what is active: see [`SevStatus`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEncryptionInfo {
    /// EAX bit 0.
    pub sme: bool,
    /// EAX bit 1.
    pub sev: bool,
    /// EAX bit 3.
    pub sev_es: bool,
    /// EAX bit 4.
    pub snp: bool,
    /// EBX bits 5:0: the C-bit position in page table entries.
    pub c_bit: u8,
    /// EBX bits 11:6: how many physical address bits are lost when memory encryption is on.
    pub phys_addr_reduction: u8,
    /// EBX bits 15:12: the number of VMPLs.
    pub num_vmpls: u8,
}

impl MemoryEncryptionInfo {
    /// Decodes EAX and EBX of the leaf.
    pub const fn from_cpuid(eax: u32, ebx: u32) -> Self {
        Self {
            sme: eax & 1 != 0,
            sev: eax & (1 << 1) != 0,
            sev_es: eax & (1 << 3) != 0,
            snp: eax & (1 << 4) != 0,
            c_bit: (ebx & 0x3F) as u8,
            phys_addr_reduction: ((ebx >> 6) & 0x3F) as u8,
            num_vmpls: ((ebx >> 12) & 0xF) as u8,
        }
    }
}

/// Which SEV mode the guest runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SevLevel {
    /// No memory encryption active.
    None,
    Sev,
    SevEs,
    SevSnp,
}

/// The result of [`detect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detected {
    pub level: SevLevel,
    /// The C-bit position, when SEV is active.
    pub c_bit: Option<u8>,
    /// The `SEV_STATUS` value (zero when SEV is not active).
    pub status: SevStatus,
}

impl Detected {
    const NONE: Self = Self {
        level: SevLevel::None,
        c_bit: None,
        status: SevStatus(0),
    };

    /// `1 << c_bit`: the bit to set in page table entries for encrypted pages; 0 without SEV.
    pub const fn c_bit_mask(&self) -> u64 {
        match self.c_bit {
            Some(bit) => 1u64 << (bit & 63),
            None => 0,
        }
    }
}

/// Facts from CPUID and `SEV_STATUS` that do not fit together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectError {
    /// 0x8000_0000 EAX says leaf 0x8000_001F exists, but no value was given for it.
    MissingLeaf,
    /// CPUID says SEV is supported, but no `SEV_STATUS` value was given.
    MissingStatus,
    /// `SEV_STATUS` says SEV is active but CPUID says SEV is not supported.
    ActiveButUnsupported,
    /// `SEV_STATUS` has SEV-ES or SNP set without SEV, or SNP without SEV-ES.
    InconsistentStatus,
    /// `SEV_STATUS` reports SEV-ES or SNP active but CPUID 0x8000_001F does not list it.
    FeatureNotInCpuid,
    /// SEV is active but the C-bit position is outside 32..=51.
    CBitOutOfRange { c_bit: u8 },
}

impl fmt::Display for DetectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingLeaf => "CPUID leaf 0x8000001F is in range but was not given",
            Self::MissingStatus => "CPUID reports SEV support but SEV_STATUS was not given",
            Self::ActiveButUnsupported => "SEV_STATUS reports SEV active but CPUID does not",
            Self::InconsistentStatus => {
                "SEV_STATUS bits are inconsistent (SNP/SEV-ES without SEV-ES/SEV)"
            }
            Self::FeatureNotInCpuid => {
                "SEV_STATUS reports a feature CPUID 0x8000001F does not list"
            }
            Self::CBitOutOfRange { .. } => "C-bit position outside 32..=51",
        })
    }
}

/// Says whether and how SEV is active, from CPUID 0x8000_0000 EAX (`max_ext_leaf`), CPUID
/// 0x8000_001F (`[eax, ebx, ecx, edx]`, `None` when out of range) and `SEV_STATUS`.
///
/// The caller must read `SEV_STATUS` only when CPUID says SEV is supported (the MSR does not exist
/// elsewhere and `rdmsr` would fault), and pass `None` otherwise. Inconsistent facts are errors,
/// because a hypervisor that lies about CPUID (it can, for plain SEV and SEV-ES) must not talk
/// the guest into running unencrypted.
pub fn detect(
    max_ext_leaf: u32,
    leaf_8000001f: Option<[u32; 4]>,
    sev_status: Option<u64>,
) -> Result<Detected, DetectError> {
    let status = SevStatus(sev_status.unwrap_or(0));
    let none = Detected::NONE;
    let leaf = if max_ext_leaf >= MEMORY_ENCRYPTION_LEAF {
        Some(leaf_8000001f.ok_or(DetectError::MissingLeaf)?)
    } else {
        None
    };
    let info = leaf.map(|[eax, ebx, _, _]| MemoryEncryptionInfo::from_cpuid(eax, ebx));
    let Some(info) = info.filter(|i| i.sev) else {
        return if status.0 & (SevStatus::SEV | SevStatus::SEV_ES | SevStatus::SNP) != 0 {
            Err(DetectError::ActiveButUnsupported)
        } else {
            Ok(none)
        };
    };
    if sev_status.is_none() {
        return Err(DetectError::MissingStatus);
    }
    if (status.sev_es() && !status.sev()) || (status.snp() && !status.sev_es()) {
        return Err(DetectError::InconsistentStatus);
    }
    if !status.sev() {
        return Ok(none);
    }
    if (status.sev_es() && !info.sev_es) || (status.snp() && !info.snp) {
        return Err(DetectError::FeatureNotInCpuid);
    }
    if !(32..=51).contains(&info.c_bit) {
        return Err(DetectError::CBitOutOfRange { c_bit: info.c_bit });
    }
    let level = if status.snp() {
        SevLevel::SevSnp
    } else if status.sev_es() {
        SevLevel::SevEs
    } else {
        SevLevel::Sev
    };
    Ok(Detected {
        level,
        c_bit: Some(info.c_bit),
        status,
    })
}

#[cfg(test)]
#[path = "msr_tests.rs"]
mod tests;
