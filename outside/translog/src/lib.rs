//! The transparency log of Private Processing release manifests.
//!
//! Every release the enclave may run is appended to this log before devices accept it; a device
//! checks that the release it attests is in the log and that the log only ever grows, so a
//! release shown to one device is visible to everyone (RFC 6962 / RFC 9162 Merkle tree).
//!
//! - [`merkle`]: leaf and node hashing, roots, inclusion and consistency proofs and their
//!   RFC 9162 verification.
//! - [`checkpoint`]: tree heads as C2SP `tlog-checkpoint` signed notes, witness
//!   `cosignature/v1` lines, and the device's k-of-n, maximum-age [`TrustPolicy`].
//! - [`witness`]: the C2SP `tlog-witness` `add-checkpoint` logic of our witness.
//! - [`frontier`]: the tree's compact range, so a device checks every new entry.
//! - [`revocation`]: `pp-revocation/1` entries; [`evidence`]: tamper-evidence files (and
//!   [`evidence_swap`], the swapped-enclave kind).
//! - [`log`]: [`Log`], the server side: the append-only entry file and the signing key.
//! - [`device`]: [`DeviceLogState`], the device (or monitor) side that refuses forks,
//!   rollbacks, unwitnessed and stale heads, and records revocations.
//! - [`entry`]: what kinds of entries the log holds (releases, issuer keys, instances,
//!   revocations) and how a reader tells them apart.
//! - [`tiles`]: C2SP `tlog-tiles` entry bundles and their paths, how devices read entries.
//! - [`proof`]: JSON forms of proofs; [`receipt`]: the per-request [`Receipt`].
//!
//! No network code: the HTTP service and the device client sit on top of this API.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod device;
pub mod entry;
pub mod evidence;
pub mod evidence_heads;
pub mod evidence_swap;
pub mod frontier;
mod hexfield;
pub mod log;
pub mod merkle;
pub mod proof;
pub mod receipt;
pub mod revocation;
pub mod tiles;
pub mod witness;

#[cfg(test)]
mod testutil;

pub use checkpoint::{Checkpoint, CheckpointError, NoteKey, TrustPolicy, VerifiedCheckpoint};
pub use device::{DeviceError, DeviceLogState, RevokedRelease, Update};
pub use hexfield::HexFieldError;
pub use log::{Log, LogError, MAX_ENTRY_LEN};
pub use merkle::{Hash, MerkleError};
pub use proof::{ConsistencyProof, InclusionProof, ProofError};
pub use receipt::{Receipt, ReceiptError};
