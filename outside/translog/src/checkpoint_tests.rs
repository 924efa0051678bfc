use super::*;
use crate::testutil::new_key;

fn cp() -> Checkpoint {
    Checkpoint {
        origin: "example.com/log".into(),
        size: 20852163,
        root: [7; 32],
    }
}

#[test]
fn body_is_strict() {
    let c = cp();
    assert_eq!(Checkpoint::parse_body(c.body().as_bytes()).unwrap(), c);
    let root = B64.encode([7u8; 32]);
    for bad in [
        format!("example.com/log\n020852163\n{root}\n"),
        format!("example.com/log\n-1\n{root}\n"),
        format!("example.com/log\n1\n{root}"),
        format!("example.com/log\n1\n{root}\next\n"),
        format!("\n1\n{root}\n"),
        "example.com/log\n1\nAAAA\n".to_string(),
        format!("example.com/log\n18446744073709551616\n{root}\n"),
    ] {
        assert!(Checkpoint::parse_body(bad.as_bytes()).is_err(), "{bad:?}");
    }
}

#[test]
fn vkeys_round_trip_and_ids_follow_the_spec() {
    let k = new_key();
    let log = log_note_key("example.com/log", &k).unwrap();
    let v = log.to_vkey();
    assert_eq!(NoteKey::parse_vkey(&v, ALG_ED25519).unwrap(), log);
    assert!(NoteKey::parse_vkey(&v, ALG_COSIGNATURE_V1).is_err());
    // The id is SHA-256(name || "\n" || 0x01 || key)[:4].
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"example.com/log\n\x01");
    h.update(log.public_key);
    let d = h.finalize();
    assert_eq!(log.key_id(), u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
    let mut wrong_id = v.clone();
    wrong_id.replace_range(log.name.len() + 1..log.name.len() + 9, "00000000");
    assert!(NoteKey::parse_vkey(&wrong_id, ALG_ED25519).is_err());
}

#[test]
fn policy_counts_fresh_cosignatures_of_configured_witnesses() {
    let (lk, w1, w2) = (new_key(), new_key(), new_key());
    let c = cp();
    let note = sign_checkpoint(&lk, &c).unwrap();
    let now = 1_700_000_000;
    let line1 = cosignature_line("w1.example", &w1, c.body().as_bytes(), now - 10).unwrap();
    let line2 = cosignature_line("w2.example", &w2, c.body().as_bytes(), now - 100_000).unwrap();
    let mut policy = TrustPolicy {
        log: log_note_key(&c.origin, &lk).unwrap(),
        witnesses: vec![
            witness_note_key("w1.example", &w1).unwrap(),
            witness_note_key("w2.example", &w2).unwrap(),
        ],
        threshold: 1,
        max_age_secs: 86_400,
    };
    let both = format!("{note}{line1}{line2}");
    let v = policy.verify(both.as_bytes(), now).unwrap();
    assert_eq!(v.cosigned.len(), 2);
    policy.threshold = 2;
    assert!(matches!(
        policy.verify(both.as_bytes(), now),
        Err(CheckpointError::Stale { .. })
    ));
    policy.threshold = 1;
    assert!(matches!(
        policy.verify(note.as_bytes(), now),
        Err(CheckpointError::TooFewCosignatures { have: 0, need: 1 })
    ));
    // A cosignature moved to another checkpoint does not verify.
    let other = Checkpoint { size: 1, ..cp() };
    let other_note = sign_checkpoint(&lk, &other).unwrap();
    assert!(matches!(
        policy.verify(format!("{other_note}{line1}").as_bytes(), now),
        Err(CheckpointError::BadCosignature(_))
    ));
    // A cosignature from the future is not counted.
    let future = cosignature_line("w1.example", &w1, c.body().as_bytes(), now + 3600).unwrap();
    assert!(
        policy
            .verify(format!("{note}{future}").as_bytes(), now)
            .is_err()
    );
    // Another log key: refused.
    policy.log = log_note_key(&c.origin, &new_key()).unwrap();
    assert_eq!(
        policy.verify(both.as_bytes(), now).unwrap_err(),
        CheckpointError::BadLogSignature
    );
}
