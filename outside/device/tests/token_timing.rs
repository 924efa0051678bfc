//! When the device fetches tokens, seen from the operator's side: the issuer (which knows the
//! account) and the gateway (which sees each spend) are one operator's, so a token fetch right
//! before a spend links that request to the account by time. The real log, issuer and gateway
//! run on loopback and record, in order, each token request and each CONNECT carrying a token;
//! the device's spend path ([`request::spend_then_refill`], which `ask` runs) must fetch after
//! the answer when the wallet runs low, never right before a spend it could have made from the
//! wallet.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;

use pp_device::issuer_keys::{self, LoggedKey};
use pp_device::releases::LogClient;
use pp_device::request::{self, CLOSE_TO_ISSUANCE, Failure, Tokens};
use pp_device::tunnel::PathError;
use pp_device::wallet::{TokenSource, Wallet};
use pp_services::issuer::unix_now;
use pp_tokens::{Client, IssuerKeyEntry, Token, TokenChallenge};

mod common;

use common::*;

/// Tokens asked for at once, and the low-water mark, in these tests.
const BATCH: u8 = 3;
const LOW_WATER: usize = 2;

/// The operator's services with one logged issuer key, and a device's wallet and account.
struct Operator {
    net: Net,
    gateway: SocketAddr,
    issuer_url: String,
    name: String,
    entry: IssuerKeyEntry,
    log: LogClient,
    challenge: TokenChallenge,
    credential: PathBuf,
}

impl Operator {
    fn new() -> Self {
        Self::with_slots(4)
    }

    /// The operator's services, its gateway with `slots` tunnel slots (none: it answers 503).
    fn with_slots(slots: usize) -> Self {
        let net = Net::new();
        let now = unix_now();
        // A key valid well past the refill's horizon (the keys' overlap).
        let window = (now - 100, now + 30 * 86_400);
        let issuer_addr = net.issuer(vec![(key(0), window.0, window.1)]);
        let name = issuer_addr.to_string();
        let entry = entry(&name, &key(0), 1, window);
        let log = net.log(&[&entry]);
        let gateway = net.gateway_with_slots(&name, vec![entry.clone()], "timing", slots);
        let credential = net.dir.path().join("secret");
        std::fs::write(&credential, SECRET).unwrap();
        Self {
            challenge: expected(&name),
            issuer_url: format!("http://{issuer_addr}"),
            gateway,
            name,
            entry,
            log,
            credential,
            net,
        }
    }

    fn source(&self) -> TokenSource<'_> {
        TokenSource {
            issuer_url: &self.issuer_url,
            credential_file: &self.credential,
            issuer_name: &self.name,
            challenge: &self.challenge,
            batch: BATCH,
            low_water: LOW_WATER,
            log: &self.log,
        }
    }

    fn wallet(&self) -> Wallet {
        Wallet::new(self.net.dir.path())
    }

    /// Puts `n` tokens of the logged key in the wallet, signed outside the issuer's service (no
    /// event), as if fetched long ago.
    fn fill(&self, n: usize) {
        let tokens: Vec<Token> = (0..n)
            .map(|_| {
                let (req, pending) = Client::prepare(&self.challenge, &self.entry.key).unwrap();
                Client::finalize(pending, &key(0).issue(&req).unwrap()).unwrap()
            })
            .collect();
        let logged = LoggedKey {
            entry: self.entry.clone(),
            log_index: 0,
        };
        self.wallet().store(&logged, &tokens).unwrap();
    }

    /// One request through the device's spend path: each attempt spends its token at the
    /// gateway, which accepts it (and then finds the instance down: 502, past the token checks).
    /// Returns the trace.
    fn request(&self) -> anyhow::Result<Vec<String>> {
        let gateway = self.gateway;
        let view = |instance: &str| {
            issuer_keys::fetch_over(&mut TcpStream::connect(gateway).unwrap(), ORIGIN, instance)
        };
        let wallet = self.wallet();
        let source = self.source();
        let tokens = Tokens {
            wallet: &wallet,
            source: &source,
            gateway: &view,
        };
        let mut lines = Vec::new();
        request::spend_then_refill(
            &tokens,
            vec!["i-0".to_string()],
            |c| c.as_str(),
            &mut |l| lines.push(l),
            |_, token| match spend(gateway, token) {
                (502, _) => Ok(()),
                (status, text) => Err(Failure::Fatal(anyhow::anyhow!("{status}: {text}"))),
            },
        )?;
        Ok(lines)
    }

    /// One request through the device's spend path over `instances` candidates, each attempt's
    /// CONNECT refusal classified as the device does ([`request::refusal_failure`]). Returns
    /// the outcome, the gateway's status for each attempt, and the trace.
    fn request_classified(&self, instances: usize) -> (anyhow::Result<()>, Vec<u16>, Vec<String>) {
        let gateway = self.gateway;
        let view = |instance: &str| {
            issuer_keys::fetch_over(&mut TcpStream::connect(gateway).unwrap(), ORIGIN, instance)
        };
        let wallet = self.wallet();
        let source = self.source();
        let tokens = Tokens {
            wallet: &wallet,
            source: &source,
            gateway: &view,
        };
        let mut lines = Vec::new();
        let mut statuses = Vec::new();
        let outcome = request::spend_then_refill(
            &tokens,
            (0..instances).map(|n| format!("i-{n}")).collect(),
            |c| c.as_str(),
            &mut |l| lines.push(l),
            |_, token| match spend(gateway, token) {
                (200, _) => Ok(()),
                (status, reason) => {
                    statuses.push(status);
                    Err(request::refusal_failure(PathError::Refused {
                        hop: "gateway",
                        status,
                        reason,
                    }))
                }
            },
        );
        (outcome.map(|_| ()), statuses, lines)
    }

    fn events(&self) -> Vec<&'static str> {
        self.net.events.lock().unwrap().clone()
    }

    fn left(&self) -> usize {
        self.wallet().available(unix_now()).unwrap()
    }
}

/// The wallet holds the low-water mark: the request spends from it, and only after the answer
/// does the device fetch a batch. A request that leaves the wallet at the mark fetches nothing.
#[test]
fn a_wallet_at_the_low_water_mark_refills_after_the_answer() {
    let op = Operator::new();
    op.fill(LOW_WATER + 1);
    op.request().unwrap();
    assert_eq!(op.events(), [SPEND], "no fetch while the mark is kept");
    assert_eq!(op.left(), LOW_WATER);

    let trace = op.request().unwrap();
    assert_eq!(
        op.events(),
        [SPEND, SPEND, ISSUANCE],
        "the fetch must come after the spend, not before it"
    );
    assert_eq!(op.left(), LOW_WATER - 1 + usize::from(BATCH));
    assert!(
        trace
            .iter()
            .any(|l| l.contains("fetched a batch after the request")),
        "{trace:?}"
    );
    assert!(!trace.iter().any(|l| l.contains(CLOSE_TO_ISSUANCE)));
}

/// First use: the wallet is empty before a spend, so the device fetches then, and says that
/// this spend is close in time to an issuance. The batch leaves the mark kept: no second fetch.
#[test]
fn an_empty_wallet_fetches_before_the_spend_and_says_so() {
    let op = Operator::new();
    let trace = op.request().unwrap();
    assert_eq!(op.events(), [ISSUANCE, SPEND]);
    assert!(
        trace.iter().any(|l| l.contains(CLOSE_TO_ISSUANCE)),
        "{trace:?}"
    );
    assert_eq!(op.left(), usize::from(BATCH) - 1);
}

/// A refill after the answer that fails (the issuer refuses the account) is traced and leaves
/// the answer and the wallet as they were.
#[test]
fn a_failed_refill_keeps_the_answer() {
    let op = Operator::new();
    op.fill(LOW_WATER);
    std::fs::write(&op.credential, "not-the-account-secret").unwrap();
    let trace = op.request().unwrap();
    assert_eq!(op.events(), [SPEND, ISSUANCE]);
    assert_eq!(op.left(), LOW_WATER - 1);
    assert!(
        trace
            .iter()
            .any(|l| l.contains("refill after the request failed")),
        "{trace:?}"
    );
}

/// H1: a gateway that answers 503 to every CONNECT (before it records the spend) cannot empty
/// the wallet: the retries of one request show the token taken for its first attempt again, so
/// the request takes one token from the wallet, not one per attempt.
#[test]
fn a_gateway_answering_503_spends_one_token_per_request() {
    let op = Operator::with_slots(0);
    op.fill(5);
    let (outcome, statuses, _) = op.request_classified(3);
    assert!(outcome.is_err());
    assert_eq!(statuses, [503, 503, 503]);
    assert_eq!(
        op.events(),
        [SPEND, SPEND, SPEND],
        "no fetch: the mark is kept"
    );
    assert_eq!(
        op.left(),
        4,
        "one request takes one token, however often it is retried"
    );
}

/// Our gateway records a spend before it finds the instance down (502): the retry then shows a
/// new token, which the gateway accepts (a token shown again would be refused, 403).
#[test]
fn a_retry_after_a_recorded_spend_takes_a_new_token() {
    let op = Operator::new();
    op.fill(5);
    let (outcome, statuses, _) = op.request_classified(2);
    assert!(outcome.is_err());
    assert_eq!(
        statuses,
        [502, 502],
        "the retry's token must not be one spent before"
    );
    assert_eq!(op.left(), 3);
}

/// A gateway that fails attempts after recording their spends (502) cannot drain the wallet
/// into a fetch right before a spend it then lets through: a retry takes only a token already
/// held, and the request ends instead of fetching (the refill follows the failed request).
#[test]
fn a_retry_never_fetches_right_before_its_spend() {
    let op = Operator::new();
    op.fill(1);
    let (outcome, statuses, _) = op.request_classified(3);
    let err = format!("{:#}", outcome.unwrap_err());
    assert!(
        err.contains("no token is left for another attempt"),
        "{err}"
    );
    assert_eq!(statuses, [502]);
    // One spend, and no issuance before it (the refill after the request may or may not reach
    // the issuer: it names a random instance, which this test's gateway may not know).
    let events = op.events();
    assert_eq!(events.first(), Some(&SPEND), "{events:?}");
    assert_eq!(
        events.iter().filter(|e| **e == SPEND).count(),
        1,
        "{events:?}"
    );
}

/// H1: a failed request spent tokens too: the low-water refill runs after it as after an
/// answer.
#[test]
fn a_failed_request_refills_under_the_mark() {
    let op = Operator::with_slots(0);
    op.fill(LOW_WATER);
    let (outcome, _, trace) = op.request_classified(1);
    assert!(outcome.is_err());
    assert_eq!(op.events(), [SPEND, ISSUANCE]);
    assert_eq!(op.left(), LOW_WATER - 1 + usize::from(BATCH));
    assert!(
        trace
            .iter()
            .any(|l| l.contains("fetched a batch after the request")),
        "{trace:?}"
    );
}

/// L1: the after-answer refill's CONNECT (for the gateway's challenge) names a random instance
/// of the index, not always the one whose session just ended. Ten answered requests over eight
/// instances, each followed by a refill: that every refill names the instance just used has a
/// chance of 8^-10.
#[test]
fn the_refill_names_a_random_instance() {
    let op = Operator::new();
    let gateway = op.gateway;
    let named = std::cell::RefCell::new(Vec::new());
    let view = |instance: &str| {
        named.borrow_mut().push(instance.to_string());
        issuer_keys::fetch_over(&mut TcpStream::connect(gateway).unwrap(), ORIGIN, "i-0")
    };
    let wallet = op.wallet();
    let mut source = op.source();
    // Every request refills.
    source.low_water = 1000;
    let tokens = Tokens {
        wallet: &wallet,
        source: &source,
        gateway: &view,
    };
    let mut same = 0;
    for _ in 0..10 {
        let (chosen, ()) = request::spend_then_refill(
            &tokens,
            (0..8).map(|n| format!("i-{n}")).collect(),
            |c| c.as_str(),
            &mut |_| {},
            |_, token| match spend(gateway, token) {
                (502, _) => Ok(()),
                (status, text) => Err(Failure::Fatal(anyhow::anyhow!("{status}: {text}"))),
            },
        )
        .unwrap();
        let refill = named.borrow().last().cloned().unwrap();
        same += usize::from(refill == chosen);
    }
    assert!(same < 10, "every refill named the instance just used");
}
