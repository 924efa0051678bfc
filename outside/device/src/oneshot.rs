//! The one-shot path (the default for `pp summarize` and `pp suggest`): Oblivious HTTP through
//! the relay, no handshake with the enclave (docs/protocol.md, one-shot mode; RFC 9458, RFC 9292).
//!
//! 1. The logged newest CDN index must be fresh: published no longer than
//!    `KEY_PERIOD_SECS + KEY_SLACK_SECS` ago ([`check_fresh`]). The instance's key configuration
//!    comes from its publication evidence (logged, verified as for a session); enclaves rotate
//!    their keys every period, so an older index names keys the instances may no longer hold,
//!    and an operator that stops publishing is noticed. The session path does not need this:
//!    its evidence is fresh for each session.
//! 2. The request is padded and sealed to that key configuration ([`pp_client::oneshot::seal`]),
//!    put in a known-length BHTTP request `POST https://<gateway>/instances/<id>` with the
//!    Privacy Pass token ([`pp_client::inner`]), which is encapsulated to the gateway's key
//!    configuration from the same logged index (`gateway_key_config`: one outer key for every
//!    device) and `POST`ed to `relay.ohttp_url` ([`crate::ohttp_relay`]).
//! 3. The answer is decapsulated; its status is mapped to a clear error ([`inner_failure`],
//!    [`outer_failure`]), or its sealed response opened with the request's HPKE context.
//!
//! Token rules as on the session path ([`crate::request::spend_then_refill`]). Once the POST was
//! handed to the transport the request is never sent to another instance (the gateway could
//! steer it by failing the others after they received it): a gateway's 503 (no slot, or its
//! spent-token store could not record the spend) is retried on the **same** instance with the
//! same token and the same sealed request in a new outer layer; every other failure after the
//! POST ends the request.

use anyhow::{Context, Result};
use pp_protocol::app::{AppRequest, AppResponse};
use pp_protocol::cdn_index::CdnIndex;
use pp_protocol::{KEY_PERIOD_SECS, KEY_SLACK_SECS};

use crate::config::Config;
use pp_client::inner::{self, InnerResponse};

use crate::ohttp_relay::{OhttpRelay, PostError, RESPONSE_TYPE};
use crate::request::{ATTEMPTS, Failure};

/// The oldest a logged CDN index may be for a one-shot request: the enclaves' key period plus
/// slack (seconds).
pub const MAX_INDEX_AGE_SECS: u64 = KEY_PERIOD_SECS + KEY_SLACK_SECS;

/// Refuses an index published more than [`MAX_INDEX_AGE_SECS`] before `now` (or more than
/// `KEY_SLACK_SECS` after it: a date in the future would keep it "fresh" for ever).
pub fn check_fresh(index: &CdnIndex, now: u64) -> Result<()> {
    let published = index.published;
    if published > now + KEY_SLACK_SECS {
        anyhow::bail!(
            "the key CDN's newest logged index says it was published {} s in the future (by this \
             device's clock): refusing to seal a one-shot request to the keys it names",
            published - now
        );
    }
    let age = now.saturating_sub(published);
    if age > MAX_INDEX_AGE_SECS {
        anyhow::bail!(
            "the key CDN's newest logged index was published {age} s ago, more than the \
             {MAX_INDEX_AGE_SECS} s a one-shot request accepts (key period {KEY_PERIOD_SECS} s + \
             slack {KEY_SLACK_SECS} s): the operator has not published the enclave's current key; \
             refusing to seal a request to a key the instance may no longer hold"
        );
    }
    Ok(())
}

/// The gateway's RFC 9458 key configuration from the logged index (`gateway_key_config`, hex).
pub fn gateway_key_config(index: &CdnIndex) -> Result<Vec<u8>> {
    let hex_config = index.gateway_key_config.as_deref().context(
        "the key CDN's newest logged index has no gateway_key_config: the operator publishes no \
         Oblivious HTTP gateway key, so no one-shot request can be made (use --session)",
    )?;
    let config = hex::decode(hex_config)
        .ok()
        .context("the logged index's gateway_key_config is not hex")?;
    anyhow::ensure!(
        pp_protocol::key_config::KeyConfig::new_checked(&config[..])
            .is_ok_and(|c| c.has_supported_suite()),
        "the logged index's gateway_key_config is not an RFC 9458 key configuration this device \
         encapsulates to (X25519, HKDF-SHA256, AES-128-GCM or ChaCha20-Poly1305)"
    );
    Ok(config)
}

/// Everything a one-shot request needs besides the instance and the token: the relay, the
/// gateway's logged key configuration and name.
pub struct Oneshot {
    relay: OhttpRelay,
    gateway_key: Vec<u8>,
    gateway_name: String,
    /// The state folder whose opt-in every POST needs ([`Self::prepare`]): an opt-out made while
    /// a request waits (on a 503, say) stops its next attempt.
    consent: Option<std::path::PathBuf>,
}

impl Oneshot {
    /// Checks the logged `index` (fresh at `now`, with a gateway key) and the configured relay.
    /// Nothing is sent.
    pub fn prepare(config: &Config, index: &CdnIndex, now: u64) -> Result<Self> {
        check_fresh(index, now)?;
        let gateway_key = gateway_key_config(index)?;
        Ok(Self {
            relay: OhttpRelay::from_config(config)?,
            gateway_key,
            gateway_name: config.gateway.server_name.clone(),
            consent: Some(config.state_dir.clone()),
        })
    }

    /// [`Self::prepare`]'s parts, given.
    pub fn new(relay: OhttpRelay, gateway_key: Vec<u8>, gateway_name: &str) -> Self {
        Self {
            relay,
            gateway_key,
            gateway_name: gateway_name.to_string(),
            consent: None,
        }
    }

    /// Sends `request` to instance `instance`, sealed to its logged `key_config`, with `token`;
    /// returns its checked answer. A gateway's 503 is retried here, on the same instance with
    /// the same token, at most [`ATTEMPTS`] times in all.
    pub fn attempt(
        &self,
        instance: &str,
        key_config: &[u8],
        token: &pp_tokens::Token,
        request: &AppRequest,
    ) -> Result<AppResponse, Failure> {
        self.attempt_sealed_once(instance, key_config, token, request, &mut None)
    }

    /// [`Self::attempt`], sealing into `sealed` only if it holds no sealed request for
    /// `instance` yet: every attempt of one user request to one instance — the 503 retries here,
    /// and a caller's retry with another token after a retired-key refusal — sends the same inner
    /// bytes (the same encapsulated key) in a new outer encapsulation. A gateway that forwarded a
    /// copy and then claimed it did not gets the retry refused by the enclave as a replay (9)
    /// instead of having the handler run on the request again.
    pub fn attempt_sealed_once(
        &self,
        instance: &str,
        key_config: &[u8],
        token: &pp_tokens::Token,
        request: &AppRequest,
        sealed: &mut Option<(String, pp_client::oneshot::Sealed)>,
    ) -> Result<AppResponse, Failure> {
        if sealed.as_ref().is_none_or(|(id, _)| id != instance) {
            let body = zeroize::Zeroizing::new(request.to_vec());
            let fresh = pp_client::oneshot::seal(key_config, &body)
                .map_err(|e| Failure::Fatal(anyhow::anyhow!("cannot seal the request: {e}")))?;
            *sealed = Some((instance.to_string(), fresh));
        }
        let authorization = pp_tokens::authorization_value(token);
        let mut last = None;
        for _ in 0..ATTEMPTS {
            if let Some(state_dir) = &self.consent {
                crate::consent::require_opt_in(state_dir).map_err(Failure::Fatal)?;
            }
            let bytes = match sealed.as_ref() {
                Some((_, s)) => s.bytes(),
                None => return Err(Failure::Fatal(anyhow::anyhow!("no sealed request"))),
            };
            match self.send(instance, &authorization, bytes) {
                Ok(sealed_response) => {
                    let Some((_, opener)) = sealed.take() else {
                        return Err(Failure::Fatal(anyhow::anyhow!("no sealed request")));
                    };
                    let answer = opener
                        .open(&sealed_response, pp_client::MAX_RESPONSE)
                        .map_err(|e| {
                            Failure::Fatal(anyhow::anyhow!(
                                "the enclave's sealed response is refused: {e} (it must be sealed \
                                 by instance {instance} for this request)"
                            ))
                        })?;
                    return AppResponse::parse_for(&answer, request).map_err(|_| {
                        Failure::Fatal(anyhow::anyhow!("the enclave's answer is malformed"))
                    });
                }
                Err(Sent::Busy(e)) => last = Some(e),
                Err(Sent::Failed(f)) => return Err(f),
            }
        }
        Err(Failure::Fatal(
            last.unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
                .context(format!(
                    "instance {instance} was tried {ATTEMPTS} times; the request is not sent to \
                     another instance"
                )),
        ))
    }

    /// One POST of the sealed request `sealed`: encapsulate (afresh), send, decapsulate; returns
    /// the enclave's sealed response.
    fn send(&self, instance: &str, authorization: &str, sealed: &[u8]) -> Result<Vec<u8>, Sent> {
        let fatal = |e: anyhow::Error| Sent::Failed(Failure::Fatal(e));
        let message =
            inner::build_inner_request(&self.gateway_name, instance, authorization, sealed)
                .map_err(|e| fatal(anyhow::anyhow!("cannot encode the request: {e}")))?;
        let outer = pp_client::oneshot::encapsulate(&self.gateway_key, &message)
            .map_err(|e| fatal(anyhow::anyhow!("cannot encapsulate to the gateway: {e}")))?;
        let answer = self.relay.post(outer.bytes()).map_err(|e| match e {
            PostError::NotSent(e) => fatal(e),
            PostError::AfterSend(e) => fatal(may_have_reached(instance, e)),
        })?;
        if answer.status != 200 {
            let text = short_text(&answer.body);
            return Err(fatal(outer_failure(answer.status, &text, instance)));
        }
        if answer.content_type.as_deref() != Some(RESPONSE_TYPE) {
            return Err(fatal(anyhow::anyhow!(
                "the OHTTP relay answered 200 without {RESPONSE_TYPE}: the request may have \
                 reached instance {instance} and is not resent to another instance"
            )));
        }
        let inner_bytes = outer.open_raw(&answer.body).map_err(|_| {
            fatal(anyhow::anyhow!(
                "the gateway's encapsulated response did not open (not sealed for this request, \
                 or altered on the way)"
            ))
        })?;
        match inner::parse_inner_response(&inner_bytes) {
            Ok(InnerResponse::Sealed(bytes)) => Ok(bytes),
            Ok(InnerResponse::Refused {
                status: 503,
                message,
                ..
            }) => Err(Sent::Busy(anyhow::anyhow!(
                "the gateway answered 503 (no free slot, or its spent-token store could not \
                 record the spend){}",
                suffix(&message)
            ))),
            Ok(refused) => Err(Sent::Failed(inner_failure(&refused, instance))),
            Err(e) => Err(fatal(anyhow::anyhow!(
                "the gateway's answer is refused: {e}"
            ))),
        }
    }
}

/// How one POST failed.
enum Sent {
    /// The gateway answered 503 before recording the token's spend: the same instance may be
    /// asked again with the same token.
    Busy(anyhow::Error),
    /// Anything else.
    Failed(Failure),
}

fn may_have_reached(instance: &str, e: anyhow::Error) -> anyhow::Error {
    e.context(format!(
        "the request may have reached instance {instance} and is not resent to another instance"
    ))
}

/// A short printable text of an error body (our services send short fixed texts), for errors.
fn short_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    let text: String = text.trim().chars().take(200).collect();
    crate::show::printable(&text, crate::show::Breaks::Escape).into_owned()
}

/// `": <text>"` for a gateway's refusal text made printable, or nothing if it is empty.
fn suffix(message: &str) -> String {
    match short_text(message.as_bytes()) {
        t if t.is_empty() => String::new(),
        t => format!(": {t}"),
    }
}

/// The error for a plain HTTP refusal by the relay or the gateway, before the gateway opened
/// the request (RFC 9458 §5.2, §6, contract §4).
pub fn outer_failure(status: u16, text: &str, instance: &str) -> anyhow::Error {
    match status {
        400 => anyhow::anyhow!(
            "the gateway could not decapsulate the request (HTTP 400): it does not hold the key \
             configuration the logged index names for it, or the request was altered on the way"
        ),
        405 => anyhow::anyhow!(
            "the OHTTP relay refused the POST (HTTP 405): is relay.ohttp_url the relay's \
             Oblivious HTTP resource?"
        ),
        413 => anyhow::anyhow!(
            "the OHTTP relay or the gateway refused the request as too large (HTTP 413)"
        ),
        415 => anyhow::anyhow!(
            "the OHTTP relay or the gateway refused the request's media type (HTTP 415)"
        ),
        502 | 504 => anyhow::anyhow!(
            "the OHTTP relay could not reach the gateway (HTTP {status}): the request may have \
             reached instance {instance} and is not resent to another instance"
        ),
        other => {
            let text = if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            };
            anyhow::anyhow!("the OHTTP relay answered HTTP {other}{text}")
        }
    }
}

/// The failure for the gateway's inner (BHTTP) answer other than a sealed response and a 503
/// (contract §4).
pub fn inner_failure(response: &InnerResponse, instance: &str) -> Failure {
    let fatal = Failure::Fatal;
    let (status, message) = match response {
        InnerResponse::Sealed(_) => {
            return fatal(anyhow::anyhow!("a sealed response is not a failure"));
        }
        InnerResponse::EnclaveError(code) => {
            return fatal(anyhow::anyhow!(
                "instance {instance} refused the request: {}",
                enclave_error_text(*code)
            ));
        }
        InnerResponse::Refused {
            status, message, ..
        } => (*status, message.as_str()),
    };
    match status {
        401 | 403 if message.contains(RETIRED) => Failure::StaleKey(anyhow::anyhow!(
            "the gateway refused the token (HTTP {status}){}",
            suffix(message)
        )),
        401 => fatal(anyhow::anyhow!(
            "the gateway refused the token (HTTP 401){}",
            suffix(message)
        )),
        403 => fatal(anyhow::anyhow!(
            "the gateway refused the token as already spent (HTTP 403)"
        )),
        404 => fatal(anyhow::anyhow!(
            "the gateway knows no instance {instance} (HTTP 404), though the logged index lists \
             it; the request is not sent to another instance"
        )),
        502 => fatal(anyhow::anyhow!(
            "the gateway could not reach instance {instance} (HTTP 502): the request may have \
             reached it and is not resent to another instance"
        )),
        status => fatal(anyhow::anyhow!(
            "the gateway answered HTTP {status}{}",
            suffix(message)
        )),
    }
}

/// The text of `pp_services::gateway::RETIRED_KEY_MESSAGE` the device recognises.
const RETIRED: &str = "issuer key is retired";

/// What an enclave's `Error` frame code (`pp-enclave-error`) means for a one-shot request.
pub fn enclave_error_text(code: u16) -> String {
    use pp_protocol::frame::ErrorCode;
    match ErrorCode::from(code) {
        ErrorCode::OpenFailed => "the enclave could not open the request: it was not delivered \
            to the instance it was sealed to, or was altered"
            .into(),
        ErrorCode::Replayed => "replayed: a request with the same encapsulated key was already \
            opened under this key (a copy of this request reached the instance first)"
            .into(),
        ErrorCode::UnknownKey => "the instance no longer holds that key: the index is stale \
            (the operator has not published the enclave's current key)"
            .into(),
        ErrorCode::Busy => "the enclave is busy; try again later".into(),
        ErrorCode::Timeout => "the enclave timed out reading the request".into(),
        ErrorCode::TooLarge => "the enclave refused the request as too large".into(),
        ErrorCode::MalformedFrame | ErrorCode::UnexpectedFrame => {
            "the enclave refused the request as malformed".into()
        }
        ErrorCode::HandlerFailed => "the enclave could not process the request".into(),
        _ => format!("the enclave answered error code {code}"),
    }
}

#[cfg(all(test, feature = "test-root"))]
#[path = "oneshot_tests.rs"]
mod tests;
