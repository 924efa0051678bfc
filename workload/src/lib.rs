//! The enclave program's parts, as a library so that tests and benchmarks can drive them directly.
//! `main.rs` wires them into the program that runs in the image.

pub mod attest;
pub mod deadline;
mod door;
pub mod features;
pub mod gate;
pub mod handler;
pub mod health;
pub mod keys;
pub mod oneshot;
pub mod replay;
pub mod server;
pub mod session;
#[cfg(all(target_os = "hermit", target_arch = "x86_64"))]
pub mod switch_check;
#[cfg(target_os = "hermit")]
pub mod sys;
pub mod tls;
pub mod weights;
pub mod wipe;
