//! The enclave side: something that produces [`Evidence`] for 64 bytes of report data.

use std::sync::Mutex;

use pp_snp_guest::certs::{CertKind, CertTable, CertTableError};
use pp_snp_guest::channel::{ChannelError, GuestChannel, Transport};

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
    /// There is no SEV-SNP guest interface here.
    #[error("not running as an SEV-SNP guest")]
    NotOnSnp,
    /// Signing the report or a certificate failed (test attester only).
    #[error("signing failed")]
    Signing,
    /// The guest request to the secure processor failed.
    #[error("SEV-SNP guest request failed: {0}")]
    GuestRequest(ChannelError),
    /// The hypervisor's certificate table is malformed.
    #[error("the host's certificate table: {0}")]
    CertTable(CertTableError),
    /// The hypervisor's certificate table lacks a certificate the device needs.
    #[error("the host provides no {0:?} certificate")]
    MissingCertificate(CertKind),
    /// The hypervisor needs a larger certificate buffer than this guest will give it.
    #[error("the host's certificates need {0} pages, more than {MAX_CERT_PAGES}")]
    CertificatesTooLarge(u64),
    /// The firmware returned a report for other report data.
    #[error("the report does not carry the requested report data")]
    ReportDataMismatch,
}

/// Produces evidence whose report carries the given `REPORT_DATA`.
pub trait Attester {
    /// A report with `report_data` in its `REPORT_DATA` field, and the chain that certifies it.
    fn attest(&self, report_data: &[u8; 64]) -> Result<Evidence, AttestError>;
}

/// The attester of a build that has no way to reach the secure processor: it refuses, and never
/// falls back to anything else.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSnp;

impl Attester for NoSnp {
    fn attest(&self, _report_data: &[u8; 64]) -> Result<Evidence, AttestError> {
        Err(AttestError::NotOnSnp)
    }
}

/// Most pages of certificates this guest accepts from the host: what the kernel passes on.
pub const MAX_CERT_PAGES: u64 = pp_snp_guest::guest_call::MAX_CERT_PAGES as u64;

/// The hardware attester: asks the AMD secure processor for a report at VMPL 0 with the
/// extended guest request (`MSG_REPORT_REQ` encrypted with VMPCK0, see
/// [`pp_snp_guest::guest_msg`]) and takes the VCEK, ASK and ARK from the certificate table the
/// host returns with it.
pub struct SnpAttester<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    channel: GuestChannel<T>,
    certs: Vec<u8>,
}

impl<T: Transport> SnpAttester<T> {
    /// An attester over `channel` (the kernel's transport, VMPCK0 and its message counter).
    pub fn new(channel: GuestChannel<T>) -> Self {
        Self {
            state: Mutex::new(State {
                channel,
                certs: vec![0; 4 * 4096],
            }),
        }
    }
}

impl<T: Transport> Attester for SnpAttester<T> {
    fn attest(&self, report_data: &[u8; 64]) -> Result<Evidence, AttestError> {
        // A panic while holding the lock leaves nothing half-written that matters: the channel
        // disables its key on every failure that could desynchronise it.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let State { channel, certs } = &mut *state;
        certs.fill(0);
        let report = match channel.report(report_data, 0, Some(certs)) {
            Err(ChannelError::CertsTooSmall { pages }) if pages <= MAX_CERT_PAGES => {
                *certs = vec![0; pages as usize * 4096];
                channel
                    .report(report_data, 0, Some(certs))
                    .map_err(AttestError::GuestRequest)?
            }
            Err(ChannelError::CertsTooSmall { pages }) => {
                return Err(AttestError::CertificatesTooLarge(pages));
            }
            other => other.map_err(AttestError::GuestRequest)?,
        };
        if report[crate::report::field::REPORT_DATA] != report_data[..] {
            return Err(AttestError::ReportDataMismatch);
        }
        let table = CertTable::parse(certs).map_err(AttestError::CertTable)?;
        let cert = |kind| {
            table
                .get(kind)
                .map(<[u8]>::to_vec)
                .ok_or(AttestError::MissingCertificate(kind))
        };
        Ok(Evidence {
            report: report.to_vec(),
            vcek_der: cert(CertKind::Vcek)?,
            ask_der: cert(CertKind::Ask)?,
            ark_der: cert(CertKind::Ark)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_snp_says_it_is_not_on_snp() {
        assert_eq!(NoSnp.attest(&[0; 64]), Err(AttestError::NotOnSnp));
    }
}
