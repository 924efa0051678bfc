//! Tests of `msr.rs`, values worked out from the GHCB specification.

use super::*;
use MsrProtocolError::*;
use std::string::ToString;

#[test]
fn sev_info() {
    assert_eq!(sev_info_request(), 0x002);
    // max 2, min 1, C-bit 51 (0x33).
    let info = SevInfo::decode(0x0002_0001_3300_0001).unwrap();
    assert_eq!((info.max_version, info.min_version, info.c_bit), (2, 1, 51));
    assert!(info.supports(2) && info.supports(1) && !info.supports(3));
    let wrong = SevInfo::decode(0x0002_0001_3300_0002);
    assert!(matches!(wrong, Err(WrongInfo { found: 2, .. })));
    assert_eq!(SevInfo::decode(0x0001_0002_3300_0001), Err(BadVersionRange));
}

#[test]
fn cpuid() {
    use CpuidRegister::*;
    assert_eq!(cpuid_request(0x8000_001F, Ebx), 0x8000_001F_4000_0004);
    assert_eq!(cpuid_request(0x0000_0001, Eax), 0x0000_0001_0000_0004);
    assert_eq!(cpuid_request(0x0000_0007, Edx), 0x0000_0007_C000_0004);
    assert_eq!(cpuid_request(0x4000_0000, Ecx), 0x4000_0000_8000_0004);
    assert_eq!(decode_cpuid_response(0x0000_0073_4000_0005, Ebx), Ok(0x73));
    let mismatch = decode_cpuid_response(0x0000_0073_8000_0005, Ebx);
    assert_eq!(mismatch, Err(CpuidRegisterMismatch));
    let wrong = decode_cpuid_response(0x0000_0073_4000_0004, Ebx);
    assert!(matches!(wrong, Err(WrongInfo { expected: 5, .. })));
}

#[test]
fn ap_reset_hold() {
    assert_eq!(ap_reset_hold_request(), 0x006);
    assert_eq!(decode_ap_reset_hold_response(0x007), Ok(false));
    assert_eq!(decode_ap_reset_hold_response(0x1007), Ok(true));
    assert!(decode_ap_reset_hold_response(0x1006).is_err());
}

#[test]
fn ghcb_gpa_registration() {
    assert_eq!(ghcb_gpa_register_request(0x12345), Ok(0x1234_5012));
    assert_eq!(ghcb_gpa_register_request(1 << 52), Err(GfnTooLarge));
    assert_eq!(
        decode_ghcb_gpa_register_response(0x1234_5013, 0x12345),
        Ok(())
    );
    let other = decode_ghcb_gpa_register_response(0x1234_6013, 0x12345);
    assert_eq!(other, Err(GfnMismatch));
    // All-ones GFN: "not accepted".
    let refused = decode_ghcb_gpa_register_response(0xFFFF_FFFF_FFFF_F013, 0x12345);
    assert_eq!(refused, Err(GfnMismatch));
    assert!(decode_ghcb_gpa_register_response(0x1234_5012, 0x12345).is_err());
}

#[test]
fn page_state_change() {
    assert_eq!(
        psc_request(0x12345, PscMsrOp::Shared),
        Ok(0x0020_0000_1234_5014)
    );
    let max = psc_request(0xFF_FFFF_FFFF, PscMsrOp::Private);
    assert_eq!(max, Ok(0x001F_FFFF_FFFF_F014));
    assert_eq!(psc_request(1 << 40, PscMsrOp::Private), Err(GfnTooLarge));
    assert_eq!(decode_psc_response(0x0000_0000_0000_0015), Ok(()));
    let failed = decode_psc_response(0x0000_0003_0000_0015);
    assert_eq!(failed, Err(PageStateChangeFailed { code: 3 }));
    assert!(decode_psc_response(0x14).is_err());
}

#[test]
fn hv_features() {
    assert_eq!(hv_features_request(), 0x080);
    // Bits 0, 1 and 3 of GHCBData: 0b1011 << 12.
    let f = HvFeatures::decode(0xB081).unwrap();
    assert!(f.snp() && f.snp_ap_creation() && !f.restricted_injection());
    assert!(f.restricted_injection_timer() && f.0 == 0xB);
    assert!(HvFeatures::decode(0xB080).is_err());
}

#[test]
fn termination() {
    for (reason, msr) in [
        (TerminationReason::GENERAL, 0x100),
        (TerminationReason::PROTOCOL_UNSUPPORTED, 0x0001_0100),
        (TerminationReason::SNP_UNSUPPORTED, 0x0002_0100),
        (TerminationReason::PP_CPUID_PAGE, 0x0000_1100),
        (TerminationReason::PP_SEQUENCE_OVERFLOW, 0x0005_1100),
        (TerminationReason::PP_ENTROPY, 0x0007_1100),
        (TerminationReason::PP_ACPI, 0x0008_1100),
        // The set is 4 bits.
        (TerminationReason { set: 17, code: 1 }, 0x0001_1100),
    ] {
        assert_eq!(reason.request(), msr);
    }
}

#[test]
fn sev_status_and_leaf() {
    let s = SevStatus(0b111 | SevStatus::DEBUG_SWAP);
    assert!(s.sev() && s.sev_es() && s.snp() && s.has(SevStatus::DEBUG_SWAP));
    assert!(!s.has(SevStatus::VTOM) && !s.has(SevStatus::SECURE_TSC | SevStatus::SEV));
    // EAX: SME, SEV, SEV-ES, SNP; EBX: C-bit 51, reduction 1, 4 VMPLs.
    let i = MemoryEncryptionInfo::from_cpuid(0b1_1011, (4 << 12) | (1 << 6) | 51);
    assert!(i.sme && i.sev && i.sev_es && i.snp);
    assert_eq!((i.c_bit, i.phys_addr_reduction, i.num_vmpls), (51, 1, 4));
}

const MAX: u32 = 0x8000_0028;
const SNP: Option<[u32; 4]> = Some([0b1_1011, (1 << 6) | 51, 0, 0]);
const ES: Option<[u32; 4]> = Some([0b1010, 51, 0, 0]);
const SEV: Option<[u32; 4]> = Some([0b0010, 51, 0, 0]);
const LOW: Option<[u32; 4]> = Some([0b1_1010, 31, 0, 0]);
const HIGH: Option<[u32; 4]> = Some([0b1_1010, 52, 0, 0]);

#[test]
fn detect_levels() {
    use SevLevel::*;
    let d = detect(MAX, SNP, Some(0b111)).unwrap();
    assert_eq!((d.c_bit, d.c_bit_mask()), (Some(51), 1 << 51));
    for (max, leaf, status, level) in [
        (MAX, SNP, Some(0b111), SevSnp),
        (MAX, SNP, Some(0b11), SevEs),
        (MAX, SNP, Some(0b1), Sev),
        // Supported but not active (a host, or a plain VM on an SEV machine).
        (MAX, SNP, Some(0), None),
        // No leaf, or SEV not supported: no status needed.
        (0x8000_0008, Option::None, Option::None, None),
        (MAX, Some([1, 0, 0, 0]), Option::None, None),
    ] {
        let d = detect(max, leaf, status).unwrap();
        assert_eq!((d.level, d.c_bit.is_some()), (level, level != None));
    }
}

#[test]
fn detect_rejects_inconsistencies() {
    use DetectError::*;
    for (max, leaf, status, err) in [
        (MAX, None, Some(0), MissingLeaf),
        (MAX, SNP, None, MissingStatus),
        (0x8000_0008, None, Some(1), ActiveButUnsupported),
        (MAX, Some([1, 51, 0, 0]), Some(1), ActiveButUnsupported),
        (MAX, SNP, Some(0b101), InconsistentStatus),
        (MAX, SNP, Some(0b010), InconsistentStatus),
        // SEV and SEV-ES in CPUID, not SNP; the status says SNP.
        (MAX, ES, Some(0b111), FeatureNotInCpuid),
        (MAX, SEV, Some(0b11), FeatureNotInCpuid),
        (MAX, LOW, Some(0b111), CBitOutOfRange { c_bit: 31 }),
        (MAX, HIGH, Some(0b1), CBitOutOfRange { c_bit: 52 }),
    ] {
        assert_eq!(detect(max, leaf, status), Err(err));
        assert!(!err.to_string().is_empty());
    }
}
