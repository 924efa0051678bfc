//! The device's Privacy Pass tokens: fetched in batches from the issuer with the account
//! credential, kept in the state folder, each used once.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pp_tokens::batch::BATCH_REQUEST_MEDIA_TYPE;
use pp_tokens::{BatchTokenResponse, Client, IssuerDirectory, Token, TokenChallenge};

use crate::fetch;

/// Tokens on disk, one base64url token per line.
pub struct Wallet {
    path: PathBuf,
}

impl Wallet {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join("tokens.txt"),
        }
    }

    /// Removes and returns one token, fetching a batch first if none is left.
    pub fn take(
        &self,
        issuer_url: &str,
        credential_file: &Path,
        challenge: &TokenChallenge,
        batch: u8,
    ) -> Result<Token> {
        let mut tokens = self.load()?;
        if tokens.is_empty() {
            tokens = fetch_batch(issuer_url, credential_file, challenge, batch)?;
        }
        let token = tokens.remove(0);
        self.save(&tokens)?;
        Ok(token)
    }

    fn load(&self) -> Result<Vec<Token>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                Token::from_base64url(l.trim()).map_err(|e| {
                    anyhow::anyhow!("{} holds a malformed token: {e:?}", self.path.display())
                })
            })
            .collect()
    }

    fn save(&self, tokens: &[Token]) -> Result<()> {
        let text: String = tokens.iter().map(|t| t.to_base64url() + "\n").collect();
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(())
    }
}

fn fetch_batch(
    issuer_url: &str,
    credential_file: &Path,
    challenge: &TokenChallenge,
    batch: u8,
) -> Result<Vec<Token>> {
    let credential = std::fs::read_to_string(credential_file).with_context(|| {
        format!(
            "reading the account credential {}",
            credential_file.display()
        )
    })?;
    let directory = fetch::get(&format!(
        "{issuer_url}/.well-known/private-token-issuer-directory"
    ))?;
    let directory = IssuerDirectory::from_json(
        std::str::from_utf8(&directory).context("the issuer directory is not UTF-8")?,
    )
    .map_err(|e| anyhow::anyhow!("the issuer directory is malformed: {e}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let key = directory
        .blind_rsa_keys(now)
        .into_iter()
        .next()
        .context("the issuer publishes no token key")?;
    let (request, pending) = Client::prepare_batch(challenge, &key, usize::from(batch))
        .map_err(|e| anyhow::anyhow!("cannot prepare token requests: {e}"))?;
    let body = fetch::post(
        &format!("{issuer_url}/token-request"),
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
