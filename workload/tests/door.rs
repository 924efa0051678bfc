//! The enclave's door: the features handler refuses a thread outside the protocol's bounds with
//! the protocol's error code, before any model runs, and never echoes the thread; a thread within
//! them is answered. The handler is driven directly (no session), with the tiny models.

use pp_protocol::app::{
    AppError, AppRequest, AppResponse, MAX_MESSAGE_CHARS, MAX_MESSAGES, Message,
};
use pp_workload::features::Features;
use pp_workload::handler::Handler;

const CANARY: &str = "canary-d00r ";

fn features() -> Features {
    let blob = pp_inference::bundle::tiny_blob(pp_inference::bundle::TINY_SEED).unwrap();
    Features::load(&blob).unwrap()
}

fn message(text: &str) -> Message {
    Message {
        sender: "Ana".into(),
        text: text.into(),
        time: Some("09:14".into()),
    }
}

fn ask(features: &Features, request: &AppRequest) -> Vec<u8> {
    features.handle(&request.to_vec()).unwrap()
}

#[test]
fn an_oversized_thread_is_refused_at_the_door() {
    let features = features();
    let refused = |request: AppRequest, code: AppError| {
        let answer = ask(&features, &request);
        assert_eq!(answer, AppResponse::Error(code).to_vec());
        assert!(!String::from_utf8_lossy(&answer).contains("canary"));
    };
    refused(
        AppRequest::Summarize {
            thread: vec![message(CANARY); MAX_MESSAGES + 1],
            k: 3,
        },
        AppError::TooManyMessages,
    );
    refused(
        AppRequest::Suggest {
            thread: vec![message(CANARY); MAX_MESSAGES + 1],
            seed: 1,
            n: 1,
        },
        AppError::TooManyMessages,
    );
    let too_long = CANARY.repeat(MAX_MESSAGE_CHARS / CANARY.len() + 1);
    refused(
        AppRequest::Suggest {
            thread: vec![message("hi"), message(&too_long)],
            seed: 1,
            n: 1,
        },
        AppError::MessageTooLong,
    );
    refused(
        AppRequest::Summarize {
            thread: vec![],
            k: 1,
        },
        AppError::EmptyThread,
    );
}

#[test]
fn a_thread_at_the_bounds_is_answered() {
    let features = features();
    // The most messages, each of the most characters (one of them two-byte characters), within
    // the request size bound.
    let mut thread = vec![message(&"x ".repeat(MAX_MESSAGE_CHARS / 2)); MAX_MESSAGES];
    thread[0] = message(&"é".repeat(MAX_MESSAGE_CHARS));
    let request = AppRequest::Summarize { thread, k: 3 };
    let answer = ask(&features, &request);
    match AppResponse::parse_for(&answer, &request).unwrap() {
        AppResponse::Summary { picks, .. } => assert_eq!(picks.len(), 3),
        other => panic!("{other:?}"),
    }
}
