//! The outside parties on loopback, for the demo and the end-to-end test: transparency log and
//! its witness, key CDN, token issuer, gateway and relay, each its own process from `pp-services`,
//! with a throwaway CA, an account and a device configuration for `pp`. Gateways record spent
//! tokens in a Valkey server (the store replicas share), started here on a unix socket.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::util;

/// Names on the development certificates.
pub const RELAY_NAME: &str = "relay.pp.test";
pub const GATEWAY_NAME: &str = "gateway.pp.test";
/// The log's origin line (the name in its checkpoints).
pub const LOG_ORIGIN: &str = "log.pp.test";

/// One enclave instance: its id, the address of its attested-TLS port and, when known, of its
/// one-shot port (sealed requests over plain TCP).
#[derive(Clone, Debug)]
pub struct Instance {
    pub id: String,
    pub address: String,
    /// Not yet written to the instance map: today's gateway refuses unknown fields there
    /// (the gateway's one-shot support and its map field come with issue 14's services part).
    #[allow(dead_code)]
    pub oneshot_address: Option<String>,
}

/// The running services; dropping it stops them.
pub struct Stack {
    pub dir: PathBuf,
    bin: PathBuf,
    children: Vec<(&'static str, Child)>,
    pub config: PathBuf,
    pub log_url: String,
    /// The key CDN's base URL (devices read it, and the log, through the relay and gateway).
    pub cdn_url: String,
    /// The witness's base URL; the log submits its checkpoints there.
    pub witness_url: String,
    pub gateway_addr: String,
    pub issuer_addr: String,
    /// The enclave instances with the ids publishing derived from their key configurations.
    pub instances: Vec<Instance>,
    /// The shared spent-token store (`redis+unix://…`).
    pub store_url: String,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The device command the demo and the tests run: `pp` built with the `test-root` feature, so it
/// honours the configuration's test ARK (there is no SEV-SNP hardware here). The shipped `pp` is
/// built without it and refuses such a configuration.
pub const TEST_ROOT_PP: &str = "pp-test-root";

/// Builds the service and device binaries (release) and returns their folder: the services, the
/// shipped `pp`, and [`TEST_ROOT_PP`].
pub fn build_binaries(root: &Path) -> Result<PathBuf> {
    let cargo = crate::util::host_cargo();
    let bin = root.join("target/release");
    // The test-root variant first, copied aside under its own name; then the shipped build,
    // whose `pp` is the one left in place.
    util::run(Command::new(&cargo).current_dir(root).args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "pp-device",
        "--features",
        "test-root",
    ]))
    .context("building pp with the test-root feature failed")?;
    std::fs::copy(bin.join("pp"), bin.join(TEST_ROOT_PP))
        .with_context(|| format!("copying pp to {TEST_ROOT_PP}"))?;
    util::run(Command::new(&cargo).current_dir(root).args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "pp-services",
        "-p",
        "pp-device",
    ]))
    .context("building the services and the pp command failed")?;
    Ok(bin)
}

impl Stack {
    /// Starts every service in a fresh `dir`, logs `manifest`, publishes `instances` to the CDN
    /// and writes the device configuration (trusting `test_root_ark` instead of AMD's roots).
    pub fn start(
        bin: &Path,
        dir: &Path,
        manifest: &Path,
        instances: &[Instance],
        test_root_ark: &Path,
    ) -> Result<Self> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let mut stack = Stack {
            dir: dir.to_path_buf(),
            bin: bin.to_path_buf(),
            children: Vec::new(),
            config: dir.join("pp.toml"),
            log_url: String::new(),
            cdn_url: String::new(),
            witness_url: String::new(),
            gateway_addr: String::new(),
            issuer_addr: String::new(),
            instances: Vec::new(),
            store_url: String::new(),
        };
        let run = |name: &str, args: &[&str]| -> Result<String> {
            let out = Command::new(bin.join(name)).args(args).output()?;
            if !out.status.success() {
                bail!(
                    "{name} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let p = |rel: &str| dir.join(rel).display().to_string();
        run(
            "pp-dev-certs",
            &["--out", &p("certs"), RELAY_NAME, GATEWAY_NAME],
        )?;
        let account_secret = random_hex();
        std::fs::write(dir.join("account.secret"), &account_secret)?;
        std::fs::write(
            dir.join("accounts.json"),
            format!(
                "{{\"accounts\": {{\"demo-user\": \"{}\"}}}}\n",
                hex::encode(Sha256::digest(account_secret.as_bytes()))
            ),
        )?;
        std::fs::write(dir.join("operator.secret"), random_hex())?;

        // The log's key first (its verifier key configures the witness), then the witness,
        // then the log, which submits each checkpoint to the witness.
        let log_vkey = run(
            "pp-log",
            &["vkey", "--state", &p("log"), "--origin", LOG_ORIGIN],
        )?
        .trim()
        .to_string();
        let (witness_addr, witness_lines) = stack.spawn(
            "pp-witness",
            &[
                "--listen",
                "127.0.0.1:0",
                "--state",
                &p("witness"),
                "--log",
                &log_vkey,
            ],
        )?;
        let witness_vkey = witness_lines
            .iter()
            .find_map(|l| l.strip_prefix("witness vkey "))
            .context("pp-witness did not print its verifier key")?
            .to_string();
        stack.witness_url = format!("http://{witness_addr}");
        let (log_addr, log_lines) = stack.start_log("127.0.0.1:0", &p("log"))?;
        let log_key = log_lines
            .iter()
            .find_map(|l| l.strip_prefix("log public key "))
            .context("pp-log did not print its public key")?
            .to_string();
        stack.log_url = format!("http://{log_addr}");
        run(
            "pp-log",
            &[
                "append",
                "--url",
                &stack.log_url,
                "--operator-credential",
                &p("operator.secret"),
                &manifest.display().to_string(),
            ],
        )?;

        // Publishing derives each instance's id from its key configuration (written back into
        // the instance map) and appends the CDN index to the log.
        stack.write_instances(instances)?;
        run(
            "pp-gateway",
            &[
                "publish",
                "--instances",
                &p("instances.json"),
                "--manifest",
                &manifest.display().to_string(),
                "--out",
                &p("cdn"),
                "--assign-ids",
                "--log-url",
                &stack.log_url,
                "--operator-credential",
                &p("operator.secret"),
            ],
        )?;
        stack.instances = stack.read_instances()?;
        let (cdn_addr, _) =
            stack.spawn("pp-cdn", &["--listen", "127.0.0.1:0", "--root", &p("cdn")])?;
        stack.cdn_url = format!("http://{cdn_addr}");
        let (issuer_addr, _) = stack.spawn(
            "pp-issuer",
            &[
                "--listen",
                "127.0.0.1:0",
                "--state",
                &p("issuer"),
                "--accounts",
                &p("accounts.json"),
                // A loopback stack for demos, tests and benches: a generous budget.
                "--tokens-per-hour",
                "10000",
            ],
        )?;
        stack.issuer_addr = issuer_addr.clone();
        stack.log_issuer_keys(&issuer_addr)?;
        stack.store_url = stack.start_store()?;
        let (gateway_addr, _) = stack.start_gateway(&issuer_addr)?;
        stack.gateway_addr = gateway_addr.clone();
        let relay_addr = stack.start_relay(&gateway_addr)?;
        std::fs::write(
            &stack.config,
            format!(
                "state_dir = \"device-state\"\n\n[relay]\naddress = \"{relay_addr}\"\nserver_name = \"{RELAY_NAME}\"\n\n\
                 [gateway]\nauthority = \"{GATEWAY_NAME}:443\"\nserver_name = \"{GATEWAY_NAME}\"\n\n\
                 [issuer]\nurl = \"http://{issuer_addr}\"\ncredential_file = \"account.secret\"\n\n\
                 [cdn]\nurl = \"http://{cdn_addr}\"\n\n[log]\nurl = \"{}\"\npublic_key = \"{log_key}\"\norigin = \"{LOG_ORIGIN}\"\n\
                 witnesses = [\"{witness_vkey}\"]\n\n\
                 [trust]\ntls_ca = \"certs/ca.pem\"\ntest_root_ark = \"{}\"\n",
                stack.log_url,
                test_root_ark.display()
            ),
        )?;
        Ok(stack)
    }

    /// Writes the gateway's instance map (used by publishing and by the gateway).
    pub fn write_instances(&self, instances: &[Instance]) -> Result<()> {
        let entries: Vec<String> = instances
            .iter()
            .map(|i| format!("{{\"id\": \"{}\", \"address\": \"{}\"}}", i.id, i.address))
            .collect();
        std::fs::write(
            self.dir.join("instances.json"),
            format!("{{\"instances\": [{}]}}\n", entries.join(", ")),
        )?;
        Ok(())
    }

    /// Reads the gateway's instance map back (after publishing assigned the derived ids).
    pub fn read_instances(&self) -> Result<Vec<Instance>> {
        let map: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.dir.join("instances.json"))?)?;
        map["instances"]
            .as_array()
            .context("instances.json has no instances")?
            .iter()
            .map(|i| {
                Ok(Instance {
                    id: i["id"].as_str().context("an instance has no id")?.into(),
                    address: i["address"]
                        .as_str()
                        .context("an instance has no address")?
                        .into(),
                    oneshot_address: i["oneshot_address"].as_str().map(Into::into),
                })
            })
            .collect()
    }

    /// Appends the file `entry` to the transparency log as the operator.
    pub fn append_to_log(&self, entry: &Path) -> Result<()> {
        let out = Command::new(self.bin.join("pp-log"))
            .args(["append", "--url", &self.log_url, "--operator-credential"])
            .arg(self.dir.join("operator.secret"))
            .arg(entry)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "appending {} to the log failed: {}",
            entry.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }

    /// Starts (or restarts, after [`Self::stop`]) the gateway on a new port; the relay is not
    /// told, so restart tests re-point through `write_relay`.
    pub fn start_gateway(&mut self, issuer_addr: &str) -> Result<(String, Vec<String>)> {
        self.start_gateway_at("127.0.0.1:0", issuer_addr)
    }

    /// Starts the gateway on `listen`.
    pub fn start_gateway_at(
        &mut self,
        listen: &str,
        issuer_addr: &str,
    ) -> Result<(String, Vec<String>)> {
        self.gateway_as("pp-gateway", listen, issuer_addr)
    }

    /// Starts another gateway replica on the same spent-token store (stopped by
    /// `stop("pp-gateway-2")`); returns its address.
    pub fn start_gateway_replica(&mut self, issuer_addr: &str) -> Result<String> {
        Ok(self
            .gateway_as("pp-gateway-2", "127.0.0.1:0", issuer_addr)?
            .0)
    }

    fn gateway_as(
        &mut self,
        label: &'static str,
        listen: &str,
        issuer_addr: &str,
    ) -> Result<(String, Vec<String>)> {
        let p = |rel: &str| self.dir.join(rel).display().to_string();
        let args = [
            "serve",
            "--listen",
            listen,
            "--cert",
            &p(&format!("certs/{GATEWAY_NAME}.pem")),
            "--key",
            &p(&format!("certs/{GATEWAY_NAME}.key")),
            "--origin",
            GATEWAY_NAME,
            "--issuer-name",
            issuer_addr,
            "--issuer-keys",
            &p("issuer-keys.jsonl"),
            "--instances",
            &p("instances.json"),
            "--spent-store",
            &self.store_url,
            // Devices read the log and the CDN through the relay: the gateway fronts both.
            "--read-upstream",
            &self.log_url,
            "--read-upstream",
            &self.cdn_url,
        ];
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.spawn_as(label, "pp-gateway", &args)
    }

    /// Starts the Valkey server the gateways share, on a unix socket in the stack's folder, with
    /// every write on disk before it answers; returns its URL.
    fn start_store(&mut self) -> Result<String> {
        let dir = self.dir.join("spent-store");
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("valkey.sock");
        let server = store_server()?;
        let child = Command::new(&server)
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--dir"])
            .arg(&dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .stdout(std::fs::File::create(self.dir.join("valkey-server.log"))?)
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {server}"))?;
        self.children.push(("valkey-server", child));
        for _ in 0..500 {
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return Ok(format!("redis+unix://{}", socket.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "{server} did not start; see {}",
            self.dir.join("valkey-server.log").display()
        )
    }

    /// The operator's step for issuer key consistency: prints the issuer's `pp-issuer-key/1`
    /// entries (keys valid now and the next epoch's), appends each to the log, and keeps them in
    /// `issuer-keys.jsonl` for the gateway.
    fn log_issuer_keys(&self, issuer_name: &str) -> Result<()> {
        let p = |rel: &str| self.dir.join(rel).display().to_string();
        let text = self.issuer_key_entries("issuer", issuer_name)?;
        for (n, line) in text.lines().enumerate() {
            let file = self.dir.join(format!("issuer-key-{n}.json"));
            std::fs::write(&file, line)?;
            let out = Command::new(self.bin.join("pp-log"))
                .args([
                    "append",
                    "--url",
                    &self.log_url,
                    "--operator-credential",
                    &p("operator.secret"),
                    &file.display().to_string(),
                ])
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "appending an issuer key entry failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        std::fs::write(self.dir.join("issuer-keys.jsonl"), text)?;
        Ok(())
    }

    /// The `pp-issuer-key/1` entries (one per line) of the issuer keys kept in `state` (a folder
    /// of the stack's; made if missing) under `issuer_name`.
    pub fn issuer_key_entries(&self, state: &str, issuer_name: &str) -> Result<String> {
        let state = self.dir.join(state).display().to_string();
        let out = Command::new(self.bin.join("pp-issuer"))
            .args(["--state", &state, "--print-key-entries", issuer_name])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "pp-issuer --print-key-entries failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Starts a relay that dials `upstream` for the gateway's name; returns its address.
    pub fn start_relay(&mut self, upstream: &str) -> Result<String> {
        self.start_relay_over(&[upstream])
    }

    /// Starts a relay that dials the `upstreams` in turn for the gateway's name (gateway
    /// replicas); returns its address.
    pub fn start_relay_over(&mut self, upstreams: &[&str]) -> Result<String> {
        let p = |rel: &str| self.dir.join(rel).display().to_string();
        let mut args = vec![
            "--listen".to_string(),
            "127.0.0.1:0".into(),
            "--cert".into(),
            p(&format!("certs/{RELAY_NAME}.pem")),
            "--key".into(),
            p(&format!("certs/{RELAY_NAME}.key")),
        ];
        for upstream in upstreams {
            args.push("--upstream".into());
            args.push(format!("{GATEWAY_NAME}:443={upstream}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Ok(self.spawn("pp-relay", &args)?.0)
    }

    /// Points the device configuration at the relay at `address`.
    pub fn use_relay(&self, address: &str) -> Result<()> {
        let config = std::fs::read_to_string(&self.config)?;
        let config: Vec<String> = config
            .lines()
            .map(|l| match l.starts_with("address = ") {
                true => format!("address = \"{address}\""),
                false => l.to_string(),
            })
            .collect();
        std::fs::write(&self.config, config.join("\n") + "\n")?;
        Ok(())
    }

    /// Starts `pp-log` on `listen` with the state folder `state`, submitting to the witness.
    fn start_log(&mut self, listen: &str, state: &str) -> Result<(String, Vec<String>)> {
        let credential = self.dir.join("operator.secret").display().to_string();
        let witness = self.witness_url.clone();
        self.spawn(
            "pp-log",
            &[
                "serve",
                "--listen",
                listen,
                "--state",
                state,
                "--operator-credential",
                &credential,
                "--origin",
                LOG_ORIGIN,
                "--witness",
                &witness,
            ],
        )
    }

    /// Replaces the log with a fork of it: the same signing key and size, but `entry` in place of
    /// the last entry (what a log operator showing different devices different histories would
    /// serve). Same address, so devices see it in place of the log.
    pub fn fork_log(&mut self, entry: &Path) -> Result<()> {
        let keep = self.log_entries()?.saturating_sub(1);
        self.fork_log_at(keep, entry)
    }

    /// How many entries the log holds (read from its file).
    pub fn log_entries(&self) -> Result<usize> {
        Ok(self.log_records()?.1.len())
    }

    /// The log file's bytes and where each record ends (a record: `u32` big-endian length, then
    /// the entry).
    fn log_records(&self) -> Result<(Vec<u8>, Vec<usize>)> {
        let records = std::fs::read(self.dir.join("log/log.bin"))?;
        let (mut at, mut ends) = (0usize, Vec::new());
        while let Some(len) = records.get(at..at + 4) {
            at += 4 + u32::from_be_bytes(len.try_into()?) as usize;
            ends.push(at);
        }
        anyhow::ensure!(at == records.len(), "the log file ends mid-record");
        Ok((records, ends))
    }

    /// Like [`Self::fork_log`], but the fork keeps the log's first `keep` entries and then
    /// appends `entry`: to a device that saw only those, a consistent extension.
    pub fn fork_log_at(&mut self, keep: usize, entry: &Path) -> Result<()> {
        let fork = self.dir.join("log-fork");
        let _ = std::fs::remove_dir_all(&fork);
        std::fs::create_dir_all(&fork)?;
        std::fs::copy(self.dir.join("log/log.key"), fork.join("log.key"))?;
        self.stop("pp-log");
        let (records, ends) = self.log_records()?;
        let at = match keep {
            0 => 0,
            n => *ends
                .get(n - 1)
                .context("the log has fewer entries than the fork keeps")?,
        };
        std::fs::write(fork.join("log.bin"), &records[..at])?;
        let listen = self.log_url.trim_start_matches("http://").to_string();
        let credential = self.dir.join("operator.secret").display().to_string();
        let (addr, _) = self.start_log(&listen, &fork.display().to_string())?;
        anyhow::ensure!(addr == listen, "the forked log came up on another address");
        let out = Command::new(self.bin.join("pp-log"))
            .args([
                "append",
                "--url",
                &self.log_url,
                "--operator-credential",
                &credential,
            ])
            .arg(entry)
            .output()?;
        anyhow::ensure!(out.status.success(), "appending to the forked log failed");
        Ok(())
    }

    /// Puts the honest log back at its address (after [`Self::fork_log`]).
    pub fn restore_log(&mut self) -> Result<()> {
        self.stop("pp-log");
        let listen = self.log_url.trim_start_matches("http://").to_string();
        let state = self.dir.join("log").display().to_string();
        let (addr, _) = self.start_log(&listen, &state)?;
        anyhow::ensure!(addr == listen, "the log came back on another address");
        Ok(())
    }

    /// Runs `pp-log` with `args` (e.g. `append`, `revoke`) against this stack's log with the
    /// operator's credential; returns its stdout.
    pub fn log_operator(&self, command: &str, args: &[&str]) -> Result<String> {
        let out = Command::new(self.bin.join("pp-log"))
            .args([command, "--url", &self.log_url, "--operator-credential"])
            .arg(self.dir.join("operator.secret"))
            .args(args)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "pp-log {command} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stops the named service.
    pub fn stop(&mut self, name: &str) {
        self.children.retain_mut(|(n, child)| {
            if *n == name {
                let _ = child.kill();
                let _ = child.wait();
                false
            } else {
                true
            }
        });
    }

    /// Runs [`TEST_ROOT_PP`] with this stack's configuration; returns (success, stdout, stderr).
    pub fn pp(&self, args: &[&str]) -> Result<(bool, String, String)> {
        self.run_device(TEST_ROOT_PP, args)
    }

    /// Runs the shipped `pp` (no test-root feature) with this stack's configuration.
    pub fn shipped_pp(&self, args: &[&str]) -> Result<(bool, String, String)> {
        self.run_device("pp", args)
    }

    fn run_device(&self, name: &str, args: &[&str]) -> Result<(bool, String, String)> {
        let out = Command::new(self.bin.join(name))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .context("cannot run pp")?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Spawns a service and waits for its `listening on ADDR` line; returns the address and the
    /// lines printed before it.
    fn spawn(&mut self, name: &'static str, args: &[&str]) -> Result<(String, Vec<String>)> {
        self.spawn_as(name, name, args)
    }

    /// [`Self::spawn`] of the binary `bin` under the name `name` (its log file, `stop`).
    fn spawn_as(
        &mut self,
        name: &'static str,
        bin: &str,
        args: &[&str],
    ) -> Result<(String, Vec<String>)> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        let mut child = Command::new(self.bin.join(bin))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.children.push((name, child));
        let mut before = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => match line.strip_prefix("listening on ") {
                    Some(addr) => return Ok((addr.to_string(), before)),
                    None => before.push(line),
                },
                Err(_) => bail!(
                    "{name} did not start; see {}",
                    self.dir.join(format!("{name}.log")).display()
                ),
            }
        }
    }
}

/// The spent-token store's server binary: `PP_VALKEY_SERVER`, else `valkey-server`, else
/// `redis-server`.
fn store_server() -> Result<String> {
    if let Ok(bin) = std::env::var("PP_VALKEY_SERVER") {
        return Ok(bin);
    }
    for bin in ["valkey-server", "redis-server"] {
        if Command::new(bin).arg("--version").output().is_ok() {
            return Ok(bin.to_string());
        }
    }
    bail!(
        "valkey-server is not installed (the gateways' shared spent-token store): run \
         `cargo xtask setup`, which installs the pinned package, or set PP_VALKEY_SERVER"
    )
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("system randomness");
    hex::encode(b)
}
