//! Test fixtures shared by the device's unit tests (test-root build): a test AMD root, a logged
//! release manifest, evidence from the test attester, and a transparency log in a scratch folder.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use pp_attestation::Attester;
use pp_protocol::evidence::EvidenceRepr;
use pp_translog::Log;
use pp_verifier::test_attester::{TestAttester, TestRoot};

use crate::config::Trust;
use crate::instances::Roots;

/// The test root for `seed` (RSA-4096 keys take a while): one per seed per test process.
pub fn test_root(which: u8) -> Arc<TestRoot> {
    static ROOTS: [OnceLock<Arc<TestRoot>>; 2] = [OnceLock::new(), OnceLock::new()];
    ROOTS[usize::from(which)]
        .get_or_init(|| Arc::new(TestRoot::generate([0x90 + which; 32]).unwrap()))
        .clone()
}

/// A fresh scratch folder (unique per call).
pub fn scratch(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("pp-device-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Roots trusting test root `which` (its ARK written into `dir`).
pub fn roots(which: u8, dir: &std::path::Path) -> Roots {
    let ark = dir.join(format!("ark-{which}.der"));
    std::fs::write(&ark, test_root(which).ark_der()).unwrap();
    Roots::from_config(&Trust {
        tls_ca: None,
        test_root_ark: Some(ark),
        amd_crls: Vec::new(),
    })
    .unwrap()
}

/// A release manifest with a launch policy, as logged bytes, and its one measurement.
pub fn manifest() -> (Vec<u8>, [u8; 48], [u8; 32]) {
    let m =
        crate::launch_policy::tests::manifest(Some(crate::launch_policy::tests::honest_launch()));
    let measurement = m.accepted_measurements().unwrap()[0];
    let release_ref = m.release_ref_bytes().unwrap();
    (m.to_json().unwrap().into_bytes(), measurement, release_ref)
}

/// An encoded evidence bundle from root 0's test attester for `measurement`, whose report binds
/// `report_data`.
pub fn bundle(
    measurement: [u8; 48],
    report_data: &[u8; 64],
    key_config: &[u8],
    release_ref: [u8; 32],
) -> Vec<u8> {
    bundle_from(
        &TestAttester::new(test_root(0), measurement),
        report_data,
        key_config,
        release_ref,
    )
}

/// An encoded evidence bundle from `attester`, whose report binds `report_data`.
pub fn bundle_from(
    attester: &TestAttester,
    report_data: &[u8; 64],
    key_config: &[u8],
    release_ref: [u8; 32],
) -> Vec<u8> {
    let ev = attester.attest(report_data).unwrap();
    EvidenceRepr {
        report: &ev.report,
        vcek: &ev.vcek_der,
        ask: &ev.ask_der,
        ark: &ev.ark_der,
        key_config,
        release_ref,
    }
    .to_vec()
    .unwrap()
}

/// A log in `dir`.
pub fn log(dir: &std::path::Path) -> Log {
    Log::open(&dir.join("log.bin"), &dir.join("log.key")).unwrap()
}

/// A valid RFC 9458 key configuration (X25519, HKDF-SHA256, AES-128-GCM), one per `n`.
pub fn key_config(n: u8) -> Vec<u8> {
    use pp_protocol::key_config::{AEAD_AES_128_GCM, KDF_HKDF_SHA256, KeyConfigRepr, Suite};
    KeyConfigRepr {
        key_id: n,
        public_key: [n; 32],
        suites: vec![Suite {
            kdf: KDF_HKDF_SHA256,
            aead: AEAD_AES_128_GCM,
        }],
    }
    .to_vec()
    .unwrap()
}
