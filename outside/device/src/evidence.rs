//! Tamper alerts: when the device catches the log (or the gateway) misbehaving it writes a
//! self-contained evidence file ([`pp_translog::evidence`]) into its state folder and names it
//! in its error, and `pp check-evidence FILE` verifies such a file offline.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pp_translog::ConsistencyProof;
use pp_translog::checkpoint::{ALG_ED25519, NoteKey};
use pp_translog::evidence::{Evidence, EvidenceFile, LogAnswer};

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
        Evidence::InconsistentHeads(_) => "inconsistent-heads",
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
/// report with the configured roots. An inconsistent-heads file proves nothing offline; with
/// `log_url` the log is asked for a consistency proof between its two sizes ([`ask_log`]).
pub fn check(
    path: &Path,
    config: std::result::Result<&Config, String>,
    log_url: Option<&str>,
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
        Evidence::InconsistentHeads(heads) => heads.log_vkey.clone(),
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
    if let (Evidence::InconsistentHeads(heads), Some(url)) = (&file.evidence, log_url) {
        let log = match NoteKey::parse_vkey(&heads.log_vkey, ALG_ED25519) {
            Ok(log) => log,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let (old, new) = match heads.heads(&log) {
            Ok(sizes) => sizes,
            Err(why) => return Ok(Err(why)),
        };
        let answer = ask_log(url, old.size, new.size)?;
        return Ok(heads.judge(&log, &answer).map(|proven| match configured {
            Some(_) => format!("{proven} (the configured log's key; asked {url})"),
            None => format!(
                "{proven}\nnote: no configuration was read, so the log key in the file ({named}) \
                 was not compared with the log you trust"
            ),
        }));
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

/// Asks the log at `url` for a consistency proof from size `old` to size `new`
/// (`GET /proof/consistency?from=&to=`). An answer with an HTTP error status (4xx) or a body
/// that is not a proof is [`LogAnswer::NoProof`]; a log that cannot be reached, or that answers
/// 5xx (down, not refusing), is an error: it was not asked.
pub fn ask_log(url: &str, old: u64, new: u64) -> Result<LogAnswer> {
    use std::io::Read;
    let url = format!(
        "{}/proof/consistency?from={old}&to={new}",
        url.trim_end_matches('/')
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .get(&url)
        .call()
        .with_context(|| format!("could not ask the log: cannot reach {url}"))?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(crate::fetch::MAX_BODY)
        .read_to_end(&mut body)
        .with_context(|| format!("could not ask the log: reading the answer of {url}"))?;
    let said = || {
        let text = String::from_utf8_lossy(&body);
        text.trim().chars().take(200).collect::<String>()
    };
    Ok(match status {
        200 => match ConsistencyProof::from_json(&body) {
            Ok(proof) => LogAnswer::Proof(proof),
            Err(e) => LogAnswer::NoProof(format!("its answer is not a consistency proof: {e}")),
        },
        500.. => anyhow::bail!(
            "could not ask the log: {url} answered HTTP {status}: {}",
            said()
        ),
        _ => LogAnswer::NoProof(format!("{url} answered HTTP {status}: {}", said())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pp_services::loopback::WitnessedLog;
    use pp_translog::Log;
    use pp_translog::evidence::InconsistentHeads;

    const ORIGIN: &str = "log.pp.test";

    /// Two branches of one log key: the served one (`one`, `two`) and another (`uno`, `dos`).
    #[test]
    fn inconsistent_heads_are_proven_only_when_the_log_cannot_prove_consistency() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("log.key");
        let mut a = Log::open(&dir.path().join("a.bin"), &key).unwrap();
        let mut b = Log::open(&dir.path().join("b.bin"), &key).unwrap();
        a.append(b"one").unwrap();
        b.append(b"uno").unwrap();
        let remembered = a.checkpoint_note(ORIGIN).unwrap();
        a.append(b"two").unwrap();
        b.append(b"dos").unwrap();
        let (grown, split) = (
            a.checkpoint_note(ORIGIN).unwrap(),
            b.checkpoint_note(ORIGIN).unwrap(),
        );
        let vkey = a.vkey(ORIGIN).unwrap();
        let served = WitnessedLog::start(dir.path(), a, "secret").unwrap();
        let write = |name: &str, offered: &str| {
            let file =
                EvidenceFile::new(Evidence::InconsistentHeads(Box::new(InconsistentHeads {
                    log_vkey: vkey.clone(),
                    remembered: remembered.clone(),
                    offered: offered.into(),
                    recomputed_root: "00".repeat(32),
                })));
            let path = dir.path().join(name);
            std::fs::write(&path, file.to_json()).unwrap();
            path
        };
        let no_config = || Err("not read".to_string());
        let (honest, forked) = (write("honest.json", &grown), write("split.json", &split));
        // Offline: never proven, and it says why.
        let offline = check(&forked, no_config(), None).unwrap().unwrap_err();
        assert!(
            offline.contains("an offline check cannot prove they are inconsistent"),
            "{offline}"
        );
        // Asked, the log proves the honest extension: not proven.
        let why = check(&honest, no_config(), Some(&served.url))
            .unwrap()
            .unwrap_err();
        assert!(why.contains("gives a valid consistency proof"), "{why}");
        // The other branch: no valid proof exists.
        let proven = check(&forked, no_config(), Some(&served.url))
            .unwrap()
            .unwrap();
        assert!(proven.starts_with("PROVEN: log"), "{proven}");
        assert!(proven.contains("its proof does not verify"), "{proven}");
        // A log that cannot be reached was not asked: an error, not a verdict.
        let err = check(&forked, no_config(), Some("http://127.0.0.1:1")).unwrap_err();
        assert!(
            format!("{err:#}").contains("could not ask the log"),
            "{err:#}"
        );
    }
}
