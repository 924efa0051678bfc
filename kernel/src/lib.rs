//! Builds the pinned Hermit kernel (`hermit-kernel` 0.11.0 from crates.io) into `libhermit.a`,
//! the static library the workload links.
//!
//! The pinned source is never committed: the task runner fetches the crate, checks its checksum,
//! copies it into the build directory and applies [`KERNEL_EDITS`] there. Everything the kernel's
//! own (unpublished) build tool did after `cargo build` is re-done in [`archive`].

pub mod archive;
pub mod edit;

use edit::{Files, SourceEdit};

/// Kernel cargo features of the enclave image: ACPI (power-off, RSDP), DHCPv4 on virtio-net over
/// PCI, FSGSBASE for fast TLS, SMP, TCP.
pub const KERNEL_FEATURES: &[&str] = &["acpi", "dhcpv4", "fsgsbase", "pci", "smp", "tcp"];

/// Target the kernel library is compiled for.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// Prefix given to every kernel symbol that is not part of the system-call surface.
pub const SYMBOL_PREFIX: &str = "hermit";

/// The source edits that hermit-kernel 0.11.0 needs to build with the pinned toolchain
/// (Debian rustc 1.96, LLVM 22) and to build reproducibly.
pub const KERNEL_EDITS: &[SourceEdit] = &[
    SourceEdit {
        files: Files::One("build.rs"),
        find: r#".arg("--section-start=.text=0x8000")"#,
        replace: r#".arg("--section-start=.text=0x8000").arg("--image-base=0x8000")"#,
        count: 1,
        reason: "lld 22 refuses the SMP boot code link with \"section '.text' address (0x8000) is \
                 smaller than image base\"; set the image base to the section start",
    },
    SourceEdit {
        files: Files::One("build.rs"),
        find: r#"let llvm_as = binutil("llvm-as")?;"#,
        replace: r#"let llvm_as = PathBuf::from(env::var_os("PP_LLVM_AS").context("PP_LLVM_AS is not set")?);"#,
        count: 1,
        reason: "the build script looks for llvm-as in rustup's llvm-tools component, which Debian's \
                 toolchain does not have; take the pinned LLVM 22 tool from the environment",
    },
    SourceEdit {
        files: Files::One("build.rs"),
        find: r#"let rust_lld = binutil("rust-lld")?;"#,
        replace: r#"let rust_lld = PathBuf::from(env::var_os("PP_RUST_LLD").context("PP_RUST_LLD is not set")?);"#,
        count: 1,
        reason: "as above, for rust-lld",
    },
    SourceEdit {
        files: Files::RustBelow("src"),
        find: "#[naked]",
        replace: "#[unsafe(naked)]",
        count: 9,
        reason: "rustc 1.88+ accepts naked functions only as the unsafe attribute #[unsafe(naked)]",
    },
    SourceEdit {
        files: Files::One("src/fs/mod.rs"),
        find: "build_time::build_time_utc!()",
        replace: "\"1970-01-01T00:00:00Z\"",
        count: 1,
        reason: "the build time in /proc/version would make every build's bytes differ",
    },
];
