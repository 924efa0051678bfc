//! The enclave side: something that produces [`Evidence`] for 64 bytes of report data.

/// What the enclave sends the device: the signed report and the certificate chain to check it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// The attestation report, exactly [`crate::report::REPORT_LEN`] (1184) bytes.
    pub report: Vec<u8>,
    /// The VCEK certificate (DER) whose key signed the report.
    pub vcek_der: Vec<u8>,
    /// The ASK certificate (DER) that signed the VCEK.
    pub ask_der: Vec<u8>,
    /// The ARK certificate (DER), self-signed, that signed the ASK.
    pub ark_der: Vec<u8>,
}

/// Errors from producing evidence. They carry no request data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    /// There is no SEV-SNP guest interface here (or it is not wired up yet).
    #[error("not running as an SEV-SNP guest")]
    NotOnSnp,
    /// Signing the report or a certificate failed (test attester only).
    #[error("signing failed")]
    Signing,
}

/// Produces evidence whose report carries the given `REPORT_DATA`.
pub trait Attester {
    /// A report with `report_data` in its `REPORT_DATA` field, and the chain that certifies it.
    fn attest(&self, report_data: &[u8; 64]) -> Result<Evidence, AttestError>;
}

/// The hardware attester: asks the AMD secure processor for a report (`MSG_REPORT_REQ` over the
/// GHCB guest-request protocol) and attaches the VCEK chain.
///
/// **Not implemented yet.** The guest-request path (GHCB page, VMPCK-encrypted messages, the
/// extended request that returns the certificate table) comes with the SNP kernel work, so today
/// [`SnpAttester::attest`] always returns [`AttestError::NotOnSnp`]. It never falls back to
/// anything else: a build without the test attester has no way to produce evidence without SNP.
#[derive(Clone, Copy, Debug, Default)]
pub struct SnpAttester {
    _private: (),
}

impl SnpAttester {
    /// The hardware attester.
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl Attester for SnpAttester {
    fn attest(&self, _report_data: &[u8; 64]) -> Result<Evidence, AttestError> {
        Err(AttestError::NotOnSnp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snp_attester_says_it_is_not_on_snp() {
        assert_eq!(
            SnpAttester::new().attest(&[0; 64]),
            Err(AttestError::NotOnSnp)
        );
    }
}
