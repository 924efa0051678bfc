//! The one-shot path end to end inside the services: device → `pp-relay` (ORR) → `pp-gateway`
//! (OGR) → a one-shot enclave that is a real RFC 9458 server behind the frame protocol. Each
//! refusal of the contract (§4) by its status, and what reaches the enclave.

mod common;
mod ohttp_harness;

use ohttp_harness::{A, Conn, RELAY, Stack};
use pp_client::inner::InnerResponse;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_goes_through_and_its_token_is_spent_once() {
    let s = Stack::start("ohttp-through");
    let mut relay = Conn::open(&s.dir, s.relay, RELAY).await;
    let token = s.token();
    let (outer, gateway, enclave) = s.seal(&s.a.config, A, &token, b"hello");
    let answer = relay.post("/", &outer).await;
    // The relay returns the gateway's answer with its content type only.
    let names: Vec<&str> = answer.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names
            .iter()
            .all(|n| ["content-type", "content-length", "date"].contains(n)),
        "{names:?}"
    );
    let InnerResponse::Sealed(sealed) = answer.open(gateway) else {
        panic!("no sealed answer");
    };
    assert_eq!(enclave.decapsulate(&sealed).unwrap(), b"echo:hello");
    assert_eq!(s.a.frames(), 1);

    // The same token again, in a new encapsulation: spent.
    let (outer, gateway, _) = s.seal(&s.a.config, A, &token, b"again");
    let answer = relay.post("/", &outer).await;
    assert_eq!(
        answer.open(gateway),
        InnerResponse::Refused {
            status: 403,
            message: "this token was spent before; fetch new tokens".into(),
            www_authenticate: None
        }
    );
    assert_eq!(
        s.a.frames(),
        1,
        "a spent token's request reached the enclave"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_encapsulated_request_is_refused_as_a_spent_token() {
    let s = Stack::start("ohttp-replay");
    let (outer, gateway, _) = s.seal(&s.a.config, A, &s.token(), b"once");
    let mut relay = Conn::open(&s.dir, s.relay, RELAY).await;
    let first = relay.post("/", &outer).await;
    assert_eq!(first.status, 200);
    assert_eq!(s.a.frames(), 1);
    // Anyone on the path sends the same bytes again. The answer is sealed under the request's
    // own context (the device's context opens it; a replayer learns nothing from it).
    let mut again = Conn::open(&s.dir, s.relay, RELAY).await;
    let second = again.post("/", &outer).await;
    assert_eq!(
        second.open(gateway),
        InnerResponse::Refused {
            status: 403,
            message: "this token was spent before; fetch new tokens".into(),
            www_authenticate: None
        }
    );
    assert_eq!(s.a.frames(), 1, "the replay reached the enclave");
}

/// The largest sealed request a frame carries (1 MiB) fits every bound on the way: the relay's
/// and the gateway's body bound, the inner message's, the one-shot frame's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_sealed_request_goes_through() {
    let s = Stack::start("ohttp-largest");
    // X25519 + AES-128-GCM: 7 + 32 header bytes and a 16-byte tag around the body.
    let body = vec![0x5a; pp_protocol::frame::MAX_PAYLOAD - 55];
    let (outer, gateway, enclave) = s.seal(&s.a.config, A, &s.token(), &body);
    assert!(outer.len() <= pp_client::inner::MAX_ENCAPSULATED_REQUEST);
    let mut relay = Conn::open(&s.dir, s.relay, RELAY).await;
    let InnerResponse::Sealed(sealed) = relay.post("/", &outer).await.open(gateway) else {
        panic!("no sealed answer");
    };
    let answer = enclave.decapsulate(&sealed).unwrap();
    assert_eq!(answer.len(), body.len() + 5);
    assert_eq!(s.a.frames(), 1);
}
