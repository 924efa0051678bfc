//! Interoperability with an independent RFC 9578 implementation, Cloudflare's
//! `@cloudflare/privacypass-ts` (npm, version pinned with integrity hashes in
//! xtask/interop/privacypass-ts/package-lock.json): (a) it obtains a token from our issuer with
//! one `application/private-token-request` and our gateway accepts that token; (b) it verifies a
//! token made by our client. Needs node and the installed package: `cargo xtask test` installs it
//! (`npm ci`) and runs this with `PP_PRIVACYPASS_TS` set to that folder.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use pp_services::issuer::{REQUEST_PATH, unix_now};
use pp_tokens::{Client, Token, parse_www_authenticate};

fn interop_dir() -> PathBuf {
    PathBuf::from(std::env::var("PP_PRIVACYPASS_TS").expect(
        "PP_PRIVACYPASS_TS is not set: `cargo xtask test` installs privacypass-ts and runs this",
    ))
}

/// Runs the interop script; (success, stdout, stderr).
fn node(args: &[&str]) -> (bool, String, String) {
    let dir = interop_dir();
    let out = Command::new("node")
        .arg(dir.join("interop.mjs"))
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("node runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// The gateway's `WWW-Authenticate` value, from a CONNECT without a token.
fn gateway_challenge(gateway: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(gateway).unwrap();
    write!(s, "CONNECT i-0:443 HTTP/1.1\r\nHost: i-0:443\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 8192];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    text.lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no challenge in {text}"))
}

#[test]
#[ignore = "needs node and privacypass-ts: `cargo xtask test` runs it"]
fn privacypass_ts_token_from_our_issuer_is_accepted_by_our_gateway() {
    let net = Net::new();
    let now = unix_now();
    let issuer_addr = net.issuer(vec![(key(0), current(now).0, current(now).1)]);
    let name = issuer_addr.to_string();
    let gateway = net.gateway(&name, vec![entry(&name, &key(0), 1, current(now))], "ts");
    let header = gateway_challenge(gateway);
    let url = format!("http://{issuer_addr}{REQUEST_PATH}");
    let (ok, stdout, stderr) = node(&["issue", &url, SECRET, &header]);
    assert!(ok, "privacypass-ts could not obtain a token: {stderr}");
    let token = Token::from_base64url(&stdout).expect("privacypass-ts printed a token");
    assert_eq!(&token.token_key_id, key(0).public_key().token_key_id());
    // Past every token check (the instance behind is down: 502); a second spend is refused.
    let (status, text) = spend(gateway, &token);
    assert_eq!(status, 502, "{text}");
    let (status, text) = spend(gateway, &token);
    assert_eq!(status, 403, "{text}");
}

#[test]
#[ignore = "needs node and privacypass-ts: `cargo xtask test` runs it"]
fn our_token_verifies_with_privacypass_ts() {
    let net = Net::new();
    let now = unix_now();
    let name = "issuer.pp.test";
    let gateway = net.gateway(name, vec![entry(name, &key(1), 1, current(now))], "ours");
    let header = parse_www_authenticate(&gateway_challenge(gateway)).unwrap();
    let public = key(1).public_key().clone();
    let (request, pending) = Client::prepare(&header.challenge, &public).unwrap();
    let token = Client::finalize(pending, &key(1).issue(&request).unwrap()).unwrap();
    let challenge = header.challenge.to_base64url();
    let (ok, stdout, stderr) = node(&[
        "verify",
        &token.to_base64url(),
        &challenge,
        &public.to_base64url(),
    ]);
    assert!(
        ok && stdout == "ok",
        "privacypass-ts refused our token: {stderr}"
    );
    // The check can fail: a token signed by another key does not verify there.
    let mut forged = token.clone();
    forged.authenticator[100] ^= 1;
    let (ok, _, stderr) = node(&[
        "verify",
        &forged.to_base64url(),
        &challenge,
        &public.to_base64url(),
    ]);
    assert!(
        !ok && stderr.contains("signature does not verify"),
        "{stderr}"
    );
}
