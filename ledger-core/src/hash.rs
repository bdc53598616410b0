//! The two hash functions of the ledger: Keccak-256 (addresses, EIP-712
//! signing digests) and SHA-256 (hashlocks, the Merkle tree).

use sha2::Digest as _;

/// Keccak-256 as Ethereum uses it (the original Keccak padding, not NIST SHA3-256).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    sha3::Keccak256::digest(data).into()
}

/// Keccak-256 of several byte strings concatenated, without copying them together.
pub fn keccak256_concat(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = sha3::Keccak256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// SHA-256 of several byte strings concatenated.
pub fn sha256_concat(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        // Keccak-256("") and SHA-256("") from their specifications.
        assert_eq!(
            hex::encode(keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        assert_eq!(
            hex::encode(sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(keccak256_concat(&[b"ab", b"c"]), keccak256(b"abc"));
        assert_eq!(sha256_concat(&[b"a", b"bc"]), sha256(b"abc"));
    }
}
