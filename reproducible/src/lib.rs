//! For verifiers: release manifests, the offline SEV-SNP launch digest, checks of attestation
//! reports against a release, and rebuild-and-compare.

pub mod checkout;
pub mod cli;
pub mod manifest;
pub mod measure;
pub mod report;
pub mod verify;

pub use manifest::{Artifact, Manifest, Measurement, PackagePin, SCHEMA, sha256_hex};
