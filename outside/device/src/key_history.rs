//! Every Privacy Pass issuer key the transparency log holds, as this device read them while
//! syncing (the device fetches every new log entry and checks it against the witnessed root, so it
//! sees all of them, as every other device does). An issuer gets one key per epoch, and at most
//! two keys are valid at any moment (the current one and the next, during a rotation's overlap).
//! A log holding more — for example a key per account, each logged so that an inclusion proof
//! exists — is refused: such keys would let the issuer link each token spend to the account it
//! issued to.
//!
//! The summary is kept in `issuer-keys-seen.json` in the state folder, with the log size it covers;
//! a sync that advanced the log's state but not this file (a crash in between) is caught up from
//! entries fetched with inclusion proofs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use pp_tokens::key_entry::{IssuerKeyEntry, SCHEMA, hex_of};
use serde::{Deserialize, Serialize};

/// The file in the state folder.
pub const FILE: &str = "issuer-keys-seen.json";

/// Issuer keys remembered at most (a log with more is refused, not half-read).
pub const MAX_KEYS: usize = 4096;

/// Largest state file read.
const MAX_FILE_LEN: u64 = 2 * 1024 * 1024;

/// Keys of one issuer valid at one moment, at most.
pub const MAX_VALID_AT_ONCE: usize = 2;

/// One logged issuer key, summarised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeenKey {
    pub issuer: String,
    pub epoch: u64,
    /// Hex SHA-256 of the key (its RFC 9578 key id).
    pub key_id: String,
    pub not_before: u64,
    pub not_after: u64,
    /// Where the entry is in the log.
    pub index: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJson {
    /// The log size this summary covers (entries `0..synced`).
    synced: u64,
    keys: Vec<SeenKey>,
}

/// The issuer keys of the log, up to the size the device last synced.
#[derive(Debug, Clone)]
pub struct KeyHistory {
    path: PathBuf,
    state: FileJson,
}

impl KeyHistory {
    /// Reads the summary from `state_dir` (empty when there is none yet).
    pub fn open(state_dir: &Path) -> Result<Self> {
        let path = state_dir.join(FILE);
        let state = match std::fs::File::open(&path) {
            Ok(f) => {
                use std::io::Read;
                let mut text = Vec::new();
                f.take(MAX_FILE_LEN)
                    .read_to_end(&mut text)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_slice(&text)
                    .with_context(|| format!("{} is not an issuer key summary", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileJson::default(),
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        Ok(Self { path, state })
    }

    /// The log size covered.
    pub fn synced(&self) -> u64 {
        self.state.synced
    }

    /// The summary caught up to `size`: reads entries `synced..size` through `entry` (bytes
    /// already checked against the log's root, or fetched with an inclusion proof), records their
    /// issuer keys and saves the result. Nothing is saved if an entry cannot be read or an issuer
    /// key entry is malformed.
    pub fn catch_up(
        &self,
        size: u64,
        mut entry: impl FnMut(u64) -> Result<Vec<u8>>,
    ) -> Result<Self> {
        if size <= self.state.synced {
            return Ok(self.clone());
        }
        let mut keys = self.state.keys.clone();
        for index in self.state.synced..size {
            let bytes = entry(index)?;
            if pp_translog::entry::schema_of(&bytes).ok().as_deref() != Some(SCHEMA) {
                continue;
            }
            // A malformed key entry is still in the signed tree: refuse rather than skip it.
            let e = IssuerKeyEntry::parse(&bytes).map_err(|err| {
                anyhow::anyhow!("the log's entry {index} is a malformed issuer key entry: {err}")
            })?;
            if keys.len() >= MAX_KEYS {
                bail!("the log holds more than {MAX_KEYS} issuer keys: refusing to read it");
            }
            keys.push(SeenKey {
                issuer: e.issuer_name.clone(),
                epoch: e.epoch,
                key_id: hex_of(e.token_key_id()),
                not_before: e.not_before,
                not_after: e.not_after,
                index,
            });
        }
        let next = FileJson { synced: size, keys };
        crate::wallet::write_atomic(&self.path, &serde_json::to_vec_pretty(&next)?)?;
        Ok(Self {
            path: self.path.clone(),
            state: next,
        })
    }

    /// The logged entry of `issuer`'s key with id `key_id` (hex), if the log holds one.
    pub fn find(&self, issuer: &str, key_id: &str) -> Option<&SeenKey> {
        self.state
            .keys
            .iter()
            .find(|k| k.issuer == issuer && k.key_id == key_id)
    }

    /// Refuses `issuer` if the log holds two keys for one of its epochs, or more than
    /// [`MAX_VALID_AT_ONCE`] of its keys valid at one moment.
    pub fn check(&self, issuer: &str) -> Result<()> {
        let keys: Vec<&SeenKey> = self
            .state
            .keys
            .iter()
            .filter(|k| k.issuer == issuer)
            .collect();
        for (i, a) in keys.iter().enumerate() {
            if let Some(b) = keys[..i]
                .iter()
                .find(|b| b.epoch == a.epoch && b.key_id != a.key_id)
            {
                bail!(
                    "the log holds two keys of issuer {issuer} for epoch {} (entries {} and {}): \
                     an issuer with several keys at once can tell accounts apart by the key their \
                     tokens carry; refusing its keys",
                    a.epoch,
                    b.index,
                    a.index
                );
            }
            // Every overlap of windows contains some key's start: counting the keys valid at
            // each start finds the largest overlap.
            let valid: Vec<u64> = keys
                .iter()
                .filter(|k| k.not_before <= a.not_before && a.not_before < k.not_after)
                .map(|k| k.index)
                .collect();
            if valid.len() > MAX_VALID_AT_ONCE {
                bail!(
                    "the log holds {} keys of issuer {issuer} valid at once (entries {valid:?}), \
                     more than a rotation's {MAX_VALID_AT_ONCE}: an issuer with several keys at \
                     once can tell accounts apart by the key their tokens carry; refusing its keys",
                    valid.len()
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pp_tokens::Issuer;

    fn entry(issuer: &Issuer, name: &str, epoch: u64, from: u64, to: u64) -> Vec<u8> {
        IssuerKeyEntry::new(name, issuer.public_key().clone(), epoch, from, to)
            .unwrap()
            .to_vec()
    }

    fn history(entries: &[Vec<u8>]) -> (tempfile::TempDir, KeyHistory) {
        let dir = tempfile::tempdir().unwrap();
        let h = KeyHistory::open(dir.path())
            .unwrap()
            .catch_up(entries.len() as u64, |i| Ok(entries[i as usize].clone()))
            .unwrap();
        (dir, h)
    }

    const DAY: u64 = 86_400;

    #[test]
    fn a_rotation_with_overlap_is_accepted_and_resumes_where_it_stopped() {
        let (k0, k1) = (Issuer::generate().unwrap(), Issuer::generate().unwrap());
        let other = br#"{"schema":"pp-release-manifest/1"}"#.to_vec();
        let entries = [
            other,
            entry(&k0, "issuer.test", 0, 0, 31 * DAY),
            entry(&k1, "issuer.test", 1, 30 * DAY, 61 * DAY),
        ];
        let (dir, h) = history(&entries[..2]);
        assert_eq!(h.synced(), 2);
        drop(h);
        // Reopened, it reads only what is new.
        let h = KeyHistory::open(dir.path())
            .unwrap()
            .catch_up(3, |i| {
                assert_eq!(i, 2, "entry {i} read again");
                Ok(entries[2].clone())
            })
            .unwrap();
        h.check("issuer.test").unwrap();
    }

    #[test]
    fn a_second_key_for_one_epoch_is_refused() {
        let (k0, k1) = (Issuer::generate().unwrap(), Issuer::generate().unwrap());
        let (_dir, h) = history(&[
            entry(&k0, "issuer.test", 5, 0, 31 * DAY),
            entry(&k1, "issuer.test", 5, 0, 31 * DAY),
        ]);
        let err = h.check("issuer.test").unwrap_err().to_string();
        assert!(
            err.contains("two keys of issuer issuer.test for epoch 5"),
            "{err}"
        );
        // Another issuer's keys are not affected.
        h.check("other.test").unwrap();
    }

    #[test]
    fn three_keys_valid_at_once_are_refused() {
        let keys: Vec<Issuer> = (0..3).map(|_| Issuer::generate().unwrap()).collect();
        let (_dir, h) = history(&[
            entry(&keys[0], "issuer.test", 1, 0, 31 * DAY),
            entry(&keys[1], "issuer.test", 2, DAY, 31 * DAY),
            entry(&keys[2], "issuer.test", 3, 2 * DAY, 31 * DAY),
        ]);
        let err = h.check("issuer.test").unwrap_err().to_string();
        assert!(
            err.contains("3 keys of issuer issuer.test valid at once"),
            "{err}"
        );
    }

    #[test]
    fn a_malformed_key_entry_stops_the_catch_up_and_saves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let h = KeyHistory::open(dir.path()).unwrap();
        let bad = br#"{"schema":"pp-issuer-key/1"}"#.to_vec();
        let err = h.catch_up(1, |_| Ok(bad.clone())).unwrap_err().to_string();
        assert!(
            err.contains("entry 0 is a malformed issuer key entry"),
            "{err}"
        );
        assert_eq!(h.synced(), 0);
        assert!(!dir.path().join(FILE).exists());
    }
}
