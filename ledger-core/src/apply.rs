//! The state transition: a batch of verified transactions applied to a
//! [`Snapshot`] at a given block time, giving one [`Outcome`] per transaction
//! and the [`StateChanges`].
//!
//! Each transaction is checked completely before anything is written, so a
//! rejected transaction leaves the snapshot exactly as it was (the property
//! tests compare snapshots for equality). Transactions of a batch apply in
//! order: a later one sees what an earlier one did.
//!
//! The core never reads a clock: the block timestamp is an input, so the same
//! batch on the same snapshot always gives the same result.

use std::collections::BTreeSet;

use crate::signature::SignatureError;
use crate::state::{ApplyError, AssetState, Htlc, HtlcStatus, Snapshot, StateChanges};
use crate::tx::{TxBody, VerifiedTransaction};
use crate::types::{Address, Amount, Asset, AssetCode, ChainId, Hashlock, LockId};

/// The ledger and the time a batch is applied at.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BlockContext {
    /// The ledger's chain id; transactions for another chain are rejected.
    pub chain_id: ChainId,
    /// The block's timestamp, ms since the Unix epoch: the "now" of every
    /// HTLC timelock check in the batch.
    pub timestamp_ms: u64,
}

/// Why a transaction was not applied. The variants are in order of
/// precedence: when a transaction has several faults, the first variant in
/// this list that applies is the one reported. Each variant names only the
/// transaction kinds it can apply to.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Rejection {
    /// 1. The signature is malformed or was not made by `from` (all kinds).
    #[error("bad signature: {0}")]
    BadSignature(SignatureError),
    /// 2. Validly signed, but for another ledger (all kinds).
    #[error("transaction is for chain {actual}, this ledger is chain {expected}")]
    WrongChain {
        /// This ledger's chain id.
        expected: ChainId,
        /// The transaction's chain id.
        actual: ChainId,
    },
    /// 3a. The nonce was already used: a replay (all kinds).
    #[error("nonce {actual} already used; the next nonce is {expected}")]
    NonceReplay {
        /// The sender's next nonce.
        expected: u64,
        /// The transaction's nonce.
        actual: u64,
    },
    /// 3b. The nonce skips ahead of the sender's next nonce (all kinds).
    #[error("nonce {actual} is ahead; the next nonce is {expected}")]
    NonceGap {
        /// The sender's next nonce.
        expected: u64,
        /// The transaction's nonce.
        actual: u64,
    },
    /// 4a. The asset is not registered (Issue, Burn, Transfer, HtlcLock).
    #[error("unknown asset {asset}")]
    UnknownAsset {
        /// The asset named.
        asset: AssetCode,
    },
    /// 4b. The asset code is taken (RegisterAsset).
    #[error("asset {asset} already exists")]
    AssetExists {
        /// The asset named.
        asset: AssetCode,
    },
    /// 5. Only the asset's issuer may issue or burn it (Issue, Burn).
    #[error("only {issuer}, the issuer of {asset}, may issue or burn it")]
    NotIssuer {
        /// The asset.
        asset: AssetCode,
        /// Its issuer.
        issuer: Address,
    },
    /// 6. The sender holds less than the amount (Burn, Transfer, HtlcLock).
    #[error("insufficient balance: {available} {asset} available, {required} required")]
    InsufficientBalance {
        /// The asset.
        asset: AssetCode,
        /// The sender's balance.
        available: Amount,
        /// The amount asked for.
        required: Amount,
    },
    /// 7. The amount is zero (Issue, Burn, Transfer, HtlcLock).
    #[error("amount must be greater than zero")]
    ZeroAmount,
    /// 8. A supply or balance would exceed 2^128-1 (Issue; in theory any
    ///    credit, which the supply invariant rules out); also reported, after
    ///    every other check has passed, when the sender's nonce 2^64-1 was
    ///    used and no next nonce exists.
    #[error("amount would overflow a supply, balance or nonce")]
    Overflow,
    /// 9. The lock's expiry is not after the block time (HtlcLock).
    #[error("timelock {expires_at_ms} is not after the block time {block_timestamp_ms}")]
    TimelockNotInFuture {
        /// The requested expiry.
        expires_at_ms: u64,
        /// The block time.
        block_timestamp_ms: u64,
    },
    /// 10. No HTLC has this id (HtlcClaim, HtlcRefund).
    #[error("no HTLC with id {lock_id}")]
    HtlcNotFound {
        /// The id named.
        lock_id: LockId,
    },
    /// 11. The preimage is not exactly 32 bytes (HtlcClaim).
    #[error("preimage is {length} bytes; it must be exactly 32")]
    PreimageLength {
        /// Its length.
        length: usize,
    },
    /// 12. SHA-256 of the preimage is not the hashlock (HtlcClaim).
    #[error("preimage does not match the hashlock {hashlock}")]
    PreimageMismatch {
        /// The lock's hashlock.
        hashlock: Hashlock,
    },
    /// 13. The lock expired; it can only be refunded (HtlcClaim).
    #[error("lock expired at {expires_at_ms}; block time is {block_timestamp_ms}")]
    Expired {
        /// The lock's expiry.
        expires_at_ms: u64,
        /// The block time.
        block_timestamp_ms: u64,
    },
    /// 14. The lock has not expired; it cannot be refunded yet (HtlcRefund).
    #[error("lock expires at {expires_at_ms}; block time is only {block_timestamp_ms}")]
    NotYetExpired {
        /// The lock's expiry.
        expires_at_ms: u64,
        /// The block time.
        block_timestamp_ms: u64,
    },
    /// 15. The lock was already claimed or refunded (HtlcClaim, HtlcRefund).
    #[error("lock {lock_id} is already settled ({settled:?})")]
    AlreadySettled {
        /// The lock.
        lock_id: LockId,
        /// How it settled.
        settled: Settled,
    },
}

/// How a settled HTLC settled, as reported in [`Rejection::AlreadySettled`]
/// (the preimage itself is in the lock's [`HtlcStatus`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Settled {
    /// Paid to the recipient.
    Claimed,
    /// Returned to the sender.
    Refunded,
}

/// What became of one transaction of a batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// Applied: its effects are in the snapshot and in [`StateChanges`].
    Applied,
    /// Rejected: it changed nothing, not even the nonce.
    Rejected(Rejection),
}

impl Outcome {
    /// True when applied.
    pub fn is_applied(&self) -> bool {
        matches!(self, Outcome::Applied)
    }
}

/// The result of applying a batch.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct BatchResult {
    /// One outcome per input transaction, in input order.
    pub outcomes: Vec<Outcome>,
    /// The state after the batch, for every key the batch wrote.
    pub changes: StateChanges,
}

/// The writes of one accepted transaction, collected before any is made.
enum Write {
    Nonce(Address, u64),
    Balance(Address, AssetCode, Amount),
    Asset(AssetState),
    Lock(Htlc),
}

/// Applies `txs` in order to `snapshot` at `context`'s block time.
///
/// On `Err` the caller broke the contract (a partial snapshot without its
/// [`Snapshot::missing`] state, or corrupt state); the snapshot may then be
/// half-updated and must be discarded. Business rejections are never errors:
/// they are [`Outcome::Rejected`].
pub fn apply_batch(
    snapshot: &mut Snapshot,
    context: &BlockContext,
    txs: &[VerifiedTransaction],
) -> Result<BatchResult, ApplyError> {
    let mut outcomes = Vec::with_capacity(txs.len());
    let mut dirty_accounts = BTreeSet::new();
    let mut dirty_balances = BTreeSet::new();
    let mut dirty_assets = BTreeSet::new();
    let mut dirty_locks = BTreeSet::new();
    let mut writes = Vec::with_capacity(4);
    for tx in txs {
        writes.clear();
        match check(snapshot, context, tx, &mut writes)? {
            Ok(()) => {
                for write in writes.drain(..) {
                    match write {
                        Write::Nonce(address, nonce) => {
                            snapshot.set_nonce(address, nonce);
                            dirty_accounts.insert(address);
                        }
                        Write::Balance(address, asset, amount) => {
                            snapshot.set_balance(address, asset, amount);
                            dirty_balances.insert((address, asset));
                        }
                        Write::Asset(state) => {
                            dirty_assets.insert(state.asset.code);
                            snapshot.set_asset(state);
                        }
                        Write::Lock(htlc) => {
                            dirty_locks.insert(htlc.id);
                            snapshot.set_lock(htlc);
                        }
                    }
                }
                outcomes.push(Outcome::Applied);
            }
            Err(rejection) => outcomes.push(Outcome::Rejected(rejection)),
        }
    }
    let mut changes = StateChanges::default();
    for address in dirty_accounts {
        changes
            .accounts
            .push((address, snapshot.next_nonce(address)?));
    }
    for (address, asset) in dirty_balances {
        changes
            .balances
            .push((address, asset, snapshot.balance(address, asset)?));
    }
    for code in dirty_assets {
        if let Some(state) = snapshot.asset(code)? {
            changes.assets.push(*state);
        }
    }
    for id in dirty_locks {
        if let Some(htlc) = snapshot.lock(id)? {
            changes.locks.push(*htlc);
        }
    }
    Ok(BatchResult { outcomes, changes })
}

/// Checks one transaction against the snapshot, in the order of precedence of
/// [`Rejection`], and collects its writes. Writes nothing itself.
fn check(
    snapshot: &Snapshot,
    context: &BlockContext,
    verified: &VerifiedTransaction,
    writes: &mut Vec<Write>,
) -> Result<Result<(), Rejection>, ApplyError> {
    let tx = verified.transaction();
    if tx.chain_id != context.chain_id {
        return Ok(Err(Rejection::WrongChain {
            expected: context.chain_id,
            actual: tx.chain_id,
        }));
    }
    let expected = snapshot.next_nonce(tx.from)?;
    if tx.nonce < expected {
        return Ok(Err(Rejection::NonceReplay {
            expected,
            actual: tx.nonce,
        }));
    }
    if tx.nonce > expected {
        return Ok(Err(Rejection::NonceGap {
            expected,
            actual: tx.nonce,
        }));
    }
    let now_ms = context.timestamp_ms;
    let result = match &tx.body {
        TxBody::RegisterAsset { code, scale } => {
            if snapshot.asset(*code)?.is_some() {
                Err(Rejection::AssetExists { asset: *code })
            } else {
                writes.push(Write::Asset(AssetState {
                    asset: Asset {
                        code: *code,
                        scale: *scale,
                        issuer: tx.from,
                    },
                    supply: Amount::ZERO,
                }));
                Ok(())
            }
        }
        TxBody::Issue { asset, to, amount } => {
            issue(snapshot, tx.from, *asset, *to, *amount, writes)?
        }
        TxBody::Burn { asset, amount } => burn(snapshot, tx.from, *asset, *amount, writes)?,
        TxBody::Transfer { asset, to, amount } => {
            transfer(snapshot, tx.from, *asset, *to, *amount, writes)?
        }
        TxBody::HtlcLock {
            asset,
            recipient,
            amount,
            hashlock,
            expires_at_ms,
        } => {
            let htlc = Htlc {
                id: verified.hash().into(),
                sender: tx.from,
                recipient: *recipient,
                asset: *asset,
                amount: *amount,
                hashlock: *hashlock,
                expires_at_ms: *expires_at_ms,
                status: HtlcStatus::Locked,
            };
            lock(snapshot, htlc, now_ms, writes)?
        }
        TxBody::HtlcClaim { lock_id, preimage } => {
            claim(snapshot, *lock_id, preimage.as_bytes(), now_ms, writes)?
        }
        TxBody::HtlcRefund { lock_id } => refund(snapshot, *lock_id, now_ms, writes)?,
        TxBody::Anchor { .. } => Ok(()),
    };
    if result.is_ok() {
        // Checked last: only an account that used nonce 2^64-1 is exhausted,
        // and every other rule has had its say by then.
        let Some(next_nonce) = expected.checked_add(1) else {
            writes.clear();
            return Ok(Err(Rejection::Overflow));
        };
        writes.push(Write::Nonce(tx.from, next_nonce));
    }
    Ok(result)
}

/// The asset, or the rejection for an unknown one.
fn existing_asset(
    snapshot: &Snapshot,
    code: AssetCode,
) -> Result<Result<AssetState, Rejection>, ApplyError> {
    Ok(snapshot
        .asset(code)?
        .copied()
        .ok_or(Rejection::UnknownAsset { asset: code }))
}

fn issue(
    snapshot: &Snapshot,
    from: Address,
    code: AssetCode,
    to: Address,
    amount: Amount,
    writes: &mut Vec<Write>,
) -> Result<Result<(), Rejection>, ApplyError> {
    let state = match existing_asset(snapshot, code)? {
        Ok(state) => state,
        Err(rejection) => return Ok(Err(rejection)),
    };
    if state.asset.issuer != from {
        return Ok(Err(Rejection::NotIssuer {
            asset: code,
            issuer: state.asset.issuer,
        }));
    }
    if amount.is_zero() {
        return Ok(Err(Rejection::ZeroAmount));
    }
    let Some(supply) = state.supply.checked_add(amount) else {
        return Ok(Err(Rejection::Overflow));
    };
    // Cannot overflow while the supply invariant holds, since the balance is
    // part of the supply that was just checked; checked anyway.
    let Some(balance) = snapshot.balance(to, code)?.checked_add(amount) else {
        return Ok(Err(Rejection::Overflow));
    };
    writes.push(Write::Asset(AssetState { supply, ..state }));
    writes.push(Write::Balance(to, code, balance));
    Ok(Ok(()))
}

fn burn(
    snapshot: &Snapshot,
    from: Address,
    code: AssetCode,
    amount: Amount,
    writes: &mut Vec<Write>,
) -> Result<Result<(), Rejection>, ApplyError> {
    let state = match existing_asset(snapshot, code)? {
        Ok(state) => state,
        Err(rejection) => return Ok(Err(rejection)),
    };
    if state.asset.issuer != from {
        return Ok(Err(Rejection::NotIssuer {
            asset: code,
            issuer: state.asset.issuer,
        }));
    }
    let available = snapshot.balance(from, code)?;
    let Some(balance) = available.checked_sub(amount) else {
        return Ok(Err(Rejection::InsufficientBalance {
            asset: code,
            available,
            required: amount,
        }));
    };
    if amount.is_zero() {
        return Ok(Err(Rejection::ZeroAmount));
    }
    let supply = state.supply.checked_sub(amount).ok_or_else(|| {
        ApplyError::Corrupt(format!(
            "balance {available} of {code} exceeds its supply {}",
            state.supply
        ))
    })?;
    writes.push(Write::Asset(AssetState { supply, ..state }));
    writes.push(Write::Balance(from, code, balance));
    Ok(Ok(()))
}

fn transfer(
    snapshot: &Snapshot,
    from: Address,
    code: AssetCode,
    to: Address,
    amount: Amount,
    writes: &mut Vec<Write>,
) -> Result<Result<(), Rejection>, ApplyError> {
    if let Err(rejection) = existing_asset(snapshot, code)? {
        return Ok(Err(rejection));
    }
    let available = snapshot.balance(from, code)?;
    let Some(sender_balance) = available.checked_sub(amount) else {
        return Ok(Err(Rejection::InsufficientBalance {
            asset: code,
            available,
            required: amount,
        }));
    };
    if amount.is_zero() {
        return Ok(Err(Rejection::ZeroAmount));
    }
    if from == to {
        // A transfer to oneself moves nothing but still uses the nonce.
        return Ok(Ok(()));
    }
    let Some(recipient_balance) = snapshot.balance(to, code)?.checked_add(amount) else {
        return Ok(Err(Rejection::Overflow));
    };
    writes.push(Write::Balance(from, code, sender_balance));
    writes.push(Write::Balance(to, code, recipient_balance));
    Ok(Ok(()))
}

fn lock(
    snapshot: &Snapshot,
    htlc: Htlc,
    now_ms: u64,
    writes: &mut Vec<Write>,
) -> Result<Result<(), Rejection>, ApplyError> {
    if let Err(rejection) = existing_asset(snapshot, htlc.asset)? {
        return Ok(Err(rejection));
    }
    let available = snapshot.balance(htlc.sender, htlc.asset)?;
    let Some(balance) = available.checked_sub(htlc.amount) else {
        return Ok(Err(Rejection::InsufficientBalance {
            asset: htlc.asset,
            available,
            required: htlc.amount,
        }));
    };
    if htlc.amount.is_zero() {
        return Ok(Err(Rejection::ZeroAmount));
    }
    if htlc.expires_at_ms <= now_ms {
        return Ok(Err(Rejection::TimelockNotInFuture {
            expires_at_ms: htlc.expires_at_ms,
            block_timestamp_ms: now_ms,
        }));
    }
    writes.push(Write::Balance(htlc.sender, htlc.asset, balance));
    writes.push(Write::Lock(htlc));
    Ok(Ok(()))
}

fn claim(
    snapshot: &Snapshot,
    lock_id: LockId,
    preimage: &[u8],
    now_ms: u64,
    writes: &mut Vec<Write>,
) -> Result<Result<(), Rejection>, ApplyError> {
    let Some(htlc) = snapshot.lock(lock_id)?.copied() else {
        return Ok(Err(Rejection::HtlcNotFound { lock_id }));
    };
    let Ok(preimage) = <[u8; 32]>::try_from(preimage) else {
        return Ok(Err(Rejection::PreimageLength {
            length: preimage.len(),
        }));
    };
    if Hashlock::of_preimage(&preimage) != htlc.hashlock {
        return Ok(Err(Rejection::PreimageMismatch {
            hashlock: htlc.hashlock,
        }));
    }
    if now_ms >= htlc.expires_at_ms {
        return Ok(Err(Rejection::Expired {
            expires_at_ms: htlc.expires_at_ms,
            block_timestamp_ms: now_ms,
        }));
    }
    if let Some(settled) = settled(&htlc) {
        return Ok(Err(Rejection::AlreadySettled { lock_id, settled }));
    }
    let Some(balance) = snapshot
        .balance(htlc.recipient, htlc.asset)?
        .checked_add(htlc.amount)
    else {
        return Ok(Err(Rejection::Overflow));
    };
    writes.push(Write::Balance(htlc.recipient, htlc.asset, balance));
    writes.push(Write::Lock(Htlc {
        status: HtlcStatus::Claimed { preimage },
        ..htlc
    }));
    Ok(Ok(()))
}

fn settled(htlc: &Htlc) -> Option<Settled> {
    match htlc.status {
        HtlcStatus::Locked => None,
        HtlcStatus::Claimed { .. } => Some(Settled::Claimed),
        HtlcStatus::Refunded => Some(Settled::Refunded),
    }
}

fn refund(
    snapshot: &Snapshot,
    lock_id: LockId,
    now_ms: u64,
    writes: &mut Vec<Write>,
) -> Result<Result<(), Rejection>, ApplyError> {
    let Some(htlc) = snapshot.lock(lock_id)?.copied() else {
        return Ok(Err(Rejection::HtlcNotFound { lock_id }));
    };
    if now_ms < htlc.expires_at_ms {
        return Ok(Err(Rejection::NotYetExpired {
            expires_at_ms: htlc.expires_at_ms,
            block_timestamp_ms: now_ms,
        }));
    }
    if let Some(settled) = settled(&htlc) {
        return Ok(Err(Rejection::AlreadySettled { lock_id, settled }));
    }
    let Some(balance) = snapshot
        .balance(htlc.sender, htlc.asset)?
        .checked_add(htlc.amount)
    else {
        return Ok(Err(Rejection::Overflow));
    };
    writes.push(Write::Balance(htlc.sender, htlc.asset, balance));
    writes.push(Write::Lock(Htlc {
        status: HtlcStatus::Refunded,
        ..htlc
    }));
    Ok(Ok(()))
}
