//! A software attester for machines without SEV-SNP (tests, the QEMU demo). Only with the
//! `test-attester` feature; the release image is built without it.
//!
//! [`TestRoot::generate`] makes, deterministically from a 32-byte seed, a chain shaped like AMD's:
//!
//! - ARK: RSA, self-signed with RSASSA-PSS/SHA-384 (salt 48), `CN=ARK-Test`;
//! - ASK: RSA, signed by the ARK the same way, `CN=SEV-Test`;
//! - VCEK: ECDSA P-384, signed by the ASK the same way, `CN=SEV-VCEK`, issued per chip id and TCB
//!   with AMD's VCEK extensions (encodings in `vcek_ext.rs`; `hwID` raw like AMD's
//!   KDS, product name `Milan-B0`).
//!
//! Every name also says `O=Private Processing TEST root (not AMD)`. [`TestAttester`] builds reports
//! in the exact SNP byte layout and signs them with the VCEK key. Nothing trusts the test ARK
//! unless a policy is built with `Policy::trusting_test_root`.
//!
//! The RSA keys are [`TEST_RSA_BITS`] (4096) bits like AMD's. Generating them is slow without
//! optimisation, so the workspace builds `rsa` and `num-bigint-dig` with `opt-level = 3` in the
//! dev profile, and tests generate one root per process.

use crate::vcek_ext;
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
use x509_cert::der::asn1::{BitString, Ia5StringRef, OctetString, UtcTime};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{EncodePublicKey, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

/// The size of the test ARK and ASK keys, as AMD's.
pub const TEST_RSA_BITS: usize = 4096;

/// The product name in test VCEKs: Milan's TCB layout.
pub const TEST_PRODUCT_NAME: &str = "Milan-B0";

const ORG: &str = "O=Private Processing TEST root (not AMD)";

/// A generated ARK → ASK chain and a VCEK key.
pub struct TestRoot {
    seed: [u8; 32],
    ark_der: Vec<u8>,
    ask_der: Vec<u8>,
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

fn validity() -> Result<Validity, AttestError> {
    // 2024-01-01T00:00:00Z to 2049-12-31T23:59:59Z, fixed so that certificates are reproducible.
    let time = |secs| {
        UtcTime::from_unix_duration(Duration::from_secs(secs))
            .map(Time::UtcTime)
            .map_err(signing)
    };
    Ok(Validity {
        not_before: time(1_704_067_200)?,
        not_after: time(2_524_607_999)?,
    })
}

fn extension(oid: ObjectIdentifier, value: Vec<u8>) -> Result<Extension, AttestError> {
    Ok(Extension {
        extn_id: oid,
        critical: false,
        extn_value: OctetString::new(value).map_err(signing)?,
    })
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

/// A certificate over `subject`'s key, signed by `issuer_key` with RSASSA-PSS/SHA-384.
struct CertSpec<'a> {
    serial: u8,
    issuer: &'a Name,
    subject: &'a Name,
    spki_der: Vec<u8>,
    extensions: Option<Vec<Extension>>,
}

fn issue(
    spec: CertSpec<'_>,
    issuer_key: &RsaPrivateKey,
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u8>, AttestError> {
    use rsa::signature::{RandomizedSigner, SignatureEncoding};
    let algorithm = rsa::pss::get_default_pss_signature_algo_id::<Sha384>().map_err(signing)?;
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&[spec.serial]).map_err(signing)?,
        signature: algorithm.clone(),
        issuer: spec.issuer.clone(),
        validity: validity()?,
        subject: spec.subject.clone(),
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(&spec.spki_der)
            .map_err(signing)?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: spec.extensions,
    };
    let signer = rsa::pss::SigningKey::<Sha384>::new(issuer_key.clone());
    let signature = signer
        .try_sign_with_rng(rng, &tbs.to_der().map_err(signing)?)
        .map_err(signing)?;
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(&signature.to_vec()).map_err(signing)?,
    };
    cert.to_der().map_err(signing)
}

impl TestRoot {
    /// Generates the ARK and ASK (RSA-4096) and the VCEK key (P-384) from `seed`. The same seed
    /// gives the same keys and certificates.
    pub fn generate(seed: [u8; 32]) -> Result<Self, AttestError> {
        let rsa_key = |purpose: &[u8]| {
            RsaPrivateKey::new(&mut rng(&seed, purpose), TEST_RSA_BITS).map_err(signing)
        };
        let ark_key = rsa_key(b"ark")?;
        let ask_key = rsa_key(b"ask")?;
        let vcek_key = p384::ecdsa::SigningKey::random(&mut rng(&seed, b"vcek"));
        let ark_name = name("ARK-Test")?;
        let ask_name = name("SEV-Test")?;
        let mut sign_rng = rng(&seed, b"ca-signatures");
        let ark_der = issue(
            CertSpec {
                serial: 1,
                issuer: &ark_name,
                subject: &ark_name,
                spki_der: spki_der(&ark_key.to_public_key())?,
                extensions: None,
            },
            &ark_key,
            &mut sign_rng,
        )?;
        let ask_der = issue(
            CertSpec {
                serial: 2,
                issuer: &ark_name,
                subject: &ask_name,
                spki_der: spki_der(&ask_key.to_public_key())?,
                extensions: None,
            },
            &ark_key,
            &mut sign_rng,
        )?;
        Ok(Self {
            seed,
            ark_der,
            ask_der,
            ask_key,
            ask_name,
            vcek_key,
        })
    }

    /// The test ARK certificate, DER.
    pub fn ark_der(&self) -> &[u8] {
        &self.ark_der
    }

    /// The test ASK certificate, DER.
    pub fn ask_der(&self) -> &[u8] {
        &self.ask_der
    }

    /// A VCEK certificate for `chip_id` at `tcb`, signed by the test ASK.
    pub fn vcek_der(&self, chip_id: &[u8; 64], tcb: TcbVersion) -> Result<Vec<u8>, AttestError> {
        let product = Ia5StringRef::new(TEST_PRODUCT_NAME)
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

        let spki_der = spki_der(self.vcek_key.verifying_key())?;
        let mut purpose = b"vcek-signature".to_vec();
        purpose.extend_from_slice(chip_id);
        purpose.extend_from_slice(&tcb.to_u64().to_le_bytes());
        issue(
            CertSpec {
                serial: 3,
                issuer: &self.ask_name,
                subject: &name("SEV-VCEK")?,
                spki_der,
                extensions: Some(extensions),
            },
            &self.ask_key,
            &mut rng(&self.seed, &purpose),
        )
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
        pp_attestation::test_signer::test_report_repr(
            self.measurement,
            self.policy,
            self.tcb,
            self.chip_id,
            report_data,
        )
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
