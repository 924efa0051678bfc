//! The one-shot path of the device ([`super::Oneshot`]) over real TLS, real RFC 9458
//! encapsulation and BHTTP, against an operator on loopback whose gateway can misbehave on
//! purpose, and test enclaves holding real HPKE keys that refuse as the contract says (error 5:
//! did not open, 9: replayed `enc`, 10: unknown key id). Each refusal must reach the user as a
//! clear error, and once the POST left the device the request must go to no other instance.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pp_client::inner::{self, InnerResponse};
use pp_protocol::app::AppResponse;
use pp_protocol::cdn_index::{CdnIndex, CdnInstance, SCHEMA, instance_id};
use pp_services::http::{Reply, error, read_body, reply};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

use super::{MAX_INDEX_AGE_SECS, Oneshot, check_fresh};
use crate::ohttp_relay::OhttpRelay;
use crate::reads::relay_tests::{door, serve_tls};
use crate::request::{ATTEMPTS, Failure};
use crate::test_fixture::scratch;

#[path = "oneshot_ask_tests.rs"]
mod ask;
#[path = "oneshot_e2e_tests.rs"]
mod e2e;
#[path = "oneshot_test_enclave.rs"]
pub(crate) mod enclave;

use enclave::{Enclave, enclave, forward, id_of, refused, request, server, token};

const RELAY: &str = "relay.pp.test";
const GATEWAY: &str = "gateway.pp.test";

/// What the operator's gateway does with a request.
#[derive(Clone)]
enum Script {
    /// Forwards the sealed request to the instance the path names (an honest gateway).
    Forward,
    /// Forwards it to this other instance instead (a gateway that swaps the inner body).
    ForwardTo(SocketAddr),
    /// Forwards a captured copy first, then the request itself (a replay).
    Replay,
    /// Flips a byte of the sealed request before forwarding it.
    Alter,
    /// Flips a byte of the enclave's sealed response.
    AlterResponse,
    /// Answers this inner response, forwarding nothing.
    Answer(InnerResponse),
    /// Answers `n` of these first, then forwards.
    First(usize, InnerResponse),
    /// Forwards the first `n` requests but answers them 503 (a gateway hiding that the enclave
    /// got them), then forwards honestly.
    ForwardThenBusy(usize),
    /// A plain HTTP status before decapsulation (relay or gateway).
    Outer(u16),
}

/// The operator on loopback: the OHTTP relay's resource and the gateway behind it in one TLS
/// server (the device sees the same), a door counting the device's connections to it, and the
/// instances the gateway routes to.
struct Operator {
    dir: std::path::PathBuf,
    relay_url: String,
    /// TCP connections the device made to the relay.
    connections: Arc<AtomicUsize>,
    /// The inner requests the gateway decapsulated: (path, authorization).
    seen: Arc<Mutex<Vec<(String, String)>>>,
    script: Arc<Mutex<Script>>,
    gateway_key: Vec<u8>,
}

impl Operator {
    fn start(instances: Vec<(String, SocketAddr)>) -> Self {
        let dir = scratch("oneshot");
        let certs = dir.join("certs");
        pp_services::tls::write_dev_certs(&certs, &[RELAY, GATEWAY]).unwrap();
        let gateway = Arc::new(server(0x2a));
        let gateway_key = gateway.config().encode().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(Script::Forward));
        let routes = Arc::new(instances);
        let (s, g) = (seen.clone(), script.clone());
        let addr = serve_tls(&certs, RELAY, move |req| {
            let (gateway, seen, script, routes) =
                (gateway.clone(), s.clone(), g.clone(), routes.clone());
            async move {
                let body = match read_body(req, 2 << 20).await {
                    Ok(c) => c,
                    Err(reply) => return reply,
                };
                tokio::task::spawn_blocking(move || {
                    handle(&gateway, &seen, &script, &routes, &body.parts, &body.body)
                })
                .await
                .unwrap()
            }
        });
        let door = door(addr);
        let port = door.url.rsplit(':').next().unwrap().to_string();
        Self {
            dir,
            relay_url: format!("https://{RELAY}:{port}/"),
            connections: door.seen,
            seen,
            script,
            gateway_key,
        }
    }

    fn set(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }

    fn tls(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.dir.join("certs/ca.pem")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        crate::tunnel::client_config(roots)
    }

    /// The device's one-shot sender for this operator. The relay's name resolves through the
    /// door's loopback address.
    fn device(&self) -> Oneshot {
        let url = self.relay_url.replace(RELAY, "localhost");
        let relay = OhttpRelay::new(&url, self.tls()).unwrap();
        Oneshot::new(
            relay.with_server_name(RELAY),
            self.gateway_key.clone(),
            GATEWAY,
        )
    }
}

fn handle(
    gateway: &ohttp::Server,
    seen: &Mutex<Vec<(String, String)>>,
    script: &Mutex<Script>,
    routes: &[(String, SocketAddr)],
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> Reply {
    let script = script.lock().unwrap().clone();
    if let Script::Outer(status) = script {
        return error(hyper::StatusCode::from_u16(status).unwrap(), "refused");
    }
    assert_eq!(parts.method, hyper::Method::POST);
    assert_eq!(
        parts.headers[hyper::header::CONTENT_TYPE],
        inner::OHTTP_REQUEST_MEDIA_TYPE
    );
    let Ok((message, opener)) = gateway.decapsulate(body) else {
        return error(hyper::StatusCode::BAD_REQUEST, "");
    };
    let request = inner::parse_inner_request(&message).unwrap();
    let path = String::from_utf8(request.path.clone()).unwrap();
    seen.lock()
        .unwrap()
        .push((path, request.authorization.clone().unwrap_or_default()));
    assert_eq!(request.authority, GATEWAY.as_bytes());
    let id = request.instance_id().unwrap().to_string();
    let to = routes.iter().find(|(i, _)| *i == id).unwrap().1;
    let mut sealed = request.body.clone();
    let answer = match script {
        Script::Forward => forward(to, &sealed),
        Script::ForwardTo(other) => forward(other, &sealed),
        Script::Replay => {
            forward(to, &sealed);
            forward(to, &sealed)
        }
        Script::Alter => {
            let last = sealed.len() - 1;
            sealed[last] ^= 1;
            forward(to, &sealed)
        }
        Script::AlterResponse => match forward(to, &sealed) {
            InnerResponse::Sealed(mut r) => {
                r[40] ^= 1;
                InnerResponse::Sealed(r)
            }
            other => other,
        },
        Script::Answer(answer) => answer,
        Script::First(n, answer) => {
            let earlier = seen.lock().unwrap().len();
            if earlier <= n {
                answer
            } else {
                forward(to, &sealed)
            }
        }
        Script::ForwardThenBusy(n) => {
            let answer = forward(to, &sealed);
            if seen.lock().unwrap().len() <= n {
                refused(503, "busy")
            } else {
                answer
            }
        }
        Script::Outer(_) => unreachable!(),
    };
    let inner_bytes = inner::build_inner_response(&answer).unwrap();
    let outer = opener.encapsulate(&inner_bytes).unwrap();
    reply(
        hyper::StatusCode::OK,
        inner::OHTTP_RESPONSE_MEDIA_TYPE,
        outer,
    )
}

/// One instance (key id 1) behind the operator.
fn one() -> (Operator, Enclave, String) {
    let e = enclave(1);
    let id = id_of(&e.key_config);
    let op = Operator::start(vec![(id.clone(), e.addr)]);
    (op, e, id)
}

pub(crate) fn failure_text(f: Failure) -> String {
    match f {
        Failure::Fatal(e) => format!("{e:#}"),
        Failure::StaleKey(e) => format!("stale key: {e:#}"),
        Failure::Retry(e) | Failure::RetryUnspent(e) => format!("retry: {e:#}"),
    }
}

#[test]
fn a_oneshot_request_is_answered_through_relay_and_gateway() {
    let (op, e, id) = one();
    let answer = op
        .device()
        .attempt(&id, &e.key_config, &token(1), &request())
        .map_err(failure_text)
        .unwrap();
    assert_eq!(
        answer,
        AppResponse::Summary {
            bullets: Vec::new(),
            picks: vec![0],
            truncated: 0,
            left_out: 0
        }
    );
    assert_eq!(e.opened.load(Ordering::SeqCst), 1);
    let seen = op.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [(
            format!("/instances/{id}"),
            pp_tokens::authorization_value(&token(1))
        )]
    );
    assert_eq!(op.connections.load(Ordering::SeqCst), 1);
}

/// Each attack or refusal of contract §4, and the error the user reads. Nothing is retried on
/// another instance (each case has one POST).
#[test]
fn each_refusal_is_a_clear_device_error() {
    let (op, e, id) = one();
    // Another enclave under the same key id but another key, and one under another key id (an
    // instance that rotated its key away).
    let (same_id, rotated) = (enclave(1), enclave(2));
    let cases: Vec<(Script, &str)> = vec![
        (
            Script::ForwardTo(same_id.addr),
            "refused the request: the enclave could not open the request: it was not delivered \
             to the instance it was sealed to, or was altered",
        ),
        (
            Script::Alter,
            "the enclave could not open the request: it was not delivered to the instance it was \
             sealed to, or was altered",
        ),
        (
            Script::Replay,
            "refused the request: replayed: a request with the same encapsulated key was already \
             opened under this key",
        ),
        (
            Script::ForwardTo(rotated.addr),
            "refused the request: the instance no longer holds that key: the index is stale",
        ),
        (
            Script::AlterResponse,
            "the enclave's sealed response is refused: the response did not open",
        ),
        (
            Script::Answer(refused(403, "token already spent")),
            "the gateway refused the token as already spent (HTTP 403)",
        ),
        (
            Script::Answer(refused(401, "the token did not verify")),
            "the gateway refused the token (HTTP 401): the token did not verify",
        ),
        (
            Script::Answer(refused(404, "no such instance")),
            "the gateway knows no instance",
        ),
        (
            Script::Answer(refused(502, "the instance cannot be reached")),
            "the gateway could not reach instance",
        ),
        (
            Script::Outer(400),
            "the gateway could not decapsulate the request (HTTP 400): it does not hold the key \
             configuration the logged index names for it, or the request was altered on the way",
        ),
        (
            Script::Outer(413),
            "refused the request as too large (HTTP 413)",
        ),
        (
            Script::Outer(415),
            "refused the request's media type (HTTP 415)",
        ),
        (
            Script::Outer(502),
            "the OHTTP relay could not reach the gateway (HTTP 502): the request may have \
             reached instance",
        ),
    ];
    for (script, expected) in cases {
        op.set(script);
        let before = op.connections.load(Ordering::SeqCst);
        let err = op
            .device()
            .attempt(&id, &e.key_config, &token(1), &request())
            .map_err(failure_text)
            .unwrap_err();
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        assert!(!err.starts_with("retry"), "{err}");
        assert_eq!(op.connections.load(Ordering::SeqCst), before + 1, "{err}");
    }
    // The retired issuer key (the gateway's RETIRED_KEY_MESSAGE) is the stale-key failure the
    // token logic drops the key's tokens on.
    op.set(Script::Answer(refused(
        403,
        pp_services::gateway::RETIRED_KEY_MESSAGE,
    )));
    let err = op
        .device()
        .attempt(&id, &e.key_config, &token(1), &request())
        .map_err(failure_text)
        .unwrap_err();
    assert!(err.starts_with("stale key"), "{err}");
    assert_eq!(same_id.opened.load(Ordering::SeqCst), 0);
    assert_eq!(rotated.opened.load(Ordering::SeqCst), 0);
}

/// A gateway's 503 (before it records the spend) is asked again of the same instance with the
/// same token, re-sealed; never of another instance.
#[test]
fn a_503_is_retried_on_the_same_instance_with_the_same_token() {
    let (op, e, id) = one();
    op.set(Script::First(2, refused(503, "busy")));
    op.device()
        .attempt(&id, &e.key_config, &token(7), &request())
        .map_err(failure_text)
        .unwrap();
    let seen = op.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s == &seen[0]), "{seen:?}");
    assert_eq!(e.opened.load(Ordering::SeqCst), 1);
    // Busy every time: given up after ATTEMPTS, still on that one instance.
    op.seen.lock().unwrap().clear();
    op.set(Script::Answer(refused(503, "busy")));
    let err = op
        .device()
        .attempt(&id, &e.key_config, &token(8), &request())
        .map_err(failure_text)
        .unwrap_err();
    assert!(
        err.contains(&format!(
            "instance {id} was tried {ATTEMPTS} times; the request is not sent to another instance"
        )),
        "{err}"
    );
    assert_eq!(op.seen.lock().unwrap().len(), ATTEMPTS);
}

#[test]
fn a_gateway_that_forwards_and_answers_503_cannot_make_the_enclave_run_the_request_again() {
    // The retry carries the same sealed request (the same encapsulated key) in a new outer
    // layer: the enclave, which opened the first copy, refuses it as a replay.
    let (op, e, id) = one();
    op.set(Script::ForwardThenBusy(1));
    let err = op
        .device()
        .attempt(&id, &e.key_config, &token(9), &request())
        .map_err(failure_text)
        .unwrap_err();
    assert!(err.contains("replayed"), "{err}");
    assert_eq!(e.opened.load(Ordering::SeqCst), 1, "the handler ran once");
    assert_eq!(op.seen.lock().unwrap().len(), 2);
}

fn index(published: u64, gateway_key: Option<&[u8]>) -> CdnIndex {
    let key_hash: [u8; 32] = Sha256::digest(b"k").into();
    CdnIndex {
        schema: SCHEMA.into(),
        published,
        instances: vec![CdnInstance {
            id: instance_id(&key_hash),
            key_config_sha256: hex::encode(key_hash),
            evidence_sha256: "00".repeat(32),
            release_ref: "00".repeat(32),
        }],
        gateway_key_config: gateway_key.map(hex::encode),
    }
}

/// The configuration of a device using `op`.
fn config(op: &Operator) -> crate::config::Config {
    let ca = op.dir.join("certs/ca.pem");
    let mut config: crate::config::Config = toml::from_str(&format!(
        "state_dir = \"s\"\n\
         [relay]\naddress = \"127.0.0.1:1\"\nserver_name = \"{RELAY}\"\nohttp_url = \"{}\"\n\
         [gateway]\nauthority = \"{GATEWAY}:443\"\nserver_name = \"{GATEWAY}\"\n\
         [issuer]\nurl = \"http://issuer\"\ncredential_file = \"c\"\n\
         [cdn]\nurl = \"http://cdn\"\n\
         [log]\nurl = \"http://log\"\npublic_key = \"{}\"\n",
        op.relay_url.replace(RELAY, "localhost"),
        "11".repeat(32)
    ))
    .unwrap();
    config.trust.tls_ca = Some(ca);
    config
}

/// What `ask` does on the one-shot path once it holds the logged index: prepare (every check
/// before anything is sent), then the attempt.
fn ask_oneshot(
    op: &Operator,
    e: &Enclave,
    id: &str,
    index: &CdnIndex,
    now: u64,
) -> Result<AppResponse, String> {
    let config = config(op);
    // The user opted in (every POST checks it).
    crate::consent::opt_in(&config.state_dir).unwrap();
    let oneshot = Oneshot::prepare(&config, index, now).map_err(|e| format!("{e:#}"))?;
    let oneshot = Oneshot {
        relay: oneshot.relay.with_server_name(RELAY),
        ..oneshot
    };
    oneshot
        .attempt(id, &e.key_config, &token(1), &request())
        .map_err(failure_text)
}

/// The attack: an operator that stopped publishing (or serves devices an old logged index) gets
/// one-shot requests sealed to keys the instances may have dropped long ago, or that it kept.
#[test]
fn a_stale_index_is_refused_and_nothing_is_sent() {
    let (op, e, id) = one();
    let now = pp_translog::checkpoint::unix_now();
    let key = op.gateway_key.clone();
    ask_oneshot(
        &op,
        &e,
        &id,
        &index(now - MAX_INDEX_AGE_SECS, Some(&key)),
        now,
    )
    .unwrap();
    assert_eq!(op.connections.load(Ordering::SeqCst), 1);
    let stale = now - MAX_INDEX_AGE_SECS - 1;
    let err = ask_oneshot(&op, &e, &id, &index(stale, Some(&key)), now).unwrap_err();
    assert_eq!(
        err,
        format!(
            "the key CDN's newest logged index was published {} s ago, more than the 4500 s a \
             one-shot request accepts (key period 3600 s + slack 900 s): the operator has not \
             published the enclave's current key; refusing to seal a request to a key the \
             instance may no longer hold",
            MAX_INDEX_AGE_SECS + 1
        )
    );
    // A date far in the future would keep an index "fresh" for ever.
    let err = ask_oneshot(&op, &e, &id, &index(now + 86_400, Some(&key)), now).unwrap_err();
    assert!(err.contains("published 86400 s in the future"), "{err}");
    assert_eq!(
        op.connections.load(Ordering::SeqCst),
        1,
        "a refused index sent a request"
    );
    assert_eq!(e.opened.load(Ordering::SeqCst), 1);
}

#[test]
fn an_index_without_a_gateway_key_is_refused_and_nothing_is_sent() {
    let (op, e, id) = one();
    let now = pp_translog::checkpoint::unix_now();
    let err = ask_oneshot(&op, &e, &id, &index(now, None), now).unwrap_err();
    assert_eq!(
        err,
        "the key CDN's newest logged index has no gateway_key_config: the operator publishes no \
         Oblivious HTTP gateway key, so no one-shot request can be made (use --session)"
    );
    let err = ask_oneshot(&op, &e, &id, &index(now, Some(b"\x01\x00\x10")), now).unwrap_err();
    assert!(
        err.starts_with("the logged index's gateway_key_config is not an RFC 9458"),
        "{err}"
    );
    assert_eq!(op.connections.load(Ordering::SeqCst), 0);
}

#[test]
fn freshness_bounds() {
    let i = |published| index(published, None);
    assert!(check_fresh(&i(10_000), 10_000 + MAX_INDEX_AGE_SECS).is_ok());
    assert!(check_fresh(&i(10_000), 10_001 + MAX_INDEX_AGE_SECS).is_err());
    assert!(check_fresh(&i(10_900), 10_000).is_ok());
    assert!(check_fresh(&i(10_901), 10_000).is_err());
}
