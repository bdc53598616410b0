//! The chain verifier an auditor runs offline: given exported blocks and the
//! block keys it trusts, it recomputes every hash, checks every signature,
//! replays every transaction from an empty ledger, and names the first item
//! that is wrong.
//!
//! An export is a sequence of [`ExportedBlock`]s in height order, each with
//! its signed header and its transactions, every transaction carrying its
//! leaf index and RFC 6962 audit path. The paths are hints for pinpointing,
//! never trusted: a transaction counts as committed only when its recomputed
//! hash leads through its path to the root in a header whose signature holds.
//!
//! Checks per block, in order (the first failure is reported):
//! 1. header: chain id, signature, trusted producer, height (a gap is a
//!    removed block, or a reordered one if the missing height turns up later;
//!    a height already seen is an inserted block), link to the previous
//!    block's hash, timestamp not going back;
//! 2. transactions: each one's signature (a failure means its content was
//!    altered), its inclusion under the header's root (a validly signed
//!    transaction that is not committed was inserted), and its position (a
//!    missing index was removed, or reordered if it turns up later in the
//!    block; an index seen before is an inserted duplicate); then the count;
//! 3. replay: the block's transactions are applied at the block's timestamp
//!    and every one must apply; a rejection means the producer committed a
//!    transaction the ledger rules forbid (a double spend, a replay).
//!
//! Truncation at the end of an export cannot be seen from inside it: compare
//! the summary's tip with a block hash obtained independently.

use crate::apply::{BlockContext, Outcome, Rejection, apply_batch};
use crate::block::{Block, BlockHeader, ChainTip, SignedBlockHeader};
use crate::merkle::{MerkleTree, verify_inclusion};
use crate::signature::SignatureError;
use crate::state::{ApplyError, Snapshot};
use crate::tx::{SignedTransaction, VerifiedTransaction};
use crate::types::{Address, BlockHash, ChainId, TxHash};

/// A transaction as exported: with its leaf index and audit path.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ProvenTransaction {
    /// The signed transaction.
    pub transaction: SignedTransaction,
    /// Its position in the block, from 0.
    pub index: u32,
    /// Its RFC 6962 audit path, leaf to root.
    pub path: Vec<[u8; 32]>,
}

/// A block as exported for audit.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ExportedBlock {
    /// The signed header.
    pub header: SignedBlockHeader,
    /// The transactions in block order, each with its proof.
    pub transactions: Vec<ProvenTransaction>,
}

impl ExportedBlock {
    /// The export form of a sealed block (computes every audit path).
    pub fn from_block(block: &Block) -> Self {
        let hashes: Vec<TxHash> = block
            .transactions
            .iter()
            .map(|tx| tx.transaction.hash())
            .collect();
        let tree = MerkleTree::new(&hashes);
        let transactions = block
            .transactions
            .iter()
            .enumerate()
            .map(|(i, tx)| ProvenTransaction {
                transaction: tx.clone(),
                // A sealed block has at most u32::MAX transactions.
                index: u32::try_from(i).unwrap_or(u32::MAX),
                path: tree.path(i).unwrap_or_default(),
            })
            .collect();
        Self {
            header: block.header,
            transactions,
        }
    }
}

/// What is wrong with a block header.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum HeaderFault {
    /// The header is of another ledger.
    #[error("header is of chain {actual}, expected chain {expected}")]
    WrongChain {
        /// The chain verified.
        expected: ChainId,
        /// The header's chain.
        actual: ChainId,
    },
    /// The signature does not match the header's content: it was altered.
    #[error("header altered: its signature does not hold ({0})")]
    Altered(SignatureError),
    /// Signed by a key that is not a trusted block key.
    #[error("header signed by untrusted producer {producer}")]
    UntrustedProducer {
        /// The producer named in the header.
        producer: Address,
    },
    /// The block that should come here is missing from the export.
    #[error("block {expected_height} was removed (found block {found_height} in its place)")]
    Removed {
        /// The height missing.
        expected_height: u64,
        /// The height found instead.
        found_height: u64,
    },
    /// Blocks are out of order: the expected block comes later in the export.
    #[error("blocks reordered: block {found_height} stands where block {expected_height} belongs")]
    Reordered {
        /// The height that belongs here.
        expected_height: u64,
        /// The height found.
        found_height: u64,
    },
    /// A block whose height was already verified: an inserted copy or forgery.
    #[error(
        "block {found_height} inserted: height already verified, expected block {expected_height}"
    )]
    Inserted {
        /// The height that belongs here.
        expected_height: u64,
        /// The height found.
        found_height: u64,
    },
    /// `previousHash` is not the hash of the previous block.
    #[error("header does not link to the previous block {expected}")]
    BrokenLink {
        /// The previous block's hash.
        expected: BlockHash,
    },
    /// Block time went backwards.
    #[error("timestamp {timestamp_ms} is before the previous block's {previous_ms}")]
    TimestampRegressed {
        /// This block's timestamp.
        timestamp_ms: u64,
        /// The previous block's.
        previous_ms: u64,
    },
}

/// What is wrong with a block's transactions.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum TxFault {
    /// The signature does not match the transaction's content: it was altered.
    #[error("transaction {tx_hash} altered: its signature does not hold ({error})")]
    Altered {
        /// The hash of the content as found.
        tx_hash: TxHash,
        /// Why the signature fails.
        error: SignatureError,
    },
    /// A validly signed transaction the block's header does not commit to.
    #[error("transaction {tx_hash} inserted: the block header does not commit to it")]
    Inserted {
        /// Its hash.
        tx_hash: TxHash,
    },
    /// A transaction the header commits to at `index` appears again.
    #[error("transaction {tx_hash} inserted: a second copy of the transaction at index {index}")]
    Duplicate {
        /// Its hash.
        tx_hash: TxHash,
        /// Where it belongs.
        index: u32,
    },
    /// The transaction committed at `index` is missing.
    #[error("transaction at index {index} was removed")]
    Removed {
        /// The missing position.
        index: u32,
    },
    /// The transaction committed at `index` appears later in the block.
    #[error("transactions reordered: the transaction of index {index} comes later")]
    Reordered {
        /// The position whose transaction is out of place.
        index: u32,
    },
    /// Committed, but the ledger rules reject it on replay.
    #[error("transaction {tx_hash} does not apply on replay: {rejection}")]
    Rejected {
        /// Its hash.
        tx_hash: TxHash,
        /// Why it does not apply.
        rejection: Rejection,
    },
}

/// The first bad item of an export.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ChainFault {
    /// A header is wrong.
    #[error("block #{position} of the export (height {height}): {fault}")]
    Header {
        /// Position of the block in the export, from 0.
        position: u64,
        /// The height its header states.
        height: u64,
        /// What is wrong.
        fault: HeaderFault,
    },
    /// A transaction is wrong.
    #[error("block {height}, transaction #{position} of the block: {fault}")]
    Transaction {
        /// Height of the block.
        height: u64,
        /// Position of the transaction in the block's export list, from 0.
        position: usize,
        /// What is wrong.
        fault: TxFault,
    },
    /// Replaying broke a ledger invariant: a bug in this verifier or the core.
    #[error("replay failed: {0}")]
    Replay(ApplyError),
}

/// What a successful verification establishes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ChainSummary {
    /// Blocks verified.
    pub blocks: u64,
    /// Transactions verified and replayed.
    pub transactions: u64,
    /// The tip after the last block.
    pub tip: ChainTip,
    /// The ledger's state after replaying everything: balances, supply,
    /// nonces and HTLCs.
    pub state: Snapshot,
}

#[derive(Clone, Copy, Debug)]
struct HeightGap {
    position: u64,
    expected_height: u64,
    found_height: u64,
}

/// Verifies an export block by block, keeping only the replayed state.
#[derive(Debug)]
pub struct ChainVerifier {
    chain_id: ChainId,
    trusted_producers: Vec<Address>,
    tip: ChainTip,
    state: Snapshot,
    blocks: u64,
    transactions: u64,
    position: u64,
    gap: Option<HeightGap>,
}

impl ChainVerifier {
    /// A verifier for the ledger `chain_id`, trusting headers signed by any of
    /// `trusted_producers` (several, to span a block-key rotation).
    pub fn new(chain_id: ChainId, trusted_producers: Vec<Address>) -> Self {
        Self {
            chain_id,
            trusted_producers,
            tip: ChainTip::GENESIS,
            state: Snapshot::complete(),
            blocks: 0,
            transactions: 0,
            position: 0,
            gap: None,
        }
    }

    /// Verifies the next block of the export.
    pub fn push_block(&mut self, block: &ExportedBlock) -> Result<(), ChainFault> {
        let position = self.position;
        self.position += 1;
        let header = &block.header.header;
        let header_fault = |fault| ChainFault::Header {
            position,
            height: header.height,
            fault,
        };
        // Checks that hold for any block, wherever it stands.
        let authentic = if header.chain_id != self.chain_id {
            Err(HeaderFault::WrongChain {
                expected: self.chain_id,
                actual: header.chain_id,
            })
        } else if let Err(error) = block.header.verify_signature() {
            Err(HeaderFault::Altered(error))
        } else if !block.header.signature.is_canonical() {
            // The ledger writes v as 27/28 only; another encoding was edited in.
            Err(HeaderFault::Altered(SignatureError::RecoveryId {
                v: block.header.signature.as_bytes()[64],
            }))
        } else if !self.trusted_producers.contains(&header.producer) {
            Err(HeaderFault::UntrustedProducer {
                producer: header.producer,
            })
        } else {
            Ok(())
        };
        if let Some(gap) = self.gap {
            // A block is missing where `gap` was found; if an authentic block
            // of the missing height turns up now, the blocks were reordered
            // rather than removed. Nothing else is judged past the gap.
            if authentic.is_ok() && header.height == gap.expected_height {
                return Err(ChainFault::Header {
                    position: gap.position,
                    height: gap.found_height,
                    fault: HeaderFault::Reordered {
                        expected_height: gap.expected_height,
                        found_height: gap.found_height,
                    },
                });
            }
            return Ok(());
        }
        authentic.map_err(header_fault)?;
        let expected_height = self.tip.next_height;
        if header.height < expected_height {
            return Err(header_fault(HeaderFault::Inserted {
                expected_height,
                found_height: header.height,
            }));
        }
        if header.height > expected_height {
            self.gap = Some(HeightGap {
                position,
                expected_height,
                found_height: header.height,
            });
            return Ok(());
        }
        if header.previous_hash != self.tip.last_hash {
            return Err(header_fault(HeaderFault::BrokenLink {
                expected: self.tip.last_hash,
            }));
        }
        if header.timestamp_ms < self.tip.last_timestamp_ms {
            return Err(header_fault(HeaderFault::TimestampRegressed {
                timestamp_ms: header.timestamp_ms,
                previous_ms: self.tip.last_timestamp_ms,
            }));
        }
        let verified =
            check_transactions(header, &block.transactions).map_err(|(position, fault)| {
                ChainFault::Transaction {
                    height: header.height,
                    position,
                    fault,
                }
            })?;
        let context = BlockContext {
            chain_id: self.chain_id,
            timestamp_ms: header.timestamp_ms,
        };
        let result =
            apply_batch(&mut self.state, &context, &verified).map_err(ChainFault::Replay)?;
        for (position, (outcome, tx)) in result.outcomes.iter().zip(&verified).enumerate() {
            if let Outcome::Rejected(rejection) = outcome {
                return Err(ChainFault::Transaction {
                    height: header.height,
                    position,
                    fault: TxFault::Rejected {
                        tx_hash: tx.hash(),
                        rejection: *rejection,
                    },
                });
            }
        }
        self.tip = ChainTip {
            next_height: header.height + 1,
            last_hash: header.hash(),
            last_timestamp_ms: header.timestamp_ms,
        };
        self.blocks += 1;
        self.transactions += verified.len() as u64;
        Ok(())
    }

    /// Ends verification: the summary, or the fault of a block that was
    /// missing with nothing after it to explain the gap.
    pub fn finish(self) -> Result<ChainSummary, ChainFault> {
        if let Some(gap) = self.gap {
            return Err(ChainFault::Header {
                position: gap.position,
                height: gap.found_height,
                fault: HeaderFault::Removed {
                    expected_height: gap.expected_height,
                    found_height: gap.found_height,
                },
            });
        }
        self.state.check_supply().map_err(ChainFault::Replay)?;
        Ok(ChainSummary {
            blocks: self.blocks,
            transactions: self.transactions,
            tip: self.tip,
            state: self.state,
        })
    }
}

/// Checks a block's transactions against its header; returns them verified
/// in block order, or the position and fault of the first bad one. Faults
/// are judged position by position (signature, then commitment, then
/// place), so the one reported is the first in the block.
fn check_transactions(
    header: &BlockHeader,
    transactions: &[ProvenTransaction],
) -> Result<Vec<VerifiedTransaction>, (usize, TxFault)> {
    let hashes: Vec<TxHash> = transactions
        .iter()
        .map(|proven| proven.transaction.transaction.hash())
        .collect();
    // Fast path: the list as given is exactly what the header commits to, so
    // only the signatures remain to be checked.
    let committed_as_given = u64::try_from(hashes.len()) == Ok(u64::from(header.tx_count))
        && MerkleTree::new(&hashes).root() == header.tx_root;
    // Where each transaction's own path proves it to be, if anywhere. The
    // exported index is tried first; if it was edited, every index is tried,
    // since a path proves one position only.
    let proven_index = |position: usize| -> Option<u32> {
        let proven = &transactions[position];
        let proves = |index: u32| {
            verify_inclusion(
                &hashes[position],
                u64::from(index),
                u64::from(header.tx_count),
                &proven.path,
                &header.tx_root,
            )
        };
        if proves(proven.index) {
            return Some(proven.index);
        }
        (0..header.tx_count).find(|index| proves(*index))
    };
    let mut verified = Vec::with_capacity(transactions.len());
    let mut expected: u32 = 0;
    let mut later: Option<Vec<Option<u32>>> = None;
    for (position, proven) in transactions.iter().enumerate() {
        let tx_hash = hashes[position];
        let signature = proven.transaction.signature;
        let checked = proven.transaction.clone().verify().and_then(|tx| {
            if signature.is_canonical() {
                Ok(tx)
            } else {
                Err(SignatureError::RecoveryId {
                    v: signature.as_bytes()[64],
                })
            }
        });
        match checked {
            Ok(tx) => verified.push(tx),
            Err(error) => return Err((position, TxFault::Altered { tx_hash, error })),
        }
        if committed_as_given {
            continue;
        }
        let Some(index) = proven_index(position) else {
            return Err((position, TxFault::Inserted { tx_hash }));
        };
        if index == expected {
            expected += 1;
            continue;
        }
        if index < expected {
            return Err((position, TxFault::Duplicate { tx_hash, index }));
        }
        let later = later.get_or_insert_with(|| {
            (0..transactions.len())
                .map(|p| if p > position { proven_index(p) } else { None })
                .collect()
        });
        if later.contains(&Some(expected)) {
            return Err((position, TxFault::Reordered { index: expected }));
        }
        return Err((position, TxFault::Removed { index: expected }));
    }
    if committed_as_given {
        return Ok(verified);
    }
    // Every transaction given is in place, so some are missing at the end.
    Err((transactions.len(), TxFault::Removed { index: expected }))
}
