//! `LedgerAdapter`: what the transfer engine sees of any ledger.
//!
//! An adapter describes its ledger (id, kind, finality), and for the
//! engine's own account on that ledger it locks, claims and refunds; it
//! reports the state of any lock and finds the lock a counterparty made on
//! agreed terms.
//!
//! **Idempotency.** Every action carries an [`OperationKey`] (the transfer
//! and the action's name). An adapter records what it is about to submit
//! under that key *before* it submits (write-ahead), and a repeated call with
//! the same key, including one after a crash and restart, resubmits or
//! recognises that same submission instead of making a second one. So the
//! engine may call an action again whenever it does not know whether the
//! previous call took effect, and [`LedgerAdapter::committed_lock`] tells it
//! which lock an earlier `lock` call made.
//!
//! **Outcomes.** A call returns `Ok(Acted::Done)` once the action is final
//! on the ledger (by the adapter's [`FinalityModel`]), `Ok(Acted::Refused)`
//! when the ledger refused it for good (the reason in words), and `Err` when
//! it could not tell (retry later).
//!
//! **Following and proving.** [`LedgerAdapter::events_since`] reads the
//! lock events (made, claimed, refunded) from a checkpoint (a block height),
//! for a watcher that resumes after a restart; [`LedgerAdapter::prove_lock`]
//! gives the evidence a third party checks itself that a lock was made (for
//! a built-in ledger: the locking transaction with its inclusion proof under
//! the signed block header, the SATP `ledger-inclusion-1` claim).
//!
//! Implementations: `local` (the gateway's built-in ledgers, in the gateway
//! crate because it drives the gateway's store: `lockgate::transfers::local`).
//! `peer` (another Lockgate gateway's ledger, reached through its ledger
//! API: `lockgate::satp::peer`). `evm` comes next; event following from a
//! checkpoint and third-party lock proofs are added to the trait with it,
//! where their shapes are known (the peer's lock proofs travel in SATP
//! messages today: `lockgate::satp::evidence`).

use std::future::Future;

use ledger_core::{Address, Amount, AssetCode, ChainId, Hashlock, LockId};

use crate::finality::FinalityModel;

/// What kind of ledger an adapter reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerKind {
    /// A built-in ledger of this gateway.
    Local,
    /// A ledger reached through another Lockgate gateway.
    Peer,
    /// An EVM chain through an HTLC contract.
    Evm,
}

/// The description of a ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerDescription {
    /// The ledger's id.
    pub chain_id: ChainId,
    /// Its kind.
    pub kind: LedgerKind,
    /// How long it takes to make a transaction final.
    pub finality: FinalityModel,
}

/// Names one action of one transfer: the key of its write-ahead record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationKey<'a> {
    /// The transfer's id.
    pub transfer_id: &'a str,
    /// The action: `target-lock`, `source-claim`, `target-refund`, ...
    pub action: &'a str,
}

/// The terms of a hash-time-lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockTerms {
    /// Who locks (and is refunded).
    pub sender: Address,
    /// Who is paid on a claim.
    pub recipient: Address,
    /// The asset locked.
    pub asset: AssetCode,
    /// Minor units locked.
    pub amount: Amount,
    /// SHA-256 of the preimage.
    pub hashlock: Hashlock,
    /// The ledger time (ms since the Unix epoch) from which it is refundable.
    pub expires_at_ms: u64,
}

/// Where a lock stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockState {
    /// Funds held.
    Locked,
    /// Paid to the recipient; the preimage is public.
    Claimed {
        /// The preimage that opened the lock.
        preimage: [u8; 32],
    },
    /// Returned to the sender.
    Refunded,
}

/// A lock on the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockInfo {
    /// Its id on the ledger.
    pub id: LockId,
    /// Its terms.
    pub terms: LockTerms,
    /// Its state.
    pub state: LockState,
}

/// Something that happened to a lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockEvent {
    /// A lock was made.
    Locked(LockInfo),
    /// A lock was claimed with `preimage`.
    Claimed {
        /// The lock.
        id: LockId,
        /// The preimage that opened it.
        preimage: [u8; 32],
    },
    /// A lock was refunded.
    Refunded {
        /// The lock.
        id: LockId,
    },
}

/// Lock events read from a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPage {
    /// `(block height, event)`, in ledger order.
    pub events: Vec<(u64, LockEvent)>,
    /// Where to read on from (the first block not read).
    pub next_checkpoint: u64,
}

/// What an action came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acted<T> {
    /// Final on the ledger.
    Done(T),
    /// Refused by the ledger for good.
    Refused(String),
}

impl<T> Acted<T> {
    /// Maps what a `Done` carries.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Acted<U> {
        match self {
            Acted::Done(value) => Acted::Done(f(value)),
            Acted::Refused(reason) => Acted::Refused(reason),
        }
    }
}

/// Why an adapter could not tell what happened; the call may be retried.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The ledger (or the adapter's own records) cannot be reached now.
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    /// This process may not act on the ledger now (another one does).
    #[error("not acting on this ledger: {0}")]
    NotHere(String),
    /// Stored or received data does not decode.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// The action is under way on the ledger but not final yet (an EVM
    /// transaction waiting for its confirmations); call again later.
    #[error("pending: {0}")]
    Pending(String),
}

/// What the transfer engine sees of a ledger (see the module docs).
///
/// Methods return `Send` futures so the engine can run on any tokio worker.
pub trait LedgerAdapter: Send + Sync {
    /// Id, kind and finality of the ledger.
    fn describe(&self) -> LedgerDescription;

    /// The account the adapter acts from (locks from, is paid to as a
    /// connector) on this ledger.
    fn account(&self) -> Address;

    /// Locks `terms` from the engine's own account; `Done` carries the lock id.
    fn lock(
        &self,
        op: OperationKey<'_>,
        terms: &LockTerms,
    ) -> impl Future<Output = Result<Acted<LockId>, AdapterError>> + Send;

    /// Claims `lock` with `preimage` (paying the lock's recipient).
    fn claim(
        &self,
        op: OperationKey<'_>,
        lock: LockId,
        preimage: [u8; 32],
    ) -> impl Future<Output = Result<Acted<()>, AdapterError>> + Send;

    /// Refunds the expired `lock` (to the lock's sender).
    fn refund(
        &self,
        op: OperationKey<'_>,
        lock: LockId,
    ) -> impl Future<Output = Result<Acted<()>, AdapterError>> + Send;

    /// The lock a `lock` call under `op` made final on the ledger, if any
    /// (the engine may have died before it heard the answer).
    fn committed_lock(
        &self,
        op: OperationKey<'_>,
    ) -> impl Future<Output = Result<Option<LockId>, AdapterError>> + Send;

    /// The lock `id`, if the ledger has it.
    fn lock_status(
        &self,
        id: LockId,
    ) -> impl Future<Output = Result<Option<LockInfo>, AdapterError>> + Send;

    /// The assets the ledger knows.
    fn assets(&self) -> impl Future<Output = Result<Vec<AssetCode>, AdapterError>> + Send;

    /// Lock events from block `checkpoint` on, reading at most `blocks_max`
    /// blocks (as far as the adapter can see: the peer adapter sees the
    /// transactions its token may read).
    fn events_since(
        &self,
        checkpoint: u64,
        blocks_max: u32,
    ) -> impl Future<Output = Result<EventPage, AdapterError>> + Send;

    /// Evidence that lock `id` was made, for a third party to check itself;
    /// `None` when the ledger has no such lock.
    fn prove_lock(
        &self,
        id: LockId,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, AdapterError>> + Send;

    /// The open lock that matches `terms` in sender, recipient, asset,
    /// amount and hashlock and expires no earlier than `terms.expires_at_ms`
    /// (the earliest-expiring one if several). Every term is matched, so a
    /// decoy under the same hashlock cannot hide the lock that fits.
    fn find_open_lock(
        &self,
        terms: &LockTerms,
    ) -> impl Future<Output = Result<Option<LockInfo>, AdapterError>> + Send;
}
