//! `pp tokens refill`: fetch tokens at a time of the user's (or a scheduler's) choosing, apart
//! from any request.

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::releases::LogClient;
use crate::request::{Trace, issuer_name, random_index, token_challenge};
use crate::tunnel::PathSpec;
use crate::wallet::{REFILL_HORIZON_SECS, Refill, TokenSource, Wallet};

/// Batches `pp tokens refill` fetches at most in one run.
pub const MAX_REFILL_BATCHES: usize = 8;

/// `pp tokens refill`: fetches batches until the wallet holds at least `min` tokens of logged
/// keys valid past [`REFILL_HORIZON_SECS`] (at most [`MAX_REFILL_BATCHES`]), at a time chosen by the user or a scheduler,
/// apart from any request. The log is synced and the gateway's directory and challenge are
/// fetched through the relay, as for a request (its CONNECT names an instance of the logged CDN
/// index). Returns the tokens held before and after.
pub fn refill_tokens(config: &Config, min: usize, trace: Trace<'_>) -> Result<(usize, usize)> {
    // Nothing leaves the device before the user opted in.
    crate::consent::require_opt_in(&config.state_dir)?;
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating {}", config.state_dir.display()))?;
    // Through the relay, as for a request.
    let reader = crate::reads::Reader::through_relay(config)?;
    let log = LogClient::sync(&config.log, &config.state_dir, reader)?;
    trace(format!("log: checkpoint size {}", log.tree_head().size));
    let index = crate::logged_index::fetch(&config.cdn.url, &log)?;
    let ids: Vec<&str> = index
        .index
        .instances
        .iter()
        .map(|i| i.id.as_str())
        .collect();
    if ids.is_empty() {
        bail!("the key CDN lists no enclave instance");
    }
    let instance = ids[random_index(ids.len())?];
    let spec = PathSpec::from_config(config)?;
    let issuer = issuer_name(&config.issuer.url);
    let challenge = token_challenge(config)?;
    let source = TokenSource {
        issuer_url: &config.issuer.url,
        credential_file: &config.issuer.credential_file,
        issuer_name: &issuer,
        challenge: &challenge,
        batch: config.issuer.batch,
        low_water: min,
        log: &log,
    };
    let wallet = Wallet::for_user(&config.state_dir);
    let now = pp_translog::checkpoint::unix_now();
    // Counted as the refill counts: tokens of keys valid past the keys' overlap.
    let before = wallet.available_until(now, REFILL_HORIZON_SECS)?;
    let mut held = before;
    for _ in 0..MAX_REFILL_BATCHES {
        match wallet.refill_if_low(&source, now, || {
            // Not after an opt-out made while this refill runs.
            crate::consent::require_opt_in(&config.state_dir)?;
            crate::issuer_keys::fetch_via_relay(&spec, instance)
        })? {
            Refill::Enough(n) => {
                held = n;
                break;
            }
            Refill::Fetched { before, after } => {
                trace(format!("tokens: fetched a batch ({after} held)"));
                held = after;
                // Under a key that ends within the overlap: more batches would not count.
                if after <= before {
                    break;
                }
            }
        }
    }
    Ok((before, held))
}
