//! Response bodies of the ledger API (JSON), built from domain values.
//! Integers that can pass 2^53 (amounts, nonces, timelocks, chain ids) are
//! decimal strings; heights, positions and counts are JSON integers.

use ledger_core::block::SignedBlockHeader;
use ledger_core::{AssetState, Htlc, HtlcStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::dto::SignedTransactionDto;

/// RFC 3339 UTC text of a time in ms since the Unix epoch
/// (`2026-11-25T01:02:03.456Z`).
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

/// A signed block header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BlockHeaderView {
    /// The ledger's chain id (the EIP-712 domain `chainId`).
    #[schema(example = "4201")]
    pub chain_id: String,
    /// Height, from 0.
    #[schema(minimum = 0, maximum = 9007199254740991_u64)]
    pub height: u64,
    /// The block hash: the header's EIP-712 digest.
    pub hash: String,
    /// The previous block's hash (zero for block 0).
    pub previous_hash: String,
    /// Ledger time of the block, ms since the Unix epoch.
    #[schema(minimum = 0, maximum = 9007199254740991_u64)]
    pub timestamp_ms: u64,
    /// The same time, RFC 3339 UTC.
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// RFC 6962 Merkle root of the transaction hashes.
    pub tx_root: String,
    /// Number of transactions.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_u64)]
    pub tx_count: u32,
    /// Address of the block key.
    pub producer: String,
    /// The producer's signature of the block hash, r || s || v.
    pub signature: String,
}

impl From<&SignedBlockHeader> for BlockHeaderView {
    fn from(signed: &SignedBlockHeader) -> Self {
        let header = &signed.header;
        Self {
            chain_id: header.chain_id.to_string(),
            height: header.height,
            hash: header.hash().to_string(),
            previous_hash: header.previous_hash.to_string(),
            timestamp_ms: header.timestamp_ms,
            timestamp: rfc3339(header.timestamp_ms),
            tx_root: header.tx_root.to_string(),
            tx_count: header.tx_count,
            producer: header.producer.to_string(),
            signature: signed.signature.to_string(),
        }
    }
}

/// What became of a submitted transaction that applied.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptView {
    /// The transaction hash (its EIP-712 digest).
    pub hash: String,
    /// Always `committed`: durable and in a block.
    pub status: String,
    /// The block holding it.
    #[schema(minimum = 0, maximum = 9007199254740991_u64)]
    pub block_height: u64,
    /// The block's hash.
    pub block_hash: String,
    /// Position in the block.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_u64)]
    pub position: u32,
    /// For an HtlcLock: the new lock's id (= the transaction hash).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_id: Option<String>,
}

/// An inclusion proof: the signed header, the leaf index and the RFC 6962
/// audit path (leaf to root). Check it with `ledger-core`'s
/// `InclusionProof::verify` or by docs/ledger-format.md section 5.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProofView {
    /// The block's signed header.
    pub block_header: BlockHeaderView,
    /// Position of the transaction in the block.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_u64)]
    pub index: u32,
    /// Sibling hashes from the leaf up, 0x hex.
    pub path: Vec<String>,
}

/// A committed transaction with its receipt, block and inclusion proof.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionView {
    /// The transaction hash.
    pub hash: String,
    /// The signed transaction: its content as submitted, with addresses in
    /// EIP-55 form and `v` as 27 or 28.
    pub transaction: SignedTransactionDto,
    /// The receipt.
    pub receipt: ReceiptView,
    /// Its inclusion proof.
    pub proof: ProofView,
}

/// One balance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalanceView {
    /// Asset code.
    pub asset: String,
    /// Minor units, decimal string.
    pub amount: String,
}

/// An account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    /// The address, EIP-55.
    pub address: String,
    /// The nonce its next transaction must carry, decimal string.
    pub next_nonce: String,
    /// Non-zero balances, by asset code.
    pub balances: Vec<BalanceView>,
}

/// An asset.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssetView {
    /// Code.
    pub code: String,
    /// Decimal places of the minor unit.
    #[schema(minimum = 0, maximum = 18)]
    pub scale: u8,
    /// The issuer's address.
    pub issuer: String,
    /// Minor units in existence, decimal string.
    pub supply: String,
}

impl From<&AssetState> for AssetView {
    fn from(state: &AssetState) -> Self {
        Self {
            code: state.asset.code.to_string(),
            scale: state.asset.scale.get(),
            issuer: state.asset.issuer.to_string(),
            supply: state.supply.to_string(),
        }
    }
}

/// A hash-time-locked contract.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HtlcView {
    /// Id: the hash of the HtlcLock transaction.
    pub lock_id: String,
    /// Who locked; paid back on refund.
    pub sender: String,
    /// Paid on claim.
    pub recipient: String,
    /// Asset code.
    pub asset: String,
    /// Minor units locked, decimal string.
    pub amount: String,
    /// SHA-256 of the preimage.
    pub hashlock: String,
    /// Ledger time (ms) from which the lock is expired, decimal string.
    pub expires_at_ms: String,
    /// The same time, RFC 3339 UTC while the year has four digits (a
    /// timelock after 9999 is written with more, which RFC 3339 does not
    /// allow: read `expiresAtMs` instead).
    pub expires_at: String,
    /// `locked`, `claimed` or `refunded`.
    pub status: String,
    /// The preimage, once claimed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preimage: Option<String>,
}

impl From<&Htlc> for HtlcView {
    fn from(htlc: &Htlc) -> Self {
        let (status, preimage) = match htlc.status {
            HtlcStatus::Locked => ("locked", None),
            HtlcStatus::Claimed { preimage } => {
                ("claimed", Some(format!("0x{}", hex::encode(preimage))))
            }
            HtlcStatus::Refunded => ("refunded", None),
        };
        Self {
            lock_id: htlc.id.to_string(),
            sender: htlc.sender.to_string(),
            recipient: htlc.recipient.to_string(),
            asset: htlc.asset.to_string(),
            amount: htlc.amount.to_string(),
            hashlock: htlc.hashlock.to_string(),
            expires_at_ms: htlc.expires_at_ms.to_string(),
            expires_at: rfc3339(htlc.expires_at_ms),
            status: status.to_string(),
            preimage,
        }
    }
}

/// A page of blocks, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockPage {
    /// The blocks.
    pub items: Vec<BlockHeaderView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A page of assets, by code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssetPage {
    /// The assets.
    pub items: Vec<AssetView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A block with the hashes of its transactions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockView {
    /// The signed header.
    pub header: BlockHeaderView,
    /// Transaction hashes in block order.
    pub transactions: Vec<String>,
}

/// Body of a batch submission.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BatchRequest {
    /// The signed transactions, applied in this order (at most
    /// `limits.batch_request_txs_max`, 1024 unless configured).
    #[schema(min_items = 1, max_items = 1024)]
    pub transactions: Vec<SignedTransactionDto>,
}

/// What became of one transaction of a batch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemView {
    /// Position in the request.
    #[schema(minimum = 0, maximum = 65536)]
    pub index: u32,
    /// The transaction hash, when the transaction could be parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// `committed` or `rejected`.
    pub status: String,
    /// The receipt, when committed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ReceiptView>,
    /// The problem, when rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<crate::problem::Problem>,
}

/// Answer to a batch submission.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchView {
    /// One item per submitted transaction, in request order.
    pub results: Vec<BatchItemView>,
}

/// A hosted built-in ledger.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerView {
    /// Its chain id.
    pub chain_id: String,
    /// True for the ledger `/v1/ledger` serves when no `chainId` is given.
    pub primary: bool,
    /// The address of its block key.
    pub block_key: String,
    /// Blocks so far.
    #[schema(minimum = 0, maximum = 9007199254740991_u64)]
    pub block_count: u64,
    /// True when this process produces its blocks.
    pub producing_here: bool,
}

/// The hosted ledgers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerList {
    /// The ledgers, the primary first.
    pub items: Vec<LedgerView>,
}

/// Health.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthView {
    /// `ok`; `starting` from `/healthz` while the gateway starts (it
    /// connects to and migrates the database; `/readyz` answers 503 then).
    pub status: String,
    /// True when this process produces blocks.
    pub block_producer: bool,
    /// Each external ledger adapter's health (readiness only; empty for
    /// liveness and when no adapter is configured).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub adapters: Vec<AdapterHealthView>,
}

/// One external ledger adapter's health.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdapterHealthView {
    /// The adapter's kind (`evm`).
    pub kind: String,
    /// The ledger's chain id (decimal string).
    pub chain_id: String,
    /// `ok`, or why not.
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
        assert_eq!(rfc3339(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }
}
