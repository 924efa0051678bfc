use super::*;

const ID: &str = "i-0123456789abcdef";
const AUTH: &str = "PrivateToken token=\"AAIA\"";

fn request() -> Vec<u8> {
    build_inner_request("gateway.example", ID, AUTH, b"sealed bytes").unwrap()
}

#[test]
fn request_round_trip() {
    let bytes = request();
    // Known-length request framing indicator.
    assert_eq!(bytes[0], 0);
    let r = parse_inner_request(&bytes).unwrap();
    assert_eq!(r.method, b"POST");
    assert_eq!(r.scheme, b"https");
    assert_eq!(r.authority, b"gateway.example");
    assert_eq!(r.path, format!("/instances/{ID}").as_bytes());
    assert_eq!(r.instance_id(), Some(ID));
    assert_eq!(r.authorization.as_deref(), Some(AUTH));
    assert_eq!(r.content_type.as_deref(), Some(SEALED_REQUEST_MEDIA_TYPE));
    assert_eq!(r.body, b"sealed bytes");
    // Zero padding after the message is allowed (RFC 9292 §3.8).
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0; 16]);
    assert_eq!(parse_inner_request(&padded).unwrap(), r);
}

#[test]
fn build_refuses_bad_fields() {
    assert_eq!(
        build_inner_request("g", "i-0", AUTH, b"x"),
        Err(InnerError::BadField("instance id"))
    );
    assert_eq!(
        build_inner_request("g/x", ID, AUTH, b"x"),
        Err(InnerError::BadField("authority"))
    );
    assert_eq!(
        build_inner_request("g", ID, "PrivateToken\r\nx: y", b"x"),
        Err(InnerError::BadField("authorization"))
    );
    assert_eq!(
        build_inner_request("g", ID, AUTH, &vec![0; MAX_PAYLOAD + 1]),
        Err(InnerError::TooLarge)
    );
}

#[test]
fn instance_id_only_from_the_one_path_form() {
    let mut r = parse_inner_request(&request()).unwrap();
    for path in [
        "/instances/i-0123456789ABCDEF",
        "/instances/i-0123456789abcdef/x",
        "/instances/",
        "/other/i-0123456789abcdef",
        "instances/i-0123456789abcdef",
    ] {
        r.path = path.as_bytes().to_vec();
        assert_eq!(r.instance_id(), None, "{path}");
    }
}

#[test]
fn request_framing_refusals() {
    let bytes = request();
    assert_eq!(parse_inner_request(&[]), Err(InnerError::Malformed));
    assert_eq!(
        parse_inner_request(&bytes[..bytes.len() - 3]),
        Err(InnerError::Malformed)
    );
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(&[0, 0, 1]);
    assert_eq!(
        parse_inner_request(&trailing),
        Err(InnerError::TrailingBytes)
    );
    let response = build_inner_response(&InnerResponse::EnclaveError(5)).unwrap();
    assert_eq!(parse_inner_request(&response), Err(InnerError::WrongKind));
    assert_eq!(parse_inner_response(&bytes), Err(InnerError::WrongKind));

    let mut m = Message::request(b"POST".into(), b"https".into(), b"g".into(), b"/".into());
    m.put_header("authorization", "a");
    m.put_header("Authorization", "b");
    let mut two = Vec::new();
    m.write_bhttp(Mode::KnownLength, &mut two).unwrap();
    assert_eq!(
        parse_inner_request(&two),
        Err(InnerError::Repeated("authorization"))
    );

    let mut m = Message::request(b"POST".into(), b"https".into(), b"g".into(), b"/".into());
    m.write_content(b"x");
    let mut indeterminate = Vec::new();
    m.write_bhttp(Mode::IndeterminateLength, &mut indeterminate)
        .unwrap();
    assert_eq!(
        parse_inner_request(&indeterminate),
        Err(InnerError::NotKnownLength)
    );

    m.put_trailer("x", "y");
    let mut trailer = Vec::new();
    m.write_bhttp(Mode::KnownLength, &mut trailer).unwrap();
    assert_eq!(parse_inner_request(&trailer), Err(InnerError::Unexpected));

    assert_eq!(
        parse_inner_request(&vec![0; MAX_INNER + 1]),
        Err(InnerError::TooLarge)
    );
}

#[test]
fn response_round_trips() {
    for r in [
        InnerResponse::Sealed(b"sealed answer".to_vec()),
        InnerResponse::EnclaveError(5),
        InnerResponse::EnclaveError(10),
        InnerResponse::Refused {
            status: 401,
            message: "a Privacy Pass token is required".into(),
            www_authenticate: Some("PrivateToken challenge=\"AAI\", token-key=\"AA\"".into()),
        },
        InnerResponse::Refused {
            status: 404,
            message: "no such enclave instance".into(),
            www_authenticate: None,
        },
    ] {
        let bytes = build_inner_response(&r).unwrap();
        assert_eq!(bytes[0], 1);
        assert_eq!(parse_inner_response(&bytes).unwrap(), r);
    }
}

fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut m = Message::response(StatusCode::try_from(status).unwrap());
    for (n, v) in headers {
        m.put_header(*n, *v);
    }
    m.write_content(body);
    let mut out = Vec::new();
    m.write_bhttp(Mode::KnownLength, &mut out).unwrap();
    out
}

#[test]
fn response_refusals() {
    let ct = ("content-type", SEALED_RESPONSE_MEDIA_TYPE);
    for (bytes, want) in [
        (
            response(200, &[], b"x"),
            InnerError::BadResponse("a 200 without the sealed-response type"),
        ),
        (
            response(200, &[ct], b""),
            InnerError::BadResponse("a 200 with an empty body"),
        ),
        (
            response(502, &[(ENCLAVE_ERROR_HEADER, "x")], b""),
            InnerError::BadResponse("pp-enclave-error is not a decimal code"),
        ),
        (
            response(502, &[(ENCLAVE_ERROR_HEADER, "65536")], b""),
            InnerError::BadResponse("pp-enclave-error is not a decimal code"),
        ),
        (
            response(502, &[(ENCLAVE_ERROR_HEADER, "5")], b"x"),
            InnerError::BadResponse("an enclave error with a body"),
        ),
        (
            response(200, &[ct, (ENCLAVE_ERROR_HEADER, "5")], b"x"),
            InnerError::BadResponse("pp-enclave-error on a status other than 502"),
        ),
        (
            response(204, &[], b""),
            InnerError::BadResponse("a success status other than 200"),
        ),
    ] {
        assert_eq!(parse_inner_response(&bytes), Err(want));
    }
    // A refusal's text is kept only when short and printable.
    let long = "x".repeat(MAX_MESSAGE + 1);
    let r = parse_inner_response(&response(403, &[], long.as_bytes())).unwrap();
    assert_eq!(
        r,
        InnerResponse::Refused {
            status: 403,
            message: String::new(),
            www_authenticate: None
        }
    );
    // 502 without the header: the instance was unreachable.
    let r = parse_inner_response(&response(502, &[], b"down\n")).unwrap();
    assert_eq!(
        r,
        InnerResponse::Refused {
            status: 502,
            message: "down".into(),
            www_authenticate: None
        }
    );
}
