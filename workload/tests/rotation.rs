//! A device holding the last published key configuration still gets an attested session after
//! the enclave rotated its keys: `pp_client::connect_published` names the published key id in a
//! 33-byte `AttestRequest`, and the enclave binds that key while it holds it (it used to bind
//! only its current key, which the device then refused as not the published one). Once the key
//! has rotated out, the enclave answers `UnknownKey`. In process: TLS on loopback, the test
//! attester, the real verifier, a clock the test moves. Needs the `test-attester` feature and
//! PP_TEST_ROOT_DIR (`cargo xtask test` sets both).
#![cfg(feature = "test-attester")]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pp_attestation::test_signer::{TEST_MEASUREMENT, TEST_TCB};
use pp_client::ClientError;
use pp_protocol::frame::ErrorCode;
use pp_workload::keys::{Clock, KeyRing};
use pp_workload::server::{self, Limits};

const PERIOD: Duration = Duration::from_secs(3600);

#[derive(Clone, Default)]
struct Fake(Arc<AtomicU64>);

impl Clock for Fake {
    fn now(&self) -> Duration {
        Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}

fn policy() -> pp_verifier::Policy {
    let ark = std::fs::read(concat!(env!("PP_TEST_ROOT_DIR"), "/ark.der")).unwrap();
    pp_verifier::Policy::trusting_test_root(&ark, vec![TEST_MEASUREMENT], TEST_TCB).unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    sock
}

/// Echoes; the test checks only the session's set-up and one sealed exchange.
struct Echo;

impl pp_workload::handler::Handler for Echo {
    fn handle(&self, request: &[u8]) -> Result<Vec<u8>, pp_workload::handler::HandlerError> {
        Ok(request.to_vec())
    }
}

#[test]
fn a_published_key_is_attested_after_rotation_until_it_rotates_out() {
    let clock = Fake::default();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let enclave = pp_workload::session::Enclave {
        attester: pp_workload::attest::attester().unwrap().0,
        keys: KeyRing::with(Box::new(clock.clone()), PERIOD, 1 << 16).unwrap(),
        handler: Box::new(Echo),
        release_ref: [0; 32],
        max_request: pp_protocol::frame::MAX_PAYLOAD,
        gate: pp_workload::gate::Gate::for_handler(),
    };
    let identity = pp_workload::tls::fresh_identity().unwrap();
    let running = server::spawn(
        listener,
        identity.config,
        Arc::new(enclave),
        Limits::default(),
    );
    let bundle = pp_client::fetch_publication(connect(addr)).unwrap();
    let published = pp_client::verify_publication(&bundle, &policy()).unwrap();

    // The enclave rotates: the published key is now its previous key.
    clock.0.fetch_add(PERIOD.as_secs(), Ordering::SeqCst);
    let mut session =
        pp_client::connect_published(connect(addr), &published, &policy(), Default::default())
            .expect("the published (previous) key is attested");
    assert_eq!(session.key_config(), &published.key_config[..]);
    assert_eq!(
        session.request(b"under the previous key").unwrap(),
        b"under the previous key"
    );
    drop(session);
    // Fresh publication evidence names the new key.
    let newer = pp_client::verify_publication(
        &pp_client::fetch_publication(connect(addr)).unwrap(),
        &policy(),
    )
    .unwrap();
    assert_ne!(newer.key_config, published.key_config);

    // One more period: the published key is dropped, and the enclave says so.
    clock.0.fetch_add(PERIOD.as_secs(), Ordering::SeqCst);
    let err =
        pp_client::connect_published(connect(addr), &published, &policy(), Default::default())
            .unwrap_err();
    assert!(
        matches!(err, ClientError::Refused(ErrorCode::UnknownKey)),
        "{err}"
    );
    running.stop();
}
