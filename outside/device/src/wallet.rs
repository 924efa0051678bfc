//! The device's Privacy Pass tokens, kept per issuer key in `tokens/` of the state folder:
//! `<key id>.entry` holds the key's `pp-issuer-key/1` log entry (proven in the log before it was
//! stored) and `<key id>.txt` its unspent tokens, one base64url token per line. Each token is
//! used once. Tokens of a key whose logged window is over are stale: the gateway refuses them, so
//! they are dropped and new ones fetched (under a logged key, see [`crate::issuer_keys`]).
//!
//! A fetch carries the account credential from the device's address, so it should not come right
//! before a spend: [`Wallet::refill_if_low`] runs after an answer (and from `pp tokens refill`),
//! and [`Wallet::take_or_fetch`] fetches only when the wallet is empty, saying so
//! (`docs/protocol.md` §7, "When the device fetches tokens").

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pp_tokens::batch::BATCH_REQUEST_MEDIA_TYPE;
use pp_tokens::key_entry::hex_of;
use pp_tokens::{
    BatchTokenResponse, Client, IssuerKeyEntry, IssuerPublicKey, Token, TokenChallenge, TokenKeyId,
};

use crate::fetch;
use crate::issuer_keys::{self, GatewayKeyView, LoggedKey};
use crate::releases::LogClient;

/// Tokens on disk, per issuer key.
pub struct Wallet {
    dir: PathBuf,
    legacy: PathBuf,
}

/// What [`Wallet::refill_if_low`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refill {
    /// At least the low-water mark was left (this many): nothing fetched.
    Enough(usize),
    /// A batch was fetched: tokens left before and after.
    Fetched { before: usize, after: usize },
}

/// Where and how tokens are fetched when the wallet has none for a valid logged key.
pub struct TokenSource<'a> {
    /// Base URL of the issuer (token requests carry the account credential there).
    pub issuer_url: &'a str,
    pub credential_file: &'a Path,
    /// The issuer's name in challenges and log entries.
    pub issuer_name: &'a str,
    /// The challenge this device's tokens answer.
    pub challenge: &'a TokenChallenge,
    /// Tokens asked for at once.
    pub batch: u8,
    /// Fewer tokens left than this after a request: refill then (see [`Wallet::refill_if_low`]).
    pub low_water: usize,
    /// The log the key's entry must be in.
    pub log: &'a LogClient,
}

impl Wallet {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("tokens"),
            legacy: state_dir.join("tokens.txt"),
        }
    }

    /// Removes and returns one token of a logged key valid at `now`, fetching a batch first if
    /// none is left (see [`Self::take_or_fetch`]).
    pub fn take(
        &self,
        source: &TokenSource<'_>,
        now: u64,
        gateway: impl FnOnce() -> Result<GatewayKeyView>,
    ) -> Result<Token> {
        Ok(self.take_or_fetch(source, now, gateway)?.0)
    }

    /// Removes and returns one token of a logged key valid at `now`, fetching a batch first if
    /// none is left (first use): `gateway` supplies the gateway's directory and challenge
    /// (fetched through the relay), checked against the log before any token request is sent.
    /// The flag says whether a batch was fetched for this token, so the spend follows an
    /// issuance closely in time.
    pub fn take_or_fetch(
        &self,
        source: &TokenSource<'_>,
        now: u64,
        gateway: impl FnOnce() -> Result<GatewayKeyView>,
    ) -> Result<(Token, bool)> {
        if let Some(token) = self.take_valid(now)? {
            return Ok((token, false));
        }
        self.fetch(source, now, gateway)?;
        let token = self
            .take_valid(now)?
            .context("the fetched tokens are not for a valid logged key")?;
        Ok((token, true))
    }

    /// Fetches a batch if fewer than `source.low_water` tokens of a valid logged key are left.
    /// The device calls this after a request was answered (and `pp tokens refill` at any time),
    /// so the fetch, made with the account credential from the device's own address, does not
    /// come right before a spend.
    pub fn refill_if_low(
        &self,
        source: &TokenSource<'_>,
        now: u64,
        gateway: impl FnOnce() -> Result<GatewayKeyView>,
    ) -> Result<Refill> {
        let before = self.available(now)?;
        if before >= source.low_water {
            return Ok(Refill::Enough(before));
        }
        self.fetch(source, now, gateway)?;
        Ok(Refill::Fetched {
            before,
            after: self.available(now)?,
        })
    }

    /// How many tokens [`Self::take_valid`] can still hand out at `now` (those of the
    /// newest-epoch valid key kept).
    pub fn available(&self, now: u64) -> Result<usize> {
        match self.best_key(now)? {
            Some(key) => Ok(self.load(key.token_key_id())?.len()),
            None => Ok(0),
        }
    }

    /// Fetches and keeps one batch under the logged key the gateway's view names.
    fn fetch(
        &self,
        source: &TokenSource<'_>,
        now: u64,
        gateway: impl FnOnce() -> Result<GatewayKeyView>,
    ) -> Result<()> {
        let view = gateway()?;
        let key =
            issuer_keys::choose(&view, source.challenge, source.issuer_name, now, source.log)?;
        let tokens = fetch_batch(source, &key.entry.key)?;
        self.store(&key, &tokens)
    }

    /// Removes and returns a token of the newest-epoch key valid at `now`; drops the tokens of
    /// every key whose entry is unreadable or whose window is over.
    pub fn take_valid(&self, now: u64) -> Result<Option<Token>> {
        let Some(key) = self.best_key(now)? else {
            return Ok(None);
        };
        let mut tokens = self.load(key.token_key_id())?;
        if tokens.is_empty() {
            return Ok(None);
        }
        let token = tokens.remove(0);
        self.save(key.token_key_id(), &tokens)?;
        Ok(Some(token))
    }

    /// The newest-epoch kept key valid at `now`; drops the tokens of every key whose entry is
    /// unreadable or whose window is over.
    fn best_key(&self, now: u64) -> Result<Option<IssuerKeyEntry>> {
        // Tokens kept before keys were logged name no logged key: drop them.
        match std::fs::remove_file(&self.legacy) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", self.legacy.display()));
            }
            _ => {}
        }
        let mut best: Option<IssuerKeyEntry> = None;
        for entry in self.entries()? {
            let Ok(key) = entry else { continue };
            if key.valid_at(now) {
                if best.as_ref().is_none_or(|b| key.epoch > b.epoch) {
                    best = Some(key);
                }
            } else if key.retired_at(now) {
                self.drop_key(key.token_key_id())?;
            }
        }
        Ok(best)
    }

    /// Keeps `tokens` of the logged `key`.
    pub fn store(&self, key: &LoggedKey, tokens: &[Token]) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let id = key.entry.token_key_id();
        write_atomic(&self.path(id, "entry"), &key.entry.to_vec())?;
        let mut all = self.load(id)?;
        all.extend_from_slice(tokens);
        self.save(id, &all)
    }

    /// Drops every token of the key `id` (retired, or refused as stale by the gateway).
    pub fn drop_key(&self, id: &TokenKeyId) -> Result<()> {
        for ext in ["txt", "entry"] {
            let path = self.path(id, ext);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", path.display()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Number of unspent tokens kept for the key `id`.
    pub fn count(&self, id: &TokenKeyId) -> Result<usize> {
        Ok(self.load(id)?.len())
    }

    fn path(&self, id: &TokenKeyId, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", hex_of(id)))
    }

    /// The stored entries (an unreadable one is dropped with its tokens).
    fn entries(&self) -> Result<Vec<Result<IssuerKeyEntry>>> {
        let read = match std::fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.dir.display())),
        };
        let mut out = Vec::new();
        for file in read {
            let path = file?.path();
            if path.extension().is_none_or(|e| e != "entry") {
                continue;
            }
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            match IssuerKeyEntry::parse(&bytes) {
                Ok(entry) => out.push(Ok(entry)),
                Err(e) => {
                    std::fs::remove_file(&path)?;
                    let _ = std::fs::remove_file(path.with_extension("txt"));
                    out.push(Err(anyhow::anyhow!("{}: {e}", path.display())));
                }
            }
        }
        Ok(out)
    }

    fn load(&self, id: &TokenKeyId) -> Result<Vec<Token>> {
        let path = self.path(id, "txt");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let token = Token::from_base64url(l.trim()).map_err(|e| {
                    anyhow::anyhow!("{} holds a malformed token: {e:?}", path.display())
                })?;
                anyhow::ensure!(
                    &token.token_key_id == id,
                    "{} holds a token of another key",
                    path.display()
                );
                Ok(token)
            })
            .collect()
    }

    fn save(&self, id: &TokenKeyId, tokens: &[Token]) -> Result<()> {
        let text: String = tokens.iter().map(|t| t.to_base64url() + "\n").collect();
        write_atomic(&self.path(id, "txt"), text.as_bytes())
    }
}

/// Replaces `path` with `bytes` through a temporary file beside it and a rename, so a reader
/// sees the old file or the new one, never half of one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Asks the issuer for a batch of tokens under `key` (already checked against the log).
fn fetch_batch(source: &TokenSource<'_>, key: &IssuerPublicKey) -> Result<Vec<Token>> {
    let credential = std::fs::read_to_string(source.credential_file).with_context(|| {
        format!(
            "reading the account credential {}",
            source.credential_file.display()
        )
    })?;
    let (request, pending) =
        Client::prepare_batch(source.challenge, key, usize::from(source.batch))
            .map_err(|e| anyhow::anyhow!("cannot prepare token requests: {e}"))?;
    let body = fetch::post(
        &format!("{}/token-request", source.issuer_url),
        BATCH_REQUEST_MEDIA_TYPE,
        Some(credential.trim()),
        &request.to_vec(),
    )
    .context("the issuer refused to issue tokens")?;
    let response = BatchTokenResponse::parse(&body)
        .map_err(|e| anyhow::anyhow!("the issuer's answer is malformed: {e:?}"))?;
    let tokens: Vec<Token> = Client::finalize_batch(pending, &response)
        .map_err(|e| anyhow::anyhow!("the issuer's signatures do not verify: {e}"))?
        .into_iter()
        .flatten()
        .collect();
    anyhow::ensure!(!tokens.is_empty(), "the issuer issued no token");
    Ok(tokens)
}
