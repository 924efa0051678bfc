//! `pp check-receipt`: a receipt built from a real test-attester session, a real log and a real
//! logged index checks; each altered field or companion file is refused with its own message.

use std::collections::HashMap;

use pp_protocol::cdn_index::{CdnIndex, CdnInstance, SCHEMA as INDEX_SCHEMA, instance_id};
use pp_translog::Receipt;
use pp_translog::TrustPolicy;
use pp_translog::checkpoint::{ALG_COSIGNATURE_V1, ALG_ED25519, NoteKey, cosignature_line};
use pp_translog::receipt::{ProvenEntry, ReceiptPath, SCHEMA};
use ring::signature::{Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};

use super::check_parts;
use crate::test_fixture::{bundle, log, manifest, roots, scratch};

const KEY_CONFIG: &[u8] = b"\x01\x00\x20 test key configuration";
/// 2026-06-01, inside the test chain's validity.
const CHECKED_AT: u64 = 1_780_272_000;

struct Fixture {
    receipt: Receipt,
    files: HashMap<String, Vec<u8>>,
    policy: TrustPolicy,
    dir: std::path::PathBuf,
}

const ORIGIN: &str = "log.pp.test";
const WITNESS: &str = "witness.pp.test";

fn fixture() -> Fixture {
    fixture_for(ReceiptPath::Session)
}

/// A receipt of a request on `path`: a session's evidence, or the publication evidence a
/// one-shot request relied on.
fn fixture_for(path: ReceiptPath) -> Fixture {
    let dir = scratch("check-receipt");
    let (manifest, measurement, release_ref) = manifest();
    let (exporter, nonce) = ([0x11; 32], [0x22; 32]);
    let report_data = match path {
        ReceiptPath::Session => {
            pp_attestation::report_data_for(&exporter, &nonce, &release_ref, KEY_CONFIG)
        }
        ReceiptPath::Oneshot => pp_attestation::publication_report_data(&release_ref, KEY_CONFIG),
    };
    let (nonce_hex, exporter_hex) = match path {
        ReceiptPath::Session => (Some(hex::encode(nonce)), Some(hex::encode(exporter))),
        ReceiptPath::Oneshot => (None, None),
    };
    let evidence = bundle(measurement, &report_data, KEY_CONFIG, release_ref);
    let parsed = pp_protocol::evidence::EvidenceRepr::from_bytes(&evidence).unwrap();
    let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
    let key_hash: [u8; 32] = Sha256::digest(KEY_CONFIG).into();
    let index = CdnIndex {
        schema: INDEX_SCHEMA.into(),
        published: CHECKED_AT,
        gateway_key_config: None,
        instances: vec![CdnInstance {
            id: instance_id(&key_hash),
            key_config_sha256: hex::encode(key_hash),
            evidence_sha256: sha(b"publication evidence"),
            release_ref: hex::encode(release_ref),
        }],
    }
    .to_vec();
    let mut log = log(&dir);
    log.append(b"{\"schema\":\"other\"}").unwrap();
    let release_index = log.append(&manifest).unwrap();
    let index_index = log.append(&index).unwrap();
    log.append(b"{\"schema\":\"later\"}").unwrap();
    let sth = pp_translog::Checkpoint {
        origin: ORIGIN.into(),
        size: log.size(),
        root: log.root_at(log.size()).unwrap(),
    };
    // The witness cosigned an hour before the receipt was made.
    let witness = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
    let cosigned =
        cosignature_line(WITNESS, &witness, sth.body().as_bytes(), CHECKED_AT - 3600).unwrap();
    let note = format!("{}{cosigned}", log.checkpoint_note(ORIGIN).unwrap());
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
    let proven = |file: &str, at| ProvenEntry {
        file: file.into(),
        log_index: at,
        inclusion_path: log
            .inclusion_proof(at, sth.size)
            .unwrap()
            .iter()
            .map(hex::encode)
            .collect(),
    };
    let receipt = Receipt {
        schema: SCHEMA.into(),
        checked_at: CHECKED_AT,
        instance: instance_id(&key_hash),
        measurement_hex: hex::encode(measurement),
        evidence_file: "r.evidence.bin".into(),
        report_sha256: sha(parsed.report),
        vcek_sha256: sha(parsed.vcek),
        ask_sha256: sha(parsed.ask),
        ark_sha256: sha(parsed.ark),
        path,
        nonce_hex,
        exporter_hex,
        release: proven("r.release.json", release_index),
        index: proven("r.index.json", index_index),
        tree_head: note,
        log_id_hex: hex::encode(log.log_id()),
    };
    let files = HashMap::from([
        ("r.evidence.bin".to_string(), evidence.clone()),
        ("r.release.json".to_string(), manifest),
        ("r.index.json".to_string(), index),
    ]);
    Fixture {
        receipt,
        files,
        policy,
        dir,
    }
}

impl Fixture {
    fn check(&self, receipt: &Receipt, root: u8) -> Result<super::Checked, String> {
        let files = &self.files;
        let beside = |name: &str| {
            files
                .get(name)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("reading {name} (kept beside the receipt)"))
        };
        check_parts(receipt, beside, &roots(root, &self.dir), &self.policy)
            .map_err(|e| format!("{e:#}"))
    }
}

fn flip(hex: &str) -> String {
    let last = if hex.ends_with('0') { "1" } else { "0" };
    format!("{}{last}", &hex[..hex.len() - 1])
}

#[test]
fn a_valid_receipt_checks_and_each_altered_field_is_refused() {
    let f = fixture();
    let ok = f.check(&f.receipt, 0).unwrap();
    assert_eq!(ok.release_index, 1);
    assert_eq!(ok.index_index, 2);
    assert!(ok.verdict.accepted());
    // It round-trips through its JSON form and still checks.
    let again = Receipt::from_json(f.receipt.to_json().as_bytes()).unwrap();
    f.check(&again, 0).unwrap();

    type Alter = fn(&mut Receipt);
    let cases: Vec<(&str, Alter, &str)> = vec![
        (
            "measurement",
            |r| r.measurement_hex = flip(&r.measurement_hex),
            "the receipt's measurement is not the report's",
        ),
        (
            "report hash",
            |r| r.report_sha256 = flip(&r.report_sha256),
            "the attestation report kept beside the receipt is not the one the receipt names",
        ),
        (
            "VCEK id",
            |r| r.vcek_sha256 = flip(&r.vcek_sha256),
            "the VCEK certificate kept beside the receipt is not the one",
        ),
        (
            "ASK id",
            |r| r.ask_sha256 = flip(&r.ask_sha256),
            "the ASK certificate kept beside the receipt is not the one",
        ),
        (
            "ARK id",
            |r| r.ark_sha256 = flip(&r.ark_sha256),
            "the ARK certificate kept beside the receipt is not the one",
        ),
        (
            "nonce",
            |r| r.nonce_hex = r.nonce_hex.as_deref().map(flip),
            "the receipt's attestation report does not verify",
        ),
        (
            "exporter",
            |r| r.exporter_hex = r.exporter_hex.as_deref().map(flip),
            "the receipt's attestation report does not verify",
        ),
        (
            "release index",
            |r| r.release.log_index += 1,
            "the release manifest's inclusion proof does not verify against the tree head",
        ),
        (
            "release path",
            |r| r.release.inclusion_path[0] = flip(&r.release.inclusion_path[0]),
            "the release manifest's inclusion proof does not verify",
        ),
        (
            "index position",
            |r| r.index.log_index = 0,
            "the CDN index's inclusion proof does not verify against the tree head",
        ),
        (
            "tree head",
            |r| r.tree_head = r.tree_head.replacen("\n4\n", "\n5\n", 1),
            "the receipt's tree head is not a checkpoint of the configured log",
        ),
        (
            "a time two days after the witness cosigned",
            |r| r.checked_at += 2 * 86_400,
            "witnessed when the receipt was made: stale tree head",
        ),
        (
            "log id",
            |r| r.log_id_hex = flip(&r.log_id_hex),
            "the receipt names another log",
        ),
        (
            "instance",
            |r| r.instance = "i-0000000000000000".into(),
            "the logged CDN index does not list instance i-0000000000000000",
        ),
        (
            "a time in 2100 (certificates expired, tree head long stale)",
            |r| r.checked_at = 4_102_444_800,
            "witnessed when the receipt was made: stale tree head",
        ),
        (
            "release file",
            |r| r.release.file = "r.index.json".into(),
            "the release manifest's inclusion proof does not verify",
        ),
    ];
    for (what, alter, needle) in cases {
        let mut bad = f.receipt.clone();
        alter(&mut bad);
        assert_ne!(bad, f.receipt, "{what}: not altered");
        let err = f.check(&bad, 0).unwrap_err();
        assert!(err.contains(needle), "{what}: {err}");
    }
}

/// A one-shot receipt checks with the publication evidence it relied on; the same evidence
/// passed off as a session's does not, nor a session's as a publication's, nor a receipt made
/// when the index was older than the key period plus slack.
#[test]
fn a_oneshot_receipt_checks_its_publication_evidence_and_the_index_age() {
    let f = fixture_for(ReceiptPath::Oneshot);
    let ok = f.check(&f.receipt, 0).unwrap();
    assert_eq!(ok.path, ReceiptPath::Oneshot);
    let again = Receipt::from_json(f.receipt.to_json().as_bytes()).unwrap();
    f.check(&again, 0).unwrap();
    let as_session = Receipt {
        path: ReceiptPath::Session,
        nonce_hex: Some("22".repeat(32)),
        exporter_hex: Some("11".repeat(32)),
        ..f.receipt.clone()
    };
    let err = f.check(&as_session, 0).unwrap_err();
    assert!(
        err.contains("the receipt's attestation report does not verify"),
        "{err}"
    );
    let late = Receipt {
        checked_at: f.receipt.checked_at + crate::oneshot::MAX_INDEX_AGE_SECS + 1,
        ..f.receipt.clone()
    };
    let err = f.check(&late, 0).unwrap_err();
    assert!(
        err.contains("the one-shot receipt relied on an index too old for its time"),
        "{err}"
    );
    let s = fixture();
    let session_as_oneshot = Receipt {
        path: ReceiptPath::Oneshot,
        nonce_hex: None,
        exporter_hex: None,
        ..s.receipt.clone()
    };
    let err = s.check(&session_as_oneshot, 0).unwrap_err();
    assert!(
        err.contains("the receipt's attestation report does not verify"),
        "{err}"
    );
}

#[test]
fn altered_companion_files_and_another_root_are_refused() {
    let mut f = fixture();
    // A byte of the report kept beside (after the version byte and the report's length).
    f.files.get_mut("r.evidence.bin").unwrap()[100] ^= 1;
    let err = f.check(&f.receipt, 0).unwrap_err();
    assert!(
        err.contains("the attestation report kept beside the receipt is not the one"),
        "{err}"
    );
    let mut f = fixture();
    f.files.get_mut("r.release.json").unwrap().push(b' ');
    let err = f.check(&f.receipt, 0).unwrap_err();
    assert!(
        err.contains("the release manifest's inclusion proof does not verify"),
        "{err}"
    );
    let mut f = fixture();
    f.files.remove("r.index.json");
    let err = f.check(&f.receipt, 0).unwrap_err();
    assert!(
        err.contains("r.index.json (kept beside the receipt)"),
        "{err}"
    );
    // A report chained to a root the checker does not trust.
    let f = fixture();
    let err = f.check(&f.receipt, 1).unwrap_err();
    assert!(
        err.contains("the receipt's attestation report does not verify"),
        "{err}"
    );
}
