//! The real `pp-log` and `pp-witness` on loopback, and the device's checks on what the log
//! serves: witnessed heads only, forks and hidden extensions refused, revocations seen.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use pp_translog::checkpoint::{ALG_COSIGNATURE_V1, ALG_ED25519, CheckpointError, unix_now};
use pp_translog::{DeviceError, DeviceLogState, NoteKey, TrustPolicy, Update};

const ORIGIN: &str = "test.example/log";

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a service and returns it with the lines it printed up to `listening on ADDR`.
fn spawn(bin: &str, args: &[&str]) -> (Proc, String, Vec<String>) {
    let mut child = Proc(
        Command::new(bin)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut before = Vec::new();
    loop {
        let line = lines.next().expect("the service exited").unwrap();
        if let Some(addr) = line.strip_prefix("listening on ") {
            return (child, format!("http://{addr}"), before);
        }
        before.push(line);
    }
}

fn printed<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in {lines:?}"))
}

struct World {
    dir: tempfile::TempDir,
    log_vkey: String,
    witness_vkey: String,
    witness_url: String,
    _witness: Proc,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("operator.secret"), "s3cret").unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_pp-log"))
            .args(["vkey", "--origin", ORIGIN, "--state"])
            .arg(dir.path().join("log"))
            .output()
            .unwrap();
        assert!(out.status.success());
        let log_vkey = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let state = dir.path().join("witness").display().to_string();
        let (witness, witness_url, lines) = spawn(
            env!("CARGO_BIN_EXE_pp-witness"),
            &[
                "--listen",
                "127.0.0.1:0",
                "--state",
                &state,
                "--log",
                &log_vkey,
            ],
        );
        let witness_vkey = printed(&lines, "witness vkey ").to_string();
        Self {
            dir,
            log_vkey,
            witness_vkey,
            witness_url,
            _witness: witness,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Starts `pp-log` on the state folder `state` with the witness.
    fn log(&self, state: &str) -> (Proc, String) {
        let (p, url, _) = spawn(
            env!("CARGO_BIN_EXE_pp-log"),
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--origin",
                ORIGIN,
                "--state",
                &self.path(state).display().to_string(),
                "--operator-credential",
                &self.path("operator.secret").display().to_string(),
                "--witness",
                &self.witness_url,
            ],
        );
        (p, url)
    }

    fn append(&self, url: &str, entry: &str) {
        let file = self.path("entry.json");
        std::fs::write(&file, entry).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_pp-log"))
            .args(["append", "--url", url, "--operator-credential"])
            .arg(self.path("operator.secret"))
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn device(&self) -> DeviceLogState {
        let policy = TrustPolicy {
            log: NoteKey::parse_vkey(&self.log_vkey, ALG_ED25519).unwrap(),
            witnesses: vec![NoteKey::parse_vkey(&self.witness_vkey, ALG_COSIGNATURE_V1).unwrap()],
            threshold: 1,
            max_age_secs: 86_400,
        };
        DeviceLogState::open(self.path("device.json"), policy).unwrap()
    }
}

fn get(url: &str) -> Result<Vec<u8>, String> {
    let mut r = ureq::get(url).call().map_err(|e| e.to_string())?;
    r.body_mut().read_to_vec().map_err(|e| e.to_string())
}

fn sync(device: &mut DeviceLogState, url: &str, now: u64) -> Result<Update, DeviceError> {
    let note = get(&format!("{url}/checkpoint")).unwrap();
    device.update(
        &note,
        now,
        &mut |p| get(&format!("{url}/{p}")),
        &mut |_, _| {},
    )
}

fn manifest(n: u32) -> String {
    format!(
        "{{\"schema\":\"pp-release-manifest/1\",\"release_ref\":\"{}\",\"n\":{n}}}",
        "ab".repeat(32)
    )
}

#[test]
fn a_witnessed_log_is_accepted_and_its_revocations_seen() {
    let w = World::new();
    let (_log, url) = w.log("log");
    w.append(&url, &manifest(1));
    let mut device = w.device();
    assert_eq!(sync(&mut device, &url, unix_now()).unwrap(), Update::First);
    assert!(device.revocation_of(&"ab".repeat(32)).is_none());
    let out = Command::new(env!("CARGO_BIN_EXE_pp-log"))
        .args(["revoke", "--url", &url, "--operator-credential"])
        .arg(w.path("operator.secret"))
        .args([
            "--release-ref",
            &"ab".repeat(32),
            "--reason",
            "TCB bulletin",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sync(&mut device, &url, unix_now()).unwrap(),
        Update::Grew { from: 1 }
    );
    let r = device.revocation_of(&"ab".repeat(32)).unwrap();
    assert_eq!((r.index, r.reason.as_str()), (1, "TCB bulletin"));
    // The same head a day and more later: stale.
    let err = sync(&mut device, &url, unix_now() + 25 * 3600).unwrap_err();
    assert!(err.to_string().starts_with("stale tree head"), "{err}");
}

#[test]
fn a_log_extension_the_witness_has_not_seen_is_refused() {
    let w = World::new();
    let (log, url) = w.log("log");
    w.append(&url, &manifest(1));
    let mut device = w.device();
    sync(&mut device, &url, unix_now()).unwrap();
    // The honest log grows; the witness cosigns that history.
    w.append(&url, &manifest(2));
    let honest = get(&format!("{url}/checkpoint")).unwrap();
    drop(log);
    // The operator forks: same key, the prefix this device saw, then another manifest.
    std::fs::create_dir_all(w.path("fork")).unwrap();
    std::fs::copy(w.path("log/log.key"), w.path("fork/log.key")).unwrap();
    let bin = std::fs::read(w.path("log/log.bin")).unwrap();
    let first_len = 4 + u32::from_be_bytes(bin[..4].try_into().unwrap()) as usize;
    std::fs::write(w.path("fork/log.bin"), &bin[..first_len]).unwrap();
    let (_fork, fork_url) = w.log("fork");
    w.append(&fork_url, &manifest(3));
    // A consistent extension of what this device saw, signed by the log, but no witness
    // cosigned it (the witness has seen the other size-2 tree).
    let err = sync(&mut device, &fork_url, unix_now()).unwrap_err();
    assert!(
        matches!(
            err,
            DeviceError::Checkpoint {
                reason: CheckpointError::TooFewCosignatures { have: 0, need: 1 },
                ..
            }
        ),
        "{err}"
    );
    // Nor does the honest head's cosignature line, moved onto the forked checkpoint.
    let forked = String::from_utf8(get(&format!("{fork_url}/checkpoint")).unwrap()).unwrap();
    let honest = String::from_utf8(honest).unwrap();
    let line = honest
        .lines()
        .find(|l| l.starts_with("— pp.example/witness"))
        .unwrap();
    let spliced = format!("{forked}{line}\n");
    let err = device
        .update(
            spliced.as_bytes(),
            unix_now(),
            &mut |p| get(&format!("{fork_url}/{p}")),
            &mut |_, _| {},
        )
        .unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    assert_eq!(device.current().unwrap().checkpoint.size, 1);
}
