//! Tamper alerts: when the device catches the log (or the gateway) misbehaving it writes a
//! self-contained evidence file ([`pp_translog::evidence`]) into its state folder and names it
//! in its error, and `pp check-evidence FILE` verifies such a file offline.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pp_translog::evidence::{Evidence, EvidenceFile};

use crate::config::Config;
use crate::instances::Roots;

/// Writes `evidence` to a new file in `state_dir/evidence/`; returns its path.
pub fn write(state_dir: &Path, evidence: Evidence) -> Result<PathBuf> {
    let dir = state_dir.join("evidence");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let kind = match &evidence {
        Evidence::LogFork { .. } => "log-fork",
        Evidence::RevokedRelease { .. } => "revoked-release",
        Evidence::StaleCheckpoint { .. } => "stale-checkpoint",
        Evidence::SwappedEnclave(_) => "swapped-enclave",
    };
    let mut nonce = [0u8; 4];
    getrandom::fill(&mut nonce).map_err(|_| anyhow::anyhow!("no randomness"))?;
    let path = dir.join(format!(
        "{kind}-{}-{}.json",
        pp_translog::checkpoint::unix_now(),
        hex::encode(nonce)
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(EvidenceFile::new(evidence).to_json().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The sentence every tamper error ends with.
pub fn pointer(path: &Path) -> String {
    format!(
        "evidence written to {}; check it with `pp check-evidence {}`",
        path.display(),
        path.display()
    )
}

/// Writes `evidence` and returns the pointer sentence, or says why it could not be written.
pub fn record(state_dir: &Path, evidence: Evidence) -> String {
    match write(state_dir, evidence) {
        Ok(path) => pointer(&path),
        Err(e) => format!("the evidence could not be written: {e:#}"),
    }
}

/// `pp check-evidence FILE`: `Ok(Ok(text))` proven, `Ok(Err(why))` not proven, `Err` unreadable.
/// The file names the log's key itself, so anyone could make one with a key of their own: with
/// `config` (`Err`: why it could not be read) a file about another log key than the configured
/// one proves nothing; without it the text says the key was not compared. A swapped-enclave file
/// needs the configuration: its checkpoint is checked with the configured witnesses and its
/// report with the configured roots.
pub fn check(
    path: &Path,
    config: std::result::Result<&Config, String>,
) -> Result<std::result::Result<String, String>> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = match EvidenceFile::from_json(&text) {
        Ok(f) => f,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let named = match &file.evidence {
        Evidence::LogFork { log_vkey, .. }
        | Evidence::RevokedRelease { log_vkey, .. }
        | Evidence::StaleCheckpoint { log_vkey, .. } => log_vkey.clone(),
        Evidence::SwappedEnclave(swapped) => swapped.log_vkey.clone(),
    };
    let (configured, unread) = match config {
        Ok(c) => {
            let trust = c.log.trust_policy().map_err(|e| {
                anyhow::anyhow!("the configuration's log key cannot be used: {e:#}")
            })?;
            (Some((c, trust)), String::new())
        }
        Err(why) => (None, why),
    };
    if let Some((_, trust)) = &configured
        && trust.log.to_vkey() != named
    {
        return Ok(Err(format!(
            "the file is about the log with key {named}, not the configured log ({}): \
             anyone can sign with a key of their own",
            trust.log.to_vkey()
        )));
    }
    if let Evidence::SwappedEnclave(swapped) = &file.evidence {
        let Some((config, trust)) = &configured else {
            return Ok(Err(format!(
                "a swapped-enclave file is checked with the configured log, witnesses and \
                 trusted roots, and the configuration cannot be read: {unread}"
            )));
        };
        let roots = Roots::from_config(&config.trust)?;
        return Ok(crate::swap_evidence::check(swapped, &roots, trust)
            .map(|proven| format!("{proven} (the configured log's key and trusted roots)")));
    }
    Ok(file
        .check()
        .map(|proven| match configured {
            Some(_) => format!("{proven} (the configured log's key)"),
            None => format!(
                "{proven}\nnote: no configuration was read, so the log key in the file ({named}) \
             was not compared with the log you trust"
            ),
        })
        .map_err(|e| e.to_string()))
}
