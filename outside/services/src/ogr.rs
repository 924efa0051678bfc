//! The gateway's Oblivious Gateway Resource (RFC 9458): `POST /.well-known/ohttp-gateway` with a
//! `message/ohttp-req` body, sealed to the gateway's own key configuration (published in the
//! logged CDN index). Inside is a known-length BHTTP request ([`pp_client::inner`]):
//! `POST /instances/<id>` with a Privacy Pass token and a request sealed to that instance's
//! attested key. The gateway checks and spends the token exactly as on the CONNECT path, sends
//! the sealed request in one frame to the instance's one-shot port ([`crate::oneshot`]) and
//! returns its answer, BHTTP inside a `message/ohttp-res`. The gateway sees the token and the
//! instance; the relay in front of it hides the device's address, the enclave's HPKE layer the
//! content.
//!
//! Refusals before decapsulation are plain HTTP (RFC 9458 §5.2, §6): wrong method `405`, wrong
//! media type `415`, body over [`MAX_ENCAPSULATED_REQUEST`] `413`, decapsulation failure `400`
//! with no body (an unknown key id: `400` with the RFC 9458 `ohttp-key` problem type). After
//! decapsulation every answer is an encapsulated response with the status inside (docs: the
//! contract §4).
//!
//! **Connection reuse**: a relay sends many devices' requests over one kept-alive connection, so
//! these requests do not count against [`crate::gateway::MAX_REQUESTS_PER_CONNECTION`]. That opens
//! no way to hold a connection for free: every request that gets past the token check has spent a
//! token (one token, one request), and every request refused before its token was spent (not
//! decapsulated, no or bad token, unknown instance, busy) closes the connection after its answer,
//! as a refused CONNECT does. The connection's lifetime bound still applies.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use pp_client::inner::{
    self, GATEWAY_PATH, InnerRequest, InnerResponse, MAX_ENCAPSULATED_REQUEST,
    OHTTP_REQUEST_MEDIA_TYPE, OHTTP_RESPONSE_MEDIA_TYPE, SEALED_REQUEST_MEDIA_TYPE,
};
use pp_tokens::{Token, parse_authorization};

use crate::gateway::{Gateway, RETIRED_KEY_MESSAGE, SPEND_RECORD_MARGIN_SECS, TokenProblem};
use crate::http::{Reply, error, read_body, reply};
use crate::issuer::unix_now;
use crate::oneshot::{self, Answer};
use crate::spent_store::Spend;

/// Longest the gateway waits for the instance's answer on its one-shot port.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest the encapsulated request's body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The handler bound a gateway serving this resource runs with (`http::Limits::request_timeout`):
/// the body, then the instance's answer, with room to spare.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(75);
/// The RFC 9458 §5.3 problem type for a key configuration the gateway does not hold.
pub const KEY_PROBLEM_TYPE: &str = "https://iana.org/assignments/http-problem-types#ohttp-key";

/// Whether `req` is for the Oblivious Gateway Resource.
pub fn is_ogr(req: &Request<Incoming>) -> bool {
    req.uri().scheme().is_none() && req.uri().path() == GATEWAY_PATH
}

/// Whether a `Content-Type` value is `media_type` (parameters ignored, case-insensitive).
pub fn is_media_type(value: Option<&hyper::header::HeaderValue>, media_type: &str) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}

/// A `Content-Length` announcing more than `max`.
pub fn announces_more_than(req: &Request<Incoming>, max: usize) -> bool {
    req.headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max as u64)
}

/// The body of an encapsulated request (RFC 9458) as the relay and the gateway take it: of media
/// type `message/ohttp-req` (else 415), at most [`MAX_ENCAPSULATED_REQUEST`] bytes, refused from
/// an announced `Content-Length` before any is read and while reading (413), arriving within
/// [`BODY_TIMEOUT`] (else 408). The refusal is returned for the caller to count.
pub async fn read_encapsulated_request(req: Request<Incoming>) -> Result<bytes::Bytes, Reply> {
    if !is_media_type(
        req.headers().get(hyper::header::CONTENT_TYPE),
        OHTTP_REQUEST_MEDIA_TYPE,
    ) {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be message/ohttp-req",
        ));
    }
    let too_large = || error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    if announces_more_than(&req, MAX_ENCAPSULATED_REQUEST) {
        return Err(too_large());
    }
    match tokio::time::timeout(BODY_TIMEOUT, read_body(req, MAX_ENCAPSULATED_REQUEST)).await {
        Ok(Ok(collected)) => Ok(collected.body),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "the body came too slowly",
        )),
    }
}

/// The inner answer and whether it leaves the connection open (a token was spent for it).
struct Outcome {
    response: InnerResponse,
    spent: bool,
}

impl Outcome {
    fn refused(status: StatusCode, message: &str) -> Self {
        Self {
            response: InnerResponse::Refused {
                status: status.as_u16(),
                message: message.to_string(),
                www_authenticate: None,
            },
            spent: false,
        }
    }
}

impl Gateway {
    /// Serves one request to the Oblivious Gateway Resource.
    pub async fn oblivious(self: Arc<Self>, req: Request<Incoming>) -> Reply {
        let Some(server) = &self.ohttp else {
            return self.refuse(error(
                StatusCode::NOT_FOUND,
                "this gateway serves no oblivious gateway resource",
            ));
        };
        if req.method() != Method::POST {
            return self.refuse(error(
                StatusCode::METHOD_NOT_ALLOWED,
                "the oblivious gateway resource takes POST only",
            ));
        }
        let body = match read_encapsulated_request(req).await {
            Ok(body) => body,
            Err(refusal) => return self.refuse(refusal),
        };
        let (inner_bytes, context) = match server.decapsulate(&body) {
            Ok(opened) => opened,
            Err(e) => return self.refuse(decapsulation_failure(&e)),
        };
        let outcome = self.inner(&inner_bytes).await;
        let encoded = match inner::build_inner_response(&outcome.response) {
            Ok(encoded) => encoded,
            Err(_) => {
                return self.refuse(error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the answer could not be encoded",
                ));
            }
        };
        let Ok(sealed) = context.encapsulate(&encoded) else {
            return self.refuse(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the answer could not be sealed",
            ));
        };
        let answer = reply(StatusCode::OK, OHTTP_RESPONSE_MEDIA_TYPE, sealed);
        if outcome.spent {
            answer
        } else {
            self.refuse(answer)
        }
    }

    /// Checks the inner request, spends its token and asks the instance.
    async fn inner(&self, bytes: &[u8]) -> Outcome {
        let Ok(request) = inner::parse_inner_request(bytes) else {
            return Outcome::refused(StatusCode::BAD_REQUEST, "the inner request is malformed");
        };
        if request.method != b"POST" || request.scheme != b"https" {
            return Outcome::refused(
                StatusCode::METHOD_NOT_ALLOWED,
                "the inner request must be POST https",
            );
        }
        let Some(id) = request.instance_id() else {
            return Outcome::refused(StatusCode::NOT_FOUND, "no such enclave instance");
        };
        if request.content_type.as_deref() != Some(SEALED_REQUEST_MEDIA_TYPE) {
            return Outcome::refused(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the inner body must be application/pp-sealed-request",
            );
        }
        let Some(oneshot) = self.instances.get(id).and_then(|i| i.oneshot_address) else {
            return Outcome::refused(StatusCode::NOT_FOUND, "no such enclave instance");
        };
        let (token, not_after) = match self.verify(&request) {
            Ok(verified) => verified,
            Err(outcome) => return outcome,
        };
        // A slot for a verified token only, before the spend (as for a tunnel): a busy gateway
        // does not burn the token.
        let Ok(slot) = self.limits.slot() else {
            return Outcome::refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway is busy; try again later",
            );
        };
        if let Err(outcome) = self.record(&token, not_after).await {
            return outcome;
        }
        // Spent: whatever happens now, the connection stays (the token paid for this request).
        let sealed = request.body;
        let exchange = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            oneshot::exchange(&oneshot, &sealed, ANSWER_TIMEOUT)
        })
        .await;
        let response = match exchange {
            Ok(Ok(Answer::Sealed(body))) => {
                self.counters.opened.fetch_add(1, Ordering::Relaxed);
                InnerResponse::Sealed(body)
            }
            Ok(Ok(Answer::Error(code))) => InnerResponse::EnclaveError(code),
            Ok(Err(e)) => {
                self.counters
                    .failed_upstream
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!("one-shot: {e}");
                return Outcome {
                    spent: true,
                    ..Outcome::refused(
                        StatusCode::BAD_GATEWAY,
                        "the enclave instance did not answer",
                    )
                };
            }
            Err(_) => {
                return Outcome {
                    spent: true,
                    ..Outcome::refused(StatusCode::INTERNAL_SERVER_ERROR, "the exchange failed")
                };
            }
        };
        Outcome {
            response,
            spent: true,
        }
    }

    /// Checks the inner request's token, as the CONNECT path does: the token and its key's
    /// `not_after`.
    fn verify(&self, request: &InnerRequest) -> Result<(Token, u64), Outcome> {
        let challenge = |message: &str| match self.challenge_value() {
            Some(value) => Outcome {
                response: InnerResponse::Refused {
                    status: 401,
                    message: message.to_string(),
                    www_authenticate: Some(value),
                },
                spent: false,
            },
            None => Outcome::refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway has no current issuer key; try again later",
            ),
        };
        let Some(Ok(token)) = request.authorization.as_deref().map(parse_authorization) else {
            return Err(challenge("a Privacy Pass token is required"));
        };
        let not_after = match self.token_status(&token, unix_now()) {
            Ok(not_after) => not_after,
            Err(TokenProblem::Retired) => {
                return Err(Outcome::refused(StatusCode::FORBIDDEN, RETIRED_KEY_MESSAGE));
            }
            Err(TokenProblem::DoesNotVerify) => return Err(challenge("the token did not verify")),
        };
        Ok((token, not_after))
    }

    /// Records the spend of a verified token (once, across replicas sharing the store).
    async fn record(&self, token: &Token, not_after: u64) -> Result<(), Outcome> {
        let expires_at = not_after.saturating_add(SPEND_RECORD_MARGIN_SECS);
        match self.spent.spend(token, Some(expires_at)).await {
            Spend::Recorded => Ok(()),
            Spend::AlreadySpent => Err(Outcome::refused(
                StatusCode::FORBIDDEN,
                "this token was spent before; fetch new tokens",
            )),
            Spend::Failed(e) => {
                tracing::error!("spent-token store: {e}");
                Err(Outcome::refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the gateway cannot record spent tokens right now",
                ))
            }
        }
    }
}

/// The plain `400` for a request that does not decapsulate: no detail, but for a key id the
/// gateway does not hold, the RFC 9458 `ohttp-key` problem (the device fetches the newest logged
/// index and its gateway key).
fn decapsulation_failure(e: &ohttp::Error) -> Reply {
    if matches!(e, ohttp::Error::KeyId) {
        let problem =
            format!("{{\"type\":\"{KEY_PROBLEM_TYPE}\",\"title\":\"key identifier unknown\"}}");
        return reply(StatusCode::BAD_REQUEST, "application/problem+json", problem);
    }
    let mut r = reply(StatusCode::BAD_REQUEST, "text/plain", "");
    r.headers_mut().remove(hyper::header::CONTENT_TYPE);
    r
}
