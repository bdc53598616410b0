//! EIP-712 typed-data hashing, the part the ledger needs: the domain
//! separator of a ledger and the ABI word encoding of the field types the
//! ledger's messages use (`address`, `uint8/32/64/256`, `bytes32`, `string`,
//! `bytes`, `address[]`).
//!
//! Domain: `EIP712Domain(string name,string version,uint256 chainId)` with
//! name [`DOMAIN_NAME`], version [`DOMAIN_VERSION`] and the ledger's chain id;
//! no `verifyingContract`, no `salt`. A message's digest is
//! `keccak256(0x19 || 0x01 || domainSeparator || hashStruct(message))`, with
//! `hashStruct(m) = keccak256(typeHash || encodeData(m))` as the EIP defines.

use std::sync::LazyLock;

use crate::hash::{keccak256, keccak256_concat};
use crate::types::{Address, ChainId};

/// The EIP-712 domain type of every Lockgate ledger.
pub const DOMAIN_TYPE: &str = "EIP712Domain(string name,string version,uint256 chainId)";
/// The domain's `name`.
pub const DOMAIN_NAME: &str = "Lockgate Ledger";
/// The domain's `version`. Changes only with an incompatible change of the message types.
pub const DOMAIN_VERSION: &str = "1";

static DOMAIN_PREFIX: LazyLock<[[u8; 32]; 3]> = LazyLock::new(|| {
    [
        keccak256(DOMAIN_TYPE.as_bytes()),
        keccak256(DOMAIN_NAME.as_bytes()),
        keccak256(DOMAIN_VERSION.as_bytes()),
    ]
});

/// The domain separator of the ledger with this chain id.
pub fn domain_separator(chain_id: ChainId) -> [u8; 32] {
    let [type_hash, name_hash, version_hash] = &*DOMAIN_PREFIX;
    keccak256_concat(&[
        type_hash,
        name_hash,
        version_hash,
        &uint_word(u128::from(chain_id.get())),
    ])
}

/// The digest a signer signs: `keccak256(0x1901 || domainSeparator || structHash)`.
pub fn signing_digest(domain_separator: &[u8; 32], struct_hash: &[u8; 32]) -> [u8; 32] {
    keccak256_concat(&[&[0x19, 0x01], domain_separator, struct_hash])
}

/// A 32-byte ABI word holding an unsigned integer (big-endian, left-padded).
pub fn uint_word(value: u128) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[16..].copy_from_slice(&value.to_be_bytes());
    word
}

/// A 32-byte ABI word holding an address (left-padded).
pub fn address_word(address: &Address) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(address.as_bytes());
    word
}

/// Builds `keccak256(typeHash || encodeData(...))` word by word.
pub(crate) struct StructHasher {
    buffer: Vec<u8>,
}

impl StructHasher {
    pub(crate) fn new(type_hash: &[u8; 32]) -> Self {
        let mut buffer = Vec::with_capacity(32 * 8);
        buffer.extend_from_slice(type_hash);
        Self { buffer }
    }

    pub(crate) fn address(mut self, value: &Address) -> Self {
        self.buffer.extend_from_slice(&address_word(value));
        self
    }

    pub(crate) fn uint(mut self, value: u128) -> Self {
        self.buffer.extend_from_slice(&uint_word(value));
        self
    }

    pub(crate) fn bytes32(mut self, value: &[u8; 32]) -> Self {
        self.buffer.extend_from_slice(value);
        self
    }

    /// `string` and `bytes` are encoded as the Keccak-256 of their contents.
    pub(crate) fn dynamic(mut self, value: &[u8]) -> Self {
        self.buffer.extend_from_slice(&keccak256(value));
        self
    }

    /// `address[]` is encoded as the Keccak-256 of its elements' words concatenated.
    pub(crate) fn address_array(mut self, values: &[Address]) -> Self {
        let mut words = Vec::with_capacity(32 * values.len());
        for value in values {
            words.extend_from_slice(&address_word(value));
        }
        self.buffer.extend_from_slice(&keccak256(&words));
        self
    }

    pub(crate) fn finish(self) -> [u8; 32] {
        keccak256(&self.buffer)
    }
}

/// A lazily computed type hash: `keccak256(typeString)`.
pub(crate) struct TypeHash {
    type_string: &'static str,
    hash: LazyLock<[u8; 32]>,
}

impl TypeHash {
    pub(crate) const fn new(type_string: &'static str, hash: fn() -> [u8; 32]) -> Self {
        Self {
            type_string,
            hash: LazyLock::new(hash),
        }
    }

    pub(crate) fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    pub(crate) fn type_string(&self) -> &'static str {
        self.type_string
    }
}

/// Declares a `static` [`TypeHash`] for a type string.
macro_rules! type_hash {
    ($name:ident = $type_string:literal) => {
        pub(crate) static $name: $crate::eip712::TypeHash =
            $crate::eip712::TypeHash::new($type_string, || {
                $crate::hash::keccak256($type_string.as_bytes())
            });
    };
}
pub(crate) use type_hash;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_left_padded_and_the_domain_names_its_chain() {
        // Not EIP-712's Mail example (its domain has more fields): the word
        // encoders against hand-made words. The digests themselves are
        // checked against eth_account's in tests/vectors/eip712.json.
        assert_eq!(uint_word(1)[31], 1);
        assert_eq!(uint_word(u128::MAX)[..16], [0u8; 16]);
        let address = Address::from_bytes([0xab; 20]);
        assert_eq!(address_word(&address)[..12], [0u8; 12]);
        assert_eq!(address_word(&address)[12..], [0xab; 20]);
        // The domain separator depends on the chain id.
        let one = ChainId::new(1).unwrap();
        let two = ChainId::new(2).unwrap();
        assert_ne!(domain_separator(one), domain_separator(two));
    }
}
