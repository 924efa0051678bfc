//! The device's rules: trust on first use, growth only by proof, refuse forks and rollbacks,
//! and never change the state file on a refusal.

use super::*;
use crate::log::Log;

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// A log named `name` using the shared key file.
    fn log(&self, name: &str) -> Log {
        Log::open(&self.path(name), &self.path("key.pk8")).unwrap()
    }
    fn state(&self, verifier: &LogVerifier) -> DeviceLogState {
        DeviceLogState::open(self.path("device.json"), verifier.clone()).unwrap()
    }
    fn state_bytes(&self) -> Vec<u8> {
        fs::read(self.path("device.json")).unwrap()
    }
}

fn append_all(log: &mut Log, entries: &[&str]) {
    for e in entries {
        log.append(e.as_bytes()).unwrap();
    }
}

#[test]
fn accepts_consistent_growth_and_remembers_it() {
    let s = Setup::new();
    let mut log = s.log("a.log");
    let v = LogVerifier::new(*log.public_key());
    let mut state = s.state(&v);
    assert_eq!(state.current(), None);
    append_all(&mut log, &["a", "b", "c"]);
    let sth3 = log.sth();
    assert_eq!(state.update(&sth3, &[]).unwrap(), Update::First);
    append_all(&mut log, &["d", "e"]);
    let sth5 = log.sth();
    let proof = log.consistency_proof(3, 5).unwrap();
    assert_eq!(
        state.update(&sth5, &proof).unwrap(),
        Update::Grew { from: 3 }
    );
    assert_eq!(state.update(&sth5, &[]).unwrap(), Update::Unchanged);
    drop(state);
    let mut state = s.state(&v);
    assert_eq!(state.current(), Some(&sth5));
    // Growth by several steps at once, including a power-of-two old size.
    append_all(&mut log, &["f", "g", "h", "i", "j", "k", "l"]);
    let sth12 = log.sth();
    let proof = log.consistency_proof(5, 12).unwrap();
    assert_eq!(
        state.update(&sth12, &proof).unwrap(),
        Update::Grew { from: 5 }
    );
    for index in 0..12 {
        let p = log.inclusion_proof(index, 12).unwrap();
        v.verify_inclusion(log.entry(index).unwrap(), index, &p, &sth12)
            .unwrap();
        assert!(matches!(
            v.verify_inclusion(b"not logged", index, &p, &sth12),
            Err(DeviceError::NotIncluded { .. })
        ));
    }
}

#[test]
fn refuses_a_fork_and_keeps_its_state() {
    let s = Setup::new();
    let mut a = s.log("a.log");
    let mut b = s.log("b.log");
    assert_eq!(a.public_key(), b.public_key(), "same key, two histories");
    let v = LogVerifier::new(*a.public_key());
    append_all(&mut a, &["r1", "r2", "r3", "r4-a", "r5-a"]);
    append_all(&mut b, &["r1", "r2", "r3", "r4-b", "r5-b"]);
    let mut state = s.state(&v);
    state.update(&a.sth(), &[]).unwrap();
    let saved = s.state_bytes();

    // Same size, another root.
    assert!(matches!(
        state.update(&b.sth(), &[]),
        Err(DeviceError::Fork { size: 5 })
    ));
    // A larger tree head from the other history: no proof from our root can exist.
    b.append(b"r6-b").unwrap();
    let proof = b.consistency_proof(5, 6).unwrap();
    assert!(matches!(
        state.update(&b.sth(), &proof),
        Err(DeviceError::NotAnExtension {
            old_size: 5,
            new_size: 6,
            ..
        })
    ));
    assert!(state.update(&b.sth(), &[]).is_err());
    assert_eq!(state.current(), Some(&a.sth()));
    assert_eq!(s.state_bytes(), saved);
    assert!(matches!(
        v.verify_consistency(&a.sth(), &b.sth(), &proof),
        Err(DeviceError::NotAnExtension { .. })
    ));
}

#[test]
fn refuses_rollback_bad_signature_and_bad_proof() {
    let s = Setup::new();
    let mut log = s.log("a.log");
    let v = LogVerifier::new(*log.public_key());
    append_all(&mut log, &["a", "b", "c"]);
    let sth3 = log.sth();
    append_all(&mut log, &["d", "e", "f"]);
    let sth6 = log.sth();
    let mut state = s.state(&v);
    state.update(&sth6, &[]).unwrap();
    let saved = s.state_bytes();

    assert!(matches!(
        state.update(&sth3, &[]),
        Err(DeviceError::Rollback {
            remembered: 6,
            offered: 3
        })
    ));
    log.append(b"g").unwrap();
    let sth7 = log.sth();
    let proof = log.consistency_proof(6, 7).unwrap();
    let mut forged = sth7;
    forged.root[0] ^= 1;
    assert!(matches!(
        state.update(&forged, &proof),
        Err(DeviceError::Sth(SthError::BadSignature))
    ));
    for i in 0..proof.len() {
        let mut bad = proof.clone();
        bad[i][31] ^= 1;
        assert!(matches!(
            state.update(&sth7, &bad),
            Err(DeviceError::NotAnExtension { .. })
        ));
    }
    assert!(state.update(&sth7, &[]).is_err());
    let other = Setup::new();
    let stranger = other.log("x.log").sth();
    assert!(state.update(&stranger, &[]).is_err());
    assert_eq!(s.state_bytes(), saved);
    assert_eq!(state.current(), Some(&sth6));
    assert_eq!(
        state.update(&sth7, &proof).unwrap(),
        Update::Grew { from: 6 }
    );
}

#[test]
fn refuses_unusable_state_files() {
    let s = Setup::new();
    let mut log = s.log("a.log");
    log.append(b"a").unwrap();
    let v = LogVerifier::new(*log.public_key());
    s.state(&v).update(&log.sth(), &[]).unwrap();
    let good = s.state_bytes();

    // Another log's verifier.
    let other = Setup::new();
    let v2 = LogVerifier::new(*other.log("x.log").public_key());
    let err = DeviceLogState::open(s.path("device.json"), v2).unwrap_err();
    assert!(matches!(err, DeviceError::BadState { .. }), "{err}");

    // A tampered root, an unknown field, garbage.
    let text = String::from_utf8(good.clone()).unwrap();
    let root_hex = hex::encode(log.sth().root);
    let flipped = format!(
        "{}{}",
        if root_hex.starts_with('0') { "1" } else { "0" },
        &root_hex[1..]
    );
    for bad in [
        text.replace(&root_hex, &flipped),
        text.replacen('{', "{\"x\":1,", 1),
        "{".to_string(),
    ] {
        fs::write(s.path("device.json"), bad).unwrap();
        assert!(matches!(
            DeviceLogState::open(s.path("device.json"), v.clone()),
            Err(DeviceError::BadState { .. })
        ));
    }
}
