//! Transactions of the built-in ledger and how they are signed.
//!
//! Every transaction is an EIP-712 typed-data message signed by its sender
//! (the `from` field). The message types, in the exact form that is hashed
//! (field order matters):
//!
//! | kind | EIP-712 type |
//! |---|---|
//! | RegisterAsset | `RegisterAsset(address from,uint64 nonce,string code,uint8 scale)` |
//! | Issue | `Issue(address from,uint64 nonce,string asset,address to,uint256 amount)` |
//! | Burn | `Burn(address from,uint64 nonce,string asset,uint256 amount)` |
//! | Transfer | `Transfer(address from,uint64 nonce,string asset,address to,uint256 amount)` |
//! | HtlcLock | `HtlcLock(address from,uint64 nonce,string asset,address recipient,uint256 amount,bytes32 hashlock,uint64 expiresAtMs)` |
//! | HtlcClaim | `HtlcClaim(address from,uint64 nonce,bytes32 lockId,bytes preimage)` |
//! | HtlcRefund | `HtlcRefund(address from,uint64 nonce,bytes32 lockId)` |
//! | Anchor | `Anchor(address from,uint64 nonce,bytes32 documentHash,address[] parties)` |
//!
//! The domain is that of [`crate::eip712`] with `chainId` = the ledger's id.
//! `asset` and `code` are the asset code's text (see [`AssetCode`]); amounts
//! are minor units (below 2^128 although the field is `uint256`); times are
//! milliseconds since the Unix epoch in ledger time.
//!
//! The transaction hash ([`TxHash`]) is the EIP-712 digest itself, the 32
//! bytes the sender signs. It is known before signing, is the same for any
//! signature of the same content, and is what blocks commit to. The id of an
//! HTLC is the hash of the `HtlcLock` that created it.
//!
//! A [`SignedTransaction`] holds any 65 bytes as its signature; only
//! [`SignedTransaction::verify`] makes a [`VerifiedTransaction`], the one
//! form the state transition accepts, so no transaction reaches the state
//! without its signature checked.

use crate::eip712::{StructHasher, domain_separator, signing_digest, type_hash};
use crate::signature::{Signature, SignatureError, SigningKey, verify_signer};
use crate::types::{
    Address, Amount, AssetCode, ChainId, DocumentHash, Hashlock, LockId, Parties, Preimage, Scale,
    TxHash,
};

type_hash!(REGISTER_ASSET = "RegisterAsset(address from,uint64 nonce,string code,uint8 scale)");
type_hash!(ISSUE = "Issue(address from,uint64 nonce,string asset,address to,uint256 amount)");
type_hash!(BURN = "Burn(address from,uint64 nonce,string asset,uint256 amount)");
type_hash!(TRANSFER = "Transfer(address from,uint64 nonce,string asset,address to,uint256 amount)");
type_hash!(
    HTLC_LOCK = "HtlcLock(address from,uint64 nonce,string asset,address recipient,uint256 amount,bytes32 hashlock,uint64 expiresAtMs)"
);
type_hash!(HTLC_CLAIM = "HtlcClaim(address from,uint64 nonce,bytes32 lockId,bytes preimage)");
type_hash!(HTLC_REFUND = "HtlcRefund(address from,uint64 nonce,bytes32 lockId)");
type_hash!(ANCHOR = "Anchor(address from,uint64 nonce,bytes32 documentHash,address[] parties)");

/// What a transaction does. The sender, nonce and chain are in [`Transaction`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TxBody {
    /// Registers a new asset; the sender becomes its issuer.
    RegisterAsset {
        /// The new asset's code; must not exist yet.
        code: AssetCode,
        /// Decimal places of its minor unit.
        scale: Scale,
    },
    /// Creates `amount` of an asset in `to`'s balance. Issuer only.
    Issue {
        /// The asset.
        asset: AssetCode,
        /// The account credited.
        to: Address,
        /// Minor units created.
        amount: Amount,
    },
    /// Destroys `amount` of an asset from the issuer's own balance. Issuer only.
    Burn {
        /// The asset.
        asset: AssetCode,
        /// Minor units destroyed.
        amount: Amount,
    },
    /// Moves `amount` from the sender to `to`.
    Transfer {
        /// The asset.
        asset: AssetCode,
        /// The account credited.
        to: Address,
        /// Minor units moved.
        amount: Amount,
    },
    /// Moves `amount` from the sender into a hash-time-locked contract that
    /// pays `recipient` against the preimage of `hashlock` before
    /// `expires_at_ms`, and returns to the sender after it.
    HtlcLock {
        /// The asset.
        asset: AssetCode,
        /// Who is paid on claim.
        recipient: Address,
        /// Minor units locked.
        amount: Amount,
        /// SHA-256 of the 32-byte preimage that opens the lock.
        hashlock: Hashlock,
        /// Ledger time (ms since the Unix epoch) from which the lock can no
        /// longer be claimed and can be refunded.
        expires_at_ms: u64,
    },
    /// Opens a lock with its preimage and pays its recipient. Anyone may
    /// submit it; the funds go to the lock's recipient whoever the sender is.
    HtlcClaim {
        /// The lock.
        lock_id: LockId,
        /// The preimage offered.
        preimage: Preimage,
    },
    /// Returns an expired lock's funds to its sender. Anyone may submit it.
    HtlcRefund {
        /// The lock.
        lock_id: LockId,
    },
    /// Commits the hash of an off-ledger document and names its parties.
    Anchor {
        /// The document's hash.
        document_hash: DocumentHash,
        /// The parties to the document.
        parties: Parties,
    },
}

/// The kind of a transaction, as named in its EIP-712 primary type.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum TxKind {
    /// [`TxBody::RegisterAsset`]
    RegisterAsset,
    /// [`TxBody::Issue`]
    Issue,
    /// [`TxBody::Burn`]
    Burn,
    /// [`TxBody::Transfer`]
    Transfer,
    /// [`TxBody::HtlcLock`]
    HtlcLock,
    /// [`TxBody::HtlcClaim`]
    HtlcClaim,
    /// [`TxBody::HtlcRefund`]
    HtlcRefund,
    /// [`TxBody::Anchor`]
    Anchor,
}

impl TxKind {
    /// Every kind, in declaration order.
    pub const ALL: [TxKind; 8] = [
        TxKind::RegisterAsset,
        TxKind::Issue,
        TxKind::Burn,
        TxKind::Transfer,
        TxKind::HtlcLock,
        TxKind::HtlcClaim,
        TxKind::HtlcRefund,
        TxKind::Anchor,
    ];

    /// The EIP-712 primary type name (`"HtlcLock"`).
    pub fn name(self) -> &'static str {
        match self {
            TxKind::RegisterAsset => "RegisterAsset",
            TxKind::Issue => "Issue",
            TxKind::Burn => "Burn",
            TxKind::Transfer => "Transfer",
            TxKind::HtlcLock => "HtlcLock",
            TxKind::HtlcClaim => "HtlcClaim",
            TxKind::HtlcRefund => "HtlcRefund",
            TxKind::Anchor => "Anchor",
        }
    }

    /// The kind with this primary type name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The exact EIP-712 type string that is hashed into the type hash.
    pub fn eip712_type(self) -> &'static str {
        self.type_hash().type_string()
    }

    fn type_hash(self) -> &'static crate::eip712::TypeHash {
        match self {
            TxKind::RegisterAsset => &REGISTER_ASSET,
            TxKind::Issue => &ISSUE,
            TxKind::Burn => &BURN,
            TxKind::Transfer => &TRANSFER,
            TxKind::HtlcLock => &HTLC_LOCK,
            TxKind::HtlcClaim => &HTLC_CLAIM,
            TxKind::HtlcRefund => &HTLC_REFUND,
            TxKind::Anchor => &ANCHOR,
        }
    }
}

/// A transaction: who sends it, on which ledger, with which nonce, doing what.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transaction {
    /// The ledger the sender means; the EIP-712 domain's `chainId`.
    pub chain_id: ChainId,
    /// The sender, who signs. Its next nonce must equal `nonce`.
    pub from: Address,
    /// The sender's transaction counter, from 0, without gaps.
    pub nonce: u64,
    /// What the transaction does.
    pub body: TxBody,
}

impl Transaction {
    /// The kind of the body.
    pub fn kind(&self) -> TxKind {
        match self.body {
            TxBody::RegisterAsset { .. } => TxKind::RegisterAsset,
            TxBody::Issue { .. } => TxKind::Issue,
            TxBody::Burn { .. } => TxKind::Burn,
            TxBody::Transfer { .. } => TxKind::Transfer,
            TxBody::HtlcLock { .. } => TxKind::HtlcLock,
            TxBody::HtlcClaim { .. } => TxKind::HtlcClaim,
            TxBody::HtlcRefund { .. } => TxKind::HtlcRefund,
            TxBody::Anchor { .. } => TxKind::Anchor,
        }
    }

    /// EIP-712 `hashStruct` of the message.
    pub fn struct_hash(&self) -> [u8; 32] {
        let hasher = StructHasher::new(self.kind().type_hash().hash())
            .address(&self.from)
            .uint(u128::from(self.nonce));
        match &self.body {
            TxBody::RegisterAsset { code, scale } => hasher
                .dynamic(code.as_str().as_bytes())
                .uint(u128::from(scale.get())),
            TxBody::Issue { asset, to, amount } | TxBody::Transfer { asset, to, amount } => hasher
                .dynamic(asset.as_str().as_bytes())
                .address(to)
                .uint(amount.minor_units()),
            TxBody::Burn { asset, amount } => hasher
                .dynamic(asset.as_str().as_bytes())
                .uint(amount.minor_units()),
            TxBody::HtlcLock {
                asset,
                recipient,
                amount,
                hashlock,
                expires_at_ms,
            } => hasher
                .dynamic(asset.as_str().as_bytes())
                .address(recipient)
                .uint(amount.minor_units())
                .bytes32(hashlock.as_bytes())
                .uint(u128::from(*expires_at_ms)),
            TxBody::HtlcClaim { lock_id, preimage } => hasher
                .bytes32(lock_id.as_bytes())
                .dynamic(preimage.as_bytes()),
            TxBody::HtlcRefund { lock_id } => hasher.bytes32(lock_id.as_bytes()),
            TxBody::Anchor {
                document_hash,
                parties,
            } => hasher
                .bytes32(document_hash.as_bytes())
                .address_array(parties.as_slice()),
        }
        .finish()
    }

    /// The transaction hash: the EIP-712 digest the sender signs.
    pub fn hash(&self) -> TxHash {
        TxHash::from_bytes(signing_digest(
            &domain_separator(self.chain_id),
            &self.struct_hash(),
        ))
    }

    /// Signs with `key`, which must be the key of `from`.
    pub fn sign(self, key: &SigningKey) -> Result<SignedTransaction, WrongSigner> {
        if key.address() != self.from {
            return Err(WrongSigner {
                from: self.from,
                key: key.address(),
            });
        }
        let signature = key.sign_digest(self.hash().as_bytes());
        Ok(SignedTransaction {
            transaction: self,
            signature,
        })
    }
}

/// A key tried to sign a transaction whose `from` is another address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("transaction is from {from} but the key is {key}")]
pub struct WrongSigner {
    /// The transaction's sender.
    pub from: Address,
    /// The key's address.
    pub key: Address,
}

/// A transaction with a signature that has not been checked yet.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedTransaction {
    /// The transaction.
    pub transaction: Transaction,
    /// 65 bytes claimed to be `from`'s signature of the transaction hash.
    pub signature: Signature,
}

impl SignedTransaction {
    /// Checks that `from` signed the transaction. This is the expensive step
    /// (a public-key recovery); callers run it in parallel across a batch.
    ///
    /// The verified form holds the signature with `v` as 27 or 28, so the
    /// ledger stores one encoding of every signature.
    pub fn verify(self) -> Result<VerifiedTransaction, SignatureError> {
        self.verify_hashed().map_err(|(_, error)| error)
    }

    /// [`Self::verify`], whose refusal also carries the transaction's hash
    /// (computed on the way), for callers that report refused transactions
    /// by hash without hashing them a second time.
    pub fn verify_hashed(self) -> Result<VerifiedTransaction, (TxHash, SignatureError)> {
        let hash = self.transaction.hash();
        verify_signer(hash.as_bytes(), &self.signature, self.transaction.from)
            .map_err(|error| (hash, error))?;
        Ok(VerifiedTransaction {
            signed: SignedTransaction {
                transaction: self.transaction,
                signature: self.signature.canonical(),
            },
            hash,
        })
    }
}

/// A transaction whose signature was checked, with its hash. Only
/// [`SignedTransaction::verify`] makes one.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifiedTransaction {
    signed: SignedTransaction,
    hash: TxHash,
}

impl VerifiedTransaction {
    /// The transaction.
    pub fn transaction(&self) -> &Transaction {
        &self.signed.transaction
    }

    /// The signed form.
    pub fn signed(&self) -> &SignedTransaction {
        &self.signed
    }

    /// The transaction hash.
    pub fn hash(&self) -> TxHash {
        self.hash
    }

    /// Gives back the signed form.
    pub fn into_signed(self) -> SignedTransaction {
        self.signed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(crate::hash::sha256(&[seed])).unwrap()
    }

    fn transfer(from: Address, nonce: u64) -> Transaction {
        Transaction {
            chain_id: ChainId::new(7).unwrap(),
            from,
            nonce,
            body: TxBody::Transfer {
                asset: AssetCode::new("EUR").unwrap(),
                to: Address::from_bytes([9; 20]),
                amount: Amount::from_minor_units(100),
            },
        }
    }

    #[test]
    fn kind_names_round_trip_and_type_strings_start_with_them() {
        for kind in TxKind::ALL {
            assert_eq!(TxKind::from_name(kind.name()), Some(kind));
            assert!(
                kind.eip712_type()
                    .starts_with(&format!("{}(address from,uint64 nonce,", kind.name()))
            );
        }
        assert_eq!(TxKind::from_name("Mint"), None);
    }

    #[test]
    fn sign_verify_and_tamper() {
        let key = key(1);
        let signed = transfer(key.address(), 0).sign(&key).unwrap();
        let verified = signed.clone().verify().unwrap();
        assert_eq!(verified.hash(), signed.transaction.hash());

        let mut tampered = signed.clone();
        tampered.transaction.nonce = 1;
        assert!(matches!(
            tampered.verify(),
            Err(SignatureError::SignerMismatch { .. })
        ));

        let mut other_chain = signed;
        other_chain.transaction.chain_id = ChainId::new(8).unwrap();
        assert!(other_chain.verify().is_err());
    }

    #[test]
    fn signing_for_someone_else_is_refused() {
        let err = transfer(key(2).address(), 0).sign(&key(1)).unwrap_err();
        assert_eq!(err.from, key(2).address());
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = transfer(key(1).address(), 0);
        let mut variants = vec![base.clone()];
        let mut v = base.clone();
        v.chain_id = ChainId::new(8).unwrap();
        variants.push(v);
        let mut v = base.clone();
        v.nonce = 1;
        variants.push(v);
        let mut v = base.clone();
        v.from = Address::from_bytes([3; 20]);
        variants.push(v);
        let mut v = base.clone();
        v.body = TxBody::Issue {
            asset: AssetCode::new("EUR").unwrap(),
            to: Address::from_bytes([9; 20]),
            amount: Amount::from_minor_units(100),
        };
        variants.push(v);
        let hashes: std::collections::BTreeSet<_> =
            variants.iter().map(Transaction::hash).collect();
        assert_eq!(hashes.len(), variants.len());
    }
}
