//! Choosing an enclave instance: read the key CDN's index, and keep only instances whose
//! publication evidence verifies against a release in the transparency log.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use pp_client::{Publication, Published};
use pp_protocol::cdn_index::{CdnIndex, INDEX_FILE};
use pp_verifier::Policy;

use crate::fetch;
use crate::releases::{LogClient, LoggedRelease};

/// An instance the device may use.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub published: Published,
    pub release: LoggedRelease,
    /// The attestation policy of `release`, built once per release and shared by its instances.
    pub policy: Arc<Policy>,
}

/// Why an instance was left out, for `--verbose` and for the error when none is left.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub id: String,
    pub reason: String,
}

/// Which roots verify attestation reports.
#[derive(Debug, Clone)]
pub enum Roots {
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
}

impl Roots {
    /// The roots the configuration's `[trust]` asks for. In the shipped build (without the
    /// `test-root` feature) a configured test root is an error, never silently ignored and never
    /// trusted.
    pub fn from_config(trust: &crate::config::Trust) -> Result<Self, RootsError> {
        let Some(path) = &trust.test_root_ark else {
            return Ok(Self::Amd);
        };
        Self::test_root(path)
    }

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

    /// A line for `--verbose` when these are test roots.
    pub fn test_label(&self) -> Option<String> {
        match self {
            Self::Amd => None,
            #[cfg(feature = "test-root")]
            Self::Test(_) => {
                Some("trust: a TEST root instead of AMD's (no SEV-SNP hardware)".into())
            }
        }
    }

    /// The policy for one logged release: its accepted measurements, its TCB floor and exact
    /// guest policy ([`crate::launch_policy::requirements`]; a release without them is refused),
    /// these roots. A test root changes only the roots: the floor and the policy are the same.
    pub fn policy(&self, release: &LoggedRelease) -> Result<Policy> {
        let allowed = release.manifest.accepted_measurements()?;
        let (floor, guest_policy) = crate::launch_policy::requirements(&release.manifest)?;
        let policy = match self {
            Self::Amd => Policy::new(allowed, floor),
            #[cfg(feature = "test-root")]
            Self::Test(ark) => Policy::trusting_test_root(ark, allowed, floor),
        };
        let policy =
            policy.map_err(|e| anyhow::anyhow!("cannot build the attestation policy: {e:?}"))?;
        Ok(policy.with_guest_policy(guest_policy))
    }
}

/// Reads the CDN index and checks every instance in it.
pub fn discover(
    cdn: &str,
    log: &LogClient,
    roots: &Roots,
) -> Result<(Vec<Candidate>, Vec<Rejected>)> {
    let index = CdnIndex::parse(&fetch::get(&format!("{cdn}/{INDEX_FILE}"))?)
        .map_err(|e| anyhow::anyhow!("the key CDN's index is malformed: {e:?}"))?;
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut policies = Policies::default();
    for instance in index.instances {
        match check(
            cdn,
            &instance.evidence,
            &instance.release,
            log,
            roots,
            &mut policies,
        ) {
            Ok((published, release, policy)) => good.push(Candidate {
                id: instance.id,
                published,
                release,
                policy,
            }),
            Err(e) => bad.push(Rejected {
                id: instance.id,
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

fn check(
    cdn: &str,
    evidence_path: &str,
    release_path: &str,
    log: &LogClient,
    roots: &Roots,
    policies: &mut Policies,
) -> Result<(Published, LoggedRelease, Arc<Policy>)> {
    let bundle = fetch::get(&format!("{cdn}/{evidence_path}"))?;
    let publication = Publication::parse(&bundle)
        .map_err(|e| anyhow::anyhow!("malformed publication evidence: {e}"))?;
    let claimed_ref = publication.claimed_release();
    let manifest = fetch::get(&format!("{cdn}/{release_path}"))?;
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
    Ok((published, release, policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Trust;

    #[test]
    fn no_test_root_means_amds_roots() {
        let roots = Roots::from_config(&Trust::default()).unwrap();
        assert!(matches!(roots, Roots::Amd));
        assert_eq!(roots.test_label(), None);
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
        let err = Roots::Amd.policy(&release(manifest(None))).unwrap_err();
        assert!(
            format!("{err:#}").contains("states no launch policy"),
            "{err:#}"
        );
        let policy = Roots::Amd
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
        };
        let err = Roots::from_config(&trust).unwrap_err();
        assert!(matches!(err, RootsError::TestRootInShippedBuild(_)));
        assert!(err.to_string().contains("trusts only AMD's roots"), "{err}");
    }
}
