//! Issuer key consistency with the real services on loopback: a transparency log, an issuer and
//! a gateway (plain HTTP here; the relay and TLS are the e2e test's part). The device accepts a
//! token key only with an inclusion proof of its `pp-issuer-key/1` entry, refuses a gateway
//! challenge naming another key, drops tokens of a retired key and fetches new ones; the issuer
//! answers RFC 9578 single issuance.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use pp_device::issuer_keys::{self, LoggedKey};
use pp_device::releases::LogClient;
use pp_device::wallet::{TokenSource, Wallet};
use pp_services::gateway::RETIRED_KEY_MESSAGE;
use pp_services::issuer::{REQUEST_PATH, unix_now};
use pp_tokens::request::{TOKEN_REQUEST_MEDIA_TYPE, TOKEN_RESPONSE_MEDIA_TYPE};
use pp_tokens::{Client, TokenChallenge, TokenResponse, Verifier};

mod common;

use common::*;

fn view(gateway: SocketAddr) -> anyhow::Result<issuer_keys::GatewayKeyView> {
    issuer_keys::fetch_over(&mut TcpStream::connect(gateway).unwrap(), ORIGIN, "i-0")
}

fn source<'a>(
    issuer_url: &'a str,
    issuer_name: &'a str,
    credential: &'a Path,
    challenge: &'a TokenChallenge,
    log: &'a LogClient,
) -> TokenSource<'a> {
    TokenSource {
        issuer_url,
        credential_file: credential,
        issuer_name,
        challenge,
        batch: 2,
        low_water: 0,
        log,
    }
}

/// The issuer (through the operator's gateway directory) hands this account a fresh key that is
/// not in the log: the device refuses before any token request.
#[test]
fn fresh_unlogged_key_is_refused() {
    let net = Net::new();
    let now = unix_now();
    let issuer_addr = net.issuer(vec![(key(1), current(now).0, current(now).1)]);
    let name = issuer_addr.to_string();
    let logged = entry(&name, &key(0), 1, current(now));
    let log = net.log(&[&logged]);
    // The fresh key comes with a well-formed entry, but one never appended to the log.
    let fresh = entry(&name, &key(1), 1, current(now));
    let gateway = net.gateway(&name, vec![fresh], "fresh");
    let credential = net.dir.path().join("secret");
    std::fs::write(&credential, SECRET).unwrap();
    let challenge = expected(&name);
    let url = format!("http://{issuer_addr}");
    let src = source(&url, &name, &credential, &challenge, &log);
    let wallet = Wallet::new(net.dir.path());
    let err = wallet.take(&src, now, || view(gateway)).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("issuer key not in the log"), "{text}");
    assert!(text.contains("refusing to fetch tokens"), "{text}");
    assert_eq!(wallet.count(key(1).public_key().token_key_id()).unwrap(), 0);
}

/// The directory shows the logged key, but the gateway's challenge names another one.
#[test]
fn gateway_challenge_naming_unlogged_key_is_refused() {
    let net = Net::new();
    let now = unix_now();
    let name = "issuer.pp.test";
    let logged = entry(name, &key(0), 1, current(now));
    let log = net.log(&[&logged]);
    let honest = net.gateway(name, vec![logged.clone()], "honest");
    let other = net.gateway(name, vec![entry(name, &key(1), 1, current(now))], "other");
    let good = view(honest).unwrap();
    let chosen = issuer_keys::choose(&good, &expected(name), name, now, &log).unwrap();
    assert_eq!(chosen.entry, logged);
    let mut bad = good.clone();
    // Fetching from the other gateway works (only `choose` refuses): take its challenge.
    bad.challenge = view(other).unwrap().challenge;
    let err = issuer_keys::choose(&bad, &expected(name), name, now, &log).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("the gateway's PrivateToken challenge names token key"),
        "{text}"
    );
    assert!(text.contains("issuer key not in the log"), "{text}");
    // A challenge for another origin is refused too.
    let err = issuer_keys::choose(&good, &expected("elsewhere"), name, now, &log).unwrap_err();
    assert!(format!("{err:#}").contains("not the one this device expects"));
}

/// A token of a retired key is refused by the gateway with a clear message; the device drops
/// the retired key's tokens and fetches new ones under the current logged key, which the
/// gateway accepts.
#[test]
fn retired_key_token_refused_and_device_recovers() {
    let net = Net::new();
    let now = unix_now();
    let retired_window = (now - 1000, now - 10);
    let issuer_addr = net.issuer(vec![
        (key(0), retired_window.0, retired_window.1),
        (key(1), current(now).0, current(now).1),
    ]);
    let name = issuer_addr.to_string();
    let old = entry(&name, &key(0), 1, retired_window);
    let new = entry(&name, &key(1), 2, current(now));
    let log = net.log(&[&old, &new]);
    let gateway = net.gateway(&name, vec![old.clone(), new.clone()], "retire");
    let challenge = expected(&name);
    // A token of the old key, issued while it was current.
    let (request, pending) = Client::prepare(&challenge, &old.key).unwrap();
    let stale = Client::finalize(pending, &key(0).issue(&request).unwrap()).unwrap();
    let (status, text) = spend(gateway, &stale);
    assert_eq!(status, 401, "{text}");
    assert!(text.contains(RETIRED_KEY_MESSAGE), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("www-authenticate: privatetoken")
    );

    // The device still holds tokens of the old key: it drops them and fetches new ones.
    let wallet = Wallet::new(net.dir.path());
    let old_logged = LoggedKey {
        entry: old.clone(),
        log_index: 0,
    };
    wallet
        .store(&old_logged, std::slice::from_ref(&stale))
        .unwrap();
    let credential = net.dir.path().join("secret");
    std::fs::write(&credential, SECRET).unwrap();
    let url = format!("http://{issuer_addr}");
    let src = source(&url, &name, &credential, &challenge, &log);
    let fresh = wallet.take(&src, now, || view(gateway)).unwrap();
    assert_eq!(&fresh.token_key_id, new.token_key_id());
    assert_eq!(wallet.count(old.token_key_id()).unwrap(), 0);
    assert_eq!(wallet.count(new.token_key_id()).unwrap(), 1);
    // The gateway accepts it (then finds the instance down: 502, past the token checks).
    let (status, text) = spend(gateway, &fresh);
    assert_eq!(status, 502, "{text}");
}

/// RFC 9578 §5 single issuance: one `application/private-token-request`, one
/// `application/private-token-response` that finalizes into a token the verifier accepts.
#[test]
fn single_issuance() {
    let net = Net::new();
    let now = unix_now();
    let issuer_addr = net.issuer(vec![(key(2), current(now).0, current(now).1)]);
    let challenge = expected("issuer.pp.test");
    let public = key(2).public_key().clone();
    let (request, pending) = Client::prepare(&challenge, &public).unwrap();
    let url = format!("http://{issuer_addr}{REQUEST_PATH}");
    let post = |body: Vec<u8>| {
        ureq::post(&url)
            .header("content-type", TOKEN_REQUEST_MEDIA_TYPE)
            .header("authorization", format!("Bearer {SECRET}"))
            .config()
            .http_status_as_error(false)
            .build()
            .send(&body[..])
            .unwrap()
    };
    let mut response = post(request.to_vec());
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        TOKEN_RESPONSE_MEDIA_TYPE
    );
    let body = response.body_mut().read_to_vec().unwrap();
    let token = Client::finalize(pending, &TokenResponse::parse(&body).unwrap()).unwrap();
    Verifier::verify(&token, &challenge, &public).unwrap();
    // A request for a key the issuer does not hold is refused.
    let (mut other, _) = Client::prepare(&challenge, key(0).public_key()).unwrap();
    other.truncated_token_key_id = public.truncated_token_key_id().wrapping_add(1);
    assert_eq!(post(other.to_vec()).status(), 400);
}

/// The operator logs a second key for the same epoch (one per account, say): each has an
/// inclusion proof, but the device reads every log entry and refuses an issuer holding two keys
/// at once, whichever one a gateway shows it.
#[test]
fn a_logged_key_per_account_is_refused() {
    let net = Net::new();
    let now = unix_now();
    let name = "issuer.pp.test";
    let mine = entry(name, &key(0), 1, current(now));
    let theirs = entry(name, &key(1), 1, current(now));
    let log = net.log(&[&mine, &theirs]);
    let gateway = net.gateway(name, vec![mine], "per-account");
    let err =
        issuer_keys::choose(&view(gateway).unwrap(), &expected(name), name, now, &log).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("the log holds two keys of issuer issuer.pp.test for epoch 1"),
        "{text}"
    );
}
