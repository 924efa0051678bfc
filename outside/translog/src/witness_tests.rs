use super::*;
use crate::log::Log;
use crate::testutil::{ORIGIN, new_key};

fn body(old: u64, proof: &[Hash], note: &str) -> Vec<u8> {
    let mut b = format!("old {old}\n");
    for h in proof {
        b.push_str(&format!("{}\n", B64.encode(h)));
    }
    b.push('\n');
    b.push_str(note);
    b.into_bytes()
}

#[test]
fn follows_the_tlog_witness_rules() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("log.pk8");
    let mut log = Log::open(&dir.path().join("a.log"), &key).unwrap();
    let mut fork = Log::open(&dir.path().join("b.log"), &key).unwrap();
    let vkey = NoteKey::parse_vkey(&log.vkey(ORIGIN).unwrap(), 1).unwrap();
    let state = dir.path().join("w.json");
    let mut w = Witness::open("w.example", new_key(), vec![vkey.clone()], &state).unwrap();
    log.append(b"a").unwrap();
    let n1 = log.checkpoint_note(ORIGIN).unwrap();
    let r = w.add_checkpoint(&body(0, &[], &n1), 42);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.body.starts_with("— w.example ".as_bytes()));
    // The same again (a refresh) is fine; a stale old size is a conflict with the known size.
    assert_eq!(w.add_checkpoint(&body(1, &[], &n1), 43).status, 200);
    let r = w.add_checkpoint(&body(0, &[], &n1), 43);
    assert_eq!(
        (r.status, r.content_type, &r.body[..]),
        (409, "text/x.tlog.size", &b"1\n"[..])
    );
    // A fork of the same size: 409.
    fork.append(b"x").unwrap();
    let f1 = fork.checkpoint_note(ORIGIN).unwrap();
    assert_eq!(w.add_checkpoint(&body(1, &[], &f1), 44).status, 409);
    // Growth with a proof: 200; with a wrong proof: 422; old above size: 400.
    log.append(b"b").unwrap();
    log.append(b"c").unwrap();
    let n3 = log.checkpoint_note(ORIGIN).unwrap();
    let good = log.consistency_proof(1, 3).unwrap();
    fork.append(b"y").unwrap();
    fork.append(b"z").unwrap();
    let f3 = fork.checkpoint_note(ORIGIN).unwrap();
    assert_eq!(w.add_checkpoint(&body(1, &good, &f3), 45).status, 422);
    assert_eq!(w.add_checkpoint(&body(4, &good, &n3), 45).status, 400);
    assert_eq!(w.add_checkpoint(&body(1, &good, &n3), 45).status, 200);
    // Unknown origin 404; signed by another key 403; garbage 400.
    let stranger = Log::open(&dir.path().join("c.log"), &dir.path().join("other.pk8")).unwrap();
    assert_eq!(
        w.add_checkpoint(
            &body(
                3,
                &[],
                &stranger.checkpoint_note("else.example/log").unwrap()
            ),
            46
        )
        .status,
        404
    );
    assert_eq!(
        w.add_checkpoint(
            &body(3, &[], &stranger.checkpoint_note(ORIGIN).unwrap()),
            46
        )
        .status,
        403
    );
    assert_eq!(w.add_checkpoint(b"hello", 46).status, 400);
    // The state survives a restart.
    drop(w);
    let w = Witness::open("w.example", new_key(), vec![vkey], &state).unwrap();
    assert_eq!(w.seen(ORIGIN).unwrap().0, 3);
}
