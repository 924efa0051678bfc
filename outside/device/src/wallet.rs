//! The device's Privacy Pass tokens, kept per issuer key in `tokens/` of the state folder:
//! `<key id>.entry` holds the key's `pp-issuer-key/1` log entry (proven in the log before it was
//! stored) and `<key id>.txt` its unspent tokens, one base64url token per line. Each token is
//! used once. Tokens of a key whose logged window is over are stale: the gateway refuses them, so
//! they are dropped and new ones fetched (under a logged key, see [`crate::issuer_keys`]).
//!
//! A fetch carries the account credential from the device's address, so it should not come right
//! before a spend: [`Wallet::refill_if_low`] runs after a request (and from `pp tokens refill`),
//! and [`Wallet::take_or_fetch`] fetches only when the wallet is empty, saying so
//! (`docs/protocol.md` §7, "When the device fetches tokens"). The refill counts only tokens of
//! keys still valid [`REFILL_HORIZON_SECS`] ahead, so it fetches under the next key during the
//! keys' overlap instead of finding the wallet empty when the old key retires.
//!
//! Every load-modify-save of the wallet holds an exclusive lock on `tokens.lock` in the state
//! folder, so `pp tokens refill` run by a scheduler and `pp` requests at the same time neither
//! lose nor duplicate a token.

use std::fs::{File, OpenOptions};
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

/// How far ahead the refill looks: tokens of a key whose window ends within this many seconds
/// are not counted when deciding whether to refill. It is the overlap of the operator's key
/// schedule (`pp-issuer --overlap-seconds`, one day by default), the time both the old and the
/// new key are valid: the refill then fetches under the new key while the old one's tokens are
/// still spent. The `pp-issuer-key/1` entries do not state the overlap, hence a constant.
pub const REFILL_HORIZON_SECS: u64 = 24 * 3600;

/// Tokens on disk, per issuer key.
pub struct Wallet {
    dir: PathBuf,
    legacy: PathBuf,
    lock: PathBuf,
    /// The state folder whose opt-in fetched tokens need before they are kept
    /// ([`Wallet::for_user`]): none for a wallet used apart from a user's requests (tests).
    consent: Option<PathBuf>,
}

/// What [`Wallet::refill_if_low`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refill {
    /// At least the low-water mark was left (this many, of keys valid past the horizon):
    /// nothing fetched.
    Enough(usize),
    /// A batch was fetched: tokens left (of keys valid past the horizon) before and after.
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
            lock: state_dir.join("tokens.lock"),
            consent: None,
        }
    }

    /// The wallet `pp` uses for its user: tokens it fetches are kept only while the user is
    /// opted in, checked under the wallet's lock, so an opt-out made while a fetch was under way
    /// (it clears the wallet under the same lock, after removing the opt-in) is not undone.
    pub fn for_user(state_dir: &Path) -> Self {
        Self {
            consent: Some(state_dir.to_path_buf()),
            ..Self::new(state_dir)
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
        self.fetch(source, now, None, gateway)?;
        let token = self
            .take_valid(now)?
            .context("the fetched tokens are not for a valid logged key")?;
        Ok((token, true))
    }

    /// Fetches a batch if fewer than `source.low_water` tokens are left of keys still valid
    /// [`REFILL_HORIZON_SECS`] after `now`. The device calls this after a request (and
    /// `pp tokens refill` at any time), so the fetch, made with the account credential from the
    /// device's own address, does not come right before a spend.
    pub fn refill_if_low(
        &self,
        source: &TokenSource<'_>,
        now: u64,
        gateway: impl FnOnce() -> Result<GatewayKeyView>,
    ) -> Result<Refill> {
        let before = self.available_until(now, REFILL_HORIZON_SECS)?;
        if before >= source.low_water {
            return Ok(Refill::Enough(before));
        }
        self.fetch(source, now, Some(REFILL_HORIZON_SECS), gateway)?;
        Ok(Refill::Fetched {
            before,
            after: self.available_until(now, REFILL_HORIZON_SECS)?,
        })
    }

    /// Deletes every kept token and key entry (the user opted out), under the wallet's lock so
    /// that no request running at the same time writes tokens back afterwards.
    pub fn clear(&self) -> Result<()> {
        let _lock = self.lock()?;
        for path in [&self.dir, &self.legacy] {
            let result = match std::fs::symlink_metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => Err(e),
                Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
                Ok(_) => std::fs::remove_file(path),
            };
            result.with_context(|| format!("removing {}", path.display()))?;
        }
        Ok(())
    }

    /// How many tokens [`Self::take_valid`] can still hand out at `now` (those of every kept
    /// key valid then). Reads only: the wallet is not changed.
    pub fn available(&self, now: u64) -> Result<usize> {
        self.available_until(now, 0)
    }

    /// How many tokens are kept of keys valid at `now` and still `horizon` seconds later.
    /// Reads only.
    pub fn available_until(&self, now: u64, horizon: u64) -> Result<usize> {
        let later = now.saturating_add(horizon);
        let mut n = 0;
        for key in self.entries()?.into_iter().flatten() {
            if key.valid_at(now) && key.valid_at(later) {
                n += self.load(key.token_key_id())?.len();
            }
        }
        Ok(n)
    }

    /// Fetches and keeps one batch under the logged key the gateway's view names. A key of an
    /// older epoch than a valid key this wallet holds tokens of is refused: the operator would
    /// set the accounts it shows the older key apart.
    /// With `horizon` (a refill), the key must also be valid `horizon` seconds after `now`:
    /// tokens of a key about to retire would not count, and a gateway naming one could make
    /// the device fetch after every request.
    fn fetch(
        &self,
        source: &TokenSource<'_>,
        now: u64,
        horizon: Option<u64>,
        gateway: impl FnOnce() -> Result<GatewayKeyView>,
    ) -> Result<()> {
        let view = gateway()?;
        let key =
            issuer_keys::choose(&view, source.challenge, source.issuer_name, now, source.log)?;
        if let Some(newest) = self.held_keys(now)?.first()
            && newest.epoch > key.entry.epoch
        {
            anyhow::bail!(
                "the gateway's PrivateToken challenge names the issuer key of epoch {}, older \
                 than the key of epoch {} this device already holds tokens of: refusing to fetch \
                 tokens under the older key (it would set this account apart)",
                key.entry.epoch,
                newest.epoch
            );
        }
        if let Some(horizon) = horizon
            && !key.entry.valid_at(now.saturating_add(horizon))
        {
            anyhow::bail!(
                "the gateway's PrivateToken challenge names issuer key of epoch {}, whose logged \
                 window ends within {} s: not refilling with it (its tokens would retire before \
                 they are needed)",
                key.entry.epoch,
                horizon
            );
        }
        let tokens = fetch_batch(source, &key.entry.key)?;
        if let Some(state_dir) = &self.consent {
            crate::consent::require_opt_in(state_dir)
                .context("the user opted out while tokens were fetched: they are not kept")?;
        }
        let _lock = self.lock()?;
        if let Some(state_dir) = &self.consent {
            crate::consent::require_opt_in(state_dir)
                .context("the user opted out while tokens were fetched: they are not kept")?;
        }
        self.store_locked(&key, &tokens)
    }

    /// Removes and returns a token of a key valid at `now`, the newest epoch's first; drops
    /// the tokens of every key whose entry is unreadable or whose window is over.
    pub fn take_valid(&self, now: u64) -> Result<Option<Token>> {
        let _lock = self.lock()?;
        self.prune(now)?;
        for key in self.held_keys(now)? {
            let id = key.token_key_id();
            let mut tokens = self.load(id)?;
            if tokens.is_empty() {
                continue;
            }
            let token = tokens.remove(0);
            self.save(id, &tokens)?;
            return Ok(Some(token));
        }
        Ok(None)
    }

    /// The kept keys valid at `now` that hold tokens, newest epoch first. Reads only.
    fn held_keys(&self, now: u64) -> Result<Vec<IssuerKeyEntry>> {
        let mut keys = Vec::new();
        for key in self.entries()?.into_iter().flatten() {
            if key.valid_at(now) && !self.load(key.token_key_id())?.is_empty() {
                keys.push(key);
            }
        }
        keys.sort_by_key(|k| std::cmp::Reverse(k.epoch));
        Ok(keys)
    }

    /// Drops the tokens kept before keys were logged (they name no logged key), and those of
    /// every key whose entry is unreadable or whose window is over. Called with the lock held.
    fn prune(&self, now: u64) -> Result<()> {
        remove_if_present(&self.legacy)?;
        for entry in self.entries()? {
            match entry {
                Ok(key) if key.retired_at(now) => self.remove_key(key.token_key_id())?,
                Ok(_) => {}
                Err((path, _)) => {
                    remove_if_present(&path)?;
                    remove_if_present(&path.with_extension("txt"))?;
                }
            }
        }
        Ok(())
    }

    /// Keeps `tokens` of the logged `key`.
    pub fn store(&self, key: &LoggedKey, tokens: &[Token]) -> Result<()> {
        let _lock = self.lock()?;
        self.store_locked(key, tokens)
    }

    /// [`Self::store`] with the lock held by the caller.
    fn store_locked(&self, key: &LoggedKey, tokens: &[Token]) -> Result<()> {
        let id = key.entry.token_key_id();
        write_atomic(&self.path(id, "entry"), &key.entry.to_vec())?;
        let mut all = self.load(id)?;
        all.extend_from_slice(tokens);
        self.save(id, &all)
    }

    /// Drops every token of the key `id` (retired, or refused as stale by the gateway).
    pub fn drop_key(&self, id: &TokenKeyId) -> Result<()> {
        let _lock = self.lock()?;
        self.remove_key(id)
    }

    fn remove_key(&self, id: &TokenKeyId) -> Result<()> {
        for ext in ["txt", "entry"] {
            remove_if_present(&self.path(id, ext))?;
        }
        Ok(())
    }

    /// Number of unspent tokens kept for the key `id`.
    pub fn count(&self, id: &TokenKeyId) -> Result<usize> {
        Ok(self.load(id)?.len())
    }

    /// Takes the wallet's exclusive lock (released when the file is dropped): one
    /// load-modify-save at a time, across processes.
    fn lock(&self) -> Result<File> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .with_context(|| format!("opening {}", self.lock.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", self.lock.display()))?;
        Ok(file)
    }

    fn path(&self, id: &TokenKeyId, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", hex_of(id)))
    }

    /// The stored entries; an unreadable one is returned as its path and the reason (dropped
    /// with its tokens by [`Self::prune`]). Reads only.
    fn entries(&self) -> Result<Vec<Result<IssuerKeyEntry, (PathBuf, String)>>> {
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
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                // Removed by another process since the folder was listed.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            out.push(IssuerKeyEntry::parse(&bytes).map_err(|e| (path, e.to_string())));
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

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Replaces `path` with `bytes` through a temporary file of its own beside it (a random name, so
/// two writers never share one) and a rename, so a reader sees the old file or the new one,
/// never half of one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|_| anyhow::anyhow!("no randomness"))?;
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}.tmp", hex::encode(nonce)));
    let tmp = PathBuf::from(name);
    if let Err(e) = std::fs::write(&tmp, bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
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
