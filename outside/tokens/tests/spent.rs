//! The double-spend store: once per token, across reopening, refusing corrupt files.

use std::path::PathBuf;
use std::sync::Arc;

use pp_tokens::{NK, SpendError, SpentTokens, Token};

fn token(n: u8) -> Token {
    Token {
        nonce: [n; 32],
        challenge_digest: [1; 32],
        token_key_id: [2; 32],
        authenticator: [3; NK],
    }
}

/// A fresh directory per test (tests run in parallel).
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pp-tokens-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn spend_once_even_after_reopening() {
    let dir = temp_dir("spent-reopen");
    let path = dir.join("spent");
    {
        let store = SpentTokens::open(&path).unwrap();
        assert!(store.is_empty());
        store.spend(&token(1)).unwrap();
        store.spend(&token(2)).unwrap();
        assert!(matches!(
            store.spend(&token(1)),
            Err(SpendError::AlreadySpent)
        ));
        assert!(store.is_spent(&token(2)));
        assert!(!store.is_spent(&token(3)));
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 64);
    let store = SpentTokens::open(&path).unwrap();
    assert_eq!(store.len(), 2);
    assert!(matches!(
        store.spend(&token(1)),
        Err(SpendError::AlreadySpent)
    ));
    assert!(matches!(
        store.spend(&token(2)),
        Err(SpendError::AlreadySpent)
    ));
    store.spend(&token(3)).unwrap();
    // The same nonce with another authenticator is the same token.
    let mut twin = token(3);
    twin.authenticator = [9; NK];
    assert!(matches!(store.spend(&twin), Err(SpendError::AlreadySpent)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_file_refused() {
    let dir = temp_dir("spent-corrupt");
    let path = dir.join("spent");
    std::fs::write(&path, [0u8; 33]).unwrap();
    assert!(matches!(SpentTokens::open(&path), Err(SpendError::Corrupt)));
    // Left as it was for an operator to look at.
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 33);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn second_store_on_the_same_file_refused() {
    let dir = temp_dir("spent-lock");
    let path = dir.join("spent");
    let first = SpentTokens::open(&path).unwrap();
    assert!(matches!(SpentTokens::open(&path), Err(SpendError::Locked)));
    drop(first);
    SpentTokens::open(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn concurrent_spends_of_one_token_succeed_once() {
    let dir = temp_dir("spent-threads");
    let store = Arc::new(SpentTokens::open(&dir.join("spent")).unwrap());
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || store.spend(&token(7)).is_ok())
        })
        .collect();
    let wins = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&ok| ok)
        .count();
    assert_eq!(wins, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
