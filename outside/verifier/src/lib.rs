//! The device-side SEV-SNP verifier: it decides whether an enclave's evidence is good enough to send
//! a user's messages to. Runs outside the enclave (device, operator tooling, auditors); the enclave
//! links only `pp-attestation`.
//!
//! - [`verify`](mod@verify): evidence + policy + expected binding → a [`Verdict`] that lists every
//!   check and its outcome.
//! - `vcek_ext` (private): AMD's VCEK certificate extensions (TCB, product, `hwID`).
//! - [`test_attester`] (feature `test-attester`): a generated test ARK/ASK/VCEK chain and an
//!   attester that signs reports with it, for machines without SEV-SNP. Never trusted unless a
//!   policy says so explicitly.
//!
//! Pure library: no I/O, no network, and no clock of its own (the caller passes the device's to
//! [`verify()`]). Errors are enums that never carry evidence bytes.

#[cfg(feature = "test-attester")]
pub mod test_attester;
mod vcek_ext;
pub mod verify;

pub use verify::{Check, CheckName, EvidenceRef, FailReason, Outcome, Policy, Verdict, verify};
