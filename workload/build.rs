//! On the Hermit target, link the kernel library that `cargo xtask kernel` built.

fn main() {
    println!("cargo:rerun-if-env-changed=PP_HERMIT_LIB_DIR");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("hermit") {
        let dir = std::env::var("PP_HERMIT_LIB_DIR").expect(
            "PP_HERMIT_LIB_DIR must name the folder holding libhermit.a (cargo xtask sets it)",
        );
        println!("cargo:rerun-if-changed={dir}/libhermit.a");
        println!("cargo:rustc-link-search=native={dir}");
        println!("cargo:rustc-link-lib=static=hermit");
    }
}
