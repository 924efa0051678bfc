//! The chain checked as a PKI, beyond its signatures: validity periods against the device's clock,
//! `basicConstraints` and `keyUsage` where AMD sets them, one product named by all three
//! certificates, and AMD's CRL for the ASK.
//!
//! What AMD's real certificates carry (Milan and Genoa, checked against the ones built into the
//! `sev` crate and a real Milan VCEK, see the tests):
//!
//! | | subject CN | `basicConstraints` (critical) | `keyUsage` (critical) | validity |
//! |---|---|---|---|---|
//! | ARK | `ARK-Milan`, `ARK-Genoa` | `cA` | `keyCertSign, cRLSign` | 25 years |
//! | ASK | `SEV-Milan`, `SEV-Genoa` | `cA`, path length 0 | `keyCertSign` | 25 years |
//! | VCEK | `SEV-VCEK`, `productName` `Milan-B0`… | — | — | 7 years |
//!
//! Exactly that is required: nothing of the VCEK beyond its product (AMD sets no constraints on
//! it), and the ARK's `cRLSign` only where a CRL is used (in [`Policy::with_amd_crl`]).

use super::FailReason;
use super::policy::Policy;
use crate::vcek_ext;
use core::fmt;
use std::time::{Duration, SystemTime};
use x509_cert::Certificate;
use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
use x509_cert::der::oid::db::rfc4519::CN;
use x509_cert::der::{DateTime, Encode};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::name::Name;

/// Which certificate of the chain a failure is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertRole {
    /// AMD's root key certificate.
    Ark,
    /// AMD's SEV signing key certificate (the intermediate).
    Ask,
    /// The chip's versioned endorsement key certificate.
    Vcek,
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ark => "ARK",
            Self::Ask => "ASK",
            Self::Vcek => "VCEK",
        })
    }
}

/// A point in time: whole seconds since the Unix epoch, UTC. Shown as `2030-04-03T19:23:43Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// A clock reading; a time before 1970 reads as 1970-01-01.
    pub fn from_system_time(time: SystemTime) -> Self {
        Self(
            time.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )
    }

    fn of(time: &x509_cert::time::Time) -> Self {
        Self(time.to_unix_duration().as_secs())
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::from_unix_duration(Duration::from_secs(self.0)) {
            Ok(time) => write!(f, "{time}"),
            Err(_) => write!(f, "{} s after 1970", self.0),
        }
    }
}

/// An AMD product line the verifier knows (the TCB layout depends on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Product {
    Milan,
    Genoa,
}

impl Product {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "Milan" => Some(Self::Milan),
            "Genoa" => Some(Self::Genoa),
            _ => None,
        }
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Milan => "Milan",
            Self::Genoa => "Genoa",
        })
    }
}

/// A certificate serial number (the DER `INTEGER` contents, at most 21 bytes: RFC 5280's 20
/// octets plus a sign byte). Shown in hex, e.g. `0x010001`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Serial {
    len: u8,
    bytes: [u8; 21],
}

impl Serial {
    /// A serial from its DER `INTEGER` contents (longer input is cut at 21 bytes).
    pub fn new(bytes: &[u8]) -> Self {
        let mut serial = Self {
            len: 0,
            bytes: [0; 21],
        };
        let n = bytes.len().min(21);
        serial.bytes[..n].copy_from_slice(&bytes[..n]);
        serial.len = n as u8;
        serial
    }

    /// The serial's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        self.as_bytes()
            .iter()
            .try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The three certificates, parsed.
pub(super) struct Chain<'a> {
    pub ark: &'a Certificate,
    pub ask: &'a Certificate,
    pub vcek: &'a Certificate,
}

impl Chain<'_> {
    fn each(&self) -> [(CertRole, &Certificate); 3] {
        [
            (CertRole::Ark, self.ark),
            (CertRole::Ask, self.ask),
            (CertRole::Vcek, self.vcek),
        ]
    }
}

/// `certificates-valid`: every certificate's validity period contains `now` (the device's clock).
pub(super) fn validity(chain: &Chain<'_>, now: UnixTime) -> Result<(), FailReason> {
    for (cert, c) in chain.each() {
        let validity = &c.tbs_certificate.validity;
        let not_before = UnixTime::of(&validity.not_before);
        let not_after = UnixTime::of(&validity.not_after);
        if now < not_before {
            return Err(FailReason::CertificateNotYetValid {
                cert,
                not_before,
                now,
            });
        }
        if now > not_after {
            return Err(FailReason::CertificateExpired {
                cert,
                not_after,
                now,
            });
        }
    }
    Ok(())
}

/// `ca-constraints`: the ARK and the ASK are CAs that may sign certificates (`basicConstraints`
/// `cA`, `keyUsage` `keyCertSign`), and the ARK's path length leaves room for the ASK. The VCEK
/// carries neither extension at AMD, so nothing is required of it.
pub(super) fn ca_constraints(chain: &Chain<'_>) -> Result<(), FailReason> {
    for (role, cert) in [(CertRole::Ark, chain.ark), (CertRole::Ask, chain.ask)] {
        let tbs = &cert.tbs_certificate;
        let constraints = tbs
            .get::<BasicConstraints>()
            .map_err(|_| FailReason::CaExtensionMalformed(role))?;
        let Some((_, constraints)) = constraints.filter(|(_, bc)| bc.ca) else {
            return Err(FailReason::NotACa(role));
        };
        // Below the ARK is one more CA, the ASK: a path length of 0 on the ARK forbids it.
        if role == CertRole::Ark && constraints.path_len_constraint == Some(0) {
            return Err(FailReason::PathLengthExceeded(role));
        }
        let usage = tbs
            .get::<KeyUsage>()
            .map_err(|_| FailReason::CaExtensionMalformed(role))?;
        if !usage.is_some_and(|(_, usage)| usage.key_cert_sign()) {
            return Err(FailReason::MayNotSignCertificates(role));
        }
    }
    Ok(())
}

/// `product-agreement`: the ARK is `ARK-<product>`, the ASK `SEV-<product>`, the VCEK's
/// `productName` `<product>-<stepping>`, one product for all three and one the verifier knows;
/// and each certificate's issuer name is its issuer's subject name.
pub(super) fn product_agreement(chain: &Chain<'_>) -> Result<(), FailReason> {
    for (role, cert, issuer) in [
        (CertRole::Ark, chain.ark, chain.ark),
        (CertRole::Ask, chain.ask, chain.ark),
        (CertRole::Vcek, chain.vcek, chain.ask),
    ] {
        if !same_name(
            &cert.tbs_certificate.issuer,
            &issuer.tbs_certificate.subject,
        ) {
            return Err(FailReason::IssuerNameMismatch(role));
        }
    }
    let ark = named_product(CertRole::Ark, chain.ark, "ARK-")?;
    let ask = named_product(CertRole::Ask, chain.ask, "SEV-")?;
    let vcek = vcek_ext::product_line(chain.vcek)
        .ok()
        .and_then(Product::from_name)
        .ok_or(FailReason::UnknownProduct(CertRole::Vcek))?;
    for (cert, product) in [(CertRole::Ask, ask), (CertRole::Vcek, vcek)] {
        if product != ark {
            return Err(FailReason::ProductDisagrees {
                cert,
                product,
                ark_product: ark,
            });
        }
    }
    Ok(())
}

/// `not-revoked`: the ASK's serial is on none of the policy's CRLs signed by this chain's ARK.
/// Passes when the policy holds no CRL for this ARK — then nothing was checked: the check is as
/// current as the CRL the device was given, and a device without one says so (`pp --verbose`:
/// "revocation: not checked"; `pp verify-report` without `--crl` prints the check as not
/// checked).
pub(super) fn not_revoked(chain: &Chain<'_>, policy: &Policy) -> Result<(), FailReason> {
    let Ok(ark_spki) = chain.ark.tbs_certificate.subject_public_key_info.to_der() else {
        return Err(FailReason::CertificateMalformed);
    };
    let serial = chain.ask.tbs_certificate.serial_number.as_bytes();
    for crl in policy.amd_crls().iter().filter(|c| c.signed_by(&ark_spki)) {
        if let Some(since) = crl.revoked(serial) {
            return Err(FailReason::Revoked {
                cert: CertRole::Ask,
                serial: Serial::new(serial),
                since,
            });
        }
    }
    Ok(())
}

/// The product a CA certificate's subject CN names after `prefix` (`ARK-Milan` → Milan).
fn named_product(role: CertRole, cert: &Certificate, prefix: &str) -> Result<Product, FailReason> {
    common_name(&cert.tbs_certificate.subject)
        .and_then(|cn| cn.strip_prefix(prefix))
        .and_then(Product::from_name)
        .ok_or(FailReason::UnknownProduct(role))
}

/// Names compare by their DER encoding (AMD's issuer and subject names are byte-identical).
pub(super) fn same_name(a: &Name, b: &Name) -> bool {
    matches!((a.to_der(), b.to_der()), (Ok(a), Ok(b)) if a == b)
}

/// The one common name in `name`, if it has exactly one and it is a string.
fn common_name(name: &Name) -> Option<&str> {
    let mut cns = name
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == CN);
    let cn = cns.next()?;
    if cns.next().is_some() {
        return None;
    }
    let value = &cn.value;
    value
        .decode_as::<Utf8StringRef<'_>>()
        .map(|s| s.as_str())
        .or_else(|_| {
            value
                .decode_as::<PrintableStringRef<'_>>()
                .map(|s| s.as_str())
        })
        .or_else(|_| value.decode_as::<Ia5StringRef<'_>>().map(|s| s.as_str()))
        .ok()
}

#[cfg(test)]
#[path = "pki_tests.rs"]
mod tests;
