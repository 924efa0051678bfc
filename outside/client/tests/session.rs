//! The device session against the fake enclave in `enclave/`: one honest session, then one test
//! per way the enclave (or whoever sits between) can be wrong, each asserting the typed error and
//! that the device sent nothing after it.

// Shared with sizes.rs and pp-device's tests/retry.rs, which use other parts of it.
#[allow(dead_code)]
mod enclave;

use enclave::{Behaviour, Binding, Enclave, Reply, Respond, Tls};
use pp_client::{ClientError, Limits, MAX_REQUEST};
use pp_protocol::frame::{ErrorCode, FrameRepr, FrameType, MAX_PAYLOAD};
use pp_verifier::{CheckName, FailReason, Outcome, Policy, Verdict};

fn spawn(behaviour: Behaviour) -> Enclave {
    Enclave::spawn(behaviour)
}

/// Connects with the test policy; expects a failure; checks that the enclave got the nonce and
/// then not one byte more.
fn refused(behaviour: Behaviour) -> ClientError {
    refused_under(behaviour, &enclave::test_policy())
}

fn refused_under(behaviour: Behaviour, policy: &Policy) -> ClientError {
    let enclave = spawn(behaviour);
    let err = enclave.connect(policy, Limits::default()).unwrap_err();
    let seen = enclave.finish();
    assert!(seen.nonce.is_some(), "the attestation request was sent");
    assert!(seen.requests.is_empty(), "no request after a refusal");
    assert_eq!(
        seen.bytes_after_reply, 0,
        "nothing sent after the refusal ({err})"
    );
    // A refused attestation carries what was verified: this session's nonce and the bundle.
    if let ClientError::NotAttested(failed) = &err {
        let binding = failed.binding.as_ref().expect("the session's binding");
        assert_eq!(Some(binding.nonce), seen.nonce);
        pp_protocol::evidence::EvidenceRepr::from_bytes(&binding.evidence).unwrap();
    }
    err
}

/// The verdict rejected exactly this check, with this reason.
fn assert_only_failure(err: ClientError, name: CheckName, reason: FailReason) -> Verdict {
    let ClientError::NotAttested(failed) = err else {
        panic!("expected NotAttested, got {err:?}");
    };
    let verdict = failed.verdict;
    let failures: Vec<_> = verdict.failures().collect();
    assert_eq!(failures, vec![(name, reason)], "{verdict}");
    assert_eq!(verdict.checks().len(), CheckName::ALL.len());
    verdict
}

/// A session that attests, then a request answered with `respond`; the first request fails
/// with the returned error. Checks the session is over and nothing was sent after.
fn failed_request(respond: Respond, limits: Limits) -> ClientError {
    let enclave = spawn(Behaviour {
        respond,
        ..Behaviour::default()
    });
    let mut session = enclave.connect(&enclave::test_policy(), limits).unwrap();
    let err = session.request(b"hello").unwrap_err();
    assert!(session.request_sent(), "the request left before {err}");
    assert!(matches!(
        session.request(b"again"),
        Err(ClientError::SessionClosed)
    ));
    drop(session);
    let seen = enclave.finish();
    assert_eq!(seen.requests, vec![b"hello".to_vec()]);
    assert_eq!(
        seen.bytes_after_reply, 0,
        "nothing sent after the failure ({err})"
    );
    err
}

#[test]
fn good_session_with_two_requests() {
    let enclave = spawn(Behaviour::default());
    let mut session = enclave
        .connect(&enclave::test_policy(), Limits::default())
        .unwrap();
    assert!(session.verdict().accepted(), "{}", session.verdict());
    assert_eq!(session.verdict().checks().len(), CheckName::ALL.len());
    assert_eq!(session.measurement(), enclave::MEASUREMENT);
    assert_eq!(session.release_ref(), enclave::RELEASE_REF);
    assert_eq!(session.key_config(), &enclave.key_config[..]);

    assert_eq!(session.request(b"first").unwrap(), b"echo:first");
    let big = vec![0x5A; 64 * 1024];
    assert_eq!(
        session.request(&big).unwrap(),
        [b"echo:", &big[..]].concat()
    );
    session.close().unwrap();

    let seen = enclave.finish();
    assert_eq!(seen.requests, vec![b"first".to_vec(), big]);
    assert_eq!(seen.bytes_after_reply, 0);
}

#[test]
fn every_session_has_a_fresh_nonce() {
    let nonces: Vec<_> = (0..2)
        .map(|_| {
            let enclave = spawn(Behaviour::default());
            drop(
                enclave
                    .connect(&enclave::test_policy(), Limits::default())
                    .unwrap(),
            );
            let seen = enclave.finish();
            // Not chosen from the key CDN: the 32-byte form (the enclave binds its current key).
            assert_eq!(seen.key_id, None);
            seen.nonce.unwrap()
        })
        .collect();
    assert_ne!(nonces[0], nonces[1]);
    assert_ne!(nonces[0], [0; 32]);
}

#[test]
fn rejects_evidence_for_another_nonce() {
    let err = refused(Behaviour {
        binding: Binding::OtherNonce,
        ..Behaviour::default()
    });
    assert_only_failure(err, CheckName::ReportData, FailReason::ReportDataMismatch);
}

#[test]
fn rejects_evidence_bound_to_another_session() {
    // A report relayed or replayed from another TLS session carries that session's exporter.
    let err = refused(Behaviour {
        binding: Binding::ZeroExporter,
        ..Behaviour::default()
    });
    assert_only_failure(err, CheckName::ReportData, FailReason::ReportDataMismatch);
}

#[test]
fn rejects_a_measurement_not_in_the_policy() {
    let err = refused(Behaviour {
        measurement: [0x66; 48],
        ..Behaviour::default()
    });
    assert_only_failure(
        err,
        CheckName::Measurement,
        FailReason::MeasurementNotAllowed,
    );
}

#[test]
fn rejects_the_test_root_under_the_amd_policy() {
    let amd_only = Policy::new(vec![enclave::MEASUREMENT], enclave::TCB).unwrap();
    let err = refused_under(Behaviour::default(), &amd_only);
    let verdict = assert_only_failure(err, CheckName::ArkTrusted, FailReason::UntrustedRoot);
    assert_eq!(
        verdict.outcome(CheckName::ArkSelfSigned),
        Some(Outcome::Pass)
    );
}

#[test]
fn an_error_frame_instead_of_evidence_is_a_refusal() {
    let bytes = FrameRepr::Error {
        code: ErrorCode::Busy,
    }
    .to_vec()
    .unwrap();
    let err = refused(Behaviour {
        reply: Reply::Raw { bytes, close: true },
        ..Behaviour::default()
    });
    assert!(
        matches!(err, ClientError::Refused(ErrorCode::Busy)),
        "{err:?}"
    );
}

#[test]
fn an_oversized_frame_is_refused_from_its_header() {
    // Only the header is sent and the connection stays open: reading the payload would block
    // until the test's 20 s timeout and fail with `Io`.
    let len = u32::try_from(MAX_PAYLOAD + 1).unwrap().to_be_bytes();
    let header = [b'P', b'P', 1, 2, len[0], len[1], len[2], len[3]].to_vec();
    let err = refused(Behaviour {
        reply: Reply::Raw {
            bytes: header,
            close: false,
        },
        ..Behaviour::default()
    });
    assert!(matches!(err, ClientError::FrameTooLarge), "{err:?}");
}

#[test]
fn evidence_larger_than_any_valid_bundle_is_refused_from_its_header() {
    let header = [b'P', b'P', 1, 2, 0, 1, 0, 0].to_vec(); // 64 KiB
    let err = refused(Behaviour {
        reply: Reply::Raw {
            bytes: header,
            close: false,
        },
        ..Behaviour::default()
    });
    assert!(matches!(err, ClientError::FrameTooLarge), "{err:?}");
}

#[test]
fn an_unexpected_frame_instead_of_evidence_is_refused() {
    let bytes = FrameRepr::SealedResponse { encapsulated: b"x" }
        .to_vec()
        .unwrap();
    let err = refused(Behaviour {
        reply: Reply::Raw {
            bytes,
            close: false,
        },
        ..Behaviour::default()
    });
    assert!(
        matches!(err, ClientError::UnexpectedFrame(FrameType::SealedResponse)),
        "{err:?}"
    );
}

#[test]
fn a_malformed_bundle_is_refused() {
    let bytes = FrameRepr::Evidence {
        bundle: b"\x02 not a bundle",
    }
    .to_vec()
    .unwrap();
    let err = refused(Behaviour {
        reply: Reply::Raw { bytes, close: true },
        ..Behaviour::default()
    });
    assert!(
        matches!(
            err,
            ClientError::Evidence(pp_protocol::Error::UnsupportedVersion(2))
        ),
        "{err:?}"
    );
}

#[test]
fn truncated_frames_are_refused() {
    let evidence = FrameRepr::Evidence { bundle: &[1; 100] }.to_vec().unwrap();
    for cut in [3, 60] {
        let err = refused(Behaviour {
            reply: Reply::Raw {
                bytes: evidence[..cut].to_vec(),
                close: true,
            },
            ..Behaviour::default()
        });
        assert!(matches!(err, ClientError::Truncated), "cut {cut}: {err:?}");
    }
    let err = refused(Behaviour {
        reply: Reply::Raw {
            bytes: Vec::new(),
            close: true,
        },
        ..Behaviour::default()
    });
    assert!(matches!(err, ClientError::Closed), "{err:?}");
}

#[test]
fn an_unsupported_key_configuration_is_refused_after_attestation() {
    // Attested, but its only suite is HKDF-SHA384 (which `ohttp` 0.8 would panic on).
    let mut key_config = enclave::sample_key_config();
    key_config.truncate(1 + 2 + 32);
    key_config.extend_from_slice(&[0, 4, 0, 2, 0, 1]);
    let err = refused(Behaviour {
        key_config: Some(key_config),
        ..Behaviour::default()
    });
    assert!(matches!(err, ClientError::KeyConfigUnsupported), "{err:?}");
}

#[test]
fn a_tls_1_2_enclave_is_refused() {
    let enclave = spawn(Behaviour {
        tls: Tls::Tls12Only,
        ..Behaviour::default()
    });
    let err = enclave
        .connect(&enclave::test_policy(), Limits::default())
        .unwrap_err();
    assert!(matches!(err, ClientError::Tls(_)), "{err:?}");
    let seen = enclave.finish();
    assert!(seen.handshake_failed && seen.nonce.is_none());
}

#[test]
fn a_certificate_verify_by_another_key_is_refused() {
    let enclave = spawn(Behaviour {
        tls: Tls::WrongSigningKey,
        ..Behaviour::default()
    });
    let err = enclave
        .connect(&enclave::test_policy(), Limits::default())
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Tls(rustls::Error::InvalidCertificate(_))),
        "{err:?}"
    );
    let seen = enclave.finish();
    assert!(seen.handshake_failed && seen.nonce.is_none());
}

#[test]
fn a_response_sealed_for_another_key_does_not_open() {
    let err = failed_request(Respond::OtherKey, Limits::default());
    assert!(matches!(err, ClientError::Open), "{err:?}");
}

#[test]
fn a_garbage_response_does_not_open() {
    let err = failed_request(Respond::Garbage, Limits::default());
    assert!(matches!(err, ClientError::Open), "{err:?}");
}

#[test]
fn a_truncated_response_is_refused() {
    let frame = FrameRepr::SealedResponse {
        encapsulated: &[7; 90],
    }
    .to_vec()
    .unwrap();
    let err = failed_request(
        Respond::Raw {
            bytes: frame[..50].to_vec(),
            close: true,
        },
        Limits::default(),
    );
    assert!(matches!(err, ClientError::Truncated), "{err:?}");
}

#[test]
fn an_error_frame_instead_of_a_response_is_a_refusal() {
    let bytes = FrameRepr::Error {
        code: ErrorCode::HandlerFailed,
    }
    .to_vec()
    .unwrap();
    let err = failed_request(Respond::Raw { bytes, close: true }, Limits::default());
    assert!(
        matches!(err, ClientError::Refused(ErrorCode::HandlerFailed)),
        "{err:?}"
    );
}

#[test]
fn an_oversized_response_is_refused_from_its_header() {
    // 4 KiB: over the 1 KiB bucket a 100-byte response is padded to, plus the sealing.
    let header = [b'P', b'P', 1, 4, 0, 0, 0x10, 0].to_vec();
    let err = failed_request(
        Respond::Raw {
            bytes: header,
            close: false,
        },
        Limits { max_response: 100 },
    );
    assert!(matches!(err, ClientError::ResponseTooLarge), "{err:?}");
}

#[test]
fn a_response_over_the_limit_is_refused() {
    // "echo:hello" is 10 bytes: over a limit of 8 whatever the suite's overhead.
    let err = failed_request(Respond::Echo, Limits { max_response: 8 });
    assert!(matches!(err, ClientError::ResponseTooLarge), "{err:?}");
}

#[test]
fn a_request_too_large_is_refused_before_sending_and_the_session_goes_on() {
    let enclave = spawn(Behaviour::default());
    let mut session = enclave
        .connect(&enclave::test_policy(), Limits::default())
        .unwrap();
    let too_big = vec![0; MAX_REQUEST + 1];
    assert!(matches!(
        session.request(&too_big),
        Err(ClientError::RequestTooLarge)
    ));
    assert!(!session.request_sent());
    let largest = vec![1; MAX_REQUEST - 5]; // the echo adds 5 bytes
    assert_eq!(session.request(&largest).unwrap().len(), MAX_REQUEST);
    drop(session);
    let seen = enclave.finish();
    assert_eq!(seen.requests.len(), 1);
}
