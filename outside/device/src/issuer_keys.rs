//! Issuer key consistency (RFC 9576 §7): the device blinds tokens only for a key that everyone
//! sees, so the operator (who runs issuer and gateway) cannot give one account a key of its own
//! and link that account's spends.
//!
//! 1. The issuer directory is fetched from the gateway **through the relay**, on the path
//!    requests take (never from the device's own address to the issuer).
//! 2. Every key it offers must come with its `pp-issuer-key/1` entry, for this issuer, valid now,
//!    and be among the log's entries the device read while syncing ([`crate::key_history`]: no
//!    proof is fetched by the key's hash); the issuer must hold one key per epoch and never more
//!    than two valid at once.
//! 3. The gateway's `WWW-Authenticate: PrivateToken` challenge must be the one this device
//!    expects and name one of those logged keys.
//!
//! Anything else is refused before a token request leaves the device.

use std::io::{Read, Write};

use anyhow::{Context, Result, bail};
use pp_tokens::key_entry::hex_of;
use pp_tokens::{
    IssuerDirectory, IssuerKeyEntry, TOKEN_TYPE_BLIND_RSA, TokenChallenge, TokenChallengeHeader,
    parse_www_authenticate,
};
use sha2::{Digest, Sha256};

use crate::releases::LogClient;
use crate::tunnel::{self, PathSpec};

/// Where the directory is asked for.
pub const DIRECTORY_PATH: &str = "/.well-known/private-token-issuer-directory";
/// Largest response head read from the gateway.
const MAX_HEAD: usize = 16 * 1024;
/// Largest response body read from the gateway (the directory's own bound).
const MAX_BODY: usize = pp_tokens::directory::MAX_DIRECTORY_LEN;

/// A key proven to be in the log.
#[derive(Debug, Clone)]
pub struct LoggedKey {
    pub entry: IssuerKeyEntry,
    /// Where the log holds its entry.
    pub log_index: u64,
}

/// What the gateway told this device about keys: its directory and its token challenge.
#[derive(Debug, Clone)]
pub struct GatewayKeyView {
    pub directory: IssuerDirectory,
    pub challenge: TokenChallengeHeader,
}

/// Fetches the directory and the token challenge from the gateway through the relay, on one
/// gateway connection: `GET` the directory, then a `CONNECT` to `instance` without a token,
/// which the gateway answers 401 with its challenge.
pub fn fetch_via_relay(spec: &PathSpec<'_>, instance: &str) -> Result<GatewayKeyView> {
    let mut stream = tunnel::open_gateway(spec)?;
    fetch_over(&mut stream, spec.gateway_name, instance)
}

/// [`fetch_via_relay`] over an already open stream to the gateway.
pub fn fetch_over(
    stream: &mut (impl Read + Write),
    host: &str,
    instance: &str,
) -> Result<GatewayKeyView> {
    let io = |e: std::io::Error| anyhow::anyhow!("the gateway connection failed: {:?}", e.kind());
    stream
        .write_all(format!("GET {DIRECTORY_PATH} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .map_err(io)?;
    stream.flush().map_err(io)?;
    let (status, _, body) = read_response(stream).context("reading the issuer directory")?;
    if status != 200 {
        bail!("the gateway answered HTTP {status} for the issuer directory");
    }
    let text = std::str::from_utf8(&body).context("the issuer directory is not UTF-8")?;
    let directory = IssuerDirectory::from_json(text)
        .map_err(|e| anyhow::anyhow!("the issuer directory is malformed: {e}"))?;
    let authority = format!("{instance}:443");
    stream
        .write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .map_err(io)?;
    stream.flush().map_err(io)?;
    let (status, challenge, _) = read_response(stream).context("reading the token challenge")?;
    let Some(value) = challenge.filter(|_| status == 401) else {
        bail!("the gateway sent no PrivateToken challenge (HTTP {status})");
    };
    let challenge = parse_www_authenticate(&value)
        .map_err(|e| anyhow::anyhow!("the gateway's PrivateToken challenge is malformed: {e}"))?;
    Ok(GatewayKeyView {
        directory,
        challenge,
    })
}

/// Short hex name of the key whose SPKI is `spki`, for messages.
fn key_name(spki: &[u8]) -> String {
    hex_of(&Sha256::digest(spki).into())[..16].to_string()
}

/// Checks the directory's keys against the log and the gateway's challenge against them; returns
/// the logged key the challenge names.
pub fn choose(
    view: &GatewayKeyView,
    expected: &TokenChallenge,
    issuer_name: &str,
    now: u64,
    log: &LogClient,
) -> Result<LoggedKey> {
    // The log as a whole first: several keys of this issuer at once would let it tell accounts
    // apart, whichever of them this directory shows.
    log.issuer_keys().check(issuer_name)?;
    let mut logged = Vec::new();
    for key in &view.directory.token_keys {
        if key.token_type != TOKEN_TYPE_BLIND_RSA || key.not_before.is_some_and(|t| t > now) {
            continue;
        }
        let name = key_name(&key.token_key);
        let refuse = |why: &str| {
            anyhow::anyhow!(
                "issuer key not in the log: the directory offers token key {name}, {why}; \
                 refusing to fetch tokens (a key not logged for everyone could single out \
                 this account)"
            )
        };
        let Some(bytes) = &key.log_entry else {
            return Err(refuse("without its log entry"));
        };
        let entry = IssuerKeyEntry::parse(bytes)
            .map_err(|e| refuse(&format!("with a malformed log entry ({e})")))?;
        if entry.key.spki() != key.token_key.as_slice() {
            return Err(refuse("with the log entry of another key"));
        }
        if entry.issuer_name != issuer_name {
            return Err(refuse("logged for another issuer"));
        }
        if !entry.valid_at(now) {
            return Err(refuse("outside its logged validity window"));
        }
        // Looked up in what the device read of the log while syncing (every entry, checked
        // against the witnessed root): no inclusion proof is fetched by this key's hash, which
        // would tell the log which key this device was shown.
        let seen = log
            .issuer_keys()
            .find(issuer_name, &hex_of(entry.token_key_id()))
            .filter(|s| {
                s.epoch == entry.epoch
                    && s.not_before == entry.not_before
                    && s.not_after == entry.not_after
            })
            .ok_or_else(|| refuse("whose entry is not among the log's entries"))?;
        let log_index = seen.index;
        logged.push(LoggedKey { entry, log_index });
    }
    if logged.is_empty() {
        bail!("issuer key not in the log: the issuer directory offers no logged token key");
    }
    if &view.challenge.challenge != expected {
        bail!(
            "the gateway's PrivateToken challenge is not the one this device expects (another \
             issuer, origin or context); refusing to fetch tokens for it"
        );
    }
    logged
        .into_iter()
        .find(|k| k.entry.key.spki() == view.challenge.token_key.as_slice())
        .with_context(|| {
            format!(
                "the gateway's PrivateToken challenge names token key {}, which is not a \
                 logged key of the issuer (issuer key not in the log); refusing to fetch \
                 tokens for it",
                key_name(&view.challenge.token_key)
            )
        })
}

/// Reads one HTTP/1.1 response: status, the `WWW-Authenticate` value if any, and the body
/// (Content-Length, bounded). Bytes are read one at a time for the head so nothing after it is
/// consumed.
fn read_response(stream: &mut impl Read) -> Result<(u16, Option<String>, Vec<u8>)> {
    let head = crate::tunnel::read_head(stream, MAX_HEAD).map_err(|e| match e {
        crate::tunnel::HeadError::TooLong => {
            anyhow::anyhow!("the gateway's answer head is too long")
        }
        crate::tunnel::HeadError::Closed => anyhow::anyhow!("the gateway closed the connection"),
        crate::tunnel::HeadError::Io(e) => {
            anyhow::anyhow!("the gateway connection failed: {:?}", e.kind())
        }
    })?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let parsed = response.parse(&head);
    anyhow::ensure!(
        matches!(parsed, Ok(httparse::Status::Complete(_))),
        "the gateway's answer is malformed"
    );
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::to_owned)
    };
    let length: usize = header("content-length")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    anyhow::ensure!(length <= MAX_BODY, "the gateway's answer is too large");
    let mut body = vec![0u8; length];
    stream
        .read_exact(&mut body)
        .map_err(|e| anyhow::anyhow!("the gateway connection failed: {:?}", e.kind()))?;
    Ok((
        response.code.context("no status")?,
        header("www-authenticate"),
        body,
    ))
}
