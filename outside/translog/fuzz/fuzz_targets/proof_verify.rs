//! Any bytes: proof parsing and RFC 9162 verification never panic, whatever the sizes and
//! hashes. The first byte picks the mode; the raw modes read two u64 sizes and then 32-byte
//! hashes (leaf or old root, root, path...).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_translog::merkle::{self, Hash};
use pp_translog::{ConsistencyProof, InclusionProof};

fn split(data: &[u8]) -> Option<(u64, u64, Vec<Hash>)> {
    let a = u64::from_be_bytes(data.get(..8)?.try_into().ok()?);
    let b = u64::from_be_bytes(data.get(8..16)?.try_into().ok()?);
    let hashes = data[16..]
        .chunks_exact(32)
        .map(|c| c.try_into().unwrap())
        .collect();
    Some((a, b, hashes))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(p) = InclusionProof::from_json(rest) {
                let root = merkle::empty_root();
                let _ = merkle::verify_inclusion(&root, p.leaf_index, p.tree_size, &p.path, &root);
            }
        }
        1 => {
            if let Ok(p) = ConsistencyProof::from_json(rest) {
                let root = merkle::empty_root();
                let _ = merkle::verify_consistency(p.old_size, p.new_size, &root, &root, &p.path);
            }
        }
        2 => {
            if let Some((index, size, hashes)) = split(rest)
                && let [leaf, root, path @ ..] = hashes.as_slice()
            {
                let _ = merkle::verify_inclusion(leaf, index, size, path, root);
            }
        }
        _ => {
            if let Some((old, new, hashes)) = split(rest)
                && let [old_root, new_root, path @ ..] = hashes.as_slice()
            {
                let _ = merkle::verify_consistency(old, new, old_root, new_root, path);
            }
        }
    }
});
