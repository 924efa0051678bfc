//! End-to-end attack on issuer key consistency: the operator's gateway serves a fresh issuer key
//! that is not in the log (as it would to single out one device or account). The device, with no
//! token left, fetches the directory through the relay and refuses the key before any token
//! request leaves.

use anyhow::{Context, Result};

use crate::stack::Stack;

/// The device's token file (tokens are kept per issuer key: the stack logs one key valid now).
pub fn wallet_file(stack: &Stack) -> Result<std::path::PathBuf> {
    let dir = stack.dir.join("device-state/tokens");
    std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|f| f.ok().map(|f| f.path()))
        .find(|p| p.extension().is_some_and(|e| e == "txt"))
        .with_context(|| format!("{} holds no token file", dir.display()))
}

/// Runs the attack and puts the stack back as it was.
pub fn attacks(stack: &mut Stack, summarize: &[&str]) -> Result<()> {
    let gateway = stack.gateway_addr.clone();
    let issuer = stack.issuer_addr.clone();
    let keys = stack.dir.join("issuer-keys.jsonl");
    let logged = std::fs::read(&keys)?;
    let tokens = stack.dir.join("device-state/tokens");
    let aside = stack.dir.join("device-state/tokens-aside");
    let fresh = stack.issuer_key_entries("issuer-fresh", &issuer)?;
    std::fs::write(&keys, fresh)?;
    stack.stop("pp-gateway");
    let restart = |stack: &mut Stack| -> Result<()> {
        let (got, _) = stack.start_gateway_at(&gateway, &issuer)?;
        anyhow::ensure!(got == gateway, "the gateway came back on another address");
        Ok(())
    };
    restart(stack)?;
    // No token left: the device must fetch, so it reads the directory.
    std::fs::rename(&tokens, &aside)?;
    let result = stack.pp(summarize);
    std::fs::rename(&aside, &tokens)?;
    std::fs::write(&keys, logged)?;
    stack.stop("pp-gateway");
    restart(stack)?;
    let (ok, out, err) = result?;
    let needle = "issuer key not in the log";
    anyhow::ensure!(
        !ok && err.contains(needle),
        "a gateway serving an unlogged issuer key: expected a refusal containing {needle:?}, \
         got:\n{err}{out}"
    );
    println!(
        "e2e: a gateway serving a fresh issuer key not in the log: refused ({})",
        err.trim().lines().next().unwrap_or("")
    );
    Ok(())
}
