//! RFC 6962 / RFC 9162 Merkle tree hashing: roots, inclusion proofs (audit paths) and
//! consistency proofs, and their verification.
//!
//! Leaf hash = SHA-256(0x00 || entry), node hash = SHA-256(0x01 || left || right), the root of
//! the empty tree is SHA-256(""). A tree of `n` leaves splits at the largest power of two
//! smaller than `n` (RFC 9162 §2.1.1). Proof generation walks that split top-down over leaf
//! hashes held in memory; verification follows the iterative algorithms of RFC 9162 §2.1.3.2
//! and §2.1.4.2 step by step, so that a proof accepted here is accepted by any other
//! RFC 9162 verifier.

use sha2::{Digest, Sha256};

/// A SHA-256 output: a leaf hash, a node hash or a tree root.
pub type Hash = [u8; 32];

/// Why a proof could not be made or did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// A leaf index at or past the tree size.
    #[error(
        "leaf index {index} is out of range for a tree of size {size}: ask for an index below the size"
    )]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof from a larger tree to a smaller one.
    #[error(
        "old tree size {old_size} exceeds new tree size {new_size}: a log only grows, so this is a rollback or swapped arguments"
    )]
    OldSizeAfterNew {
        /// The older (supposedly smaller) size.
        old_size: u64,
        /// The newer size.
        new_size: u64,
    },
    /// A tree size larger than this machine can address.
    #[error("tree size {size} exceeds the leaves held ({held})")]
    SizeOutOfRange {
        /// The size asked for.
        size: u64,
        /// The number of leaves available.
        held: u64,
    },
    /// A consistency proof between different sizes must not be empty (RFC 9162 §2.1.4.2 step 1).
    #[error(
        "empty consistency proof between different tree sizes: fetch the proof from the log again"
    )]
    EmptyProof,
    /// The proof has more elements than the tree shape allows.
    #[error("proof has too many elements for these sizes: the log sent a proof for other sizes")]
    ProofTooLong,
    /// The proof has fewer elements than the tree shape needs.
    #[error("proof has too few elements for these sizes: the log sent a proof for other sizes")]
    ProofTooShort,
    /// The root computed from the proof differs from the expected root.
    #[error(
        "root computed from the proof does not match the tree head: the entry is not in this tree, or the proof is corrupt"
    )]
    RootMismatch,
    /// The old root computed from a consistency proof differs from the old tree head's root.
    #[error(
        "consistency proof does not reproduce the old root: the new tree does not extend the old one"
    )]
    OldRootMismatch,
    /// The new root computed from a consistency proof differs from the new tree head's root.
    #[error(
        "consistency proof does not reproduce the new root: the new tree does not extend the old one"
    )]
    NewRootMismatch,
}

/// The leaf hash of an entry: SHA-256(0x00 || entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0x00])
        .chain_update(entry)
        .finalize()
        .into()
}

/// The hash of an interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([0x01])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The root of the empty tree: SHA-256 of no bytes.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The root (RFC 9162 MTH) of a tree whose leaf hashes are `leaves`.
///
/// Computed level by level, pairing neighbours and carrying an odd last node up unchanged,
/// which yields the same tree as the RFC's split at the largest power of two.
pub fn root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return empty_root();
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        let pairs = level.len() / 2;
        for i in 0..pairs {
            level[i] = node_hash(&level[2 * i], &level[2 * i + 1]);
        }
        let mut len = pairs;
        if level.len() % 2 == 1 {
            level[pairs] = level[level.len() - 1];
            len += 1;
        }
        level.truncate(len);
    }
    level[0]
}

/// The largest power of two strictly smaller than `n` (`n >= 2`).
fn split(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

fn to_usize(size: u64, held: usize) -> Result<usize, MerkleError> {
    usize::try_from(size)
        .ok()
        .filter(|&s| s <= held)
        .ok_or(MerkleError::SizeOutOfRange {
            size,
            held: held as u64,
        })
}

/// The inclusion proof (RFC 9162 PATH) of leaf `index` in the tree of the first `size` leaves.
///
/// Errors if `size` exceeds the leaves given or `index >= size`.
pub fn inclusion_proof(leaves: &[Hash], index: u64, size: u64) -> Result<Vec<Hash>, MerkleError> {
    let n = to_usize(size, leaves.len())?;
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    // index < size <= usize::MAX here.
    let m = index as usize;
    let (mut lo, mut hi) = (0, n);
    let mut path = Vec::new();
    while hi - lo > 1 {
        let mid = lo + split(hi - lo);
        if m < mid {
            path.push(root(&leaves[mid..hi]));
            hi = mid;
        } else {
            path.push(root(&leaves[lo..mid]));
            lo = mid;
        }
    }
    path.reverse();
    Ok(path)
}

/// The consistency proof (RFC 9162 PROOF) between the trees of the first `old_size` and the first
/// `new_size` leaves. Empty when `old_size` is 0 or equals `new_size`.
pub fn consistency_proof(
    leaves: &[Hash],
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, MerkleError> {
    let n = to_usize(new_size, leaves.len())?;
    if old_size > new_size {
        return Err(MerkleError::OldSizeAfterNew { old_size, new_size });
    }
    let mut m = old_size as usize;
    let mut proof = Vec::new();
    if m == 0 || m == n {
        return Ok(proof);
    }
    // SUBPROOF(m, D[lo:hi], complete), unrolled: each level's hash follows the deeper ones.
    let (mut lo, mut hi, mut complete) = (0, n, true);
    loop {
        let len = hi - lo;
        if m == len {
            if !complete {
                proof.push(root(&leaves[lo..hi]));
            }
            break;
        }
        let k = split(len);
        if m <= k {
            proof.push(root(&leaves[lo + k..hi]));
            hi = lo + k;
        } else {
            proof.push(root(&leaves[lo..lo + k]));
            lo += k;
            m -= k;
            complete = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Shifts `fn`/`sn` right together until `fn`'s low bit is set or `fn` is 0.
fn shift_to_set_bit(fnn: &mut u64, sn: &mut u64) {
    while *fnn & 1 == 0 && *fnn != 0 {
        *fnn >>= 1;
        *sn >>= 1;
    }
}

/// Verifies that `leaf` (a leaf hash) is at `index` in the tree of `size` leaves with root
/// `root`, by RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    // Step 1.
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    // Steps 2 and 3.
    let (mut fnn, mut sn) = (index, size - 1);
    let mut r = *leaf;
    // Step 4.
    for p in proof {
        if sn == 0 {
            return Err(MerkleError::ProofTooLong);
        }
        if fnn & 1 == 1 || fnn == sn {
            r = node_hash(p, &r);
            if fnn & 1 == 0 {
                shift_to_set_bit(&mut fnn, &mut sn);
            }
        } else {
            r = node_hash(&r, p);
        }
        fnn >>= 1;
        sn >>= 1;
    }
    // Step 5.
    if sn != 0 {
        return Err(MerkleError::ProofTooShort);
    }
    if r != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `new_size` leaves with root `new_root` extends the tree of
/// `old_size` leaves with root `old_root`, by RFC 9162 §2.1.4.2.
///
/// The RFC covers `0 < old_size < new_size`; the edge cases are decided here: equal sizes need
/// equal roots and an empty proof; `old_size == 0` needs `old_root` to be the empty root and an
/// empty proof (every tree extends the empty one).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::OldSizeAfterNew { old_size, new_size });
    }
    if old_size == new_size || old_size == 0 {
        if !proof.is_empty() {
            return Err(MerkleError::ProofTooLong);
        }
        if old_size == 0 && *old_root != empty_root() {
            return Err(MerkleError::OldRootMismatch);
        }
        if old_size == new_size && old_root != new_root {
            return Err(MerkleError::NewRootMismatch);
        }
        return Ok(());
    }
    // Step 1.
    let Some((first, rest)) = proof.split_first() else {
        return Err(MerkleError::EmptyProof);
    };
    // Step 2: with `old_size` a power of two, the path starts with `old_root` itself.
    let (seed, path) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        (first, rest)
    };
    // Steps 3 and 4.
    let (mut fnn, mut sn) = (old_size - 1, new_size - 1);
    while fnn & 1 == 1 {
        fnn >>= 1;
        sn >>= 1;
    }
    // Step 5.
    let (mut fr, mut sr) = (*seed, *seed);
    // Step 6.
    for c in path {
        if sn == 0 {
            return Err(MerkleError::ProofTooLong);
        }
        if fnn & 1 == 1 || fnn == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnn & 1 == 0 {
                shift_to_set_bit(&mut fnn, &mut sn);
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnn >>= 1;
        sn >>= 1;
    }
    // Step 7.
    if sn != 0 {
        return Err(MerkleError::ProofTooShort);
    }
    if fr != *old_root {
        return Err(MerkleError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(MerkleError::NewRootMismatch);
    }
    Ok(())
}

#[cfg(test)]
#[path = "merkle_tests.rs"]
mod tests;
