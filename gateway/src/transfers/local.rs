//! The `local` [`LedgerAdapter`]: one of this gateway's built-in ledgers,
//! seen by the transfer engine. It drives the gateway's own store and
//! sequencer, so it lives in the gateway crate.
//!
//! Every action is a transaction from the connector's account, signed and
//! written ahead to `transfer_actions` under its [`OperationKey`] before it
//! is submitted. A repeated call with the same key finds that record: if the
//! transaction committed, the action is done; if not, the very same signed
//! transaction is submitted again (a duplicate answers like the first time),
//! unless its nonce went to another transaction meanwhile, in which case it
//! is signed anew with the next nonce and the record replaced. The lock id of
//! a built-in ledger is the hash of the locking transaction, so
//! [`LedgerAdapter::committed_lock`] reads it from the record.
//!
//! Fault injection (see [`super::fault`]) halts an action before the
//! write-ahead, after it, and after the ledger committed.

use adapters::finality::FinalityModel;
use adapters::ledger::{
    Acted, AdapterError, EventPage, LedgerAdapter, LedgerDescription, LedgerKind, LockEvent,
    LockInfo, LockState, LockTerms, OperationKey,
};
use ledger_core::{
    ChainId, Htlc, HtlcStatus, LockId, Outcome, Preimage, Rejection, Transaction, TxBody, TxHash,
};

use super::Connector;
use super::fault::{self, FaultPoint};
use super::store::{LockWanted, StoredAction, TransferStore};
use crate::app::App;
use crate::dto::SignedTransactionDto;
use crate::sequencer::now_ms;
use crate::store::{LedgerStore, StoreError};

/// A built-in ledger of this gateway, acted on from the connector's account.
pub struct LocalLedger<'a> {
    app: &'a App,
    connector: &'a Connector,
    chain: ChainId,
}

impl<'a> LocalLedger<'a> {
    /// The adapter of hosted ledger `chain`.
    pub fn new(app: &'a App, connector: &'a Connector, chain: ChainId) -> Self {
        Self {
            app,
            connector,
            chain,
        }
    }

    /// Signs (or reuses the signed, written-ahead) action under `op` and
    /// submits it; `Done` carries the hash of the transaction that committed.
    async fn act(&self, op: OperationKey<'_>, body: TxBody) -> Result<Acted<TxHash>, AdapterError> {
        let (app, connector, chain) = (self.app, self.connector, self.chain);
        let ledger = app
            .ledger(chain)
            .ok_or_else(|| AdapterError::NotHere(format!("ledger {chain} is not hosted")))?;
        let sequencer = ledger.producer.sequencer().ok_or_else(|| {
            AdapterError::NotHere(format!("not the block producer of ledger {chain}"))
        })?;
        let fault_step = connector.config.fault_step.as_ref();
        // One action at a time from the connector's account on this ledger.
        let account_lock = app.account_lock(chain);
        let _serial = account_lock.lock().await;
        // The nonce is read before the written-ahead action is looked at, so
        // an action that commits in between is seen as committed, never
        // re-signed.
        let account = app
            .store
            .account(chain, connector.key.address())
            .await
            .map_err(unavailable)?;
        let mut signed = None;
        if let Some(stored) = app
            .store
            .action(op.transfer_id, op.action)
            .await
            .map_err(unavailable)?
        {
            if app
                .store
                .transaction(chain, stored.tx_hash)
                .await
                .map_err(unavailable)?
                .is_some()
            {
                return Ok(Acted::Done(stored.tx_hash));
            }
            let dto: SignedTransactionDto = serde_json::from_str(&stored.signed_tx)
                .map_err(|e| AdapterError::Corrupt(e.to_string()))?;
            signed = Some(
                dto.to_domain()
                    .map_err(|e| AdapterError::Corrupt(e.to_string()))?,
            );
        }
        let stale = signed
            .as_ref()
            .is_some_and(|s| s.transaction.nonce < account.next_nonce);
        let signed = match signed {
            Some(signed) if !stale => signed,
            _ => {
                let tx = Transaction {
                    chain_id: chain,
                    from: connector.key.address(),
                    nonce: account.next_nonce,
                    body,
                };
                let signed = tx
                    .sign(&connector.key)
                    .map_err(|e| AdapterError::Corrupt(e.to_string()))?;
                let action = StoredAction {
                    chain_id: chain,
                    tx_hash: signed.transaction.hash(),
                    signed_tx: serde_json::to_string(&SignedTransactionDto::from_domain(&signed))
                        .map_err(|e| AdapterError::Corrupt(e.to_string()))?,
                };
                fault::reach(
                    fault_step,
                    FaultPoint::BeforeWriteAhead,
                    op.action,
                    op.transfer_id,
                )
                .await;
                app.store
                    .put_action(op.transfer_id, op.action, &action, now_ms())
                    .await
                    .map_err(unavailable)?;
                fault::reach(
                    fault_step,
                    FaultPoint::AfterWriteAhead,
                    op.action,
                    op.transfer_id,
                )
                .await;
                signed
            }
        };
        let verified = signed
            .verify()
            .map_err(|e| AdapterError::Corrupt(e.to_string()))?;
        let hash = verified.hash();
        let receipt = sequencer
            .submit(vec![verified])
            .await
            .map_err(|e| AdapterError::Unavailable(e.to_string()))?;
        match receipt.outcomes.first() {
            Some(Outcome::Applied) => {
                fault::reach(
                    fault_step,
                    FaultPoint::AfterSubmit,
                    op.action,
                    op.transfer_id,
                )
                .await;
                Ok(Acted::Done(hash))
            }
            Some(Outcome::Rejected(Rejection::NonceReplay { .. }))
                if app
                    .store
                    .transaction(chain, hash)
                    .await
                    .map_err(unavailable)?
                    .is_some() =>
            {
                Ok(Acted::Done(hash))
            }
            Some(Outcome::Rejected(rejection)) => Ok(Acted::Refused(rejection.to_string())),
            None => Err(AdapterError::Unavailable("no outcome".into())),
        }
    }
}

/// The lock event a committed transaction is, if any (a built-in ledger's
/// blocks hold applied transactions only).
pub(crate) fn lock_event(tx: &Transaction, hash: TxHash) -> Option<LockEvent> {
    match &tx.body {
        TxBody::HtlcLock {
            asset,
            recipient,
            amount,
            hashlock,
            expires_at_ms,
        } => Some(LockEvent::Locked(LockInfo {
            id: LockId::from(hash),
            terms: LockTerms {
                sender: tx.from,
                recipient: *recipient,
                asset: *asset,
                amount: *amount,
                hashlock: *hashlock,
                expires_at_ms: *expires_at_ms,
            },
            state: LockState::Locked,
        })),
        TxBody::HtlcClaim { lock_id, preimage } => {
            let preimage: [u8; 32] = preimage.as_bytes().try_into().ok()?;
            Some(LockEvent::Claimed {
                id: *lock_id,
                preimage,
            })
        }
        TxBody::HtlcRefund { lock_id } => Some(LockEvent::Refunded { id: *lock_id }),
        _ => None,
    }
}

fn unavailable(error: StoreError) -> AdapterError {
    AdapterError::Unavailable(error.to_string())
}

fn info(htlc: Htlc) -> LockInfo {
    LockInfo {
        id: htlc.id,
        terms: LockTerms {
            sender: htlc.sender,
            recipient: htlc.recipient,
            asset: htlc.asset,
            amount: htlc.amount,
            hashlock: htlc.hashlock,
            expires_at_ms: htlc.expires_at_ms,
        },
        state: match htlc.status {
            HtlcStatus::Locked => LockState::Locked,
            HtlcStatus::Claimed { preimage } => LockState::Claimed { preimage },
            HtlcStatus::Refunded => LockState::Refunded,
        },
    }
}

impl LedgerAdapter for LocalLedger<'_> {
    fn account(&self) -> ledger_core::Address {
        self.connector.key.address()
    }

    fn describe(&self) -> LedgerDescription {
        LedgerDescription {
            chain_id: self.chain,
            kind: LedgerKind::Local,
            // Built-in ledgers of one gateway share its clock: no drift.
            finality: FinalityModel::built_in(self.connector.config.commit_ms_max, 0),
        }
    }

    async fn lock(
        &self,
        op: OperationKey<'_>,
        terms: &LockTerms,
    ) -> Result<Acted<LockId>, AdapterError> {
        if terms.sender != self.connector.key.address() {
            return Err(AdapterError::Corrupt(
                "the local adapter locks only from the connector's account".into(),
            ));
        }
        let body = TxBody::HtlcLock {
            asset: terms.asset,
            recipient: terms.recipient,
            amount: terms.amount,
            hashlock: terms.hashlock,
            expires_at_ms: terms.expires_at_ms,
        };
        // A built-in lock's id is the hash of its locking transaction.
        Ok(self.act(op, body).await?.map(LockId::from))
    }

    async fn claim(
        &self,
        op: OperationKey<'_>,
        lock: LockId,
        preimage: [u8; 32],
    ) -> Result<Acted<()>, AdapterError> {
        let preimage =
            Preimage::new(preimage.to_vec()).map_err(|e| AdapterError::Corrupt(e.to_string()))?;
        let body = TxBody::HtlcClaim {
            lock_id: lock,
            preimage,
        };
        Ok(self.act(op, body).await?.map(|_| ()))
    }

    async fn refund(&self, op: OperationKey<'_>, lock: LockId) -> Result<Acted<()>, AdapterError> {
        Ok(self
            .act(op, TxBody::HtlcRefund { lock_id: lock })
            .await?
            .map(|_| ()))
    }

    async fn committed_lock(&self, op: OperationKey<'_>) -> Result<Option<LockId>, AdapterError> {
        let store = &self.app.store;
        match store
            .action(op.transfer_id, op.action)
            .await
            .map_err(unavailable)?
        {
            Some(action)
                if action.chain_id == self.chain
                    && store
                        .transaction(action.chain_id, action.tx_hash)
                        .await
                        .map_err(unavailable)?
                        .is_some() =>
            {
                Ok(Some(LockId::from(action.tx_hash)))
            }
            _ => Ok(None),
        }
    }

    async fn lock_status(&self, id: LockId) -> Result<Option<LockInfo>, AdapterError> {
        Ok(self
            .app
            .store
            .htlc(self.chain, id)
            .await
            .map_err(unavailable)?
            .map(info))
    }

    async fn assets(&self) -> Result<Vec<ledger_core::AssetCode>, AdapterError> {
        let mut codes = Vec::new();
        loop {
            let page = self
                .app
                .store
                .assets(self.chain, codes.last().copied(), 500)
                .await
                .map_err(unavailable)?;
            let full = page.len() == 500;
            codes.extend(page.into_iter().map(|a| a.asset.code));
            if !full {
                return Ok(codes);
            }
        }
    }

    async fn events_since(
        &self,
        checkpoint: u64,
        blocks_max: u32,
    ) -> Result<EventPage, AdapterError> {
        let store = &self.app.store;
        let tip = store.tip(self.chain).await.map_err(unavailable)?;
        let end = tip
            .next_height
            .min(checkpoint.saturating_add(u64::from(blocks_max)));
        let mut events = Vec::new();
        for height in checkpoint..end {
            for stored in store
                .block_transactions(self.chain, height)
                .await
                .map_err(unavailable)?
            {
                if let Some(event) = lock_event(&stored.signed.transaction, stored.hash) {
                    events.push((height, event));
                }
            }
        }
        Ok(EventPage {
            events,
            next_checkpoint: end.max(checkpoint),
        })
    }

    async fn prove_lock(&self, id: LockId) -> Result<Option<serde_json::Value>, AdapterError> {
        let hash = TxHash::from_bytes(*id.as_bytes());
        let Some(stored) = self
            .app
            .store
            .transaction(self.chain, hash)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        if !matches!(stored.signed.transaction.body, TxBody::HtlcLock { .. }) {
            return Ok(None);
        }
        crate::satp::evidence::inclusion(self.app, self.chain, hash)
            .await
            .map_err(unavailable)
    }

    async fn find_open_lock(&self, terms: &LockTerms) -> Result<Option<LockInfo>, AdapterError> {
        Ok(self
            .app
            .store
            .find_open_lock(&LockWanted::new(self.chain, terms))
            .await
            .map_err(unavailable)?
            .map(info))
    }
}
