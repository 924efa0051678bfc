//! Choosing an enclave instance: read the key CDN's index, and keep only instances whose
//! publication evidence verifies against a release in the transparency log.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use pp_client::{Publication, Published};
use pp_protocol::cdn_index::{CdnInstance, instance_id};
use pp_verifier::Policy;
use pp_verifier::verify::TcbFloor;
use sha2::{Digest, Sha256};

use crate::releases::{LogClient, LoggedRelease};

/// An instance the device may use.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub published: Published,
    pub release: LoggedRelease,
    /// The attestation policy of `release`, built once per release and shared by its instances.
    pub policy: Arc<Policy>,
    /// The logged CDN index that listed it (for the receipt).
    pub index: Arc<crate::logged_index::LoggedIndex>,
    /// Its publication evidence bundle as the CDN served it (its SHA-256 is the logged
    /// `evidence_sha256`): kept in swapped-enclave evidence.
    pub publication: Arc<Vec<u8>>,
}

/// Why an instance was left out, for `--verbose` and for the error when none is left.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub id: String,
    pub reason: String,
}

/// Which roots verify attestation reports, and AMD's CRLs for them.
#[derive(Debug, Clone)]
pub struct Roots {
    anchor: Anchor,
    /// AMD's CRLs (DER), each already checked against the anchor's roots.
    amd_crls: Vec<Vec<u8>>,
    /// Where each of `amd_crls` came from (`trust.amd_crls`), for `--verbose`.
    crl_paths: Vec<String>,
}

#[derive(Debug, Clone)]
enum Anchor {
    /// AMD's Milan and Genoa roots.
    Amd,
    /// A test ARK (DER), trusted instead of AMD's (no SEV-SNP hardware). Only in the
    /// `pp-test-root` build (feature `test-root`): the shipped `pp` has no way to trust one.
    #[cfg(feature = "test-root")]
    Test(Vec<u8>),
}

/// Why the configured roots cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    /// The configuration names a test root, and this build trusts AMD's roots only.
    #[error(
        "trust.test_root_ark is set ({0}), but this build of pp trusts only AMD's roots: a test \
         root is honoured only by the separate pp-test-root build the demo and the tests use"
    )]
    TestRootInShippedBuild(String),
    /// The test root file could not be read.
    #[error("reading the test root {0}: {1}")]
    Unreadable(String, std::io::ErrorKind),
    /// A configured CRL file could not be read.
    #[error("reading AMD's CRL {0} (trust.amd_crls): {1}")]
    CrlUnreadable(String, std::io::ErrorKind),
    /// A configured CRL is malformed or not signed by a trusted ARK.
    #[error("AMD's CRL {0} (trust.amd_crls) cannot be used: {1}")]
    CrlInvalid(String, pp_verifier::verify::PolicyError),
    /// The trusted roots themselves could not be read.
    #[error("the trusted roots cannot be used: {0}")]
    Policy(pp_verifier::verify::PolicyError),
}

impl Roots {
    /// The roots the configuration's `[trust]` asks for, with its CRLs. In the shipped build
    /// (without the `test-root` feature) a configured test root is an error, never silently
    /// ignored and never trusted. Every CRL is read and checked here (parsed, signed by one of
    /// these roots), so a bad one stops the command before anything is sent.
    pub fn from_config(trust: &crate::config::Trust) -> Result<Self, RootsError> {
        let anchor = match &trust.test_root_ark {
            None => Anchor::Amd,
            Some(path) => Anchor::test_root(path)?,
        };
        let mut roots = Self {
            anchor,
            amd_crls: Vec::new(),
            crl_paths: Vec::new(),
        };
        let mut probe = roots
            .base_policy(Vec::new(), TcbFloor::AMD_BULLETINS)
            .map_err(RootsError::Policy)?;
        for path in &trust.amd_crls {
            let shown = path.display().to_string();
            let der = std::fs::read(path)
                .map_err(|e| RootsError::CrlUnreadable(shown.clone(), e.kind()))?;
            probe = probe
                .with_amd_crl(&der)
                .map_err(|e| RootsError::CrlInvalid(shown.clone(), e))?;
            roots.amd_crls.push(der);
            roots.crl_paths.push(shown);
        }
        Ok(roots)
    }

    /// A line for `--verbose` when these are test roots.
    pub fn test_label(&self) -> Option<String> {
        match self.anchor {
            Anchor::Amd => None,
            #[cfg(feature = "test-root")]
            Anchor::Test(_) => {
                Some("trust: a TEST root instead of AMD's (no SEV-SNP hardware)".into())
            }
        }
    }

    /// How many AMD CRLs are applied.
    pub fn crl_count(&self) -> usize {
        self.amd_crls.len()
    }

    /// The `--verbose` lines on revocation at `now` (the device's clock). Without
    /// `trust.amd_crls` nothing is checked, and the line says so plainly (the verdict's
    /// `not-revoked` then passes without a CRL to check against); with CRLs, one line for them
    /// and a warning for each past its `nextUpdate` (still applied: AMD may have revoked more
    /// since).
    pub fn revocation_lines(&self, now: std::time::SystemTime) -> Vec<String> {
        if self.amd_crls.is_empty() {
            return vec!["revocation: not checked (no trust.amd_crls)".to_owned()];
        }
        let mut lines = vec![format!(
            "trust: {} AMD CRL(s), signed by the trusted ARK",
            self.amd_crls.len()
        )];
        let stale = self
            .policy_for(Vec::new(), TcbFloor::AMD_BULLETINS)
            .map(|p| p.amd_crls_past_next_update(now))
            .unwrap_or_default();
        for (i, next_update) in stale {
            lines.push(format!(
                "warning: AMD's CRL {} is past its nextUpdate {next_update} (device clock {}): \
                 AMD may have revoked more since; fetch a fresh one",
                self.crl_paths[i],
                pp_verifier::verify::UnixTime::from_system_time(now)
            ));
        }
        lines
    }

    fn base_policy(
        &self,
        allowed: Vec<[u8; 48]>,
        floor: TcbFloor,
    ) -> Result<Policy, pp_verifier::verify::PolicyError> {
        match &self.anchor {
            Anchor::Amd => Policy::new(allowed, floor),
            #[cfg(feature = "test-root")]
            Anchor::Test(ark) => Policy::trusting_test_root(ark, allowed, floor),
        }
    }

    /// The policy for one logged release: its accepted measurements, its TCB floor and exact
    /// guest policy ([`crate::launch_policy::requirements`]; a release without them is refused),
    /// these roots, these CRLs. A test root changes only the roots: the floor and the policy are
    /// the same.
    pub fn policy(&self, release: &LoggedRelease) -> Result<Policy> {
        let allowed = release.manifest.accepted_measurements()?;
        let (floor, guest_policy) = crate::launch_policy::requirements(&release.manifest)?;
        Ok(self
            .policy_for(allowed, floor)?
            .with_guest_policy(guest_policy))
    }

    /// The policy of `release` exactly as its manifest states it
    /// ([`crate::launch_policy::stated_requirements`]: the floor not raised to this device's),
    /// with these roots and CRLs: what tamper evidence judges a report's differences against.
    pub fn stated_policy(&self, release: &LoggedRelease) -> Result<Policy> {
        let allowed = release.manifest.accepted_measurements()?;
        let (floor, guest_policy) = crate::launch_policy::stated_requirements(&release.manifest)?;
        Ok(self
            .policy_for(allowed, floor)?
            .with_guest_policy(guest_policy))
    }

    /// A policy at AMD's bulletin floor ([`TcbFloor::AMD_BULLETINS`]) with these roots and CRLs,
    /// accepting no measurement: tamper evidence reads only its `tcb-minimum` check, as a report
    /// below that floor may be forged (AMD declared the firmware that signs it compromised).
    pub fn bulletin_policy(&self) -> Result<Policy> {
        self.policy_for(Vec::new(), TcbFloor::AMD_BULLETINS)
    }

    fn policy_for(&self, allowed: Vec<[u8; 48]>, floor: TcbFloor) -> Result<Policy> {
        let mut policy = self
            .base_policy(allowed, floor)
            .map_err(|e| anyhow::anyhow!("cannot build the attestation policy: {e}"))?;
        for crl in &self.amd_crls {
            policy = policy
                .with_amd_crl(crl)
                .map_err(|e| anyhow::anyhow!("AMD's CRL cannot be used: {e}"))?;
        }
        Ok(policy)
    }
}

impl Anchor {
    #[cfg(feature = "test-root")]
    fn test_root(path: &std::path::Path) -> Result<Self, RootsError> {
        std::fs::read(path)
            .map(Self::Test)
            .map_err(|e| RootsError::Unreadable(path.display().to_string(), e.kind()))
    }

    #[cfg(not(feature = "test-root"))]
    fn test_root(path: &std::path::Path) -> Result<Self, RootsError> {
        Err(RootsError::TestRootInShippedBuild(
            path.display().to_string(),
        ))
    }
}

/// Reads the CDN index — refused unless it is the newest index in the log
/// ([`crate::logged_index`]) — and checks every instance in it.
pub fn discover(
    cdn: &str,
    log: &LogClient,
    roots: &Roots,
) -> Result<(Vec<Candidate>, Vec<Rejected>)> {
    let logged = Arc::new(crate::logged_index::fetch(cdn, log)?);
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut policies = Policies::default();
    for instance in &logged.index.instances {
        match check(cdn, instance, log, roots, &mut policies) {
            Ok((published, release, policy, publication)) => good.push(Candidate {
                id: instance.id.clone(),
                published,
                release,
                policy,
                index: logged.clone(),
                publication: Arc::new(publication),
            }),
            Err(e) => bad.push(Rejected {
                id: instance.id.clone(),
                reason: format!("{e:#}"),
            }),
        }
    }
    Ok((good, bad))
}

/// One policy per logged release manifest, built on first use. Keyed by the manifest's log
/// index — one log entry, one manifest — never by a name the manifest states about itself: two
/// logged manifests may claim the same `release_ref`, and an instance must be verified against
/// the measurements of the very manifest it points to.
#[derive(Default)]
struct Policies(HashMap<u64, Arc<Policy>>);

impl Policies {
    fn get(&mut self, roots: &Roots, release: &LoggedRelease) -> Result<Arc<Policy>> {
        if let Some(policy) = self.0.get(&release.log_index) {
            return Ok(policy.clone());
        }
        let policy = Arc::new(roots.policy(release)?);
        self.0.insert(release.log_index, policy.clone());
        Ok(policy)
    }
}

/// One instance of the logged index: its evidence must hash to the logged hash, its key
/// configuration to the logged one (from which its id is derived: checked by the parser), its
/// release to the logged `release_ref`; then the evidence must verify against that logged
/// release.
fn check(
    cdn: &str,
    instance: &CdnInstance,
    log: &LogClient,
    roots: &Roots,
    policies: &mut Policies,
) -> Result<(Published, LoggedRelease, Arc<Policy>, Vec<u8>)> {
    let bundle = log
        .reader()
        .get(&format!("{cdn}/{}", instance.evidence_path()))?;
    anyhow::ensure!(
        hex::encode(Sha256::digest(&bundle)) == instance.evidence_sha256,
        "the CDN's publication evidence is not the one the logged index names (its hash differs)"
    );
    let publication = Publication::parse(&bundle)
        .map_err(|e| anyhow::anyhow!("malformed publication evidence: {e}"))?;
    let claimed_ref = publication.claimed_release();
    anyhow::ensure!(
        hex::encode(claimed_ref) == instance.release_ref,
        "the evidence names release {} but the logged index names {}",
        hex::encode(claimed_ref),
        instance.release_ref
    );
    let manifest = log
        .reader()
        .get(&format!("{cdn}/{}", instance.release_path()))?;
    let release = log.logged_release(manifest)?;
    anyhow::ensure!(
        release.manifest.release_ref_bytes()? == claimed_ref,
        "the evidence names release {} but the CDN points to the manifest of {}",
        hex::encode(claimed_ref),
        release.manifest.release_ref
    );
    let policy = policies.get(roots, &release)?;
    let published = publication
        .verify(&policy)
        .context("the published key is not bound in valid evidence")?;
    let key_hash: [u8; 32] = Sha256::digest(&published.key_config).into();
    anyhow::ensure!(
        instance_id(&key_hash) == instance.id
            && hex::encode(key_hash) == instance.key_config_sha256,
        "instance id {} is not derived from the key configuration its evidence attests (that \
         would be {})",
        instance.id,
        instance_id(&key_hash)
    );
    Ok((published, release, policy, bundle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Trust;
    use pp_verifier::test_attester::TestRoot;
    use pp_verifier::verify::PolicyError;

    #[test]
    fn no_test_root_means_amds_roots() {
        let roots = Roots::from_config(&Trust::default()).unwrap();
        assert!(matches!(roots.anchor, Anchor::Amd));
        assert_eq!(roots.test_label(), None);
        assert_eq!(roots.crl_count(), 0);
        // Without a CRL, `--verbose` says plainly that revocation was not checked.
        assert_eq!(
            roots.revocation_lines(std::time::SystemTime::now()),
            ["revocation: not checked (no trust.amd_crls)"]
        );
    }

    /// A CRL past its nextUpdate is still applied, with a warning in `--verbose`.
    #[cfg(feature = "test-root")]
    #[test]
    fn a_crl_past_its_next_update_is_warned_about() {
        use x509_cert::der::asn1::UtcTime;
        use x509_cert::time::Time;
        let root = test_root(0);
        let ark = Scratch::new("stale-ark.der", root.ark_der());
        // nextUpdate 2025-06-01T00:00:00Z.
        let next = Time::UtcTime(
            UtcTime::from_unix_duration(std::time::Duration::from_secs(1_748_736_000)).unwrap(),
        );
        let stale = root
            .crl_der_with(&[], |tbs| tbs.next_update = Some(next))
            .unwrap();
        let stale = Scratch::new("stale.crl", &stale);
        let roots = Roots::from_config(&with_crls(Some(&ark), &[&stale])).unwrap();
        let at = |secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        assert_eq!(
            roots.revocation_lines(at(1_748_735_999)),
            ["trust: 1 AMD CRL(s), signed by the trusted ARK"]
        );
        // 2026-06-01.
        let lines = roots.revocation_lines(at(1_780_272_000));
        assert_eq!(
            lines[1],
            format!(
                "warning: AMD's CRL {} is past its nextUpdate 2025-06-01T00:00:00Z (device clock \
                 2026-06-01T00:00:00Z): AMD may have revoked more since; fetch a fresh one",
                stale.0.display()
            )
        );
    }

    /// Test roots (RSA-4096 keys take a while): one per seed per test process.
    fn test_root(which: u8) -> std::sync::Arc<TestRoot> {
        use std::sync::{Arc, OnceLock};
        static ROOTS: [OnceLock<Arc<TestRoot>>; 2] = [OnceLock::new(), OnceLock::new()];
        ROOTS[usize::from(which)]
            .get_or_init(|| Arc::new(TestRoot::generate([0x70 + which; 32]).unwrap()))
            .clone()
    }

    /// Writes `bytes` to a fresh file for this test; removed when the guard drops.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(name: &str, bytes: &[u8]) -> Self {
            let path =
                std::env::temp_dir().join(format!("pp-device-{}-{name}", std::process::id()));
            std::fs::write(&path, bytes).unwrap();
            Self(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn with_crls(test_root_ark: Option<&Scratch>, crls: &[&Scratch]) -> Trust {
        Trust {
            tls_ca: None,
            test_root_ark: test_root_ark.map(|s| s.0.clone()),
            amd_crls: crls.iter().map(|s| s.0.clone()).collect(),
        }
    }

    /// A CRL that AMD's roots did not sign, a malformed one and a missing one each stop the
    /// command when the configuration is read.
    #[test]
    fn a_crl_not_signed_by_a_trusted_ark_is_an_error_at_startup() {
        let foreign = Scratch::new("foreign.crl", &test_root(0).crl_der(&[]).unwrap());
        let err = Roots::from_config(&with_crls(None, &[&foreign])).unwrap_err();
        assert!(
            matches!(
                err,
                RootsError::CrlInvalid(_, PolicyError::CrlNotSignedByTrustedRoot)
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .ends_with("cannot be used: AMD's CRL is not signed by a trusted ARK"),
            "{err}"
        );
        let garbage = Scratch::new("garbage.crl", b"-----BEGIN X509 CRL-----");
        let err = Roots::from_config(&with_crls(None, &[&garbage])).unwrap_err();
        assert!(
            matches!(err, RootsError::CrlInvalid(_, PolicyError::CrlMalformed)),
            "{err}"
        );
        let missing = Trust {
            amd_crls: vec!["/nonexistent/amd.crl".into()],
            ..Trust::default()
        };
        let err = Roots::from_config(&missing).unwrap_err();
        assert!(matches!(err, RootsError::CrlUnreadable(..)), "{err}");
    }

    /// With the test root trusted, its own CRL is taken, and one revoking its ASK refuses the
    /// evidence; another root's CRL is an error.
    #[cfg(feature = "test-root")]
    #[test]
    fn a_crl_revoking_the_ask_refuses_the_evidence() {
        use pp_attestation::Attester;
        use pp_verifier::test_attester::{TEST_ASK_SERIAL, TestAttester};
        use pp_verifier::verify::{CertRole, FailReason};
        use pp_verifier::{CheckName, Outcome};
        let root = test_root(0);
        let ark = Scratch::new("test-ark.der", root.ark_der());
        let clean = Scratch::new("clean.crl", &root.crl_der(&[&[9]]).unwrap());
        let revoking = Scratch::new("revoking.crl", &root.crl_der(&[&TEST_ASK_SERIAL]).unwrap());
        let theirs = Scratch::new(
            "theirs.crl",
            &test_root(1).crl_der(&[&TEST_ASK_SERIAL]).unwrap(),
        );
        let measurement = [0x4D; 48];
        let evidence = TestAttester::new(root.clone(), measurement)
            .attest(&[7; 64])
            .unwrap();
        // 2026-06-01, inside the test chain's validity.
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_780_272_000);

        let roots = Roots::from_config(&with_crls(Some(&ark), &[&clean])).unwrap();
        assert_eq!(roots.crl_count(), 1);
        let policy = roots
            .policy_for(vec![measurement], TcbFloor::AMD_BULLETINS)
            .unwrap();
        assert!(pp_verifier::verify(&evidence, &policy, &[7; 64], now).accepted());

        let roots = Roots::from_config(&with_crls(Some(&ark), &[&clean, &revoking])).unwrap();
        let policy = roots
            .policy_for(vec![measurement], TcbFloor::AMD_BULLETINS)
            .unwrap();
        let verdict = pp_verifier::verify(&evidence, &policy, &[7; 64], now);
        assert!(!verdict.accepted());
        assert!(matches!(
            verdict.outcome(CheckName::NotRevoked),
            Some(Outcome::Fail(FailReason::Revoked {
                cert: CertRole::Ask,
                ..
            }))
        ));

        let err = Roots::from_config(&with_crls(Some(&ark), &[&theirs])).unwrap_err();
        assert!(
            matches!(
                err,
                RootsError::CrlInvalid(_, PolicyError::CrlNotSignedByTrustedRoot)
            ),
            "{err}"
        );
    }

    /// The device builds no policy for a release whose manifest has no TCB floor and guest
    /// policy; for one that has them, the policy carries them.
    #[test]
    fn a_release_without_a_launch_policy_gets_no_policy() {
        use crate::launch_policy::tests::{honest_launch, manifest};
        let release = |manifest| LoggedRelease {
            manifest,
            bytes: vec![],
            log_index: 0,
        };
        let amd = Roots::from_config(&Trust::default()).unwrap();
        let err = amd.policy(&release(manifest(None))).unwrap_err();
        assert!(
            format!("{err:#}").contains("states no launch policy"),
            "{err:#}"
        );
        let policy = amd
            .policy(&release(manifest(Some(honest_launch()))))
            .unwrap();
        assert_eq!(
            policy.minimum_tcb,
            pp_verifier::verify::TcbFloor::AMD_BULLETINS
        );
        assert_eq!(
            policy.guest_policy,
            pp_verifier::verify::GuestPolicyRule::exact(0x30000).unwrap()
        );
    }

    /// The shipped build cannot be talked into trusting a test root by its configuration.
    #[cfg(not(feature = "test-root"))]
    #[test]
    fn the_shipped_build_refuses_a_configured_test_root() {
        let trust = Trust {
            tls_ca: None,
            test_root_ark: Some("/nonexistent/ark.der".into()),
            amd_crls: Vec::new(),
        };
        let err = Roots::from_config(&trust).unwrap_err();
        assert!(matches!(err, RootsError::TestRootInShippedBuild(_)));
        assert!(err.to_string().contains("trusts only AMD's roots"), "{err}");
    }
}
