//! The chain export (NDJSON) and its offline verification
//! (`lockgate verify FILE`).
//!
//! Format `lockgate-export/1`, one JSON document per line:
//! 1. a head: `{"format":"lockgate-export/1","chainId":"4201","producers":["0x…"],"blockCount":12,"lastBlockHash":"0x…"}`
//!    (`producers`: every block key that signed a block; `blockCount` and
//!    `lastBlockHash`: the chain tip when the export started, so a file cut
//!    short fails verification; `lastBlockHash` is absent for an empty chain);
//! 2. one line per block, in height order:
//!    `{"header": <BlockHeaderView>, "transactions": [{"transaction": <SignedTransactionDto>, "index": 0, "path": ["0x…"]}]}`.
//!
//! Verification trusts nothing in the file: it is `ledger_core::verify::ChainVerifier`
//! (every hash recomputed, every signature checked, every transaction
//! replayed). The producers named in the head are trusted only when no
//! `--producer` is given, and the report says so. The head is not signed:
//! it catches a truncated file, not a forger who also rewrites the head; an
//! auditor who holds a block hash from elsewhere compares it with the tip
//! the report prints.

use std::io::BufRead;

use ledger_core::block::{BlockHeader, SignedBlockHeader};
use ledger_core::merkle::MerkleTree;
use ledger_core::verify::{ChainVerifier, ExportedBlock, ProvenTransaction};
use ledger_core::{Address, ChainId, TxHash};
use serde::{Deserialize, Serialize};

use crate::dto::SignedTransactionDto;
use crate::store::{AnyStore, LedgerStore, StoreError};
use crate::views::BlockHeaderView;

/// The format name of this version of the export.
pub const FORMAT: &str = "lockgate-export/1";

/// The first line of an export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExportHead {
    /// Always [`FORMAT`].
    pub format: String,
    /// The ledger's chain id.
    pub chain_id: String,
    /// The block keys that signed the chain (not trusted by `verify` when
    /// `--producer` is given).
    pub producers: Vec<String>,
    /// Blocks in the export.
    pub block_count: u64,
    /// Hash of the last block; absent for an empty chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_block_hash: Option<String>,
}

impl ExportHead {
    /// The head of an export of a ledger up to `tip`.
    pub fn new(chain_id: ChainId, producers: Vec<Address>, tip: &ledger_core::ChainTip) -> Self {
        Self {
            format: FORMAT.to_string(),
            chain_id: chain_id.to_string(),
            producers: producers.iter().map(ToString::to_string).collect(),
            block_count: tip.next_height,
            last_block_hash: (tip.next_height > 0).then(|| tip.last_hash.to_string()),
        }
    }
}

/// One exported transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExportTransaction {
    /// The signed transaction.
    pub transaction: SignedTransactionDto,
    /// Its position in the block.
    pub index: u32,
    /// Its RFC 6962 audit path.
    pub path: Vec<String>,
}

/// One exported block.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExportBlock {
    /// The signed header.
    pub header: BlockHeaderView,
    /// The transactions, in block order.
    pub transactions: Vec<ExportTransaction>,
}

/// Reads one block from the store in export form.
pub async fn export_block(
    store: &AnyStore,
    chain_id: ChainId,
    height: u64,
) -> Result<ExportBlock, StoreError> {
    let header = store
        .block(chain_id, height)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("block {height} missing")))?;
    let txs = store.block_transactions(chain_id, height).await?;
    let hashes: Vec<TxHash> = txs.iter().map(|t| t.hash).collect();
    let tree = MerkleTree::new(&hashes);
    let transactions = txs
        .iter()
        .map(|tx| ExportTransaction {
            transaction: SignedTransactionDto::from_domain(&tx.signed),
            index: tx.position,
            path: tree
                .path(tx.position as usize)
                .unwrap_or_default()
                .iter()
                .map(|h| format!("0x{}", hex::encode(h)))
                .collect(),
        })
        .collect();
    Ok(ExportBlock {
        header: BlockHeaderView::from(&header),
        transactions,
    })
}

/// Why an export could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read.
    #[error("reading the export: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not what the format says, so nothing after it can be judged.
    #[error("line {line}: {reason}")]
    Format {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file ends before the tip its head announces: blocks are missing
    /// at the end.
    #[error(
        "line {line}: the export ends after {found} blocks but its head announces {expected} ending in {expected_hash}"
    )]
    Truncated {
        /// The line after the last one.
        line: usize,
        /// Blocks announced.
        expected: u64,
        /// Hash of the last block announced.
        expected_hash: String,
        /// Blocks found.
        found: u64,
    },
    /// The chain is not intact.
    #[error("line {line}: {fault}")]
    Chain {
        /// 1-based line of the block at fault (for a block that is missing at
        /// the end, the line after the last).
        line: usize,
        /// The verifier's finding.
        fault: ledger_core::ChainFault,
    },
}

/// What a successful verification found.
#[derive(Debug)]
pub struct VerifyReport {
    /// The chain id.
    pub chain_id: ChainId,
    /// The trusted producers used.
    pub producers: Vec<Address>,
    /// True when the producers came from the file itself.
    pub producers_from_file: bool,
    /// The verifier's summary.
    pub summary: ledger_core::ChainSummary,
}

pub(crate) fn parse_header(view: &BlockHeaderView) -> Result<SignedBlockHeader, String> {
    let chain_id: u64 = view
        .chain_id
        .parse()
        .map_err(|e| format!("header chainId: {e}"))?;
    Ok(SignedBlockHeader {
        header: BlockHeader {
            chain_id: ChainId::new(chain_id).map_err(|e| e.to_string())?,
            height: view.height,
            previous_hash: view
                .previous_hash
                .parse()
                .map_err(|e| format!("previousHash: {e}"))?,
            timestamp_ms: view.timestamp_ms,
            tx_root: view.tx_root.parse().map_err(|e| format!("txRoot: {e}"))?,
            tx_count: view.tx_count,
            producer: view
                .producer
                .parse()
                .map_err(|e| format!("producer: {e}"))?,
        },
        signature: view
            .signature
            .parse()
            .map_err(|e| format!("signature: {e}"))?,
    })
}

fn parse_block(block: &ExportBlock) -> Result<ExportedBlock, String> {
    let header = parse_header(&block.header)?;
    let mut transactions = Vec::with_capacity(block.transactions.len());
    for (i, tx) in block.transactions.iter().enumerate() {
        let signed = tx
            .transaction
            .to_domain()
            .map_err(|e| format!("transaction {i}: {e}"))?;
        let mut path = Vec::with_capacity(tx.path.len());
        for hash in &tx.path {
            let parsed: TxHash = hash
                .parse()
                .map_err(|e| format!("transaction {i} path: {e}"))?;
            path.push(*parsed.as_bytes());
        }
        transactions.push(ProvenTransaction {
            transaction: signed,
            index: tx.index,
            path,
        });
    }
    Ok(ExportedBlock {
        header,
        transactions,
    })
}

/// Verifies an export read from `reader`, line by line (memory holds the
/// replayed state and one block, not the file).
pub fn verify_export(
    reader: impl BufRead,
    chain_id: Option<ChainId>,
    producers: Vec<Address>,
) -> Result<VerifyReport, VerifyError> {
    let mut lines = reader.lines().enumerate();
    let format = |line: usize, reason: String| VerifyError::Format { line, reason };
    let (_, first) = lines
        .next()
        .ok_or_else(|| format(1, "the export is empty".into()))?;
    let head: ExportHead =
        serde_json::from_str(&first?).map_err(|e| format(1, format!("head: {e}")))?;
    if head.format != FORMAT {
        return Err(format(
            1,
            format!("format {:?} is not {FORMAT}", head.format),
        ));
    }
    let file_chain: u64 = head
        .chain_id
        .parse()
        .map_err(|e| format(1, format!("chainId: {e}")))?;
    let file_chain = ChainId::new(file_chain).map_err(|e| format(1, e.to_string()))?;
    let chain_id = chain_id.unwrap_or(file_chain);
    let producers_from_file = producers.is_empty();
    let producers = if producers_from_file {
        let mut named = Vec::new();
        for p in &head.producers {
            named.push(p.parse().map_err(|e| format(1, format!("producer: {e}")))?);
        }
        named
    } else {
        producers
    };
    let mut verifier = ChainVerifier::new(chain_id, producers.clone());
    let mut positions = Vec::new();
    let mut last_line = 1;
    for (index, line) in lines {
        let line_number = index + 1;
        last_line = line_number;
        let text = line?;
        if text.trim().is_empty() {
            continue;
        }
        let block: ExportBlock =
            serde_json::from_str(&text).map_err(|e| format(line_number, format!("block: {e}")))?;
        let block = parse_block(&block).map_err(|reason| format(line_number, reason))?;
        positions.push(line_number);
        verifier
            .push_block(&block)
            .map_err(|fault| chain_error(fault, &positions))?;
    }
    let summary = verifier.finish().map_err(|fault| {
        let error = chain_error(fault, &positions);
        match error {
            VerifyError::Chain { line: 0, fault } => VerifyError::Chain {
                line: last_line + 1,
                fault,
            },
            other => other,
        }
    })?;
    let announced = head
        .last_block_hash
        .clone()
        .unwrap_or_else(|| ledger_core::BlockHash::default().to_string());
    if summary.tip.next_height != head.block_count || summary.tip.last_hash.to_string() != announced
    {
        return Err(VerifyError::Truncated {
            line: last_line + 1,
            expected: head.block_count,
            expected_hash: announced,
            found: summary.tip.next_height,
        });
    }
    Ok(VerifyReport {
        chain_id,
        producers,
        producers_from_file,
        summary,
    })
}

/// Maps a fault to the file line of its block.
fn chain_error(fault: ledger_core::ChainFault, positions: &[usize]) -> VerifyError {
    use ledger_core::ChainFault;
    let line = match &fault {
        ChainFault::Header { position, .. } => usize::try_from(*position)
            .ok()
            .and_then(|p| positions.get(p))
            .copied()
            .unwrap_or(0),
        ChainFault::Transaction { .. } | ChainFault::Replay(_) => {
            positions.last().copied().unwrap_or(0)
        }
    };
    VerifyError::Chain { line, fault }
}
