//! The key CDN's index against the real log and CDN services on loopback: an honest logged index
//! is used; a CDN showing this device an index of its own is refused (issue 13 §2).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pp_protocol::cdn_index::{CdnIndex, CdnInstance, INDEX_FILE, SCHEMA, instance_id};
use pp_services::cdn::Cdn;
use pp_services::http::Limits;
use pp_services::loopback::WitnessedLog;
use pp_services::publish::append_to_log;
use sha2::{Digest, Sha256};

use crate::instances::discover;
use crate::releases::LogClient;
use crate::test_fixture::{bundle, key_config, log, manifest, roots, scratch};

const SECRET: &str = "operator secret";

/// The log and the CDN on loopback, an honest two-instance CDN folder, and the honest index.
pub(crate) struct Services {
    pub(crate) dir: PathBuf,
    pub(crate) log_url: String,
    pub(crate) cdn_url: String,
    pub(crate) log: WitnessedLog,
    index: CdnIndex,
}

pub(crate) fn serve<H, F>(handler: H) -> String
where
    H: Fn(hyper::Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = pp_services::http::Reply> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let _ = pp_services::http::serve(listener, None, Limits::default(), handler).await;
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

pub(crate) fn start() -> Services {
    let dir = scratch("cdn-index");
    let cdn = dir.join("cdn");
    std::fs::create_dir_all(cdn.join("evidence")).unwrap();
    std::fs::create_dir_all(cdn.join("releases")).unwrap();
    let (manifest, measurement, release_ref) = manifest();
    let mut log = log(&dir);
    log.append(&manifest).unwrap();
    let mut instances = Vec::new();
    for n in 1..=2 {
        let key = key_config(n);
        let report_data = pp_attestation::publication_report_data(&release_ref, &key);
        let evidence = bundle(measurement, &report_data, &key, release_ref);
        let key_hash: [u8; 32] = Sha256::digest(&key).into();
        let instance = CdnInstance {
            id: instance_id(&key_hash),
            key_config_sha256: hex::encode(key_hash),
            evidence_sha256: hex::encode(Sha256::digest(&evidence)),
            release_ref: hex::encode(release_ref),
        };
        std::fs::write(cdn.join(instance.evidence_path()), &evidence).unwrap();
        std::fs::write(cdn.join(instance.release_path()), &manifest).unwrap();
        instances.push(instance);
    }
    let index = CdnIndex {
        schema: SCHEMA.into(),
        published: 1_780_272_000,
        gateway_key_config: None,
        instances,
    };
    let log = WitnessedLog::start(&dir, log, SECRET).unwrap();
    let log_url = log.url.clone();
    let cdn_service = Arc::new(Cdn { root: cdn });
    let cdn_url = serve(move |req| {
        let s = cdn_service.clone();
        async move { s.handle(req).await }
    });
    let services = Services {
        dir,
        log_url,
        cdn_url,
        log,
        index: index.clone(),
    };
    services.publish(&index, true);
    services
}

impl Services {
    /// Serves `index` at the CDN, and appends it to the log first if `logged`.
    fn publish(&self, index: &CdnIndex, logged: bool) {
        let bytes = index.to_vec();
        if logged {
            append_to_log(&self.log_url, SECRET, &bytes).unwrap();
        }
        std::fs::write(self.dir.join("cdn").join(INDEX_FILE), bytes).unwrap();
    }

    /// What a device finds: the instance ids it may use, or the error.
    fn discover(&self) -> Result<Vec<String>, String> {
        let config = crate::config::Log {
            url: self.log_url.clone(),
            public_key: self.log.public_key_hex.clone(),
            origin: self.log.origin.clone(),
            witnesses: vec![self.log.witness_vkey.clone()],
            witness_threshold: 1,
            max_age_secs: 86_400,
        };
        let log = LogClient::sync(&config, &self.dir, crate::reads::Reader::direct())
            .map_err(|e| format!("{e:#}"))?;
        let (good, bad) =
            discover(&self.cdn_url, &log, &roots(0, &self.dir)).map_err(|e| format!("{e:#}"))?;
        if good.is_empty() {
            return Err(bad
                .iter()
                .map(|r| r.reason.clone())
                .collect::<Vec<_>>()
                .join("; "));
        }
        Ok(good.into_iter().map(|c| c.id).collect())
    }

    /// The honest index, republished later (new bytes for the log).
    fn later(&self, secs: u64) -> CdnIndex {
        CdnIndex {
            published: self.index.published + secs,
            ..self.index.clone()
        }
    }
}

fn copy_evidence(cdn: &Path, from: &str, to: &str) {
    std::fs::copy(
        cdn.join(format!("evidence/{from}.bin")),
        cdn.join(format!("evidence/{to}.bin")),
    )
    .unwrap();
}

#[test]
fn the_newest_logged_index_is_used() {
    let s = start();
    let ids: Vec<String> = s.index.instances.iter().map(|i| i.id.clone()).collect();
    assert_eq!(s.discover().unwrap(), ids);
    // Entries of other kinds after it do not make it stale.
    append_to_log(&s.log_url, SECRET, br#"{"schema":"pp-other-kind/1"}"#).unwrap();
    assert_eq!(s.discover().unwrap(), ids);
}

#[test]
fn an_unlogged_index_with_a_unique_instance_id_is_refused() {
    let s = start();
    s.discover().unwrap();
    // An instance only this device is shown: its own key, id and evidence, not in the log.
    let mut unique = s.later(1);
    let fake: [u8; 32] = Sha256::digest(b"only for this device").into();
    let old_id = unique.instances[0].id.clone();
    unique.instances[0].id = instance_id(&fake);
    unique.instances[0].key_config_sha256 = hex::encode(fake);
    copy_evidence(&s.dir.join("cdn"), &old_id, &unique.instances[0].id);
    s.publish(&unique, false);
    let err = s.discover().unwrap_err();
    assert!(
        err.contains("the key CDN's index is not in the transparency log"),
        "{err}"
    );
}

#[test]
fn a_single_instance_index_is_refused_unless_it_is_the_newest_in_the_log() {
    let s = start();
    // Unlogged, for this device only.
    let mut single = s.later(1);
    single.instances.truncate(1);
    s.publish(&single, false);
    let err = s.discover().unwrap_err();
    assert!(err.contains("is not in the transparency log"), "{err}");
    // Logged, but the operator logged the full index for everyone after it.
    s.publish(&single, true);
    append_to_log(&s.log_url, SECRET, &s.later(2).to_vec()).unwrap();
    let err = s.discover().unwrap_err();
    assert!(
        err.contains(
            "the key CDN served an old index (log entry 2); the log holds a newer one at entry 3"
        ),
        "{err}"
    );
    // The honest older index is refused the same way once a newer one is logged.
    s.publish(&s.index, false);
    let err = s.discover().unwrap_err();
    assert!(
        err.contains("the key CDN served an old index (log entry 1)"),
        "{err}"
    );
}

#[test]
fn ids_not_derived_from_the_attested_key_configuration_are_refused() {
    let s = start();
    // An id that is not the listed key configuration's: the index itself is refused.
    let mut odd = s.later(1);
    odd.instances[0].id = "i-0000000000000000".into();
    let bytes = serde_json::to_vec(&odd).unwrap();
    append_to_log(&s.log_url, SECRET, &bytes).unwrap();
    std::fs::write(s.dir.join("cdn").join(INDEX_FILE), &bytes).unwrap();
    let err = s.discover().unwrap_err();
    assert!(
        err.contains("the key CDN's index is refused: an instance id is not derived from its key configuration"),
        "{err}"
    );
    // Id and hash consistent, but of keys the evidence does not attest: every instance refused.
    let mut other = s.later(2);
    for (n, i) in other.instances.iter_mut().enumerate() {
        let key: [u8; 32] = Sha256::digest([n as u8; 3]).into();
        let id = instance_id(&key);
        copy_evidence(&s.dir.join("cdn"), &i.id, &id);
        i.id = id;
        i.key_config_sha256 = hex::encode(key);
    }
    s.publish(&other, true);
    let err = s.discover().unwrap_err();
    assert!(
        err.contains("is not derived from the key configuration its evidence attests"),
        "{err}"
    );
}
