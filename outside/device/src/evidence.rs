//! Tamper alerts: when the device catches the log (or the gateway) misbehaving it writes a
//! self-contained evidence file ([`pp_translog::evidence`]) into its state folder and names it
//! in its error, and `pp check-evidence FILE` verifies such a file offline.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pp_translog::ConsistencyProof;
use pp_translog::checkpoint::{ALG_ED25519, NoteKey};
use pp_translog::evidence::{Evidence, EvidenceFile, MAX_EVIDENCE_LEN};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::instances::Roots;

/// Writes `evidence` to `state_dir/evidence/`, named by its kind and the SHA-256 of its text
/// (the same evidence is one file, not rewritten); returns its path. The text is first checked
/// to be a file `pp check-evidence` reads (size, strict parse): otherwise nothing is written.
pub fn write(state_dir: &Path, evidence: Evidence) -> Result<PathBuf> {
    let kind = kind(&evidence);
    let text = EvidenceFile::new(evidence).to_json();
    anyhow::ensure!(
        text.len() <= MAX_EVIDENCE_LEN,
        "the evidence would be {} bytes, more than `pp check-evidence` reads ({MAX_EVIDENCE_LEN})",
        text.len()
    );
    EvidenceFile::from_json(text.as_bytes())
        .context("the evidence would not parse back as an evidence file")?;
    let dir = state_dir.join("evidence");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let digest = hex::encode(Sha256::digest(text.as_bytes()));
    let path = dir.join(format!("{kind}-{}.json", &digest[..32]));
    if std::fs::read(&path).is_ok_and(|kept| kept == text.as_bytes()) {
        return Ok(path);
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The file-name prefix of each kind (its `kind` in the file).
fn kind(evidence: &Evidence) -> &'static str {
    match evidence {
        Evidence::LogFork { .. } => "log-fork",
        Evidence::RevokedRelease { .. } => "revoked-release",
        Evidence::StaleCheckpoint { .. } => "stale-checkpoint",
        Evidence::SwappedEnclave(_) => "swapped-enclave",
        Evidence::InconsistentHeads(_) => "inconsistent-heads",
    }
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
        Err(e) => format!("no evidence file was written: {e:#}"),
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
    if log_url.is_some() && !matches!(file.evidence, Evidence::InconsistentHeads(_)) {
        anyhow::bail!(
            "--log-url is only for inconsistent-heads files; this one is a {} file, checked \
             offline: run it without --log-url",
            kind(&file.evidence)
        );
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
        // Only the log the checker trusts may answer: any other server can serve the log's
        // public checkpoint and a broken proof.
        let Some((config, _)) = &configured else {
            anyhow::bail!(
                "UNRESOLVED: --log-url asks the configured log, and the configuration cannot be \
                 read: {unread}"
            );
        };
        if url.trim_end_matches('/') != config.log.url.trim_end_matches('/') {
            anyhow::bail!(
                "UNRESOLVED: --log-url must be the configured log's URL ({}), not {url}: an \
                 answer from any other server proves nothing about the log",
                config.log.url
            );
        }
        let log = match NoteKey::parse_vkey(&heads.log_vkey, ALG_ED25519) {
            Ok(log) => log,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let (old, new) = match heads.heads(&log) {
            Ok(sizes) => sizes,
            Err(why) => return Ok(Err(why)),
        };
        let answer = match ask_log(url, &log, old.size, new.size) {
            Ok(answer) => answer,
            Err(why) => anyhow::bail!("UNRESOLVED: {why}"),
        };
        return Ok(heads
            .judge(&log, &answer)
            .map(|proven| format!("{proven} (the configured log's key; asked {url})")));
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

/// Asks the log at `url` (the caller passes only the configured log's URL: a signed checkpoint
/// is public, so serving one does not show a server is the log) for a consistency proof from
/// size `old` to size `new` (`GET /proof/consistency?from=&to=`). Only an answer that can prove
/// something is returned: `url` is https (or a loopback address, for tests), it serves a
/// `/checkpoint` signed by `log` of size at least `new` (its history covers both sizes), and the
/// consistency request answers HTTP 200 with a proof for exactly (`old`, `new`).
/// Anything else (unreachable, another status, a redirect, a body that does not parse, a proof
/// for other sizes) is `Err(why)`: unresolved, neither proven nor cleared. No server text is
/// quoted back.
pub fn ask_log(
    url: &str,
    log: &NoteKey,
    old: u64,
    new: u64,
) -> std::result::Result<ConsistencyProof, String> {
    use std::io::Read;
    let base = url.trim_end_matches('/');
    if !secure_or_loopback(base) {
        return Err(
            "could not ask the log: the log URL must be https (or http on a loopback address): \
             an answer over plain http could have been altered on the way"
                .into(),
        );
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let get = |path: &str| -> std::result::Result<Vec<u8>, String> {
        let at = format!("{base}{path}");
        let response = agent
            .get(&at)
            .call()
            .map_err(|e| format!("could not ask the log: cannot reach {at}: {e}"))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(format!(
                "could not ask the log: {at} answered HTTP {status}, not 200 with an answer"
            ));
        }
        let mut body = Vec::new();
        response
            .into_body()
            .into_reader()
            .take(crate::fetch::MAX_BODY)
            .read_to_end(&mut body)
            .map_err(|e| format!("could not ask the log: reading the answer of {at}: {e}"))?;
        Ok(body)
    };
    let head = get("/checkpoint")?;
    let (current, _) = pp_translog::checkpoint::open_log_signed(&head, log).map_err(|e| {
        format!(
            "could not ask the log: {base}/checkpoint is not a checkpoint signed by the log: {e}"
        )
    })?;
    if current.size < new {
        return Err(format!(
            "could not ask the log: its current checkpoint (size {}) does not cover size {new}",
            current.size
        ));
    }
    let body = get(&format!("/proof/consistency?from={old}&to={new}"))?;
    let proof = ConsistencyProof::from_json(&body).map_err(|e| {
        format!("could not ask the log: its answer is not a consistency proof: {e}")
    })?;
    if proof.old_size != old || proof.new_size != new {
        return Err(format!(
            "could not ask the log: it answered with a proof for sizes {} to {} instead of {old} \
             to {new}",
            proof.old_size, proof.new_size
        ));
    }
    Ok(proof)
}

/// Whether `url` is https, or http to a loopback address (`127.0.0.0/8`, `[::1]`, `localhost`).
fn secure_or_loopback(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("https://") {
        return !rest.is_empty();
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
        // A configuration trusting this log at `url` (the only URL --log-url may name).
        let config_at = |url: &str| -> Config {
            toml::from_str(&format!(
                "state_dir = \"s\"\n\
                 [relay]\naddress = \"127.0.0.1:1\"\nserver_name = \"relay\"\n\
                 [gateway]\nauthority = \"gw:443\"\nserver_name = \"gw\"\n\
                 [issuer]\nurl = \"http://issuer\"\ncredential_file = \"c\"\n\
                 [cdn]\nurl = \"http://cdn\"\n\
                 [log]\nurl = \"{url}\"\npublic_key = \"{}\"\norigin = \"{ORIGIN}\"\n\
                 witnesses = [\"{}\"]\n",
                served.public_key_hex, served.witness_vkey
            ))
            .unwrap()
        };
        let at = config_at(&served.url);
        let (honest, forked) = (write("honest.json", &grown), write("split.json", &split));
        // Offline: never proven, and it says why.
        let offline = check(&forked, no_config(), None).unwrap().unwrap_err();
        assert!(
            offline.contains("an offline check cannot prove they are inconsistent"),
            "{offline}"
        );
        // Asked, the log proves the honest extension: not proven.
        let why = check(&honest, Ok(&at), Some(&served.url))
            .unwrap()
            .unwrap_err();
        assert!(why.contains("gives a valid consistency proof"), "{why}");
        // The other branch: no valid proof exists.
        let proven = check(&forked, Ok(&at), Some(&served.url)).unwrap().unwrap();
        assert!(proven.starts_with("PROVEN: log"), "{proven}");
        assert!(
            proven.contains("the answer was a proof for exactly these sizes that does not verify"),
            "{proven}"
        );
        // Any other server (serving the log's public checkpoint and a broken proof) is not
        // asked: only the configured log's URL, and only with the configuration read.
        let head = grown.clone();
        let impostor = fake_log(move |path| {
            if path == "/checkpoint" {
                (200, head.clone())
            } else {
                (200, "{\"old_size\":1,\"new_size\":2,\"path\":[]}".into())
            }
        });
        let err = format!(
            "{:#}",
            check(&forked, Ok(&at), Some(&impostor)).unwrap_err()
        );
        assert!(err.contains("must be the configured log's URL"), "{err}");
        let err = format!(
            "{:#}",
            check(&forked, no_config(), Some(&served.url)).unwrap_err()
        );
        assert!(err.contains("the configuration cannot be read"), "{err}");
        // Answers that prove nothing leave it unresolved (an error, exit 2), never proven.
        let unresolved = |url: &str| {
            let config = config_at(url);
            let err = format!("{:#}", check(&forked, Ok(&config), Some(url)).unwrap_err());
            assert!(
                err.starts_with("UNRESOLVED: could not ask the log"),
                "{err}"
            );
            err
        };
        let head = grown.clone();
        // Not the log: 404 for everything.
        let err = unresolved(&fake_log(|_| (404, "not found".into())));
        assert!(err.contains("answered HTTP 404"), "{err}");
        // The log's head, but a consistency answer that does not parse.
        let err = unresolved(&fake_log(move |path| {
            if path == "/checkpoint" {
                (200, head.clone())
            } else {
                (200, "{\"garbage\": 1}".into())
            }
        }));
        assert!(err.contains("not a consistency proof"), "{err}");
        // A redirect, not followed.
        let err = unresolved(&fake_log(|_| (302, String::new())));
        assert!(err.contains("answered HTTP 302"), "{err}");
        // A head not signed by the log.
        let err = unresolved(&fake_log(|_| (200, "hello\n".into())));
        assert!(err.contains("not a checkpoint signed by the log"), "{err}");
        // Plain http to another host is not asked at all.
        let err = unresolved("http://log.example.invalid");
        assert!(err.contains("must be https"), "{err}");
        // --log-url on another kind is an error, not silently ignored.
        let fork = dir.path().join("stale.json");
        std::fs::write(
            &fork,
            EvidenceFile::new(Evidence::LogFork {
                log_vkey: vkey.clone(),
                remembered: grown.clone(),
                offered: split.clone(),
            })
            .to_json(),
        )
        .unwrap();
        let err = format!(
            "{:#}",
            check(&fork, Ok(&at), Some(&served.url)).unwrap_err()
        );
        assert!(
            err.contains("--log-url is only for inconsistent-heads"),
            "{err}"
        );
        // A log that cannot be reached was not asked: an error, not a verdict.
        let err = check(
            &forked,
            Ok(&config_at("http://127.0.0.1:1")),
            Some("http://127.0.0.1:1"),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("could not ask the log"),
            "{err:#}"
        );
    }

    /// Evidence a checker would refuse (too large) is not written, and says why; the same
    /// evidence twice is one file.
    #[test]
    fn only_readable_evidence_is_written_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let fork = |offered: &str| Evidence::LogFork {
            log_vkey: "k".into(),
            remembered: "r".into(),
            offered: offered.into(),
        };
        // Each control character is escaped to six bytes in the JSON text.
        let said = record(dir.path(), fork(&"\u{1}".repeat(50_000)));
        assert!(
            said.starts_with("no evidence file was written: the evidence would be")
                && said.contains("more than `pp check-evidence` reads (262144)"),
            "{said}"
        );
        assert!(
            !dir.path().join("evidence").exists()
                || std::fs::read_dir(dir.path().join("evidence"))
                    .unwrap()
                    .count()
                    == 0
        );
        let first = write(dir.path(), fork("o")).unwrap();
        let again = write(dir.path(), fork("o")).unwrap();
        assert_eq!(first, again);
        let other = write(dir.path(), fork("p")).unwrap();
        assert_ne!(first, other);
        assert_eq!(
            std::fs::read_dir(dir.path().join("evidence"))
                .unwrap()
                .count(),
            2
        );
    }

    /// A loopback HTTP server answering every request with `answer(path)`: (status, body).
    fn fake_log(answer: impl Fn(&str) -> (u16, String) + Send + 'static) -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                let path = path.split('?').next().unwrap_or("").to_string();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
                        break;
                    }
                }
                let (status, body) = answer(&path);
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nLocation: http://127.0.0.1:1/\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        url
    }
}
