//! The transparency log of Private Processing release manifests.
//!
//! Every release the enclave may run is appended to this log before devices accept it; a device
//! checks that the release it attests is in the log and that the log only ever grows, so a
//! release shown to one device is visible to everyone (RFC 6962 / RFC 9162 Merkle tree).
//!
//! - [`merkle`]: leaf and node hashing, roots, inclusion and consistency proofs and their
//!   RFC 9162 verification.
//! - [`sth`]: [`SignedTreeHead`], the Ed25519-signed (size, root), and its JSON form.
//! - [`log`]: [`Log`], the server side: the append-only entry file and the signing key.
//! - [`device`]: [`LogVerifier`] and [`DeviceLogState`], the device (or monitor) side that
//!   refuses forks and rollbacks.
//! - [`entry`]: what kinds of entries the log holds (releases, issuer keys, instances,
//!   revocations) and how a reader tells them apart.
//! - [`proof`]: JSON forms of proofs; [`receipt`]: the per-request [`Receipt`].
//!
//! No network code: the HTTP service and the device client sit on top of this API.

#![warn(missing_docs)]

pub mod device;
pub mod entry;
mod hexfield;
pub mod log;
pub mod merkle;
pub mod proof;
pub mod receipt;
pub mod sth;

pub use device::{DeviceError, DeviceLogState, LogVerifier, Update};
pub use hexfield::HexFieldError;
pub use log::{Log, LogError, MAX_ENTRY_LEN};
pub use merkle::{Hash, MerkleError};
pub use proof::{ConsistencyProof, InclusionProof, ProofError};
pub use receipt::{Receipt, ReceiptError};
pub use sth::{SignedTreeHead, SthError};
