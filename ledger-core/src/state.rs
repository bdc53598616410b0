//! The ledger's state as the state transition sees it: account nonces,
//! balances, assets with their supply, and HTLCs; a [`Snapshot`] of the part
//! a batch touches; the [`ReadSet`] the gateway must prefetch; and the
//! [`StateChanges`] a batch produces.
//!
//! A snapshot is either *complete* (everything the ledger holds is in it, so a
//! missing entry means "zero" or "does not exist"; used in memory, by tests,
//! the simulation and the chain verifier) or *partial* (only what the gateway
//! prefetched; reading anything else is an [`ApplyError::NotPrefetched`],
//! which is a bug in the caller, never a business outcome).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::tx::{TxBody, VerifiedTransaction};
use crate::types::{Address, Amount, Asset, AssetCode, Hashlock, LockId};

/// An asset and how much of it exists (issued minus burned).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct AssetState {
    /// The asset.
    pub asset: Asset,
    /// Minor units in existence: in balances plus in open locks.
    pub supply: Amount,
}

/// Where an HTLC stands. `Locked` is the only state from which it moves, and
/// it moves once.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum HtlcStatus {
    /// Funds are held; claimable before expiry, refundable from expiry on.
    Locked,
    /// Paid to the recipient; the preimage is public.
    Claimed {
        /// The preimage that opened the lock.
        preimage: [u8; 32],
    },
    /// Returned to the sender after expiry.
    Refunded,
}

/// A hash-time-locked contract on the built-in ledger.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Htlc {
    /// The hash of the `HtlcLock` transaction that created it.
    pub id: LockId,
    /// Who locked the funds and gets them back on refund.
    pub sender: Address,
    /// Who gets the funds on claim.
    pub recipient: Address,
    /// The asset locked.
    pub asset: AssetCode,
    /// Minor units locked.
    pub amount: Amount,
    /// SHA-256 of the 32-byte preimage.
    pub hashlock: Hashlock,
    /// Ledger time (ms) from which claims fail and refunds succeed.
    pub expires_at_ms: u64,
    /// Locked, claimed or refunded.
    pub status: HtlcStatus,
}

/// One piece of ledger state, as named when it is missing from a snapshot.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub enum StateKey {
    /// An account's next nonce.
    Account(Address),
    /// An account's balance of an asset.
    Balance(Address, AssetCode),
    /// An asset's definition and supply.
    Asset(AssetCode),
    /// An HTLC.
    Lock(LockId),
}

/// A caller broke the contract of the state transition. Never a business
/// outcome: rejections of transactions are [`crate::Rejection`] values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// A partial snapshot lacks state the batch reads; the caller did not
    /// prefetch its [`ReadSet`].
    #[error("state not prefetched: {0:?}")]
    NotPrefetched(StateKey),
    /// The snapshot contradicts the ledger's invariants (for example a balance
    /// larger than its asset's supply), so the stored state is corrupt.
    #[error("snapshot breaks a ledger invariant: {0}")]
    Corrupt(String),
}

/// The state a batch is applied to. See the module docs for complete and
/// partial snapshots.
///
/// Nonces and balances, the entries every transfer reads, are hash maps: a
/// block producer keeps up to millions of them between batches, and in an
/// ordered map each look-up walked a tree of that size (at 1,000,000
/// accounts, most of the producer's time; docs/perf/README.md item 10).
/// The maps use std's randomly keyed hasher, so addresses cannot be ground
/// to collide; no output depends on their order (a batch's changes come
/// from ordered sets, and [`Self::nonces`] and [`Self::balances`] sort).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Snapshot {
    partial: bool,
    nonces: HashMap<Address, u64>,
    balances: HashMap<(Address, AssetCode), Amount>,
    assets: BTreeMap<AssetCode, Option<AssetState>>,
    locks: BTreeMap<LockId, Option<Htlc>>,
}

impl Snapshot {
    /// An empty complete snapshot: the state of a new ledger.
    pub fn complete() -> Self {
        Self::default()
    }

    /// An empty partial snapshot, to be filled with what the gateway loads.
    pub fn partial() -> Self {
        Self {
            partial: true,
            ..Self::default()
        }
    }

    /// True for a partial snapshot.
    pub fn is_partial(&self) -> bool {
        self.partial
    }

    /// How many entries (nonces, balances, assets, HTLCs) the snapshot
    /// holds: what a gateway that keeps one between batches bounds.
    pub fn entry_count(&self) -> usize {
        self.nonces.len() + self.balances.len() + self.assets.len() + self.locks.len()
    }

    /// Records a loaded account's next nonce (0 for an account never seen).
    pub fn insert_account(&mut self, address: Address, next_nonce: u64) {
        self.nonces.insert(address, next_nonce);
    }

    /// Records a loaded balance (zero for one never credited).
    pub fn insert_balance(&mut self, address: Address, asset: AssetCode, amount: Amount) {
        self.balances.insert((address, asset), amount);
    }

    /// Records a loaded asset, or that it does not exist.
    pub fn insert_asset(&mut self, code: AssetCode, state: Option<AssetState>) {
        self.assets.insert(code, state);
    }

    /// Records a loaded HTLC, or that it does not exist.
    pub fn insert_lock(&mut self, id: LockId, htlc: Option<Htlc>) {
        self.locks.insert(id, htlc);
    }

    /// An account's next nonce.
    pub fn next_nonce(&self, address: Address) -> Result<u64, ApplyError> {
        match self.nonces.get(&address) {
            Some(nonce) => Ok(*nonce),
            None if self.partial => Err(ApplyError::NotPrefetched(StateKey::Account(address))),
            None => Ok(0),
        }
    }

    /// An account's balance of an asset.
    pub fn balance(&self, address: Address, asset: AssetCode) -> Result<Amount, ApplyError> {
        match self.balances.get(&(address, asset)) {
            Some(amount) => Ok(*amount),
            None if self.partial => {
                Err(ApplyError::NotPrefetched(StateKey::Balance(address, asset)))
            }
            None => Ok(Amount::ZERO),
        }
    }

    /// An asset, if it exists.
    pub fn asset(&self, code: AssetCode) -> Result<Option<&AssetState>, ApplyError> {
        match self.assets.get(&code) {
            Some(state) => Ok(state.as_ref()),
            None if self.partial => Err(ApplyError::NotPrefetched(StateKey::Asset(code))),
            None => Ok(None),
        }
    }

    /// An HTLC, if it exists.
    pub fn lock(&self, id: LockId) -> Result<Option<&Htlc>, ApplyError> {
        match self.locks.get(&id) {
            Some(htlc) => Ok(htlc.as_ref()),
            None if self.partial => Err(ApplyError::NotPrefetched(StateKey::Lock(id))),
            None => Ok(None),
        }
    }

    pub(crate) fn set_nonce(&mut self, address: Address, next_nonce: u64) {
        self.nonces.insert(address, next_nonce);
    }

    pub(crate) fn set_balance(&mut self, address: Address, asset: AssetCode, amount: Amount) {
        self.balances.insert((address, asset), amount);
    }

    pub(crate) fn set_asset(&mut self, state: AssetState) {
        self.assets.insert(state.asset.code, Some(state));
    }

    pub(crate) fn set_lock(&mut self, htlc: Htlc) {
        self.locks.insert(htlc.id, Some(htlc));
    }

    /// Every account nonce held, by address.
    pub fn nonces(&self) -> impl Iterator<Item = (Address, u64)> + '_ {
        let mut nonces: Vec<(Address, u64)> = self
            .nonces
            .iter()
            .map(|(address, nonce)| (*address, *nonce))
            .collect();
        nonces.sort_unstable();
        nonces.into_iter()
    }

    /// Every balance held, zero balances included, by address and asset.
    pub fn balances(&self) -> impl Iterator<Item = (Address, AssetCode, Amount)> + '_ {
        let mut balances: Vec<(Address, AssetCode, Amount)> = self
            .balances
            .iter()
            .map(|((address, asset), amount)| (*address, *asset, *amount))
            .collect();
        balances.sort_unstable_by_key(|(address, asset, _)| (*address, *asset));
        balances.into_iter()
    }

    /// Every existing asset held.
    pub fn assets(&self) -> impl Iterator<Item = &AssetState> + '_ {
        self.assets.values().flatten()
    }

    /// Every existing HTLC held.
    pub fn locks(&self) -> impl Iterator<Item = &Htlc> + '_ {
        self.locks.values().flatten()
    }

    /// Checks the supply invariant of a complete snapshot: for every asset,
    /// balances plus open locks add up to its supply, and nothing is held of
    /// an asset that does not exist.
    pub fn check_supply(&self) -> Result<(), ApplyError> {
        // `None` once an asset's total overflowed; reported after the sums,
        // in asset order (the balances' map has no order).
        let mut held: BTreeMap<AssetCode, Option<u128>> = BTreeMap::new();
        let mut add = |asset: AssetCode, amount: Amount| {
            let total = held.entry(asset).or_insert(Some(0));
            *total = total.and_then(|t| t.checked_add(amount.minor_units()));
        };
        for ((_, asset), amount) in &self.balances {
            add(*asset, *amount);
        }
        for htlc in self.locks() {
            if htlc.status == HtlcStatus::Locked {
                add(htlc.asset, htlc.amount);
            }
        }
        if let Some((asset, _)) = held.iter().find(|(_, total)| total.is_none()) {
            return Err(ApplyError::Corrupt(format!("{asset} held exceeds 2^128")));
        }
        let mut held: BTreeMap<AssetCode, u128> = held
            .into_iter()
            .map(|(asset, total)| (asset, total.unwrap_or(0)))
            .collect();
        for state in self.assets() {
            let total = held.remove(&state.asset.code).unwrap_or(0);
            if total != state.supply.minor_units() {
                return Err(ApplyError::Corrupt(format!(
                    "{} supply is {} but balances and open locks hold {total}",
                    state.asset.code, state.supply
                )));
            }
        }
        match held.into_iter().find(|(_, total)| *total > 0) {
            Some((asset, total)) => Err(ApplyError::Corrupt(format!(
                "{total} of unregistered asset {asset} is held"
            ))),
            None => Ok(()),
        }
    }
}

/// What a gateway must load into a partial snapshot before applying a batch.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ReadSet {
    /// Accounts whose next nonce is needed.
    pub accounts: BTreeSet<Address>,
    /// Balances needed.
    pub balances: BTreeSet<(Address, AssetCode)>,
    /// Assets needed (load `None` for one that does not exist).
    pub assets: BTreeSet<AssetCode>,
    /// HTLCs needed (load `None` for one that does not exist).
    pub locks: BTreeSet<LockId>,
}

impl ReadSet {
    /// True when nothing is missing.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.balances.is_empty()
            && self.assets.is_empty()
            && self.locks.is_empty()
    }
}

impl Snapshot {
    /// What `txs` read that this snapshot does not hold yet. A claim or refund
    /// reads the balance of the lock's recipient or sender, which is known only
    /// once the lock is loaded, so a gateway loads the result, asks again, and
    /// stops when the answer is empty (at most two rounds). A complete
    /// snapshot never misses anything.
    pub fn missing(&self, txs: &[VerifiedTransaction]) -> ReadSet {
        let mut missing = ReadSet::default();
        if !self.partial {
            return missing;
        }
        // Locks created earlier in the same batch: (sender, recipient, asset).
        let mut created: BTreeMap<LockId, (Address, Address, AssetCode)> = BTreeMap::new();
        let need_balance = |address: Address, asset: AssetCode, missing: &mut ReadSet| {
            if !self.balances.contains_key(&(address, asset)) {
                missing.balances.insert((address, asset));
            }
        };
        for verified in txs {
            let tx = verified.transaction();
            if !self.nonces.contains_key(&tx.from) {
                missing.accounts.insert(tx.from);
            }
            let asset = match &tx.body {
                TxBody::RegisterAsset { code, .. } => Some(*code),
                TxBody::Issue { asset, .. }
                | TxBody::Burn { asset, .. }
                | TxBody::Transfer { asset, .. }
                | TxBody::HtlcLock { asset, .. } => Some(*asset),
                TxBody::HtlcClaim { .. } | TxBody::HtlcRefund { .. } | TxBody::Anchor { .. } => {
                    None
                }
            };
            if let Some(asset) = asset
                && !self.assets.contains_key(&asset)
            {
                missing.assets.insert(asset);
            }
            match &tx.body {
                TxBody::RegisterAsset { .. } | TxBody::Anchor { .. } => {}
                TxBody::Issue { asset, to, .. } => need_balance(*to, *asset, &mut missing),
                TxBody::Burn { asset, .. } => need_balance(tx.from, *asset, &mut missing),
                TxBody::Transfer { asset, to, .. } => {
                    need_balance(tx.from, *asset, &mut missing);
                    need_balance(*to, *asset, &mut missing);
                }
                TxBody::HtlcLock {
                    asset, recipient, ..
                } => {
                    need_balance(tx.from, *asset, &mut missing);
                    created.insert(verified.hash().into(), (tx.from, *recipient, *asset));
                }
                TxBody::HtlcClaim { lock_id, .. } | TxBody::HtlcRefund { lock_id } => {
                    // The lock itself is always read from the snapshot, even
                    // when this batch creates it: that HtlcLock may yet be
                    // rejected, and the claim must then find "no such lock".
                    let loaded = match self.locks.get(lock_id) {
                        Some(loaded) => loaded
                            .as_ref()
                            .map(|htlc| (htlc.sender, htlc.recipient, htlc.asset)),
                        None => {
                            missing.locks.insert(*lock_id);
                            None
                        }
                    };
                    let is_claim = matches!(tx.body, TxBody::HtlcClaim { .. });
                    for (sender, recipient, asset) in
                        loaded.into_iter().chain(created.get(lock_id).copied())
                    {
                        let payee = if is_claim { recipient } else { sender };
                        need_balance(payee, asset, &mut missing);
                    }
                }
            }
        }
        missing
    }
}

/// The state a batch changed, with the values after the batch: what the
/// gateway writes back, in one database transaction, beside the outcomes.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct StateChanges {
    /// Accounts whose next nonce moved. (The gateway does not store these:
    /// it reads an account's next nonce back from its stored transactions,
    /// and checks that this list agrees with them before writing a block.)
    pub accounts: Vec<(Address, u64)>,
    /// Balances that changed.
    pub balances: Vec<(Address, AssetCode, Amount)>,
    /// Assets created or whose supply changed.
    pub assets: Vec<AssetState>,
    /// HTLCs created or settled.
    pub locks: Vec<Htlc>,
}
