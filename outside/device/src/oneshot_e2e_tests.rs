//! The one-shot path end to end through the real services: the device's [`Oneshot`] → the
//! relay's Oblivious Relay Resource (`pp_services::orr`) → the gateway's Oblivious Gateway
//! Resource (`pp_services::ogr`, real Privacy Pass tokens, the spent-token store) → a test
//! enclave's one-shot port. What the device reads for each thing the real gateway refuses.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use pp_services::gateway::{Gateway, InstanceAddress, InstanceMap, challenge};
use pp_services::instances::InstanceTable;
use pp_services::orr::ObliviousRelay;
use pp_services::tunnel::{TunnelCounters, TunnelLimits};
use pp_tokens::{Client, Issuer, IssuerKeyEntry, SpentTokens};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::enclave::{Enclave, enclave, id_of, request, server};
use super::{Oneshot, failure_text};
use crate::ohttp_relay::OhttpRelay;
use crate::reads::relay_tests::{door, serve_tls};
use crate::test_fixture::scratch;

const RELAY: &str = "relay.pp.test";
const GATEWAY: &str = "gateway.pp.test";
const ISSUER: &str = "issuer.pp.test";

/// The operator's real relay and gateway on loopback, with instances `enclaves`.
struct Services {
    relay: String,
    ca: std::path::PathBuf,
    relay_seen: Arc<std::sync::atomic::AtomicUsize>,
    gateway_key: Vec<u8>,
    issuer: Issuer,
    entry: IssuerKeyEntry,
}

fn start(enclaves: &[&Enclave]) -> Services {
    start_with_slots(enclaves, 4)
}

/// [`start`] with a gateway of `slots` slots (none: every request is answered 503 inside).
fn start_with_slots(enclaves: &[&Enclave], slots: usize) -> Services {
    let dir = scratch("oneshot-e2e");
    let certs = dir.join("certs");
    pp_services::tls::write_dev_certs(&certs, &[RELAY, GATEWAY]).unwrap();
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
    let ohttp = server(0x33);
    let gateway_key = ohttp.config().encode().unwrap();
    let instances = enclaves
        .iter()
        .map(|e| InstanceAddress {
            id: id_of(&e.key_config),
            address: "127.0.0.1:1".into(),
            oneshot_address: Some(e.addr.to_string()),
        })
        .collect();
    let gateway = Arc::new(Gateway {
        instances: InstanceTable::fixed(InstanceMap { instances }),
        ohttp: Some(ohttp),
        issuer_keys: vec![entry.clone()],
        issuer_request_uri: format!("https://{ISSUER}/token-request"),
        challenge: challenge(ISSUER, GATEWAY).unwrap(),
        spent: pp_services::spent_store::SpentStore::File(
            SpentTokens::open(&dir.join("spent.bin")).unwrap(),
        ),
        limits: TunnelLimits::new(slots),
        counters: Arc::new(TunnelCounters::default()),
        reads: Vec::new(),
    });
    let gateway_addr = serve_tls(&certs, GATEWAY, move |req| gateway.clone().handle(req));
    let relay = Arc::new(
        ObliviousRelay::new(
            &format!("https://{GATEWAY}/.well-known/ohttp-gateway={gateway_addr}"),
            &certs.join("ca.pem"),
        )
        .unwrap(),
    );
    let relay_addr = serve_tls(&certs, RELAY, move |req| relay.clone().handle(req));
    let door = door(relay_addr);
    Services {
        relay: door.url.replace("http://", "https://") + "/",
        ca: certs.join("ca.pem"),
        relay_seen: door.seen,
        gateway_key,
        issuer,
        entry,
    }
}

impl Services {
    /// A token the gateway accepts, issued by the logged key.
    fn token(&self) -> pp_tokens::Token {
        let challenge = challenge(ISSUER, GATEWAY).unwrap();
        let (req, pending) = Client::prepare(&challenge, &self.entry.key).unwrap();
        Client::finalize(pending, &self.issuer.issue(&req).unwrap()).unwrap()
    }

    /// The device's one-shot sender, sealing the outer layer to `gateway_key`.
    fn device(&self, gateway_key: &[u8]) -> Oneshot {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let relay = OhttpRelay::new(&self.relay, crate::tunnel::client_config(roots))
            .unwrap()
            .with_server_name(RELAY);
        Oneshot::new(relay, gateway_key.to_vec(), GATEWAY)
    }

    fn ask(&self, e: &Enclave, token: &pp_tokens::Token) -> Result<(), String> {
        self.device(&self.gateway_key)
            .attempt(&id_of(&e.key_config), &e.key_config, token, &request())
            .map(|_| ())
            .map_err(failure_text)
    }
}

#[test]
fn a_oneshot_request_goes_through_the_real_relay_and_gateway_and_spends_its_token_once() {
    let e = enclave(1);
    let s = start(&[&e]);
    let token = s.token();
    s.ask(&e, &token).unwrap();
    assert_eq!(e.opened.load(Ordering::SeqCst), 1);
    assert_eq!(s.relay_seen.load(Ordering::SeqCst), 1);
    // The same token again: the gateway refuses it before anything reaches the enclave.
    let err = s.ask(&e, &token).unwrap_err();
    assert_eq!(
        err,
        "the gateway refused the token as already spent (HTTP 403)"
    );
    assert_eq!(e.opened.load(Ordering::SeqCst), 1);
}

#[test]
fn the_real_gateways_refusals_reach_the_user_as_clear_errors() {
    let (e, rotated) = (enclave(1), enclave(2));
    let s = start(&[&e, &rotated]);
    // The outer layer sealed to a key the gateway does not hold (an index naming another
    // gateway key): 400, nothing forwarded.
    let other = server(0x33).config().encode().unwrap();
    let err = s
        .device(&other)
        .attempt(&id_of(&e.key_config), &e.key_config, &s.token(), &request())
        .map_err(failure_text)
        .unwrap_err();
    assert!(
        err.starts_with("the gateway could not decapsulate the request (HTTP 400)"),
        "{err}"
    );
    // An instance the gateway does not route: 404.
    let unknown = enclave(3);
    let err = s
        .device(&s.gateway_key)
        .attempt(
            &id_of(&unknown.key_config),
            &unknown.key_config,
            &s.token(),
            &request(),
        )
        .map_err(failure_text)
        .unwrap_err();
    assert!(err.starts_with("the gateway knows no instance"), "{err}");
    // Sealed to the key of instance `e` but addressed to `rotated` (which holds another key id):
    // the enclave answers 10 and the gateway passes it on.
    let err = s
        .device(&s.gateway_key)
        .attempt(
            &id_of(&rotated.key_config),
            &e.key_config,
            &s.token(),
            &request(),
        )
        .map_err(failure_text)
        .unwrap_err();
    assert!(
        err.ends_with(
            "refused the request: the instance no longer holds that key: the index is \
             stale (the operator has not published the enclave's current key)"
        ),
        "{err}"
    );
    // A token of no logged key: 401.
    let forged = pp_tokens::Token {
        authenticator: [9; 256],
        ..s.token()
    };
    let err = s.ask(&e, &forged).unwrap_err();
    assert!(
        err.starts_with("the gateway refused the token (HTTP 401)"),
        "{err}"
    );
    assert_eq!(e.opened.load(Ordering::SeqCst), 0);
    assert_eq!(rotated.opened.load(Ordering::SeqCst), 0);
    assert_eq!(unknown.opened.load(Ordering::SeqCst), 0);
}

/// The real gateway with no free slot answers 503 inside the encapsulated response, before the
/// spend: the device asks the same instance again with the same token, re-sealed, and gives up
/// after `ATTEMPTS` without trying another instance.
#[test]
fn a_busy_real_gateway_is_asked_again_for_the_same_instance_only() {
    let (e, other) = (enclave(1), enclave(2));
    let s = start_with_slots(&[&e, &other], 0);
    let err = s.ask(&e, &s.token()).unwrap_err();
    assert!(
        err.starts_with(&format!(
            "instance {} was tried {} times; the request is not sent to another instance: the \
             gateway answered 503",
            id_of(&e.key_config),
            crate::request::ATTEMPTS
        )),
        "{err}"
    );
    assert_eq!(
        s.relay_seen.load(Ordering::SeqCst),
        crate::request::ATTEMPTS
    );
    assert_eq!(e.opened.load(Ordering::SeqCst), 0);
    assert_eq!(other.opened.load(Ordering::SeqCst), 0);
}
