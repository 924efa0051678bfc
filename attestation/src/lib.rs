//! SEV-SNP attestation as the enclave links it: the enclave proves to a device what it is running.
//! The device's side — the verifier, AMD's certificate extensions and the test root — is
//! `outside/verifier` (`pp-verifier`), never linked into the image.
//!
//! - [`report`]: the `ATTESTATION_REPORT` wire format (a checked view and a plain `Repr`).
//! - [`tcb`]: the `TCB_VERSION` layout (Milan/Genoa).
//! - [`attester`]: the [`Attester`] trait, [`Evidence`], the hardware [`SnpAttester`] (the
//!   extended guest request over a kernel transport) and [`NoSnp`] for builds without one.
//! - [`binding`]: [`report_data_for`], what `REPORT_DATA` holds.
//! - [`test_signer`] (feature `test-signer`): the same reports from precomputed test material
//!   (VCEK key + certificates), for a test image of the enclave.
//!
//! Pure library: no I/O, no clock, no network. Errors are enums that never carry evidence or
//! request bytes.

pub mod attester;
pub mod binding;
pub mod report;
pub mod tcb;
#[cfg(feature = "test-signer")]
pub mod test_signer;

pub use attester::{AttestError, Attester, Evidence, NoSnp, SnpAttester};
pub use binding::{publication_report_data, report_data_for};
pub use report::{Report, ReportRepr, WireError};
pub use tcb::TcbVersion;
