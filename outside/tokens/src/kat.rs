//! Known-answer tests: RFC 9578 Appendix A.2 (all five type 0x0002 vectors, replayed exactly:
//! the vectors' salt and blind are fed to the blinding step through a scripted RNG) and the
//! framing of draft-ietf-privacypass-batched-tokens-08 Appendix A.4 vector 7.

use std::collections::HashMap;

use base64::Engine as _;
use blind_rsa_signatures::SecretKeySha384PSSDeterministic;
use blind_rsa_signatures::reexports::rand::{TryCryptoRng, TryRng};

use crate::batch::{BatchTokenRequest, BatchTokenResponse};
use crate::challenge::TokenChallenge;
use crate::client::{Client, prepare_with};
use crate::issuer::Issuer;
use crate::keys::IssuerPublicKey;
use crate::request::{TokenRequest, TokenResponse};
use crate::token::Token;
use crate::verifier::{Verifier, VerifyError};
use crate::wire::WireError;

const RFC9578_A2: &str = include_str!("../tests/data/rfc9578-a2.txt");
const BATCH_A4_V7: &str = include_str!("../tests/data/batched-tokens-a4-v7.txt");

/// `name: hex` records, blank-line separated; `#` lines are comments.
fn records(text: &str) -> Vec<HashMap<String, Vec<u8>>> {
    text.split("\n\n")
        .map(|block| {
            block
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(|l| {
                    let (k, v) = l.split_once(": ").expect("name: value");
                    (k.to_owned(), hex::decode(v).expect("hex"))
                })
                .collect::<HashMap<_, _>>()
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// The vectors' issuer public key (its SPKI).
pub(crate) fn vector_public_key_spki() -> Vec<u8> {
    records(RFC9578_A2)[0]["pkS"].clone()
}

/// The vectors' issuer secret key, from its PEM PKCS#8 encoding.
pub(crate) fn vector_issuer() -> Issuer {
    let pem = String::from_utf8(records(RFC9578_A2)[0]["skS_pem_hex"].clone()).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    // Through the public loader, and directly, to the same key.
    let issuer = Issuer::from_pkcs8_der(&der).unwrap();
    let direct = Issuer::from_secret(SecretKeySha384PSSDeterministic::from_pem(&pem).unwrap());
    assert_eq!(direct.unwrap().public_key(), issuer.public_key());
    issuer
}

/// An RNG that plays back scripted byte strings, one per `fill_bytes` call.
struct Scripted(Vec<Vec<u8>>);

impl TryRng for Scripted {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        unreachable!("blinding draws bytes only")
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        unreachable!("blinding draws bytes only")
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        let next = self.0.remove(0);
        assert_eq!(next.len(), dst.len(), "scripted draw of the wrong size");
        dst.copy_from_slice(&next);
        Ok(())
    }
}

impl TryCryptoRng for Scripted {}

#[test]
fn rfc9578_a2_vectors() {
    let issuer = vector_issuer();
    let key = IssuerPublicKey::from_spki(&vector_public_key_spki()).unwrap();
    assert_eq!(issuer.public_key(), &key);
    let vectors = &records(RFC9578_A2)[1..];
    assert_eq!(vectors.len(), 5);
    for (i, v) in vectors.iter().enumerate() {
        let challenge = TokenChallenge::parse(&v["token_challenge"]).unwrap();
        assert_eq!(challenge.to_vec(), v["token_challenge"], "vector {i}");
        let nonce = v["nonce"].as_slice().try_into().unwrap();
        // The blinding draws the 48-byte salt, then r as a little-endian integer below n: the
        // vector's blind r, big-endian, reversed.
        let mut blind = v["blind"].clone();
        blind.reverse();
        let mut rng = Scripted(vec![v["salt"].clone(), blind]);
        let (request, pending) = prepare_with(&challenge, &key, nonce, &mut rng).unwrap();
        assert!(rng.0.is_empty());
        assert_eq!(
            request.to_vec(),
            v["token_request"],
            "token_request, vector {i}"
        );
        assert_eq!(TokenRequest::parse(&v["token_request"]).unwrap(), request);

        let response = issuer.issue(&request).unwrap();
        assert_eq!(
            response.to_vec(),
            v["token_response"],
            "token_response, vector {i}"
        );
        assert_eq!(
            TokenResponse::parse(&v["token_response"]).unwrap(),
            response
        );

        let token = Client::finalize(pending, &response).unwrap();
        assert_eq!(token.to_vec(), v["token"], "token, vector {i}");
        assert_eq!(Token::parse(&v["token"]).unwrap(), token);
        assert_eq!(token.challenge_digest, challenge.digest());
        assert_eq!(&token.token_key_id, key.token_key_id());
        Verifier::verify(&token, &challenge, &key).unwrap();

        // One flipped bit anywhere in the token is refused.
        let bytes = token.to_vec();
        for bit in [
            0usize,
            17,
            2 * 8 + 3,
            40 * 8,
            70 * 8,
            100 * 8 + 5,
            bytes.len() * 8 - 1,
        ] {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let refused = match Token::parse(&flipped) {
                Err(e) => e == WireError::UnsupportedTokenType,
                Ok(t) => Verifier::verify(&t, &challenge, &key).is_err(),
            };
            assert!(refused, "bit {bit} of vector {i}");
        }
    }
}

#[test]
fn vector_token_refused_for_other_challenge_and_key() {
    let key = IssuerPublicKey::from_spki(&vector_public_key_spki()).unwrap();
    let vectors = &records(RFC9578_A2)[1..];
    let token = Token::parse(&vectors[0]["token"]).unwrap();
    let other_challenge = TokenChallenge::parse(&vectors[1]["token_challenge"]).unwrap();
    assert_eq!(
        Verifier::verify(&token, &other_challenge, &key),
        Err(VerifyError::ChallengeMismatch)
    );
    // A token re-labelled with another key id, checked against that other key.
    let other_key = IssuerPublicKey::from_spki(&hex::decode(OTHER_KEY_SPKI).unwrap()).unwrap();
    let challenge = TokenChallenge::parse(&vectors[0]["token_challenge"]).unwrap();
    assert_eq!(
        Verifier::verify(&token, &challenge, &other_key),
        Err(VerifyError::KeyMismatch)
    );
    let mut relabelled = token.clone();
    relabelled.token_key_id = *other_key.token_key_id();
    assert_eq!(
        Verifier::verify(&relabelled, &challenge, &other_key),
        Err(VerifyError::BadSignature)
    );
    // The authenticator plus the modulus (still 256 bytes) is refused: one encoding per signature.
    let mut n = vector_public_key_spki()[vector_public_key_spki().len() - 261..][..256].to_vec();
    assert_eq!(n[0], 0xcb);
    let mut carry = 0u16;
    for (a, m) in token.authenticator.iter().rev().zip(n.iter_mut().rev()) {
        let sum = u16::from(*a) + u16::from(*m) + carry;
        *m = sum as u8;
        carry = sum >> 8;
    }
    if carry == 0 {
        let mut shifted = token.clone();
        shifted.authenticator.copy_from_slice(&n);
        assert_eq!(
            Verifier::verify(&shifted, &challenge, &key),
            Err(VerifyError::BadSignature)
        );
    }
    // A challenge of another token type.
    let voprf = TokenChallenge::parse(&[0, 1, 0, 1, b'i', 0, 0, 0]).unwrap();
    assert_eq!(
        Verifier::verify(&token, &voprf, &key),
        Err(VerifyError::WrongTokenType)
    );
}

/// The type 0x0002 key of draft-ietf-privacypass-batched-tokens-08 Appendix A.4 vector 8.
const OTHER_KEY_SPKI: &str = concat!(
    "30820152303d06092a864886f70d01010a3030a00d300b0609608648016503040202a11a301806092a864886f7",
    "0d010108300b0609608648016503040202a2030201300382010f003082010a02820101009b4293ef0048362631",
    "3268c8c6a414243f982e56dcef2d7fc97dd03a470bdb224f0f3d6e44df0d5d680fcbcde7357d0e68357d487f78",
    "72d5d1a0b74a801b5557fb856410f83e4b850c04d642057985e5329178bf1d55d057109ba1387e690df91092ca",
    "4424467825e9ed9aeb61e4350e3ee3cca65f603be2bb131f7a7506c32f0d6f8071de704c3dd81e69f29a9d6f31",
    "fc78c6d55abe58cfaf92d630410126f162d129d00de9fb2a6685361cf318463ffe5000e683345fad9d84faf349",
    "efc71d959cfc49ed7aa4d6720831d773397fd384e80dfd724bec09786e09b69a6199168c9a362db7c5f9af4c3e",
    "937cc87cb0fb300278c4c05acab1f1cc29b8e60b17f90203010001",
);

#[test]
fn batched_tokens_a4_framing() {
    let v = &records(BATCH_A4_V7)[0];
    let (request, response) = (&v["token_request"], &v["token_response"]);
    // 0x4137: a two-byte varint, 311 = 259 (type 2) + 52 (type 1) bytes of entries.
    assert_eq!(&request[..2], &[0x41, 0x37]);
    assert_eq!(
        BatchTokenRequest::parse(request),
        Err(WireError::UnsupportedTokenType)
    );
    let entry = TokenRequest::parse(&request[2..2 + 259]).unwrap();
    assert_eq!(request[2 + 259..4 + 259], [0x00, 0x01]);
    let ours = BatchTokenRequest::new(vec![entry]).unwrap().to_vec();
    assert_eq!(ours[..2], [0x41, 0x03]);
    assert_eq!(ours[2..], request[2..2 + 259]);

    // 0x4197: 407 = (1 + 2 + 256) + (1 + 2 + 145) bytes of present entries.
    assert_eq!(&response[..2], &[0x41, 0x97]);
    assert_eq!(
        BatchTokenResponse::parse(response),
        Err(WireError::UnsupportedTokenType)
    );
    assert_eq!(response[2..5], [0x01, 0x00, 0x02]);
    let sig = TokenResponse::parse(&response[5..5 + 256]).unwrap();
    let ours = BatchTokenResponse::new(vec![Some(sig)]).unwrap().to_vec();
    assert_eq!(ours[2..], response[2..2 + 259]);
    assert_eq!(response[2 + 259..2 + 262], [0x01, 0x00, 0x01]);
}
