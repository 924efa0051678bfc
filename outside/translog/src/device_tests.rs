//! The device's rules: witnessed heads only, fresh, growth checked entry by entry (every
//! revocation seen), forks and rollbacks refused, and the state file unchanged on a refusal.

use super::*;
use crate::checkpoint::{ALG_COSIGNATURE_V1, NoteKey};
use crate::log::Log;
use crate::testutil::{ORIGIN, TestWitness, now};

struct Setup {
    dir: tempfile::TempDir,
    witness: TestWitness,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let witness = TestWitness::new(&dir.path().join("w.json"), &dir.path().join("key.pk8"));
        Self { dir, witness }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn log(&self, name: &str) -> Log {
        Log::open(&self.path(name), &self.path("key.pk8")).unwrap()
    }
    fn policy(&self, log: &Log) -> TrustPolicy {
        TrustPolicy {
            log: NoteKey::parse_vkey(&log.vkey(ORIGIN).unwrap(), 1).unwrap(),
            witnesses: vec![self.witness.key()],
            threshold: 1,
            max_age_secs: 86_400,
        }
    }
    fn state(&self, log: &Log) -> DeviceLogState {
        DeviceLogState::open(self.path("device.json"), self.policy(log)).unwrap()
    }
    fn state_bytes(&self) -> Vec<u8> {
        fs::read(self.path("device.json")).unwrap_or_default()
    }
}

/// Serves `log`'s entry bundles by path, as `pp-log` does.
fn fetch(log: &Log) -> impl FnMut(&str) -> Result<Vec<u8>, String> + '_ {
    |path| {
        let (n, w) = path
            .strip_prefix("tile/entries/")
            .and_then(crate::tiles::parse_entries_path)
            .ok_or_else(|| format!("not a tile path: {path}"))?;
        log.entry_bundle(n, w).map_err(|e| e.to_string())
    }
}

/// Ignores the new entries.
fn ignore(_: u64, _: &[u8]) {}

#[test]
fn accepts_witnessed_growth_and_records_revocations() {
    let s = Setup::new();
    let mut log = s.log("a.log");
    log.append(b"{\"schema\":\"pp-release-manifest/1\",\"n\":1}")
        .unwrap();
    let note = s.witness.cosign(&log);
    let mut state = s.state(&log);
    assert_eq!(
        state
            .update(note.as_bytes(), now(), &mut fetch(&log), &mut ignore)
            .unwrap(),
        Update::First
    );
    let rev = crate::revocation::Revocation::new(&"ab".repeat(32), "bulletin X", 5).unwrap();
    log.append(rev.to_json().as_bytes()).unwrap();
    log.append(b"{\"schema\":\"other/1\"}").unwrap();
    let note = s.witness.cosign(&log);
    assert_eq!(
        state
            .update(note.as_bytes(), now(), &mut fetch(&log), &mut ignore)
            .unwrap(),
        Update::Grew { from: 1 }
    );
    let r = state.revocation_of(&"ab".repeat(32)).unwrap();
    assert_eq!((r.index, r.reason.as_str()), (1, "bulletin X"));
    // Reloaded from disk, the same.
    let again = s.state(&log);
    assert_eq!(again.current().unwrap().checkpoint.size, 3);
    assert_eq!(again.revoked().len(), 1);
    assert_eq!(
        state
            .update(note.as_bytes(), now(), &mut fetch(&log), &mut ignore)
            .unwrap(),
        Update::Unchanged
    );
}

#[test]
fn refuses_unwitnessed_stale_and_forked_heads_and_changes_nothing() {
    let s = Setup::new();
    let mut log = s.log("a.log");
    log.append(b"one").unwrap();
    let note = s.witness.cosign(&log);
    let mut state = s.state(&log);
    state
        .update(note.as_bytes(), now(), &mut fetch(&log), &mut ignore)
        .unwrap();
    let before = s.state_bytes();

    // Log-signed only: no witness cosigned it.
    log.append(b"two").unwrap();
    let bare = log.checkpoint_note(ORIGIN).unwrap();
    let err = state
        .update(bare.as_bytes(), now(), &mut fetch(&log), &mut ignore)
        .unwrap_err();
    assert!(
        matches!(
            err,
            DeviceError::Checkpoint {
                reason: CheckpointError::TooFewCosignatures { have: 0, need: 1 },
                ..
            }
        ),
        "{err}"
    );
    // Cosigned, but 25 h ago by the device's clock.
    let note2 = s.witness.cosign(&log);
    let err = state
        .update(
            note2.as_bytes(),
            now() + 25 * 3600,
            &mut fetch(&log),
            &mut ignore,
        )
        .unwrap_err();
    assert!(err.to_string().starts_with("stale tree head"), "{err}");
    // A cosignature from a key the device does not trust counts for nothing.
    let stranger = TestWitness::new(&s.path("w2.json"), &s.path("key.pk8"));
    let other = stranger.cosign(&log);
    assert!(
        state
            .update(other.as_bytes(), now(), &mut fetch(&log), &mut ignore)
            .is_err()
    );
    assert_eq!(s.state_bytes(), before);

    // Same key, another history of the same size: a fork, with both notes.
    let mut fork = s.log("fork.log");
    fork.append(b"uno").unwrap();
    let forked = fork.checkpoint_note(ORIGIN).unwrap();
    match state.update(forked.as_bytes(), now(), &mut fetch(&fork), &mut ignore) {
        Err(DeviceError::Fork {
            size: 1,
            remembered,
            offered,
        }) => {
            assert_eq!(remembered, note);
            assert_eq!(offered, forked);
        }
        other => panic!("expected a fork, got {other:?}"),
    }
    // Entries that do not produce the signed root of a larger head: both cosigned notes kept.
    let err = state
        .update(
            note2.as_bytes(),
            now(),
            &mut |_| crate::tiles::encode_bundle([&b"forged"[..], b"forged"]),
            &mut ignore,
        )
        .unwrap_err();
    match err {
        DeviceError::Inconsistent {
            old_size: 1,
            new_size: 2,
            remembered,
            offered,
            ..
        } => {
            assert_eq!(remembered, note);
            assert_eq!(offered, note2);
        }
        other => panic!("expected inconsistent heads, got {other:?}"),
    }
    assert_eq!(s.state_bytes(), before);
    // The honest update still works.
    state
        .update(note2.as_bytes(), now(), &mut fetch(&log), &mut ignore)
        .unwrap();
    assert_ne!(s.state_bytes(), before);
}

#[test]
fn refuses_rollback_and_a_state_of_another_log() {
    let s = Setup::new();
    let mut log = s.log("a.log");
    log.append(b"one").unwrap();
    let small = s.witness.cosign(&log);
    log.append(b"two").unwrap();
    let big = s.witness.cosign(&log);
    let mut state = s.state(&log);
    state
        .update(big.as_bytes(), now(), &mut fetch(&log), &mut ignore)
        .unwrap();
    assert!(matches!(
        state.update(small.as_bytes(), now(), &mut fetch(&log), &mut ignore),
        Err(DeviceError::Rollback {
            remembered: 2,
            offered: 1
        })
    ));
    let mut policy = s.policy(&log);
    policy.log.name = "other.example/log".into();
    assert!(matches!(
        DeviceLogState::open(s.path("device.json"), policy),
        Err(DeviceError::BadState { .. })
    ));
    let _ = ALG_COSIGNATURE_V1;
}

/// Appends `n` distinct entries.
fn grow(log: &mut Log, n: usize) {
    for _ in 0..n {
        let i = log.size();
        log.append(format!("entry {i}").as_bytes()).unwrap();
    }
}

#[test]
fn devices_at_different_sizes_in_one_tile_send_the_same_requests() {
    // The attack: the operator hands each device a unique size (a filler entry per sync) and
    // recognises it at its next sync by the first entry it asks for.
    let s = Setup::new();
    let mut log = s.log("a.log");
    let mut seen = Vec::new();
    for (name, size) in [("a.json", 257usize), ("b.json", 300), ("c.json", 512)] {
        let have = log.size() as usize;
        grow(&mut log, size - have);
        let note = s.witness.cosign(&log);
        let mut state = DeviceLogState::open(s.path(name), s.policy(&log)).unwrap();
        state
            .update(note.as_bytes(), now(), &mut fetch(&log), &mut ignore)
            .unwrap();
        seen.push((s.path(name), size as u64));
    }
    grow(&mut log, 600 - 512);
    let note = s.witness.cosign(&log);
    let mut requests = Vec::new();
    for (path, old_size) in seen {
        let mut state = DeviceLogState::open(path, s.policy(&log)).unwrap();
        let mut asked = Vec::new();
        let mut new = Vec::new();
        let mut recording = |p: &str| {
            asked.push(p.to_string());
            fetch(&log)(p)
        };
        state
            .update(note.as_bytes(), now(), &mut recording, &mut |i, _| {
                new.push(i)
            })
            .unwrap();
        // Only the entries this device had not accepted are new to it.
        assert_eq!(new, (old_size..600).collect::<Vec<_>>());
        requests.push(asked);
    }
    let expected = vec![
        "tile/entries/001".to_string(),
        "tile/entries/002.p/88".to_string(),
    ];
    assert!(requests.iter().all(|r| *r == expected), "{requests:?}");
}

#[test]
fn rewritten_entries_under_the_same_head_are_refused_without_inconsistent_heads() {
    // One signed head: nothing two heads could prove, so no inconsistent-heads evidence
    // (whose checker refuses equal sizes) is offered.
    let s = Setup::new();
    let mut log = s.log("a.log");
    grow(&mut log, 3);
    let note = s.witness.cosign(&log);
    let mut state = s.state(&log);
    state
        .update(note.as_bytes(), now(), &mut fetch(&log), &mut ignore)
        .unwrap();
    let mut rewriting = |p: &str| {
        let mut entries = crate::tiles::parse_bundle(&fetch(&log)(p)?, 3)?;
        entries[1] = b"another entry 1".to_vec();
        crate::tiles::encode_bundle(entries.iter().map(Vec::as_slice))
    };
    let err = state
        .update(note.as_bytes(), now(), &mut rewriting, &mut ignore)
        .unwrap_err();
    assert!(
        matches!(&err, DeviceError::NotAnExtension { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("under this same head"), "{err}");
}

#[test]
fn a_tile_that_rewrites_accepted_entries_is_refused() {
    let s = Setup::new();
    let mut log = s.log("a.log");
    grow(&mut log, 3);
    let note = s.witness.cosign(&log);
    let mut state = s.state(&log);
    state
        .update(note.as_bytes(), now(), &mut fetch(&log), &mut ignore)
        .unwrap();
    let before = s.state_bytes();
    grow(&mut log, 2);
    let note = s.witness.cosign(&log);
    // The log serves the new tile with entry 1, which this device accepted, replaced.
    let mut rewriting = |p: &str| {
        let mut entries = crate::tiles::parse_bundle(&fetch(&log)(p)?, 5)?;
        entries[1] = b"another entry 1".to_vec();
        crate::tiles::encode_bundle(entries.iter().map(Vec::as_slice))
    };
    let err = state
        .update(note.as_bytes(), now(), &mut rewriting, &mut ignore)
        .unwrap_err();
    // Both heads are signed: the refusal keeps both for the evidence file.
    assert!(
        matches!(
            &err,
            DeviceError::Inconsistent {
                old_size: 3,
                new_size: 5,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("the log rewrote its history"),
        "{err}"
    );
    assert_eq!(s.state_bytes(), before);
    state
        .update(note.as_bytes(), now(), &mut fetch(&log), &mut ignore)
        .unwrap();
}
