//! The inner BHTTP messages of the one-shot path (`pp_client::inner`, on the `bhttp` crate)
//! against an independent implementation, the npm package `bhttp-js` (pinned in
//! `xtask/interop/bhttp-js`): the exact request the device sends and every response the gateway
//! sends, encoded here → decoded by bhttp-js and compared field by field, and encoded by bhttp-js
//! → decoded here and compared. Ignored by default: `cargo xtask test` installs bhttp-js and runs
//! it with `PP_BHTTP_JS` set to the folder holding its `node_modules`.

use std::path::PathBuf;
use std::process::Command;

use pp_client::inner::{
    self, ENCLAVE_ERROR_HEADER, InnerResponse, SEALED_REQUEST_MEDIA_TYPE,
    SEALED_RESPONSE_MEDIA_TYPE,
};
use serde_json::{Value, json};

const GATEWAY: &str = "gateway.pp.test";
const INSTANCE: &str = "i-0123456789abcdef";

/// A token's `Authorization` value of the real length (RFC 9578 type 2: 2 + 32 + 32 + 256 bytes
/// of token, base64url), its characters covering the whole alphabet.
fn authorization() -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let token: String = (0..430).map(|i| alphabet[i % 64] as char).collect();
    format!("PrivateToken token=\"{token}\"")
}

/// A sealed request's bytes: every byte value, in a padded bucket's size.
fn sealed(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

fn response_case(response: &InnerResponse) -> Value {
    let (status, headers, body): (u16, Vec<(&str, String)>, Vec<u8>) = match response {
        InnerResponse::Sealed(body) => (
            200,
            vec![("content-type", SEALED_RESPONSE_MEDIA_TYPE.into())],
            body.clone(),
        ),
        InnerResponse::EnclaveError(code) => (
            502,
            vec![(ENCLAVE_ERROR_HEADER, code.to_string())],
            Vec::new(),
        ),
        InnerResponse::Refused {
            status,
            message,
            www_authenticate,
        } => {
            let mut headers = vec![("content-type", "text/plain; charset=utf-8".to_string())];
            if let Some(c) = www_authenticate {
                headers.push(("www-authenticate", c.clone()));
            }
            (*status, headers, message.as_bytes().to_vec())
        }
    };
    json!({"kind": "response", "status": status, "headers": headers, "body": hex(&body)})
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
#[ignore = "needs bhttp-js: run by `cargo xtask test` (PP_BHTTP_JS)"]
fn inner_messages_interoperate_with_bhttp_js() {
    let js = PathBuf::from(std::env::var("PP_BHTTP_JS").expect("PP_BHTTP_JS"));
    let dir = std::env::temp_dir().join(format!("pp-bhttp-interop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let auth = authorization();
    let requests = [sealed(1024 + 64), sealed(64 * 1024 + 64)];
    let responses = [
        InnerResponse::Sealed(sealed(1024 + 48)),
        InnerResponse::EnclaveError(5),
        InnerResponse::EnclaveError(10),
        InnerResponse::Refused {
            status: 401,
            message: "a Privacy Pass token is required".into(),
            www_authenticate: Some(
                "PrivateToken challenge=\"AAIAAA\", token-key=\"MIIBUjA9Bgkqhk\"".into(),
            ),
        },
        InnerResponse::Refused {
            status: 403,
            message: "this token was spent before; fetch new tokens".into(),
            www_authenticate: None,
        },
        InnerResponse::Refused {
            status: 404,
            message: "no such enclave instance".into(),
            www_authenticate: None,
        },
        InnerResponse::Refused {
            status: 502,
            message: "the enclave instance did not answer".into(),
            www_authenticate: None,
        },
        InnerResponse::Refused {
            status: 503,
            message: "the gateway is busy; try again later".into(),
            www_authenticate: None,
        },
    ];
    let mut cases = Vec::new();
    for body in &requests {
        let bytes = inner::build_inner_request(GATEWAY, INSTANCE, &auth, body).unwrap();
        std::fs::write(dir.join(format!("rust-{}.bin", cases.len())), bytes).unwrap();
        cases.push(json!({
            "kind": "request", "method": "POST", "scheme": "https", "authority": GATEWAY,
            "path": format!("/instances/{INSTANCE}"),
            "headers": [["authorization", auth], ["content-type", SEALED_REQUEST_MEDIA_TYPE]],
            "body": hex(body),
        }));
    }
    for response in &responses {
        let bytes = inner::build_inner_response(response).unwrap();
        std::fs::write(dir.join(format!("rust-{}.bin", cases.len())), bytes).unwrap();
        cases.push(response_case(response));
    }
    std::fs::write(dir.join("cases.json"), serde_json::to_vec(&cases).unwrap()).unwrap();

    let script = js.join("interop.mjs");
    let out = Command::new("node")
        .current_dir(&js)
        .arg(&script)
        .arg(&dir)
        .output()
        .expect("cannot run node");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bhttp-js disagrees:\n{text}");
    eprint!("{text}");

    // bhttp-js's encodings, read by ours.
    for (n, body) in requests.iter().enumerate() {
        let bytes = std::fs::read(dir.join(format!("js-{n}.bin"))).unwrap();
        let r = inner::parse_inner_request(&bytes).unwrap();
        assert_eq!(
            (&r.method[..], &r.scheme[..], &r.authority[..]),
            (&b"POST"[..], &b"https"[..], GATEWAY.as_bytes()),
        );
        assert_eq!(r.instance_id(), Some(INSTANCE));
        assert_eq!(r.authorization.as_deref(), Some(auth.as_str()));
        assert_eq!(r.content_type.as_deref(), Some(SEALED_REQUEST_MEDIA_TYPE));
        assert_eq!(&r.body, body);
    }
    for (n, response) in responses.iter().enumerate() {
        let n = n + requests.len();
        let bytes = std::fs::read(dir.join(format!("js-{n}.bin"))).unwrap();
        assert_eq!(
            &inner::parse_inner_response(&bytes).unwrap(),
            response,
            "case {n}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
