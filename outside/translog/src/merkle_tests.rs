//! Known answers from RFC 6962's test tree (as published by certificate-transparency-go and
//! transparency-dev/merkle), and every proof for every size up to 40 against an independent
//! recursive reference written from RFC 9162's MTH, PATH and PROOF definitions.

use super::*;

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// The 8 leaves of the RFC 6962 test tree.
fn test_leaves() -> Vec<Hash> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|e| leaf_hash(&hex::decode(e).unwrap()))
    .collect()
}

/// Roots of the test tree for sizes 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (index, size, proof) — zero-based index.
const INCLUSION: [(u64, u64, &[&str]); 4] = [
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// (old size, new size, proof).
const CONSISTENCY: [(u64, u64, &[&str]); 4] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

fn hashes(v: &[&str]) -> Vec<Hash> {
    v.iter().map(|s| h(s)).collect()
}

#[test]
fn known_roots() {
    let leaves = test_leaves();
    for (n, want) in ROOTS.iter().enumerate() {
        assert_eq!(root(&leaves[..n]), h(want), "size {n}");
    }
}

#[test]
fn known_inclusion_proofs() {
    let leaves = test_leaves();
    for (index, size, want) in INCLUSION {
        let want = hashes(want);
        let got = inclusion_proof(&leaves, index, size).unwrap();
        assert_eq!(got, want, "index {index} size {size}");
        let r = h(ROOTS[size as usize]);
        verify_inclusion(&leaves[index as usize], index, size, &want, &r).unwrap();
    }
}

#[test]
fn known_consistency_proofs() {
    let leaves = test_leaves();
    for (old, new, want) in CONSISTENCY {
        let want = hashes(want);
        assert_eq!(consistency_proof(&leaves, old, new).unwrap(), want);
        let (r1, r2) = (h(ROOTS[old as usize]), h(ROOTS[new as usize]));
        verify_consistency(old, new, &r1, &r2, &want).unwrap();
    }
}

// The reference: RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1, recursively, over entries.

fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(d: &[Vec<u8>]) -> Hash {
    match d.len() {
        0 => Sha256::digest(b"").into(),
        1 => Sha256::new()
            .chain_update([0u8])
            .chain_update(&d[0])
            .finalize()
            .into(),
        n => {
            let k = k_of(n);
            let mut hasher = Sha256::new();
            hasher.update([1u8]);
            hasher.update(mth(&d[..k]));
            hasher.update(mth(&d[k..]));
            hasher.finalize().into()
        }
    }
}

fn path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    let n = d.len();
    if n == 1 {
        return vec![];
    }
    let k = k_of(n);
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

fn subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = k_of(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

const MAX: usize = 40;

fn entries() -> Vec<Vec<u8>> {
    (0..MAX).map(|i| vec![i as u8; i % 5]).collect()
}

fn flipped(proof: &[Hash], i: usize) -> Vec<Hash> {
    let mut p = proof.to_vec();
    p[i][i % 32] ^= 0x10;
    p
}

#[test]
fn every_inclusion_proof_matches_reference_and_verifies() {
    let d = entries();
    let leaves: Vec<Hash> = d.iter().map(|e| leaf_hash(e)).collect();
    for n in 1..=MAX {
        let r = root(&leaves[..n]);
        assert_eq!(r, mth(&d[..n]), "root of size {n}");
        let size = n as u64;
        for m in 0..n {
            let index = m as u64;
            let proof = inclusion_proof(&leaves, index, size).unwrap();
            assert_eq!(proof, path(m, &d[..n]), "path {m} of {n}");
            let leaf = &leaves[m];
            verify_inclusion(leaf, index, size, &proof, &r).unwrap();
            for i in 0..proof.len() {
                assert!(verify_inclusion(leaf, index, size, &flipped(&proof, i), &r).is_err());
            }
            let mut bad = r;
            bad[m % 32] ^= 1;
            assert!(verify_inclusion(leaf, index, size, &proof, &bad).is_err());
            let mut bad_leaf = *leaf;
            bad_leaf[0] ^= 1;
            assert!(verify_inclusion(&bad_leaf, index, size, &proof, &r).is_err());
            // Wrong position, wrong size, extra or missing element.
            assert!(verify_inclusion(leaf, index + 1, size, &proof, &r).is_err());
            assert!(verify_inclusion(leaf, index, size * 2, &proof, &r).is_err());
            let mut longer = proof.clone();
            longer.push(r);
            assert!(verify_inclusion(leaf, index, size, &longer, &r).is_err());
            if !proof.is_empty() {
                let shorter = &proof[..proof.len() - 1];
                assert!(verify_inclusion(leaf, index, size, shorter, &r).is_err());
            }
        }
        assert_eq!(
            inclusion_proof(&leaves, size, size),
            Err(MerkleError::IndexOutOfRange { index: size, size })
        );
    }
}

#[test]
fn every_consistency_proof_matches_reference_and_verifies() {
    let d = entries();
    let leaves: Vec<Hash> = d.iter().map(|e| leaf_hash(e)).collect();
    let roots: Vec<Hash> = (0..=MAX).map(|n| root(&leaves[..n])).collect();
    for n in 1..=MAX {
        for m in 0..=n {
            let (old, new) = (m as u64, n as u64);
            let proof = consistency_proof(&leaves, old, new).unwrap();
            let want = if m == 0 {
                vec![]
            } else {
                subproof(m, &d[..n], true)
            };
            assert_eq!(proof, want, "proof {m} -> {n}");
            let (r1, r2) = (&roots[m], &roots[n]);
            verify_consistency(old, new, r1, r2, &proof).unwrap();
            for i in 0..proof.len() {
                let bad = flipped(&proof, i);
                assert!(verify_consistency(old, new, r1, r2, &bad).is_err());
            }
            let mut bad1 = *r1;
            bad1[3] ^= 1;
            assert!(verify_consistency(old, new, &bad1, r2, &proof).is_err());
            if m > 0 {
                let mut bad2 = *r2;
                bad2[7] ^= 1;
                assert!(verify_consistency(old, new, r1, &bad2, &proof).is_err());
            }
            if m > 0 && m < n {
                assert!(verify_consistency(old, new, r2, r1, &proof).is_err());
                assert!(verify_consistency(old, new, r1, r2, &[]).is_err());
                let mut longer = proof.clone();
                longer.push(*r2);
                assert!(verify_consistency(old, new, r1, r2, &longer).is_err());
                let shorter = &proof[..proof.len() - 1];
                assert!(verify_consistency(old, new, r1, r2, shorter).is_err());
                assert!(verify_consistency(old + 1, new, r1, r2, &proof).is_err());
                assert!(verify_consistency(old, new * 2, r1, r2, &proof).is_err());
            }
        }
        assert_eq!(
            consistency_proof(&leaves[..n], 0, n as u64 + 1),
            Err(MerkleError::SizeOutOfRange {
                size: n as u64 + 1,
                held: n as u64
            })
        );
        assert!(verify_consistency(n as u64, n as u64 - 1, &roots[n], &roots[n - 1], &[]).is_err());
    }
}

#[test]
fn degenerate_sizes_never_panic() {
    let r = empty_root();
    let p = [r; 3];
    for (a, b) in [
        (0, 0),
        (0, u64::MAX),
        (u64::MAX, u64::MAX),
        (u64::MAX - 1, u64::MAX),
    ] {
        let _ = verify_inclusion(&r, a, b, &p, &r);
        let _ = verify_consistency(a, b, &r, &r, &p);
    }
    assert!(verify_inclusion(&r, 0, 0, &[], &r).is_err());
    verify_consistency(0, 0, &r, &r, &[]).unwrap();
    assert!(verify_consistency(0, 0, &r, &r, &p[..1]).is_err());
    assert!(inclusion_proof(&[], 0, u64::MAX).is_err());
}
