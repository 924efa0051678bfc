//! The wallet across issuer keys and processes, with the real log, issuer and gateway on
//! loopback: the refill counts only tokens of keys valid past the keys' overlap (so it fetches
//! under the new key before the old one retires), tokens of every valid key are counted and
//! taken (newest epoch first), a challenge naming a key older than one the wallet holds tokens
//! of is refused, concurrent takes and stores neither lose nor duplicate a token, and counting
//! changes nothing.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;

use pp_device::issuer_keys::{self, LoggedKey};
use pp_device::wallet::{REFILL_HORIZON_SECS, Refill, TokenSource, Wallet};
use pp_services::issuer::unix_now;
use pp_tokens::{Client, IssuerKeyEntry, Token};

mod common;

use common::*;

const DAY: u64 = 86_400;

fn view(gateway: SocketAddr) -> anyhow::Result<issuer_keys::GatewayKeyView> {
    issuer_keys::fetch_over(&mut TcpStream::connect(gateway).unwrap(), ORIGIN, "i-0")
}

/// `n` tokens of `entry` (signed by `key(k)` outside the issuer's service).
fn tokens(name: &str, k: usize, entry: &IssuerKeyEntry, n: usize) -> Vec<Token> {
    (0..n)
        .map(|_| {
            let (req, pending) = Client::prepare(&expected(name), &entry.key).unwrap();
            Client::finalize(pending, &key(k).issue(&req).unwrap()).unwrap()
        })
        .collect()
}

fn logged(entry: &IssuerKeyEntry) -> LoggedKey {
    LoggedKey {
        entry: entry.clone(),
        log_index: 0,
    }
}

/// An old key (epoch 0) whose window ends within the overlap and a new one (epoch 1), both
/// logged; an issuer signing with both.
struct Rotation {
    net: Net,
    name: String,
    issuer_url: String,
    old: IssuerKeyEntry,
    new: IssuerKeyEntry,
    credential: PathBuf,
}

impl Rotation {
    fn new() -> Self {
        let net = Net::new();
        let now = unix_now();
        let old_window = (now - DAY, now + 3600);
        let new_window = (now - 100, now + 30 * DAY);
        let issuer = net.issuer(vec![
            (key(0), old_window.0, old_window.1),
            (key(1), new_window.0, new_window.1),
        ]);
        let name = issuer.to_string();
        let credential = net.dir.path().join("secret");
        std::fs::write(&credential, SECRET).unwrap();
        Self {
            old: entry(&name, &key(0), 0, old_window),
            new: entry(&name, &key(1), 1, new_window),
            issuer_url: format!("http://{issuer}"),
            name,
            credential,
            net,
        }
    }
}

/// H2: the wallet holds plenty of tokens, but of a key that retires within the overlap: the
/// refill must fetch now, under the new key, not find the wallet empty when the old key's
/// window ends.
/// A gateway that keeps naming a key in its last day cannot make every request end in a fetch
/// (its tokens would never count towards the refill's horizon): the refill refuses that key.
#[test]
fn a_refill_under_a_key_retiring_within_the_horizon_is_refused() {
    let r = Rotation::new();
    let log = r.net.log(&[&r.old, &r.new]);
    let gateway = r.net.gateway(&r.name, vec![r.old.clone()], "old only");
    let wallet = Wallet::new(r.net.dir.path());
    let challenge = expected(&r.name);
    let source = TokenSource {
        issuer_url: &r.issuer_url,
        credential_file: &r.credential,
        issuer_name: &r.name,
        challenge: &challenge,
        batch: 3,
        low_water: 2,
        log: &log,
    };
    let err = wallet
        .refill_if_low(&source, unix_now(), || view(gateway))
        .unwrap_err()
        .to_string();
    assert!(err.contains("whose logged window ends within"), "{err}");
    assert_eq!(wallet.available(unix_now()).unwrap(), 0, "nothing fetched");
}

/// The user opts out while a refill is under way (here: while the gateway's view is fetched,
/// before the batch is): the tokens fetched are not kept, so the opt-out's deletion holds.
#[test]
fn tokens_fetched_while_the_user_opts_out_are_not_kept() {
    let r = Rotation::new();
    let log = r.net.log(&[&r.old, &r.new]);
    let gateway = r.net.gateway(&r.name, vec![r.new.clone()], "new");
    let state = r.net.dir.path();
    pp_device::consent::opt_in(state).unwrap();
    let wallet = Wallet::for_user(state);
    let challenge = expected(&r.name);
    let source = TokenSource {
        issuer_url: &r.issuer_url,
        credential_file: &r.credential,
        issuer_name: &r.name,
        challenge: &challenge,
        batch: 3,
        low_water: 2,
        log: &log,
    };
    let err = wallet
        .refill_if_low(&source, unix_now(), || {
            pp_device::consent::opt_out(state).unwrap();
            view(gateway)
        })
        .unwrap_err();
    assert!(format!("{err:#}").contains("opted out"), "{err:#}");
    assert_eq!(wallet.available(unix_now()).unwrap(), 0, "nothing kept");
    assert!(!state.join("tokens").exists(), "the wallet stays deleted");
}

#[test]
fn tokens_of_a_key_retiring_within_the_overlap_do_not_hold_off_the_refill() {
    let r = Rotation::new();
    assert!(r.old.not_after < unix_now() + REFILL_HORIZON_SECS);
    let log = r.net.log(&[&r.old, &r.new]);
    let gateway = r
        .net
        .gateway(&r.name, vec![r.old.clone(), r.new.clone()], "rotation");
    let wallet = Wallet::new(r.net.dir.path());
    wallet
        .store(&logged(&r.old), &tokens(&r.name, 0, &r.old, 5))
        .unwrap();
    let challenge = expected(&r.name);
    let source = TokenSource {
        issuer_url: &r.issuer_url,
        credential_file: &r.credential,
        issuer_name: &r.name,
        challenge: &challenge,
        batch: 3,
        low_water: 2,
        log: &log,
    };
    let now = unix_now();
    let refill = wallet
        .refill_if_low(&source, now, || view(gateway))
        .unwrap();
    assert_eq!(
        refill,
        Refill::Fetched {
            before: 0,
            after: 3
        }
    );
    assert_eq!(wallet.count(r.new.token_key_id()).unwrap(), 3);
    assert_eq!(
        wallet.available(now).unwrap(),
        8,
        "the old key's tokens are still spent"
    );
    // The newest epoch's tokens are taken first.
    let token = wallet.take_valid(now).unwrap().unwrap();
    assert_eq!(&token.token_key_id, r.new.token_key_id());
}

/// M2: tokens of every valid key are counted and taken, not only those of the newest key kept.
#[test]
fn tokens_of_every_valid_key_are_counted_and_taken() {
    let r = Rotation::new();
    let wallet = Wallet::new(r.net.dir.path());
    wallet
        .store(&logged(&r.new), &tokens(&r.name, 1, &r.new, 1))
        .unwrap();
    wallet
        .store(&logged(&r.old), &tokens(&r.name, 0, &r.old, 2))
        .unwrap();
    let now = unix_now();
    assert_eq!(wallet.available(now).unwrap(), 3);
    let first = wallet.take_valid(now).unwrap().unwrap();
    assert_eq!(&first.token_key_id, r.new.token_key_id());
    assert_eq!(wallet.available(now).unwrap(), 2);
    let second = wallet
        .take_valid(now)
        .unwrap()
        .expect("the older key's tokens are taken too");
    assert_eq!(&second.token_key_id, r.old.token_key_id());
}

/// M2: the wallet holds tokens of the epoch-1 key; a gateway whose challenge names the older,
/// still valid, epoch-0 key is refused before any token request.
#[test]
fn a_challenge_naming_an_older_key_than_one_held_is_refused() {
    let r = Rotation::new();
    let log = r.net.log(&[&r.old, &r.new]);
    let gateway = r.net.gateway(&r.name, vec![r.old.clone()], "older");
    let wallet = Wallet::new(r.net.dir.path());
    wallet
        .store(&logged(&r.new), &tokens(&r.name, 1, &r.new, 1))
        .unwrap();
    let challenge = expected(&r.name);
    let source = TokenSource {
        issuer_url: &r.issuer_url,
        credential_file: &r.credential,
        issuer_name: &r.name,
        challenge: &challenge,
        batch: 3,
        low_water: 5,
        log: &log,
    };
    let err = wallet
        .refill_if_low(&source, unix_now(), || view(gateway))
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("older than the key of epoch 1"), "{text}");
    assert!(r.net.events.lock().unwrap().is_empty(), "no token request");
    assert_eq!(wallet.count(r.old.token_key_id()).unwrap(), 0);
}

/// M3: a scheduler's `pp tokens refill` and `pp` requests update the wallet at once (separate
/// wallets on one state folder, as separate processes): no token is lost or handed out twice.
#[test]
fn concurrent_takes_and_stores_neither_lose_nor_duplicate_tokens() {
    let r = Rotation::new();
    let dir = r.net.dir.path().to_path_buf();
    let all: Vec<Token> = tokens(&r.name, 1, &r.new, 60);
    let now = unix_now();
    let taken: Vec<String> = std::thread::scope(|s| {
        for chunk in all.chunks(20) {
            let dir = &dir;
            let key = logged(&r.new);
            s.spawn(move || {
                let wallet = Wallet::new(dir);
                for t in chunk {
                    wallet.store(&key, std::slice::from_ref(t)).unwrap();
                }
            });
        }
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let dir = &dir;
                s.spawn(move || {
                    let wallet = Wallet::new(dir);
                    let mut got = Vec::new();
                    for _ in 0..300 {
                        if let Some(t) = wallet.take_valid(now).unwrap() {
                            got.push(t.to_base64url());
                        }
                    }
                    got
                })
            })
            .collect();
        takers.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    let wallet = Wallet::new(&dir);
    let mut left = Vec::new();
    while let Some(t) = wallet.take_valid(now).unwrap() {
        left.push(t.to_base64url());
    }
    let seen: Vec<String> = taken.iter().chain(&left).cloned().collect();
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "a token was handed out twice");
    let expected: HashSet<String> = all.iter().map(Token::to_base64url).collect();
    assert_eq!(
        distinct.into_iter().cloned().collect::<HashSet<_>>(),
        expected,
        "a token was lost"
    );
}

/// L3: `pp tokens count` reads only: tokens of a retired key and legacy tokens stay on disk.
#[test]
fn counting_tokens_changes_nothing() {
    let net = Net::new();
    let now = unix_now();
    let name = "issuer.pp.test";
    let retired = entry(name, &key(0), 0, (now - 2 * DAY, now - DAY));
    let wallet = Wallet::new(net.dir.path());
    wallet
        .store(&logged(&retired), &tokens(name, 0, &retired, 1))
        .unwrap();
    let legacy = net.dir.path().join("tokens.txt");
    std::fs::write(&legacy, "old\n").unwrap();
    let files = || {
        let mut names: Vec<_> = std::fs::read_dir(net.dir.path().join("tokens"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = files();
    assert_eq!(wallet.available(now).unwrap(), 0);
    assert_eq!(files(), before);
    assert!(legacy.exists());
    assert_eq!(wallet.count(retired.token_key_id()).unwrap(), 1);
}
