//! secp256k1 signatures as Ethereum tooling makes them: 65 bytes `r || s || v`,
//! recoverable, low-S only; signing keys; and recovery of the signer's
//! [`Address`] from a 32-byte digest.
//!
//! Recovery runs on libsecp256k1 (the `secp256k1` crate): the benchmark in
//! `benches/ledger.rs` measured it several times faster than the pure-Rust
//! `k256`, and recovery is the most expensive step of accepting a transaction.
//! Signing uses RFC 6979 deterministic nonces, so a key signs a digest to the
//! same bytes as `eth_account`, ethers, viem or `cast wallet sign` do.

use std::fmt;
use std::str::FromStr;

use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, SecretKey};

use crate::types::{Address, ParseError};

/// Half the order of the secp256k1 group, big-endian: an `s` above it is "high".
const HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
];

/// Why a signature does not prove that its claimed signer signed a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The last byte is not a recovery id: 27 or 28 (or 0 or 1).
    #[error("signature v byte is {v}; expected 27 or 28 (0 or 1 accepted)")]
    RecoveryId {
        /// The byte found.
        v: u8,
    },
    /// `s` is in the upper half of the group order; only the low-S form of a
    /// signature is accepted so that each signature has one encoding.
    #[error("signature s value is high; only low-S signatures are accepted")]
    HighS,
    /// `r` or `s` is zero or not below the group order, or no key recovers.
    #[error("signature is not a valid secp256k1 signature of this digest")]
    Invalid,
    /// The signature is valid but was made by another key than the claimed signer.
    #[error("signature was made by {recovered}, not by the claimed signer {claimed}")]
    SignerMismatch {
        /// The signer the message names.
        claimed: Address,
        /// The address the signature recovers to.
        recovered: Address,
    },
}

/// A 65-byte recoverable ECDSA signature: `r` (32 bytes) `|| s` (32 bytes) `|| v`
/// (1 byte). Any 65 bytes can be held; [`recover_signer`] decides validity.
///
/// Text form: `0x` + 130 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 65]);

impl Signature {
    /// Wraps 65 raw bytes.
    pub const fn from_bytes(bytes: [u8; 65]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }

    /// The same signature with `v` written as 27 or 28, the one form the
    /// ledger stores and exports (0 and 1 are accepted on input only).
    pub fn canonical(self) -> Self {
        let mut bytes = self.0;
        if bytes[64] < 2 {
            bytes[64] += 27;
        }
        Self(bytes)
    }

    /// True when `v` is 27 or 28.
    pub fn is_canonical(&self) -> bool {
        matches!(self.0[64], 27 | 28)
    }
}

impl FromStr for Signature {
    type Err = ParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = ParseError::Hex {
            expected_hex_digits: 130,
        };
        let digits = text.strip_prefix("0x").ok_or(error.clone())?;
        if digits.len() != 130 {
            return Err(error);
        }
        let mut bytes = [0u8; 65];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| error)?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

/// Recovers the address that signed `digest`, checking the encoding rules
/// (v is 27/28 or 0/1, s is low, r and s are in range).
pub fn recover_signer(digest: &[u8; 32], signature: &Signature) -> Result<Address, SignatureError> {
    let bytes = signature.as_bytes();
    let v = bytes[64];
    let recovery_id = match v {
        0 | 27 => RecoveryId::Zero,
        1 | 28 => RecoveryId::One,
        _ => return Err(SignatureError::RecoveryId { v }),
    };
    if bytes[32..64] > HALF_ORDER[..] {
        return Err(SignatureError::HighS);
    }
    let signature = RecoverableSignature::from_compact(&bytes[..64], recovery_id)
        .map_err(|_| SignatureError::Invalid)?;
    let public_key = signature
        .recover_ecdsa(Message::from_digest(*digest))
        .map_err(|_| SignatureError::Invalid)?;
    let uncompressed = public_key.serialize_uncompressed();
    let mut xy = [0u8; 64];
    xy.copy_from_slice(&uncompressed[1..]);
    Ok(Address::from_public_key_xy(&xy))
}

/// Checks that `signature` over `digest` was made by `claimed`.
pub fn verify_signer(
    digest: &[u8; 32],
    signature: &Signature,
    claimed: Address,
) -> Result<(), SignatureError> {
    let recovered = recover_signer(digest, signature)?;
    if recovered != claimed {
        return Err(SignatureError::SignerMismatch { claimed, recovered });
    }
    Ok(())
}

/// A secp256k1 private key and its address. `Debug` shows only the address.
#[derive(Clone)]
pub struct SigningKey {
    secret: SecretKey,
    address: Address,
}

/// The 32 bytes are not a valid secp256k1 private key (zero or not below the group order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid secp256k1 private key")]
pub struct InvalidKey;

impl SigningKey {
    /// A key from its 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, InvalidKey> {
        let secret = SecretKey::from_secret_bytes(bytes).map_err(|_| InvalidKey)?;
        let public_key = secp256k1::PublicKey::from_secret_key(&secret);
        let uncompressed = public_key.serialize_uncompressed();
        let mut xy = [0u8; 64];
        xy.copy_from_slice(&uncompressed[1..]);
        Ok(Self {
            secret,
            address: Address::from_public_key_xy(&xy),
        })
    }

    /// The key's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte digest (RFC 6979 nonce, low-S, `v` = 27 or 28).
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Signature {
        let signature = RecoverableSignature::sign_ecdsa_recoverable(
            Message::from_digest(*digest),
            &self.secret,
        );
        let (recovery_id, compact) = signature.serialize_compact();
        let mut bytes = [0u8; 65];
        bytes[..64].copy_from_slice(&compact);
        bytes[64] = 27 + recovery_id.to_u8();
        Signature(bytes)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The secp256k1 group order n, big-endian.
    const ORDER: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36,
        0x41, 0x41,
    ];

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(crate::hash::sha256(&[seed])).unwrap()
    }

    /// `n - s` for a big-endian 32-byte `s`.
    fn negate(s: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let mut d = i16::from(ORDER[i]) - i16::from(s[i]) - borrow;
            borrow = if d < 0 { 1 } else { 0 };
            if d < 0 {
                d += 256;
            }
            out[i] = d as u8;
        }
        out
    }

    #[test]
    fn half_order_is_half_the_order() {
        // 2 * HALF_ORDER + 1 == ORDER
        let mut doubled = [0u8; 32];
        let mut carry = 1u16;
        for i in (0..32).rev() {
            let d = u16::from(HALF_ORDER[i]) * 2 + carry;
            doubled[i] = (d & 0xff) as u8;
            carry = d >> 8;
        }
        assert_eq!(doubled, ORDER);
    }

    #[test]
    fn sign_then_recover() {
        let signer = key(1);
        let digest = crate::hash::keccak256(b"message");
        let signature = signer.sign_digest(&digest);
        assert!(matches!(signature.as_bytes()[64], 27 | 28));
        assert_eq!(recover_signer(&digest, &signature), Ok(signer.address()));
        assert_eq!(verify_signer(&digest, &signature, signer.address()), Ok(()));
        let other = key(2).address();
        assert_eq!(
            verify_signer(&digest, &signature, other),
            Err(SignatureError::SignerMismatch {
                claimed: other,
                recovered: signer.address()
            })
        );
    }

    #[test]
    fn v_zero_one_accepted_other_v_rejected() {
        let key = key(3);
        let digest = crate::hash::keccak256(b"v");
        let mut bytes = *key.sign_digest(&digest).as_bytes();
        bytes[64] -= 27;
        assert_eq!(
            recover_signer(&digest, &Signature(bytes)),
            Ok(key.address())
        );
        for v in [2u8, 26, 29, 255] {
            bytes[64] = v;
            assert_eq!(
                recover_signer(&digest, &Signature(bytes)),
                Err(SignatureError::RecoveryId { v })
            );
        }
    }

    #[test]
    fn high_s_twin_is_rejected() {
        // (r, n - s, v ^ 1) is the same signature in its high-S form; libsecp256k1
        // would recover the same key from it, so the rule must be ours.
        let key = key(4);
        let digest = crate::hash::keccak256(b"malleable");
        let low = *key.sign_digest(&digest).as_bytes();
        let mut high = low;
        high[32..64].copy_from_slice(&negate(&low[32..64]));
        high[64] = if low[64] == 27 { 28 } else { 27 };
        assert_eq!(
            recover_signer(&digest, &Signature(high)),
            Err(SignatureError::HighS)
        );
    }

    #[test]
    fn zero_or_out_of_range_scalars_are_invalid() {
        let digest = crate::hash::keccak256(b"x");
        let mut zero = [0u8; 65];
        zero[64] = 27;
        assert_eq!(
            recover_signer(&digest, &Signature(zero)),
            Err(SignatureError::Invalid)
        );
        let mut big_r = *key(5).sign_digest(&digest).as_bytes();
        big_r[..32].copy_from_slice(&ORDER);
        assert_eq!(
            recover_signer(&digest, &Signature(big_r)),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn keys_are_checked() {
        assert!(SigningKey::from_bytes([0; 32]).is_err());
        assert!(SigningKey::from_bytes(ORDER).is_err());
        assert!(format!("{:?}", key(1)).starts_with("SigningKey(0x"));
    }
}
