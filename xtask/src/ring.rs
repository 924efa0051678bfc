//! ring on Hermit: a checksum-pinned copy of ring with one build-script edit, for `[patch]`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use pp_kernel_build::edit::{self, Files, SourceEdit};

use crate::crates;
use crate::pins::Pins;

/// ring 0.17's build script compiles its assembly only for the operating systems it lists as
/// having the Linux ABI; Hermit has that ABI on x86_64 (System V, ELF) but is not listed, so the
/// link misses every assembly routine. One list entry fixes it.
pub const RING_EDITS: &[SourceEdit] = &[
    SourceEdit {
        files: Files::One("build.rs"),
        find: "    \"haiku\",\n",
        replace: "    \"haiku\",\n    \"hermit\",\n",
        count: 1,
        reason: "ring's build script omits target_os = \"hermit\" from its Linux-ABI list, so none of \
                 its assembly is built for Hermit",
    },
    SourceEdit {
        files: Files::One("src/lib.rs"),
        find: "    non_snake_case,\n    unsafe_code\n)]",
        replace: "    non_snake_case,\n    unsafe_code,\n    mismatched_lifetime_syntaxes\n)]",
        count: 1,
        reason: "as a path dependency its rustc 1.96 lint warnings would be printed on every build; \
                 silence the one lint ring 0.17.14 predates (no code change)",
    },
];

/// Make `workload/patched-crates/ring-<version>` (the `[patch]` path of `workload/Cargo.toml`).
pub fn prepare(root: &Path, pins: &Pins) -> Result<PathBuf> {
    let pin = pins.crate_pin("ring")?;
    let work = root.join("target/pp");
    let parent = root.join("workload/patched-crates");
    let dir = parent.join(format!("{}-{}", pin.name, pin.version));
    let stamp = parent.join("ring.stamp");
    let want = format!("{}\n{}", pin.sha256, edit::fingerprint(RING_EDITS));
    if fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) && dir.is_dir() {
        return Ok(dir);
    }
    let _ = fs::remove_file(&stamp);
    let roots = crates::unpack_fresh(&work, &[pin], &parent)?;
    edit::apply_all(&roots[0], RING_EDITS)?;
    fs::write(&stamp, want)?;
    Ok(dir)
}
