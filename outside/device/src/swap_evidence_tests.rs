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
use crate::test_fixture::{bundle, log, manifest, roots, scratch};

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

/// A log with a release manifest and an index listing one instance with [`KEY_CONFIG`], and the
/// evidence of a session whose report (from the test attester of root 0) attests `measurement`
/// and `key_config`.
fn fixture(measurement: Option<[u8; 48]>, key_config: &[u8]) -> Fixture {
    let dir = scratch("swap-evidence");
    let (manifest, logged_measurement, release_ref) = manifest();
    let (exporter, nonce) = ([0x11; 32], [0x22; 32]);
    let report_data = pp_attestation::report_data_for(&exporter, &nonce, &release_ref, key_config);
    let evidence = bundle(
        measurement.unwrap_or(logged_measurement),
        &report_data,
        key_config,
        release_ref,
    );
    let key_hash: [u8; 32] = Sha256::digest(KEY_CONFIG).into();
    let index = CdnIndex {
        schema: INDEX_SCHEMA.into(),
        published: OBSERVED_AT,
        instances: vec![CdnInstance {
            id: instance_id(&key_hash),
            key_config_sha256: hex::encode(key_hash),
            evidence_sha256: hex::encode(Sha256::digest(b"publication evidence")),
            release_ref: hex::encode(release_ref),
        }],
    }
    .to_vec();
    let mut log = log(&dir);
    log.append(b"{\"schema\":\"other\"}").unwrap();
    let release_index = log.append(&manifest).unwrap();
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
        index: entry(&index, index_index),
        release: entry(&manifest, release_index),
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
        proven.starts_with("PROVEN: a genuine SEV-SNP report"),
        "{proven}"
    );
    assert!(
        proven.contains(&format!(
            "logged instance {}'s key configuration",
            f.file.instance
        )),
        "{proven}"
    );
    assert!(
        proven.contains(&format!(
            "shows measurement {}; the logged release",
            hex::encode(OTHER)
        )),
        "{proven}"
    );
    assert!(
        proven.contains(&hex::encode(f.logged_measurement)),
        "{proven}"
    );
    assert!(proven.contains("Not proven by this file"), "{proven}");
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
        why.contains("not a genuine SEV-SNP report") && why.contains("ark-trusted"),
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
