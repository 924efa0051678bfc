//! Test helpers: an in-process witness that cosigns a log's current checkpoint.

use std::cell::RefCell;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;

use crate::checkpoint::{ALG_ED25519, NoteKey, unix_now};
use crate::log::Log;
use crate::witness::Witness;

pub const ORIGIN: &str = "test.example/log";

pub fn now() -> u64 {
    unix_now()
}

pub fn new_key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

/// A witness for the log whose key is at `log_key` (made if absent by opening a log).
pub struct TestWitness(RefCell<Witness>);

impl TestWitness {
    pub fn new(state: &Path, log_key: &Path) -> Self {
        let scratch = state.with_extension("scratch.log");
        let log = Log::open(&scratch, log_key).unwrap();
        let log_vkey = NoteKey::parse_vkey(&log.vkey(ORIGIN).unwrap(), ALG_ED25519).unwrap();
        drop(log);
        let w = Witness::open("test.example/witness", new_key(), vec![log_vkey], state).unwrap();
        Self(RefCell::new(w))
    }

    pub fn key(&self) -> NoteKey {
        self.0.borrow().note_key()
    }

    /// The log's checkpoint note with this witness's cosignature appended.
    pub fn cosign(&self, log: &Log) -> String {
        let note = log.checkpoint_note(ORIGIN).unwrap();
        let old = self.0.borrow().seen(ORIGIN).map_or(0, |s| s.0);
        let mut body = format!("old {old}\n");
        if old > 0 && old < log.size() {
            for h in log.consistency_proof(old, log.size()).unwrap() {
                body.push_str(&format!("{}\n", B64.encode(h)));
            }
        }
        body.push('\n');
        body.push_str(&note);
        let r = self.0.borrow_mut().add_checkpoint(body.as_bytes(), now());
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        format!("{note}{}", String::from_utf8(r.body).unwrap())
    }
}
