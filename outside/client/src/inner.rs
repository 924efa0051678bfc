//! The messages inside the operator's Oblivious HTTP layer (RFC 9458 around RFC 9292 BHTTP), one
//! encoder and one decoder for each, shared by the device (which builds requests and reads
//! responses), the gateway (which reads requests and builds responses) and the interop test
//! against an independent BHTTP implementation.
//!
//! The inner request is a known-length BHTTP request: `POST https://<gateway name>/instances/<id>`
//! with `authorization: PrivateToken token=…` and `content-type: application/pp-sealed-request`;
//! its body is the request sealed to the instance's attested key configuration (the same bytes a
//! session's `SealedRequest` frame carries). The inner response is a known-length BHTTP response:
//! `200` with `content-type: application/pp-sealed-response` and the enclave's sealed response,
//! `502` with `pp-enclave-error: <code>` when the enclave answered an `Error` frame, or another
//! status with a short fixed text from the gateway (and `www-authenticate` on a `401`).
//!
//! Decoding is strict: known-length framing only, no informational responses, no trailers, no
//! repeated header the gateway reads, nothing after the message but zero padding (RFC 9292 §3.8),
//! bodies bounded by the frame payload bound. Errors name what is wrong, never the bytes.

use std::io::Cursor;

use bhttp::{Message, Mode, StatusCode};
use pp_protocol::frame::MAX_PAYLOAD;

/// The media type of an RFC 9458 encapsulated request (the outer layer).
pub const OHTTP_REQUEST_MEDIA_TYPE: &str = "message/ohttp-req";
/// The media type of an RFC 9458 encapsulated response (the outer layer).
pub const OHTTP_RESPONSE_MEDIA_TYPE: &str = "message/ohttp-res";
/// The gateway's Oblivious Gateway Resource path.
pub const GATEWAY_PATH: &str = "/.well-known/ohttp-gateway";
/// The media type of the inner request's body: a sealed request to an enclave.
pub const SEALED_REQUEST_MEDIA_TYPE: &str = "application/pp-sealed-request";
/// The media type of the inner response's body: the enclave's sealed response.
pub const SEALED_RESPONSE_MEDIA_TYPE: &str = "application/pp-sealed-response";
/// The inner response header carrying the enclave's `Error` frame code (decimal).
pub const ENCLAVE_ERROR_HEADER: &str = "pp-enclave-error";
/// The path prefix of the inner request; the instance id follows it.
pub const INSTANCE_PATH_PREFIX: &str = "/instances/";
/// The longest refusal text kept from an inner response (gateway texts are short and fixed).
pub const MAX_MESSAGE: usize = 512;
/// The largest encoded inner message accepted: a body of [`MAX_PAYLOAD`] plus room for the
/// control data and a few short headers.
pub const MAX_INNER: usize = MAX_PAYLOAD + 8 * 1024;
/// The largest RFC 9458 encapsulated request the relay and the gateway accept: [`MAX_INNER`] plus
/// the outer layer (key id and suite, 7 bytes; the X25519 `enc`, 32; the AEAD tag, 16).
pub const MAX_ENCAPSULATED_REQUEST: usize = MAX_INNER + 7 + 32 + 16;
/// The largest RFC 9458 encapsulated response: [`MAX_INNER`] plus the response nonce (at most 32
/// bytes) and the AEAD tag (16).
pub const MAX_ENCAPSULATED_RESPONSE: usize = MAX_INNER + 32 + 16;

/// Why an inner message could not be built or read. The texts are fixed: no message bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InnerError {
    #[error("the inner BHTTP message is malformed")]
    Malformed,
    #[error("the inner BHTTP message is not known-length framing")]
    NotKnownLength,
    #[error("the inner BHTTP message is a response where a request was expected, or the reverse")]
    WrongKind,
    #[error("the inner BHTTP message is larger than the bound")]
    TooLarge,
    #[error("the inner BHTTP message has informational responses or trailers")]
    Unexpected,
    #[error("the inner BHTTP message repeats the {0} header")]
    Repeated(&'static str),
    #[error("the inner BHTTP message has bytes after it that are not zero padding")]
    TrailingBytes,
    #[error("the inner BHTTP response is not a valid answer: {0}")]
    BadResponse(&'static str),
    #[error("a field of the inner request is not valid: {0}")]
    BadField(&'static str),
}

/// An inner request as the gateway reads it: the fields it checks, in the order it checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InnerRequest {
    pub method: Vec<u8>,
    pub scheme: Vec<u8>,
    pub authority: Vec<u8>,
    pub path: Vec<u8>,
    /// The `authorization` header (at most one).
    pub authorization: Option<String>,
    /// The `content-type` header (at most one).
    pub content_type: Option<String>,
    /// The body: the sealed request.
    pub body: Vec<u8>,
}

impl InnerRequest {
    /// The instance id the path names (`/instances/<id>`, the id of the `i-<16 hex>` form), or
    /// `None` for any other path.
    pub fn instance_id(&self) -> Option<&str> {
        let path = std::str::from_utf8(&self.path).ok()?;
        let id = path.strip_prefix(INSTANCE_PATH_PREFIX)?;
        pp_protocol::cdn_index::valid_id(id).then_some(id)
    }
}

/// An inner response: what the device gets back through the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InnerResponse {
    /// `200`: the enclave's sealed response.
    Sealed(Vec<u8>),
    /// `502` with `pp-enclave-error`: the enclave answered an `Error` frame with this code.
    EnclaveError(u16),
    /// Any other status: a gateway refusal with its short text, and on a `401` the
    /// `www-authenticate` challenge to fetch tokens for.
    Refused {
        status: u16,
        message: String,
        www_authenticate: Option<String>,
    },
}

/// Encodes the inner request the device sends: known-length BHTTP, `POST https://<authority>
/// /instances/<instance_id>`, the token's `authorization` value, the sealed request as the body.
pub fn build_inner_request(
    authority: &str,
    instance_id: &str,
    authorization: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, InnerError> {
    if !pp_protocol::cdn_index::valid_id(instance_id) {
        return Err(InnerError::BadField("instance id"));
    }
    if authority.is_empty() || !authority.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
        return Err(InnerError::BadField("authority"));
    }
    if !authorization
        .bytes()
        .all(|b| b == b' ' || b.is_ascii_graphic())
    {
        return Err(InnerError::BadField("authorization"));
    }
    if sealed.len() > MAX_PAYLOAD {
        return Err(InnerError::TooLarge);
    }
    let path = format!("{INSTANCE_PATH_PREFIX}{instance_id}");
    let mut m = Message::request(
        b"POST".to_vec(),
        b"https".to_vec(),
        authority.as_bytes().to_vec(),
        path.into_bytes(),
    );
    m.put_header("authorization", authorization);
    m.put_header("content-type", SEALED_REQUEST_MEDIA_TYPE);
    m.write_content(sealed);
    write(&m)
}

/// Decodes an inner request (the gateway's side). Checks the framing only; the gateway checks
/// method, path, media type and token, each with its own status.
pub fn parse_inner_request(bytes: &[u8]) -> Result<InnerRequest, InnerError> {
    let m = read(bytes, true)?;
    let c = m.control();
    let (Some(method), Some(scheme), Some(authority), Some(path)) =
        (c.method(), c.scheme(), c.authority(), c.path())
    else {
        return Err(InnerError::WrongKind);
    };
    Ok(InnerRequest {
        method: method.to_vec(),
        scheme: scheme.to_vec(),
        authority: authority.to_vec(),
        path: path.to_vec(),
        authorization: single(&m, "authorization")?,
        content_type: single(&m, "content-type")?,
        body: m.content().to_vec(),
    })
}

/// Encodes an inner response (the gateway's side).
pub fn build_inner_response(response: &InnerResponse) -> Result<Vec<u8>, InnerError> {
    let status = |s: u16| StatusCode::try_from(s).map_err(|_| InnerError::BadField("status"));
    let m = match response {
        InnerResponse::Sealed(body) => {
            if body.len() > MAX_PAYLOAD {
                return Err(InnerError::TooLarge);
            }
            let mut m = Message::response(status(200)?);
            m.put_header("content-type", SEALED_RESPONSE_MEDIA_TYPE);
            m.write_content(body);
            m
        }
        InnerResponse::EnclaveError(code) => {
            let mut m = Message::response(status(502)?);
            m.put_header(ENCLAVE_ERROR_HEADER, code.to_string());
            m
        }
        InnerResponse::Refused {
            status: s,
            message,
            www_authenticate,
        } => {
            if !(400..=599).contains(s) {
                return Err(InnerError::BadField("status"));
            }
            if message.len() > MAX_MESSAGE {
                return Err(InnerError::TooLarge);
            }
            let mut m = Message::response(status(*s)?);
            m.put_header("content-type", "text/plain; charset=utf-8");
            if let Some(challenge) = www_authenticate {
                m.put_header("www-authenticate", challenge.as_bytes());
            }
            m.write_content(message.as_bytes());
            m
        }
    };
    write(&m)
}

/// Decodes an inner response (the device's side): a `200` must carry a sealed response of the
/// right media type, a `502` with `pp-enclave-error` one decimal code; any other status is a
/// refusal whose text is kept only if it is short UTF-8.
pub fn parse_inner_response(bytes: &[u8]) -> Result<InnerResponse, InnerError> {
    let m = read(bytes, false)?;
    let status = m.control().status().ok_or(InnerError::WrongKind)?.code();
    let content_type = single(&m, "content-type")?;
    let enclave_error = single(&m, ENCLAVE_ERROR_HEADER)?;
    match (status, enclave_error) {
        (200, None) => {
            if content_type.as_deref() != Some(SEALED_RESPONSE_MEDIA_TYPE) {
                return Err(InnerError::BadResponse(
                    "a 200 without the sealed-response type",
                ));
            }
            if m.content().is_empty() {
                return Err(InnerError::BadResponse("a 200 with an empty body"));
            }
            Ok(InnerResponse::Sealed(m.content().to_vec()))
        }
        (502, Some(code)) => {
            let valid =
                !code.is_empty() && code.len() <= 5 && code.bytes().all(|b| b.is_ascii_digit());
            let code = valid.then(|| code.parse::<u16>().ok()).flatten().ok_or(
                InnerError::BadResponse("pp-enclave-error is not a decimal code"),
            )?;
            if !m.content().is_empty() {
                return Err(InnerError::BadResponse("an enclave error with a body"));
            }
            Ok(InnerResponse::EnclaveError(code))
        }
        (_, Some(_)) => Err(InnerError::BadResponse(
            "pp-enclave-error on a status other than 502",
        )),
        (200..=299, None) => Err(InnerError::BadResponse("a success status other than 200")),
        (s, None) => {
            let message = std::str::from_utf8(m.content())
                .ok()
                .filter(|t| {
                    t.len() <= MAX_MESSAGE && !t.chars().any(|c| c.is_control() && c != '\n')
                })
                .map(|t| t.trim().to_owned())
                .unwrap_or_default();
            Ok(InnerResponse::Refused {
                status: s,
                message,
                www_authenticate: single(&m, "www-authenticate")?,
            })
        }
    }
}

fn write(m: &Message) -> Result<Vec<u8>, InnerError> {
    let mut out = Vec::new();
    m.write_bhttp(Mode::KnownLength, &mut out)
        .map_err(|_| InnerError::Malformed)?;
    Ok(out)
}

/// Reads one known-length message of the expected kind, refusing what this protocol never
/// sends (informational responses, trailers) and anything after it but zero padding.
fn read(bytes: &[u8], request: bool) -> Result<Message, InnerError> {
    if bytes.len() > MAX_INNER {
        return Err(InnerError::TooLarge);
    }
    // The framing indicator (RFC 9292 §3.3): 0 known-length request, 1 known-length response,
    // 2 and 3 their indeterminate-length forms. One byte, as every defined value is below 64.
    match (bytes.first(), request) {
        (Some(0), true) | (Some(1), false) => {}
        (Some(2), true) | (Some(3), false) => return Err(InnerError::NotKnownLength),
        (Some(0..=3), _) => return Err(InnerError::WrongKind),
        _ => return Err(InnerError::Malformed),
    }
    let mut cursor = Cursor::new(bytes);
    let m =
        Message::read_bhttp::<_, Cursor<&[u8]>>(&mut cursor).map_err(|_| InnerError::Malformed)?;
    let rest = &bytes[usize::try_from(cursor.position()).map_err(|_| InnerError::Malformed)?..];
    if rest.iter().any(|&b| b != 0) {
        return Err(InnerError::TrailingBytes);
    }
    if !m.informational().is_empty() || !m.trailer().is_empty() {
        return Err(InnerError::Unexpected);
    }
    if m.content().len() > MAX_PAYLOAD {
        return Err(InnerError::TooLarge);
    }
    Ok(m)
}

/// The one value of header `name` (names compared without case), as text; a repeated header is
/// refused (two `authorization` values must not mean two things to two readers).
fn single(m: &Message, name: &'static str) -> Result<Option<String>, InnerError> {
    let mut values = m
        .header()
        .iter()
        .filter(|f| f.name().eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| f.value());
    let first = values.next();
    if values.next().is_some() {
        return Err(InnerError::Repeated(name));
    }
    first
        .map(|v| {
            std::str::from_utf8(v)
                .map(str::to_owned)
                .map_err(|_| InnerError::BadField(name))
        })
        .transpose()
}

#[cfg(test)]
mod tests;
