//! A software attester for machines without SEV-SNP (tests, the QEMU demo). Only with the
//! `test-attester` feature; the release image is built without it.
//!
//! [`TestRoot::generate`] makes, deterministically from a 32-byte seed, a chain shaped like AMD's
//! Milan chain (names, extensions and validity periods as AMD's real certificates carry them):
//!
//! - ARK: RSA, self-signed with RSASSA-PSS/SHA-384 (salt 48), `CN=ARK-Milan`, `basicConstraints`
//!   critical `cA`, `keyUsage` critical `keyCertSign, cRLSign`, valid 25 years;
//! - ASK: RSA, signed by the ARK the same way, `CN=SEV-Milan`, `basicConstraints` critical `cA`
//!   with path length 0, `keyUsage` critical `keyCertSign`, valid 25 years;
//! - VCEK: ECDSA P-384, signed by the ASK the same way, `CN=SEV-VCEK`, issued per chip id and TCB
//!   with AMD's VCEK extensions (encodings in `vcek_ext.rs`; `hwID` raw like AMD's
//!   KDS, product name `Milan-B0`) and no `basicConstraints` or `keyUsage`, valid 7 years.
//!
//! [`TestRoot::generate_for`] makes the same chain shaped like AMD's Genoa chain instead
//! (`ARK-Genoa`, `SEV-Genoa`, `productName` `Genoa-B1`), so tests can hold a Genoa VCEK to the
//! Genoa floor.
//!
//! Every name also says `O=Private Processing TEST root (not AMD)`. [`TestAttester`] builds reports
//! in the exact SNP byte layout and signs them with the VCEK key. Nothing trusts the test ARK
//! unless a policy is built with `Policy::trusting_test_root`.
//!
//! For tests of the PKI checks the root also re-issues its certificates with edits
//! ([`TestRoot::ark_der_with`], [`TestRoot::ask_der_with`], [`TestRoot::vcek_der_with`]: other
//! validity, names, extensions) and makes CRLs in AMD's KDS format ([`TestRoot::crl_der`]).
//!
//! The RSA keys are [`TEST_RSA_BITS`] (4096) bits like AMD's. Generating them is slow without
//! optimisation, so the workspace builds `rsa` and `num-bigint-dig` with `opt-level = 3` in the
//! dev profile, and tests generate one root per process.

use crate::vcek_ext;
use crate::verify::ProductLine;
use pp_attestation::report::ReportRepr;
use pp_attestation::tcb::TcbVersion;
use pp_attestation::{AttestError, Attester, Evidence};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use rsa::RsaPrivateKey;
use sha2::{Digest, Sha256, Sha384};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::der::asn1::{BitString, Ia5StringRef, OctetString, UtcTime};
use x509_cert::der::oid::{AssociatedOid, ObjectIdentifier};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{EncodePublicKey, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

/// The size of the test ARK and ASK keys, as AMD's.
pub const TEST_RSA_BITS: usize = 4096;

/// The product name in test VCEKs of a Milan-shaped root: Milan's TCB layout.
pub const TEST_PRODUCT_NAME: &str = "Milan-B0";

/// The product name in test VCEKs of a Genoa-shaped root ([`TestRoot::generate_for`]).
pub const TEST_GENOA_PRODUCT_NAME: &str = "Genoa-B1";

/// When the test certificates become valid: 2024-01-01T00:00:00Z (Unix seconds).
pub const TEST_NOT_BEFORE: u64 = 1_704_067_200;

/// When the test ARK and ASK expire, 25 years on like AMD's: 2049-01-01T00:00:00Z.
pub const TEST_CA_NOT_AFTER: u64 = 2_493_072_000;

/// When test VCEKs expire, 7 years on like AMD's: 2031-01-01T00:00:00Z.
pub const TEST_VCEK_NOT_AFTER: u64 = 1_924_992_000;

/// The test ASK's serial number (DER `INTEGER` contents), as its CRL entries name it.
pub const TEST_ASK_SERIAL: [u8; 1] = [2];

const ORG: &str = "O=Private Processing TEST root (not AMD)";

/// A generated ARK → ASK chain and a VCEK key.
pub struct TestRoot {
    seed: [u8; 32],
    product: ProductLine,
    ark_der: Vec<u8>,
    ask_der: Vec<u8>,
    ark_key: RsaPrivateKey,
    ark_name: Name,
    ask_key: RsaPrivateKey,
    ask_name: Name,
    vcek_key: p384::ecdsa::SigningKey,
}

impl core::fmt::Debug for TestRoot {
    // Keys stay out of debug output.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TestRoot").finish_non_exhaustive()
    }
}

/// A deterministic RNG for one purpose, derived from the root's seed.
fn rng(seed: &[u8; 32], purpose: &[u8]) -> ChaCha20Rng {
    let mut hash = Sha256::new();
    hash.update(b"pp/test-attester/v1\0");
    hash.update(seed);
    hash.update(purpose);
    ChaCha20Rng::from_seed(hash.finalize().into())
}

fn name(cn: &str) -> Result<Name, AttestError> {
    Name::from_str(&format!("CN={cn},{ORG}")).map_err(signing)
}

/// A UTC time from Unix seconds (1950..2050, as `UTCTime` encodes).
fn utc(secs: u64) -> Result<Time, AttestError> {
    UtcTime::from_unix_duration(Duration::from_secs(secs))
        .map(Time::UtcTime)
        .map_err(signing)
}

/// Fixed validity periods, so that certificates are reproducible.
fn validity(not_after: u64) -> Result<Validity, AttestError> {
    Ok(Validity {
        not_before: utc(TEST_NOT_BEFORE)?,
        not_after: utc(not_after)?,
    })
}

fn extension(oid: ObjectIdentifier, value: Vec<u8>) -> Result<Extension, AttestError> {
    Ok(Extension {
        extn_id: oid,
        critical: false,
        extn_value: OctetString::new(value).map_err(signing)?,
    })
}

/// A critical standard extension (`basicConstraints`, `keyUsage`), as AMD marks them.
fn critical<T: AssociatedOid + Encode>(value: &T) -> Result<Extension, AttestError> {
    Ok(Extension {
        extn_id: T::OID,
        critical: true,
        extn_value: OctetString::new(value.to_der().map_err(signing)?).map_err(signing)?,
    })
}

/// `basicConstraints` and `keyUsage` of a CA certificate, as AMD's ARK (`path_len` none,
/// `keyCertSign, cRLSign`) and ASK (`path_len` 0, `keyCertSign`) carry them.
fn ca_extensions(path_len: Option<u8>, crl_sign: bool) -> Result<Vec<Extension>, AttestError> {
    let usage = if crl_sign {
        KeyUsages::KeyCertSign | KeyUsages::CRLSign
    } else {
        KeyUsages::KeyCertSign.into()
    };
    Ok(vec![
        critical(&KeyUsage(usage))?,
        critical(&BasicConstraints {
            ca: true,
            path_len_constraint: path_len,
        })?,
    ])
}

/// Maps any encoding or signing error to [`AttestError::Signing`].
fn signing<E>(_: E) -> AttestError {
    AttestError::Signing
}

fn spki_der(key: &impl EncodePublicKey) -> Result<Vec<u8>, AttestError> {
    Ok(key
        .to_public_key_der()
        .map_err(signing)?
        .as_bytes()
        .to_vec())
}

fn der_int(value: u8) -> Result<Vec<u8>, AttestError> {
    value.to_der().map_err(signing)
}

/// The to-be-signed part of a certificate over `subject`'s key, for RSASSA-PSS/SHA-384.
struct CertSpec<'a> {
    serial: &'a [u8],
    issuer: &'a Name,
    subject: &'a Name,
    not_after: u64,
    spki_der: Vec<u8>,
    extensions: Option<Vec<Extension>>,
}

fn tbs(spec: CertSpec<'_>) -> Result<TbsCertificate, AttestError> {
    Ok(TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(spec.serial).map_err(signing)?,
        signature: rsa::pss::get_default_pss_signature_algo_id::<Sha384>().map_err(signing)?,
        issuer: spec.issuer.clone(),
        validity: validity(spec.not_after)?,
        subject: spec.subject.clone(),
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(&spec.spki_der)
            .map_err(signing)?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: spec.extensions,
    })
}

/// RSASSA-PSS/SHA-384 (salt 48) by `key` over `der`.
fn pss_sign(
    key: &RsaPrivateKey,
    der: &[u8],
    rng: &mut ChaCha20Rng,
) -> Result<BitString, AttestError> {
    use rsa::signature::{RandomizedSigner, SignatureEncoding};
    let signer = rsa::pss::SigningKey::<Sha384>::new(key.clone());
    let signature = signer.try_sign_with_rng(rng, der).map_err(signing)?;
    BitString::from_bytes(&signature.to_vec()).map_err(signing)
}

/// Signs `tbs` with `issuer_key` (RSASSA-PSS/SHA-384); the outer algorithm is the inner one.
fn sign(
    tbs: TbsCertificate,
    issuer_key: &RsaPrivateKey,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u8>, AttestError> {
    let signature = pss_sign(issuer_key, &tbs.to_der().map_err(signing)?, rng)?;
    let cert = Certificate {
        signature_algorithm: tbs.signature.clone(),
        tbs_certificate: tbs,
        signature,
    };
    cert.to_der().map_err(signing)
}

/// Parses one of the root's own certificates back.
fn parsed(der: &[u8]) -> Result<TbsCertificate, AttestError> {
    Ok(Certificate::from_der(der).map_err(signing)?.tbs_certificate)
}

impl TestRoot {
    /// Generates the ARK and ASK (RSA-4096) and the VCEK key (P-384) from `seed`, shaped like
    /// AMD's Milan chain. The same seed gives the same keys and certificates.
    pub fn generate(seed: [u8; 32]) -> Result<Self, AttestError> {
        Self::generate_for(seed, ProductLine::Milan)
    }

    /// [`Self::generate`] for `product`: the ARK is `ARK-<product>`, the ASK `SEV-<product>`,
    /// and VCEKs name [`TEST_PRODUCT_NAME`] (Milan) or [`TEST_GENOA_PRODUCT_NAME`] (Genoa).
    pub fn generate_for(seed: [u8; 32], product: ProductLine) -> Result<Self, AttestError> {
        let rsa_key = |purpose: &[u8]| {
            RsaPrivateKey::new(&mut rng(&seed, purpose), TEST_RSA_BITS).map_err(signing)
        };
        let ark_key = rsa_key(b"ark")?;
        let ask_key = rsa_key(b"ask")?;
        let vcek_key = p384::ecdsa::SigningKey::random(&mut rng(&seed, b"vcek"));
        let ark_name = name(&format!("ARK-{product}"))?;
        let ask_name = name(&format!("SEV-{product}"))?;
        let mut sign_rng = rng(&seed, b"ca-signatures");
        let ark_tbs = tbs(CertSpec {
            serial: &[1],
            issuer: &ark_name,
            subject: &ark_name,
            not_after: TEST_CA_NOT_AFTER,
            spki_der: spki_der(&ark_key.to_public_key())?,
            extensions: Some(ca_extensions(None, true)?),
        })?;
        let ark_der = sign(ark_tbs, &ark_key, &mut sign_rng)?;
        let ask_tbs = tbs(CertSpec {
            serial: &TEST_ASK_SERIAL,
            issuer: &ark_name,
            subject: &ask_name,
            not_after: TEST_CA_NOT_AFTER,
            spki_der: spki_der(&ask_key.to_public_key())?,
            extensions: Some(ca_extensions(Some(0), false)?),
        })?;
        let ask_der = sign(ask_tbs, &ark_key, &mut sign_rng)?;
        Ok(Self {
            seed,
            product,
            ark_der,
            ask_der,
            ark_key,
            ark_name,
            ask_key,
            ask_name,
            vcek_key,
        })
    }

    /// The product line the chain is shaped like.
    pub fn product(&self) -> ProductLine {
        self.product
    }

    /// The `productName` of this root's VCEKs (`Milan-B0`, `Genoa-B1`).
    pub fn product_name(&self) -> &'static str {
        match self.product {
            ProductLine::Milan => TEST_PRODUCT_NAME,
            ProductLine::Genoa => TEST_GENOA_PRODUCT_NAME,
        }
    }

    /// The test ARK certificate, DER.
    pub fn ark_der(&self) -> &[u8] {
        &self.ark_der
    }

    /// The test ASK certificate, DER.
    pub fn ask_der(&self) -> &[u8] {
        &self.ask_der
    }

    /// The ARK certificate with `edit` applied to its to-be-signed part, self-signed again by the
    /// ARK key (for tests: other validity, names, extensions).
    pub fn ark_der_with(
        &self,
        edit: impl FnOnce(&mut TbsCertificate),
    ) -> Result<Vec<u8>, AttestError> {
        let mut tbs = parsed(&self.ark_der)?;
        edit(&mut tbs);
        sign(tbs, &self.ark_key, &mut rng(&self.seed, b"edited-ark"))
    }

    /// The ASK certificate with `edit` applied to its to-be-signed part, signed again by the ARK.
    pub fn ask_der_with(
        &self,
        edit: impl FnOnce(&mut TbsCertificate),
    ) -> Result<Vec<u8>, AttestError> {
        let mut tbs = parsed(&self.ask_der)?;
        edit(&mut tbs);
        sign(tbs, &self.ark_key, &mut rng(&self.seed, b"edited-ask"))
    }

    /// AMD's CRL for this root's product, as the KDS serves it (`vcek/v1/{product}/crl`): a DER
    /// X.509 v2 CRL issued and signed by the ARK (RSASSA-PSS/SHA-384) listing `revoked` serial
    /// numbers (DER `INTEGER` contents, e.g. [`TEST_ASK_SERIAL`]), revoked at 2025-01-01.
    pub fn crl_der(&self, revoked: &[&[u8]]) -> Result<Vec<u8>, AttestError> {
        self.crl_der_with(revoked, |_| {})
    }

    /// [`Self::crl_der`] with `edit` applied to its to-be-signed part before the ARK signs it
    /// (for tests: another issuer or algorithm; the outer algorithm follows the inner one).
    pub fn crl_der_with(
        &self,
        revoked: &[&[u8]],
        edit: impl FnOnce(&mut TbsCertList),
    ) -> Result<Vec<u8>, AttestError> {
        let revoked_at = utc(1_735_689_600)?;
        let entries = revoked
            .iter()
            .map(|serial| {
                Ok(RevokedCert {
                    serial_number: SerialNumber::new(serial).map_err(signing)?,
                    revocation_date: revoked_at,
                    crl_entry_extensions: None,
                })
            })
            .collect::<Result<Vec<_>, AttestError>>()?;
        let tbs = TbsCertList {
            version: Version::V2,
            signature: rsa::pss::get_default_pss_signature_algo_id::<Sha384>().map_err(signing)?,
            issuer: self.ark_name.clone(),
            this_update: utc(1_735_689_600)?,
            next_update: Some(utc(TEST_CA_NOT_AFTER)?),
            revoked_certificates: (!entries.is_empty()).then_some(entries),
            crl_extensions: None,
        };
        let mut tbs = tbs;
        edit(&mut tbs);
        let mut purpose = b"crl".to_vec();
        revoked.iter().for_each(|s| purpose.extend_from_slice(s));
        let signature = pss_sign(
            &self.ark_key,
            &tbs.to_der().map_err(signing)?,
            &mut rng(&self.seed, &purpose),
        )?;
        let crl = CertificateList {
            signature_algorithm: tbs.signature.clone(),
            tbs_cert_list: tbs,
            signature,
        };
        crl.to_der().map_err(signing)
    }

    /// A VCEK certificate for `chip_id` at `tcb`, signed by the test ASK.
    pub fn vcek_der(&self, chip_id: &[u8; 64], tcb: TcbVersion) -> Result<Vec<u8>, AttestError> {
        self.vcek_der_with(chip_id, tcb, |_| {})
    }

    /// [`Self::vcek_der`] with `edit` applied to its to-be-signed part before the ASK signs it
    /// (for tests: other validity, product name, extensions).
    pub fn vcek_der_with(
        &self,
        chip_id: &[u8; 64],
        tcb: TcbVersion,
        edit: impl FnOnce(&mut TbsCertificate),
    ) -> Result<Vec<u8>, AttestError> {
        let product = Ia5StringRef::new(self.product_name())
            .and_then(|s| s.to_der())
            .map_err(signing)?;
        let mut extensions = vec![
            extension(vcek_ext::STRUCT_VERSION, der_int(1)?)?,
            extension(vcek_ext::PRODUCT_NAME, product)?,
            extension(vcek_ext::BL_SPL, der_int(tcb.boot_loader)?)?,
            extension(vcek_ext::TEE_SPL, der_int(tcb.tee)?)?,
            extension(vcek_ext::SNP_SPL, der_int(tcb.snp)?)?,
        ];
        for (oid, value) in vcek_ext::SPL_4_TO_7.into_iter().zip(tcb.reserved) {
            extensions.push(extension(oid, der_int(value)?)?);
        }
        extensions.push(extension(vcek_ext::UCODE_SPL, der_int(tcb.microcode)?)?);
        // Raw, as AMD's KDS does (no inner OCTET STRING header).
        extensions.push(extension(vcek_ext::HW_ID, chip_id.to_vec())?);

        let mut tbs = tbs(CertSpec {
            serial: &[3],
            issuer: &self.ask_name,
            subject: &name("SEV-VCEK")?,
            not_after: TEST_VCEK_NOT_AFTER,
            spki_der: spki_der(self.vcek_key.verifying_key())?,
            extensions: Some(extensions),
        })?;
        let unedited = tbs.to_der().map_err(signing)?;
        edit(&mut tbs);
        let mut purpose = b"vcek-signature".to_vec();
        purpose.extend_from_slice(chip_id);
        purpose.extend_from_slice(&tcb.to_u64().to_le_bytes());
        if tbs.to_der().map_err(signing)? != unedited {
            purpose.extend_from_slice(b"edited");
        }
        sign(tbs, &self.ask_key, &mut rng(&self.seed, &purpose))
    }

    /// Emits `repr` and signs bytes `0x000..0x2A0` with the VCEK key (ECDSA P-384, SHA-384,
    /// deterministic per RFC 6979); the signature in `repr` is replaced.
    pub fn sign_report(&self, repr: &ReportRepr) -> Vec<u8> {
        pp_attestation::test_signer::sign_report(&self.vcek_key, repr)
    }

    /// The VCEK's private scalar (48 bytes, big-endian), for a [`PrecomputedAttester`] in a test
    /// image.
    ///
    /// [`PrecomputedAttester`]: pp_attestation::test_signer::PrecomputedAttester
    pub fn vcek_scalar(&self) -> Vec<u8> {
        self.vcek_key.to_bytes().to_vec()
    }
}

/// Produces signed reports for one simulated guest on one simulated chip.
#[derive(Clone, Debug)]
pub struct TestAttester {
    /// The chain and VCEK key.
    pub root: Arc<TestRoot>,
    /// The launch measurement to report.
    pub measurement: [u8; 48],
    /// The guest policy to report.
    pub policy: u64,
    /// The TCB: the VCEK is issued for it and every TCB field of the report carries it.
    pub tcb: TcbVersion,
    /// The chip id: in the report and in the VCEK's `hwID`.
    pub chip_id: [u8; 64],
}

impl TestAttester {
    /// A guest with `measurement`, the usual policy (SMT allowed, reserved bit 17 set, ABI 0.0,
    /// no debug, no migration agent), TCB `4.0.24.219` (bootloader, TEE, SNP, microcode: at or
    /// above the Milan floor, [`TEST_TCB`](pp_attestation::test_signer::TEST_TCB)) and a chip id
    /// derived from the root's seed.
    pub fn new(root: Arc<TestRoot>, measurement: [u8; 48]) -> Self {
        let chip_id = {
            let mut hash = sha2::Sha512::new();
            hash.update(b"pp/test-attester/chip-id\0");
            hash.update(root.seed);
            hash.finalize().into()
        };
        Self {
            root,
            measurement,
            policy: pp_attestation::test_signer::TEST_GUEST_POLICY,
            tcb: pp_attestation::test_signer::TEST_TCB,
            chip_id,
        }
    }

    /// The report this guest would get for `report_data`, unsigned (see
    /// [`test_report_repr`](pp_attestation::test_signer::test_report_repr)).
    pub fn report_repr(&self, report_data: &[u8; 64]) -> ReportRepr {
        let mut repr = pp_attestation::test_signer::test_report_repr(
            self.measurement,
            self.policy,
            self.tcb,
            self.chip_id,
            report_data,
        );
        if self.root.product == ProductLine::Genoa {
            // Genoa B1: family 0x19, model 0x11, stepping 1.
            (repr.cpuid_mod_id, repr.cpuid_step) = (0x11, 0x01);
        }
        repr
    }

    /// Evidence for an already signed `report`: the VCEK for this chip and TCB, the ASK, the ARK.
    pub fn evidence_for(&self, report: Vec<u8>) -> Result<Evidence, AttestError> {
        Ok(Evidence {
            report,
            vcek_der: self.root.vcek_der(&self.chip_id, self.tcb)?,
            ask_der: self.root.ask_der().to_vec(),
            ark_der: self.root.ark_der().to_vec(),
        })
    }
}

impl Attester for TestAttester {
    fn attest(&self, report_data: &[u8; 64]) -> Result<Evidence, AttestError> {
        let report = self.root.sign_report(&self.report_repr(report_data));
        self.evidence_for(report)
    }
}
