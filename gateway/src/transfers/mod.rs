//! Cross-ledger transfers. Topology (a) of DESIGN.md, described here: two
//! ledgers this gateway hosts, the gateway as connector providing liquidity
//! on the target ledger and earning it back on the source. Topology (b), a
//! target ledger hosted by a pinned peer gateway, runs the same state
//! machine over SATP (see [`crate::satp`]): [`step`] dispatches on the
//! transfer's session.
//!
//! The flow, under one hashlock `H` chosen by the client:
//! 1. `POST /v1/transfers` plans the timelocks (`adapters::planner`) and
//!    answers with what the sender must lock: on the source ledger, to the
//!    connector's account, the amount under `H`, expiring no earlier than
//!    `sourceExpiresAtMs`, by `sourceLockByMs`;
//! 2. the engine finds that lock, checks it, and locks the amount on the
//!    target ledger from the connector to the recipient under `H`, expiring
//!    at `targetExpiresAtMs` (earlier than the source lock by the planner's
//!    margin);
//! 3. the recipient claims on the target ledger, revealing the preimage; the
//!    engine claims the source lock with it: completed;
//! 4. if the recipient does not claim in time, the engine refunds the target
//!    lock at its expiry and the source lock at its own: refunded on every
//!    leg. A sender who never locks by `sourceLockByMs` gets `cancelled`.
//!
//! **Durability.** The transfer row and its append-only event history are the
//! state machine. The engine sees each ledger only through
//! `adapters::ledger::LedgerAdapter` (here [`local::LocalLedger`]): every
//! ledger action the connector takes is signed and written to
//! `transfer_actions` *before* it is submitted, and resubmitted as the very
//! same transaction after a restart (a duplicate answers like the original).
//! Each step re-reads the ledgers, so a restart resumes exactly where the
//! last committed step left off. The engine acts on a transfer only in the
//! process that produces both its ledgers' blocks.

pub mod any;
pub mod fault;
pub mod http;
pub mod local;
pub mod store;

use std::sync::Arc;
use tracing::Instrument as _;

use futures_util::StreamExt as _;
use std::time::Duration;

use adapters::ledger::{
    Acted, AdapterError, LedgerAdapter, LockInfo, LockState, LockTerms, OperationKey,
};
use adapters::planner::{LegSpec, PlanParams, plan};
use ledger_core::{Address, Amount, AssetCode, ChainId, Hashlock, LockId, SigningKey};
use serde_json::json;

use crate::app::App;
use crate::sequencer::now_ms;
use crate::store::StoreError;
use any::AnyLedger;
use local::LocalLedger;
use store::TransferStore;

/// Where a transfer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferState {
    /// Waiting for the sender's lock on the source ledger.
    AwaitingSourceLock,
    /// The sender's lock is in place; the connector is locking the target.
    SourceLocked,
    /// Both locks are in place; waiting for the recipient's claim.
    TargetLocked,
    /// The recipient claimed; the connector is claiming the source.
    ClaimingSource,
    /// Claimed on both ledgers.
    Completed,
    /// Unwinding: refunding whatever is locked, as each lock expires.
    Refunding,
    /// Refunded on every ledger it touched.
    Refunded,
    /// The sender did not lock in time; nothing was locked by the connector.
    Cancelled,
    /// Stopped in a state the engine cannot leave by itself (a claim the
    /// ledger refused against the plan); needs an operator.
    Failed,
}

impl TransferState {
    const ALL: [TransferState; 9] = [
        TransferState::AwaitingSourceLock,
        TransferState::SourceLocked,
        TransferState::TargetLocked,
        TransferState::ClaimingSource,
        TransferState::Completed,
        TransferState::Refunding,
        TransferState::Refunded,
        TransferState::Cancelled,
        TransferState::Failed,
    ];

    /// The state's name on the wire and in the database.
    pub fn name(self) -> &'static str {
        match self {
            TransferState::AwaitingSourceLock => "awaiting_source_lock",
            TransferState::SourceLocked => "source_locked",
            TransferState::TargetLocked => "target_locked",
            TransferState::ClaimingSource => "claiming_source",
            TransferState::Completed => "completed",
            TransferState::Refunding => "refunding",
            TransferState::Refunded => "refunded",
            TransferState::Cancelled => "cancelled",
            TransferState::Failed => "failed",
        }
    }

    /// The state with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// True for a state nothing follows.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TransferState::Completed
                | TransferState::Refunded
                | TransferState::Cancelled
                | TransferState::Failed
        )
    }
}

/// What a transfer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferKind {
    /// Value moved from the sender to the recipient, with a connector (this
    /// gateway, or a peer gateway) locking its own liquidity on the target.
    Connector,
    /// Two parties swap (payment-versus-payment, delivery-versus-payment):
    /// the sender locks `amount` of the source asset to the recipient, the
    /// recipient locks `target_amount` of the target asset to the sender,
    /// under one hashlock; no connector liquidity. The gateway watches both
    /// legs, claims the sender's lock for the recipient as soon as the
    /// sender's claim reveals the preimage, and refunds each lock at expiry.
    Exchange,
}

impl TransferKind {
    /// The kind's name on the wire and in the database.
    pub fn name(self) -> &'static str {
        match self {
            TransferKind::Connector => "connector",
            TransferKind::Exchange => "exchange",
        }
    }

    /// The kind with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        [TransferKind::Connector, TransferKind::Exchange]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// A transfer.
#[derive(Clone, Debug, PartialEq)]
pub struct Transfer {
    /// Its id (a UUID).
    pub id: String,
    /// Connector transfer or exchange.
    pub kind: TransferKind,
    /// The tenant that created it.
    pub tenant: String,
    /// Where it stands.
    pub state: TransferState,
    /// The source ledger.
    pub source_chain_id: ChainId,
    /// The target ledger.
    pub target_chain_id: ChainId,
    /// The asset locked on the source.
    pub source_asset: AssetCode,
    /// The asset paid on the target.
    pub target_asset: AssetCode,
    /// Minor units locked on the source leg.
    pub amount: Amount,
    /// Minor units locked on the target leg (`amount` for a connector
    /// transfer).
    pub target_amount: Amount,
    /// Who locks on the source.
    pub sender: Address,
    /// Who is paid on the target.
    pub recipient: Address,
    /// The account the sender locks to: the connector's, or in an exchange
    /// the recipient's.
    pub connector: Address,
    /// SHA-256 of the preimage.
    pub hashlock: Hashlock,
    /// The sender's lock must be in place by then.
    pub source_lock_by_ms: u64,
    /// The sender's lock must not expire before this.
    pub source_expires_at_ms: u64,
    /// The connector's lock on the target expires then.
    pub target_expires_at_ms: u64,
    /// The sender's lock, once found.
    pub source_lock_id: Option<LockId>,
    /// The connector's lock, once made.
    pub target_lock_id: Option<LockId>,
    /// The preimage, once revealed.
    pub preimage: Option<[u8; 32]>,
    /// Created (ms).
    pub created_at_ms: u64,
    /// Last changed (ms).
    pub updated_at_ms: u64,
    /// Optimistic-concurrency version, +1 per change.
    pub version: i64,
    /// The client's reference (for a settlement statement's payment,
    /// `settlement:<closeId>:<currency>:<payer>:<payee>`).
    pub reference: Option<String>,
    /// The W3C `traceparent` of the span that created it (the request, or
    /// the peer's SATP proposal), when spans were exported then: every step
    /// of the transfer joins that trace (`crate::telemetry`).
    pub trace_parent: Option<String>,
}

/// One entry of a transfer's history.
#[derive(Clone, Debug, PartialEq)]
pub struct TransferEvent {
    /// When (ms).
    pub at_ms: u64,
    /// What happened (`created`, `source_locked`, ...).
    pub kind: String,
    /// Details.
    pub detail: serde_json::Value,
}

/// What is needed to plan and create a transfer.
#[derive(Clone, Debug)]
pub struct TransferRequest {
    /// Connector transfer or exchange.
    pub kind: TransferKind,
    /// Source ledger.
    pub source_chain_id: ChainId,
    /// Target ledger.
    pub target_chain_id: ChainId,
    /// Asset on the source.
    pub source_asset: AssetCode,
    /// Asset on the target.
    pub target_asset: AssetCode,
    /// Minor units on the source leg.
    pub amount: Amount,
    /// Minor units on the target leg (an exchange's; `amount` otherwise).
    pub target_amount: Amount,
    /// Who locks on the source.
    pub sender: Address,
    /// Who is paid on the target.
    pub recipient: Address,
    /// SHA-256 of the preimage (held by the recipient in a connector
    /// transfer, by the sender in an exchange).
    pub hashlock: Hashlock,
    /// The client's reference, if any.
    pub reference: Option<String>,
}

/// Why a transfer cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// A ledger is not hosted here.
    #[error("this gateway hosts no ledger with chain id {0}")]
    UnknownLedger(ChainId),
    /// Source and target are the same ledger.
    #[error("source and target must be different ledgers")]
    SameLedger,
    /// The amount is zero.
    #[error("amount must be greater than zero")]
    ZeroAmount,
    /// No safe plan within the limits.
    #[error(transparent)]
    Plan(#[from] adapters::planner::PlanError),
    /// The hashlock already serves a transfer.
    #[error(
        "this hashlock already serves a transfer from this ledger; every transfer needs a fresh preimage"
    )]
    HashlockInUse,
    /// The tenant would hold more locked than allowed.
    #[error(
        "the tenant's unfinished transfers of this asset would hold more than {max} minor units locked"
    )]
    LimitExceeded {
        /// The limit.
        max: u64,
    },
    /// An exchange is between two ledgers of this gateway.
    #[error("an exchange needs both ledgers hosted by this gateway")]
    ExchangeAcrossGateways,
    /// A connector transfer carries one amount on both legs.
    #[error("targetAmount differs from amount; only an exchange has two amounts")]
    AmountsDiffer,
    /// A connector transfer moves one asset.
    #[error(
        "sourceAsset and targetAsset differ and are not a configured pair (transfers.asset_pairs); swapping two assets is an exchange"
    )]
    AssetsDiffer,
    /// An exchange needs two parties.
    #[error("an exchange needs two different parties")]
    SameParty,
    /// An EVM chain does not have the asset configured.
    #[error("asset {asset} is not configured on chain {chain}")]
    AssetNotOnLedger {
        /// The asset.
        asset: AssetCode,
        /// The chain.
        chain: ChainId,
    },
    /// The two assets count minor units in different decimals.
    #[error(
        "the source asset has {source_scale} decimals and the target asset {target_scale}: a connector moves the same minor units on both legs"
    )]
    ScalesDiffer {
        /// The source asset's decimals.
        source_scale: u8,
        /// The target asset's decimals.
        target_scale: u8,
    },
    /// A transfer to a peer gateway's ledger starts on a built-in ledger.
    #[error(
        "a transfer to a peer gateway's ledger must start on a built-in ledger of this gateway, not an EVM chain"
    )]
    EvmToPeer,
    /// The peer gateway hosting the target ledger refused the transfer.
    #[error("{0}")]
    PeerRefused(String),
    /// The peer gateway hosting the target ledger could not be reached.
    #[error("{0}")]
    PeerUnavailable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::satp::client::OpenError> for CreateError {
    fn from(error: crate::satp::client::OpenError) -> Self {
        use crate::satp::client::OpenError;
        match error {
            OpenError::Refused(_) => CreateError::PeerRefused(error.to_string()),
            OpenError::Unavailable(_) => CreateError::PeerUnavailable(error.to_string()),
            OpenError::Store(e) => CreateError::Store(e),
        }
    }
}

/// The connector: its key and the engine's settings.
#[derive(Clone, Debug)]
pub struct Connector {
    /// The connector's account key.
    pub key: SigningKey,
    /// The engine's settings.
    pub config: crate::config::TransfersConfig,
}

/// The engine's worst-case reaction: the configured bound, and never less
/// than two ticks (one to see an event, one to act on it).
pub(crate) fn reaction_ms(config: &crate::config::TransfersConfig) -> u64 {
    config.reaction_ms_max.max(config.tick_ms.saturating_mul(2))
}

/// The planner's inputs from the engine's settings, at `now_ms`.
pub(crate) fn plan_params(config: &crate::config::TransfersConfig, now_ms: u64) -> PlanParams {
    PlanParams {
        now_ms,
        reaction_ms_max: reaction_ms(config),
        claim_window_ms: config.claim_window_ms,
        safety_margin_ms: config.safety_margin_ms,
    }
}

/// The latest moment the target lock of a transfer whose sender's lock is
/// due by `source_lock_by_ms` may be started: later, the recipient would not
/// get its full claim window, so the transfer unwinds instead.
pub(crate) fn target_lock_by(
    config: &crate::config::TransfersConfig,
    source_lock_by_ms: u64,
) -> u64 {
    source_lock_by_ms + config.commit_ms_max + reaction_ms(config)
}

/// A leg on `ledger`, planned with the finality its adapter states.
fn leg(ledger: &impl LedgerAdapter, config: &crate::config::TransfersConfig) -> LegSpec {
    LegSpec {
        finality: ledger.describe().finality,
        timelock_ms_max: config.timelock_ms_max,
    }
}

/// True when a connector may move `source` into `target`: the same asset
/// code, or a pair configured as the same value (`transfers.asset_pairs`).
pub fn same_value(
    config: &crate::config::TransfersConfig,
    source: AssetCode,
    target: AssetCode,
) -> bool {
    source == target
        || config
            .asset_pairs
            .iter()
            .any(|[s, t]| s == source.as_str() && t == target.as_str())
}

/// The decimals of `asset` on ledger `chain`: the token's (or 18 for the
/// native coin) on an EVM chain, the registered scale on a built-in ledger.
async fn scale_of(app: &App, chain: ChainId, asset: AssetCode) -> Result<u8, CreateError> {
    if let Some(evm) = app.evm(chain) {
        return evm
            .decimals(asset)
            .await
            .map_err(|e| CreateError::PeerUnavailable(e.to_string()))?
            .ok_or(CreateError::AssetNotOnLedger { asset, chain });
    }
    use crate::store::LedgerStore as _;
    app.store
        .asset(chain, asset)
        .await?
        .map(|state| state.asset.scale.get())
        .ok_or(CreateError::AssetNotOnLedger { asset, chain })
}

/// Plans and records a new transfer.
pub async fn create(
    app: &App,
    connector: &Connector,
    tenant: &str,
    request: &TransferRequest,
) -> Result<Transfer, CreateError> {
    // The source is hosted here; the target is hosted here (this gateway
    // is the connector) or by a pinned peer (SATP, the peer is).
    let acts_on = |chain| app.ledger(chain).is_some() || app.evm(chain).is_some();
    if !acts_on(request.source_chain_id) {
        return Err(CreateError::UnknownLedger(request.source_chain_id));
    }
    let hosted = acts_on(request.target_chain_id);
    let direct = app.satp.peer_for_chain(request.target_chain_id);
    // A route through a peer to a ledger of one of its peers (topology c).
    let via = match (hosted, direct) {
        (false, None) => app.satp.route_for_chain(request.target_chain_id),
        _ => None,
    };
    let peer = direct.or(via);
    if !hosted && peer.is_none() {
        return Err(CreateError::UnknownLedger(request.target_chain_id));
    }
    if request.source_chain_id == request.target_chain_id {
        return Err(CreateError::SameLedger);
    }
    if request.amount.is_zero() || request.target_amount.is_zero() {
        return Err(CreateError::ZeroAmount);
    }
    let exchange = request.kind == TransferKind::Exchange;
    let config = &connector.config;
    if exchange && peer.is_some() {
        return Err(CreateError::ExchangeAcrossGateways);
    }
    if peer.is_some() && app.evm(request.source_chain_id).is_some() {
        return Err(CreateError::EvmToPeer);
    }
    // An EVM chain moves only the assets configured for it.
    for (chain, asset) in [
        (request.source_chain_id, request.source_asset),
        (request.target_chain_id, request.target_asset),
    ] {
        if let Some(evm) = app.evm(chain)
            && !evm
                .assets()
                .await
                .map_err(|e| CreateError::PeerUnavailable(e.to_string()))?
                .contains(&asset)
        {
            return Err(CreateError::AssetNotOnLedger { asset, chain });
        }
    }
    // A connector pays out the minor units it is paid in: across an EVM
    // chain both assets must count them in the same decimals.
    if !exchange
        && (app.evm(request.source_chain_id).is_some()
            || app.evm(request.target_chain_id).is_some())
    {
        let source_scale = scale_of(app, request.source_chain_id, request.source_asset).await?;
        let target_scale = scale_of(app, request.target_chain_id, request.target_asset).await?;
        if source_scale != target_scale {
            return Err(CreateError::ScalesDiffer {
                source_scale,
                target_scale,
            });
        }
    }
    if !exchange && request.target_amount != request.amount {
        return Err(CreateError::AmountsDiffer);
    }
    // A connector moves one value; two different ones are an exchange.
    if !exchange && !same_value(config, request.source_asset, request.target_asset) {
        return Err(CreateError::AssetsDiffer);
    }
    if exchange && request.sender == request.recipient {
        return Err(CreateError::SameParty);
    }
    let now = now_ms();
    let params = plan_params(config, now);
    let peer_leg = |peer: &crate::satp::Peer| LegSpec {
        finality: peer.finality,
        timelock_ms_max: config.timelock_ms_max,
    };
    let source = AnyLedger::of(app, connector, request.source_chain_id);
    let mut legs = vec![leg(&source, config)];
    match (peer, via) {
        // The peer's own ledger, then the ledger beyond it (planned with the
        // peer's finality: this gateway pins nothing of the third one).
        (Some(peer), Some(_)) => legs.extend([peer_leg(peer), peer_leg(peer)]),
        (Some(peer), None) => legs.push(peer_leg(peer)),
        (None, _) => legs.push(leg(
            &AnyLedger::of(app, connector, request.target_chain_id),
            config,
        )),
    }
    let planned = plan(&legs, &params)?;
    let last = planned.legs.len() - 1;
    let hop = via.map(|_| planned.legs[1].expires_at_ms);
    let transfer = Transfer {
        id: uuid::Uuid::new_v4().to_string(),
        kind: request.kind,
        tenant: tenant.to_string(),
        state: TransferState::AwaitingSourceLock,
        source_chain_id: request.source_chain_id,
        target_chain_id: request.target_chain_id,
        source_asset: request.source_asset,
        target_asset: request.target_asset,
        amount: request.amount,
        target_amount: request.target_amount,
        sender: request.sender,
        recipient: request.recipient,
        // The account the sender locks to: this gateway's, the peer's when
        // the peer provides the target leg, the recipient's in an exchange.
        connector: if exchange {
            request.recipient
        } else {
            peer.map_or_else(|| source.account(), |p| p.account)
        },
        hashlock: request.hashlock,
        source_lock_by_ms: planned.legs[0].lock_by_ms,
        source_expires_at_ms: planned.legs[0].expires_at_ms,
        target_expires_at_ms: planned.legs[last].expires_at_ms,
        source_lock_id: None,
        target_lock_id: None,
        preimage: None,
        created_at_ms: now,
        updated_at_ms: now,
        version: 0,
        reference: request.reference.clone(),
        trace_parent: crate::telemetry::current_traceparent(),
    };
    let event = TransferEvent {
        at_ms: now,
        kind: "created".into(),
        detail: json!({
            "sourceLockByMs": transfer.source_lock_by_ms.to_string(),
            "sourceExpiresAtMs": transfer.source_expires_at_ms.to_string(),
            "targetExpiresAtMs": transfer.target_expires_at_ms.to_string(),
            "marginMs": planned.legs[1].margin_ms.to_string(),
            "hopExpiresAtMs": hop.map(|ms| ms.to_string()),
        }),
    };
    let session = match peer {
        Some(peer) => Some((
            peer,
            crate::satp::client::open(app, peer, &transfer, hop).await?,
        )),
        None => None,
    };
    let max = connector.config.tenant_locked_max;
    // The limit caps the connector's liquidity a tenant ties up; an exchange
    // ties up none.
    let limit = if exchange { u128::MAX } else { u128::from(max) };
    let created = app.store.create_transfer(&transfer, &event, limit).await;
    if let (
        Some((peer, session)),
        Ok(store::Created::LimitExceeded | store::Created::HashlockInUse) | Err(_),
    ) = (&session, &created)
    {
        crate::satp::client::abort(app, peer, session).await;
    }
    match created? {
        store::Created::Created => {
            app.wake.notify_one();
            Ok(transfer)
        }
        store::Created::LimitExceeded => Err(CreateError::LimitExceeded { max }),
        store::Created::HashlockInUse => Err(CreateError::HashlockInUse),
    }
}

/// Why a transfer cannot be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// No such transfer (for this tenant).
    #[error("no such transfer")]
    NotFound,
    /// The sender's lock is already in place (or the transfer is over).
    #[error("a transfer can be cancelled only while it awaits the sender's lock; it is {0}")]
    TooLate(&'static str),
    /// The source ledger (an EVM node) cannot be read now.
    #[error("the source ledger cannot be read now: {0}")]
    Unavailable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The terms of the sender's lock a transfer waits for (its expiry the
/// earliest acceptable).
pub(crate) fn sender_lock(t: &Transfer) -> LockTerms {
    LockTerms {
        sender: t.sender,
        recipient: t.connector,
        asset: t.source_asset,
        amount: t.amount,
        hashlock: t.hashlock,
        expires_at_ms: t.source_expires_at_ms,
    }
}

/// The connector's target lock: the recorded one, or the one its
/// written-ahead action committed (a crash may have come between the two).
async fn target_lock_id(
    target: &impl LedgerAdapter,
    t: &Transfer,
) -> Result<Option<LockId>, StepError> {
    if t.target_lock_id.is_some() {
        return Ok(t.target_lock_id);
    }
    Ok(target.committed_lock(op(t, "target-lock")).await?)
}

/// The operation key of `action` of transfer `t`.
fn op<'a>(t: &'a Transfer, action: &'a str) -> OperationKey<'a> {
    OperationKey {
        transfer_id: &t.id,
        action,
    }
}

/// Cancels a transfer that still awaits the sender's lock.
pub async fn cancel(app: &App, tenant: &str, id: &str) -> Result<Transfer, CancelError> {
    for _ in 0..3 {
        let transfer = app
            .store
            .transfer(id)
            .await?
            .filter(|t| t.tenant == tenant)
            .ok_or(CancelError::NotFound)?;
        match transfer.state {
            TransferState::Cancelled => return Ok(transfer),
            TransferState::AwaitingSourceLock => {}
            other => return Err(CancelError::TooLate(other.name())),
        }
        let source_lock = match app.evm(transfer.source_chain_id) {
            Some(evm) => evm
                .find_open_lock(&sender_lock(&transfer))
                .await
                .map_err(|e| CancelError::Unavailable(e.to_string()))?
                .is_some(),
            None => app
                .store
                .find_open_lock(&store::LockWanted::new(
                    transfer.source_chain_id,
                    &sender_lock(&transfer),
                ))
                .await?
                .is_some(),
        };
        if source_lock {
            // The sender's lock is on the ledger: the engine will take it up.
            return Err(CancelError::TooLate("source_locked"));
        }
        let now = now_ms();
        let next = Transfer {
            state: TransferState::Cancelled,
            version: transfer.version + 1,
            updated_at_ms: now,
            ..transfer.clone()
        };
        let event = TransferEvent {
            at_ms: now,
            kind: "cancelled".into(),
            detail: json!({ "reason": "cancelled by the client" }),
        };
        if app
            .store
            .update_transfer(&next, transfer.version, &event)
            .await?
        {
            record_transition(&transfer, &next, now);
            // A peer gateway that accepted the transfer is told at once
            // (it would cancel its side when the sender's lock is overdue).
            use crate::satp::store::{Role, SatpStore};
            if let Some(session) = app.store.session_of_transfer(&next.id).await?
                && session.role == Role::Client
                && let Some(peer) = app.satp.peer(&session.peer)
            {
                crate::satp::client::abort(app, peer, &session).await;
            }
            return Ok(next);
        }
        // The engine moved it meanwhile: look again.
    }
    Err(CancelError::TooLate("changing"))
}

/// Most steps one transfer takes in one tick.
const STEPS_PER_TICK_MAX: usize = 6;

/// Most transfers stepped at once.
const STEPS_IN_FLIGHT_MAX: usize = 32;

/// Runs the engine until the process ends: every `tick_ms`, one step of every
/// active transfer whose two ledgers this process produces blocks for.
///
/// It looks sooner when something happened that a transfer may be waiting
/// for: a transfer created here or a SATP message accepted (`App::wake`), and
/// a block with an HTLC transaction committed on a hosted ledger
/// (`App::committed`), the latter only while its last look found active
/// transfers of its own. A transfer waits for locks, claims and refunds, so
/// no other block can move one, and a ledger busy with plain payments would
/// otherwise pay a scan of the transfer table per block (measured: single
/// payments 17-24% slower, `docs/perf` item 12). Anything else a transfer may
/// wait for (the connector's liquidity arriving, a timelock passing, a
/// transfer another replica creates on a shared database) is found at the
/// next tick.
pub fn spawn_engine(app: Arc<App>, connector: Connector) {
    tokio::spawn(async move {
        let tick = Duration::from_millis(connector.config.tick_ms.max(10));
        // Until the first look, a commit may matter.
        let mut watch_commits = true;
        loop {
            let cause = tokio::select! {
                () = tokio::time::sleep(tick) => "tick",
                () = app.wake.notified() => "wake",
                () = app.committed.notified(), if watch_commits => "commit",
            };
            crate::metrics::engine_scan(cause);
            let mut after = None;
            let mut active_here = false;
            loop {
                let page = match app.store.active_transfers(after.clone(), 256).await {
                    Ok(page) => page,
                    Err(error) => {
                        tracing::warn!(%error, "transfer engine: cannot list active transfers");
                        // Not known to be idle: keep looking at each block.
                        active_here = true;
                        break;
                    }
                };
                let full = page.len() == 256;
                after = page.last().map(|t| (t.created_at_ms, t.id.clone()));
                let mut ours = Vec::new();
                for transfer in page {
                    // Only where the hosted ledgers' blocks are produced can
                    // the engine act on them; the other ledger is hosted here
                    // too, or by a pinned peer.
                    let here = |chain| {
                        app.ledger(chain)
                            .is_some_and(|l| l.producer.sequencer().is_some())
                            || app.evm(chain).is_some()
                    };
                    let peer = |chain| app.satp.remote_for_chain(chain).is_some();
                    let (source, target) = (transfer.source_chain_id, transfer.target_chain_id);
                    if (here(source) && here(target))
                        || (here(source) && peer(target))
                        || (peer(source) && here(target))
                    {
                        ours.push(transfer);
                    }
                }
                active_here |= !ours.is_empty();
                // Transfers are independent: step several at once, so their
                // database commits and peer round trips overlap.
                futures_util::stream::iter(ours)
                    .for_each_concurrent(STEPS_IN_FLIGHT_MAX, |transfer| {
                        let (app, connector) = (&app, &connector);
                        async move {
                            // A step that moved the transfer on is followed at
                            // once by the next (a few at most per tick).
                            let mut current = transfer;
                            for _ in 0..STEPS_PER_TICK_MAX {
                                let (id, version) = (current.id.clone(), current.version);
                                // A step that hangs (an unresponsive node)
                                // must not hold up the tick, and with it
                                // every other transfer's reaction: it is cut
                                // off, which is safe as a crash is (every
                                // action is idempotent), and retried.
                                let limit = Duration::from_millis(reaction_ms(&connector.config));
                                let span = step_span(&current);
                                match tokio::time::timeout(limit, step(app, connector, current).instrument(span)).await {
                                    Ok(Ok(())) => {}
                                    Ok(Err(StepError::Adapter(AdapterError::Pending(what)))) => {
                                        tracing::debug!(%what, "transfer engine step waits for a ledger");
                                        break;
                                    }
                                    Ok(Err(error)) => {
                                        tracing::warn!(%error, "transfer engine step failed; retrying next tick");
                                        break;
                                    }
                                    Err(_) => {
                                        tracing::warn!(transfer = %id, "transfer engine step took longer than the reaction bound; cut off, retrying next tick");
                                        break;
                                    }
                                }
                                match app.store.transfer(&id).await {
                                    Ok(Some(next)) if next.version != version && !next.state.is_final() => {
                                        current = next;
                                    }
                                    _ => break,
                                }
                            }
                        }
                    })
                    .await;
                if !full {
                    break;
                }
            }
            watch_commits = active_here;
        }
    });
}

/// The span of one engine step of `transfer`: in the trace of the request
/// (or SATP proposal) that created it (`crate::telemetry`).
fn step_span(transfer: &Transfer) -> tracing::Span {
    let span = tracing::debug_span!(
        "transfer.step",
        transfer.id = %transfer.id,
        transfer.state = transfer.state.name(),
    );
    if let Some(parent) = &transfer.trace_parent {
        crate::telemetry::set_remote_parent(&span, parent);
    }
    span
}

/// A step that could not finish; retried on the next tick.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A ledger's adapter could not tell what happened.
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    /// A ledger refused an action the plan needs (retried: the refusal may
    /// be transient, e.g. a refund judged a moment before the expiry).
    #[error("refused: {0}")]
    Refused(String),
    /// Stored data does not decode.
    #[error("corrupt: {0}")]
    Corrupt(String),
}

pub(crate) async fn advance(
    app: &App,
    transfer: &Transfer,
    next: Transfer,
    kind: &str,
    detail: serde_json::Value,
) -> Result<(), StepError> {
    let now = now_ms();
    let next = Transfer {
        version: transfer.version + 1,
        updated_at_ms: now,
        ..next
    };
    let event = TransferEvent {
        at_ms: now,
        kind: kind.to_string(),
        detail,
    };
    // Another writer got there first: the next tick sees its state.
    if app
        .store
        .update_transfer(&next, transfer.version, &event)
        .await?
    {
        record_transition(transfer, &next, now);
    }
    Ok(())
}

/// Metrics of a recorded state change: a transfer reaching an end state.
pub(crate) fn record_transition(before: &Transfer, after: &Transfer, now_ms: u64) {
    if after.state.is_final() && !before.state.is_final() {
        crate::metrics::transfer_finished(
            after.state.name(),
            now_ms.saturating_sub(before.created_at_ms),
        );
    }
}

/// [`advance`] to `state`, nothing else changed.
pub(crate) async fn advance_to(
    app: &App,
    transfer: &Transfer,
    state: TransferState,
    kind: &str,
    detail: serde_json::Value,
) -> Result<(), StepError> {
    let next = Transfer {
        state,
        ..transfer.clone()
    };
    advance(app, transfer, next, kind, detail).await
}

async fn lock_of(
    ledger: &impl LedgerAdapter,
    id: Option<LockId>,
) -> Result<Option<LockInfo>, StepError> {
    match id {
        Some(id) => Ok(ledger.lock_status(id).await?),
        None => Ok(None),
    }
}

/// Refunds `lock` once it has expired; true when there is nothing (left) to
/// refund: no lock, or one already settled.
async fn refund_when_expired(
    ledger: &impl LedgerAdapter,
    t: &Transfer,
    kind: &str,
    lock: Option<LockInfo>,
    now: u64,
) -> Result<bool, StepError> {
    let Some(lock) = lock.filter(|l| l.state == LockState::Locked) else {
        return Ok(true);
    };
    if now >= lock.terms.expires_at_ms
        && let Acted::Refused(reason) = ledger.refund(op(t, kind), lock.id).await?
    {
        return Err(StepError::Refused(format!("{kind}: {reason}")));
    }
    // Settled only when a later step sees the lock refunded.
    Ok(false)
}

/// One step of one transfer's state machine: this gateway as connector
/// between two hosted ledgers, as the originating gateway of a SATP
/// transfer ([`crate::satp::client::step`]), or as the receiving one (the
/// connector's machine with the source ledger reached through the peer,
/// locking the target only when the peer's commit-prepare asks).
pub async fn step(app: &App, connector: &Connector, transfer: Transfer) -> Result<(), StepError> {
    let remote = app
        .satp
        .peer_for_chain(transfer.source_chain_id)
        .or_else(|| app.satp.remote_for_chain(transfer.target_chain_id));
    if remote.is_none() {
        let source = AnyLedger::of(app, connector, transfer.source_chain_id);
        let target = AnyLedger::of(app, connector, transfer.target_chain_id);
        let mode = match transfer.kind {
            TransferKind::Connector => Mode::Connector,
            TransferKind::Exchange => Mode::Exchange,
        };
        return step_with(app, connector, transfer, &source, &target, mode).await;
    }
    use crate::satp::store::{Role, SatpStore};
    let session = app
        .store
        .session_of_transfer(&transfer.id)
        .await?
        .ok_or_else(|| {
            StepError::Corrupt(format!("transfer {} has no SATP session", transfer.id))
        })?;
    let peer = app.satp.peer(&session.peer).ok_or_else(|| {
        StepError::Corrupt(format!("peer {} is no longer configured", session.peer))
    })?;
    match session.role {
        Role::Client => crate::satp::client::step(app, connector, &transfer, &session, peer).await,
        Role::Server => {
            crate::satp::recovery::recover_once(app, peer, &session).await;
            let asserted = session
                .source_lock_id
                .as_deref()
                .map(str::parse::<LockId>)
                .transpose()
                .map_err(|_| StepError::Corrupt("stored lock id".into()))?;
            let source = AnyLedger::Peer(
                crate::satp::peer::PeerLedger::new(app, peer, &connector.key)
                    .with_asserted(asserted),
            );
            let target =
                AnyLedger::Local(LocalLedger::new(app, connector, transfer.target_chain_id));
            step_with(app, connector, transfer, &source, &target, Mode::SatpServer).await
        }
    }
}

/// An exchange's recipient's lock on the target: to the sender, the target
/// amount under the hashlock, expiring no earlier than `targetExpiresAtMs`
/// (the sender's window to claim) and early enough that the recipient can
/// still claim the source after a last-moment claim (the planner's margin).
async fn counterparty_lock(
    app: &App,
    connector: &Connector,
    t: &Transfer,
    source: &impl LedgerAdapter,
    target: &impl LedgerAdapter,
) -> Result<(), StepError> {
    let terms = LockTerms {
        sender: t.recipient,
        recipient: t.sender,
        asset: t.target_asset,
        amount: t.target_amount,
        hashlock: t.hashlock,
        expires_at_ms: t.target_expires_at_ms,
    };
    let Some(lock) = target.find_open_lock(&terms).await? else {
        return Ok(());
    };
    let params = plan_params(&connector.config, now_ms());
    let margin = adapters::planner::claim_margin_ms(
        &source.describe().finality,
        &target.describe().finality,
        &params,
    )
    .map_err(|e| StepError::Corrupt(e.to_string()))?;
    if lock.terms.expires_at_ms > t.source_expires_at_ms.saturating_sub(margin) {
        // Too late an expiry would leave the recipient no time to claim
        // the source; it is not taken (the recipient refunds it later).
        tracing::info!(transfer = %t.id, lock = %lock.id, "an exchange's counter-lock expires too late; ignored");
        return Ok(());
    }
    let next = Transfer {
        state: TransferState::TargetLocked,
        target_lock_id: Some(lock.id),
        ..t.clone()
    };
    advance(
        app,
        t,
        next,
        "target_locked",
        json!({ "lockId": lock.id.to_string(), "by": "recipient" }),
    )
    .await
}

/// Who makes the target lock in [`step_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The engine, from the connector's account.
    Connector,
    /// The engine, but only when the peer's commit-prepare asks
    /// ([`crate::satp::server`]); the engine itself only gives up when it
    /// comes too late.
    SatpServer,
    /// The recipient of an exchange, from its own account: the engine finds
    /// it and checks it leaves the recipient time to claim the source.
    Exchange,
}

/// The connector's state machine over any two adapters (see [`Mode`]).
async fn step_with(
    app: &App,
    connector: &Connector,
    transfer: Transfer,
    source: &impl LedgerAdapter,
    target: &impl LedgerAdapter,
    mode: Mode,
) -> Result<(), StepError> {
    let now = now_ms();
    let t = &transfer;
    match t.state {
        TransferState::AwaitingSourceLock => {
            if let Some(lock) = source.find_open_lock(&sender_lock(t)).await? {
                let detail = json!({ "lockId": lock.id.to_string(), "expiresAtMs": lock.terms.expires_at_ms.to_string() });
                let next = Transfer {
                    state: TransferState::SourceLocked,
                    source_lock_id: Some(lock.id),
                    ..t.clone()
                };
                return advance(app, t, next, "source_locked", detail).await;
            }
            // The receiving side of a session hears of the sender's lock
            // only through the peer's lock-assert: it waits out the peer's
            // finality, clock drift and reaction past the deadline.
            let grace = match mode {
                Mode::SatpServer => {
                    let finality = source.describe().finality;
                    finality
                        .final_ms_max()
                        .saturating_add(finality.clock_drift_ms_max)
                        .saturating_add(reaction_ms(&connector.config))
                }
                Mode::Connector | Mode::Exchange => 0,
            };
            if now >= t.source_lock_by_ms.saturating_add(grace) {
                return advance_to(
                    app,
                    t,
                    TransferState::Cancelled,
                    "cancelled",
                    json!({ "reason": "the sender did not lock by sourceLockByMs" }),
                )
                .await;
            }
            Ok(())
        }
        TransferState::SourceLocked => {
            // A target lock already committed (the process died before it
            // recorded so) is taken up, whatever the clock says.
            if let Some(lock_id) = target_lock_id(target, t).await? {
                let next = Transfer {
                    state: TransferState::TargetLocked,
                    target_lock_id: Some(lock_id),
                    ..t.clone()
                };
                return advance(
                    app,
                    t,
                    next,
                    "target_locked",
                    json!({ "lockId": lock_id.to_string() }),
                )
                .await;
            }
            // Too late to give the recipient its full window: unwind instead.
            if now > target_lock_by(&connector.config, t.source_lock_by_ms) {
                return advance_to(
                    app,
                    t,
                    TransferState::Refunding,
                    "unwinding",
                    json!({ "reason": "the target lock could not be made in time" }),
                )
                .await;
            }
            match mode {
                Mode::Connector => {}
                Mode::SatpServer => return Ok(()),
                Mode::Exchange => {
                    return counterparty_lock(app, connector, t, source, target).await;
                }
            }
            let terms = LockTerms {
                sender: target.account(),
                recipient: t.recipient,
                asset: t.target_asset,
                amount: t.target_amount,
                hashlock: t.hashlock,
                expires_at_ms: t.target_expires_at_ms,
            };
            match target.lock(op(t, "target-lock"), &terms).await? {
                Acted::Done(lock_id) => {
                    let next = Transfer {
                        state: TransferState::TargetLocked,
                        target_lock_id: Some(lock_id),
                        ..t.clone()
                    };
                    advance(
                        app,
                        t,
                        next,
                        "target_locked",
                        json!({ "lockId": lock_id.to_string() }),
                    )
                    .await
                }
                Acted::Refused(rejection) => {
                    advance_to(
                        app,
                        t,
                        TransferState::Refunding,
                        "unwinding",
                        json!({ "reason": format!("the target lock was refused: {rejection}") }),
                    )
                    .await
                }
            }
        }
        TransferState::TargetLocked => {
            let target_lock = lock_of(target, t.target_lock_id).await?;
            match target_lock.map(|l| l.state) {
                Some(LockState::Claimed { preimage }) => {
                    let next = Transfer {
                        state: TransferState::ClaimingSource,
                        preimage: Some(preimage),
                        ..t.clone()
                    };
                    advance(
                        app,
                        t,
                        next,
                        "target_claimed",
                        json!({ "preimage": format!("0x{}", hex::encode(preimage)) }),
                    )
                    .await
                }
                Some(LockState::Locked) if now >= t.target_expires_at_ms => {
                    let detail = json!({ "reason": "the recipient did not claim before the target lock expired" });
                    advance_to(app, t, TransferState::Refunding, "unwinding", detail).await
                }
                Some(LockState::Locked) => Ok(()),
                // Refunded by someone else (anyone may, after expiry), or gone:
                // unwind the source too.
                Some(LockState::Refunded) | None => {
                    let detail = json!({ "reason": "the target lock is no longer open" });
                    advance_to(app, t, TransferState::Refunding, "unwinding", detail).await
                }
            }
        }
        TransferState::ClaimingSource => {
            let (Some(lock_id), Some(preimage)) = (t.source_lock_id, t.preimage) else {
                return Err(StepError::Corrupt(
                    "claiming without lock or preimage".into(),
                ));
            };
            let source_lock = lock_of(source, Some(lock_id)).await?;
            if matches!(
                source_lock.map(|l| l.state),
                Some(LockState::Claimed { .. })
            ) {
                return advance_to(app, t, TransferState::Completed, "completed", json!({})).await;
            }
            match source
                .claim(op(t, "source-claim"), lock_id, preimage)
                .await?
            {
                Acted::Done(()) => {
                    advance_to(app, t, TransferState::Completed, "completed", json!({})).await
                }
                Acted::Refused(rejection)
                    if matches!(
                        lock_of(source, Some(lock_id)).await?.map(|l| l.state),
                        Some(LockState::Claimed { .. })
                    ) =>
                {
                    // Someone else claimed it (anyone may): paid all the same.
                    tracing::info!(transfer = %t.id, %rejection, "the source lock was claimed by another submitter");
                    advance_to(app, t, TransferState::Completed, "completed", json!({})).await
                }
                Acted::Refused(rejection) => {
                    // By the plan this cannot happen; it needs an operator.
                    tracing::error!(transfer = %t.id, %rejection, "the source claim was refused");
                    advance_to(
                        app,
                        t,
                        TransferState::Failed,
                        "failed",
                        json!({ "reason": format!("the source claim was refused: {rejection}") }),
                    )
                    .await
                }
            }
        }
        TransferState::Refunding => {
            // A recipient who claimed at the last moment still gets the
            // connector paid on the source.
            let target_lock = lock_of(target, target_lock_id(target, t).await?).await?;
            if let Some(LockState::Claimed { preimage }) = target_lock.map(|l| l.state) {
                let next = Transfer {
                    state: TransferState::ClaimingSource,
                    preimage: Some(preimage),
                    ..t.clone()
                };
                return advance(
                    app,
                    t,
                    next,
                    "target_claimed",
                    json!({ "preimage": format!("0x{}", hex::encode(preimage)) }),
                )
                .await;
            }
            let target_done =
                refund_when_expired(target, t, "target-refund", target_lock, now).await?;
            // Anyone may refund an expired lock; the source's funds go back to the sender.
            let source_lock = lock_of(source, t.source_lock_id).await?;
            let source_done =
                refund_when_expired(source, t, "source-refund", source_lock, now).await?;
            if target_done && source_done {
                return advance_to(app, t, TransferState::Refunded, "refunded", json!({})).await;
            }
            Ok(())
        }
        TransferState::Completed
        | TransferState::Refunded
        | TransferState::Cancelled
        | TransferState::Failed => Ok(()),
    }
}
