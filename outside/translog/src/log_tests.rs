//! The log's persistence, bounds and proofs.

use super::*;
use crate::merkle::{verify_consistency, verify_inclusion};

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn log_path(&self) -> PathBuf {
        self.dir.path().join("entries.log")
    }
    fn key_path(&self) -> PathBuf {
        self.dir.path().join("log-key.pk8")
    }
    fn open(&self) -> Result<Log, LogError> {
        Log::open(&self.log_path(), &self.key_path())
    }
}

fn manifest(i: usize) -> Vec<u8> {
    format!("{{\"release\":{i},\"measurement\":\"{:096x}\"}}", i).into_bytes()
}

#[test]
fn persistence_round_trip() {
    let d = Dir::new();
    let origin = "test.example/log";
    let (root, pk, note) = {
        let mut log = d.open().unwrap();
        assert_eq!(log.size(), 0);
        assert_eq!(log.root_at(0).unwrap(), merkle::empty_root());
        for i in 0..10 {
            assert_eq!(log.append(&manifest(i)).unwrap(), i as u64);
        }
        (
            log.root_at(10).unwrap(),
            *log.public_key(),
            log.checkpoint_note(origin).unwrap(),
        )
    };
    let log = d.open().unwrap();
    assert_eq!(log.size(), 10);
    assert_eq!(*log.public_key(), pk, "the key is loaded, not regenerated");
    assert_eq!(log.root_at(10).unwrap(), root);
    assert_eq!(
        log.checkpoint_note(origin).unwrap(),
        note,
        "Ed25519 is deterministic: same head, same bytes"
    );
    let vkey = crate::NoteKey::parse_vkey(&log.vkey(origin).unwrap(), 1).unwrap();
    assert_eq!(vkey.public_key, pk);
    let (cp, _) = crate::checkpoint::open_log_signed(note.as_bytes(), &vkey).unwrap();
    assert_eq!((cp.size, cp.root), (10, root));
    assert_eq!(log.entry(3).unwrap(), manifest(3).as_slice());
    let leaf = merkle::leaf_hash(&manifest(7));
    assert_eq!(log.index_of_leaf_hash(&leaf), Some(7));
    assert_eq!(log.index_of_leaf_hash(&[0; 32]), None);
    let mode = fs::metadata(d.key_path()).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
}

#[test]
fn file_format_is_length_prefixed_records() {
    let d = Dir::new();
    let mut log = d.open().unwrap();
    log.append(b"ab").unwrap();
    log.append(b"cde").unwrap();
    assert_eq!(
        fs::read(d.log_path()).unwrap(),
        b"\0\0\0\x02ab\0\0\0\x03cde".to_vec()
    );
}

#[test]
fn duplicate_append_returns_existing_index() {
    let d = Dir::new();
    let mut log = d.open().unwrap();
    assert_eq!(log.append(b"one").unwrap(), 0);
    assert_eq!(log.append(b"two").unwrap(), 1);
    let len = fs::metadata(d.log_path()).unwrap().len();
    assert_eq!(log.append(b"one").unwrap(), 0);
    assert_eq!(log.size(), 2);
    assert_eq!(fs::metadata(d.log_path()).unwrap().len(), len);
}

#[test]
fn entry_bounds() {
    let d = Dir::new();
    let mut log = d.open().unwrap();
    assert!(matches!(log.append(b""), Err(LogError::EmptyEntry)));
    let big = vec![7u8; MAX_ENTRY_LEN + 1];
    assert!(matches!(
        log.append(&big),
        Err(LogError::EntryTooLarge { len, .. }) if len == MAX_ENTRY_LEN + 1
    ));
    assert_eq!(log.append(&big[..MAX_ENTRY_LEN]).unwrap(), 0);
    assert_eq!(log.size(), 1);
    drop(log);
    assert_eq!(d.open().unwrap().size(), 1);
}

#[test]
fn truncated_file_refused() {
    let d = Dir::new();
    let mut log = d.open().unwrap();
    log.append(b"first entry").unwrap();
    log.append(b"second entry").unwrap();
    drop(log);
    let full = fs::read(d.log_path()).unwrap();
    let second_at = 4 + b"first entry".len();
    // Cut inside the second record's body, and inside its length prefix.
    for cut in [full.len() - 1, second_at + 5, second_at + 2] {
        fs::write(d.log_path(), &full[..cut]).unwrap();
        match d.open() {
            Err(LogError::TruncatedRecord { offset, .. }) => {
                assert_eq!(offset, second_at as u64)
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
        assert_eq!(
            fs::read(d.log_path()).unwrap(),
            &full[..cut],
            "file untouched"
        );
    }
}

#[test]
fn corrupt_records_refused() {
    let d = Dir::new();
    fs::write(d.log_path(), b"\0\0\0\0").unwrap();
    assert!(matches!(
        d.open(),
        Err(LogError::BadRecordLength { len: 0, .. })
    ));
    fs::write(d.log_path(), b"\0\x01\0\x01xx").unwrap();
    assert!(matches!(
        d.open(),
        Err(LogError::BadRecordLength { len: 65537, .. })
    ));
    fs::write(d.log_path(), b"\0\0\0\x01x\0\0\0\x01y\0\0\0\x01x").unwrap();
    assert!(matches!(
        d.open(),
        Err(LogError::DuplicateRecord {
            offset: 10,
            first_index: 0,
            ..
        })
    ));
}

#[test]
fn bad_key_refused() {
    let d = Dir::new();
    fs::write(d.key_path(), b"not a key").unwrap();
    assert!(matches!(d.open(), Err(LogError::BadKey { .. })));
}

#[test]
fn second_open_is_locked() {
    let d = Dir::new();
    let _log = d.open().unwrap();
    assert!(matches!(d.open(), Err(LogError::Locked { .. })));
}

#[test]
fn proofs_and_bounds() {
    let d = Dir::new();
    let mut log = d.open().unwrap();
    for i in 0..13 {
        log.append(&manifest(i)).unwrap();
    }
    for size in 1..=13u64 {
        let root = log.root_at(size).unwrap();
        for index in 0..size {
            let proof = log.inclusion_proof(index, size).unwrap();
            let leaf = merkle::leaf_hash(log.entry(index).unwrap());
            verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
        }
        for old in 0..=size {
            let proof = log.consistency_proof(old, size).unwrap();
            verify_consistency(old, size, &log.root_at(old).unwrap(), &root, &proof).unwrap();
        }
    }
    assert!(matches!(
        log.inclusion_proof(0, 14),
        Err(LogError::SizeOutOfRange {
            size: 14,
            current: 13
        })
    ));
    assert!(matches!(
        log.inclusion_proof(13, 13),
        Err(LogError::Proof(MerkleError::IndexOutOfRange { .. }))
    ));
    assert!(matches!(
        log.consistency_proof(5, 4),
        Err(LogError::Proof(MerkleError::OldSizeAfterNew { .. }))
    ));
    assert!(matches!(
        log.consistency_proof(1, u64::MAX),
        Err(LogError::SizeOutOfRange { .. })
    ));
    assert!(log.entry(13).is_err());
    assert!(log.entry(u64::MAX).is_err());
    assert!(log.root_at(14).is_err());
}
