use super::*;

/// A report whose every field holds a different, recognisable value.
fn sample() -> ReportRepr {
    fn fill<const N: usize>(start: u8) -> [u8; N] {
        core::array::from_fn(|i| start.wrapping_add(i as u8))
    }
    ReportRepr {
        version: 5,
        guest_svn: 0x0102_0304,
        policy: policy::RESERVED_MUST_BE_ONE | policy::SMT | 0x0100,
        family_id: fill(0x10),
        image_id: fill(0x20),
        vmpl: 0,
        signature_algo: SignatureAlgo::EcdsaP384Sha384,
        current_tcb: TcbVersion::new(1, 2, 3, 4),
        platform_info: 0x0000_0000_0000_0003,
        key_info: 0,
        report_data: fill(0x30),
        measurement: fill(0x70),
        host_data: fill(0xA0),
        id_key_digest: fill(0xB0),
        author_key_digest: fill(0xC0),
        report_id: fill(0xD0),
        report_id_ma: fill(0xE0),
        reported_tcb: TcbVersion::new(5, 6, 7, 8),
        cpuid_fam_id: 0x19,
        cpuid_mod_id: 0x01,
        cpuid_step: 0x01,
        chip_id: fill(0x40),
        committed_tcb: TcbVersion::new(9, 10, 11, 12),
        current_build: 21,
        current_minor: 55,
        current_major: 1,
        committed_build: 20,
        committed_minor: 54,
        committed_major: 1,
        launch_tcb: TcbVersion::new(13, 14, 15, 16),
        launch_mit_vector: 0x1111,
        current_mit_vector: 0x2222,
        signature: ReportSignature {
            r: fill(0x01),
            s: fill(0x81),
        },
    }
}

#[test]
fn repr_round_trips() {
    let repr = sample();
    let bytes = repr.to_bytes();
    assert_eq!(bytes.len(), REPORT_LEN);
    let view = Report::new_checked(&bytes[..]).unwrap();
    assert_eq!(ReportRepr::parse(&view).unwrap(), repr);
    // And bytes -> repr -> bytes, for bytes whose reserved areas are zero.
    let again = ReportRepr::parse(&view).unwrap().to_bytes();
    assert_eq!(again, bytes);
}

#[test]
fn fields_sit_at_the_spec_offsets() {
    let repr = sample();
    let b = repr.to_bytes();
    // Offsets from the ABI spec's ATTESTATION_REPORT table, written out as numbers on purpose.
    assert_eq!(&b[0x000..0x004], &5u32.to_le_bytes());
    assert_eq!(&b[0x004..0x008], &0x0102_0304u32.to_le_bytes());
    assert_eq!(&b[0x008..0x010], &repr.policy.to_le_bytes());
    assert_eq!(b[0x010], 0x10);
    assert_eq!(b[0x020], 0x20);
    assert_eq!(&b[0x034..0x038], &1u32.to_le_bytes());
    assert_eq!(&b[0x038..0x040], &[1, 2, 0, 0, 0, 0, 3, 4]);
    assert_eq!(b[0x040], 3);
    assert_eq!(&b[0x050..0x090], &repr.report_data);
    assert_eq!(&b[0x090..0x0C0], &repr.measurement);
    assert_eq!(b[0x0C0], 0xA0);
    assert_eq!(b[0x0E0], 0xB0);
    assert_eq!(b[0x110], 0xC0);
    assert_eq!(b[0x140], 0xD0);
    assert_eq!(b[0x160], 0xE0);
    assert_eq!(&b[0x180..0x188], &[5, 6, 0, 0, 0, 0, 7, 8]);
    assert_eq!(&b[0x188..0x18B], &[0x19, 0x01, 0x01]);
    assert_eq!(&b[0x1A0..0x1E0], &repr.chip_id);
    assert_eq!(&b[0x1E0..0x1E8], &[9, 10, 0, 0, 0, 0, 11, 12]);
    assert_eq!(&b[0x1E8..0x1F0], &[21, 55, 1, 0, 20, 54, 1, 0]);
    assert_eq!(&b[0x1F0..0x1F8], &[13, 14, 0, 0, 0, 0, 15, 16]);
    assert_eq!(&b[0x1F8..0x200], &0x1111u64.to_le_bytes());
    assert_eq!(&b[0x200..0x208], &0x2222u64.to_le_bytes());
    assert_eq!(&b[0x2A0..0x2E8], &repr.signature.r);
    assert_eq!(&b[0x2E8..0x330], &repr.signature.s);
    // Reserved areas stay zero.
    for range in [
        0x04C..0x050,
        0x18B..0x1A0,
        0x1EB..0x1EC,
        0x1EF..0x1F0,
        0x208..0x2A0,
        0x330..0x4A0,
    ] {
        assert!(b[range].iter().all(|x| *x == 0));
    }
}

#[test]
fn new_checked_rejects_bad_length_and_version() {
    let bytes = sample().to_bytes();
    assert_eq!(
        Report::new_checked(&bytes[..REPORT_LEN - 1]).err(),
        Some(WireError::BadLength)
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        Report::new_checked(&longer[..]).err(),
        Some(WireError::BadLength)
    );
    assert_eq!(
        Report::new_checked(&[][..]).err(),
        Some(WireError::BadLength)
    );
    for version in [0, 1, 6, u32::MAX] {
        let mut repr = sample();
        repr.version = version;
        assert_eq!(
            Report::new_checked(repr.to_bytes()).err(),
            Some(WireError::UnsupportedVersion),
            "version {version}"
        );
    }
    for version in MIN_VERSION..=MAX_VERSION {
        let mut repr = sample();
        repr.version = version;
        assert!(Report::new_checked(repr.to_bytes()).is_ok());
    }
}

#[test]
fn emit_needs_the_exact_length() {
    let mut short = [0u8; 100];
    assert_eq!(sample().emit(&mut short), Err(WireError::BadLength));
}

#[test]
fn setters_write_in_place() {
    let mut bytes = sample().to_bytes();
    let mut view = Report::new_checked(&mut bytes[..]).unwrap();
    view.set_measurement(&[0xEE; 48]);
    view.set_report_data(&[0xDD; 64]);
    view.set_policy(policy::DEBUG);
    view.set_version(1);
    assert_eq!(view.measurement(), [0xEE; 48]);
    assert_eq!(view.report_data(), [0xDD; 64]);
    assert_eq!(view.policy(), policy::DEBUG);
    assert_eq!(view.version(), 1);
}

#[test]
fn signature_scalars_are_little_endian_and_padded() {
    let r: [u8; 48] = core::array::from_fn(|i| i as u8 + 1);
    let s: [u8; 48] = core::array::from_fn(|i| 200 - i as u8);
    let sig = ReportSignature::from_p384_be(&r, &s);
    assert_eq!(sig.r[0], 48);
    assert_eq!(sig.r[47], 1);
    assert!(sig.r[48..].iter().all(|b| *b == 0));
    assert_eq!(sig.to_p384_be(), Some((r, s)));
    let mut padded = sig;
    padded.s[71] = 1;
    assert_eq!(padded.to_p384_be(), None);
}

#[test]
fn enums_keep_unknown_values() {
    assert_eq!(SignatureAlgo::from(1), SignatureAlgo::EcdsaP384Sha384);
    assert_eq!(SignatureAlgo::from(2), SignatureAlgo::Unknown(2));
    assert_eq!(u32::from(SignatureAlgo::Unknown(9)), 9);
    assert_eq!(SigningKey::from_key_info(0), SigningKey::Vcek);
    assert_eq!(SigningKey::from_key_info(1 << 2), SigningKey::Vlek);
    assert_eq!(SigningKey::from_key_info(7 << 2), SigningKey::None);
    assert_eq!(
        SigningKey::from_key_info(3 << 2 | 0b11),
        SigningKey::Unknown(3)
    );
}

/// The `sev` crate's own decoder reads our bytes to the same values: an independent check of the
/// offsets.
#[test]
fn sev_crate_reads_the_same_fields() {
    use sev::firmware::guest::AttestationReport;
    use sev::parser::ByteParser;

    let repr = sample();
    let theirs = AttestationReport::from_bytes(&repr.to_bytes()).unwrap();
    assert_eq!(theirs.version, repr.version);
    assert_eq!(theirs.guest_svn, repr.guest_svn);
    assert_eq!(u64::from(theirs.policy), repr.policy);
    assert_eq!(theirs.family_id, repr.family_id);
    assert_eq!(theirs.image_id, repr.image_id);
    assert_eq!(theirs.vmpl, repr.vmpl);
    assert_eq!(theirs.sig_algo, 1);
    assert_eq!(u64::from(theirs.plat_info), repr.platform_info);
    assert_eq!(theirs.report_data, repr.report_data);
    assert_eq!(theirs.measurement, repr.measurement);
    assert_eq!(theirs.host_data, repr.host_data);
    assert_eq!(theirs.id_key_digest, repr.id_key_digest);
    assert_eq!(theirs.author_key_digest, repr.author_key_digest);
    assert_eq!(theirs.report_id, repr.report_id);
    assert_eq!(theirs.report_id_ma, repr.report_id_ma);
    assert_eq!(theirs.cpuid_fam_id, Some(repr.cpuid_fam_id));
    assert_eq!(theirs.cpuid_mod_id, Some(repr.cpuid_mod_id));
    assert_eq!(theirs.cpuid_step, Some(repr.cpuid_step));
    assert_eq!(theirs.chip_id, repr.chip_id);
    assert_eq!(
        (
            theirs.current.build,
            theirs.current.minor,
            theirs.current.major
        ),
        (21, 55, 1)
    );
    assert_eq!(
        (
            theirs.committed.build,
            theirs.committed.minor,
            theirs.committed.major
        ),
        (20, 54, 1)
    );
    assert_eq!(theirs.launch_mit_vector, Some(repr.launch_mit_vector));
    assert_eq!(theirs.current_mit_vector, Some(repr.current_mit_vector));
    let tcb = |t: &sev::firmware::host::TcbVersion| (t.bootloader, t.tee, t.snp, t.microcode);
    assert_eq!(tcb(&theirs.current_tcb), (1, 2, 3, 4));
    assert_eq!(tcb(&theirs.reported_tcb), (5, 6, 7, 8));
    assert_eq!(tcb(&theirs.committed_tcb), (9, 10, 11, 12));
    assert_eq!(tcb(&theirs.launch_tcb), (13, 14, 15, 16));
    assert_eq!(&theirs.signature.r()[..], &repr.signature.r[..]);
    assert_eq!(&theirs.signature.s()[..], &repr.signature.s[..]);
}
