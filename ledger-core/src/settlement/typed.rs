//! The EIP-712 typed data of settlement: what an operator signs (a usage
//! record, its acceptance, a dispute) and what the gateway signs (a
//! statement). Any EIP-712 wallet or library can produce and check these
//! signatures (`eth_signTypedData_v4`).
//!
//! Domain: `EIP712Domain(string name,string version,uint256 chainId)` with
//! name [`DOMAIN_NAME`] (`"Lockgate Settlement"`, so no settlement signature
//! is ever a valid ledger transaction signature or the reverse), version
//! `"1"`, and the chain id of the gateway's primary ledger.
//!
//! Types (EIP-712 `encodeType`; a referenced struct type is appended):
//!
//! ```text
//! UsageRecord(string sender,string recipient,uint64 sequence,uint64 periodStartMs,uint64 periodEndMs,string currency,uint32 agreementVersion,ServiceLine[] lines,uint256 chargesTotal,uint256 discount,uint256 total)ServiceLine(string service,uint64 quantity,uint256 ratePrice,uint64 ratePer,uint256 charge)
//! RecordAcceptance(bytes32 recordHash,string recipient)
//! RecordDispute(bytes32 recordHash,string recipient,string reason,uint256 disputedAmount,bytes32 evidenceHash)
//! RecordNote(bytes32 recordHash,string kind,uint256 amount,string reason)
//! Statement(bytes32 closeId,string operator,string currency,uint64 periodStartMs,uint64 periodEndMs,StatementLine[] lines,uint256 receivable,uint256 payable,StatementPayment[] payments,FxRate[] fxRates)FxRate(string from,string to,uint256 numerator,uint256 denominator)StatementLine(bytes32 recordHash,string counterparty,uint256 amount,bool receivable)StatementPayment(string payer,string payee,uint256 amount)
//! ```
//!
//! `recordHash` is `hashStruct(UsageRecord)`, the record's identity.

use std::sync::LazyLock;

use crate::eip712::{signing_digest, uint_word};
use crate::hash::{keccak256, keccak256_concat};
use crate::types::ChainId;

use super::record::{ServiceLine, UsageRecord};
use super::statement::{FxRate, Statement, StatementLine};

/// The settlement domain's `name`.
pub const DOMAIN_NAME: &str = "Lockgate Settlement";
/// The settlement domain's `version`.
pub const DOMAIN_VERSION: &str = "1";

/// `encodeType(ServiceLine)`.
pub const SERVICE_LINE_TYPE: &str =
    "ServiceLine(string service,uint64 quantity,uint256 ratePrice,uint64 ratePer,uint256 charge)";
/// `encodeType(UsageRecord)`.
pub const USAGE_RECORD_TYPE: &str = "UsageRecord(string sender,string recipient,uint64 sequence,uint64 periodStartMs,uint64 periodEndMs,string currency,uint32 agreementVersion,ServiceLine[] lines,uint256 chargesTotal,uint256 discount,uint256 total)ServiceLine(string service,uint64 quantity,uint256 ratePrice,uint64 ratePer,uint256 charge)";
/// `encodeType(RecordAcceptance)`.
pub const ACCEPTANCE_TYPE: &str = "RecordAcceptance(bytes32 recordHash,string recipient)";
/// `encodeType(RecordDispute)`.
pub const DISPUTE_TYPE: &str = "RecordDispute(bytes32 recordHash,string recipient,string reason,uint256 disputedAmount,bytes32 evidenceHash)";

/// `encodeType(RecordNote)`: a credit or debit note resolving a dispute,
/// signed by the sender and then by the recipient (the same message).
pub const NOTE_TYPE: &str =
    "RecordNote(bytes32 recordHash,string kind,uint256 amount,string reason)";

/// `encodeType(Statement)`.
pub const STATEMENT_TYPE: &str = "Statement(bytes32 closeId,string operator,string currency,uint64 periodStartMs,uint64 periodEndMs,StatementLine[] lines,uint256 receivable,uint256 payable,StatementPayment[] payments,FxRate[] fxRates)FxRate(string from,string to,uint256 numerator,uint256 denominator)StatementLine(bytes32 recordHash,string counterparty,uint256 amount,bool receivable)StatementPayment(string payer,string payee,uint256 amount)";
/// `encodeType(FxRate)`.
pub const FX_RATE_TYPE: &str =
    "FxRate(string from,string to,uint256 numerator,uint256 denominator)";
/// `encodeType(StatementLine)`.
pub const STATEMENT_LINE_TYPE: &str =
    "StatementLine(bytes32 recordHash,string counterparty,uint256 amount,bool receivable)";
/// `encodeType(StatementPayment)`.
pub const STATEMENT_PAYMENT_TYPE: &str =
    "StatementPayment(string payer,string payee,uint256 amount)";

static TYPE_HASHES: LazyLock<[[u8; 32]; 8]> = LazyLock::new(|| {
    [
        keccak256(SERVICE_LINE_TYPE.as_bytes()),
        keccak256(USAGE_RECORD_TYPE.as_bytes()),
        keccak256(ACCEPTANCE_TYPE.as_bytes()),
        keccak256(DISPUTE_TYPE.as_bytes()),
        keccak256(STATEMENT_TYPE.as_bytes()),
        keccak256(FX_RATE_TYPE.as_bytes()),
        keccak256(STATEMENT_LINE_TYPE.as_bytes()),
        keccak256(STATEMENT_PAYMENT_TYPE.as_bytes()),
    ]
});

/// The settlement domain separator for the gateway whose primary ledger
/// has `chain_id`.
pub fn domain_separator(chain_id: ChainId) -> [u8; 32] {
    keccak256_concat(&[
        &keccak256(crate::eip712::DOMAIN_TYPE.as_bytes()),
        &keccak256(DOMAIN_NAME.as_bytes()),
        &keccak256(DOMAIN_VERSION.as_bytes()),
        &uint_word(u128::from(chain_id.get())),
    ])
}

fn line_hash(line: &ServiceLine) -> [u8; 32] {
    keccak256_concat(&[
        &TYPE_HASHES[0],
        &keccak256(line.service.name().as_bytes()),
        &uint_word(u128::from(line.quantity)),
        &uint_word(line.rate.price),
        &uint_word(u128::from(line.rate.per)),
        &uint_word(line.charge),
    ])
}

/// `hashStruct(UsageRecord)`: the record's identity (`recordHash`).
pub fn record_hash(record: &UsageRecord) -> [u8; 32] {
    let mut lines = Vec::with_capacity(32 * record.lines.len());
    for line in &record.lines {
        lines.extend_from_slice(&line_hash(line));
    }
    keccak256_concat(&[
        &TYPE_HASHES[1],
        &keccak256(record.sender.as_str().as_bytes()),
        &keccak256(record.recipient.as_str().as_bytes()),
        &uint_word(u128::from(record.sequence)),
        &uint_word(u128::from(record.period_start_ms)),
        &uint_word(u128::from(record.period_end_ms)),
        &keccak256(record.currency.as_str().as_bytes()),
        &uint_word(u128::from(record.agreement_version)),
        &keccak256(&lines),
        &uint_word(record.charges_total),
        &uint_word(record.discount),
        &uint_word(record.total),
    ])
}

/// The digest the sender signs for `record`.
pub fn record_digest(chain_id: ChainId, record: &UsageRecord) -> [u8; 32] {
    signing_digest(&domain_separator(chain_id), &record_hash(record))
}

/// The digest the recipient signs to accept the record `record_hash`.
pub fn acceptance_digest(chain_id: ChainId, record_hash: &[u8; 32], recipient: &str) -> [u8; 32] {
    let hash = keccak256_concat(&[
        &TYPE_HASHES[2],
        record_hash,
        &keccak256(recipient.as_bytes()),
    ]);
    signing_digest(&domain_separator(chain_id), &hash)
}

/// A dispute as the recipient signs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisputeTerms<'a> {
    /// The disputed record.
    pub record_hash: [u8; 32],
    /// The recipient's TADIG code.
    pub recipient: &'a str,
    /// Why, in words.
    pub reason: &'a str,
    /// How much of the total is disputed (minor units).
    pub disputed_amount: u128,
    /// SHA-256 of the evidence document (zero when none).
    pub evidence_hash: [u8; 32],
}

/// The digest the recipient signs to dispute a record.
pub fn dispute_digest(chain_id: ChainId, dispute: &DisputeTerms<'_>) -> [u8; 32] {
    let hash = keccak256_concat(&[
        &TYPE_HASHES[3],
        &dispute.record_hash,
        &keccak256(dispute.recipient.as_bytes()),
        &keccak256(dispute.reason.as_bytes()),
        &uint_word(dispute.disputed_amount),
        &dispute.evidence_hash,
    ]);
    signing_digest(&domain_separator(chain_id), &hash)
}

fn fx_rate_hash(rate: &FxRate) -> [u8; 32] {
    keccak256_concat(&[
        &TYPE_HASHES[5],
        &keccak256(rate.from.as_str().as_bytes()),
        &keccak256(rate.to.as_str().as_bytes()),
        &uint_word(rate.numerator),
        &uint_word(rate.denominator),
    ])
}

fn statement_line_hash(line: &StatementLine) -> [u8; 32] {
    keccak256_concat(&[
        &TYPE_HASHES[6],
        &line.record_hash,
        &keccak256(line.counterparty.as_str().as_bytes()),
        &uint_word(line.amount),
        &uint_word(u128::from(line.receivable)),
    ])
}

fn array_hash(items: impl Iterator<Item = [u8; 32]>) -> [u8; 32] {
    let mut words = Vec::new();
    for item in items {
        words.extend_from_slice(&item);
    }
    keccak256(&words)
}

/// `hashStruct(Statement)` of `statement` in the close `close_id`.
pub fn statement_hash(close_id: &[u8; 32], statement: &Statement) -> [u8; 32] {
    let payments = array_hash(statement.payments.iter().map(|p| {
        keccak256_concat(&[
            &TYPE_HASHES[7],
            &keccak256(p.payer.as_str().as_bytes()),
            &keccak256(p.payee.as_str().as_bytes()),
            &uint_word(p.amount),
        ])
    }));
    keccak256_concat(&[
        &TYPE_HASHES[4],
        close_id,
        &keccak256(statement.operator.as_str().as_bytes()),
        &keccak256(statement.currency.as_str().as_bytes()),
        &uint_word(u128::from(statement.period_start_ms)),
        &uint_word(u128::from(statement.period_end_ms)),
        &array_hash(statement.lines.iter().map(statement_line_hash)),
        &uint_word(statement.receivable),
        &uint_word(statement.payable),
        &payments,
        &array_hash(statement.fx_rates.iter().map(fx_rate_hash)),
    ])
}

/// The digest the gateway signs for `statement`.
pub fn statement_digest(chain_id: ChainId, close_id: &[u8; 32], statement: &Statement) -> [u8; 32] {
    signing_digest(
        &domain_separator(chain_id),
        &statement_hash(close_id, statement),
    )
}

/// The digest both parties sign for a credit or debit note: `kind` is
/// `credit` (the total is lowered by `amount`) or `debit` (raised).
pub fn note_digest(
    chain_id: ChainId,
    record_hash: &[u8; 32],
    kind: &str,
    amount: u128,
    reason: &str,
) -> [u8; 32] {
    let hash = keccak256_concat(&[
        &keccak256(NOTE_TYPE.as_bytes()),
        record_hash,
        &keccak256(kind.as_bytes()),
        &uint_word(amount),
        &keccak256(reason.as_bytes()),
    ]);
    signing_digest(&domain_separator(chain_id), &hash)
}
