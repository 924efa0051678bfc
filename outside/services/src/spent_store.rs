//! Where a gateway records spent tokens: its own file ([`pp_tokens::SpentTokens`], one gateway
//! only: the file is locked), or a Valkey/Redis server that every gateway replica uses at once,
//! so a token is accepted once across all of them.
//!
//! The shared store keeps one key per spent token, `pp:spent:<token key id>:<nonce>` (hex),
//! written with `SET … NX`: the server runs commands one at a time, so of two replicas spending
//! the same token at once exactly one gets `OK`. Keys are namespaced by the issuer key id, so the
//! spends of a retired key can be dropped ([`SharedSpent::retire`]) or left to expire with the key
//! (`expires_at`). The server must persist every write before answering (`appendonly yes`,
//! `appendfsync always`): the store checks that when it connects and refuses a server that does
//! not, because a spend it forgets in a restart could be spent again.

use std::time::Duration;

use pp_tokens::{SpendError, SpentTokens, Token};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The key prefix of every spend.
pub const PREFIX: &str = "pp:spent:";

/// How long one store command may take before the spend is refused (the gateway answers 503).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the shared store refused or failed. Messages name no token or address.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The token was spent before (at this or any other gateway).
    #[error("token already spent")]
    AlreadySpent,
    /// The server is configured not to persist every write.
    #[error(
        "the spent-token store does not keep every write ({0}); run it with \
         `appendonly yes`, `appendfsync always` and `maxmemory-policy noeviction`"
    )]
    NotDurable(String),
    /// The URL is not a `redis://`, `rediss://`, `redis+unix://` or `unix://` URL.
    #[error("the spent-token store URL is not a redis://, rediss:// or redis+unix:// URL")]
    Url,
    /// Talking to the server failed (down, timed out, refused the command).
    #[error("the spent-token store is unreachable or failed: {0}")]
    Server(String),
}

impl From<redis::RedisError> for SharedError {
    fn from(e: redis::RedisError) -> Self {
        // The error's kind and category only: its detail may quote the command (a key).
        SharedError::Server(format!("{:?} ({})", e.kind(), e.category()))
    }
}

/// A spent-token store on a Valkey or Redis server, shared by every gateway replica. Cheap to
/// clone; reconnects by itself after the server restarts.
#[derive(Clone)]
pub struct SharedSpent {
    conn: ConnectionManager,
}

impl std::fmt::Debug for SharedSpent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSpent").finish_non_exhaustive()
    }
}

impl SharedSpent {
    /// Connects to the server at `url` and checks that it persists every write.
    pub async fn connect(url: &str) -> Result<Self, SharedError> {
        let client = redis::Client::open(url).map_err(|_| SharedError::Url)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(3);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        let store = Self { conn };
        store.check_durable().await?;
        Ok(store)
    }

    async fn check_durable(&self) -> Result<(), SharedError> {
        let mut conn = self.conn.clone();
        let (_, appendonly): (String, String) = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .query_async(&mut conn)
            .await?;
        let (_, appendfsync): (String, String) = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendfsync")
            .query_async(&mut conn)
            .await?;
        // A server that evicts keys under memory pressure would forget spends.
        let (_, eviction): (String, String) = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut conn)
            .await?;
        if appendonly != "yes" || appendfsync != "always" || eviction != "noeviction" {
            return Err(SharedError::NotDurable(format!(
                "appendonly {appendonly}, appendfsync {appendfsync}, maxmemory-policy {eviction}"
            )));
        }
        Ok(())
    }

    /// The key recording `token`'s spend.
    pub fn key(token: &Token) -> String {
        format!(
            "{PREFIX}{}:{}",
            hex::encode(token.token_key_id),
            hex::encode(token.nonce)
        )
    }

    /// Records `token` as spent, once across every gateway on this store; `expires_at` (Unix
    /// seconds, the issuer key's end of validity) lets the server drop the record when the key's
    /// tokens can no longer verify. `Ok` only once the server has the record (and, being
    /// durable, has it on disk).
    pub async fn spend(&self, token: &Token, expires_at: Option<u64>) -> Result<(), SharedError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(Self::key(token)).arg(1).arg("NX");
        if let Some(at) = expires_at {
            cmd.arg("EXAT").arg(at);
        }
        let mut conn = self.conn.clone();
        let set: Option<String> = cmd.query_async(&mut conn).await?;
        match set {
            Some(_) => Ok(()),
            None => Err(SharedError::AlreadySpent),
        }
    }

    /// Whether `token` was spent (a lookup only).
    pub async fn is_spent(&self, token: &Token) -> Result<bool, SharedError> {
        let mut conn = self.conn.clone();
        let n: u64 = redis::cmd("EXISTS")
            .arg(Self::key(token))
            .query_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    /// Drops every spend recorded for the issuer key `key_id` (once the key is retired, its
    /// tokens no longer verify, so their records are moot). Returns how many were dropped.
    pub async fn retire(&self, key_id: &[u8; 32]) -> Result<u64, SharedError> {
        let pattern = format!("{PREFIX}{}:*", hex::encode(key_id));
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut dropped = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await?;
                dropped += n;
            }
            if next == 0 {
                return Ok(dropped);
            }
            cursor = next;
        }
    }
}

/// A gateway's spent-token store: a file of its own or the shared server.
pub enum SpentStore {
    /// One gateway's own file (locked: a second gateway cannot share it).
    File(SpentTokens),
    /// A Valkey/Redis server every replica uses.
    Shared(SharedSpent),
}

/// The outcome of a spend, for the gateway's reply.
#[derive(Debug)]
pub enum Spend {
    /// Recorded: the token is now spent.
    Recorded,
    /// Spent before.
    AlreadySpent,
    /// The store could not record it (the gateway refuses the token: fail closed).
    Failed(String),
}

impl SpentStore {
    /// Records `token` as spent; a shared store forgets the record at `expires_at` (Unix
    /// seconds: set after the token's key retires, when the gateway refuses its tokens anyway).
    pub async fn spend(&self, token: &Token, expires_at: Option<u64>) -> Spend {
        match self {
            SpentStore::File(file) => match file.spend(token) {
                Ok(()) => Spend::Recorded,
                Err(SpendError::AlreadySpent) => Spend::AlreadySpent,
                Err(e) => Spend::Failed(e.to_string()),
            },
            SpentStore::Shared(shared) => match shared.spend(token, expires_at).await {
                Ok(()) => Spend::Recorded,
                Err(SharedError::AlreadySpent) => Spend::AlreadySpent,
                Err(e) => Spend::Failed(e.to_string()),
            },
        }
    }
}
