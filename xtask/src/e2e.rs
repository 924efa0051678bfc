//! `cargo xtask demo` and the end-to-end test: two enclave instances, the outside services on
//! loopback, and the `pp` command through relay and gateway — then, for the test, the attacks the
//! device must refuse.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;

use anyhow::{Context, Result, bail};

use std::path::PathBuf;
use std::time::Duration;

use crate::qemu::Vm;
use crate::stack::{Instance, Stack};
use crate::{pins, smoke, test_root};

/// The enclave instances: the test image booted under QEMU (TCG), each with its own keys.
pub struct Enclaves {
    pub vms: Vec<Option<Vm>>,
    pub instances: Vec<Instance>,
}

/// Boots `count` instances of the test image (test attester, tiny models) and returns them with
/// the image's release manifest.
pub fn start_enclaves(
    root: &Path,
    pins: &pins::Pins,
    count: usize,
    image: Option<PathBuf>,
) -> Result<(Enclaves, PathBuf)> {
    let boot = crate::BootArgs {
        image,
        firmware: None,
        append: String::new(),
        test_image: true,
    };
    let dir = crate::image_dir(root, pins, &boot)?;
    let efi = crate::qemu::check_image_dir(&dir)?;
    let fw = crate::firmware::pinned(root)?;
    let mut enclaves = Enclaves {
        vms: Vec::new(),
        instances: Vec::new(),
    };
    for i in 0..count {
        let config = smoke::config_for(&efi, &fw, "")?;
        let mut vm = Vm::start(&config, false)?;
        vm.wait_for(
            "pp-workload: ready",
            smoke::FATAL_LINES,
            Duration::from_secs(180),
        )
        .with_context(|| format!("enclave instance i-{i} did not boot"))?;
        enclaves.vms.push(Some(vm));
        enclaves.instances.push(Instance {
            id: format!("i-{i}"),
            address: format!("127.0.0.1:{}", config.host_tls_port),
            oneshot_address: Some(format!("127.0.0.1:{}", config.host_oneshot_port)),
        });
    }
    Ok((enclaves, dir.join("manifest.json")))
}

/// The README's first command: everything on loopback, one summary and one set of suggestions.
pub fn demo(root: &Path, pins: &pins::Pins) -> Result<()> {
    let bin = crate::stack::build_binaries(root)?;
    // The image build prints its own progress; booting and starting services get a spinner.
    let boot = crate::BootArgs {
        image: None,
        firmware: None,
        append: String::new(),
        test_image: true,
    };
    crate::image_dir(root, pins, &boot)?;
    let (enclaves, manifest) = with_spinner(
        "booting two enclave instances under QEMU TCG (the test image: test attester, tiny models)",
        || start_enclaves(root, pins, 2, None),
    )?;
    let ark = test_root::ensure(root)?.join("ark.der");
    let dir = root.join("target/pp/demo");
    let stack = with_spinner(
        "starting the transparency log, key CDN, issuer, gateway and relay on loopback",
        || Stack::start(&bin, &dir, &manifest, &enclaves.instances, &ark),
    )?;
    let thread = root.join("docs/demo-thread.txt").display().to_string();
    println!(
        "\ndemo: part 1 — the test image's models are tiny random-weight stand-ins: the summary, picks and replies below are meaningless text"
    );
    run_pp(&stack, &thread, true)?;
    println!(
        "\ndemo: receipts are in {}",
        stack.dir.join("device-state/receipts.jsonl").display()
    );
    drop(stack);
    drop(enclaves);

    // The real models are far too slow under emulation (minutes per token): the same path, to the
    // same program running as a Linux process with the real weights blob of the release image.
    println!(
        "\ndemo: part 2 — the same path to an enclave instance with the real models (host mode)"
    );
    let real = crate::weights::ensure(root, crate::weights::Models::Real)?;
    crate::host_enclave::build(root)?;
    let enclave = with_spinner(
        "starting an enclave instance with the real models as a Linux process (test attester)",
        || crate::host_enclave::start(root, &real),
    )?;
    let dir = root.join("target/pp/demo-real");
    let instances = [Instance {
        id: "i-real".into(),
        address: enclave.address.clone(),
        oneshot_address: Some(enclave.oneshot_address.clone()),
    }];
    let stack = with_spinner(
        "starting the transparency log, key CDN, issuer, gateway and relay on loopback",
        || Stack::start(&bin, &dir, &manifest, &instances, &ark),
    )?;
    run_pp(&stack, &thread, false)?;
    println!(
        "\ndemo: done; receipts are in {}",
        stack.dir.join("device-state/receipts.jsonl").display()
    );
    Ok(())
}

/// The end-to-end test: the happy path, then each attack, each refused with a clear error.
pub fn test(root: &Path, pins: &pins::Pins, image: Option<PathBuf>) -> Result<()> {
    let bin = crate::stack::build_binaries(root)?;
    let (mut enclaves, manifest) = start_enclaves(root, pins, 2, image)?;
    let ark = test_root::ensure(root)?.join("ark.der");
    let mut stack = Stack::start(
        &bin,
        &root.join("target/pp/e2e"),
        &manifest,
        &enclaves.instances,
        &ark,
    )?;
    let thread = root.join("docs/demo-thread.txt").display().to_string();
    let summarize = ["summarize", thread.as_str(), "-k", "2"];
    // The attested TLS session path (the default is one-shot Oblivious HTTP).
    let session = ["summarize", thread.as_str(), "-k", "2", "--session"];

    let expect_ok = |stack: &Stack, what: &str| -> Result<String> {
        let (ok, out, err) = stack.pp(&summarize)?;
        if !ok || !out.contains("Key messages (2 of 12):") {
            bail!("{what}: pp failed:\n{err}{out}");
        }
        println!("e2e: {what}: ok");
        Ok(out)
    };
    let refused_on = |stack: &Stack, args: &[&str], what: &str, needle: &str| -> Result<()> {
        let (ok, out, err) = stack.pp(args)?;
        if ok || !err.contains(needle) {
            bail!("{what}: expected a refusal containing {needle:?}, got:\n{err}{out}");
        }
        println!(
            "e2e: {what}: refused ({})",
            err.trim().lines().next().unwrap_or("")
        );
        Ok(())
    };
    let expect_refused = |stack: &Stack, what: &str, needle: &str| -> Result<()> {
        refused_on(stack, &summarize, what, needle)
    };

    // Before the user opts in, nothing leaves the device: not even the log's checkpoint is read.
    let (ok, out, err) = stack.pp(&summarize)?;
    anyhow::ensure!(
        !ok && err.contains("AI features are off on this device")
            && !stack.dir.join("device-state/log-checkpoint.json").exists(),
        "pp summarize before opting in:\n{err}{out}"
    );
    println!("e2e: summarize before opting in: refused, nothing read or sent");
    let (ok, out, err) = stack.pp(&["opt-in"])?;
    anyhow::ensure!(
        ok && out.contains("AI features are on"),
        "pp opt-in:\n{err}{out}"
    );

    // The shipped pp, with the same configuration (which names the test ARK): it must refuse to
    // trust the test root rather than accept the test enclaves' evidence.
    let (ok, out, err) = stack.shipped_pp(&summarize)?;
    anyhow::ensure!(
        !ok && err.contains("trusts only AMD's roots"),
        "the shipped pp accepted a configured test root:\n{err}{out}"
    );
    println!("e2e: the shipped pp with a test root in its configuration: refused");

    let out = expect_ok(
        &stack,
        "summarize, one-shot through the OHTTP relay and gateway",
    )?;
    let (ok, out_session, err) = stack.pp(&session)?;
    anyhow::ensure!(
        ok && out_session.contains("Key messages (2 of 12):"),
        "summarize --session failed:\n{err}{out_session}"
    );
    println!("e2e: summarize --session, attested TLS through the CONNECT relay and gateway: ok");
    anyhow::ensure!(
        out.contains("Release logged at index 0"),
        "no log index in:\n{out}"
    );
    let receipts = std::fs::read_to_string(stack.dir.join("device-state/receipts.jsonl"))?;
    anyhow::ensure!(receipts.lines().count() == 2, "two receipts expected");
    let (ok, out, err) = stack.pp(&["suggest", &thread, "-n", "2"])?;
    anyhow::ensure!(
        ok && out.contains("Suggestions:"),
        "suggest failed:\n{err}{out}"
    );
    println!("e2e: suggest: ok");
    // A chat with Advanced Chat Privacy on: refused before anything is sent (no receipt added).
    let private = stack.dir.join("private-thread.txt");
    std::fs::write(
        &private,
        format!(
            "#! advanced-chat-privacy: on\n{}",
            std::fs::read_to_string(&thread)?
        ),
    )?;
    let private = private.display().to_string();
    let (ok, out, err) = stack.pp(&["summarize", &private, "-k", "2"])?;
    let after = std::fs::read_to_string(stack.dir.join("device-state/receipts.jsonl"))?;
    anyhow::ensure!(
        !ok && err.contains("Advanced Chat Privacy") && after.lines().count() == 3,
        "a chat with Advanced Chat Privacy on:\n{err}{out}"
    );
    println!("e2e: a chat with Advanced Chat Privacy on: refused, nothing sent");
    let manifest_arg = manifest.display().to_string();
    let (ok, out, err) = stack.pp(&["verify-release", &manifest_arg])?;
    anyhow::ensure!(
        ok && out.contains("is in the transparency log at index 0"),
        "verify-release failed:\n{err}{out}"
    );
    println!("e2e: verify-release of the logged manifest: ok");

    // Tokens fetched ahead of time, apart from any request (what a scheduler runs).
    let (ok, out, err) = stack.pp(&["tokens", "refill", "--min", "9"])?;
    anyhow::ensure!(
        ok && out.contains("Fetched tokens"),
        "pp tokens refill failed:\n{err}{out}"
    );
    let (ok, out, err) = stack.pp(&["tokens", "count"])?;
    let held: usize = out
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    anyhow::ensure!(
        ok && held >= 9,
        "pp tokens count after a refill:\n{err}{out}"
    );
    println!("e2e: pp tokens refill: ok ({held} tokens held)");

    // A reused token: put the spent tokens back in the wallet.
    let wallet = crate::e2e_keys::wallet_file(&stack)?;
    let before = std::fs::read(&wallet)?;
    expect_ok(&stack, "spend one more token")?;
    std::fs::write(&wallet, &before)?;
    expect_refused(&stack, "a reused token", "spent")?;

    // The gateway restarts: spent tokens stay spent, unspent ones stay valid.
    let gateway_addr = stack.gateway_addr.clone();
    let issuer_addr = stack.issuer_addr.clone();
    stack.stop("pp-gateway");
    restart_gateway(&mut stack, &gateway_addr, &issuer_addr)?;
    std::fs::write(&wallet, &before)?;
    expect_refused(&stack, "a spent token after a gateway restart", "spent")?;
    // The wallet now holds the rest of the batch issued before the restart.
    expect_ok(&stack, "a token issued before the gateway restart")?;

    // The gateway swaps the enclaves: the first instance's id is routed to the second and back.
    let published = stack.instances.clone();
    let mut swapped = published.clone();
    swapped.swap(0, 1);
    swapped[0].id = published[0].id.clone();
    swapped[1].id = published[1].id.clone();
    stack.write_instances(&swapped)?;
    stack.stop("pp-gateway");
    restart_gateway(&mut stack, &gateway_addr, &issuer_addr)?;
    refused_on(
        &stack,
        &session,
        "a gateway that swaps the enclave (session)",
        "other than instance",
    )?;
    expect_refused(
        &stack,
        "a gateway that forwards a one-shot request to another instance",
        "could not open the request",
    )?;
    stack.write_instances(&published)?;
    stack.stop("pp-gateway");
    restart_gateway(&mut stack, &gateway_addr, &issuer_addr)?;

    // The gateway connects to enclaves that attest the logged key configurations with genuine
    // reports of another measurement: refused, with evidence `pp check-evidence` proves.
    crate::e2e_swap::attack(&mut stack, &session, |stack| {
        stack.stop("pp-gateway");
        restart_gateway(stack, &gateway_addr, &issuer_addr)
    })?;

    // The one-shot path: the relay's and the gateway's refusals, and a replayed sealed request.
    crate::e2e_ohttp::relay_refusals(&stack)?;
    crate::e2e_ohttp::replay(&mut stack, &summarize, |stack| {
        stack.stop("pp-gateway");
        restart_gateway(stack, &gateway_addr, &issuer_addr)
    })?;

    // A relay whose upstream tampers with bytes.
    let tamper = tampering_proxy(&gateway_addr)?;
    let original = std::fs::read_to_string(&stack.config)?;
    stack.stop("pp-relay");
    let relay = restart_relay(&mut stack, &tamper)?;
    std::fs::write(&stack.config, replace_relay(&original, &relay))?;
    refused_on(
        &stack,
        &session,
        "a relay that tampers with bytes (session)",
        "TLS with the gateway failed",
    )?;
    stack.stop("pp-relay");
    let relay = restart_relay(&mut stack, &gateway_addr)?;
    std::fs::write(&stack.config, replace_relay(&original, &relay))?;
    expect_ok(&stack, "an honest relay again")?;

    // A killed enclave: on the session path the device retries on the other one (nothing was
    // sent to it yet); a one-shot request that picked it fails and is not resent.
    enclaves.vms[0] = None;
    let dead = published[0].id.clone();
    // The device picks an instance at random: ask until it has picked the dead one at least
    // once (and recovered), at most 12 times (all 12 avoiding it: p = 1/4096).
    let mut retried = false;
    for _ in 0..12 {
        let (ok, out, err) = stack.pp(&[
            "--verbose",
            "summarize",
            thread.as_str(),
            "-k",
            "2",
            "--session",
        ])?;
        anyhow::ensure!(
            ok,
            "a request failed with instance {dead} down:\n{err}{out}"
        );
        if err.contains(&format!("instance {dead} failed")) {
            retried = true;
            break;
        }
    }
    anyhow::ensure!(
        retried,
        "the device never chose the dead instance {dead} in 12 requests"
    );
    println!("e2e: instance {dead} killed: the device retried on the other");
    let mut refused = false;
    for _ in 0..12 {
        let (ok, out, err) = stack.pp(&summarize)?;
        if !ok {
            anyhow::ensure!(
                err.contains(&format!("could not reach instance {dead}"))
                    && err.contains("not resent"),
                "a one-shot request with instance {dead} down:\n{err}{out}"
            );
            refused = true;
            break;
        }
    }
    anyhow::ensure!(
        refused,
        "no one-shot request chose the dead instance {dead} in 12"
    );
    println!("e2e: instance {dead} killed: a one-shot request to it failed and was not resent");
    // The instance stays down: what follows takes the session path, which retries around it.
    crate::e2e_keys::attacks(&mut stack, &session)?;

    crate::e2e_index::attacks(&stack, &thread)?;

    // A CDN that serves a key for an unlogged release (at the path the logged index implies).
    let manifest_text = std::fs::read_to_string(&manifest)?;
    // The same manifest with one more byte: valid JSON, but not the bytes the log holds.
    let unlogged = format!("{manifest_text} ");
    std::fs::write(stack.dir.join("cdn/releases/unlogged.json"), &unlogged)?;
    let release_path = std::fs::read_dir(stack.dir.join("cdn/releases"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| !p.ends_with("unlogged.json"))
        .context("the CDN holds no release manifest")?;
    std::fs::write(&release_path, &unlogged)?;
    expect_refused(
        &stack,
        "a CDN that serves an unlogged release",
        "not in the transparency log",
    )?;
    let unlogged_arg = stack
        .dir
        .join("cdn/releases/unlogged.json")
        .display()
        .to_string();
    let (ok, _, err) = stack.pp(&["verify-release", &unlogged_arg])?;
    anyhow::ensure!(
        !ok && err.contains("not in the transparency log"),
        "verify-release accepted an unlogged manifest:\n{err}"
    );
    println!("e2e: verify-release of an unlogged manifest: refused");

    // A log that forks: same key, another history. The device remembers the tree head it saw.
    stack.fork_log(&stack.dir.join("cdn/releases/unlogged.json"))?;
    expect_refused(
        &stack,
        "a transparency log that forks",
        "not consistent with what this device saw before",
    )?;
    std::fs::write(&release_path, manifest_text)?;

    let unlogged = stack.dir.join("cdn/releases/unlogged.json");
    crate::e2e_witness::attacks(&mut stack, &session, &manifest, &unlogged)?;

    // Opting out deletes the tokens and receipts, and the features are off again.
    let (ok, out, err) = stack.pp(&["opt-out"])?;
    let state = stack.dir.join("device-state");
    anyhow::ensure!(
        ok && out.contains("AI features are off")
            && !state.join("tokens").exists()
            && !state.join("receipts.jsonl").exists(),
        "pp opt-out:\n{err}{out}"
    );
    let (ok, out, err) = stack.pp(&summarize)?;
    anyhow::ensure!(
        !ok && err.contains("AI features are off on this device"),
        "pp summarize after opting out:\n{err}{out}"
    );
    println!("e2e: opt-out: tokens and receipts deleted, requests refused");
    println!("e2e: PASS");
    Ok(())
}

/// `pp summarize` and `pp suggest` on the sample thread, printed as a user would see them.
fn run_pp(stack: &Stack, thread: &str, verbose: bool) -> Result<()> {
    let summarize: Vec<&str> = if verbose {
        vec!["--verbose", "summarize", thread, "-k", "3"]
    } else {
        vec!["summarize", thread, "-k", "3"]
    };
    // Tokens are fetched ahead of time, as a scheduler would, so that no fetch with the account
    // credential comes right before a request (docs/protocol.md, "When the device fetches
    // tokens").
    let refill = vec!["tokens", "refill"];
    for args in [
        vec!["opt-in"],
        refill,
        summarize,
        vec!["suggest", thread, "-n", "3", "--seed", "7"],
    ] {
        println!("\n$ {} {}", crate::stack::TEST_ROOT_PP, args.join(" "));
        let (ok, out, err) = stack.pp(&args)?;
        print!("{err}{out}");
        if !ok {
            bail!("pp failed");
        }
    }
    Ok(())
}

/// Runs `f` under a spinner that says what is happening and, at the end, how long it took.
fn with_spinner<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("demo: {what}"));
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = std::time::Instant::now();
    let result = f();
    let outcome = if result.is_ok() { "done" } else { "failed" };
    bar.finish_with_message(format!(
        "demo: {what}: {outcome} in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    result
}

fn restart_gateway(stack: &mut Stack, addr: &str, issuer: &str) -> Result<()> {
    let (got, _) = stack.start_gateway_at(addr, issuer)?;
    anyhow::ensure!(got == addr, "the gateway came back on another address");
    Ok(())
}

fn restart_relay(stack: &mut Stack, upstream: &str) -> Result<String> {
    stack.start_relay(upstream)
}

fn replace_relay(config: &str, relay: &str) -> String {
    config
        .lines()
        .map(|l| {
            if l.starts_with("address = ") {
                format!("address = \"{relay}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A TCP proxy to `upstream` that flips one bit in the 200th byte it forwards downstream.
fn tampering_proxy(upstream: &str) -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    let upstream = upstream.to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
            });
            let (mut s_in, mut c_out) = (server, client);
            std::thread::spawn(move || {
                let mut seen = 0usize;
                let mut buf = [0u8; 4096];
                while let Ok(n) = s_in.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if seen < 200 && seen + n > 200 {
                        buf[200 - seen] ^= 0x01;
                    }
                    seen += n;
                    if c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}
