//! What a sealed message's length tells the relay, the gateway and the host: only its size bucket
//! (`pp_protocol::padding`), and whether a failed request may have reached the enclave.

// Shared with session.rs, which uses every part of it.
#[allow(dead_code)]
mod enclave;

use enclave::{Behaviour, Enclave, Respond};
use pp_client::{ClientError, Limits};
use pp_protocol::app::{AppRequest, Message};
use pp_protocol::padding;

/// RFC 9458 request encapsulation around the padded body: key id, KEM, KDF and AEAD ids (7), the
/// X25519 encapsulated key (32), the AEAD tag (16).
const REQUEST_SEALING: usize = 7 + 32 + 16;

fn thread(messages: usize, text: &str) -> AppRequest {
    AppRequest::Summarize {
        thread: (0..messages)
            .map(|_| Message {
                sender: String::new(),
                text: text.into(),
                time: None,
            })
            .collect(),
        k: 1,
    }
}

/// The sealed lengths the enclave received for these request bodies, one session.
fn sealed_lens(bodies: &[Vec<u8>]) -> Vec<usize> {
    let enclave = Enclave::spawn(Behaviour::default());
    let mut session = enclave
        .connect(&enclave::test_policy(), Limits::default())
        .unwrap();
    for body in bodies {
        let answer = session.request(body).unwrap();
        assert_eq!(answer, [b"echo:", &body[..]].concat());
    }
    drop(session);
    let seen = enclave.finish();
    assert_eq!(&seen.requests, bodies);
    seen.sealed_lens
}

#[test]
fn a_one_message_and_a_forty_message_thread_seal_to_the_same_length() {
    let one = thread(1, "").to_vec();
    let forty = thread(40, "").to_vec();
    // Both bodies (with the length field) fit the smallest bucket.
    assert!(
        forty.len() + padding::LEN_FIELD <= padding::MIN_BUCKET,
        "{}",
        forty.len()
    );
    assert!(one.len() * 10 < forty.len());
    let lens = sealed_lens(&[one, forty]);
    assert_eq!(lens[0], lens[1], "{lens:?}");
    assert_eq!(lens[0], padding::MIN_BUCKET + REQUEST_SEALING);
}

#[test]
fn sealed_requests_are_always_a_bucket_size() {
    let bodies = [
        b"x".to_vec(),
        thread(20, "see you at six").to_vec(),
        thread(200, &"é".repeat(200)).to_vec(),
    ];
    let lens = sealed_lens(&bodies);
    for (len, body) in lens.iter().zip(&bodies) {
        let padded = len - REQUEST_SEALING;
        assert!(
            padding::is_bucket(padded),
            "{len} for a {}-byte body",
            body.len()
        );
        assert_eq!(Some(padded), padding::bucket(body.len()));
    }
    assert_eq!(lens[1] - REQUEST_SEALING, 1024);
    assert!(lens[2] - REQUEST_SEALING > lens[1]);
}

fn failed_request(respond: Respond) -> ClientError {
    let enclave = Enclave::spawn(Behaviour {
        respond,
        ..Behaviour::default()
    });
    let mut session = enclave
        .connect(&enclave::test_policy(), Limits::default())
        .unwrap();
    let err = session.request(b"hello").unwrap_err();
    assert!(session.request_sent());
    drop(session);
    assert_eq!(enclave.finish().requests, vec![b"hello".to_vec()]);
    err
}

#[test]
fn a_response_with_non_zero_padding_is_refused() {
    let err = failed_request(Respond::DirtyPadding);
    assert!(matches!(err, ClientError::Padding), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the response is not padded to a size bucket with zero bytes"
    );
}

#[test]
fn an_unpadded_response_is_refused() {
    let err = failed_request(Respond::Unpadded);
    assert!(matches!(err, ClientError::Padding), "{err:?}");
}

/// The enclave (or the gateway, or the host) reads the whole sealed request, then drops the
/// connection: the session says the request left, so the caller does not resend it elsewhere.
#[test]
fn a_connection_dropped_after_the_request_says_the_request_left() {
    let err = failed_request(Respond::Raw {
        bytes: Vec::new(),
        close: true,
    });
    assert!(matches!(err, ClientError::Closed), "{err:?}");
}

#[test]
fn nothing_is_sent_before_a_request() {
    let enclave = Enclave::spawn(Behaviour::default());
    let session = enclave
        .connect(&enclave::test_policy(), Limits::default())
        .unwrap();
    assert!(!session.request_sent());
}
