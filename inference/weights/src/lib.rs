//! The enclave's model files as bytes, without any model code: the GGUF v3 format ([`gguf`],
//! [`gguf_write`]), the models' hyper-parameters ([`config`]), tiny seeded random-weight models in
//! the real formats ([`tiny`]), what the weights blob holds ([`bundle`]), and products with
//! matrices kept in their GGUF block types ([`qmat`]).
//!
//! `unsafe` is denied except in one module, `qmat`'s AVX2 kernels (`std::arch` intrinsics, one
//! `// SAFETY:` line per block).
//!
//! Kept apart from `pp-inference` (Burn) so that the `pp-weights` packer — which every image
//! build and every `verify` rebuild runs — compiles in seconds; the enclave links the same code
//! through `pp-inference`, so the files are read and written in one place.
#![warn(missing_docs)]

pub mod bundle;
pub mod config;
pub mod gguf;
pub mod gguf_write;
mod kquant;
pub mod qmat;
pub mod tiny;
