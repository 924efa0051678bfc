//! The shared spent-token store on a real Valkey server: once per token across connections
//! (replicas), also when they race, across a server restart, per issuer key, and only on a server
//! that persists every write.

mod common;

use std::process::Command;

use common::{Valkey, temp_dir, valkey_binary};
use pp_services::spent_store::{SharedError, SharedSpent};
use pp_tokens::{NK, Token};

fn token(key: u8, n: u8) -> Token {
    Token {
        nonce: [n; 32],
        challenge_digest: [1; 32],
        token_key_id: [key; 32],
        authenticator: [3; NK],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_across_replicas_and_restarts() {
    let dir = temp_dir("shared-store");
    let mut server = Valkey::start(&dir);
    let a = SharedSpent::connect(&server.url()).await.unwrap();
    let b = SharedSpent::connect(&server.url()).await.unwrap();
    a.spend(&token(1, 1), None).await.unwrap();
    assert!(matches!(
        b.spend(&token(1, 1), None).await,
        Err(SharedError::AlreadySpent)
    ));
    // The same nonce under another issuer key is another token.
    b.spend(&token(2, 1), None).await.unwrap();
    // A second authenticator for the same token input is the same token.
    let mut twin = token(1, 1);
    twin.authenticator = [9; NK];
    assert!(matches!(
        a.spend(&twin, None).await,
        Err(SharedError::AlreadySpent)
    ));

    // Killed without a chance to flush, then restarted on its data: the spends are still there,
    // and the stores reconnect by themselves.
    server.kill();
    assert!(matches!(
        a.spend(&token(1, 5), None).await,
        Err(SharedError::Server(_))
    ));
    server.restart();
    let mut again = Err(SharedError::Url);
    for _ in 0..50 {
        again = b.spend(&token(1, 1), None).await;
        if !matches!(again, Err(SharedError::Server(_))) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(matches!(again, Err(SharedError::AlreadySpent)), "{again:?}");
    assert!(a.is_spent(&token(2, 1)).await.unwrap());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_replicas_spend_once() {
    let dir = temp_dir("shared-race");
    let server = Valkey::start(&dir);
    let mut stores = Vec::new();
    for _ in 0..8 {
        stores.push(SharedSpent::connect(&server.url()).await.unwrap());
    }
    let spends: Vec<_> = stores
        .into_iter()
        .map(|s| tokio::spawn(async move { s.spend(&token(1, 7), None).await.is_ok() }))
        .collect();
    let mut wins = 0;
    for spend in spends {
        wins += usize::from(spend.await.unwrap());
    }
    assert_eq!(wins, 1);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retire_drops_one_keys_spends_and_expiry_is_set() {
    let dir = temp_dir("shared-retire");
    let server = Valkey::start(&dir);
    let store = SharedSpent::connect(&server.url()).await.unwrap();
    for n in 0..5 {
        store.spend(&token(1, n), None).await.unwrap();
    }
    store.spend(&token(2, 0), None).await.unwrap();
    assert_eq!(store.retire(&[1; 32]).await.unwrap(), 5);
    assert!(!store.is_spent(&token(1, 0)).await.unwrap());
    assert!(store.is_spent(&token(2, 0)).await.unwrap());
    // A spend with the key's expiry goes away on its own once the key has expired.
    let past = 1_000_000_000;
    store.spend(&token(3, 0), Some(past)).await.unwrap();
    assert!(!store.is_spent(&token(3, 0)).await.unwrap());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_that_does_not_persist_every_write_is_refused() {
    let dir = temp_dir("shared-volatile");
    let socket = dir.join("valkey.sock");
    let child = Command::new(valkey_binary())
        .args(["--port", "0", "--unixsocket"])
        .arg(&socket)
        .args(["--dir"])
        .arg(&dir)
        .args(["--appendonly", "no", "--save", ""])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _server = common::Process(child);
    for _ in 0..250 {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let url = format!("redis+unix://{}", socket.display());
    let err = SharedSpent::connect(&url).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the spent-token store does not keep every write (appendonly no, appendfsync \
         everysec, maxmemory-policy noeviction); run it with `appendonly yes`, \
         `appendfsync always` and `maxmemory-policy noeviction`"
    );
    assert!(matches!(
        SharedSpent::connect("http://example.invalid").await,
        Err(SharedError::Url)
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
