//! `request::ask` on the one-shot path with everything real but the enclave: the log (witnessed),
//! the key CDN, the gateway (reads, OGR, tokens), the CONNECT relay for the log and CDN reads,
//! the OHTTP relay behind a door that counts the device's connections, a wallet of tokens of a
//! logged issuer key. The device picks the instance from the logged newest index, seals to its
//! logged publication evidence, and writes a receipt `pp check-receipt` accepts; a stale index and
//! an index without a gateway key are refused before anything goes to the OHTTP relay or a token
//! is taken.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pp_protocol::cdn_index::{CdnIndex, CdnInstance, INDEX_FILE, SCHEMA, instance_id};
use pp_services::gateway::{Gateway, InstanceAddress, InstanceMap, challenge};
use pp_services::instances::InstanceTable;
use pp_services::loopback::WitnessedLog;
use pp_services::orr::ObliviousRelay;
use pp_services::reads::ReadUpstream;
use pp_services::relay::Relay;
use pp_services::tunnel::{TunnelCounters, TunnelLimits};
use pp_tokens::{Client, Issuer, IssuerKeyEntry, SpentTokens};
use pp_translog::receipt::ReceiptPath;
use sha2::{Digest, Sha256};

use super::MAX_INDEX_AGE_SECS;
use super::enclave::{Enclave, enclave, request, server};
use crate::config::{Config, RequestPath};
use crate::issuer_keys::LoggedKey;
use crate::reads::relay_tests::{door, serve_tls};
use crate::test_fixture::{bundle, log, manifest, scratch, test_root};
use crate::wallet::Wallet;

const RELAY: &str = "relay.pp.test";
const GATEWAY: &str = "gateway.pp.test";
const ISSUER: &str = "issuer.pp.test";
const SECRET: &str = "operator secret";

struct World {
    config: Config,
    dir: std::path::PathBuf,
    log: WitnessedLog,
    cdn: std::path::PathBuf,
    enclave: Enclave,
    gateway_key: Vec<u8>,
    instance: CdnInstance,
    /// TCP connections the device made to the OHTTP relay.
    ohttp_connections: Arc<AtomicUsize>,
}

fn world() -> World {
    let dir = scratch("oneshot-ask");
    let certs = dir.join("certs");
    pp_services::tls::write_dev_certs(&certs, &[RELAY, GATEWAY, "localhost"]).unwrap();
    let e = enclave(1);
    let (manifest, measurement, release_ref) = manifest();
    let issuer = Issuer::generate().unwrap();
    let now = pp_translog::checkpoint::unix_now();
    let entry = IssuerKeyEntry::new(
        ISSUER,
        issuer.public_key().clone(),
        1,
        now - 100,
        now + 3600,
    )
    .unwrap();
    let mut l = log(&dir);
    l.append(&manifest).unwrap();
    let entry_index = l.append(&entry.to_vec()).unwrap();
    let log = WitnessedLog::start(&dir, l, SECRET).unwrap();

    // The CDN: the instance's publication evidence (bound to its real key) and the manifest.
    let cdn = dir.join("cdn");
    std::fs::create_dir_all(cdn.join("evidence")).unwrap();
    std::fs::create_dir_all(cdn.join("releases")).unwrap();
    let report_data = pp_attestation::publication_report_data(&release_ref, &e.key_config);
    let evidence = bundle(measurement, &report_data, &e.key_config, release_ref);
    let key_hash: [u8; 32] = Sha256::digest(&e.key_config).into();
    let instance = CdnInstance {
        id: instance_id(&key_hash),
        key_config_sha256: hex::encode(key_hash),
        evidence_sha256: hex::encode(Sha256::digest(&evidence)),
        release_ref: hex::encode(release_ref),
    };
    std::fs::write(cdn.join(instance.evidence_path()), &evidence).unwrap();
    std::fs::write(cdn.join(instance.release_path()), &manifest).unwrap();
    let cdn_service = Arc::new(pp_services::cdn::Cdn { root: cdn.clone() });
    let cdn_url = crate::logged_index::tests::serve(move |req| {
        let s = cdn_service.clone();
        async move { s.handle(req).await }
    });

    // The gateway: reads of the log and the CDN, the OGR, the instance's one-shot port.
    let ohttp = server(0x44);
    let gateway_key = ohttp.config().encode().unwrap();
    let gateway = Arc::new(Gateway {
        instances: InstanceTable::fixed(InstanceMap {
            instances: vec![InstanceAddress {
                id: instance.id.clone(),
                address: "127.0.0.1:1".into(),
                oneshot_address: Some(e.addr.to_string()),
            }],
        }),
        ohttp: Some(ohttp),
        issuer_keys: vec![entry.clone()],
        issuer_request_uri: format!("https://{ISSUER}/token-request"),
        challenge: challenge(ISSUER, GATEWAY).unwrap(),
        spent: pp_services::spent_store::SpentStore::File(
            SpentTokens::open(&dir.join("spent.bin")).unwrap(),
        ),
        limits: TunnelLimits::new(4),
        counters: Arc::new(TunnelCounters::default()),
        reads: [&log.url, &cdn_url]
            .iter()
            .map(|u| ReadUpstream::parse(u).unwrap())
            .collect(),
    });
    let gateway_addr = serve_tls(&certs, GATEWAY, move |req| gateway.clone().handle(req));
    let connect = Arc::new(Relay {
        upstreams: vec![(format!("{GATEWAY}:443"), gateway_addr.to_string())],
        turn: AtomicUsize::new(0),
        limits: TunnelLimits::new(8),
        counters: Arc::new(TunnelCounters::default()),
    });
    let connect_addr = serve_tls(&certs, RELAY, move |req| connect.clone().handle(req));
    let orr = Arc::new(
        ObliviousRelay::new(
            &format!("https://{GATEWAY}/.well-known/ohttp-gateway={gateway_addr}"),
            &certs.join("ca.pem"),
        )
        .unwrap(),
    );
    let orr_addr = serve_tls(&certs, "localhost", move |req| orr.clone().handle(req));
    let door = door(orr_addr);
    let port = door.url.rsplit(':').next().unwrap();

    let ark = dir.join("ark.der");
    std::fs::write(&ark, test_root(0).ark_der()).unwrap();
    std::fs::write(dir.join("credential"), "unused").unwrap();
    let config: Config = toml::from_str(&format!(
        "state_dir = \"{}\"\n\
         [relay]\naddress = \"{connect_addr}\"\nserver_name = \"{RELAY}\"\n\
         ohttp_url = \"https://localhost:{port}/\"\n\
         [gateway]\nauthority = \"{GATEWAY}:443\"\nserver_name = \"{GATEWAY}\"\n\
         [issuer]\nurl = \"https://{ISSUER}\"\ncredential_file = \"{}\"\nlow_water = 0\n\
         [cdn]\nurl = \"{cdn_url}\"\n\
         [log]\nurl = \"{}\"\npublic_key = \"{}\"\norigin = \"{}\"\nwitnesses = [\"{}\"]\n\
         [trust]\ntls_ca = \"{}\"\ntest_root_ark = \"{}\"\n",
        dir.join("state").display(),
        dir.join("credential").display(),
        log.url,
        log.public_key_hex,
        log.origin,
        log.witness_vkey,
        certs.join("ca.pem").display(),
        ark.display(),
    ))
    .unwrap();
    // Two tokens of the logged key in the wallet, as if fetched long ago.
    let challenge = challenge(ISSUER, GATEWAY).unwrap();
    let tokens: Vec<_> = (0..2)
        .map(|_| {
            let (req, pending) = Client::prepare(&challenge, &entry.key).unwrap();
            Client::finalize(pending, &issuer.issue(&req).unwrap()).unwrap()
        })
        .collect();
    let logged = LoggedKey {
        entry: entry.clone(),
        log_index: entry_index,
    };
    Wallet::new(&config.state_dir)
        .store(&logged, &tokens)
        .unwrap();
    // The user opted in (nothing is sent before).
    crate::consent::opt_in(&config.state_dir).unwrap();
    World {
        config,
        dir,
        log,
        cdn,
        enclave: e,
        gateway_key,
        instance,
        ohttp_connections: door.seen,
    }
}

impl World {
    /// Logs an index of the instance published at `published`, with the gateway key or not,
    /// and serves it at the CDN.
    fn publish(&self, published: u64, gateway_key: bool) {
        let index = CdnIndex {
            schema: SCHEMA.into(),
            published,
            instances: vec![self.instance.clone()],
            gateway_key_config: gateway_key.then(|| hex::encode(&self.gateway_key)),
        }
        .to_vec();
        pp_services::publish::append_to_log(&self.log.url, SECRET, &index).unwrap();
        std::fs::write(self.cdn.join(INDEX_FILE), index).unwrap();
    }

    fn ask(&self) -> Result<crate::request::Answer, String> {
        let mut trace = |_: String| {};
        crate::request::ask(&self.config, &request(), RequestPath::Oneshot, &mut trace)
            .map_err(|e| format!("{e:#}"))
    }

    fn refused(&self) -> String {
        self.ask().err().expect("the request was answered")
    }

    fn tokens(&self) -> usize {
        let now = pp_translog::checkpoint::unix_now();
        Wallet::new(&self.config.state_dir).available(now).unwrap()
    }
}

#[test]
fn ask_sends_one_shot_to_the_logged_instance_and_its_receipt_checks() {
    let w = world();
    let now = pp_translog::checkpoint::unix_now();
    w.publish(now - 60, true);
    let answer = w.ask().unwrap();
    assert_eq!(answer.path, RequestPath::Oneshot);
    assert_eq!(answer.instance, w.instance.id);
    assert_eq!(answer.receipt.path, ReceiptPath::Oneshot);
    assert_eq!(w.enclave.opened.load(Ordering::SeqCst), 1);
    assert_eq!(w.ohttp_connections.load(Ordering::SeqCst), 1);
    assert_eq!(w.tokens(), 1);
    let checked = crate::check_receipt::check(&answer.receipt_path, &w.config).unwrap();
    assert_eq!(checked.path, ReceiptPath::Oneshot);
    assert_eq!(checked.instance, w.instance.id);
    let _ = &w.dir;
}

#[test]
fn ask_refuses_a_stale_index_or_one_without_a_gateway_key_and_sends_nothing() {
    let w = world();
    let now = pp_translog::checkpoint::unix_now();
    w.publish(now - MAX_INDEX_AGE_SECS - 120, true);
    let err = w.refused();
    assert!(
        err.contains("the operator has not published the enclave's current key"),
        "{err}"
    );
    w.publish(now, false);
    let err = w.refused();
    assert!(err.contains("has no gateway_key_config"), "{err}");
    assert_eq!(w.ohttp_connections.load(Ordering::SeqCst), 0);
    assert_eq!(w.enclave.opened.load(Ordering::SeqCst), 0);
    assert_eq!(w.tokens(), 2, "a refused request took a token");
}
