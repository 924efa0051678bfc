//! SEV-SNP guest interfaces, as the AMD specifications define them, with no hardware access:
//! everything here encodes, decodes and checks bytes, so all of it is tested on the host.
//!
//! - [`msr`]: the GHCB MSR protocol (GHCB spec 56421 §2.3.1), used before a GHCB page exists.
//! - [`ghcb`]: the GHCB page layout and the exit codes of the `VMGEXIT`s the guest makes.
//! - [`psc`]: page-state-change requests (private ↔ shared) in the GHCB shared buffer.
//! - [`cpuid`]: the SNP CPUID page the firmware provides, its checks and its lookups.
//! - [`guest_msg`]: the VMPCK-encrypted guest messages (SEV-SNP ABI spec 56860 §8.26) and the
//!   attestation report request and response they carry.
//! - [`guest_call`]: the ABI of our kernel's SNP system calls (lengths, result codes, both ways).
//! - [`custody`]: the kernel's rules for VMPCK0 and its message counter in the secrets page.
//! - [`certs`]: the certificate table an extended guest request returns.
//! - [`vc`]: the #VC handler's logic: instruction decoding, the GHCB request, the register
//!   results. Like `msr`, `ghcb`, `psc` and `cpuid`, it uses only `core` and `super::`.
//! - [`page_pool`]: the pool of shared pages the kernel takes device buffers from.
//! - [`secrets`]: the SNP secrets page: VMPCKs and the guest's message counters.
//!
//! The modules `msr`, `ghcb`, `psc`, `cpuid`, `vc`, `page_pool`, `guest_call`, `secrets` and
//! `custody` use only `core` and refer to each other through `super::`, so the kernel build can
//! take them as they are.

#![no_std]

#[cfg(test)]
extern crate std;

pub mod certs;
#[cfg(feature = "guest-request")]
pub mod channel;
pub mod cpuid;
pub mod custody;
pub mod entropy;
pub mod ghcb;
pub mod guest_call;
#[cfg(feature = "guest-request")]
pub mod guest_msg;
pub mod msr;
pub mod page_pool;
pub mod psc;
pub mod secrets;
pub mod vc;
