//! The three roles end to end, through the public API only: a generated issuer key, issuance
//! single and batched, verification and its refusals, the key file.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use pp_tokens::{
    BatchTokenRequest, BatchTokenResponse, Client, ClientError, IssueError, Issuer,
    IssuerDirectory, Token, TokenChallenge, TokenRequest, TokenResponse, Verifier, VerifyError,
    parse_authorization,
};

/// One RSA-2048 key per test binary: generation is the slow part.
fn issuer() -> &'static Issuer {
    static ISSUER: OnceLock<Issuer> = OnceLock::new();
    ISSUER.get_or_init(|| Issuer::generate().expect("key generation"))
}

/// A second, independent issuer: the RFC 9578 test-vector key (no second generation needed).
fn other_issuer() -> Issuer {
    let text = include_str!("data/rfc9578-a2.txt");
    let pem_hex = text
        .lines()
        .find_map(|l| l.strip_prefix("skS_pem_hex: "))
        .unwrap();
    let pem = String::from_utf8(hex::decode(pem_hex).unwrap()).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Issuer::from_pkcs8_der(&STANDARD.decode(body).unwrap()).unwrap()
}

fn challenge() -> TokenChallenge {
    TokenChallenge::new(b"issuer.example", Some([5; 32]), b"gateway.example").unwrap()
}

#[test]
fn issue_and_redeem() {
    let key = issuer().public_key();
    let (request, pending) = Client::prepare(&challenge(), key).unwrap();
    // Over the wire and back.
    let request = TokenRequest::parse(&request.to_vec()).unwrap();
    let response = issuer().issue(&request).unwrap();
    let response = TokenResponse::parse(&response.to_vec()).unwrap();
    let token = Client::finalize(pending, &response).unwrap();
    let header = pp_tokens::authorization_value(&token);
    let token = parse_authorization(&header).unwrap();
    Verifier::verify(&token, &challenge(), key).unwrap();
    Verifier::verify_digest(&token, &challenge().digest(), key).unwrap();
}

#[test]
fn fresh_nonce_per_token() {
    let key = issuer().public_key();
    let (a, _) = Client::prepare(&challenge(), key).unwrap();
    let (b, _) = Client::prepare(&challenge(), key).unwrap();
    assert_ne!(a.blinded_msg, b.blinded_msg);
}

#[test]
fn refusals() {
    let key = issuer().public_key();
    let (request, pending) = Client::prepare(&challenge(), key).unwrap();
    let token = Client::finalize(pending, &issuer().issue(&request).unwrap()).unwrap();

    // Another challenge.
    let other = TokenChallenge::new(b"issuer.example", None, b"gateway.example").unwrap();
    assert_eq!(
        Verifier::verify(&token, &other, key),
        Err(VerifyError::ChallengeMismatch)
    );
    // Another key.
    let other_issuer = other_issuer();
    assert_eq!(
        Verifier::verify(&token, &challenge(), other_issuer.public_key()),
        Err(VerifyError::KeyMismatch)
    );
    // Every single flipped bit of the token.
    let bytes = token.to_vec();
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        if let Ok(t) = Token::parse(&flipped) {
            assert!(
                Verifier::verify(&t, &challenge(), key).is_err(),
                "bit {bit}"
            );
        }
    }

    // The issuer refuses a request for another key id.
    let mut wrong = request.clone();
    wrong.truncated_token_key_id ^= 1;
    assert_eq!(issuer().issue(&wrong), Err(IssueError::WrongKey));
    // And a blinded message at or above its modulus.
    let mut huge = request.clone();
    huge.blinded_msg = [0xff; 256];
    assert_eq!(
        issuer().issue(&huge),
        Err(IssueError::InvalidBlindedMessage)
    );

    // A response from another issuer does not finalize. (The other issuer signs a request made
    // for its own key: our blinded message may lie above its modulus, which it would refuse.)
    let (_, pending) = Client::prepare(&challenge(), key).unwrap();
    let (for_other, _) = Client::prepare(&challenge(), other_issuer.public_key()).unwrap();
    let foreign = other_issuer.issue(&for_other).unwrap();
    assert_eq!(
        Client::finalize(pending, &foreign),
        Err(ClientError::InvalidResponse)
    );
    // A challenge of another token type is refused by the client.
    let voprf = TokenChallenge::parse(&[0, 1, 0, 1, b'i', 0, 0, 0]).unwrap();
    assert!(matches!(
        Client::prepare(&voprf, key),
        Err(ClientError::WrongTokenType)
    ));
}

#[test]
fn batch_issuance() {
    let key = issuer().public_key();
    let (batch, pending) = Client::prepare_batch(&challenge(), key, 3).unwrap();
    let batch = BatchTokenRequest::parse(&batch.to_vec()).unwrap();
    // The issuer refuses the middle entry (a wrong key id): the others still come back.
    let mut requests = batch.into_requests();
    requests[1].truncated_token_key_id ^= 1;
    let batch = BatchTokenRequest::new(requests).unwrap();
    let response = issuer().issue_batch(&batch);
    let response = BatchTokenResponse::parse(&response.to_vec()).unwrap();
    let tokens = Client::finalize_batch(pending, &response).unwrap();
    assert!(tokens[1].is_none());
    let tokens: Vec<Token> = tokens.into_iter().flatten().collect();
    assert_eq!(tokens.len(), 2);
    assert_ne!(tokens[0].nonce, tokens[1].nonce);
    for t in &tokens {
        Verifier::verify(t, &challenge(), key).unwrap();
    }

    assert!(matches!(
        Client::prepare_batch(&challenge(), key, 0),
        Err(ClientError::BatchSize)
    ));
    assert!(matches!(
        Client::prepare_batch(&challenge(), key, 33),
        Err(ClientError::BatchSize)
    ));
    let (_, pending) = Client::prepare_batch(&challenge(), key, 2).unwrap();
    let one = BatchTokenResponse::new(vec![None]).unwrap();
    assert_eq!(
        Client::finalize_batch(pending, &one),
        Err(ClientError::BatchMismatch)
    );
}

#[test]
fn pkcs8_round_trip() {
    let der = issuer().to_pkcs8_der().unwrap();
    let again = Issuer::from_pkcs8_der(&der).unwrap();
    assert_eq!(again.public_key(), issuer().public_key());
    assert!(Issuer::from_pkcs8_der(&der[..der.len() - 1]).is_err());
}

#[test]
fn key_file_round_trip() {
    let dir = std::env::temp_dir().join(format!("pp-tokens-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("issuer.pk8");
    std::fs::write(&path, issuer().to_pkcs8_der().unwrap()).unwrap();
    let loaded = Issuer::load_or_generate(&path).unwrap();
    assert_eq!(loaded.public_key(), issuer().public_key());

    // A corrupt key file is refused, not replaced.
    std::fs::write(&path, b"not a key").unwrap();
    assert!(Issuer::load_or_generate(&path).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"not a key");

    // A missing file: generated, stored 0600, and loaded back the same.
    std::fs::remove_file(&path).unwrap();
    let generated = Issuer::load_or_generate(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let reloaded = Issuer::load_or_generate(&path).unwrap();
    assert_eq!(reloaded.public_key(), generated.public_key());
    assert_ne!(generated.public_key(), issuer().public_key());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn directory_lists_the_issuer_key() {
    let key = issuer().public_key();
    let json = IssuerDirectory::new("https://issuer.example/request", &[(key, None)]).to_json();
    let dir = IssuerDirectory::from_json(&json).unwrap();
    assert_eq!(dir.blind_rsa_keys(0), vec![key.clone()]);
}
