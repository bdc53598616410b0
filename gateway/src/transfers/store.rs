//! Persistence of cross-ledger transfers: the transfer row (with an
//! optimistic `version`), its append-only event history, and the ledger
//! actions the engine signs before it submits them (write-ahead). One
//! implementation for both dialects, generated like `crate::store`'s.

use std::future::Future;

use ledger_core::{Address, ChainId, Hashlock, Htlc, LockId, TxHash};

use super::{Transfer, TransferEvent, TransferState};
use crate::store::{
    AnyStore, PgStore, RowGet, SELECT_HTLC, SqliteStore, StoreError, amount, asset_code, bytes,
    const_format, corrupt, htlc_from_row, sqlite_sql, to_i64, to_u64,
};

/// A ledger action written ahead of its submission.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAction {
    /// The ledger.
    pub chain_id: ChainId,
    /// The transaction's hash.
    pub tx_hash: TxHash,
    /// The signed transaction, in its wire form (JSON).
    pub signed_tx: String,
}

/// The transfer store contract.
pub trait TransferStore: Send + Sync {
    /// Inserts a new transfer with its first event, unless the tenant's
    /// unfinished transfers to the same target asset, with this one, would
    /// hold more than `locked_max` (checked and inserted atomically), or the
    /// hashlock already serves a transfer; nothing is written then.
    fn create_transfer(
        &self,
        transfer: &Transfer,
        event: &TransferEvent,
        locked_max: u128,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;
    /// A transfer.
    fn transfer(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Transfer>, StoreError>> + Send;
    /// Transfers of a tenant, newest first, created before `before_ms` (a cursor).
    fn transfers(
        &self,
        tenant: &str,
        before: Option<(u64, String)>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Transfer>, StoreError>> + Send;
    /// A tenant's transfers changed at or after `since_ms`, oldest change first.
    fn transfers_changed_since(
        &self,
        tenant: &str,
        since_ms: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Transfer>, StoreError>> + Send;
    /// Transfers not in a final state, in creation order, after `after`
    /// (a `(created_at_ms, id)` cursor), at most `limit`.
    fn active_transfers(
        &self,
        after: Option<(u64, String)>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Transfer>, StoreError>> + Send;
    /// Writes `transfer` (whose `version` is one more than `expected_version`)
    /// and appends `event`, in one database transaction; false when another
    /// writer changed the transfer first (nothing is written then).
    fn update_transfer(
        &self,
        transfer: &Transfer,
        expected_version: i64,
        event: &TransferEvent,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// A transfer's events in order.
    fn transfer_events(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Vec<TransferEvent>, StoreError>> + Send;
    /// Records (or replaces) the action of `kind` before it is submitted.
    fn put_action(
        &self,
        transfer_id: &str,
        kind: &str,
        action: &StoredAction,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The recorded action of `kind`.
    fn action(
        &self,
        transfer_id: &str,
        kind: &str,
    ) -> impl Future<Output = Result<Option<StoredAction>, StoreError>> + Send;
    /// The transfers carrying `reference`, oldest first.
    fn transfers_by_reference(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<Vec<Transfer>, StoreError>> + Send;
    /// An open HTLC with exactly these terms (expiring no earlier than asked).
    fn find_open_lock(
        &self,
        wanted: &LockWanted,
    ) -> impl Future<Output = Result<Option<Htlc>, StoreError>> + Send;
}

/// What creating a transfer came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Created.
    Created,
    /// The tenant's locked-value limit would be passed.
    LimitExceeded,
    /// The hashlock already serves a transfer from this source ledger.
    HashlockInUse,
}

/// The terms of the sender's lock a transfer waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockWanted {
    /// The ledger.
    pub chain_id: ChainId,
    /// Who locks.
    pub sender: Address,
    /// Who is paid on claim (the connector).
    pub recipient: Address,
    /// The asset.
    pub asset: ledger_core::AssetCode,
    /// Exactly this amount.
    pub amount: ledger_core::Amount,
    /// The hashlock.
    pub hashlock: Hashlock,
    /// Expiring no earlier than this.
    pub expires_at_ms_min: u64,
}

impl LockWanted {
    /// A lock on `chain` on `terms`, expiring no earlier than theirs.
    pub fn new(chain_id: ChainId, terms: &adapters::ledger::LockTerms) -> Self {
        Self {
            chain_id,
            sender: terms.sender,
            recipient: terms.recipient,
            asset: terms.asset,
            amount: terms.amount,
            hashlock: terms.hashlock,
            expires_at_ms_min: terms.expires_at_ms,
        }
    }
}

const SELECT_TRANSFER: &str = "SELECT id, kind, target_amount::text AS target_amount, tenant, state, source_chain_id, target_chain_id, source_asset, target_asset, amount::text AS amount, sender, recipient, connector, hashlock, source_lock_by_ms, source_expires_at_ms, target_expires_at_ms, source_lock_id, target_lock_id, preimage, created_at_ms, updated_at_ms, version, reference, trace_parent FROM transfers";

fn chain(value: i64) -> Result<ChainId, StoreError> {
    ChainId::new(to_u64(value, "chain id")?).map_err(corrupt)
}

fn transfer_from_row(row: &impl RowGet) -> Result<Transfer, StoreError> {
    let lock = |column: &str| -> Result<Option<LockId>, StoreError> {
        row.get_opt_bytes(column)?
            .map(|b| bytes(b, column).map(LockId::from_bytes))
            .transpose()
    };
    let amount_value = amount(&row.get_string("amount")?)?;
    Ok(Transfer {
        id: row.get_string("id")?,
        kind: super::TransferKind::from_name(&row.get_string("kind")?)
            .ok_or_else(|| corrupt("transfer kind"))?,
        target_amount: match row.get_opt_string("target_amount")? {
            Some(text) => amount(&text)?,
            None => amount_value,
        },
        tenant: row.get_string("tenant")?,
        state: TransferState::from_name(&row.get_string("state")?)
            .ok_or_else(|| corrupt("transfer state"))?,
        source_chain_id: chain(row.get_i64("source_chain_id")?)?,
        target_chain_id: chain(row.get_i64("target_chain_id")?)?,
        source_asset: asset_code(&row.get_string("source_asset")?)?,
        target_asset: asset_code(&row.get_string("target_asset")?)?,
        amount: amount_value,
        sender: Address::from_bytes(bytes(row.get_bytes("sender")?, "sender")?),
        recipient: Address::from_bytes(bytes(row.get_bytes("recipient")?, "recipient")?),
        connector: Address::from_bytes(bytes(row.get_bytes("connector")?, "connector")?),
        hashlock: Hashlock::from_bytes(bytes(row.get_bytes("hashlock")?, "hashlock")?),
        source_lock_by_ms: to_u64(row.get_i64("source_lock_by_ms")?, "time")?,
        source_expires_at_ms: to_u64(row.get_i64("source_expires_at_ms")?, "time")?,
        target_expires_at_ms: to_u64(row.get_i64("target_expires_at_ms")?, "time")?,
        source_lock_id: lock("source_lock_id")?,
        target_lock_id: lock("target_lock_id")?,
        preimage: row
            .get_opt_bytes("preimage")?
            .map(|b| bytes(b, "preimage"))
            .transpose()?,
        created_at_ms: to_u64(row.get_i64("created_at_ms")?, "time")?,
        updated_at_ms: to_u64(row.get_i64("updated_at_ms")?, "time")?,
        version: row.get_i64("version")?,
        reference: row.get_opt_string("reference")?,
        trace_parent: row.get_opt_string("trace_parent")?,
    })
}

macro_rules! impl_transfer_store {
    ($store:ident, $conn:ty, $dialect_pg:expr) => {
        impl $store {
            fn tsql(sql: &'static str) -> &'static str {
                if $dialect_pg { sql } else { sqlite_sql(sql) }
            }

            async fn insert_event(db: &mut $conn, id: &str, seq: i64, event: &TransferEvent) -> Result<(), StoreError> {
                sqlx::query("INSERT INTO transfer_events (transfer_id, seq, at_ms, kind, detail) VALUES ($1, $2, $3, $4, $5)")
                    .bind(id)
                    .bind(seq)
                    .bind(to_i64(event.at_ms, "time")?)
                    .bind(&event.kind)
                    .bind(event.detail.to_string())
                    .execute(&mut *db)
                    .await?;
                Ok(())
            }
        }

        impl TransferStore for $store {
            async fn create_transfer(&self, t: &Transfer, event: &TransferEvent, locked_max: u128) -> Result<Created, StoreError> {
                // One tenant's creations are serialised so the limit holds.
                let mut db = if $dialect_pg {
                    self.pool().begin().await?
                } else {
                    self.pool().begin_with("BEGIN IMMEDIATE").await?
                };
                if $dialect_pg {
                    let digest = ledger_core::hash::sha256(t.tenant.as_bytes());
                    let mut eight = [0u8; 8];
                    eight.copy_from_slice(&digest[..8]);
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(i64::from_be_bytes(eight))
                        .execute(&mut *db)
                        .await?;
                }
                let rows = sqlx::query(Self::tsql("SELECT amount::text AS amount FROM transfers WHERE tenant = $1 AND target_chain_id = $2 AND target_asset = $3 AND kind = 'connector' AND state NOT IN ('completed', 'refunded', 'cancelled', 'failed')"))
                    .bind(&t.tenant)
                    .bind(to_i64(t.target_chain_id.get(), "chain id")?)
                    .bind(t.target_asset.as_str())
                    .fetch_all(&mut *db)
                    .await?;
                let mut locked: u128 = t.amount.minor_units();
                for row in rows {
                    locked = locked.saturating_add(amount(&row.get_string("amount")?)?.minor_units());
                }
                if locked > locked_max {
                    db.rollback().await?;
                    return Ok(Created::LimitExceeded);
                }
                let inserted = sqlx::query(Self::tsql("INSERT INTO transfers (id, tenant, state, source_chain_id, target_chain_id, source_asset, target_asset, amount, sender, recipient, connector, hashlock, source_lock_by_ms, source_expires_at_ms, target_expires_at_ms, source_lock_id, target_lock_id, preimage, created_at_ms, updated_at_ms, version, kind, target_amount, reference, trace_parent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::numeric, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23::numeric, $24, $25)"))
                    .bind(&t.id)
                    .bind(&t.tenant)
                    .bind(t.state.name())
                    .bind(to_i64(t.source_chain_id.get(), "chain id")?)
                    .bind(to_i64(t.target_chain_id.get(), "chain id")?)
                    .bind(t.source_asset.as_str())
                    .bind(t.target_asset.as_str())
                    .bind(t.amount.to_string())
                    .bind(t.sender.as_bytes().to_vec())
                    .bind(t.recipient.as_bytes().to_vec())
                    .bind(t.connector.as_bytes().to_vec())
                    .bind(t.hashlock.as_bytes().to_vec())
                    .bind(to_i64(t.source_lock_by_ms, "time")?)
                    .bind(to_i64(t.source_expires_at_ms, "time")?)
                    .bind(to_i64(t.target_expires_at_ms, "time")?)
                    .bind(t.source_lock_id.map(|l| l.as_bytes().to_vec()))
                    .bind(t.target_lock_id.map(|l| l.as_bytes().to_vec()))
                    .bind(t.preimage.map(|p| p.to_vec()))
                    .bind(to_i64(t.created_at_ms, "time")?)
                    .bind(to_i64(t.updated_at_ms, "time")?)
                    .bind(t.version)
                    .bind(t.kind.name())
                    .bind((t.target_amount != t.amount).then(|| t.target_amount.to_string()))
                    .bind(t.reference.clone())
                    .bind(t.trace_parent.clone())
                    .execute(&mut *db)
                    .await;
                match inserted {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                        db.rollback().await?;
                        return Ok(Created::HashlockInUse);
                    }
                    Err(error) => return Err(error.into()),
                }
                Self::insert_event(&mut db, &t.id, 0, event).await?;
                db.commit().await?;
                Ok(Created::Created)
            }

            async fn transfer(&self, id: &str) -> Result<Option<Transfer>, StoreError> {
                let row = sqlx::query(Self::tsql(const_format(SELECT_TRANSFER, " WHERE id = $1")))
                    .bind(id)
                    .fetch_optional(self.pool())
                    .await?;
                row.map(|row| transfer_from_row(&row)).transpose()
            }

            async fn transfers(&self, tenant: &str, before: Option<(u64, String)>, limit: u32) -> Result<Vec<Transfer>, StoreError> {
                let (before_ms, before_id) = match before {
                    Some((ms, id)) => (to_i64(ms, "time")?, id),
                    None => (i64::MAX, String::new()),
                };
                let rows = sqlx::query(Self::tsql(const_format(SELECT_TRANSFER, " WHERE tenant = $1 AND (created_at_ms < $2 OR (created_at_ms = $2 AND id < $3)) ORDER BY created_at_ms DESC, id DESC LIMIT $4")))
                    .bind(tenant)
                    .bind(before_ms)
                    .bind(before_id)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?;
                rows.iter().map(transfer_from_row).collect()
            }

            async fn transfers_changed_since(&self, tenant: &str, since_ms: u64, limit: u32) -> Result<Vec<Transfer>, StoreError> {
                let rows = sqlx::query(Self::tsql(const_format(SELECT_TRANSFER, " WHERE tenant = $1 AND updated_at_ms >= $2 ORDER BY updated_at_ms, id LIMIT $3")))
                    .bind(tenant)
                    .bind(to_i64(since_ms, "time")?)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?;
                rows.iter().map(transfer_from_row).collect()
            }

            async fn transfers_by_reference(&self, reference: &str) -> Result<Vec<Transfer>, StoreError> {
                let rows = sqlx::query(Self::tsql(const_format(SELECT_TRANSFER, " WHERE reference = $1 ORDER BY created_at_ms, id")))
                    .bind(reference)
                    .fetch_all(self.pool())
                    .await?;
                rows.iter().map(transfer_from_row).collect()
            }

            async fn active_transfers(&self, after: Option<(u64, String)>, limit: u32) -> Result<Vec<Transfer>, StoreError> {
                let (after_ms, after_id) = match after {
                    Some((ms, id)) => (to_i64(ms, "time")?, id),
                    None => (-1, String::new()),
                };
                let rows = sqlx::query(Self::tsql(const_format(SELECT_TRANSFER, " WHERE state NOT IN ('completed', 'refunded', 'cancelled', 'failed') AND (created_at_ms > $1 OR (created_at_ms = $1 AND id > $2)) ORDER BY created_at_ms, id LIMIT $3")))
                    .bind(after_ms)
                    .bind(after_id)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?;
                rows.iter().map(transfer_from_row).collect()
            }

            async fn update_transfer(&self, t: &Transfer, expected_version: i64, event: &TransferEvent) -> Result<bool, StoreError> {
                let mut db = self.pool().begin().await?;
                let done = sqlx::query("UPDATE transfers SET state = $2, source_lock_id = $3, target_lock_id = $4, preimage = $5, updated_at_ms = $6, version = $7 WHERE id = $1 AND version = $8")
                    .bind(&t.id)
                    .bind(t.state.name())
                    .bind(t.source_lock_id.map(|l| l.as_bytes().to_vec()))
                    .bind(t.target_lock_id.map(|l| l.as_bytes().to_vec()))
                    .bind(t.preimage.map(|p| p.to_vec()))
                    .bind(to_i64(t.updated_at_ms, "time")?)
                    .bind(t.version)
                    .bind(expected_version)
                    .execute(&mut *db)
                    .await?;
                if done.rows_affected() != 1 {
                    db.rollback().await?;
                    return Ok(false);
                }
                let row = sqlx::query("SELECT COALESCE(MAX(seq), -1) AS seq FROM transfer_events WHERE transfer_id = $1")
                    .bind(&t.id)
                    .fetch_one(&mut *db)
                    .await?;
                let next = row.get_i64("seq")? + 1;
                Self::insert_event(&mut db, &t.id, next, event).await?;
                db.commit().await?;
                Ok(true)
            }

            async fn transfer_events(&self, id: &str) -> Result<Vec<TransferEvent>, StoreError> {
                let rows = sqlx::query("SELECT seq, at_ms, kind, detail FROM transfer_events WHERE transfer_id = $1 ORDER BY seq")
                    .bind(id)
                    .fetch_all(self.pool())
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(TransferEvent {
                            at_ms: to_u64(row.get_i64("at_ms")?, "time")?,
                            kind: row.get_string("kind")?,
                            detail: serde_json::from_str(&row.get_string("detail")?).map_err(corrupt)?,
                        })
                    })
                    .collect()
            }

            async fn put_action(&self, transfer_id: &str, kind: &str, action: &StoredAction, now_ms: u64) -> Result<(), StoreError> {
                sqlx::query("INSERT INTO transfer_actions (transfer_id, kind, chain_id, tx_hash, signed_tx, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (transfer_id, kind) DO UPDATE SET chain_id = excluded.chain_id, tx_hash = excluded.tx_hash, signed_tx = excluded.signed_tx, created_at_ms = excluded.created_at_ms")
                    .bind(transfer_id)
                    .bind(kind)
                    .bind(to_i64(action.chain_id.get(), "chain id")?)
                    .bind(action.tx_hash.as_bytes().to_vec())
                    .bind(&action.signed_tx)
                    .bind(to_i64(now_ms, "time")?)
                    .execute(self.pool())
                    .await?;
                Ok(())
            }

            async fn action(&self, transfer_id: &str, kind: &str) -> Result<Option<StoredAction>, StoreError> {
                let row = sqlx::query("SELECT chain_id, tx_hash, signed_tx FROM transfer_actions WHERE transfer_id = $1 AND kind = $2")
                    .bind(transfer_id)
                    .bind(kind)
                    .fetch_optional(self.pool())
                    .await?;
                row.map(|row| -> Result<StoredAction, StoreError> {
                    Ok(StoredAction {
                        chain_id: chain(row.get_i64("chain_id")?)?,
                        tx_hash: TxHash::from_bytes(bytes(row.get_bytes("tx_hash")?, "tx_hash")?),
                        signed_tx: row.get_string("signed_tx")?,
                    })
                })
                .transpose()
            }

            async fn find_open_lock(&self, w: &LockWanted) -> Result<Option<Htlc>, StoreError> {
                // Every term is matched in the query, so a decoy lock under the
                // same hashlock cannot hide the one that fits.
                let row = sqlx::query(Self::tsql(const_format(SELECT_HTLC, " WHERE chain_id = $1 AND recipient = $2 AND hashlock = $3 AND status = 'locked' AND sender = $4 AND asset = $5 AND amount = $6::numeric AND expires_at_ms >= $7 ORDER BY expires_at_ms LIMIT 1")))
                    .bind(to_i64(w.chain_id.get(), "chain id")?)
                    .bind(w.recipient.as_bytes().to_vec())
                    .bind(w.hashlock.as_bytes().to_vec())
                    .bind(w.sender.as_bytes().to_vec())
                    .bind(w.asset.as_str())
                    .bind(w.amount.to_string())
                    .bind(to_i64(w.expires_at_ms_min, "time")?)
                    .fetch_optional(self.pool())
                    .await?;
                row.map(|row| htlc_from_row(&row)).transpose()
            }
        }
    };
}

impl_transfer_store!(PgStore, sqlx::PgConnection, true);
impl_transfer_store!(SqliteStore, sqlx::SqliteConnection, false);

use crate::store::delegate;

impl TransferStore for AnyStore {
    async fn create_transfer(
        &self,
        transfer: &Transfer,
        event: &TransferEvent,
        locked_max: u128,
    ) -> Result<Created, StoreError> {
        delegate!(self, s => s.create_transfer(transfer, event, locked_max))
    }
    async fn transfer(&self, id: &str) -> Result<Option<Transfer>, StoreError> {
        delegate!(self, s => s.transfer(id))
    }
    async fn transfers(
        &self,
        tenant: &str,
        before: Option<(u64, String)>,
        limit: u32,
    ) -> Result<Vec<Transfer>, StoreError> {
        delegate!(self, s => s.transfers(tenant, before.clone(), limit))
    }
    async fn transfers_changed_since(
        &self,
        tenant: &str,
        since_ms: u64,
        limit: u32,
    ) -> Result<Vec<Transfer>, StoreError> {
        delegate!(self, s => s.transfers_changed_since(tenant, since_ms, limit))
    }
    async fn active_transfers(
        &self,
        after: Option<(u64, String)>,
        limit: u32,
    ) -> Result<Vec<Transfer>, StoreError> {
        delegate!(self, s => s.active_transfers(after.clone(), limit))
    }
    async fn update_transfer(
        &self,
        transfer: &Transfer,
        expected_version: i64,
        event: &TransferEvent,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.update_transfer(transfer, expected_version, event))
    }
    async fn transfer_events(&self, id: &str) -> Result<Vec<TransferEvent>, StoreError> {
        delegate!(self, s => s.transfer_events(id))
    }
    async fn put_action(
        &self,
        transfer_id: &str,
        kind: &str,
        action: &StoredAction,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.put_action(transfer_id, kind, action, now_ms))
    }
    async fn action(
        &self,
        transfer_id: &str,
        kind: &str,
    ) -> Result<Option<StoredAction>, StoreError> {
        delegate!(self, s => s.action(transfer_id, kind))
    }
    async fn transfers_by_reference(&self, reference: &str) -> Result<Vec<Transfer>, StoreError> {
        delegate!(self, s => s.transfers_by_reference(reference))
    }
    async fn find_open_lock(&self, wanted: &LockWanted) -> Result<Option<Htlc>, StoreError> {
        delegate!(self, s => s.find_open_lock(wanted))
    }
}
