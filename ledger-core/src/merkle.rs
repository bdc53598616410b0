//! The Merkle tree over a block's transaction hashes, exactly as RFC 6962
//! (Certificate Transparency, section 2.1) defines it, with SHA-256:
//!
//! - the hash of an empty list is `SHA-256()` (of zero bytes);
//! - a leaf is `SHA-256(0x00 || tx_hash)` where `tx_hash` is the 32-byte
//!   transaction hash;
//! - an inner node is `SHA-256(0x01 || left || right)`;
//! - a list of `n > 1` leaves splits at `k`, the largest power of two below
//!   `n`: the first `k` leaves form the left subtree, the rest the right.
//!
//! The `0x00`/`0x01` prefixes separate leaves from nodes, so no inner node can
//! be passed off as a leaf. An inclusion proof is RFC 6962's audit path
//! (sibling hashes from the leaf up) with the leaf index and the tree size; it
//! is checked with the algorithm of RFC 9162 section 2.1.3.2, which is
//! implemented here by [`verify_inclusion`].

use crate::hash::{sha256, sha256_concat};
use crate::types::{MerkleRoot, TxHash};

/// `SHA-256(0x00 || tx_hash)`.
pub fn leaf_hash(tx_hash: &TxHash) -> [u8; 32] {
    sha256_concat(&[&[0x00], tx_hash.as_bytes()])
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    sha256_concat(&[&[0x01], left, right])
}

/// A Merkle tree kept level by level, so that the root and every audit path
/// come without recomputation. Building it costs one hash per leaf and per
/// inner node.
#[derive(Clone, Debug)]
pub struct MerkleTree {
    /// `levels[0]` are the leaf hashes; each next level pairs the one below
    /// it left to right and carries an unpaired last node up unchanged, which
    /// gives the RFC 6962 tree shape.
    levels: Vec<Vec<[u8; 32]>>,
}

impl MerkleTree {
    /// The tree over these transaction hashes, in block order.
    pub fn new(tx_hashes: &[TxHash]) -> Self {
        let mut levels = vec![tx_hashes.iter().map(leaf_hash).collect::<Vec<_>>()];
        while levels.last().is_some_and(|level| level.len() > 1) {
            let below = &levels[levels.len() - 1];
            let above = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => node_hash(left, right),
                    [single] => *single,
                    _ => unreachable!("chunks(2) yields one or two items"),
                })
                .collect();
            levels.push(above);
        }
        Self { levels }
    }

    /// The number of leaves.
    pub fn len(&self) -> usize {
        self.levels[0].len()
    }

    /// True for a tree over no transactions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The root (`SHA-256()` for an empty tree).
    pub fn root(&self) -> MerkleRoot {
        match self.levels.last().and_then(|level| level.first()) {
            Some(root) if !self.is_empty() => MerkleRoot::from_bytes(*root),
            _ => MerkleRoot::from_bytes(sha256(&[])),
        }
    }

    /// The audit path of leaf `index`, bottom up; `None` past the last leaf.
    pub fn path(&self, index: usize) -> Option<Vec<[u8; 32]>> {
        if index >= self.len() {
            return None;
        }
        let mut path = Vec::new();
        let mut position = index;
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = position ^ 1;
            if let Some(hash) = level.get(sibling) {
                path.push(*hash);
            }
            position /= 2;
        }
        Some(path)
    }
}

/// Checks that `tx_hash` is leaf `index` of a tree of `tree_size` leaves with
/// root `root`, given its audit path (RFC 9162, section 2.1.3.2).
pub fn verify_inclusion(
    tx_hash: &TxHash,
    index: u64,
    tree_size: u64,
    path: &[[u8; 32]],
    root: &MerkleRoot,
) -> bool {
    if index >= tree_size {
        return false;
    }
    let mut fn_ = index;
    let mut sn = tree_size - 1;
    let mut r = leaf_hash(tx_hash);
    for p in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(n: usize) -> Vec<TxHash> {
        (0..n)
            .map(|i| TxHash::from_bytes(sha256(&(i as u64).to_be_bytes())))
            .collect()
    }

    /// RFC 6962's recursive definition of the tree hash, as a reference.
    fn mth(leaves: &[TxHash]) -> [u8; 32] {
        match leaves.len() {
            0 => sha256(&[]),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = largest_power_of_two_below(n);
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn largest_power_of_two_below(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// RFC 6962's recursive definition of the audit path.
    fn reference_path(m: usize, leaves: &[TxHash]) -> Vec<[u8; 32]> {
        let n = leaves.len();
        if n <= 1 {
            return vec![];
        }
        let k = largest_power_of_two_below(n);
        if m < k {
            let mut path = reference_path(m, &leaves[..k]);
            path.push(mth(&leaves[k..]));
            path
        } else {
            let mut path = reference_path(m - k, &leaves[k..]);
            path.push(mth(&leaves[..k]));
            path
        }
    }

    #[test]
    fn matches_the_rfc_definitions_for_every_size_up_to_70() {
        for n in 0..=70 {
            let leaves = hashes(n);
            let tree = MerkleTree::new(&leaves);
            assert_eq!(tree.root().as_bytes(), &mth(&leaves), "root of {n}");
            for m in 0..n {
                let path = tree.path(m).unwrap();
                assert_eq!(path, reference_path(m, &leaves), "path {m} of {n}");
                assert!(verify_inclusion(
                    &leaves[m],
                    m as u64,
                    n as u64,
                    &path,
                    &tree.root()
                ));
            }
            assert_eq!(tree.path(n), None);
        }
    }

    #[test]
    fn wrong_index_size_leaf_or_path_fails() {
        let leaves = hashes(11);
        let tree = MerkleTree::new(&leaves);
        let root = tree.root();
        let path = tree.path(5).unwrap();
        assert!(verify_inclusion(&leaves[5], 5, 11, &path, &root));
        assert!(!verify_inclusion(&leaves[5], 4, 11, &path, &root));
        assert!(!verify_inclusion(&leaves[5], 6, 11, &path, &root));
        // The path binds the tree size only as far as it changes the shape of
        // the path (sizes 9 to 16 share it for index 5); the signed header
        // carries the real count.
        assert!(!verify_inclusion(&leaves[5], 5, 7, &path, &root));
        assert!(!verify_inclusion(&leaves[5], 5, 17, &path, &root));
        assert!(!verify_inclusion(&leaves[5], 11, 11, &path, &root));
        assert!(!verify_inclusion(&leaves[4], 5, 11, &path, &root));
        let mut bent = path.clone();
        bent[0][0] ^= 1;
        assert!(!verify_inclusion(&leaves[5], 5, 11, &bent, &root));
        assert!(!verify_inclusion(
            &leaves[5],
            5,
            11,
            &path[..path.len() - 1],
            &root
        ));
        let mut longer = path;
        longer.push([0; 32]);
        assert!(!verify_inclusion(&leaves[5], 5, 11, &longer, &root));
    }

    #[test]
    fn an_inner_node_is_not_a_leaf() {
        // The second-preimage attack the 0x00/0x01 prefixes prevent: presenting
        // the concatenation of two leaves as one leaf of a smaller tree.
        let leaves = hashes(2);
        let tree = MerkleTree::new(&leaves);
        let inner = TxHash::from_bytes(node_hash(&leaf_hash(&leaves[0]), &leaf_hash(&leaves[1])));
        assert!(!verify_inclusion(&inner, 0, 1, &[], &tree.root()));
    }
}
