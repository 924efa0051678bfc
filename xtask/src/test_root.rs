//! The test attestation root: a test ARK/ASK chain and a VCEK, generated deterministically from a
//! fixed seed, written where a test image's build embeds them and where tests find the ARK.
//! Nothing trusts it unless a policy is built with `Policy::trusting_test_root`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pp_attestation::test_signer::{TEST_MEASUREMENT, TEST_TCB};
use pp_verifier::test_attester::{TestAttester, TestRoot};

/// The seed of the project's test root. Public on purpose: this root proves nothing.
pub const SEED: [u8; 32] = *b"pp test root v1 (not AMD, public";

/// The shape of the generated certificates. Part of the stamp: material generated before the
/// certificates took AMD's names, extensions and validity periods (`CN=ARK-Milan`,
/// `basicConstraints`, `keyUsage`, a 7-year VCEK) is generated again, not reused.
const FORMAT: &[u8] = b"\nformat 2: AMD-shaped names, extensions and validity";

/// Files written, as the workload's test attester reads them.
pub const FILES: [&str; 5] = ["vcek.key", "vcek.der", "ask.der", "ark.der", "chip_id.bin"];

/// What the generated material depends on: the seed, the TCB the VCEK is issued for (a VCEK
/// left from an older `TEST_TCB` would not match the test attester's reports) and the
/// certificates' [`FORMAT`].
fn stamp_bytes() -> Vec<u8> {
    [&SEED[..], &TEST_TCB.to_u64().to_le_bytes(), FORMAT].concat()
}

/// Generate (once) the test material under `target/pp/test-root/`; returns the folder.
pub fn ensure(root: &Path) -> Result<PathBuf> {
    let dir = root.join("target/pp/test-root");
    let stamp = dir.join("seed");
    if fs::read(&stamp).ok().as_deref() == Some(&stamp_bytes()[..])
        && FILES.iter().all(|f| dir.join(f).is_file())
    {
        return Ok(dir);
    }
    eprintln!("test-root: generating the test ARK/ASK (RSA-4096) and VCEK from the fixed seed");
    let root_keys =
        std::sync::Arc::new(TestRoot::generate(SEED).context("generating the test root")?);
    let attester = TestAttester::new(root_keys.clone(), TEST_MEASUREMENT);
    fs::create_dir_all(&dir)?;
    let vcek = root_keys
        .vcek_der(&attester.chip_id, attester.tcb)
        .context("issuing the test VCEK")?;
    let contents: [Vec<u8>; 5] = [
        root_keys.vcek_scalar(),
        vcek,
        root_keys.ask_der().to_vec(),
        root_keys.ark_der().to_vec(),
        attester.chip_id.to_vec(),
    ];
    for (name, bytes) in FILES.iter().zip(contents) {
        fs::write(dir.join(name), bytes)?;
    }
    fs::write(&stamp, stamp_bytes())?;
    Ok(dir)
}
