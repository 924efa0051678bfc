//! The `PrivateToken` HTTP authentication scheme (RFC 9577 §2.1–2.2), header values only:
//!
//! ```text
//! WWW-Authenticate: PrivateToken challenge="<base64url, padded>", token-key="<base64url, padded>"[, max-age=N]
//! Authorization:    PrivateToken token=<base64url>
//! ```
//!
//! The `Authorization` parser follows RFC 9110 §11 (case-insensitive scheme and parameter names,
//! values as tokens or quoted strings without escapes), bounds the input length and the number
//! of parameters, ignores unknown parameters, and refuses a missing or repeated `token`.

use crate::challenge::TokenChallenge;
use crate::keys::IssuerPublicKey;
use crate::token::Token;
use crate::wire::{WireError, b64url_decode_any_pad, b64url_encode_padded};

/// The authentication scheme name.
pub const SCHEME: &str = "PrivateToken";
/// Longest `Authorization` value parsed (a token is 472 base64url characters).
pub const MAX_AUTHORIZATION_LEN: usize = 1024;
/// Most auth-params accepted in one `Authorization` value.
pub const MAX_PARAMS: usize = 8;

/// Why an `Authorization` value was refused. Carries no peer data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Longer than [`MAX_AUTHORIZATION_LEN`].
    #[error("authorization value too long")]
    TooLong,
    /// Another authentication scheme (the caller may try other schemes).
    #[error("not the PrivateToken scheme")]
    OtherScheme,
    /// Not valid credentials syntax, or no single `token` parameter.
    #[error("malformed PrivateToken credentials")]
    Malformed,
    /// The `token` parameter does not decode to a type 0x0002 token.
    #[error("bad token: {0}")]
    Token(WireError),
}

/// `PrivateToken token=<base64url>` for an `Authorization` header.
pub fn authorization_value(token: &Token) -> String {
    format!("{SCHEME} token={}", token.to_base64url())
}

/// `PrivateToken challenge="...", token-key="..."[, max-age=N]` for a `WWW-Authenticate` header.
pub fn www_authenticate_value(
    challenge: &TokenChallenge,
    issuer_key: &IssuerPublicKey,
    max_age: Option<u32>,
) -> String {
    // Padded base64url (RFC 4648 §5): what other implementations (privacypass-ts) parse.
    let mut value = format!(
        "{SCHEME} challenge=\"{}\", token-key=\"{}\"",
        b64url_encode_padded(&challenge.to_vec()),
        b64url_encode_padded(issuer_key.spki())
    );
    if let Some(age) = max_age {
        value.push_str(&format!(", max-age={age}"));
    }
    value
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A cursor over the header value's bytes.
struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn skip_ows(&mut self) {
        while self.peek().is_some_and(is_ows) {
            self.at += 1;
        }
    }

    fn tchars(&mut self) -> Result<&'a [u8], AuthError> {
        let start = self.at;
        while self.peek().is_some_and(is_tchar) {
            self.at += 1;
        }
        if self.at == start {
            return Err(AuthError::Malformed);
        }
        Ok(&self.s[start..self.at])
    }

    /// A quoted-string without quoted-pairs (no value this scheme carries needs escaping).
    fn quoted(&mut self) -> Result<&'a [u8], AuthError> {
        self.at += 1;
        let start = self.at;
        loop {
            match self.peek() {
                Some(b'"') => break,
                Some(b'\\') | None => return Err(AuthError::Malformed),
                Some(_) => self.at += 1,
            }
        }
        let value = &self.s[start..self.at];
        self.at += 1;
        Ok(value)
    }
}

/// Parse an `Authorization` header value into a token. Refuses anything malformed; a value of
/// another scheme is [`AuthError::OtherScheme`].
pub fn parse_authorization(value: &str) -> Result<Token, AuthError> {
    let [token] = private_token_params(value, MAX_AUTHORIZATION_LEN, ["token"])?;
    let token = token.ok_or(AuthError::Malformed)?;
    // Only ASCII was accepted, so this cannot fail.
    let text = std::str::from_utf8(token).map_err(|_| AuthError::Malformed)?;
    Token::from_base64url(text).map_err(AuthError::Token)
}

/// Reads a `PrivateToken` header value (`Authorization` or `WWW-Authenticate`, at most `max_len`
/// bytes of visible ASCII and spaces): the scheme, then comma-separated `name=value` parameters
/// (token or quoted string), at most [`MAX_PARAMS`]. Returns the value of each of `names`
/// (case-insensitive); a name given twice is malformed, other names are ignored.
fn private_token_params<'a, const N: usize>(
    value: &'a str,
    max_len: usize,
    names: [&str; N],
) -> Result<[Option<&'a [u8]>; N], AuthError> {
    if value.len() > max_len {
        return Err(AuthError::TooLong);
    }
    let bytes = value.as_bytes();
    if !bytes.iter().all(|&b| b.is_ascii_graphic() || is_ows(b)) {
        return Err(AuthError::Malformed);
    }
    let mut c = Cursor { s: bytes, at: 0 };
    c.skip_ows();
    if !c.tchars()?.eq_ignore_ascii_case(SCHEME.as_bytes()) {
        return Err(AuthError::OtherScheme);
    }
    if c.peek() != Some(b' ') {
        return Err(AuthError::Malformed);
    }
    let mut found = [None; N];
    for n in 0.. {
        if n == MAX_PARAMS {
            return Err(AuthError::Malformed);
        }
        c.skip_ows();
        let name = c.tchars()?;
        c.skip_ows();
        if c.peek() != Some(b'=') {
            return Err(AuthError::Malformed);
        }
        c.at += 1;
        c.skip_ows();
        let param = if c.peek() == Some(b'"') {
            c.quoted()?
        } else {
            c.tchars()?
        };
        if let Some(i) = names
            .iter()
            .position(|wanted| name.eq_ignore_ascii_case(wanted.as_bytes()))
            && found[i].replace(param).is_some()
        {
            return Err(AuthError::Malformed);
        }
        c.skip_ows();
        match c.peek() {
            None => break,
            Some(b',') => c.at += 1,
            Some(_) => return Err(AuthError::Malformed),
        }
    }
    Ok(found)
}

/// Longest `WWW-Authenticate` value parsed (a challenge and an RSA-2048 key are about 600
/// base64url characters).
pub const MAX_WWW_AUTHENTICATE_LEN: usize = 4096;

/// A parsed `WWW-Authenticate: PrivateToken` challenge (RFC 9577 §2.1): the challenge and the
/// token key the redeemer names for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenChallengeHeader {
    /// The `challenge` parameter.
    pub challenge: TokenChallenge,
    /// The `token-key` parameter, as bytes (an SPKI for type 2); not yet checked as a key.
    pub token_key: Vec<u8>,
}

/// Parse a `WWW-Authenticate` value holding one `PrivateToken` challenge with exactly one
/// `challenge` and one `token-key` parameter (other parameters, such as `max-age`, are ignored).
pub fn parse_www_authenticate(value: &str) -> Result<TokenChallengeHeader, AuthError> {
    let [challenge, token_key] =
        private_token_params(value, MAX_WWW_AUTHENTICATE_LEN, ["challenge", "token-key"])?;
    let (Some(challenge), Some(token_key)) = (challenge, token_key) else {
        return Err(AuthError::Malformed);
    };
    let text = |b: &[u8]| std::str::from_utf8(b).map(str::to_owned);
    let challenge = b64url_decode_any_pad(
        &text(challenge).map_err(|_| AuthError::Malformed)?,
        crate::challenge::MAX_CHALLENGE_LEN,
    )
    .and_then(|bytes| TokenChallenge::parse(&bytes))
    .map_err(AuthError::Token)?;
    let token_key = b64url_decode_any_pad(
        &text(token_key).map_err(|_| AuthError::Malformed)?,
        crate::keys::MAX_SPKI_LEN,
    )
    .map_err(AuthError::Token)?;
    Ok(TokenChallengeHeader {
        challenge,
        token_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DIGEST_LEN, NID, NK, NONCE_LEN};

    fn sample() -> Token {
        Token {
            nonce: [9; NONCE_LEN],
            challenge_digest: [8; DIGEST_LEN],
            token_key_id: [7; NID],
            authenticator: [6; NK],
        }
    }

    #[test]
    fn round_trip_and_accepted_forms() {
        let t = sample();
        let b64 = t.to_base64url();
        assert_eq!(parse_authorization(&authorization_value(&t)).unwrap(), t);
        for value in [
            format!("PrivateToken token={b64}"),
            format!("privatetoken TOKEN=\"{b64}\""),
            format!("  PrivateToken   token = {b64} "),
            format!("PrivateToken token={b64}, extensions=\"AAE\""),
            format!("PrivateToken other=x,token={b64}"),
        ] {
            assert_eq!(parse_authorization(&value).unwrap(), t, "{value}");
        }
    }

    #[test]
    fn refusals() {
        let b64 = sample().to_base64url();
        let cases: Vec<(String, AuthError)> = vec![
            (format!("Bearer {b64}"), AuthError::OtherScheme),
            ("PrivateToken".into(), AuthError::Malformed),
            ("PrivateToken ".into(), AuthError::Malformed),
            (format!("PrivateToken token={b64},"), AuthError::Malformed),
            (
                format!("PrivateToken token={b64}, token={b64}"),
                AuthError::Malformed,
            ),
            (format!("PrivateToken token=\"{b64}"), AuthError::Malformed),
            (
                format!("PrivateToken token=\"{b64}\\\""),
                AuthError::Malformed,
            ),
            (format!("PrivateToken token={b64} x"), AuthError::Malformed),
            (format!("PrivateToken tok={b64}"), AuthError::Malformed),
            (format!("PrivateToken\ttoken={b64}"), AuthError::Malformed),
            (format!("PrivateToken token={b64}\n"), AuthError::Malformed),
            (format!("PrivateToken token=é{b64}"), AuthError::Malformed),
            (format!("PrivateToken token={b64}="), AuthError::Malformed),
            (
                "PrivateToken a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,token=x".into(),
                AuthError::Malformed,
            ),
            (
                format!("PrivateToken token={}", "A".repeat(1100)),
                AuthError::TooLong,
            ),
            (
                format!("PrivateToken token={}", &b64[..b64.len() - 4]),
                AuthError::Token(WireError::Truncated),
            ),
            (
                "PrivateToken token=AAAA".into(),
                AuthError::Token(WireError::UnsupportedTokenType),
            ),
            (
                format!("PrivateToken token=!{}", &b64[1..]),
                AuthError::Token(WireError::BadBase64),
            ),
        ];
        for (value, want) in cases {
            assert_eq!(parse_authorization(&value), Err(want), "{value:?}");
        }
    }

    #[test]
    fn www_authenticate_round_trip_and_refusals() {
        let key = IssuerPublicKey::from_spki(&crate::kat::vector_public_key_spki()).unwrap();
        let challenge = TokenChallenge::new(b"issuer.example", None, b"origin").unwrap();
        let value = www_authenticate_value(&challenge, &key, Some(60));
        let parsed = parse_www_authenticate(&value).unwrap();
        assert_eq!(parsed.challenge, challenge);
        assert_eq!(parsed.token_key, key.spki());
        let c = challenge.to_base64url();
        let k = key.to_base64url();
        for bad in [
            format!("PrivateToken challenge=\"{c}\""),
            format!("PrivateToken token-key=\"{k}\""),
            format!("PrivateToken challenge=\"{c}\", challenge=\"{c}\", token-key=\"{k}\""),
            format!("PrivateToken challenge=\"{c}\", token-key=\"{k}\" x"),
        ] {
            assert_eq!(
                parse_www_authenticate(&bad),
                Err(AuthError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            parse_www_authenticate(&format!("Basic challenge=\"{c}\"")),
            Err(AuthError::OtherScheme)
        );
        assert_eq!(
            parse_www_authenticate(&"A".repeat(MAX_WWW_AUTHENTICATE_LEN + 1)),
            Err(AuthError::TooLong)
        );
    }
}
