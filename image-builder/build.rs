//! The workload ELF that the loader embeds comes from `cargo xtask image` through PP_WORKLOAD_ELF.

fn main() {
    println!("cargo:rerun-if-env-changed=PP_WORKLOAD_ELF");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("uefi") {
        let elf = std::env::var("PP_WORKLOAD_ELF").expect(
            "PP_WORKLOAD_ELF must name the workload ELF to embed (cargo xtask image sets it)",
        );
        println!("cargo:rerun-if-changed={elf}");
    }
}
