//! The end-to-end attacks on one view of the log (issue 13 §3), on the running stack after
//! `e2e::test`'s own fork attack: that fork's evidence file checks (and a doctored copy does
//! not); a consistent extension the witness has not seen, a stale head and too few
//! cosignatures are refused; a revoked release is refused, with evidence that checks.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::stack::Stack;

/// Runs the attacks; `summarize` are `pp`'s arguments for one request, `manifest` the logged
/// release manifest, `unlogged` a manifest the honest log does not hold.
pub fn attacks(
    stack: &mut Stack,
    summarize: &[&str],
    manifest: &Path,
    unlogged: &Path,
) -> Result<()> {
    let refused = |stack: &Stack, what: &str, needle: &str| -> Result<String> {
        let (ok, out, err) = stack.pp(summarize)?;
        if ok || !err.contains(needle) {
            bail!("{what}: expected a refusal containing {needle:?}, got:\n{err}{out}");
        }
        println!(
            "e2e: {what}: refused ({})",
            err.trim().lines().next().unwrap_or("")
        );
        Ok(err)
    };
    let answered = |stack: &Stack, what: &str| -> Result<()> {
        let (ok, out, err) = stack.pp(summarize)?;
        anyhow::ensure!(ok, "{what}: pp failed:\n{err}{out}");
        println!("e2e: {what}: ok");
        Ok(())
    };

    // The fork attack before this left a log-fork evidence file: it proves the fork offline,
    // and a copy with one root changed proves nothing.
    let fork = newest_evidence(stack, "log-fork")?;
    check_evidence(stack, &fork, true, "signed two different trees")?;
    let text = std::fs::read_to_string(&fork)?;
    let doctored = stack.dir.join("doctored-fork.json");
    std::fs::write(&doctored, doctor(&text)?)?;
    check_evidence(stack, &doctored, false, "NOT PROVEN")?;
    println!("e2e: pp check-evidence: the fork proven, a doctored copy refused");

    // The honest log is back and grows by one entry, which its witness cosigns. A fork that
    // keeps what this device saw and appends another manifest is a consistent extension of
    // the device's view, but no witness cosigned it.
    stack.restore_log()?;
    let seen = stack.log_entries()?;
    let filler = stack.dir.join("filler.json");
    std::fs::write(
        &filler,
        "{\"schema\":\"pp-e2e-note/1\",\"text\":\"growth\"}",
    )?;
    stack.log_operator("append", &[&filler.display().to_string()])?;
    stack.fork_log_at(seen, unlogged)?;
    refused(
        stack,
        "a log extension with another manifest that the witness has not seen",
        "valid witness cosignature(s) of the 1 required",
    )?;
    stack.restore_log()?;
    answered(stack, "the honest, witnessed log again")?;

    // A stale head: the device accepts cosignatures at most 1 s old.
    let config = std::fs::read_to_string(&stack.config)?;
    let with_log_line = |line: &str| config.replacen("[log]\n", &format!("[log]\n{line}\n"), 1);
    std::fs::write(&stack.config, with_log_line("max_age_secs = 1"))?;
    std::thread::sleep(std::time::Duration::from_secs(3));
    refused(stack, "a stale tree head", "stale tree head")?;
    // Too few cosignatures: two witnesses required, the log has one.
    // A second witness the log never asked (its key is RFC 8032's test key 2).
    let other = "pp.example/other-witness+b359c2c8+BD1AF8PoQ4lakrcKp00bfrycmCzPLsSWjMDNVfEq9GYM";
    let two = config
        .replacen("[log]\n", "[log]\nwitness_threshold = 2\n", 1)
        .replacen("witnesses = [", &format!("witnesses = [\"{other}\", "), 1);
    std::fs::write(&stack.config, two)?;
    refused(
        stack,
        "a tree head with too few witness cosignatures",
        "1 valid witness cosignature(s) of the 2 required",
    )?;
    std::fs::write(&stack.config, &config)?;

    // The operator revokes the release: the device refuses it and keeps the evidence.
    let release_ref = release_ref(manifest)?;
    stack.log_operator(
        "revoke",
        &[
            "--release-ref",
            &release_ref,
            "--reason",
            "e2e: TCB bulletin",
        ],
    )?;
    let err = refused(
        stack,
        "a revoked release",
        "was revoked in the log at index",
    )?;
    anyhow::ensure!(
        err.contains("check it with `pp check-evidence"),
        "the refusal does not name its evidence:\n{err}"
    );
    let revoked = newest_evidence(stack, "revoked-release")?;
    check_evidence(stack, &revoked, true, "a revocation of release")?;
    println!("e2e: the revocation's evidence: proven");
    Ok(())
}

/// The newest evidence file of `kind` the device wrote.
pub(crate) fn newest_evidence(stack: &Stack, kind: &str) -> Result<PathBuf> {
    let dir = stack.dir.join("device-state/evidence");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("no evidence folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(kind))
        })
        .collect();
    files.sort();
    files
        .pop()
        .with_context(|| format!("no {kind} evidence in {}", dir.display()))
}

/// `pp check-evidence FILE`: expects success (`proven`) or failure, with `needle` in its output.
pub(crate) fn check_evidence(stack: &Stack, file: &Path, proven: bool, needle: &str) -> Result<()> {
    let (ok, out, err) = stack.pp(&["check-evidence", &file.display().to_string()])?;
    anyhow::ensure!(
        ok == proven && out.contains(needle),
        "pp check-evidence {}: expected {} with {needle:?}, got:\n{err}{out}",
        file.display(),
        if proven { "success" } else { "failure" }
    );
    Ok(())
}

/// The evidence with the second checkpoint's root line changed (its signature then fails).
fn doctor(text: &str) -> Result<String> {
    let mut v: serde_json::Value = serde_json::from_str(text)?;
    let offered = v["evidence"]["offered"]
        .as_str()
        .context("no offered checkpoint")?
        .to_string();
    let mut lines: Vec<String> = offered.split('\n').map(str::to_string).collect();
    let root = lines.get_mut(2).context("short checkpoint")?;
    let flipped = if root.starts_with('A') { "B" } else { "A" };
    root.replace_range(0..1, flipped);
    v["evidence"]["offered"] = serde_json::Value::String(lines.join("\n"));
    Ok(serde_json::to_string_pretty(&v)?)
}

fn release_ref(manifest: &Path) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(manifest)?)?;
    Ok(v["release_ref"]
        .as_str()
        .context("the manifest has no release_ref")?
        .to_string())
}
