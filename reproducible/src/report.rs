//! Check an SNP attestation report's launch measurement against a release manifest.

use std::fmt;

use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;

use crate::manifest::Manifest;

/// Size of an SNP attestation report (ABI spec 56860, ATTESTATION_REPORT).
pub const REPORT_LEN: usize = 0x4A0;

/// Why a report is refused for a release.
#[derive(Debug, PartialEq, Eq)]
pub enum ReportCheckError {
    /// Not a well-formed report of a version we understand.
    Malformed,
    /// The measurement is none of the release's digests.
    UnknownMeasurement { measurement: String },
}

impl fmt::Display for ReportCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => write!(f, "not a {REPORT_LEN}-byte SEV-SNP attestation report"),
            Self::UnknownMeasurement { measurement } => {
                write!(
                    f,
                    "measurement {measurement} is not one this release produces"
                )
            }
        }
    }
}

impl std::error::Error for ReportCheckError {}

/// Parse a report (the `sev` crate's layout).
pub fn parse(bytes: &[u8]) -> Result<AttestationReport, ReportCheckError> {
    if bytes.len() != REPORT_LEN {
        return Err(ReportCheckError::Malformed);
    }
    AttestationReport::from_bytes_with(bytes, ()).map_err(|_| ReportCheckError::Malformed)
}

/// The vCPU count whose expected digest the report's measurement equals.
pub fn check_measurement(bytes: &[u8], manifest: &Manifest) -> Result<u32, ReportCheckError> {
    let report = parse(bytes)?;
    manifest
        .measurement
        .vcpus_for(&report.measurement)
        .ok_or_else(|| ReportCheckError::UnknownMeasurement {
            measurement: hex::encode(report.measurement),
        })
}
