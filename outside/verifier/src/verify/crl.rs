//! AMD's certificate revocation list, as the KDS serves it for a product
//! (`https://kdsintf.amd.com/vcek/v1/{Milan,Genoa}/crl`, AMD publication 57230): a DER X.509 v2
//! CRL issued and signed by the product's ARK with RSASSA-PSS/SHA-384, listing revoked ASKs by
//! serial number. The device cannot download it; it is handed to the policy from the device's
//! trust configuration ([`Policy::with_amd_crl`]) and checked there once: a CRL that does not
//! parse, is not signed by a trusted root, names another issuer, or whose root may not sign CRLs
//! is an error, never silently ignored.
//!
//! Its `nextUpdate` is kept but not enforced: the file is as current as whoever configured it
//! (like go-sev-guest, which checks only the signature and the ASK's serial), and a device must
//! not stop working because nobody refreshed a file. [`Policy::amd_crls_past_next_update`] names
//! the CRLs past it against the caller's clock, so `pp verify-report` and the device's
//! `--verbose` can warn that AMD may have revoked more since.

use super::pki::{UnixTime, same_name};
use super::policy::{Policy, PolicyError};
use std::time::SystemTime;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::der::referenced::OwnedToRef;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::KeyUsage;

/// `id-RSASSA-PSS` (RFC 4055): how AMD signs its certificates and CRLs.
const RSASSA_PSS: x509_cert::der::oid::ObjectIdentifier =
    x509_cert::der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

/// A CRL that passed [`Policy::with_amd_crl`]: who signed it and what it revokes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AmdCrl {
    /// The `SubjectPublicKeyInfo` (DER) of the trusted root that signed it.
    root_spki: Vec<u8>,
    /// Revoked serial numbers (DER `INTEGER` contents) and when.
    revoked: Vec<(Vec<u8>, UnixTime)>,
    /// When AMD means to issue the next CRL (`nextUpdate`), if the CRL says.
    next_update: Option<UnixTime>,
}

impl AmdCrl {
    /// Whether the root with this `SubjectPublicKeyInfo` (DER) signed the CRL.
    pub(crate) fn signed_by(&self, spki_der: &[u8]) -> bool {
        self.root_spki == spki_der
    }

    /// A CRL for tests of the revocation check: signed by the root with `root_spki`, revoking
    /// `revoked`, with no `nextUpdate`.
    #[cfg(test)]
    pub(crate) fn for_test(root_spki: Vec<u8>, revoked: &[&[u8]]) -> Self {
        Self {
            root_spki,
            revoked: revoked.iter().map(|s| (s.to_vec(), UnixTime(0))).collect(),
            next_update: None,
        }
    }

    /// When `serial` was revoked, if it was.
    pub(crate) fn revoked(&self, serial: &[u8]) -> Option<UnixTime> {
        self.revoked
            .iter()
            .find(|(s, _)| s.as_slice() == serial)
            .map(|(_, at)| *at)
    }

    /// Reads `der` and finds the root among `roots` (certificates) that signed it.
    fn verify<'a>(
        der: &[u8],
        mut roots: impl Iterator<Item = &'a Certificate>,
    ) -> Result<Self, PolicyError> {
        let crl = CertificateList::from_der(der).map_err(|_| PolicyError::CrlMalformed)?;
        let tbs = &crl.tbs_cert_list;
        if crl.signature_algorithm.oid != RSASSA_PSS || tbs.signature != crl.signature_algorithm {
            return Err(PolicyError::CrlAlgorithm);
        }
        let message = tbs.to_der().map_err(|_| PolicyError::CrlMalformed)?;
        let signature = rsa::pss::Signature::try_from(crl.signature.raw_bytes())
            .map_err(|_| PolicyError::CrlNotSignedByTrustedRoot)?;
        let root = roots
            .find(|root| pss_verifies(root, &message, &signature))
            .ok_or(PolicyError::CrlNotSignedByTrustedRoot)?;
        if !same_name(&tbs.issuer, &root.tbs_certificate.subject) {
            return Err(PolicyError::CrlIssuerMismatch);
        }
        // AMD's ARKs say `cRLSign`; a root whose keyUsage leaves it out may not sign CRLs.
        match root.tbs_certificate.get::<KeyUsage>() {
            Ok(Some((_, usage))) if usage.crl_sign() => {}
            _ => return Err(PolicyError::CrlRootMayNotSignCrls),
        }
        let root_spki = root
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|_| PolicyError::RootMalformed)?;
        let revoked = tbs
            .revoked_certificates
            .iter()
            .flatten()
            .map(|entry| {
                (
                    entry.serial_number.as_bytes().to_vec(),
                    UnixTime(entry.revocation_date.to_unix_duration().as_secs()),
                )
            })
            .collect();
        let next_update = tbs
            .next_update
            .map(|t| UnixTime(t.to_unix_duration().as_secs()));
        Ok(Self {
            root_spki,
            revoked,
            next_update,
        })
    }
}

/// RSASSA-PSS with SHA-384 and a 48-byte salt by `root`'s key over `message`.
fn pss_verifies(root: &Certificate, message: &[u8], signature: &rsa::pss::Signature) -> bool {
    use rsa::signature::Verifier;
    let spki = root.tbs_certificate.subject_public_key_info.owned_to_ref();
    let Ok(key) = rsa::RsaPublicKey::try_from(spki) else {
        return false;
    };
    rsa::pss::VerifyingKey::<sha2::Sha384>::new(key)
        .verify(message, signature)
        .is_ok()
}

impl Policy {
    /// The same policy with AMD's CRL for one product (DER, as the KDS serves it): a chain whose
    /// ASK it lists is refused (`not-revoked`). May be called once per product.
    ///
    /// Errors if the CRL does not parse, is not RSASSA-PSS, is not signed by one of the policy's
    /// trusted roots, names an issuer other than that root, or that root's `keyUsage` lacks
    /// `cRLSign`.
    pub fn with_amd_crl(mut self, crl_der: &[u8]) -> Result<Self, PolicyError> {
        let crl = AmdCrl::verify(
            crl_der,
            self.trusted_roots().iter().map(|r| r.certificate()),
        )?;
        self.amd_crls.push(crl);
        Ok(self)
    }

    /// The CRLs whose `nextUpdate` is before `now` (the caller's clock), as their position in the
    /// order they were added and their `nextUpdate`: AMD may have revoked more since. Not a
    /// refusal (see the module doc); for a warning.
    pub fn amd_crls_past_next_update(&self, now: SystemTime) -> Vec<(usize, UnixTime)> {
        let now = UnixTime::from_system_time(now);
        self.amd_crls
            .iter()
            .enumerate()
            .filter_map(|(i, crl)| crl.next_update.filter(|&next| next < now).map(|n| (i, n)))
            .collect()
    }
}
