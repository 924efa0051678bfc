//! Which failures the device retries on another instance (`pp_device::request`), with the real
//! session code against the client's fake enclave over loopback: a failure before the sealed
//! request left is retried; once an instance has received the sealed request, a dropped
//! connection is final and the request goes to no other enclave (otherwise a gateway could steer
//! a request to the instance it wants by cutting off the others after they received it).

// The client's fake enclave, shared rather than copied.
#[allow(dead_code)]
#[path = "../../client/tests/enclave/mod.rs"]
mod enclave;

use enclave::{Behaviour, Enclave, Reply, Respond};
use pp_client::Limits;
use pp_device::request::{ATTEMPTS, exchange, first_answer};
use pp_protocol::app::{AppRequest, Message};

fn request() -> AppRequest {
    AppRequest::Summarize {
        thread: vec![Message {
            sender: "Ana".into(),
            text: "dinner at six?".into(),
            time: None,
        }],
        k: 1,
    }
}

/// Three instances that each behave as `behaviour()`; the device's retry loop over them. Returns
/// the error, how many instances were connected to, and the trace.
fn ask_three(behaviour: impl Fn() -> Behaviour) -> (String, Vec<String>, Vec<String>) {
    let instances: Vec<(String, Enclave)> = ["inst-a", "inst-b", "inst-c"]
        .iter()
        .map(|id| (id.to_string(), Enclave::spawn(behaviour())))
        .collect();
    let policy = enclave::test_policy();
    let request = request();
    let mut connected = Vec::new();
    let mut lines = Vec::new();
    let mut trace = |line: String| lines.push(line);
    let result = first_answer(
        instances,
        |(id, _)| id.as_str(),
        &mut trace,
        |(id, instance)| {
            connected.push(id.clone());
            exchange(instance.connect(&policy, Limits::default()), id, &request)
        },
    );
    let err = match result {
        Ok(_) => panic!("no instance answers"),
        Err(e) => format!("{e:#}"),
    };
    (err, connected, lines)
}

#[test]
fn a_connection_dropped_after_the_sealed_request_is_not_retried_elsewhere() {
    let (err, connected, trace) = ask_three(|| Behaviour {
        respond: Respond::Raw {
            bytes: Vec::new(),
            close: true,
        },
        ..Behaviour::default()
    });
    assert_eq!(
        connected.len(),
        1,
        "the request went to {connected:?}: {trace:?}"
    );
    assert_eq!(
        err,
        format!(
            "the request may have reached instance {} and is not resent to another enclave: \
             connection closed by the peer",
            connected[0]
        )
    );
}

#[test]
fn a_connection_dropped_before_the_request_is_retried_elsewhere() {
    let (err, connected, trace) = ask_three(|| Behaviour {
        reply: Reply::Raw {
            bytes: Vec::new(),
            close: true,
        },
        ..Behaviour::default()
    });
    assert_eq!(connected.len(), ATTEMPTS, "{trace:?}");
    assert_eq!(
        err,
        "every instance tried failed: the connection closed before the request was sent"
    );
    assert!(
        trace.iter().any(|l| l.ends_with("trying another")),
        "{trace:?}"
    );
}
