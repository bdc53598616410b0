//! The evidence two gateways show each other in lock-assert, commit-ready,
//! commit-final and ack-commit-final (the draft leaves its format to the
//! network). Two formats, named in the messages' `*Format` fields:
//!
//! - `urn:lockgate:claim-format:ledger-inclusion-1` (lock-assert,
//!   commit-ready): `{"transaction": SignedTransaction, "proof": {"blockHeader":
//!   BlockHeader, "index": n, "path": ["0x…"]}}`, the same shapes as
//!   `GET /v1/ledger/transactions/{hash}` answers. The receiver recomputes the
//!   transaction's hash and signer, checks the header's signature against the
//!   block key it pinned for that ledger and the RFC 6962 audit path to the
//!   header's root, then checks the transaction is the `HtlcLock` the
//!   transfer context calls for. The lock's id is the transaction's hash.
//! - `urn:lockgate:claim-format:htlc-settlement-1` (commit-final,
//!   ack-commit-final): `{"chainId": "…", "lockId": "0x…", "status":
//!   "claimed", "preimage": "0x…"}`; the receiver checks that SHA-256 of the
//!   preimage is the session's hashlock, which only a claim can have made
//!   public.

use adapters::ledger::LockTerms;
use ledger_core::block::InclusionProof;
use ledger_core::merkle::MerkleTree;
use ledger_core::{Address, ChainId, Hashlock, LockId, SignedTransaction, TxBody, TxHash};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::App;
use crate::dto::SignedTransactionDto;
use crate::store::{LedgerStore, StoreError};
use crate::views::{BlockHeaderView, ProofView};

/// The inclusion format.
pub const INCLUSION: &str = "urn:lockgate:claim-format:ledger-inclusion-1";
/// The settlement format.
pub const SETTLEMENT: &str = "urn:lockgate:claim-format:htlc-settlement-1";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Inclusion {
    transaction: SignedTransactionDto,
    proof: ProofView,
}

/// The inclusion evidence of committed transaction `hash` on hosted ledger
/// `chain` (`None` when it is not committed).
pub async fn inclusion(
    app: &App,
    chain: ChainId,
    hash: TxHash,
) -> Result<Option<Value>, StoreError> {
    let Some(stored) = app.store.transaction(chain, hash).await? else {
        return Ok(None);
    };
    let Some(header) = app.store.block(chain, stored.height).await? else {
        return Err(StoreError::Corrupt(format!(
            "block {} is missing",
            stored.height
        )));
    };
    let hashes = app.store.block_tx_hashes(chain, stored.height).await?;
    let path = MerkleTree::new(&hashes)
        .path(stored.position as usize)
        .ok_or_else(|| StoreError::Corrupt("transaction outside its block".into()))?;
    let evidence = Inclusion {
        transaction: SignedTransactionDto::from_domain(&stored.signed),
        proof: ProofView {
            block_header: BlockHeaderView::from(&header),
            index: stored.position,
            path: path
                .iter()
                .map(|h| format!("0x{}", hex::encode(h)))
                .collect(),
        },
    };
    Ok(Some(
        serde_json::to_value(evidence).map_err(crate::store::corrupt)?,
    ))
}

/// Why evidence is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvidenceError(pub String);

/// Checks inclusion evidence of any transaction on ledger `chain`, whose
/// block one of `producers` signed (a pinned block key, current or from
/// before a rotation); returns the transaction.
pub fn verify_inclusion(
    evidence: &Value,
    chain: ChainId,
    producers: &[Address],
) -> Result<SignedTransaction, EvidenceError> {
    let bad = |what: &str| EvidenceError(what.to_string());
    let inclusion: Inclusion = serde_json::from_value(evidence.clone())
        .map_err(|e| EvidenceError(format!("not ledger-inclusion evidence: {e}")))?;
    let signed: SignedTransaction = inclusion
        .transaction
        .to_domain()
        .map_err(|e| EvidenceError(format!("transaction: {e}")))?;
    let header = crate::export::parse_header(&inclusion.proof.block_header)
        .map_err(|e| EvidenceError(format!("block header: {e}")))?;
    let mut path = Vec::with_capacity(inclusion.proof.path.len());
    for node in &inclusion.proof.path {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(node.trim_start_matches("0x"), &mut bytes)
            .map_err(|_| bad("a path node is not 32 bytes of hex"))?;
        path.push(bytes);
    }
    let proof = InclusionProof {
        header,
        index: inclusion.proof.index,
        path,
    };
    proof
        .verify(&signed, producers)
        .map_err(|e| EvidenceError(format!("inclusion proof: {e}")))?;
    if signed.transaction.chain_id != chain {
        return Err(bad("the transaction is on another ledger"));
    }
    Ok(signed)
}

/// Checks inclusion evidence of an `HtlcLock` on ledger `chain`, signed by
/// one of `producers`, locking exactly `terms` (the expiry: no earlier than
/// `terms.expires_at_ms`, or exactly it when `exact_expiry`; the recipient
/// only when `check_recipient`). Returns the lock's id.
pub fn verify_lock(
    evidence: &Value,
    chain: ChainId,
    producers: &[Address],
    terms: &LockTerms,
    exact_expiry: bool,
    check_recipient: bool,
) -> Result<LockId, EvidenceError> {
    let bad = |what: &str| EvidenceError(what.to_string());
    let signed = verify_inclusion(evidence, chain, producers)?;
    let tx = &signed.transaction;
    if tx.from != terms.sender {
        return Err(bad("the lock is not from the agreed sender"));
    }
    let TxBody::HtlcLock {
        asset,
        recipient,
        amount,
        hashlock,
        expires_at_ms,
    } = &tx.body
    else {
        return Err(bad("the transaction is not an HtlcLock"));
    };
    if (check_recipient && *recipient != terms.recipient)
        || *asset != terms.asset
        || *amount != terms.amount
        || *hashlock != terms.hashlock
    {
        return Err(bad(
            "the lock's recipient, asset, amount or hashlock differ from the agreed terms",
        ));
    }
    let expiry_ok = if exact_expiry {
        *expires_at_ms == terms.expires_at_ms
    } else {
        *expires_at_ms >= terms.expires_at_ms
    };
    if !expiry_ok {
        return Err(bad("the lock's expiry is not the agreed one"));
    }
    Ok(LockId::from(tx.hash()))
}

/// Settlement evidence of a lock claimed with `preimage`.
pub fn settlement(chain: ChainId, lock: LockId, preimage: [u8; 32]) -> Value {
    json!({
        "chainId": chain.get().to_string(),
        "lockId": lock.to_string(),
        "status": "claimed",
        "preimage": format!("0x{}", hex::encode(preimage)),
    })
}

/// Checks settlement evidence of lock `lock` on `chain` under `hashlock`;
/// returns the preimage.
pub fn verify_settlement(
    evidence: &Value,
    chain: ChainId,
    lock: LockId,
    hashlock: Hashlock,
) -> Result<[u8; 32], EvidenceError> {
    let text = |name: &str| {
        evidence
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if text("chainId") != chain.get().to_string() || text("lockId") != lock.to_string() {
        return Err(EvidenceError("the settlement names another lock".into()));
    }
    if text("status") != "claimed" {
        return Err(EvidenceError("the lock is not claimed".into()));
    }
    let mut preimage = [0u8; 32];
    hex::decode_to_slice(text("preimage").trim_start_matches("0x"), &mut preimage)
        .map_err(|_| EvidenceError("the preimage is not 32 bytes of hex".into()))?;
    if ledger_core::hash::sha256(&preimage) != *hashlock.as_bytes() {
        return Err(EvidenceError(
            "the preimage does not open the hashlock".into(),
        ));
    }
    Ok(preimage)
}
