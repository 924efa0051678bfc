//! The compact range of a tree (its "frontier"): the roots of the perfect subtrees that make up
//! the first `size` leaves, largest first — at most 64 hashes. With it a device extends the tree
//! by the new entries it fetches and checks the result against a signed root, so it sees every
//! entry the log added (a revocation cannot be left out) without storing the entries.

use serde::{Deserialize, Serialize};

use crate::hexfield;
use crate::merkle::{self, Hash};

/// The frontier of a tree of `size` leaves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    /// One root per set bit of `size`, from the highest bit down.
    hashes: Vec<Hash>,
}

/// JSON form: `{"size": N, "hashes": ["<64 hex>", ...]}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FrontierJson {
    size: u64,
    hashes: Vec<String>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf by its leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut n = self.size;
        while n & 1 == 1 {
            // `size` has this bit set, so a subtree of this height is on the stack.
            let left = self.hashes.pop().unwrap_or_default();
            h = merkle::node_hash(&left, &h);
            n >>= 1;
        }
        self.hashes.push(h);
        self.size += 1;
    }

    /// The frontier of the first `size` leaves, where `size` is this size with its low `bits`
    /// bits cleared (the subtrees for those bits are dropped): e.g. the start of the tile.
    pub fn floor_to_bits(&self, bits: u32) -> Frontier {
        let size = self.size >> bits << bits;
        Frontier {
            size,
            hashes: self.hashes[..size.count_ones() as usize].to_vec(),
        }
    }

    /// The RFC 9162 root of the tree.
    pub fn root(&self) -> Hash {
        let mut it = self.hashes.iter().rev();
        let Some(last) = it.next() else {
            return merkle::empty_root();
        };
        it.fold(*last, |acc, left| merkle::node_hash(left, &acc))
    }

    pub(crate) fn to_json(&self) -> FrontierJson {
        FrontierJson {
            size: self.size,
            hashes: self.hashes.iter().map(hex::encode).collect(),
        }
    }

    pub(crate) fn from_json(j: &FrontierJson) -> Result<Self, String> {
        if j.hashes.len() != j.size.count_ones() as usize {
            return Err(format!(
                "frontier of size {} must hold {} hashes, not {}",
                j.size,
                j.size.count_ones(),
                j.hashes.len()
            ));
        }
        let hashes = j
            .hashes
            .iter()
            .map(|h| hexfield::decode("frontier", h).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            size: j.size,
            hashes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_root_of_every_size() {
        let leaves: Vec<Hash> = (0..70u32)
            .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
            .collect();
        let mut f = Frontier::new();
        assert_eq!(f.root(), merkle::empty_root());
        for (i, leaf) in leaves.iter().enumerate() {
            f.push(*leaf);
            assert_eq!(f.root(), merkle::root(&leaves[..=i]), "size {}", i + 1);
            let back = Frontier::from_json(&f.to_json()).unwrap();
            assert_eq!(back, f);
        }
        for n in 0..leaves.len() {
            let mut g = Frontier::new();
            leaves[..n].iter().for_each(|l| g.push(*l));
            let floor = g.floor_to_bits(3);
            assert_eq!(floor.root(), merkle::root(&leaves[..n / 8 * 8]), "size {n}");
        }
        let mut j = f.to_json();
        j.size += 1;
        assert!(Frontier::from_json(&j).is_err());
    }
}
