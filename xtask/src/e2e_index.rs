//! The end-to-end attacks of issue 13 §2 and §4 on the running stack: a key CDN that shows this
//! device an index of its own (an unlogged unique instance id; an older logged index with a single
//! instance; ids not derived from the key configuration), and receipts re-verified offline with
//! `pp check-receipt`, untouched and altered.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::stack::Stack;

/// Runs the attacks; leaves the CDN serving a freshly logged honest index.
pub fn attacks(stack: &Stack, thread: &str) -> Result<()> {
    // The session path: the end-to-end test has one instance down by now, which it retries around.
    let summarize = ["summarize", thread, "-k", "2", "--session"];
    let refused = |what: &str, needle: &str| -> Result<()> {
        let (ok, out, err) = stack.pp(&summarize)?;
        if ok || !err.contains(needle) {
            bail!("{what}: expected a refusal containing {needle:?}, got:\n{err}{out}");
        }
        println!(
            "e2e: {what}: refused ({})",
            err.trim().lines().next().unwrap_or("")
        );
        Ok(())
    };
    let cdn = stack.dir.join("cdn");
    let index_path = cdn.join("enclaves.json");
    let honest: Value = serde_json::from_slice(&std::fs::read(&index_path)?)?;
    // Each index the operator logs needs its own bytes: a later publication time.
    let mut published = honest["published"].as_u64().context("no published time")?;
    let mut next = |mut index: Value| {
        published += 1;
        index["published"] = published.into();
        index
    };

    // Receipts: the last answered request's receipt checks offline; altered, it is refused.
    check_receipts(stack)?;

    // 1. A unique instance id for this device: an index the log does not hold.
    let mut unique = honest.clone();
    let fake = Sha256::digest(b"an instance only this device is shown");
    unique["instances"][0]["id"] = format!("i-{}", hex::encode(&fake[..8])).into();
    unique["instances"][0]["key_config_sha256"] = hex::encode(fake).into();
    write(&index_path, &unique)?;
    refused(
        "a CDN index with an unlogged unique instance id",
        "the key CDN's index is not in the transparency log",
    )?;

    // 2. A single instance for this device: logged once, then the operator logs the full index
    //    for everyone; the CDN keeps serving this device the single-instance one.
    let mut single = next(honest.clone());
    single["instances"]
        .as_array_mut()
        .context("no instances")?
        .truncate(1);
    let single_path = cdn.join("single.json");
    write(&single_path, &single)?;
    stack.append_to_log(&single_path)?;
    let full = next(honest.clone());
    let full_path = cdn.join("full.json");
    write(&full_path, &full)?;
    stack.append_to_log(&full_path)?;
    std::fs::copy(&single_path, &index_path)?;
    refused(
        "a CDN serving an older logged index with a single instance",
        "the key CDN served an old index",
    )?;

    // 3. Ids not derived from the key configuration, logged by the operator. (a) An id that does
    //    not match the listed key-configuration hash: the index itself is refused.
    let mut odd = next(honest.clone());
    odd["instances"][0]["id"] = "i-0000000000000000".into();
    write(&index_path, &odd)?;
    stack.append_to_log(&index_path)?;
    refused(
        "a logged CDN index with an id not derived from its key configuration",
        "not derived from its key configuration",
    )?;
    // (b) Id and hash consistent but of another key: the evidence's key configuration differs.
    let mut other = next(honest.clone());
    for (n, instance) in other["instances"]
        .as_array_mut()
        .context("no instances")?
        .iter_mut()
        .enumerate()
    {
        let old_id = instance["id"].as_str().context("no id")?.to_string();
        let key = Sha256::digest(format!("another key {n}"));
        let id = format!("i-{}", hex::encode(&key[..8]));
        std::fs::copy(
            cdn.join(format!("evidence/{old_id}.bin")),
            cdn.join(format!("evidence/{id}.bin")),
        )?;
        instance["id"] = id.into();
        instance["key_config_sha256"] = hex::encode(key).into();
    }
    write(&index_path, &other)?;
    stack.append_to_log(&index_path)?;
    refused(
        "a logged CDN index whose ids are derived from keys the evidence does not attest",
        "is not derived from the key configuration its evidence attests",
    )?;

    // The operator publishes and logs the honest index again: served, it is used.
    write(&index_path, &next(honest))?;
    stack.append_to_log(&index_path)?;
    let (ok, out, err) = stack.pp(&summarize)?;
    anyhow::ensure!(
        ok,
        "the newest logged honest index was not used:\n{err}{out}"
    );
    println!("e2e: the newest logged honest index: ok");
    Ok(())
}

fn write(path: &Path, index: &Value) -> Result<()> {
    Ok(std::fs::write(path, serde_json::to_vec(index)?)?)
}

/// `pp check-receipt` on the newest receipt of a session (its nonce and exporter are among the
/// fields altered; one-shot receipts have none), then on copies with one field or file altered.
fn check_receipts(stack: &Stack) -> Result<()> {
    let dir = stack.dir.join("device-state/receipts");
    let receipt = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p.to_string_lossy().ends_with(".release.json")
                && !p.to_string_lossy().ends_with(".index.json")
                && std::fs::read_to_string(p).is_ok_and(|t| t.contains("\"nonce_hex\""))
        })
        .max()
        .context("no receipt of a session was written")?;
    let arg = receipt.display().to_string();
    let (ok, out, err) = stack.pp(&["check-receipt", &arg])?;
    anyhow::ensure!(
        ok && out.contains("Receipt checks"),
        "a valid receipt did not check:\n{err}{out}"
    );
    println!("e2e: pp check-receipt of a receipt: ok");
    let original: Value = serde_json::from_slice(&std::fs::read(&receipt)?)?;
    let altered = dir.join("altered.json");
    let flip = |v: &Value| -> Value {
        let s = v.as_str().unwrap_or_default();
        let last = if s.ends_with('0') { "1" } else { "0" };
        format!("{}{last}", &s[..s.len() - 1]).into()
    };
    let cases: [(&str, &str); 4] = [
        (
            "measurement_hex",
            "the receipt's measurement is not the report's",
        ),
        (
            "report_sha256",
            "attestation report kept beside the receipt is not the one",
        ),
        (
            "nonce_hex",
            "the receipt's attestation report does not verify",
        ),
        ("log_id_hex", "names another log"),
    ];
    for (field, needle) in cases {
        let mut bad = original.clone();
        bad[field] = flip(&original[field]);
        std::fs::write(&altered, serde_json::to_vec(&bad)?)?;
        let (ok, out, err) = stack.pp(&["check-receipt", &altered.display().to_string()])?;
        if ok || !err.contains(needle) {
            bail!("a receipt with {field} altered: expected {needle:?}, got:\n{err}{out}");
        }
        println!("e2e: pp check-receipt with {field} altered: refused");
    }
    let mut bad = original.clone();
    bad["release"]["log_index"] =
        (original["release"]["log_index"].as_u64().unwrap_or(0) + 1).into();
    std::fs::write(&altered, serde_json::to_vec(&bad)?)?;
    let (ok, _, err) = stack.pp(&["check-receipt", &altered.display().to_string()])?;
    anyhow::ensure!(
        !ok && err.contains("release manifest's inclusion proof does not verify"),
        "a receipt with the release's log index altered was not refused:\n{err}"
    );
    println!("e2e: pp check-receipt with the release's log index altered: refused");
    std::fs::remove_file(&altered)?;
    Ok(())
}
