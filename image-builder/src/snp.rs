//! The SEV-SNP encodings and checks the kernel uses too (`snp-guest/`), taken as source files: a
//! path dependency outside this workspace would put the checkout's path into the image.

// The loader uses a part of each (detection, termination, the CPUID page checks).
#[allow(dead_code)]
#[path = "../../snp-guest/src/cpuid.rs"]
pub mod cpuid;
#[allow(dead_code)]
#[path = "../../snp-guest/src/msr.rs"]
pub mod msr;
