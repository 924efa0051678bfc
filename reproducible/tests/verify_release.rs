//! `verify` recomputes hashes and launch digests from a release folder's files: a single changed
//! byte in the image or the firmware must show up as mismatching rows.
//!
//! Needs a built release folder: `cargo xtask test` sets PP_RELEASE_DIR after building it.

use std::path::PathBuf;

use reproducible::Manifest;
use reproducible::release::{AMDSEV_FIRMWARE_FILE, IMAGE_FILE};
use reproducible::verify::{Row, compare_dir};

fn release() -> Option<(PathBuf, Manifest)> {
    let Some(dir) = std::env::var_os("PP_RELEASE_DIR").map(PathBuf::from) else {
        eprintln!("release checks not run: use `cargo xtask test` (it sets PP_RELEASE_DIR)");
        return None;
    };
    let manifest =
        Manifest::from_json(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    Some((dir, manifest))
}

fn mismatches(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .filter(|r| !r.matches())
        .map(|r| r.input.clone())
        .collect()
}

#[test]
fn one_changed_byte_is_caught() {
    let Some((dir, manifest)) = release() else {
        return;
    };
    let rows = compare_dir(&manifest, &dir, &manifest).unwrap();
    assert_eq!(mismatches(&rows), Vec::<String>::new());
    assert!(rows.iter().any(|r| r.input.starts_with("launch digest")));

    let copy = std::env::temp_dir().join(format!("pp-verify-tamper-{}", std::process::id()));
    std::fs::create_dir_all(&copy).unwrap();
    for name in [IMAGE_FILE, AMDSEV_FIRMWARE_FILE] {
        std::fs::copy(dir.join(name), copy.join(name)).unwrap();
    }
    let flip = |name: &str, offset: usize| {
        let mut bytes = std::fs::read(copy.join(name)).unwrap();
        bytes[offset] ^= 0x01;
        std::fs::write(copy.join(name), bytes).unwrap();
    };

    flip(IMAGE_FILE, 0x1000);
    let bad = mismatches(&compare_dir(&manifest, &copy, &manifest).unwrap());
    assert!(bad.contains(&"pp.efi sha256".to_string()), "{bad:?}");
    assert_eq!(
        bad.iter()
            .filter(|r| r.starts_with("launch digest"))
            .count(),
        manifest.measurement.digests.len()
    );
    flip(IMAGE_FILE, 0x1000);

    flip(AMDSEV_FIRMWARE_FILE, 0x100);
    let bad = mismatches(&compare_dir(&manifest, &copy, &manifest).unwrap());
    assert!(
        bad.contains(&"AmdSev firmware sha256".to_string()),
        "{bad:?}"
    );
    assert!(!bad.contains(&"pp.efi sha256".to_string()), "{bad:?}");
    std::fs::remove_dir_all(&copy).unwrap();
}
