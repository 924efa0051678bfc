//! One request end to end: log, CDN, token, then either the one-shot path ([`crate::oneshot`]:
//! Oblivious HTTP through the relay, sealed to the instance's logged key) or the session path
//! (relay, gateway, attested session), then the receipt. On the session path, transport
//! failures before the sealed request left the device are retried on another instance (with the
//! same token while the gateway has not recorded its spend, see [`spend_then_refill`]); a failed
//! security check never is, and neither is any failure once the sealed request
//! was written (even partly): the instance may have received it, and sending the same plaintext
//! to a second enclave would let a gateway steer a request to the instance it wants by failing
//! the others after they received it.

use std::io::{ErrorKind, Read, Write};

use anyhow::{Context, Result, bail};
use pp_client::{ClientError, Limits, Session, SessionBinding};
use pp_protocol::app::{AppRequest, AppResponse};
use pp_translog::Receipt;
use pp_verifier::{CheckName, Outcome, Verdict};

use crate::config::{Config, RequestPath};
use crate::instances::{self, Candidate, Roots};
use crate::issuer_keys::GatewayKeyView;
pub use crate::refill::{MAX_REFILL_BATCHES, refill_tokens};
use crate::releases::LogClient;
use crate::tunnel::{self, PathError, PathSpec};
use crate::wallet::{Refill, TokenSource, Wallet};

/// Instances tried before giving up.
pub const ATTEMPTS: usize = 3;

/// An answered request and how it was verified.
pub struct Answer {
    pub response: AppResponse,
    /// The path the request took.
    pub path: RequestPath,
    pub instance: String,
    pub measurement: [u8; 48],
    /// The verdict of the evidence relied on: the session's, or on the one-shot path the
    /// instance's publication evidence.
    pub verdict: Verdict,
    pub receipt: Receipt,
    /// Where the receipt was written (`pp check-receipt` takes this path).
    pub receipt_path: std::path::PathBuf,
}

/// Progress lines for `--verbose`.
pub type Trace<'a> = &'a mut dyn FnMut(String);

/// Sends `request` to an attested enclave instance on `path` and returns the answer.
pub fn ask(
    config: &Config,
    request: &AppRequest,
    path: RequestPath,
    trace: Trace<'_>,
) -> Result<Answer> {
    // Nothing leaves the device before the user opted in.
    crate::consent::require_opt_in(&config.state_dir)?;
    request
        .check()
        .map_err(|e| anyhow::anyhow!("the request is refused before sending: {}", e.explain()))?;
    // The trust configuration (roots, AMD's CRLs) is checked before anything goes out.
    let roots = Roots::from_config(&config.trust)?;
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating {}", config.state_dir.display()))?;
    // The log and the CDN are read through the relay only (never from this device's address).
    let reader = crate::reads::Reader::through_relay(config)?;
    let log = LogClient::sync(&config.log, &config.state_dir, reader)?;
    trace(format!(
        "log: checkpoint size {} root {} (witnessed, fresh, consistent with the last one seen)",
        log.tree_head().size,
        hex::encode(log.tree_head().root)
    ));
    if let Some(label) = roots.test_label() {
        trace(label);
    }
    for line in roots.revocation_lines(std::time::SystemTime::now()) {
        trace(line);
    }
    let (candidates, rejected) = instances::discover(&config.cdn.url, &log, &roots)?;
    for r in &rejected {
        trace(format!("cdn: instance {} refused: {}", r.id, r.reason));
    }
    if candidates.is_empty() {
        match rejected.first() {
            Some(r) => bail!(
                "no enclave instance can be trusted: instance {} refused: {}",
                r.id,
                r.reason
            ),
            None => bail!("the key CDN lists no enclave instance"),
        }
    }
    for c in &candidates {
        trace(format!(
            "cdn: instance {} ok: release {} at log index {}, measurement {}",
            c.id,
            c.release.manifest.release_ref,
            c.release.log_index,
            hex::encode(c.published.measurement)
        ));
    }
    let challenge = token_challenge(config)?;
    let wallet = Wallet::for_user(&config.state_dir);
    let issuer = issuer_name(&config.issuer.url);
    let source = TokenSource {
        issuer_url: &config.issuer.url,
        credential_file: &config.issuer.credential_file,
        issuer_name: &issuer,
        challenge: &challenge,
        batch: config.issuer.batch,
        low_water: usize::from(config.issuer.low_water),
        log: &log,
    };
    let trust = config.log.trust_policy()?;
    let keeper = crate::swap_evidence::Keeper {
        state_dir: &config.state_dir,
        log: &log,
        roots: &roots,
        trust: &trust,
    };
    let spec = PathSpec::from_config(config)?;
    // Every token fetch starts here: none after the user opted out, even during this request.
    let gateway = |instance: &str| {
        crate::consent::require_opt_in(&config.state_dir)?;
        crate::issuer_keys::fetch_via_relay(&spec, instance)
    };
    let tokens = Tokens {
        wallet: &wallet,
        source: &source,
        gateway: &gateway,
    };
    let (chosen, response, verdict, (receipt, receipt_path)) = match path {
        RequestPath::Session => {
            let (chosen, (response, verdict, binding)) =
                spend_then_refill(&tokens, candidates, candidate_id, trace, |chosen, token| {
                    // Not sent after an opt-out made while this request ran.
                    crate::consent::require_opt_in(&config.state_dir).map_err(Failure::Fatal)?;
                    attempt_one(&spec, chosen, token, request, &keeper)
                })?;
            let relied = crate::receipts::Relied::Session(&binding);
            let receipt = crate::receipts::record(&config.state_dir, &chosen, relied, &log)?;
            (chosen, response, verdict, receipt)
        }
        RequestPath::Oneshot => {
            // Checked before any token is taken or anything is sent.
            let now = pp_translog::checkpoint::unix_now();
            let oneshot =
                crate::oneshot::Oneshot::prepare(config, &candidates[0].index.index, now)?;
            trace(format!(
                "one-shot: the logged index (published {}) is fresh; sealing to the instance's \
                 logged key configuration, through {}",
                candidates[0].index.index.published,
                config.relay.ohttp_url.as_deref().unwrap_or_default()
            ));
            // One sealed request per instance for all of this request's attempts (see
            // `attempt_sealed_once`).
            let mut sealed = None;
            let (chosen, response) =
                spend_then_refill(&tokens, candidates, candidate_id, trace, |chosen, token| {
                    oneshot.attempt_sealed_once(
                        &chosen.id,
                        &chosen.published.key_config,
                        token,
                        request,
                        &mut sealed,
                    )
                })?;
            let relied = crate::receipts::Relied::Oneshot;
            let receipt = crate::receipts::record(&config.state_dir, &chosen, relied, &log)?;
            let verdict = chosen.published.verdict.clone();
            (chosen, response, verdict, receipt)
        }
    };
    Ok(Answer {
        response,
        path,
        instance: chosen.id,
        measurement: chosen.published.measurement,
        verdict,
        receipt,
        receipt_path,
    })
}

fn candidate_id(c: &Candidate) -> &str {
    c.id.as_str()
}

/// Where a request's tokens come from.
pub struct Tokens<'a> {
    pub wallet: &'a Wallet,
    pub source: &'a TokenSource<'a>,
    /// The gateway's directory and challenge, fetched through the relay on a connection whose
    /// `CONNECT` names the given instance.
    pub gateway: &'a dyn Fn(&str) -> Result<GatewayKeyView>,
}

/// Tries `candidates` as [`first_answer`] does (`attempt` gets the candidate and the token).
///
/// One request spends at most one token while the gateway has not recorded its spend: the
/// retries of a request reuse the token taken for its first attempt after a
/// [`Failure::RetryUnspent`] (attempts of one request are one request: linking them tells the
/// operator nothing new), so a gateway answering 503 cannot empty the wallet. A failure after
/// the gateway recorded the spend (502: instance down, or a session that failed before the
/// sealed request left) takes a new token for the next attempt, as the gateway refuses a token
/// twice. A token shown to a gateway is never put back into the wallet (it would link a later
/// request to this one). A token the gateway refuses as one of a retired key (and the log
/// agrees) is dropped with its key's tokens and the attempt made once more with a fresh one.
///
/// Tokens are fetched (with the account credential, from this device's address) only when the
/// wallet is empty before a spend (first use; traced as [`CLOSE_TO_ISSUANCE`], which `pp` prints
/// always) or **after** the request, answered or failed, when fewer than the low-water mark are
/// left: the issuer then sees a fetch after a session ended, not one a moment before the spend
/// the gateway sees. A failed refill is traced and does not touch the answer (or the error).
pub fn spend_then_refill<C, T>(
    tokens: &Tokens<'_>,
    candidates: Vec<C>,
    id: impl Fn(&C) -> &str,
    trace: Trace<'_>,
    mut attempt: impl FnMut(&C, &pp_tokens::Token) -> Result<T, Failure>,
) -> Result<(C, T)> {
    let source = tokens.source;
    // The refill's CONNECT names a random instance of the index, not the one whose session just
    // ended (nor, after a failure, one this request tried).
    let ids: Vec<String> = candidates.iter().map(|c| id(c).to_string()).collect();
    let mut notes = Vec::new();
    // The token of this request the gateway has not recorded as spent, for the next attempt.
    let mut unspent: Option<pp_tokens::Token> = None;
    // Only the request's first token may be fetched: a retry that found the wallet empty and
    // fetched would let a gateway that fails attempts (502 after recording the spend) drain the
    // wallet and so force a fetch right before the spend it then lets through.
    let mut first = true;
    let answer = first_answer(candidates, &id, trace, |chosen| {
        let instance = id(chosen);
        let token = match unspent.take() {
            Some(token) => token,
            None if first => take_token(tokens, instance, &mut notes).map_err(Failure::Fatal)?,
            None => take_held(tokens).map_err(Failure::Fatal)?,
        };
        first = false;
        let (token, result) = match attempt(chosen, &token) {
            // Refused before any request byte left: drop the stale key's tokens and try once
            // more with a fresh one.
            Err(Failure::StaleKey(e)) => {
                // Believed only if the log says so: a false claim would make the device fetch
                // tokens with its account credential right before this request.
                check_retired(source.log, source.issuer_name, &token.token_key_id)
                    .map_err(Failure::Fatal)?;
                notes.push(format!("gateway: {e:#}; dropping that key's tokens"));
                tokens
                    .wallet
                    .drop_key(&token.token_key_id)
                    .map_err(Failure::Fatal)?;
                let token = take_token(tokens, instance, &mut notes).map_err(Failure::Fatal)?;
                let result = attempt(chosen, &token);
                (token, result)
            }
            other => (token, other),
        };
        if matches!(result, Err(Failure::RetryUnspent(_))) {
            unspent = Some(token);
        }
        result
    });
    for line in notes {
        trace(line);
    }
    // After the request, answered or not: a failed one spent tokens too.
    let now = pp_translog::checkpoint::unix_now();
    let refill = tokens.wallet.refill_if_low(source, now, || {
        let instance = ids
            .get(random_index(ids.len().max(1))?)
            .context("no instance to name")?;
        (tokens.gateway)(instance)
    });
    match refill {
        Ok(Refill::Enough(_)) => {}
        Ok(Refill::Fetched { before, after }) => trace(format!(
            "tokens: {before} left, under the low-water mark of {}: fetched a batch after the \
             request ({after} now)",
            source.low_water
        )),
        Err(e) => trace(format!(
            "{REFILL_FAILED} ({e:#}); `pp tokens refill` can fetch ahead of the next request"
        )),
    }
    answer
}

/// A token of a logged key valid now: from the wallet, or (when it is empty) fetched under a key
/// the gateway's directory and challenge (fetched through the relay) show to be logged; a fetch
/// is noted in `notes`.
fn take_token(
    tokens: &Tokens<'_>,
    instance: &str,
    notes: &mut Vec<String>,
) -> Result<pp_tokens::Token> {
    let now = pp_translog::checkpoint::unix_now();
    let (token, fetched) = tokens
        .wallet
        .take_or_fetch(tokens.source, now, || (tokens.gateway)(instance))?;
    if fetched {
        notes.push(format!(
            "{CLOSE_TO_ISSUANCE}: `pp tokens refill` ahead of time avoids this"
        ));
    }
    Ok(token)
}

/// A token already held, for a retry: never fetched (see [`spend_then_refill`]).
fn take_held(tokens: &Tokens<'_>) -> Result<pp_tokens::Token> {
    let now = pp_translog::checkpoint::unix_now();
    tokens.wallet.take_valid(now)?.context(
        "no token is left for another attempt, and none is fetched now (a fetch right before \
         this retry would let the operator link it to the account): run `pp tokens refill`, \
         then try again",
    )
}

/// Traced (and printed always by `pp`) when the refill after a request failed: a wallet that
/// keeps failing to refill ends empty, and its next spend then follows a fetch.
pub const REFILL_FAILED: &str = "tokens: the refill after the request failed";

/// Traced when a spend follows a token fetch: the issuer (which knows the account) and the
/// gateway (which sees the spend) are run by one operator, which can link the two by time.
pub const CLOSE_TO_ISSUANCE: &str = "tokens: the wallet was empty, so tokens were fetched right \
     before this spend; the operator can link this request to the account by time";

/// Seconds a device's clock may run behind the gateway's when it believes a key retired.
const RETIRED_SKEW_SECS: u64 = 300;

/// Accepts the gateway's claim that the key `id` is retired only if its logged window is over
/// (by this device's clock, within [`RETIRED_SKEW_SECS`]).
fn check_retired(log: &LogClient, issuer: &str, id: &pp_tokens::TokenKeyId) -> Result<()> {
    let now = pp_translog::checkpoint::unix_now();
    let key_id = pp_tokens::key_entry::hex_of(id);
    match log.issuer_keys().find(issuer, &key_id) {
        Some(seen) if seen.not_after <= now + RETIRED_SKEW_SECS => Ok(()),
        Some(seen) => bail!(
            "the gateway says issuer key {} is retired, but its logged window runs until {} \
             (unix time): refusing to fetch tokens for this request (a false claim would tie \
             this request to a token fetch made with the account credential)",
            &key_id[..16],
            seen.not_after
        ),
        None => bail!("the gateway refused a token of an issuer key the log does not hold"),
    }
}

/// How a refused tunnel fails the attempt. Our gateway answers 503 before it records the
/// token's spend (no tunnel slot, or its spent-token store failed) and 502 after (the instance is
/// down): only the first lets the same token be shown again.
pub fn refusal_failure(e: PathError) -> Failure {
    match e {
        ref stale if is_stale_key(stale) => Failure::StaleKey(e.into()),
        PathError::Refused {
            hop: "relay",
            status: 502 | 503,
            ..
        }
        | PathError::Refused {
            hop: "gateway",
            status: 503,
            ..
        } => Failure::RetryUnspent(e.into()),
        PathError::Refused {
            hop: "gateway",
            status: 502,
            ..
        } => Failure::Retry(e.into()),
        other => Failure::Fatal(other.into()),
    }
}

/// Whether the gateway refused the token as one of a retired issuer key (its 401 text, see
/// `pp_services::gateway::RETIRED_KEY_MESSAGE`).
fn is_stale_key(e: &PathError) -> bool {
    matches!(e, PathError::Refused { hop: "gateway", status: 401, reason }
        if reason.contains("issuer key is retired"))
}

/// How one attempt failed.
#[derive(Debug)]
pub enum Failure {
    /// The transport failed before the sealed request left the device, after the gateway
    /// recorded the token's spend: another instance may work (with a new token), and the
    /// request's plaintext went to none.
    Retry(anyhow::Error),
    /// The tunnel was refused before the gateway recorded the token's spend (the relay's 502
    /// or 503: the token never reached the gateway; the gateway's 503: no tunnel slot, or its
    /// spent-token store cannot record the spend): another instance may work, with the same
    /// token.
    RetryUnspent(anyhow::Error),
    /// A check failed, the request was refused, or the sealed request had been written (even
    /// partly) before the failure: stop.
    Fatal(anyhow::Error),
    /// The gateway refused the token as one of a retired issuer key, before anything went to
    /// the enclave: drop that key's tokens and try once more with a fresh one.
    StaleKey(anyhow::Error),
}

/// Tries `candidates` in random order, at most [`ATTEMPTS`] of them, until `attempt` answers;
/// moves on only after a [`Failure::Retry`] or [`Failure::RetryUnspent`]. Returns the candidate that answered and its answer.
pub fn first_answer<C, T>(
    mut candidates: Vec<C>,
    id: impl Fn(&C) -> &str,
    trace: Trace<'_>,
    mut attempt: impl FnMut(&C) -> Result<T, Failure>,
) -> Result<(C, T)> {
    let mut last_error = None;
    for n in 1..=ATTEMPTS.min(candidates.len()) {
        let chosen = candidates.remove(random_index(candidates.len())?);
        trace(format!("choose: instance {} (attempt {n})", id(&chosen)));
        match attempt(&chosen) {
            Ok(answer) => return Ok((chosen, answer)),
            Err(Failure::Retry(e) | Failure::RetryUnspent(e)) => {
                trace(format!(
                    "instance {} failed ({e:#}); trying another",
                    id(&chosen)
                ));
                last_error = Some(e);
            }
            Err(Failure::Fatal(e) | Failure::StaleKey(e)) => return Err(e),
        }
    }
    Err(last_error
        .unwrap_or_else(|| anyhow::anyhow!("no instance left"))
        .context("every instance tried failed"))
}

fn attempt_one(
    spec: &PathSpec<'_>,
    chosen: &Candidate,
    token: &pp_tokens::Token,
    request: &AppRequest,
    keeper: &crate::swap_evidence::Keeper<'_>,
) -> Result<(AppResponse, Verdict, SessionBinding), Failure> {
    let stream = tunnel::open(spec, &chosen.id, token).map_err(refusal_failure)?;
    let connected =
        pp_client::connect_published(stream, &chosen.published, &chosen.policy, Limits::default());
    // A refused attestation may prove a swapped enclave: kept as evidence if it does, and the
    // error says which.
    let pointer = match &connected {
        Err(ClientError::NotAttested(failed)) => Some(keeper.record(chosen, failed)),
        _ => None,
    };
    exchange(connected, &chosen.id, request).map_err(|failure| match (failure, pointer) {
        (Failure::Fatal(e), Some(pointer)) => Failure::Fatal(anyhow::anyhow!("{e:#}\n{pointer}")),
        (other, _) => other,
    })
}

/// One request on a session just opened (`connected`, the result of [`pp_client::connect`] or
/// [`pp_client::connect_published`]) with instance `instance`: sends `request`, checks the answer
/// against it. A failure is [`Failure::Retry`] only if it came before the sealed request was
/// handed to the transport ([`Session::request_sent`]).
pub fn exchange<S: Read + Write>(
    connected: Result<Session<S>, ClientError>,
    instance: &str,
    request: &AppRequest,
) -> Result<(AppResponse, Verdict, SessionBinding), Failure> {
    let mut session = connected.map_err(|e| classify(e, instance))?;
    let verdict = session.verdict().clone();
    let binding = session.binding().clone();
    let body = request.to_vec();
    let answer = session.request(&body).map_err(|e| {
        if session.request_sent() {
            Failure::Fatal(anyhow::anyhow!(
                "the request may have reached instance {instance} and is not resent to another \
                 enclave: {e}"
            ))
        } else {
            classify(e, instance)
        }
    })?;
    let _ = session.close();
    let response = AppResponse::parse_for(&answer, request)
        .map_err(|_| Failure::Fatal(anyhow::anyhow!("the enclave's answer is malformed")))?;
    Ok((response, verdict, binding))
}

/// A failure before the sealed request left the device: the transport's may be retried
/// elsewhere, a failed check never.
fn classify(e: ClientError, instance: &str) -> Failure {
    match e {
        ClientError::Io(kind) if kind != ErrorKind::InvalidData => Failure::Retry(anyhow::anyhow!(
            "connection to the enclave failed: {kind:?}"
        )),
        ClientError::Closed | ClientError::Truncated => Failure::Retry(anyhow::anyhow!(
            "the connection closed before the request was sent"
        )),
        ClientError::Refused(pp_protocol::frame::ErrorCode::Busy) => {
            Failure::Retry(anyhow::anyhow!("the enclave is busy"))
        }
        ClientError::NotAttested(failed)
            if failed.verdict.outcome(CheckName::KeyConfigPublished) != Some(Outcome::Pass) =>
        {
            Failure::Fatal(anyhow::anyhow!(
                "the gateway connected this device to an enclave other than instance {instance} \
                 (its key configuration differs from the published one): refusing to send the \
                 request:\n{}",
                failed.verdict
            ))
        }
        ClientError::NotAttested(failed) => Failure::Fatal(anyhow::anyhow!(
            "the enclave is not attested; refusing to send the request:\n{}",
            failed.verdict
        )),
        other => Failure::Fatal(anyhow::anyhow!("the attested session failed: {other}")),
    }
}

pub(crate) fn random_index(n: usize) -> Result<usize> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok((u64::from_le_bytes(b) % n as u64) as usize)
}

/// The challenge every token of this configuration answers (RFC 9577): the issuer's name, no
/// redemption context, the gateway as origin.
pub(crate) fn token_challenge(config: &Config) -> Result<pp_tokens::TokenChallenge> {
    pp_tokens::TokenChallenge::new(
        issuer_name(&config.issuer.url).as_bytes(),
        None,
        config.gateway.server_name.as_bytes(),
    )
    .map_err(|e| anyhow::anyhow!("cannot form the token challenge: {e:?}"))
}

/// The issuer's name as it appears in token challenges: its URL's host (and port).
pub fn issuer_name(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateways_retired_key_refusal_is_recognised() {
        let refused = |status, text: &str| PathError::Refused {
            hop: "gateway",
            status,
            reason: format!(": {text}"),
        };
        let retired = pp_services::gateway::RETIRED_KEY_MESSAGE;
        assert!(is_stale_key(&refused(401, retired)));
        assert!(!is_stale_key(&refused(401, "the token did not verify")));
        assert!(!is_stale_key(&refused(403, retired)));
    }
}
