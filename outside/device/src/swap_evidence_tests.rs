//! Swapped-enclave evidence: a genuine test-attester report bound to the logged instance's key
//! configuration but of another measurement is proven; doctored copies, a report under another
//! root, one for another key configuration and one of the logged release itself are not.

use pp_protocol::cdn_index::{CdnIndex, CdnInstance, SCHEMA as INDEX_SCHEMA, instance_id};
use pp_translog::TrustPolicy;
use pp_translog::checkpoint::{ALG_COSIGNATURE_V1, ALG_ED25519, NoteKey, cosignature_line};
use pp_translog::evidence::{Evidence, EvidenceFile, LoggedEntry, SwappedEnclave};
use ring::signature::{Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};

use super::check;
use pp_attestation::TcbVersion;
use pp_verifier::test_attester::TestAttester;
use reproducible::manifest::Manifest;

use crate::test_fixture::{bundle_from, log, manifest, roots, scratch, test_root};

const KEY_CONFIG: &[u8] = b"\x01\x00\x20 the logged instance's key configuration";
/// 2026-06-01, inside the test chain's validity.
const OBSERVED_AT: u64 = 1_780_272_000;
const ORIGIN: &str = "log.pp.test";
const WITNESS: &str = "witness.pp.test";
/// The swapped enclave's measurement: not the logged release's.
const OTHER: [u8; 48] = [0xEE; 48];

struct Fixture {
    file: SwappedEnclave,
    policy: TrustPolicy,
    dir: std::path::PathBuf,
    logged_measurement: [u8; 48],
}

/// How a fixture differs from the honest instance: the session's attester (and the
/// publication's), the manifest logged (and one the file names instead), the key configuration.
struct Setup {
    /// The session's measurement (`None`: the logged one).
    measurement: Option<[u8; 48]>,
    key_config: &'static [u8],
    /// Changes the session's attester (chip, TCB, policy).
    session: fn(&mut TestAttester),
    /// Changes the publication's attester.
    publication: fn(&mut TestAttester),
    /// Changes the logged manifest the file names (logged too, at another index).
    manifest: fn(&mut Manifest),
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            measurement: Some(OTHER),
            key_config: KEY_CONFIG,
            session: |_| {},
            publication: |_| {},
            manifest: |_| {},
        }
    }
}

/// A log with a release manifest and an index listing one instance with [`KEY_CONFIG`] and its
/// publication (from the test attester of root 0, the logged measurement), and the evidence of a
/// session whose report (from the same root) attests `measurement` and `key_config`.
fn fixture(measurement: Option<[u8; 48]>, key_config: &'static [u8]) -> Fixture {
    fixture_with(Setup {
        measurement,
        key_config,
        ..Setup::default()
    })
}

fn fixture_with(setup: Setup) -> Fixture {
    let dir = scratch("swap-evidence");
    let (manifest, logged_measurement, release_ref) = manifest();
    let mut named = Manifest::from_json(std::str::from_utf8(&manifest).unwrap()).unwrap();
    (setup.manifest)(&mut named);
    let named = named.to_json().unwrap().into_bytes();
    let (exporter, nonce) = ([0x11; 32], [0x22; 32]);
    let report_data =
        pp_attestation::report_data_for(&exporter, &nonce, &release_ref, setup.key_config);
    let mut session = TestAttester::new(
        test_root(0),
        setup.measurement.unwrap_or(logged_measurement),
    );
    (setup.session)(&mut session);
    let evidence = bundle_from(&session, &report_data, setup.key_config, release_ref);
    let mut publisher = TestAttester::new(test_root(0), logged_measurement);
    (setup.publication)(&mut publisher);
    let publication = bundle_from(
        &publisher,
        &pp_attestation::publication_report_data(&release_ref, KEY_CONFIG),
        KEY_CONFIG,
        release_ref,
    );
    let key_hash: [u8; 32] = Sha256::digest(KEY_CONFIG).into();
    let index = CdnIndex {
        schema: INDEX_SCHEMA.into(),
        published: OBSERVED_AT,
        gateway_key_config: None,
        instances: vec![CdnInstance {
            id: instance_id(&key_hash),
            key_config_sha256: hex::encode(key_hash),
            evidence_sha256: hex::encode(Sha256::digest(&publication)),
            release_ref: hex::encode(release_ref),
        }],
    }
    .to_vec();
    let mut log = log(&dir);
    log.append(b"{\"schema\":\"other\"}").unwrap();
    let release_index = if named == manifest {
        log.append(&manifest).unwrap()
    } else {
        log.append(&manifest).unwrap();
        log.append(&named).unwrap()
    };
    let index_index = log.append(&index).unwrap();
    let cp = pp_translog::Checkpoint {
        origin: ORIGIN.into(),
        size: log.size(),
        root: log.root_at(log.size()).unwrap(),
    };
    let witness = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
    let cosigned =
        cosignature_line(WITNESS, &witness, cp.body().as_bytes(), OBSERVED_AT - 600).unwrap();
    let policy = TrustPolicy {
        log: NoteKey::new(ORIGIN, ALG_ED25519, *log.public_key()).unwrap(),
        witnesses: vec![
            NoteKey::new(
                WITNESS,
                ALG_COSIGNATURE_V1,
                witness.public_key().as_ref().try_into().unwrap(),
            )
            .unwrap(),
        ],
        threshold: 1,
        max_age_secs: 86_400,
    };
    let entry = |bytes: &[u8], at| LoggedEntry {
        entry: String::from_utf8(bytes.to_vec()).unwrap(),
        log_index: at,
        inclusion_path: log
            .inclusion_proof(at, cp.size)
            .unwrap()
            .iter()
            .map(hex::encode)
            .collect(),
    };
    let file = SwappedEnclave {
        log_vkey: log.vkey(ORIGIN).unwrap(),
        checkpoint: format!("{}{cosigned}", log.checkpoint_note(ORIGIN).unwrap()),
        observed_at: OBSERVED_AT,
        instance: instance_id(&key_hash),
        evidence_hex: hex::encode(&evidence),
        nonce_hex: hex::encode(nonce),
        exporter_hex: hex::encode(exporter),
        publication_hex: hex::encode(&publication),
        index: entry(&index, index_index),
        release: entry(&named, release_index),
    };
    Fixture {
        file,
        policy,
        dir,
        logged_measurement,
    }
}

impl Fixture {
    fn check(&self, file: &SwappedEnclave, root: u8) -> Result<String, String> {
        check(file, &roots(root, &self.dir), &self.policy)
    }
}

/// `hex` with the byte at `at` (a byte offset) changed.
fn flip_byte(hex: &str, at: usize) -> String {
    let mut bytes = hex::decode(hex).unwrap();
    bytes[at] ^= 0x01;
    hex::encode(bytes)
}

#[test]
fn a_swapped_enclave_is_proven_and_names_what_differs() {
    let f = fixture(Some(OTHER), KEY_CONFIG);
    let proven = f.check(&f.file, 0).unwrap();
    assert!(
        proven.starts_with("PROVEN (what this file shows): a genuine SEV-SNP report on chip "),
        "{proven}"
    );
    assert!(
        proven.contains(&format!(
            "the chip logged instance {} was published from",
            f.file.instance
        )),
        "{proven}"
    );
    assert!(
        proven.contains(&format!(
            "shows measurement {}, not the publication's {}",
            hex::encode(OTHER),
            hex::encode(f.logged_measurement)
        )) && proven.contains("another launch than the published one"),
        "{proven}"
    );
    // It claims what is checked, and says what is not.
    assert!(
        proven.contains(
            "Not shown by this file: when the report was made, that the operator's gateway \
             served it, or that the operator (rather than anyone else who ran a guest on chip "
        ) && proven.contains("the nonce and exporter are the ones the device states it drew"),
        "{proven}"
    );
    for claim in ["operator's own chip", "bound to the session's nonce"] {
        assert!(!proven.contains(claim), "{claim}: {proven}");
    }
    assert!(
        proven.contains("revocation not checked: no trust.amd_crls"),
        "{proven}"
    );
    assert!(
        proven.contains(&hex::encode(f.logged_measurement)),
        "{proven}"
    );
    // Through the file's JSON form, as the device writes it.
    let text = EvidenceFile::new(Evidence::SwappedEnclave(Box::new(f.file.clone()))).to_json();
    let Evidence::SwappedEnclave(back) = EvidenceFile::from_json(text.as_bytes()).unwrap().evidence
    else {
        panic!("another kind");
    };
    assert_eq!(f.check(&back, 0).unwrap(), proven);
}

#[test]
fn doctored_copies_are_not_proven() {
    let f = fixture(Some(OTHER), KEY_CONFIG);
    // The bundle: a version byte and the report's 2-byte length, then the report (the
    // measurement at 0x90 in it, REPORT_DATA at 0x50).
    const REPORT: usize = 3;
    type Alter = fn(&mut SwappedEnclave);
    let cases: Vec<(&str, Alter, &str)> = vec![
        (
            "one byte of the report",
            |s| s.evidence_hex = flip_byte(&s.evidence_hex, REPORT + 0x200),
            "not a genuine SEV-SNP report",
        ),
        (
            "the report's measurement",
            |s| s.evidence_hex = flip_byte(&s.evidence_hex, REPORT + 0x90),
            "report-signature",
        ),
        (
            "the nonce",
            |s| s.nonce_hex = flip_byte(&s.nonce_hex, 0),
            "report-data",
        ),
        (
            "the exporter",
            |s| s.exporter_hex = flip_byte(&s.exporter_hex, 31),
            "report-data",
        ),
        (
            "the index's inclusion proof",
            |s| s.index.inclusion_path[0] = flip_byte(&s.index.inclusion_path[0], 0),
            "the CDN index's inclusion proof does not verify",
        ),
        (
            "the release's position",
            |s| s.release.log_index = 0,
            "the release manifest's inclusion proof does not verify",
        ),
        (
            "the checkpoint",
            |s| s.checkpoint = s.checkpoint.replacen("\n3\n", "\n4\n", 1),
            "not one of the configured log",
        ),
        (
            "the instance",
            |s| s.instance = "i-0000000000000000".into(),
            "does not list instance i-0000000000000000",
        ),
        (
            "a time two days after the witness cosigned",
            |s| s.observed_at += 2 * 86_400,
            "not one of the configured log",
        ),
    ];
    for (what, alter, needle) in cases {
        let mut bad = f.file.clone();
        alter(&mut bad);
        assert_ne!(bad, f.file, "{what}: not altered");
        let why = f.check(&bad, 0).unwrap_err();
        assert!(why.contains(needle), "{what}: {why}");
    }
}

#[test]
fn a_report_under_another_root_proves_nothing() {
    let f = fixture(Some(OTHER), KEY_CONFIG);
    let why = f.check(&f.file, 1).unwrap_err();
    assert!(
        why.contains("publication evidence does not verify") && why.contains("ark-trusted"),
        "{why}"
    );
}

#[test]
fn another_key_configuration_or_the_logged_release_proves_nothing() {
    // A genuine report of another key configuration: the gateway routed elsewhere, but nothing
    // ties that enclave to the logged instance.
    let f = fixture(Some(OTHER), b"\x01\x00\x20 some other key configuration");
    let why = f.check(&f.file, 0).unwrap_err();
    assert!(
        why.contains("not the one the logged index lists for instance"),
        "{why}"
    );
    // The logged release's own measurement: nothing differs.
    let f = fixture(None, KEY_CONFIG);
    let why = f.check(&f.file, 0).unwrap_err();
    assert!(why.contains("nothing differs"), "{why}");
}

/// The audit's attack: anyone's SNP guest can bind the instance's public key configuration in
/// its `REPORT_DATA`. A genuine report from another chip does not implicate the operator.
#[test]
fn a_report_from_another_chip_is_not_proven() {
    let f = fixture_with(Setup {
        session: |a| a.chip_id = [0x42; 64],
        ..Setup::default()
    });
    let why = f.check(&f.file, 0).unwrap_err();
    assert!(
        why.starts_with(
            "attestation mismatch, does not implicate the operator: the session's \
             report is from chip 4242"
        ),
        "{why}"
    );
}

/// An honest instance on a TCB the manifest accepts but this checker's built-in floor does not:
/// its publication fails that floor too, so nothing is proven.
#[test]
fn an_honest_session_under_a_raised_floor_is_not_proven() {
    fn older(a: &mut TestAttester) {
        a.tcb = TcbVersion::new(3, 0, 0x17, 0xDB);
    }
    let f = fixture_with(Setup {
        measurement: None,
        session: older,
        publication: older,
        manifest: |m| {
            let floor = m.launch_policy.as_mut().unwrap();
            floor.minimum_tcb.get_mut("Milan").unwrap().snp = 0x17;
        },
        ..Setup::default()
    });
    let why = f.check(&f.file, 0).unwrap_err();
    assert!(
        why.starts_with(
            "attestation mismatch, does not implicate the operator: the instance's \
             publication evidence does not verify"
        ) && why.contains("tcb-minimum"),
        "{why}"
    );
}

/// An honest report paired with another logged manifest of the same `release_ref` (whose
/// measurements differ): the publication does not verify under it, so nothing is proven.
#[test]
fn an_honest_report_with_another_manifest_of_its_release_is_not_proven() {
    let f = fixture_with(Setup {
        measurement: None,
        manifest: |m| {
            m.measurement.digests = [("1".to_string(), hex::encode([0x77u8; 48]))].into();
        },
        ..Setup::default()
    });
    let why = f.check(&f.file, 0).unwrap_err();
    assert!(
        why.starts_with(
            "attestation mismatch, does not implicate the operator: the instance's \
             publication evidence does not verify"
        ) && why.contains("measurement"),
        "{why}"
    );
}

/// The audit's M1: the same chip, but a session report at a TCB below AMD's bulletin floor
/// (SNP firmware 0x17 on Milan, where the floor is 0x18). AMD declared such firmware
/// compromised: its VCEK can sign any report, so the report is no one's, whatever the
/// manifest states (here: the bulletin floor, which the report is below too).
#[test]
fn a_session_below_amds_bulletin_floor_is_not_proven() {
    let f = fixture_with(Setup {
        session: |a| a.tcb = TcbVersion::new(3, 0, 0x17, 0xDB),
        ..Setup::default()
    });
    let why = f.check(&f.file, 0).unwrap_err();
    assert!(
        why.starts_with(
            "attestation mismatch, does not implicate anyone: the session's report is at a TCB \
             below AMD's bulletin floor, where reports can be forged"
        ) && why.contains("tcb-minimum"),
        "{why}"
    );
}

/// The same chip, the logged measurement, a TCB at AMD's bulletin floor but below the higher
/// floor the file's manifest states (which the publication meets): proven as a TCB below this
/// manifest's floor, never as "another launch" (another logged manifest of the same
/// `release_ref` may state a lower floor).
#[test]
fn a_session_below_the_manifests_floor_above_amds_is_proven_as_tcb_only() {
    let f = fixture_with(Setup {
        measurement: None,
        publication: |a| a.tcb = TcbVersion::new(4, 0, 0x19, 0xDB),
        manifest: |m| {
            let floor = m.launch_policy.as_mut().unwrap();
            floor.minimum_tcb.get_mut("Milan").unwrap().snp = 0x19;
        },
        ..Setup::default()
    });
    let proven = f.check(&f.file, 0).unwrap();
    assert!(
        proven.contains("tcb-minimum")
            && proven.contains(&format!(
                "at a TCB below the floor this manifest (log index {}) states",
                f.file.release.log_index
            )),
        "{proven}"
    );
    assert!(!proven.contains("another launch"), "{proven}");
}

/// A file whose publication is not the one the logged index names proves nothing.
#[test]
fn another_publication_is_not_proven() {
    let f = fixture(Some(OTHER), KEY_CONFIG);
    let mut bad = f.file.clone();
    bad.publication_hex = flip_byte(&bad.publication_hex, 3 + 0x90);
    let why = f.check(&bad, 0).unwrap_err();
    assert!(why.contains("not the one the logged index names"), "{why}");
}
