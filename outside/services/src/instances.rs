//! The gateway's instance table: the instance map file, re-read when it changes. Operators
//! re-publish each key period (a new enclave key is a new instance id), so a running gateway
//! picks up the new map without a restart. The file is checked at most once a second (on the
//! first lookup after that second); a new file that does not load is logged and the map in use
//! is kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::gateway::{InstanceAddress, InstanceMap};

/// How often, at most, the map file is looked at.
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// What identifies one version of the file: its modification time and length.
type Stamp = (Option<SystemTime>, u64);

/// Instance id → addresses, from a map file (or fixed).
pub struct InstanceTable {
    path: Option<PathBuf>,
    state: Mutex<State>,
}

struct State {
    map: Arc<HashMap<String, InstanceAddress>>,
    /// The file version last looked at (loaded, or refused and logged once).
    stamp: Option<Stamp>,
    checked: Instant,
}

fn index(map: InstanceMap) -> Arc<HashMap<String, InstanceAddress>> {
    Arc::new(
        map.instances
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect(),
    )
}

fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.modified().ok(), m.len()))
}

impl Default for InstanceTable {
    /// An empty fixed table.
    fn default() -> Self {
        Self::fixed(InstanceMap {
            instances: Vec::new(),
        })
    }
}

impl InstanceTable {
    /// A table that never changes.
    pub fn fixed(map: InstanceMap) -> Self {
        Self {
            path: None,
            state: Mutex::new(State {
                map: index(map),
                stamp: None,
                checked: Instant::now(),
            }),
        }
    }

    /// A fixed table of `(id, attested-TLS address)` pairs, without one-shot ports (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self::fixed(InstanceMap {
            instances: pairs
                .into_iter()
                .map(|(id, address)| InstanceAddress {
                    id: id.to_string(),
                    address: address.to_string(),
                    oneshot_address: None,
                })
                .collect(),
        })
    }

    /// Loads the map at `path` (an error if it does not load) and follows its changes.
    pub fn watching(path: &Path) -> anyhow::Result<Self> {
        let stamp = stamp(path);
        let map = InstanceMap::load(path)?;
        Ok(Self {
            path: Some(path.to_path_buf()),
            state: Mutex::new(State {
                map: index(map),
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    /// The addresses of instance `id`, from the newest map that loaded.
    pub fn get(&self, id: &str) -> Option<InstanceAddress> {
        self.current().get(id).cloned()
    }

    /// The map in use, after re-reading the file if it changed (checked at most once per
    /// [`RELOAD_CHECK`]).
    pub fn current(&self) -> Arc<HashMap<String, InstanceAddress>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(path) = &self.path
            && state.checked.elapsed() >= RELOAD_CHECK
        {
            state.checked = Instant::now();
            let now = stamp(path);
            if now != state.stamp {
                state.stamp = now;
                match InstanceMap::load(path) {
                    Ok(map) => {
                        state.map = index(map);
                        tracing::info!("instance map reloaded: {} instance(s)", state.map.len());
                    }
                    Err(e) => {
                        tracing::warn!("instance map not reloaded, the old one is kept: {e:#}")
                    }
                }
            }
        }
        state.map.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "i-000000000000000a";
    const B: &str = "i-000000000000000b";

    fn write(path: &Path, id: &str) {
        let text = format!(
            "{{\"instances\": [{{\"id\": \"{id}\", \"address\": \"127.0.0.1:1\", \
             \"oneshot_address\": \"127.0.0.1:2\"}}]}}"
        );
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn follows_the_file_and_keeps_the_old_map_on_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("instances.json");
        write(&path, A);
        let table = InstanceTable::watching(&path).unwrap();
        assert_eq!(
            table.get(A).unwrap().oneshot_address.as_deref(),
            Some("127.0.0.1:2")
        );
        // A new key period: a new instance id.
        write(&path, B);
        // Not looked at again within the second.
        assert!(table.get(A).is_some());
        std::thread::sleep(RELOAD_CHECK + Duration::from_millis(50));
        assert!(table.get(A).is_none());
        assert!(table.get(B).is_some());
        // A broken file: logged, the old map kept.
        std::fs::write(&path, "{\"instances\": [{\"id\": \"i-0\"").unwrap();
        std::thread::sleep(RELOAD_CHECK + Duration::from_millis(50));
        assert!(table.get(B).is_some());
        // And an id of the wrong form is refused as at start.
        std::fs::write(
            &path,
            "{\"instances\": [{\"id\": \"i-0\", \"address\": \"127.0.0.1:1\"}]}",
        )
        .unwrap();
        std::thread::sleep(RELOAD_CHECK + Duration::from_millis(50));
        assert!(table.get(B).is_some());
        assert!(table.get("i-0").is_none());
    }
}
