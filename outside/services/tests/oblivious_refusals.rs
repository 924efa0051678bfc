//! Refusals on the one-shot path, each by its status (contract §4), with nothing forwarded to
//! an enclave; the relay's header stripping; a relay's kept connection to the gateway.

mod common;
mod ohttp_harness;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::closed_within;
use ohttp_harness::{A, B, Conn, DOWN, GATEWAY, NO_ONESHOT, RELAY, Stack, start_relay};
use pp_client::inner::{GATEWAY_PATH, InnerResponse, MAX_ENCAPSULATED_REQUEST};
use pp_services::gateway::MAX_REQUESTS_PER_CONNECTION;

fn refused(status: u16, message: &str) -> InnerResponse {
    InnerResponse::Refused {
        status,
        message: message.into(),
        www_authenticate: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inner_refusals_by_status_and_nothing_forwarded() {
    let s = Stack::start("ohttp-inner");
    let ask = async |config: &[u8], id: &str, authorization: &str| {
        let (outer, ctx, _) = s.seal(config, id, authorization, b"x");
        let mut relay = Conn::open(&s.dir, s.relay, RELAY).await;
        relay.post("/", &outer).await.open(ctx)
    };
    for authorization in ["", "PrivateToken token=AAAA"] {
        let InnerResponse::Refused {
            status,
            www_authenticate,
            ..
        } = ask(&s.a.config, A, authorization).await
        else {
            panic!("not refused");
        };
        assert_eq!(status, 401);
        assert!(
            www_authenticate.is_some_and(|c| c.starts_with("PrivateToken challenge=")),
            "no challenge"
        );
    }
    // A token of a retired issuer key: 403 with the text devices recognise.
    assert_eq!(
        ask(&s.a.config, A, &s.token_of(&s.retired)).await,
        refused(403, pp_services::gateway::RETIRED_KEY_MESSAGE)
    );
    let unknown = "i-0000000000000fff";
    for id in [unknown, NO_ONESHOT] {
        assert_eq!(
            ask(&s.a.config, id, &s.token()).await,
            refused(404, "no such enclave instance")
        );
    }
    assert_eq!(
        s.a.frames() + s.b.frames(),
        0,
        "a refused request was forwarded"
    );
    // The instance's one-shot port is closed: 502 without an enclave error code.
    assert_eq!(
        ask(&s.a.config, DOWN, &s.token()).await,
        refused(502, "the enclave instance did not answer")
    );
    // Sealed to A, routed (by the map, or a gateway swapping it) to B: B cannot open it.
    assert_eq!(
        ask(&s.a.config, B, &s.token()).await,
        InnerResponse::EnclaveError(5)
    );
    assert_eq!((s.a.frames(), s.b.frames()), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inner_request_form_is_checked() {
    let s = Stack::start("ohttp-inner-form");
    let ask = async |inner: Vec<u8>| {
        let (outer, ctx) = ohttp::ClientRequest::from_encoded_config(&s.gateway_config)
            .unwrap()
            .encapsulate(&inner)
            .unwrap();
        let mut relay = Conn::open(&s.dir, s.relay, RELAY).await;
        relay.post("/", &outer).await.open(ctx)
    };
    let message = |method: &str, path: &str, content_type: &str| {
        let mut m = bhttp::Message::request(
            method.into(),
            b"https".to_vec(),
            GATEWAY.into(),
            path.into(),
        );
        m.put_header("authorization", s.token());
        m.put_header("content-type", content_type);
        m.write_content(b"sealed");
        let mut out = Vec::new();
        m.write_bhttp(bhttp::Mode::KnownLength, &mut out).unwrap();
        out
    };
    let path = format!("/instances/{A}");
    let sealed = "application/pp-sealed-request";
    assert_eq!(
        ask(message("POST", &path, "text/plain")).await,
        refused(415, "the inner body must be application/pp-sealed-request")
    );
    assert_eq!(
        ask(message("GET", &path, sealed)).await,
        refused(405, "the inner request must be POST https")
    );
    assert_eq!(
        ask(message("POST", "/instances/../admin", sealed)).await,
        refused(404, "no such enclave instance")
    );
    assert_eq!(
        ask(b"\x00\x04POST".to_vec()).await,
        refused(400, "the inner request is malformed")
    );
    assert_eq!(s.a.frames(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outer_refusals_at_the_gateway_and_the_relay() {
    let s = Stack::start("ohttp-outer");
    let (outer, _, _) = s.seal(&s.a.config, A, &s.token(), b"x");
    let gateway = async |method: &str, headers: &[&str], body: &[u8]| {
        let mut c = Conn::open(&s.dir, s.gateway, GATEWAY).await;
        c.send(method, GATEWAY_PATH, headers, body).await.unwrap()
    };
    let ohttp = "Content-Type: message/ohttp-req";
    let a = gateway("POST", &["Content-Type: application/octet-stream"], &outer).await;
    assert_eq!(a.status, 415, "{a:?}");
    let a = gateway("GET", &[ohttp], b"").await;
    assert_eq!(a.status, 405, "{a:?}");
    // Truncated, a bad AEAD tag: 400 with no detail.
    let mut bad_tag = outer.clone();
    *bad_tag.last_mut().unwrap() ^= 1;
    for body in [&outer[..20], &outer[..outer.len() - 1], &bad_tag[..]] {
        let a = gateway("POST", &[ohttp], body).await;
        assert_eq!((a.status, a.body.len()), (400, 0), "{a:?}");
    }
    // A key id the gateway does not hold: 400 with the RFC 9458 problem type.
    let mut other_key = outer.clone();
    other_key[0] = other_key[0].wrapping_add(1);
    let a = gateway("POST", &[ohttp], &other_key).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
    assert!(
        String::from_utf8_lossy(&a.body)
            .contains("https://iana.org/assignments/http-problem-types#ohttp-key")
    );
    // Over the bound, refused from the announced length (the body is never sent).
    let too_long = format!("Content-Length: {}", MAX_ENCAPSULATED_REQUEST + 1);
    for addr in [(s.gateway, GATEWAY, GATEWAY_PATH), (s.relay, RELAY, "/")] {
        let mut c = Conn::open(&s.dir, addr.0, addr.1).await;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: x\r\n{ohttp}\r\n{too_long}\r\n\r\n",
            addr.2
        );
        tokio::io::AsyncWriteExt::write_all(&mut c.0, head.as_bytes())
            .await
            .unwrap();
        let a = ohttp_harness::read_answer(&mut c.0).await.unwrap();
        assert_eq!(a.status, 413, "{} {a:?}", addr.1);
    }
    // The relay's own refusals.
    let relay = async |method: &str, path: &str, headers: &[&str], body: &[u8]| {
        let mut c = Conn::open(&s.dir, s.relay, RELAY).await;
        c.send(method, path, headers, body).await.unwrap().status
    };
    assert_eq!(
        relay("POST", "/", &["Content-Type: text/plain"], &outer).await,
        415
    );
    assert_eq!(relay("GET", "/", &[ohttp], b"").await, 405);
    assert_eq!(relay("POST", "/x", &[ohttp], &outer).await, 404);
    assert_eq!(relay("CONNECT", "gateway.pp.test:443", &[], b"").await, 405);
    // The gateway's 400 passes through the relay.
    assert_eq!(relay("POST", "/", &[ohttp], &outer[..20]).await, 400);
    assert_eq!(s.a.frames(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_answers_502_when_the_gateway_is_down() {
    let s = Stack::start("ohttp-gateway-down");
    let down = ohttp_harness::closed_port();
    let (_relay, addr) = start_relay(&s.dir, &down.to_string());
    let (outer, _, _) = s.seal(&s.a.config, A, &s.token(), b"x");
    let mut c = Conn::open(&s.dir, addr, RELAY).await;
    let a = c.post("/", &outer).await;
    assert_eq!(a.status, 502);
    assert_eq!(
        String::from_utf8_lossy(&a.body).trim(),
        "the relay could not reach the gateway"
    );
}

/// The relay forwards no header of the device's and returns none of the gateway's but the
/// content type: a stand-in gateway records what arrives and answers with a cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_strips_client_headers_both_ways() {
    let dir = common::temp_dir("ohttp-strip");
    common::certs(&dir, &[GATEWAY, RELAY]);
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let recorded = seen.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = listener.local_addr().unwrap();
    let acceptor = pp_services::tls::acceptor(
        &dir.join(format!("{GATEWAY}.pem")),
        &dir.join(format!("{GATEWAY}.key")),
    )
    .unwrap();
    tokio::spawn(pp_services::http::serve(
        listener,
        Some(acceptor),
        pp_services::http::Limits::default(),
        move |req| {
            let names = req.headers().keys().map(|k| k.to_string()).collect();
            recorded.lock().unwrap().push(names);
            async move {
                let mut r =
                    pp_services::http::reply(hyper::StatusCode::OK, "message/ohttp-res", "sealed");
                r.headers_mut()
                    .insert("set-cookie", "track=1".parse().unwrap());
                r.headers_mut()
                    .insert("x-gateway-instance", "7".parse().unwrap());
                r
            }
        },
    ));
    let (_relay, relay) = start_relay(&dir, &gateway.to_string());
    let mut c = Conn::open(&dir, relay, RELAY).await;
    let a = c
        .send(
            "POST",
            "/",
            &[
                "Content-Type: message/ohttp-req",
                "Cookie: session=device-1",
                "X-Forwarded-For: 198.51.100.7",
                "Forwarded: for=198.51.100.7",
                "User-Agent: pp-device/1",
                "Authorization: Bearer x",
            ],
            b"encapsulated",
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(a.body, b"sealed");
    assert_eq!(a.header("set-cookie"), None);
    assert_eq!(a.header("x-gateway-instance"), None);
    assert_eq!(a.header("content-type"), Some("message/ohttp-res"));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let mut names = seen[0].clone();
    names.sort();
    assert_eq!(names, ["content-length", "content-type", "host"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A relay's kept-alive connection carries more OHTTP requests than the per-connection cap
/// (each spent a token); a request refused before its spend closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_connection_carries_many_paid_requests_and_no_free_one() {
    let s = Stack::start("ohttp-keepalive");
    // Sealed first: the connection's lifetime bound (30 s) must not end the test.
    let requests: Vec<_> = (0..MAX_REQUESTS_PER_CONNECTION + 2)
        .map(|_| s.seal(&s.a.config, A, &s.token(), b"x"))
        .collect();
    let mut c = Conn::open(&s.dir, s.gateway, GATEWAY).await;
    for (n, (outer, ctx, _)) in requests.into_iter().enumerate() {
        let a = c.post(GATEWAY_PATH, &outer).await;
        assert!(
            matches!(a.open(ctx), InnerResponse::Sealed(_)),
            "request {n}"
        );
    }
    let (outer, ctx, _) = s.seal(&s.a.config, A, "", b"x");
    let a = c.post(GATEWAY_PATH, &outer).await;
    assert_eq!(a.header("connection"), Some("close"));
    assert!(matches!(
        a.open(ctx),
        InnerResponse::Refused { status: 401, .. }
    ));
    assert!(
        closed_within(&mut c.0, Duration::from_secs(2))
            .await
            .is_some(),
        "the gateway kept a connection after a request without a token"
    );
}

/// A gateway with no free slot answers 503 inside, before the spend: the token stays unspent
/// and nothing reaches the enclave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_gateway_refuses_before_the_spend() {
    let s = Stack::start_with("ohttp-busy", &["--max-tunnels", "0"]);
    let token = s.token();
    for _ in 0..2 {
        let (outer, ctx, _) = s.seal(&s.a.config, A, &token, b"x");
        let mut relay = Conn::open(&s.dir, s.relay, RELAY).await;
        assert_eq!(
            relay.post("/", &outer).await.open(ctx),
            refused(503, "the gateway is busy; try again later"),
            "a busy answer spent the token"
        );
    }
    assert_eq!(s.a.frames(), 0);
}
