//! For verifiers: release manifests, the offline SEV-SNP launch digest, checks of attestation
//! reports against a release, and the comparison of a built release folder with a manifest.
//!
//! Without features the crate is only the release format (manifest, `release_ref`, assembly), so a
//! device that reads releases pulls in neither `sev` nor clap. `measure` adds the launch digest,
//! report checks and folder comparison; `cli` adds the `pp-reproducible` command. Rebuilding a
//! release from source is the task runner's job (`cargo xtask verify`), not this crate's.

#[cfg(feature = "cli")]
pub mod cli;
pub mod manifest;
#[cfg(feature = "measure")]
pub mod measure;
pub mod release;
#[cfg(feature = "measure")]
pub mod report;
#[cfg(feature = "measure")]
pub mod verify;

pub use manifest::{
    Artifact, LaunchPolicy, MEASUREMENT_LEN, Manifest, Measurement, PackagePin, SCHEMA, TcbMinimum,
    sha256_hex,
};
