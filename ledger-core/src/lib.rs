//! `ledger-core`: the money rules of Lockgate's built-in ledger, as a pure
//! library. No I/O, no async, no SQL, no clock, no randomness: the gateway
//! loads state, passes the block time in, and persists what comes out.
//!
//! Map of the crate:
//! - [`types`]: addresses (EIP-55), asset codes, amounts, chain ids, hashes;
//! - [`hash`]: Keccak-256 and SHA-256;
//! - [`signature`]: 65-byte low-S recoverable secp256k1 signatures, signing keys;
//! - [`eip712`]: the ledger's EIP-712 domain and encoding;
//! - [`tx`]: transactions, their EIP-712 types and hashes, signed and verified forms;
//! - [`state`]: snapshots, read sets, state changes, HTLC records;
//! - [`apply`]: the state transition and its outcomes;
//! - [`merkle`]: the RFC 6962 Merkle tree and inclusion proofs;
//! - [`block`]: signed block headers, sealing, inclusion proofs of transactions;
//! - [`verify`]: the offline chain verifier;
//! - [`settlement`]: roaming settlement: usage records, agreements, netting,
//!   and their EIP-712 types.
//!
//! The wire formats (EIP-712 types, hashing and Merkle scheme) are specified
//! in `docs/ledger-format.md` at the repository root, precisely enough to
//! write an independent verifier.

#![forbid(unsafe_code)]

pub mod apply;
pub mod block;
pub mod eip712;
pub mod hash;
pub mod merkle;
pub mod settlement;
pub mod signature;
pub mod state;
pub mod tx;
pub mod types;
pub mod verify;

pub use apply::{BatchResult, BlockContext, Outcome, Rejection, apply_batch};
pub use block::{Block, BlockHeader, ChainTip, InclusionProof, SignedBlockHeader, seal_block};
pub use signature::{Signature, SignatureError, SigningKey};
pub use state::{ApplyError, AssetState, Htlc, HtlcStatus, ReadSet, Snapshot, StateChanges};
pub use tx::{SignedTransaction, Transaction, TxBody, TxKind, VerifiedTransaction};
pub use types::{
    Address, Amount, Asset, AssetCode, BlockHash, ChainId, DocumentHash, Hashlock, LockId,
    MerkleRoot, ParseError, Parties, Preimage, Scale, TxHash,
};
pub use verify::{ChainFault, ChainSummary, ChainVerifier, ExportedBlock};
