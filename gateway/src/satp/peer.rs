//! The `peer` [`LedgerAdapter`]: the built-in ledger of a peer gateway, as
//! the receiving gateway (G2) sees the source ledger of a SATP transfer.
//!
//! G2 is a participant of the peer's ledger like any other: the sender's
//! lock pays G2's account there, and G2 claims it (or, after expiry,
//! refunds it to the sender) with transactions it signs itself and submits
//! to the peer's ledger API (`POST /v1/ledger/transactions`) with the token
//! the peer issued it (`[[peers]].token`). Each action is written ahead to
//! `transfer_actions` before it is sent, exactly as the local adapter does,
//! so a retry after a crash sends the very same transaction (a duplicate
//! answers like the original) unless its nonce went to another meanwhile.
//!
//! Locks on the peer's ledger are made by the peer, never through this
//! adapter: `lock` refuses, and the sender's lock is learnt from the
//! lock-assert message, whose evidence was checked against the peer's
//! pinned block key ([`super::evidence`]); `find_open_lock` answers with
//! that lock. An action counts as done only when its transaction's
//! inclusion under a header signed by the pinned block key is shown; a
//! lock's *status* (`lock_status`) is read from the peer's API as it answers
//! (the settling transaction is not named there), so a gateway that must not
//! trust the network path to its peer terminates TLS in front of both. The crash tests' fault points (`transfers.fault_step`) halt
//! its actions as they do the local adapter's. Finality: the peer's stated commit bound plus the network,
//! from `[[peers]].commit_ms_max` and `clock_drift_ms_max`.

use adapters::ledger::{
    Acted, AdapterError, EventPage, LedgerAdapter, LedgerDescription, LedgerKind, LockInfo,
    LockState, LockTerms, OperationKey,
};
use ledger_core::{Address, LockId, Preimage, SigningKey, Transaction, TxBody, TxHash};
use reqwest::StatusCode;
use serde_json::Value;

use super::Peer;
use super::store::SatpStore;
use crate::app::App;
use crate::dto::SignedTransactionDto;
use crate::sequencer::now_ms;
use crate::transfers::fault::{self, FaultPoint};
use crate::transfers::store::{StoredAction, TransferStore};
use crate::views::{AccountView, AssetPage, BlockView, HtlcView, TransactionView};

/// A peer's ledger, acted on from this gateway's account.
pub struct PeerLedger<'a> {
    app: &'a App,
    peer: &'a Peer,
    key: &'a SigningKey,
    asserted: Option<LockId>,
}

impl<'a> PeerLedger<'a> {
    /// The adapter of `peer`'s ledger, acting with `key`.
    pub fn new(app: &'a App, peer: &'a Peer, key: &'a SigningKey) -> Self {
        Self {
            app,
            peer,
            key,
            asserted: None,
        }
    }

    /// The same, knowing the lock asserted in the transfer's session.
    pub fn with_asserted(mut self, lock: Option<LockId>) -> Self {
        self.asserted = lock;
        self
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.peer.url)
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let request = crate::telemetry::traced(self.app.satp.http.get(self.url(path)));
        match &self.peer.token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        }
    }

    async fn next_nonce(&self) -> Result<u64, AdapterError> {
        let response = self
            .get(&format!(
                "/v1/ledger/accounts/{}?chainId={}",
                self.key.address(),
                self.peer.chain_id.get()
            ))
            .send()
            .await
            .map_err(unreachable)?;
        match response.status() {
            StatusCode::OK => {
                let account: AccountView = response.json().await.map_err(unreachable)?;
                account
                    .next_nonce
                    .parse()
                    .map_err(|_| AdapterError::Corrupt("the peer's nonce is not a number".into()))
            }
            StatusCode::NOT_FOUND => Ok(0),
            status => Err(AdapterError::Unavailable(format!(
                "peer {} answered {status} for the account",
                self.peer.gateway_id
            ))),
        }
    }

    /// A committed transaction the token may read, checked against the
    /// pinned block key (`None`: not committed, or not visible).
    async fn proven_transaction(
        &self,
        hash: TxHash,
    ) -> Result<Option<(ledger_core::SignedTransaction, Value)>, AdapterError> {
        let response = self
            .get(&format!(
                "/v1/ledger/transactions/{hash}?chainId={}",
                self.peer.chain_id.get()
            ))
            .send()
            .await
            .map_err(unreachable)?;
        match response.status() {
            StatusCode::OK => {
                let view: TransactionView = response.json().await.map_err(unreachable)?;
                let evidence = serde_json::json!({
                    "transaction": view.transaction,
                    "proof": view.proof,
                });
                let signed = super::evidence::verify_inclusion(
                    &evidence,
                    self.peer.chain_id,
                    &self.peer.block_producers,
                )
                .map_err(|e| AdapterError::Corrupt(format!("the peer's proof: {e}")))?;
                if signed.transaction.hash() != hash {
                    return Err(AdapterError::Corrupt(
                        "the peer answered with another transaction".into(),
                    ));
                }
                Ok(Some((signed, evidence)))
            }
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(AdapterError::Unavailable(format!(
                "peer {} answered {status} for a transaction",
                self.peer.gateway_id
            ))),
        }
    }

    /// True once transaction `hash` is committed on the peer's ledger, as
    /// proven by its inclusion under a header signed by the pinned block key
    /// (an answer alone proves nothing).
    async fn committed(&self, hash: TxHash) -> Result<bool, AdapterError> {
        Ok(self.proven_transaction(hash).await?.is_some())
    }

    /// Signs (or reuses the written-ahead) action under `op` and submits it
    /// to the peer's ledger.
    async fn act(&self, op: OperationKey<'_>, body: TxBody) -> Result<Acted<()>, AdapterError> {
        if self.peer.token.is_none() {
            return Err(AdapterError::NotHere(format!(
                "no token for the ledger of peer {}",
                self.peer.gateway_id
            )));
        }
        let store = &self.app.store;
        let chain = self.peer.chain_id;
        // One action at a time from this gateway's account on the peer's ledger.
        let account_lock = self.app.account_lock(chain);
        let _serial = account_lock.lock().await;
        let next_nonce = self.next_nonce().await?;
        let mut signed = None;
        if let Some(stored) = store
            .action(op.transfer_id, op.action)
            .await
            .map_err(|e| AdapterError::Unavailable(e.to_string()))?
        {
            if self.committed(stored.tx_hash).await? {
                return Ok(Acted::Done(()));
            }
            let dto: SignedTransactionDto = serde_json::from_str(&stored.signed_tx)
                .map_err(|e| AdapterError::Corrupt(e.to_string()))?;
            let tx = dto
                .to_domain()
                .map_err(|e| AdapterError::Corrupt(e.to_string()))?;
            if tx.transaction.nonce >= next_nonce {
                signed = Some(dto);
            }
        }
        let dto = match signed {
            Some(dto) => dto,
            None => {
                let tx = Transaction {
                    chain_id: chain,
                    from: self.key.address(),
                    nonce: next_nonce,
                    body,
                };
                let signed = tx
                    .sign(self.key)
                    .map_err(|e| AdapterError::Corrupt(e.to_string()))?;
                let dto = SignedTransactionDto::from_domain(&signed);
                let action = StoredAction {
                    chain_id: chain,
                    tx_hash: signed.transaction.hash(),
                    signed_tx: serde_json::to_string(&dto)
                        .map_err(|e| AdapterError::Corrupt(e.to_string()))?,
                };
                let fault_step = self.app.connector.config.fault_step.as_ref();
                fault::reach(
                    fault_step,
                    FaultPoint::BeforeWriteAhead,
                    op.action,
                    op.transfer_id,
                )
                .await;
                store
                    .put_action(op.transfer_id, op.action, &action, now_ms())
                    .await
                    .map_err(|e| AdapterError::Unavailable(e.to_string()))?;
                fault::reach(
                    fault_step,
                    FaultPoint::AfterWriteAhead,
                    op.action,
                    op.transfer_id,
                )
                .await;
                dto
            }
        };
        let hash = dto
            .to_domain()
            .map_err(|e| AdapterError::Corrupt(e.to_string()))?
            .transaction
            .hash();
        let mut request =
            crate::telemetry::traced(self.app.satp.http.post(self.url("/v1/ledger/transactions")))
                .json(&dto);
        if let Some(token) = &self.peer.token {
            request = request.bearer_auth(token.expose());
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        if status == StatusCode::CREATED {
            // Done only once the ledger proves it, not because it said so.
            if !self.committed(hash).await? {
                return Err(AdapterError::Unavailable(
                    "the peer acknowledged a transaction it cannot prove; retrying".into(),
                ));
            }
            let fault_step = self.app.connector.config.fault_step.as_ref();
            fault::reach(
                fault_step,
                FaultPoint::AfterSubmit,
                op.action,
                op.transfer_id,
            )
            .await;
            return Ok(Acted::Done(()));
        }
        let problem: Value = response.json().await.unwrap_or_default();
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            // A duplicate of a committed transaction is refused as a nonce
            // replay: it is done all the same.
            if self.committed(hash).await? {
                return Ok(Acted::Done(()));
            }
            let kind = problem.get("type").and_then(Value::as_str).unwrap_or("");
            if kind.ends_with(":nonce-replay") || kind.ends_with(":nonce-gap") {
                return Err(AdapterError::Unavailable(
                    "the nonce moved on; signing anew on the next try".into(),
                ));
            }
            let detail = problem
                .get("detail")
                .and_then(Value::as_str)
                .unwrap_or("refused");
            return Ok(Acted::Refused(format!("{kind}: {detail}")));
        }
        Err(AdapterError::Unavailable(format!(
            "peer {} answered {status}: {problem}",
            self.peer.gateway_id
        )))
    }
}

fn unreachable(error: reqwest::Error) -> AdapterError {
    AdapterError::Unavailable(format!("peer unreachable: {error}"))
}

fn lock_info(view: &HtlcView) -> Result<LockInfo, AdapterError> {
    let bad = |what: &str| AdapterError::Corrupt(format!("the peer's HTLC {what}"));
    let address = |text: &str| text.parse::<Address>().map_err(|_| bad("address"));
    let state = match view.status.as_str() {
        "locked" => LockState::Locked,
        "refunded" => LockState::Refunded,
        "claimed" => {
            let mut preimage = [0u8; 32];
            hex::decode_to_slice(
                view.preimage
                    .as_deref()
                    .unwrap_or_default()
                    .trim_start_matches("0x"),
                &mut preimage,
            )
            .map_err(|_| bad("preimage"))?;
            LockState::Claimed { preimage }
        }
        _ => return Err(bad("status")),
    };
    let terms = LockTerms {
        sender: address(&view.sender)?,
        recipient: address(&view.recipient)?,
        asset: view.asset.parse().map_err(|_| bad("asset"))?,
        amount: view.amount.parse().map_err(|_| bad("amount"))?,
        hashlock: view.hashlock.parse().map_err(|_| bad("hashlock"))?,
        expires_at_ms: view.expires_at_ms.parse().map_err(|_| bad("expiry"))?,
    };
    if let LockState::Claimed { preimage } = state
        && ledger_core::hash::sha256(&preimage) != *terms.hashlock.as_bytes()
    {
        return Err(bad("preimage does not open its hashlock"));
    }
    Ok(LockInfo {
        id: view.lock_id.parse().map_err(|_| bad("id"))?,
        terms,
        state,
    })
}

impl LedgerAdapter for PeerLedger<'_> {
    fn account(&self) -> ledger_core::Address {
        self.key.address()
    }

    fn describe(&self) -> LedgerDescription {
        LedgerDescription {
            chain_id: self.peer.chain_id,
            kind: LedgerKind::Peer,
            finality: self.peer.finality,
        }
    }

    async fn lock(
        &self,
        _op: OperationKey<'_>,
        _terms: &LockTerms,
    ) -> Result<Acted<LockId>, AdapterError> {
        Err(AdapterError::NotHere(
            "locks on a peer's ledger are made by the peer".into(),
        ))
    }

    async fn claim(
        &self,
        op: OperationKey<'_>,
        lock: LockId,
        preimage: [u8; 32],
    ) -> Result<Acted<()>, AdapterError> {
        let preimage =
            Preimage::new(preimage.to_vec()).map_err(|e| AdapterError::Corrupt(e.to_string()))?;
        self.act(
            op,
            TxBody::HtlcClaim {
                lock_id: lock,
                preimage,
            },
        )
        .await
    }

    async fn refund(&self, op: OperationKey<'_>, lock: LockId) -> Result<Acted<()>, AdapterError> {
        self.act(op, TxBody::HtlcRefund { lock_id: lock }).await
    }

    async fn committed_lock(&self, _op: OperationKey<'_>) -> Result<Option<LockId>, AdapterError> {
        Ok(None)
    }

    async fn assets(&self) -> Result<Vec<ledger_core::AssetCode>, AdapterError> {
        let mut codes = Vec::new();
        let mut cursor = String::new();
        loop {
            let mut path = format!(
                "/v1/ledger/assets?chainId={}&limit=200",
                self.peer.chain_id.get()
            );
            if !cursor.is_empty() {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let response = self.get(&path).send().await.map_err(unreachable)?;
            if response.status() != StatusCode::OK {
                return Err(AdapterError::Unavailable(format!(
                    "peer {} answered {} for its assets",
                    self.peer.gateway_id,
                    response.status()
                )));
            }
            let page: AssetPage = response.json().await.map_err(unreachable)?;
            for asset in &page.items {
                codes.push(
                    asset
                        .code
                        .parse()
                        .map_err(|_| AdapterError::Corrupt("the peer's asset code".into()))?,
                );
            }
            match page.next_cursor {
                Some(next) => cursor = next,
                None => return Ok(codes),
            }
        }
    }

    async fn events_since(
        &self,
        checkpoint: u64,
        blocks_max: u32,
    ) -> Result<EventPage, AdapterError> {
        let mut events = Vec::new();
        let mut height = checkpoint;
        while height < checkpoint.saturating_add(u64::from(blocks_max)) {
            let response = self
                .get(&format!(
                    "/v1/ledger/blocks/{height}?chainId={}",
                    self.peer.chain_id.get()
                ))
                .send()
                .await
                .map_err(unreachable)?;
            match response.status() {
                StatusCode::OK => {}
                // Past the peer's tip.
                StatusCode::NOT_FOUND => break,
                status => {
                    return Err(AdapterError::Unavailable(format!(
                        "peer {} answered {status} for block {height}",
                        self.peer.gateway_id
                    )));
                }
            }
            let block: BlockView = response.json().await.map_err(unreachable)?;
            for hash in &block.transactions {
                let hash: TxHash = hash
                    .parse()
                    .map_err(|_| AdapterError::Corrupt("the peer's transaction hash".into()))?;
                // Transactions the token may not read are not this gateway's
                // business; the ones it reads are checked against the block key.
                if let Some((signed, _)) = self.proven_transaction(hash).await?
                    && let Some(event) =
                        crate::transfers::local::lock_event(&signed.transaction, hash)
                {
                    events.push((height, event));
                }
            }
            height += 1;
        }
        Ok(EventPage {
            events,
            next_checkpoint: height,
        })
    }

    async fn prove_lock(&self, id: LockId) -> Result<Option<Value>, AdapterError> {
        match self
            .proven_transaction(TxHash::from_bytes(*id.as_bytes()))
            .await?
        {
            Some((signed, evidence))
                if matches!(signed.transaction.body, TxBody::HtlcLock { .. }) =>
            {
                Ok(Some(evidence))
            }
            _ => Ok(None),
        }
    }

    async fn lock_status(&self, id: LockId) -> Result<Option<LockInfo>, AdapterError> {
        let response = self
            .get(&format!(
                "/v1/ledger/htlcs/{id}?chainId={}",
                self.peer.chain_id.get()
            ))
            .send()
            .await
            .map_err(unreachable)?;
        match response.status() {
            StatusCode::OK => {
                let view: HtlcView = response.json().await.map_err(unreachable)?;
                Ok(Some(lock_info(&view)?))
            }
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(AdapterError::Unavailable(format!(
                "peer {} answered {status} for an HTLC",
                self.peer.gateway_id
            ))),
        }
    }

    async fn find_open_lock(&self, terms: &LockTerms) -> Result<Option<LockInfo>, AdapterError> {
        // Only a lock asserted in the session, with checked evidence, counts.
        let Some(id) = self.asserted else {
            return Ok(None);
        };
        Ok(self.lock_status(id).await?.filter(|lock| {
            lock.state == LockState::Locked
                && lock.terms.sender == terms.sender
                && lock.terms.recipient == terms.recipient
                && lock.terms.asset == terms.asset
                && lock.terms.amount == terms.amount
                && lock.terms.hashlock == terms.hashlock
                && lock.terms.expires_at_ms >= terms.expires_at_ms
        }))
    }
}

/// The sender's lock asserted (and verified) in the session of transfer `id`.
pub async fn asserted_lock(app: &App, transfer_id: &str) -> Result<Option<LockId>, AdapterError> {
    let session = app
        .store
        .session_of_transfer(transfer_id)
        .await
        .map_err(|e| AdapterError::Unavailable(e.to_string()))?;
    session
        .and_then(|s| s.source_lock_id)
        .map(|id| {
            id.parse()
                .map_err(|_| AdapterError::Corrupt("stored lock id".into()))
        })
        .transpose()
}
