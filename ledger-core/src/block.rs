//! Blocks: the signed header that commits to a list of transactions, and the
//! inclusion proof that lets a third party check one transaction against it
//! without trusting the gateway or its database.
//!
//! A header is an EIP-712 message in the ledger's domain (see [`crate::eip712`]):
//!
//! `BlockHeader(uint64 height,bytes32 previousHash,uint64 timestampMs,bytes32 txRoot,uint32 txCount,address producer)`
//!
//! - `height`: 0 for the first block, then +1 per block;
//! - `previousHash`: the previous block's hash, 32 zero bytes for block 0;
//! - `timestampMs`: ledger time of the block (ms since the Unix epoch), never
//!   below the previous block's; every HTLC timelock in the block is judged
//!   against it;
//! - `txRoot`: the RFC 6962 Merkle root of the block's transaction hashes in
//!   block order (see [`crate::merkle`]); `txCount`: how many there are;
//! - `producer`: the address of the block key, which signs the header.
//!
//! The block hash is the header's EIP-712 digest, and the producer's 65-byte
//! signature is over that digest, like a transaction's. Only applied
//! transactions are in blocks; a rejected one is never committed.

use crate::eip712::{StructHasher, domain_separator, signing_digest, type_hash};
use crate::merkle::{MerkleTree, verify_inclusion};
use crate::signature::{Signature, SignatureError, SigningKey, verify_signer};
use crate::tx::{SignedTransaction, VerifiedTransaction};
use crate::types::{Address, BlockHash, ChainId, MerkleRoot, TxHash};

type_hash!(
    BLOCK_HEADER = "BlockHeader(uint64 height,bytes32 previousHash,uint64 timestampMs,bytes32 txRoot,uint32 txCount,address producer)"
);

/// The exact EIP-712 type string of a block header.
pub fn block_header_eip712_type() -> &'static str {
    BLOCK_HEADER.type_string()
}

/// A block header. See the module docs for each field.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct BlockHeader {
    /// The ledger (the EIP-712 domain's `chainId`).
    pub chain_id: ChainId,
    /// 0 for the first block.
    pub height: u64,
    /// The previous block's hash; zero for block 0.
    pub previous_hash: BlockHash,
    /// Ledger time of the block, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Merkle root of the block's transaction hashes.
    pub tx_root: MerkleRoot,
    /// Number of transactions in the block.
    pub tx_count: u32,
    /// Address of the block key that signs the header.
    pub producer: Address,
}

impl BlockHeader {
    /// The block hash: the header's EIP-712 digest.
    pub fn hash(&self) -> BlockHash {
        let struct_hash = StructHasher::new(BLOCK_HEADER.hash())
            .uint(u128::from(self.height))
            .bytes32(self.previous_hash.as_bytes())
            .uint(u128::from(self.timestamp_ms))
            .bytes32(self.tx_root.as_bytes())
            .uint(u128::from(self.tx_count))
            .address(&self.producer)
            .finish();
        BlockHash::from_bytes(signing_digest(
            &domain_separator(self.chain_id),
            &struct_hash,
        ))
    }

    /// Signs with the block key, which must be the key of `producer`.
    pub fn sign(self, key: &SigningKey) -> Result<SignedBlockHeader, crate::tx::WrongSigner> {
        if key.address() != self.producer {
            return Err(crate::tx::WrongSigner {
                from: self.producer,
                key: key.address(),
            });
        }
        Ok(SignedBlockHeader {
            signature: key.sign_digest(self.hash().as_bytes()),
            header: self,
        })
    }
}

/// A header with its producer's signature.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct SignedBlockHeader {
    /// The header.
    pub header: BlockHeader,
    /// The producer's signature of the block hash.
    pub signature: Signature,
}

impl SignedBlockHeader {
    /// Checks that `producer` signed this header.
    pub fn verify_signature(&self) -> Result<(), SignatureError> {
        verify_signer(
            self.header.hash().as_bytes(),
            &self.signature,
            self.header.producer,
        )
    }
}

/// A sealed block: its signed header and its transactions in block order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Block {
    /// The signed header.
    pub header: SignedBlockHeader,
    /// The transactions, in block order.
    pub transactions: Vec<SignedTransaction>,
}

/// What the producer of a ledger needs to seal its next block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ChainTip {
    /// Height of the next block.
    pub next_height: u64,
    /// Hash of the last block (zero before block 0).
    pub last_hash: BlockHash,
    /// Timestamp of the last block (0 before block 0).
    pub last_timestamp_ms: u64,
}

impl ChainTip {
    /// The tip of a ledger with no blocks.
    pub const GENESIS: ChainTip = ChainTip {
        next_height: 0,
        last_hash: BlockHash::from_bytes([0; 32]),
        last_timestamp_ms: 0,
    };
}

/// Why a block could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// A block holds at most `u32::MAX` transactions.
    #[error("a block holds at most 2^32-1 transactions")]
    TooManyTransactions,
    /// A transaction of another chain cannot be sealed into this one.
    #[error("transaction {transaction} is of another chain")]
    WrongChain {
        /// The transaction.
        transaction: TxHash,
    },
    /// Block time may not go backwards.
    #[error("block timestamp {timestamp_ms} is before the previous block's {previous_ms}")]
    TimestampRegressed {
        /// The timestamp asked for.
        timestamp_ms: u64,
        /// The previous block's timestamp.
        previous_ms: u64,
    },
}

/// Seals the next block after `tip` over `transactions` and signs it with
/// the block key. `context` must be the one the transactions were applied
/// with (by [`crate::apply_batch`]), and `transactions` exactly those that
/// applied, in order: the block's timestamp is the time they were judged at,
/// so a verifier replaying the block reaches the same outcomes. Returns the
/// block and the Merkle tree, from which every inclusion proof is cut.
pub fn seal_block(
    context: &crate::apply::BlockContext,
    tip: &ChainTip,
    transactions: &[VerifiedTransaction],
    key: &SigningKey,
) -> Result<(Block, MerkleTree), SealError> {
    let (chain_id, timestamp_ms) = (context.chain_id, context.timestamp_ms);
    if timestamp_ms < tip.last_timestamp_ms {
        return Err(SealError::TimestampRegressed {
            timestamp_ms,
            previous_ms: tip.last_timestamp_ms,
        });
    }
    if let Some(tx) = transactions
        .iter()
        .find(|tx| tx.transaction().chain_id != chain_id)
    {
        return Err(SealError::WrongChain {
            transaction: tx.hash(),
        });
    }
    let tx_count = u32::try_from(transactions.len()).map_err(|_| SealError::TooManyTransactions)?;
    let hashes: Vec<TxHash> = transactions.iter().map(VerifiedTransaction::hash).collect();
    let tree = MerkleTree::new(&hashes);
    let header = BlockHeader {
        chain_id,
        height: tip.next_height,
        previous_hash: tip.last_hash,
        timestamp_ms,
        tx_root: tree.root(),
        tx_count,
        producer: key.address(),
    };
    let signed = SignedBlockHeader {
        signature: key.sign_digest(header.hash().as_bytes()),
        header,
    };
    let block = Block {
        header: signed,
        transactions: transactions.iter().map(|tx| tx.signed().clone()).collect(),
    };
    Ok((block, tree))
}

/// Proof that a transaction is in a block: the block's signed header, the
/// transaction's position, and its RFC 6962 audit path.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InclusionProof {
    /// The signed header of the block holding the transaction.
    pub header: SignedBlockHeader,
    /// Position of the transaction in the block, from 0.
    pub index: u32,
    /// Sibling hashes from the leaf up to the root.
    pub path: Vec<[u8; 32]>,
}

/// Why an inclusion proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The transaction's own signature does not hold.
    #[error("transaction signature: {0}")]
    TransactionSignature(SignatureError),
    /// The header's signature does not hold.
    #[error("block header signature: {0}")]
    HeaderSignature(SignatureError),
    /// The header was signed by a key the verifier does not trust.
    #[error("block producer {producer} is not a trusted block key")]
    UntrustedProducer {
        /// The header's producer.
        producer: Address,
    },
    /// Transaction and header are of different ledgers.
    #[error("transaction is for chain {transaction}, block is of chain {block}")]
    ChainMismatch {
        /// The transaction's chain.
        transaction: ChainId,
        /// The block's chain.
        block: ChainId,
    },
    /// The audit path does not lead from the transaction to the header's root.
    #[error("the Merkle path does not lead from the transaction to the block's root")]
    NotIncluded,
}

impl InclusionProof {
    /// Checks the proof for `tx` against block keys the verifier trusts:
    /// the transaction's signature, the header's signature and producer, and
    /// the Merkle path from the recomputed transaction hash to the signed root.
    /// Nothing stored is trusted: every hash is recomputed.
    pub fn verify(
        &self,
        tx: &SignedTransaction,
        trusted_producers: &[Address],
    ) -> Result<(), ProofError> {
        let verified = tx
            .clone()
            .verify()
            .map_err(ProofError::TransactionSignature)?;
        self.header
            .verify_signature()
            .map_err(ProofError::HeaderSignature)?;
        let header = &self.header.header;
        if !trusted_producers.contains(&header.producer) {
            return Err(ProofError::UntrustedProducer {
                producer: header.producer,
            });
        }
        if verified.transaction().chain_id != header.chain_id {
            return Err(ProofError::ChainMismatch {
                transaction: verified.transaction().chain_id,
                block: header.chain_id,
            });
        }
        if !verify_inclusion(
            &verified.hash(),
            u64::from(self.index),
            u64::from(header.tx_count),
            &self.path,
            &header.tx_root,
        ) {
            return Err(ProofError::NotIncluded);
        }
        Ok(())
    }
}

/// Cuts the inclusion proof of transaction `index` from a sealed block.
pub fn inclusion_proof(
    header: &SignedBlockHeader,
    tree: &MerkleTree,
    index: u32,
) -> Option<InclusionProof> {
    let path = tree.path(usize::try_from(index).ok()?)?;
    Some(InclusionProof {
        header: *header,
        index,
        path,
    })
}
