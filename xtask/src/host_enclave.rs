//! The enclave program as a Linux process ("host mode"): the same workload, built for the host with
//! the test attester and the test image's release reference, so that it belongs to the test image's
//! logged release. Used where emulation would get in the way: the real models in the demo, and
//! `bench-path`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{test_root, util};

/// A running host-mode enclave; killed when dropped.
pub struct HostEnclave {
    child: Child,
    /// `127.0.0.1:port` of its attested-TLS port.
    pub address: String,
    /// `127.0.0.1:port` of its one-shot port.
    pub oneshot_address: String,
}

impl Drop for HostEnclave {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the host-mode workload (release profile, test attester).
pub fn build(root: &Path) -> Result<()> {
    build_for(root, &crate::manifest::release_ref(root)?)
}

/// Builds the host-mode workload as a member of the release `release_ref` (that of a test image
/// built elsewhere, from another checkout's pins and lock files).
pub fn build_for(root: &Path, release_ref: &str) -> Result<()> {
    let cargo = crate::util::host_cargo();
    util::run(
        Command::new(&cargo)
            .current_dir(root)
            .env("PP_TEST_ROOT_DIR", test_root::ensure(root)?)
            .env("PP_RELEASE_REF", release_ref)
            .args(["build", "--quiet", "--release", "-p", "pp-workload"])
            .args(["--features", "test-attester"]),
    )
    .context("building the host-mode workload failed")
}

/// Starts one instance with the weights blob `weights` and waits until it is ready.
pub fn start(root: &Path, weights: &Path) -> Result<HostEnclave> {
    let tls_port = crate::qemu::free_port()?;
    let oneshot_port = crate::qemu::free_port()?;
    let mut child = Command::new(root.join("target/release/pp-workload"))
        .env("PP_BIND", "127.0.0.1")
        .env("PP_HEALTH_PORT", crate::qemu::free_port()?.to_string())
        .env("PP_TLS_PORT", tls_port.to_string())
        .env("PP_ONESHOT_PORT", oneshot_port.to_string())
        .env("PP_WEIGHTS_FILE", weights)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the host-mode workload")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let enclave = HostEnclave {
        child,
        address: format!("127.0.0.1:{tls_port}"),
        oneshot_address: format!("127.0.0.1:{oneshot_port}"),
    };
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("pp-workload: ready") => break,
            Some(Ok(_)) => {}
            _ => bail!("the host-mode enclave did not start"),
        }
    }
    // Keep draining its log so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(enclave)
}
