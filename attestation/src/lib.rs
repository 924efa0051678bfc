//! SEV-SNP attestation for Private Processing: the enclave proves to a device what it is running,
//! and the device checks the proof before it sends anything.
//!
//! - [`report`]: the `ATTESTATION_REPORT` wire format (a checked view and a plain `Repr`).
//! - [`tcb`]: the `TCB_VERSION` layout (Milan/Genoa).
//! - [`attester`]: the [`Attester`] trait, [`Evidence`], the hardware [`SnpAttester`] (the
//!   extended guest request over a kernel transport) and [`NoSnp`] for builds without one.
//! - [`binding`]: [`report_data_for`], what `REPORT_DATA` holds.
//! - [`verify`](mod@verify) (feature `verifier`, default): the device-side verifier; a [`Verdict`] lists every
//!   check and its outcome.
//! - [`test_attester`] (feature `test-attester`): a generated test ARK/ASK/VCEK chain and an
//!   attester that signs reports with it, for machines without SEV-SNP. Never in the release
//!   image, and never trusted unless a policy says so explicitly.
//! - [`test_signer`] (feature `test-signer`): the same reports from precomputed test material
//!   (VCEK key + certificates), for a test image of the enclave.
//!
//! Pure library: no I/O, no clock, no network. Errors are enums that never carry evidence or
//! request bytes.
//!
//! [`Verdict`]: verify::Verdict

#![forbid(unsafe_code)]

pub mod attester;
pub mod binding;
pub mod report;
pub mod tcb;
#[cfg(feature = "test-attester")]
pub mod test_attester;
#[cfg(feature = "test-signer")]
pub mod test_signer;
#[cfg(any(feature = "verifier", feature = "test-attester"))]
mod vcek_ext;
#[cfg(feature = "verifier")]
pub mod verify;

pub use attester::{AttestError, Attester, Evidence, NoSnp, SnpAttester};
pub use binding::{publication_report_data, report_data_for};
pub use report::{Report, ReportRepr, WireError};
pub use tcb::TcbVersion;
#[cfg(feature = "verifier")]
pub use verify::{Check, CheckName, FailReason, Outcome, Policy, Verdict, verify};
