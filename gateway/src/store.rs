//! Persistence of the built-in ledger: one contract ([`LedgerStore`]), two
//! implementations ([`PgStore`] for PostgreSQL, the production store, and
//! [`SqliteStore`] for the zero-setup embedded file), and [`AnyStore`], which
//! the gateway holds and which picks one by the database URL.
//!
//! Both implementations are generated from the same code by `impl_store!`;
//! the SQL is written once, in PostgreSQL syntax with `$n` parameters, and
//! the SQLite variant drops the `::numeric`/`::text` casts that PostgreSQL
//! needs to move u128 amounts in and out of `NUMERIC(39,0)` columns.
//!
//! The heart of the store is [`LedgerStore::commit_batch`]: in ONE database
//! transaction it reads the chain tip, prefetches what the batch touches
//! (`Snapshot::missing`, at most two rounds), applies the batch with
//! `ledger-core`, seals the applied transactions into a signed block, and
//! writes the block, the transactions and the changed state. When it returns
//! `Ok`, the batch is durable (`synchronous_commit` stays on).

use std::future::Future;

use ledger_core::block::{BlockHeader, ChainTip, SignedBlockHeader};
use ledger_core::{
    Address, Amount, Asset, AssetCode, AssetState, BlockContext, BlockHash, ChainId, Hashlock,
    Htlc, HtlcStatus, LockId, MerkleRoot, Outcome, Scale, Signature, SignedTransaction, SigningKey,
    Snapshot, TxHash, VerifiedTransaction, apply_batch, seal_block,
};
use sqlx::Row;

use crate::dto::SignedTransactionDto;

/// A storage failure. Every variant becomes a 500 or 503 at the API edge.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row does not decode to a valid domain value.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// ledger-core reported a broken contract (a bug or corrupt state).
    #[error("ledger core: {0}")]
    Apply(#[from] ledger_core::ApplyError),
    /// Sealing the block failed.
    #[error("sealing: {0}")]
    Seal(#[from] ledger_core::block::SealError),
    /// The database was unreachable (a failure shared by every submission
    /// of a batch, passed on as text).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A block producer's cached state was stale: another producer
    /// committed a block at the height this one wrote (a role hand-over),
    /// so the database refused the block and nothing of the batch was
    /// applied. Submitting it again is safe.
    #[error("another block producer committed first; nothing of this batch was applied")]
    Superseded,
}

impl StoreError {
    /// True when the database is unreachable or going away rather than
    /// refusing: the pool timed out or is closed, the connection broke,
    /// or PostgreSQL answered with a connection-exception (SQLSTATE class
    /// 08), operator-intervention (57: shutting down, starting up,
    /// terminated by an administrator) or insufficient-resources (53)
    /// error. The API answers these 503 with `Retry-After`, not 500.
    /// A migration that failed this way is one the connection was lost in
    /// (the migrations run in transactions, so none was half applied).
    pub fn is_unavailable(&self) -> bool {
        use sqlx::migrate::MigrateError;
        match self {
            StoreError::Database(error)
            | StoreError::Migrate(
                MigrateError::Execute(error) | MigrateError::ExecuteMigration(error, _),
            ) => is_unavailable(error),
            StoreError::Unavailable(_) | StoreError::Superseded => true,
            _ => false,
        }
    }
}

/// [`StoreError::is_unavailable`] of a database error.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("57") || code.starts_with("53")
        }),
        _ => false,
    }
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// A committed transaction with its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTransaction {
    /// The signed transaction.
    pub signed: SignedTransaction,
    /// Its hash.
    pub hash: TxHash,
    /// Height of its block.
    pub height: u64,
    /// Position in the block.
    pub position: u32,
}

/// What one committed batch produced.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitResult {
    /// One outcome per input transaction.
    pub outcomes: Vec<Outcome>,
    /// The block sealed, if any transaction applied.
    pub block: Option<SignedBlockHeader>,
    /// For each input, its position in the block when it applied.
    pub positions: Vec<Option<u32>>,
}

/// An account's state.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountView {
    /// Next nonce.
    pub next_nonce: u64,
    /// Balances by asset, in asset order (zero balances omitted).
    pub balances: Vec<(AssetCode, Amount)>,
}

/// A stored answer to a write with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotentResponse {
    /// SHA-256 of the request (method, path, body) that first used the key.
    pub request_hash: [u8; 32],
    /// HTTP status answered.
    pub status: u16,
    /// Body answered.
    pub body: String,
}

/// What reserving an idempotency key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Reservation {
    /// The key is now this request's: process it, then complete or release
    /// it, naming this claim by its time.
    Reserved {
        /// When the claim was made (ms); identifies it.
        claimed_at_ms: u64,
    },
    /// Another request with this key is being processed right now.
    InProgress {
        /// The hash of that request.
        request_hash: [u8; 32],
    },
    /// The key was answered before: replay the answer.
    Done(IdempotentResponse),
}

/// What the block producer of a ledger carries from one commit to the next
/// (PostgreSQL only): the tip it sealed last and the state its batches read
/// and wrote, as committed. With it, a commit reads only what the cache
/// lacks, outside any transaction, and writes the block in one statement
/// (autocommit, atomic: data-modifying CTEs), or in one short transaction
/// when assets or HTLCs change too: 1 to 4 round trips instead of 6.
///
/// Why this is sound: only the sequencer of the process that holds the
/// producer role commits blocks of the ledger, and every commit writes
/// exactly the block at `tip.next_height`, whose `(chain_id, height)` is the
/// primary key of `blocks`. Any block committed by someone else (a second
/// producer during a role hand-over) takes that height first, so the warm
/// commit fails on the key and writes nothing; and the state was read after
/// the last block this producer committed and before the one it writes, so
/// if no one else committed in between, the database holds exactly the
/// cached values. On any error the cache is dropped (the outcome of a failed
/// statement is not trusted), and the next commit is a cold one: commit
/// lock, tip and prefetch inside one transaction. A new producer starts
/// cold. The cache is bounded by the caller (see `Sequencer`).
#[derive(Debug, Clone)]
pub struct WarmState {
    /// The tip after the last block committed through this cache.
    pub tip: ChainTip,
    /// Committed state loaded or written by earlier batches.
    pub snapshot: Snapshot,
}

/// The transactions of a batch that were applied, in batch order.
fn applied_of(txs: &[VerifiedTransaction], outcomes: &[Outcome]) -> Vec<VerifiedTransaction> {
    txs.iter()
        .zip(outcomes)
        .filter(|(_, outcome)| outcome.is_applied())
        .map(|(tx, _)| tx.clone())
        .collect()
}

/// Checks the nonces a batch moved, as ledger-core computed them, against
/// what the rows about to be written imply: an account's next nonce is read
/// back as one more than its highest stored nonce (migration 0012), so
/// every applied sender must have moved to its last applied nonce plus one,
/// and no other account may have moved. A disagreement is a bug between the
/// core and the store, and the block is not written.
fn check_nonces(
    applied: &[VerifiedTransaction],
    changes: &ledger_core::StateChanges,
) -> Result<(), StoreError> {
    let mut last = std::collections::HashMap::with_capacity(changes.accounts.len());
    for tx in applied {
        last.insert(tx.transaction().from, tx.transaction().nonce);
    }
    let agree = last.len() == changes.accounts.len()
        && changes.accounts.iter().all(|(address, next)| {
            last.get(address)
                .and_then(|nonce| nonce.checked_add(1))
                .is_some_and(|implied| implied == *next)
        });
    if agree {
        Ok(())
    } else {
        Err(corrupt(
            "the batch's nonces disagree with its transactions; block not written",
        ))
    }
}

/// Each transaction's position in the block, when applied.
fn positions_of(outcomes: &[Outcome]) -> Vec<Option<u32>> {
    let mut next = 0u32;
    outcomes
        .iter()
        .map(|outcome| {
            outcome.is_applied().then(|| {
                next += 1;
                next - 1
            })
        })
        .collect()
}

/// The tip once `header` is the last block.
fn tip_after(header: &BlockHeader) -> ChainTip {
    ChainTip {
        next_height: header.height + 1,
        last_hash: header.hash(),
        last_timestamp_ms: header.timestamp_ms,
    }
}

/// What `/metrics` reads from the database at scrape time.
#[derive(Debug, Clone, Default)]
pub struct OpsGauges {
    /// Transfers by state.
    pub transfers: Vec<(String, u64)>,
    /// Every open HTLC on the built-in ledgers.
    pub open_locks: Vec<OpenLock>,
    /// Connections the pool holds.
    pub pool_size: u32,
    /// Of which idle.
    pub pool_idle: u32,
    /// The pool's bound.
    pub pool_max: u32,
}

/// An open HTLC, for the value-locked gauges.
#[derive(Debug, Clone)]
pub struct OpenLock {
    /// Its ledger.
    pub chain_id: u64,
    /// Its asset.
    pub asset: AssetCode,
    /// Who locked it.
    pub sender: Address,
    /// How much.
    pub amount: Amount,
    /// The time of the block that created it.
    pub locked_at_ms: u64,
}

/// The store contract. Every implementation must pass the conformance suite
/// in `gateway/tests/store_conformance.rs`.
pub trait LedgerStore: Send + Sync {
    /// Runs the migrations of this store's dialect.
    fn migrate(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The chain tip (genesis when there is no block).
    fn tip(&self, chain_id: ChainId) -> impl Future<Output = Result<ChainTip, StoreError>> + Send;
    /// Applies, seals and persists a batch in one database transaction.
    fn commit_batch(
        &self,
        chain_id: ChainId,
        block_key: &SigningKey,
        now_ms: u64,
        txs: &[VerifiedTransaction],
    ) -> impl Future<Output = Result<CommitResult, StoreError>> + Send;
    /// [`LedgerStore::commit_batch`] for the block producer, which carries
    /// `warm` from one batch to the next (see [`WarmState`]). The store may
    /// fill `warm` after a commit and use it for the next one; it leaves
    /// `None` after any error, so the next commit starts from the database.
    fn commit_batch_warm(
        &self,
        chain_id: ChainId,
        block_key: &SigningKey,
        now_ms: u64,
        txs: &[VerifiedTransaction],
        warm: &mut Option<WarmState>,
    ) -> impl Future<Output = Result<CommitResult, StoreError>> + Send;
    /// A committed transaction.
    fn transaction(
        &self,
        chain_id: ChainId,
        hash: TxHash,
    ) -> impl Future<Output = Result<Option<StoredTransaction>, StoreError>> + Send;
    /// A block's signed header.
    fn block(
        &self,
        chain_id: ChainId,
        height: u64,
    ) -> impl Future<Output = Result<Option<SignedBlockHeader>, StoreError>> + Send;
    /// Block headers with height below `before` (newest first), at most `limit`.
    fn blocks(
        &self,
        chain_id: ChainId,
        before: Option<u64>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<SignedBlockHeader>, StoreError>> + Send;
    /// The transactions of a block, in block order.
    fn block_transactions(
        &self,
        chain_id: ChainId,
        height: u64,
    ) -> impl Future<Output = Result<Vec<StoredTransaction>, StoreError>> + Send;
    /// The hashes of a block's transactions, in block order (cheaper than
    /// the transactions, for inclusion proofs).
    fn block_tx_hashes(
        &self,
        chain_id: ChainId,
        height: u64,
    ) -> impl Future<Output = Result<Vec<TxHash>, StoreError>> + Send;
    /// Every block key that signed a block of the ledger.
    fn producers(
        &self,
        chain_id: ChainId,
    ) -> impl Future<Output = Result<Vec<Address>, StoreError>> + Send;
    /// An account's nonce and balances.
    fn account(
        &self,
        chain_id: ChainId,
        address: Address,
    ) -> impl Future<Output = Result<AccountView, StoreError>> + Send;
    /// Assets with code after `after`, in code order, at most `limit`.
    fn assets(
        &self,
        chain_id: ChainId,
        after: Option<AssetCode>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AssetState>, StoreError>> + Send;
    /// An asset.
    fn asset(
        &self,
        chain_id: ChainId,
        code: AssetCode,
    ) -> impl Future<Output = Result<Option<AssetState>, StoreError>> + Send;
    /// An HTLC.
    fn htlc(
        &self,
        chain_id: ChainId,
        id: LockId,
    ) -> impl Future<Output = Result<Option<Htlc>, StoreError>> + Send;
    /// Claims an idempotency key for a request about to be processed (see
    /// [`Reservation`]). A claim older than `stale_after_ms` whose request
    /// never completed (its process died) may be taken over.
    fn reserve_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
        request_hash: &[u8; 32],
        now_ms: u64,
        stale_after_ms: u64,
    ) -> impl Future<Output = Result<Reservation, StoreError>> + Send;
    /// Records the final answer for a key this claim still holds (a claim
    /// taken over as stale records nothing).
    fn complete_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
        claimed_at_ms: u64,
        response: &IdempotentResponse,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Gives up a claim whose request failed in a way worth retrying, or was
    /// abandoned; a completed answer is never removed.
    fn release_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
        claimed_at_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// True when the database answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| corrupt(format!("{what} {value} exceeds 2^63-1")))
}

pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(format!("{what} {value} is negative")))
}

pub(crate) fn bytes<const N: usize>(value: Vec<u8>, what: &str) -> Result<[u8; N], StoreError> {
    value
        .try_into()
        .map_err(|_| corrupt(format!("{what} is not {N} bytes")))
}

pub(crate) fn amount(text: &str) -> Result<Amount, StoreError> {
    text.parse()
        .map_err(|_| corrupt(format!("amount {text:?}")))
}

pub(crate) fn asset_code(text: &str) -> Result<AssetCode, StoreError> {
    AssetCode::new(text).map_err(|_| corrupt(format!("asset code {text:?}")))
}

fn status_text(status: &HtlcStatus) -> (&'static str, Option<Vec<u8>>) {
    match status {
        HtlcStatus::Locked => ("locked", None),
        HtlcStatus::Claimed { preimage } => ("claimed", Some(preimage.to_vec())),
        HtlcStatus::Refunded => ("refunded", None),
    }
}

fn header_from_row(chain_id: ChainId, row: &impl RowGet) -> Result<SignedBlockHeader, StoreError> {
    let tx_count: i64 = row.get_i64("tx_count")?;
    Ok(SignedBlockHeader {
        header: BlockHeader {
            chain_id,
            height: to_u64(row.get_i64("height")?, "height")?,
            previous_hash: BlockHash::from_bytes(bytes(
                row.get_bytes("previous_hash")?,
                "previous_hash",
            )?),
            timestamp_ms: to_u64(row.get_i64("timestamp_ms")?, "timestamp_ms")?,
            tx_root: MerkleRoot::from_bytes(bytes(row.get_bytes("tx_root")?, "tx_root")?),
            tx_count: u32::try_from(tx_count).map_err(|_| corrupt("tx_count"))?,
            producer: Address::from_bytes(bytes(row.get_bytes("producer")?, "producer")?),
        },
        signature: Signature::from_bytes(bytes(row.get_bytes("signature")?, "signature")?),
    })
}

fn transaction_from_row(
    chain_id: ChainId,
    row: &impl RowGet,
) -> Result<StoredTransaction, StoreError> {
    let kind: String = row.get_string("kind")?;
    let message: String = row.get_string("message")?;
    let signature = Signature::from_bytes(bytes(row.get_bytes("signature")?, "signature")?);
    let dto = SignedTransactionDto {
        chain_id: chain_id.to_string(),
        primary_type: serde_json::from_value(serde_json::Value::String(kind)).map_err(corrupt)?,
        message: serde_json::from_str(&message).map_err(corrupt)?,
        signature: signature.to_string(),
    };
    let signed = dto.to_domain().map_err(corrupt)?;
    let hash = TxHash::from_bytes(bytes(row.get_bytes("hash")?, "hash")?);
    Ok(StoredTransaction {
        signed,
        hash,
        height: to_u64(row.get_i64("height")?, "height")?,
        position: u32::try_from(row.get_i64("position")?).map_err(|_| corrupt("position"))?,
    })
}

pub(crate) fn htlc_from_row(row: &impl RowGet) -> Result<Htlc, StoreError> {
    let status = match row.get_string("status")?.as_str() {
        "locked" => HtlcStatus::Locked,
        "refunded" => HtlcStatus::Refunded,
        "claimed" => HtlcStatus::Claimed {
            preimage: bytes(
                row.get_opt_bytes("preimage")?
                    .ok_or_else(|| corrupt("claimed lock without preimage"))?,
                "preimage",
            )?,
        },
        other => return Err(corrupt(format!("HTLC status {other:?}"))),
    };
    Ok(Htlc {
        id: LockId::from_bytes(bytes(row.get_bytes("lock_id")?, "lock_id")?),
        sender: Address::from_bytes(bytes(row.get_bytes("sender")?, "sender")?),
        recipient: Address::from_bytes(bytes(row.get_bytes("recipient")?, "recipient")?),
        asset: asset_code(&row.get_string("asset")?)?,
        amount: amount(&row.get_string("amount")?)?,
        hashlock: Hashlock::from_bytes(bytes(row.get_bytes("hashlock")?, "hashlock")?),
        expires_at_ms: to_u64(row.get_i64("expires_at_ms")?, "expires_at_ms")?,
        status,
    })
}

fn asset_from_row(row: &impl RowGet) -> Result<AssetState, StoreError> {
    let scale = u8::try_from(row.get_i64("scale")?).map_err(|_| corrupt("scale"))?;
    Ok(AssetState {
        asset: Asset {
            code: asset_code(&row.get_string("code")?)?,
            scale: Scale::new(scale).map_err(corrupt)?,
            issuer: Address::from_bytes(bytes(row.get_bytes("issuer")?, "issuer")?),
        },
        supply: amount(&row.get_string("supply")?)?,
    })
}

/// Column access shared by both row types, so the decoding above is written once.
pub(crate) trait RowGet {
    fn get_i64(&self, column: &str) -> Result<i64, StoreError>;
    fn get_bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
    fn get_opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn get_string(&self, column: &str) -> Result<String, StoreError>;
    fn get_opt_string(&self, column: &str) -> Result<Option<String>, StoreError>;
}

macro_rules! row_get {
    ($row:ty) => {
        impl RowGet for $row {
            fn get_i64(&self, column: &str) -> Result<i64, StoreError> {
                Ok(self.try_get::<i64, _>(column)?)
            }
            fn get_bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
                Ok(self.try_get::<Vec<u8>, _>(column)?)
            }
            fn get_opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError> {
                Ok(self.try_get::<Option<Vec<u8>>, _>(column)?)
            }
            fn get_string(&self, column: &str) -> Result<String, StoreError> {
                Ok(self.try_get::<String, _>(column)?)
            }
            fn get_opt_string(&self, column: &str) -> Result<Option<String>, StoreError> {
                Ok(self.try_get::<Option<String>, _>(column)?)
            }
        }
    };
}
row_get!(sqlx::postgres::PgRow);
row_get!(sqlx::sqlite::SqliteRow);

/// An account's next nonce: one more than its highest committed nonce, read
/// through the unique index `(chain_id, sender, nonce)` of `transactions`;
/// no row means no transaction yet (nonce 0). Nonces are not stored apart
/// from the transactions that use them (migration 0012).
const SELECT_NEXT_NONCE: &str = "SELECT nonce + 1 AS next_nonce FROM transactions WHERE chain_id = $1 AND sender = $2 ORDER BY nonce DESC LIMIT 1";
const SELECT_BLOCK: &str = "SELECT height, previous_hash, timestamp_ms, tx_root, tx_count::bigint AS tx_count, producer, signature FROM blocks";
const SELECT_TX: &str =
    "SELECT hash, height, position::bigint AS position, kind, message, signature FROM transactions";
pub(crate) const SELECT_HTLC: &str = "SELECT lock_id, sender, recipient, asset, amount::text AS amount, hashlock, expires_at_ms, status, preimage FROM htlcs";
const SELECT_ASSET: &str =
    "SELECT code, scale::bigint AS scale, issuer, supply::text AS supply FROM assets";

macro_rules! impl_store {
    ($store:ident, $pool:ty, $conn:ty, $migrator:literal, $dialect_pg:expr) => {
        impl $store {
            /// The chain tip, read on `conn` (inside a transaction when committing).
            async fn tip_in(conn: &mut $conn, chain_id: ChainId) -> Result<ChainTip, StoreError> {
                let row = sqlx::query("SELECT height, hash, timestamp_ms FROM blocks WHERE chain_id = $1 ORDER BY height DESC LIMIT 1")
                    .bind(to_i64(chain_id.get(), "chain id")?)
                    .fetch_optional(&mut *conn)
                    .await?;
                match row {
                    None => Ok(ChainTip::GENESIS),
                    Some(row) => Ok(ChainTip {
                        next_height: to_u64(row.get_i64("height")?, "height")? + 1,
                        last_hash: BlockHash::from_bytes(bytes(row.get_bytes("hash")?, "hash")?),
                        last_timestamp_ms: to_u64(row.get_i64("timestamp_ms")?, "timestamp_ms")?,
                    }),
                }
            }

            /// A commit that reads everything it needs from the database,
            /// inside one transaction that holds the ledger's commit lock;
            /// returns the state the next commit of this producer may start
            /// from (see [`WarmState`]).
            async fn commit_cold(
                &self,
                chain_id: ChainId,
                block_key: &SigningKey,
                now_ms: u64,
                txs: &[VerifiedTransaction],
            ) -> Result<(CommitResult, WarmState), StoreError> {
                let chain = to_i64(chain_id.get(), "chain id")?;
                // SQLite: take the write lock now, not at the first write, so
                // two writers cannot both read the same tip. PostgreSQL: a
                // transaction-level advisory lock per ledger does the same.
                let mut db = if $dialect_pg {
                    self.pool.begin().await?
                } else {
                    self.pool.begin_with("BEGIN IMMEDIATE").await?
                };
                if $dialect_pg {
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(crate::producer::commit_lock_key(chain_id))
                        .execute(&mut *db)
                        .await?;
                }
                let started = std::time::Instant::now();
                let tip = Self::tip_in(&mut db, chain_id).await?;
                let locked_us = started.elapsed().as_micros() as u64;

                // Prefetch what the batch reads: at most two rounds.
                let mut snapshot = Snapshot::partial();
                loop {
                    let missing = snapshot.missing(txs);
                    if missing.is_empty() {
                        break;
                    }
                    Self::prefetch(&mut db, chain, missing, &mut snapshot).await?;
                }

                // Block time never goes back, even if the clock does.
                let timestamp_ms = now_ms.max(tip.last_timestamp_ms);
                let context = BlockContext { chain_id, timestamp_ms };
                let prefetched_us = started.elapsed().as_micros() as u64;
                let result = apply_batch(&mut snapshot, &context, txs)?;
                let applied = applied_of(txs, &result.outcomes);
                let positions = positions_of(&result.outcomes);
                if applied.is_empty() {
                    db.rollback().await?;
                    // Nothing changed: what was read is still the state.
                    let result = CommitResult { outcomes: result.outcomes, block: None, positions };
                    return Ok((result, WarmState { tip, snapshot }));
                }
                let (block, _tree) = seal_block(&context, &tip, &applied, block_key)?;
                let sealed_us = started.elapsed().as_micros() as u64;
                Self::write_changes(&mut db, chain, &block.header, &applied, &result.changes).await?;
                let written_us = started.elapsed().as_micros() as u64;
                db.commit().await?;
                tracing::debug!(
                    txs = txs.len(),
                    warm = false,
                    locked_us,
                    prefetched_us,
                    sealed_us,
                    written_us,
                    committed_us = started.elapsed().as_micros() as u64,
                    "commit timeline"
                );
                let next = WarmState { tip: tip_after(&block.header.header), snapshot };
                let result = CommitResult {
                    outcomes: result.outcomes,
                    block: Some(block.header),
                    positions,
                };
                Ok((result, next))
            }

            /// The SQL for this dialect: PostgreSQL as written; SQLite
            /// without the PostgreSQL casts (computed once per query text).
            fn sql(sql: &'static str) -> &'static str {
                if $dialect_pg {
                    sql
                } else {
                    sqlite_sql(sql)
                }
            }

            /// Loads the HTLCs a batch touches, row by row (a few per batch
            /// at most); both dialects.
            async fn load_locks(
                conn: &mut $conn,
                chain: i64,
                locks: std::collections::BTreeSet<LockId>,
                snapshot: &mut Snapshot,
            ) -> Result<(), StoreError> {
                for id in locks {
                    let row = sqlx::query(Self::sql(const_format(
                        SELECT_HTLC,
                        " WHERE chain_id = $1 AND lock_id = $2",
                    )))
                    .bind(chain)
                    .bind(id.as_bytes().to_vec())
                    .fetch_optional(&mut *conn)
                    .await?;
                    let htlc = row.map(|row| htlc_from_row(&row)).transpose()?;
                    snapshot.insert_lock(id, htlc);
                }
                Ok(())
            }

            /// Writes created or re-supplied assets, row by row; both
            /// dialects, before the balances that reference them.
            async fn write_assets(
                conn: &mut $conn,
                chain: i64,
                assets: &[AssetState],
            ) -> Result<(), StoreError> {
                for state in assets {
                    sqlx::query(Self::sql("INSERT INTO assets (chain_id, code, scale, issuer, supply) VALUES ($1, $2, $3, $4, $5::numeric) ON CONFLICT (chain_id, code) DO UPDATE SET supply = excluded.supply"))
                        .bind(chain)
                        .bind(state.asset.code.as_str())
                        .bind(i32::from(state.asset.scale.get()))
                        .bind(state.asset.issuer.as_bytes().to_vec())
                        .bind(state.supply.to_string())
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            }

            /// Writes created or settled HTLCs, row by row; both dialects.
            async fn write_locks(
                conn: &mut $conn,
                chain: i64,
                locks: &[Htlc],
            ) -> Result<(), StoreError> {
                for htlc in locks {
                    let (status, preimage) = status_text(&htlc.status);
                    sqlx::query(Self::sql("INSERT INTO htlcs (chain_id, lock_id, sender, recipient, asset, amount, hashlock, expires_at_ms, status, preimage) VALUES ($1, $2, $3, $4, $5, $6::numeric, $7, $8, $9, $10) ON CONFLICT (chain_id, lock_id) DO UPDATE SET status = excluded.status, preimage = excluded.preimage"))
                        .bind(chain)
                        .bind(htlc.id.as_bytes().to_vec())
                        .bind(htlc.sender.as_bytes().to_vec())
                        .bind(htlc.recipient.as_bytes().to_vec())
                        .bind(htlc.asset.as_str())
                        .bind(htlc.amount.to_string())
                        .bind(htlc.hashlock.as_bytes().to_vec())
                        .bind(to_i64(htlc.expires_at_ms, "expires_at_ms")?)
                        .bind(status)
                        .bind(preimage)
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            }

            /// The pool.
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            /// What `/metrics` reads from the database at scrape time.
            pub async fn ops_gauges(&self) -> Result<OpsGauges, StoreError> {
                let mut gauges = OpsGauges::default();
                let rows = sqlx::query(Self::sql("SELECT state, count(*)::bigint AS n FROM transfers GROUP BY state"))
                    .fetch_all(&self.pool)
                    .await?;
                for row in rows {
                    let n = to_u64(row.get_i64("n")?, "count")?;
                    gauges.transfers.push((row.get_string("state")?, n));
                }
                let rows = sqlx::query(Self::sql(
                    "SELECT h.chain_id, h.asset, h.sender, h.amount::text AS amount, b.timestamp_ms \
                     FROM htlcs h \
                     JOIN transactions t ON t.chain_id = h.chain_id AND t.hash = h.lock_id \
                     JOIN blocks b ON b.chain_id = t.chain_id AND b.height = t.height \
                     WHERE h.status = 'locked'",
                ))
                .fetch_all(&self.pool)
                .await?;
                for row in rows {
                    gauges.open_locks.push(OpenLock {
                        chain_id: to_u64(row.get_i64("chain_id")?, "chain id")?,
                        asset: asset_code(&row.get_string("asset")?)?,
                        sender: Address::from_bytes(bytes(row.get_bytes("sender")?, "sender")?),
                        amount: amount(&row.get_string("amount")?)?,
                        locked_at_ms: to_u64(row.get_i64("timestamp_ms")?, "timestamp_ms")?,
                    });
                }
                gauges.pool_size = self.pool.size();
                gauges.pool_idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
                gauges.pool_max = self.pool.options().get_max_connections();
                Ok(gauges)
            }
        }

        impl LedgerStore for $store {
            async fn migrate(&self) -> Result<(), StoreError> {
                sqlx::migrate!($migrator).run(&self.pool).await?;
                Ok(())
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn tip(&self, chain_id: ChainId) -> Result<ChainTip, StoreError> {
                let mut conn = self.pool.acquire().await?;
                Self::tip_in(&mut conn, chain_id).await
            }

            async fn commit_batch(
                &self,
                chain_id: ChainId,
                block_key: &SigningKey,
                now_ms: u64,
                txs: &[VerifiedTransaction],
            ) -> Result<CommitResult, StoreError> {
                self.commit_dispatch(chain_id, block_key, now_ms, txs, &mut None)
                    .await
            }

            async fn commit_batch_warm(
                &self,
                chain_id: ChainId,
                block_key: &SigningKey,
                now_ms: u64,
                txs: &[VerifiedTransaction],
                warm: &mut Option<WarmState>,
            ) -> Result<CommitResult, StoreError> {
                self.commit_dispatch(chain_id, block_key, now_ms, txs, warm)
                    .await
            }

            async fn transaction(&self, chain_id: ChainId, hash: TxHash) -> Result<Option<StoredTransaction>, StoreError> {
                let row = sqlx::query(Self::sql(const_format(SELECT_TX, " WHERE chain_id = $1 AND hash = $2")))
                    .bind(to_i64(chain_id.get(), "chain id")?)
                    .bind(hash.as_bytes().to_vec())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|row| transaction_from_row(chain_id, &row)).transpose()
            }

            async fn block(&self, chain_id: ChainId, height: u64) -> Result<Option<SignedBlockHeader>, StoreError> {
                let row = sqlx::query(Self::sql(const_format(SELECT_BLOCK, " WHERE chain_id = $1 AND height = $2")))
                    .bind(to_i64(chain_id.get(), "chain id")?)
                    .bind(to_i64(height, "height")?)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|row| header_from_row(chain_id, &row)).transpose()
            }

            async fn blocks(&self, chain_id: ChainId, before: Option<u64>, limit: u32) -> Result<Vec<SignedBlockHeader>, StoreError> {
                let before = match before {
                    Some(height) => to_i64(height, "height")?,
                    None => i64::MAX,
                };
                let rows = sqlx::query(Self::sql(const_format(SELECT_BLOCK, " WHERE chain_id = $1 AND height < $2 ORDER BY height DESC LIMIT $3")))
                    .bind(to_i64(chain_id.get(), "chain id")?)
                    .bind(before)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(|row| header_from_row(chain_id, row)).collect()
            }

            async fn block_transactions(&self, chain_id: ChainId, height: u64) -> Result<Vec<StoredTransaction>, StoreError> {
                let rows = sqlx::query(Self::sql(const_format(SELECT_TX, " WHERE chain_id = $1 AND height = $2 ORDER BY position")))
                    .bind(to_i64(chain_id.get(), "chain id")?)
                    .bind(to_i64(height, "height")?)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(|row| transaction_from_row(chain_id, row)).collect()
            }

            async fn block_tx_hashes(&self, chain_id: ChainId, height: u64) -> Result<Vec<TxHash>, StoreError> {
                let rows = sqlx::query("SELECT hash FROM transactions WHERE chain_id = $1 AND height = $2 ORDER BY position")
                    .bind(to_i64(chain_id.get(), "chain id")?)
                    .bind(to_i64(height, "height")?)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| Ok(TxHash::from_bytes(bytes(row.get_bytes("hash")?, "hash")?)))
                    .collect()
            }

            async fn producers(&self, chain_id: ChainId) -> Result<Vec<Address>, StoreError> {
                let rows = sqlx::query("SELECT DISTINCT producer FROM blocks WHERE chain_id = $1 ORDER BY producer")
                    .bind(to_i64(chain_id.get(), "chain id")?)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| Ok(Address::from_bytes(bytes(row.get_bytes("producer")?, "producer")?)))
                    .collect()
            }

            async fn account(&self, chain_id: ChainId, address: Address) -> Result<AccountView, StoreError> {
                let chain = to_i64(chain_id.get(), "chain id")?;
                let nonce = sqlx::query(SELECT_NEXT_NONCE)
                    .bind(chain)
                    .bind(address.as_bytes().to_vec())
                    .fetch_optional(&self.pool)
                    .await?;
                let next_nonce = match nonce {
                    Some(row) => to_u64(row.get_i64("next_nonce")?, "next_nonce")?,
                    None => 0,
                };
                let rows = sqlx::query(Self::sql("SELECT asset, amount::text AS amount FROM balances WHERE chain_id = $1 AND address = $2 ORDER BY asset"))
                    .bind(chain)
                    .bind(address.as_bytes().to_vec())
                    .fetch_all(&self.pool)
                    .await?;
                let mut balances = Vec::with_capacity(rows.len());
                for row in rows {
                    let value = amount(&row.get_string("amount")?)?;
                    if !value.is_zero() {
                        balances.push((asset_code(&row.get_string("asset")?)?, value));
                    }
                }
                Ok(AccountView { next_nonce, balances })
            }

            async fn assets(&self, chain_id: ChainId, after: Option<AssetCode>, limit: u32) -> Result<Vec<AssetState>, StoreError> {
                let rows = sqlx::query(Self::sql(const_format(SELECT_ASSET, " WHERE chain_id = $1 AND code > $2 ORDER BY code LIMIT $3")))
                    .bind(to_i64(chain_id.get(), "chain id")?)
                    .bind(after.map(|c| c.as_str().to_string()).unwrap_or_default())
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(asset_from_row).collect()
            }

            async fn asset(&self, chain_id: ChainId, code: AssetCode) -> Result<Option<AssetState>, StoreError> {
                let row = sqlx::query(Self::sql(const_format(SELECT_ASSET, " WHERE chain_id = $1 AND code = $2")))
                    .bind(to_i64(chain_id.get(), "chain id")?)
                    .bind(code.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|row| asset_from_row(&row)).transpose()
            }

            async fn htlc(&self, chain_id: ChainId, id: LockId) -> Result<Option<Htlc>, StoreError> {
                let row = sqlx::query(Self::sql(const_format(SELECT_HTLC, " WHERE chain_id = $1 AND lock_id = $2")))
                    .bind(to_i64(chain_id.get(), "chain id")?)
                    .bind(id.as_bytes().to_vec())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|row| htlc_from_row(&row)).transpose()
            }

            async fn reserve_idempotency_key(
                &self,
                tenant: &str,
                key: &str,
                request_hash: &[u8; 32],
                now_ms: u64,
                stale_after_ms: u64,
            ) -> Result<Reservation, StoreError> {
                let now = to_i64(now_ms, "time")?;
                let inserted = sqlx::query("INSERT INTO idempotency_keys (tenant, key, request_hash, status, body, created_at_ms) VALUES ($1, $2, $3, 0, '', $4) ON CONFLICT (tenant, key) DO NOTHING")
                    .bind(tenant)
                    .bind(key)
                    .bind(request_hash.to_vec())
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                if inserted.rows_affected() == 1 {
                    return Ok(Reservation::Reserved { claimed_at_ms: now_ms });
                }
                let row = sqlx::query(Self::sql("SELECT request_hash, status::bigint AS status, body, created_at_ms FROM idempotency_keys WHERE tenant = $1 AND key = $2"))
                    .bind(tenant)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else {
                    // Released between our insert and select: the caller may retry.
                    return Ok(Reservation::InProgress { request_hash: *request_hash });
                };
                let stored_hash: [u8; 32] = bytes(row.get_bytes("request_hash")?, "request_hash")?;
                let status = row.get_i64("status")?;
                if status != 0 {
                    return Ok(Reservation::Done(IdempotentResponse {
                        request_hash: stored_hash,
                        status: u16::try_from(status).map_err(|_| corrupt("status"))?,
                        body: row.get_string("body")?,
                    }));
                }
                let created = row.get_i64("created_at_ms")?;
                if created.saturating_add(to_i64(stale_after_ms, "stale_after_ms")?) < now {
                    let taken = sqlx::query("UPDATE idempotency_keys SET request_hash = $3, created_at_ms = $4 WHERE tenant = $1 AND key = $2 AND status = 0 AND created_at_ms = $5")
                        .bind(tenant)
                        .bind(key)
                        .bind(request_hash.to_vec())
                        .bind(now)
                        .bind(created)
                        .execute(&self.pool)
                        .await?;
                    if taken.rows_affected() == 1 {
                        return Ok(Reservation::Reserved { claimed_at_ms: now_ms });
                    }
                }
                Ok(Reservation::InProgress { request_hash: stored_hash })
            }

            async fn complete_idempotency_key(&self, tenant: &str, key: &str, claimed_at_ms: u64, response: &IdempotentResponse) -> Result<(), StoreError> {
                sqlx::query("UPDATE idempotency_keys SET request_hash = $3, status = $4, body = $5 WHERE tenant = $1 AND key = $2 AND status = 0 AND created_at_ms = $6")
                    .bind(tenant)
                    .bind(key)
                    .bind(response.request_hash.to_vec())
                    .bind(i32::from(response.status))
                    .bind(&response.body)
                    .bind(to_i64(claimed_at_ms, "time")?)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn release_idempotency_key(&self, tenant: &str, key: &str, claimed_at_ms: u64) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM idempotency_keys WHERE tenant = $1 AND key = $2 AND status = 0 AND created_at_ms = $3")
                    .bind(tenant)
                    .bind(key)
                    .bind(to_i64(claimed_at_ms, "time")?)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}

type SqlCache =
    std::sync::Mutex<std::collections::HashMap<(&'static str, &'static str), &'static str>>;

fn sql_cache() -> &'static SqlCache {
    static CACHE: std::sync::LazyLock<SqlCache> = std::sync::LazyLock::new(Default::default);
    &CACHE
}

/// Memoises a derived query text as `&'static str`. The set of query texts is
/// fixed by this file, so the memory used is bounded and allocated once.
fn memo(key: (&'static str, &'static str), make: impl FnOnce() -> String) -> &'static str {
    let mut cache = match sql_cache().lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    cache
        .entry(key)
        .or_insert_with(|| Box::leak(make().into_boxed_str()))
}

/// `base || suffix` as one static query text.
pub(crate) fn const_format(base: &'static str, suffix: &'static str) -> &'static str {
    memo((base, suffix), || format!("{base}{suffix}"))
}

/// A PostgreSQL query text without its casts, for SQLite.
pub(crate) fn sqlite_sql(sql: &'static str) -> &'static str {
    memo((sql, "\0sqlite"), || {
        sql.replace("::numeric", "")
            .replace("::text", "")
            .replace("::bigint", "")
    })
}

/// The PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: sqlx::PgPool,
}

impl PgStore {
    /// Wraps a pool.
    pub fn new(pool: sqlx::PgPool) -> Self {
        Self { pool }
    }
}

/// The embedded SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
}

impl SqliteStore {
    /// Wraps a pool.
    pub fn new(pool: sqlx::SqlitePool) -> Self {
        Self { pool }
    }
}

/// PostgreSQL: the block producer's commits start from its [`WarmState`]
/// when it has one.
impl PgStore {
    async fn commit_dispatch(
        &self,
        chain_id: ChainId,
        block_key: &SigningKey,
        now_ms: u64,
        txs: &[VerifiedTransaction],
        warm: &mut Option<WarmState>,
    ) -> Result<CommitResult, StoreError> {
        // Taken out: after any error the cache stays dropped; only a
        // successful commit puts one back.
        match warm.take() {
            Some(cached) => {
                self.commit_warm(chain_id, block_key, now_ms, txs, cached, warm)
                    .await
            }
            None => {
                let (result, next) = self.commit_cold(chain_id, block_key, now_ms, txs).await?;
                *warm = Some(next);
                Ok(result)
            }
        }
    }

    /// A commit from the producer's cache: reads only what the cache lacks
    /// (autocommit reads), then writes the block in one atomic statement, or
    /// in one transaction when assets or HTLCs change too. The primary key
    /// of `blocks` refuses the write if anyone else committed a block since
    /// this cache's tip; see [`WarmState`] for why that is enough.
    async fn commit_warm(
        &self,
        chain_id: ChainId,
        block_key: &SigningKey,
        now_ms: u64,
        txs: &[VerifiedTransaction],
        mut cached: WarmState,
        warm: &mut Option<WarmState>,
    ) -> Result<CommitResult, StoreError> {
        let chain = to_i64(chain_id.get(), "chain id")?;
        let started = std::time::Instant::now();
        let mut conn = self.pool.acquire().await?;
        let snapshot = &mut cached.snapshot;
        loop {
            let missing = snapshot.missing(txs);
            if missing.is_empty() {
                break;
            }
            Self::prefetch(&mut conn, chain, missing, snapshot).await?;
        }
        let prefetched_us = started.elapsed().as_micros() as u64;
        let tip = cached.tip;
        // Block time never goes back, even if the clock does.
        let timestamp_ms = now_ms.max(tip.last_timestamp_ms);
        let context = BlockContext {
            chain_id,
            timestamp_ms,
        };
        let result = apply_batch(snapshot, &context, txs)?;
        let applied = applied_of(txs, &result.outcomes);
        let positions = positions_of(&result.outcomes);
        if applied.is_empty() {
            *warm = Some(cached);
            return Ok(CommitResult {
                outcomes: result.outcomes,
                block: None,
                positions,
            });
        }
        let (block, _tree) = seal_block(&context, &tip, &applied, block_key)?;
        let sealed_us = started.elapsed().as_micros() as u64;
        let one_statement = result.changes.assets.is_empty() && result.changes.locks.is_empty();
        let written = if one_statement {
            Self::write_changes(&mut conn, chain, &block.header, &applied, &result.changes).await
        } else {
            async {
                let mut db = sqlx::Connection::begin(&mut *conn).await?;
                Self::write_changes(&mut db, chain, &block.header, &applied, &result.changes)
                    .await?;
                db.commit().await?;
                Ok(())
            }
            .await
        };
        // A block at this height or one of its transactions' positions
        // taken: another producer committed since this cache's tip.
        if let Err(StoreError::Database(error)) = &written
            && error
                .as_database_error()
                .is_some_and(|e| e.is_unique_violation())
        {
            return Err(StoreError::Superseded);
        }
        written?;
        tracing::debug!(
            txs = txs.len(),
            warm = true,
            one_statement,
            prefetched_us,
            sealed_us,
            committed_us = started.elapsed().as_micros() as u64,
            "commit timeline"
        );
        cached.tip = tip_after(&block.header.header);
        *warm = Some(cached);
        Ok(CommitResult {
            outcomes: result.outcomes,
            block: Some(block.header),
            positions,
        })
    }
}

/// SQLite commits always start from the database: it runs in-process, so
/// reading costs no round trip, and its writes are one statement per row.
impl SqliteStore {
    async fn commit_dispatch(
        &self,
        chain_id: ChainId,
        block_key: &SigningKey,
        now_ms: u64,
        txs: &[VerifiedTransaction],
        warm: &mut Option<WarmState>,
    ) -> Result<CommitResult, StoreError> {
        *warm = None;
        let (result, _) = self.commit_cold(chain_id, block_key, now_ms, txs).await?;
        Ok(result)
    }
}

/// PostgreSQL: every statement is a network round trip, and on a loaded
/// machine a round trip costs far more than the work in it, so a batch is
/// read with one statement and written with one, whatever its size (arrays
/// bound as parameters and expanded with `unnest`). HTLCs and created or
/// re-supplied assets, a few per batch at most, go row by row around them.
///
/// The read looks each key up in a `LATERAL ... LIMIT 1` subquery over
/// `unnest` of the keys (the `LIMIT` keeps PostgreSQL from flattening it into
/// a join), each an equality on a unique index. It is a prepared statement,
/// planned once per connection: the block producer's connections have
/// `enable_seqscan` off (`AnyStore::for_block_producer`), so the plan
/// PostgreSQL keeps is index look-ups whatever the tables' size when it was
/// made. Measured with `auto_explain` under `scripts/bench-throughput`
/// (session 4): with sequential scans allowed, PostgreSQL kept a generic
/// plan made when the tables were nearly empty, a hash join over a scan of
/// every balance of the chain, whose cost grew with the number of accounts
/// (2.5 ms per batch at 5,000 accounts); `address = ANY($2)` did worse,
/// comparing every row with every element. Sending the read unprepared
/// avoided that but cost a parse and plan per block (session 8: about a
/// sixth of PostgreSQL's time in single-transfer blocks). See
/// docs/perf/README.md.
impl PgStore {
    async fn prefetch(
        conn: &mut sqlx::PgConnection,
        chain: i64,
        missing: ledger_core::ReadSet,
        snapshot: &mut Snapshot,
    ) -> Result<(), StoreError> {
        let accounts: Vec<Vec<u8>> = missing
            .accounts
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect();
        let balance_addresses: Vec<Vec<u8>> = missing
            .balances
            .iter()
            .map(|(a, _)| a.as_bytes().to_vec())
            .collect();
        let balance_codes: Vec<&str> = missing.balances.iter().map(|(_, c)| c.as_str()).collect();
        let asset_codes: Vec<&str> = missing.assets.iter().map(|c| c.as_str()).collect();
        if !accounts.is_empty() || !balance_codes.is_empty() || !asset_codes.is_empty() {
            // One row per key found: 'n' (nonce), 'b' (balance), 'a' (asset).
            let rows = sqlx::query(
                "SELECT 'n' AS kind, k.address, NULL::text AS code, (t.nonce + 1)::text AS value, NULL::bigint AS scale, NULL::bytea AS issuer \
                 FROM unnest($2::bytea[]) AS k (address) \
                 CROSS JOIN LATERAL (SELECT nonce FROM transactions WHERE chain_id = $1 AND sender = k.address ORDER BY nonce DESC LIMIT 1) AS t \
                 UNION ALL \
                 SELECT 'b', k.address, k.asset, b.amount::text, NULL, NULL \
                 FROM unnest($3::bytea[], $4::text[]) AS k (address, asset) \
                 CROSS JOIN LATERAL (SELECT amount FROM balances WHERE chain_id = $1 AND address = k.address AND asset = k.asset LIMIT 1) AS b \
                 UNION ALL \
                 SELECT 'a', NULL, s.code, s.supply::text, s.scale::bigint, s.issuer \
                 FROM unnest($5::text[]) AS k (code) \
                 CROSS JOIN LATERAL (SELECT code, supply, scale, issuer FROM assets WHERE chain_id = $1 AND code = k.code LIMIT 1) AS s",
            )
            .bind(chain)
            .bind(&accounts)
            .bind(&balance_addresses)
            .bind(&balance_codes)
            .bind(&asset_codes)
            .fetch_all(&mut *conn)
            .await?;
            let mut nonces = std::collections::BTreeMap::new();
            let mut balances = std::collections::BTreeMap::new();
            let mut assets = std::collections::BTreeMap::new();
            for row in rows {
                match row.get_string("kind")?.as_str() {
                    "n" => {
                        let address =
                            Address::from_bytes(bytes(row.get_bytes("address")?, "address")?);
                        let nonce: u64 = row
                            .get_string("value")?
                            .parse()
                            .map_err(|_| corrupt("next_nonce"))?;
                        nonces.insert(address, nonce);
                    }
                    "b" => {
                        let address =
                            Address::from_bytes(bytes(row.get_bytes("address")?, "address")?);
                        let code = asset_code(&row.get_string("code")?)?;
                        balances.insert((address, code), amount(&row.get_string("value")?)?);
                    }
                    _ => {
                        let scale =
                            u8::try_from(row.get_i64("scale")?).map_err(|_| corrupt("scale"))?;
                        let state = AssetState {
                            asset: Asset {
                                code: asset_code(&row.get_string("code")?)?,
                                scale: Scale::new(scale).map_err(corrupt)?,
                                issuer: Address::from_bytes(bytes(
                                    row.get_bytes("issuer")?,
                                    "issuer",
                                )?),
                            },
                            supply: amount(&row.get_string("value")?)?,
                        };
                        assets.insert(state.asset.code, state);
                    }
                }
            }
            for address in missing.accounts {
                snapshot.insert_account(address, nonces.get(&address).copied().unwrap_or(0));
            }
            for (address, code) in missing.balances {
                let value = balances
                    .get(&(address, code))
                    .copied()
                    .unwrap_or(Amount::ZERO);
                snapshot.insert_balance(address, code, value);
            }
            for code in missing.assets {
                snapshot.insert_asset(code, assets.remove(&code));
            }
        }
        Self::load_locks(conn, chain, missing.locks, snapshot).await?;
        Ok(())
    }

    async fn write_changes(
        conn: &mut sqlx::PgConnection,
        chain: i64,
        block: &SignedBlockHeader,
        applied: &[VerifiedTransaction],
        changes: &ledger_core::StateChanges,
    ) -> Result<(), StoreError> {
        check_nonces(applied, changes)?;
        let header = &block.header;
        let height = to_i64(header.height, "height")?;
        let n = applied.len();
        let mut hashes = Vec::with_capacity(n);
        let mut positions = Vec::with_capacity(n);
        let mut senders = Vec::with_capacity(n);
        let mut nonces = Vec::with_capacity(n);
        let mut kinds = Vec::with_capacity(n);
        let mut messages = Vec::with_capacity(n);
        let mut signatures = Vec::with_capacity(n);
        for (position, tx) in applied.iter().enumerate() {
            hashes.push(tx.hash().as_bytes().to_vec());
            positions.push(i32::try_from(position).map_err(|_| corrupt("position"))?);
            senders.push(tx.transaction().from.as_bytes().to_vec());
            nonces.push(to_i64(tx.transaction().nonce, "nonce")?);
            kinds.push(tx.transaction().kind().name());
            messages.push(SignedTransactionDto::stored_message(tx.transaction()));
            signatures.push(tx.signed().signature.as_bytes().to_vec());
        }
        let mut balance_addresses = Vec::with_capacity(changes.balances.len());
        let mut balance_codes = Vec::with_capacity(changes.balances.len());
        let mut balance_values = Vec::with_capacity(changes.balances.len());
        for (address, code, value) in &changes.balances {
            balance_addresses.push(address.as_bytes().to_vec());
            balance_codes.push(code.as_str());
            balance_values.push(value.to_string());
        }
        // Assets first: balances reference them.
        Self::write_assets(conn, chain, &changes.assets).await?;
        // The block, its transactions and the balances in one statement
        // (data-modifying CTEs; the check that every transaction's block
        // exists runs at its end, when the block row does). Nonces are not
        // written: they are read back from `transactions` (migration 0012).
        sqlx::query(
            "WITH block AS (INSERT INTO blocks (chain_id, height, hash, previous_hash, timestamp_ms, tx_root, tx_count, producer, signature) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)), \
             txs AS (INSERT INTO transactions (chain_id, height, hash, position, sender, nonce, kind, message, signature) \
                 SELECT $1, $2, * FROM unnest($10::bytea[], $11::int[], $12::bytea[], $13::bigint[], $14::text[], $15::text[], $16::bytea[])) \
             INSERT INTO balances (chain_id, address, asset, amount) \
                 SELECT $1, a, c, v::numeric FROM unnest($17::bytea[], $18::text[], $19::text[]) AS u (a, c, v) \
                 ON CONFLICT (chain_id, address, asset) DO UPDATE SET amount = excluded.amount",
        )
        .bind(chain)
        .bind(height)
        .bind(header.hash().as_bytes().to_vec())
        .bind(header.previous_hash.as_bytes().to_vec())
        .bind(to_i64(header.timestamp_ms, "timestamp")?)
        .bind(header.tx_root.as_bytes().to_vec())
        .bind(i64::from(header.tx_count))
        .bind(header.producer.as_bytes().to_vec())
        .bind(block.signature.as_bytes().to_vec())
        .bind(&hashes)
        .bind(&positions)
        .bind(&senders)
        .bind(&nonces)
        .bind(&kinds)
        .bind(&messages)
        .bind(&signatures)
        .bind(&balance_addresses)
        .bind(&balance_codes)
        .bind(&balance_values)
        .execute(&mut *conn)
        .await?;
        Self::write_locks(conn, chain, &changes.locks).await?;
        Ok(())
    }
}

/// SQLite: one statement per row (in-process, so a statement costs no round trip).
impl SqliteStore {
    async fn prefetch(
        conn: &mut sqlx::SqliteConnection,
        chain: i64,
        missing: ledger_core::ReadSet,
        snapshot: &mut Snapshot,
    ) -> Result<(), StoreError> {
        for address in missing.accounts {
            let row = sqlx::query(SELECT_NEXT_NONCE)
                .bind(chain)
                .bind(address.as_bytes().to_vec())
                .fetch_optional(&mut *conn)
                .await?;
            let nonce = match row {
                Some(row) => to_u64(row.get_i64("next_nonce")?, "next_nonce")?,
                None => 0,
            };
            snapshot.insert_account(address, nonce);
        }
        for (address, code) in missing.balances {
            let row = sqlx::query(Self::sql("SELECT amount::text AS amount FROM balances WHERE chain_id = $1 AND address = $2 AND asset = $3"))
                .bind(chain)
                .bind(address.as_bytes().to_vec())
                .bind(code.as_str())
                .fetch_optional(&mut *conn)
                .await?;
            let value = match row {
                Some(row) => amount(&row.get_string("amount")?)?,
                None => Amount::ZERO,
            };
            snapshot.insert_balance(address, code, value);
        }
        for code in missing.assets {
            let row = sqlx::query(Self::sql(const_format(
                SELECT_ASSET,
                " WHERE chain_id = $1 AND code = $2",
            )))
            .bind(chain)
            .bind(code.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            let state = row.map(|row| asset_from_row(&row)).transpose()?;
            snapshot.insert_asset(code, state);
        }
        Self::load_locks(conn, chain, missing.locks, snapshot).await?;
        Ok(())
    }

    async fn write_changes(
        conn: &mut sqlx::SqliteConnection,
        chain: i64,
        block: &SignedBlockHeader,
        applied: &[VerifiedTransaction],
        changes: &ledger_core::StateChanges,
    ) -> Result<(), StoreError> {
        check_nonces(applied, changes)?;
        let header = &block.header;
        let height = to_i64(header.height, "height")?;
        sqlx::query("INSERT INTO blocks (chain_id, height, hash, previous_hash, timestamp_ms, tx_root, tx_count, producer, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(chain)
            .bind(height)
            .bind(header.hash().as_bytes().to_vec())
            .bind(header.previous_hash.as_bytes().to_vec())
            .bind(to_i64(header.timestamp_ms, "timestamp")?)
            .bind(header.tx_root.as_bytes().to_vec())
            .bind(i64::from(header.tx_count))
            .bind(header.producer.as_bytes().to_vec())
            .bind(block.signature.as_bytes().to_vec())
            .execute(&mut *conn)
            .await?;
        for (position, tx) in applied.iter().enumerate() {
            let message = SignedTransactionDto::stored_message(tx.transaction());
            let kind = tx.transaction().kind().name();
            sqlx::query("INSERT INTO transactions (chain_id, hash, height, position, sender, nonce, kind, message, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(chain)
                .bind(tx.hash().as_bytes().to_vec())
                .bind(height)
                .bind(position as i64)
                .bind(tx.transaction().from.as_bytes().to_vec())
                .bind(to_i64(tx.transaction().nonce, "nonce")?)
                .bind(kind)
                .bind(message)
                .bind(tx.signed().signature.as_bytes().to_vec())
                .execute(&mut *conn)
                .await?;
        }
        // Assets first: balances reference them.
        Self::write_assets(conn, chain, &changes.assets).await?;
        for (address, code, value) in &changes.balances {
            sqlx::query(Self::sql("INSERT INTO balances (chain_id, address, asset, amount) VALUES ($1, $2, $3, $4::numeric) ON CONFLICT (chain_id, address, asset) DO UPDATE SET amount = excluded.amount"))
                .bind(chain)
                .bind(address.as_bytes().to_vec())
                .bind(code.as_str())
                .bind(value.to_string())
                .execute(&mut *conn)
                .await?;
        }
        Self::write_locks(conn, chain, &changes.locks).await?;
        Ok(())
    }
}

impl_store!(
    PgStore,
    sqlx::PgPool,
    sqlx::PgConnection,
    "../migrations/postgres",
    true
);
impl_store!(
    SqliteStore,
    sqlx::SqlitePool,
    sqlx::SqliteConnection,
    "../migrations/sqlite",
    false
);

/// The store the gateway runs on, chosen by the database URL.
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// PostgreSQL.
    Postgres(PgStore),
    /// Embedded SQLite.
    Sqlite(SqliteStore),
}

/// Calls the same method on whichever store this is, inside a
/// `store.<method>` span ([`traced`]). Every `AnyStore` trait (ledger,
/// transfers, SATP, settlement) delegates through it.
macro_rules! delegate {
    ($self:ident, $store:ident => $s:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            AnyStore::Postgres($store) => {
                $crate::store::traced(concat!("store.", stringify!($method)), "postgresql", $s.$method($($arg),*)).await
            }
            AnyStore::Sqlite($store) => {
                $crate::store::traced(concat!("store.", stringify!($method)), "sqlite", $s.$method($($arg),*)).await
            }
        }
    };
}
pub(crate) use delegate;

/// Runs a store call in its own `store.<method>` span (debug level, see
/// `crate::telemetry`). The export leaves out the ones that are not inside
/// another span (the transfer engine's polling, the producer's commits), so
/// they do not start a trace of their own every few milliseconds.
pub(crate) async fn traced<T>(
    name: &'static str,
    system: &'static str,
    call: impl std::future::Future<Output = T>,
) -> T {
    use tracing::Instrument as _;
    call.instrument(tracing::debug_span!(
        "store",
        otel.name = name,
        db.system.name = system
    ))
    .await
}

impl AnyStore {
    /// What `/metrics` reads from the database at scrape time.
    pub async fn ops_gauges(&self) -> Result<OpsGauges, StoreError> {
        delegate!(self, s => s.ops_gauges())
    }

    /// The same database through connections of the block producer's own
    /// (see `crate::sequencer`): on PostgreSQL a pool of two, opened on
    /// first use by the runtime that calls this, so their sockets are
    /// served by the producer's thread rather than queued behind request
    /// handling; the producer uses them one batch after another, so they
    /// are not pinged before each use. SQLite is in-process: the same store.
    /// Call it from inside the runtime that will use it.
    ///
    /// The producer's connections run with `enable_seqscan` off. Every
    /// statement they send reads by key (the prefetch, the tip, HTLCs, the
    /// check that a block's transactions name it), and their plans are kept
    /// for the connection's life: a plan made while a table was small would
    /// otherwise scan the whole table for every key once it has grown.
    pub fn for_block_producer(&self) -> AnyStore {
        match self {
            AnyStore::Postgres(pg) => {
                let options = (*pg.pool().connect_options())
                    .clone()
                    .options([("enable_seqscan", "off")]);
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .min_connections(0)
                    .test_before_acquire(false)
                    .acquire_timeout(std::time::Duration::from_secs(5))
                    .connect_lazy_with(options);
                AnyStore::Postgres(PgStore::new(pool))
            }
            AnyStore::Sqlite(_) => self.clone(),
        }
    }
}

impl LedgerStore for AnyStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        delegate!(self, s => s.migrate())
    }
    async fn ping(&self) -> Result<(), StoreError> {
        delegate!(self, s => s.ping())
    }
    async fn tip(&self, chain_id: ChainId) -> Result<ChainTip, StoreError> {
        delegate!(self, s => s.tip(chain_id))
    }
    async fn commit_batch(
        &self,
        chain_id: ChainId,
        block_key: &SigningKey,
        now_ms: u64,
        txs: &[VerifiedTransaction],
    ) -> Result<CommitResult, StoreError> {
        delegate!(self, s => s.commit_batch(chain_id, block_key, now_ms, txs))
    }
    async fn commit_batch_warm(
        &self,
        chain_id: ChainId,
        block_key: &SigningKey,
        now_ms: u64,
        txs: &[VerifiedTransaction],
        warm: &mut Option<WarmState>,
    ) -> Result<CommitResult, StoreError> {
        delegate!(self, s => s.commit_batch_warm(chain_id, block_key, now_ms, txs, warm))
    }
    async fn transaction(
        &self,
        chain_id: ChainId,
        hash: TxHash,
    ) -> Result<Option<StoredTransaction>, StoreError> {
        delegate!(self, s => s.transaction(chain_id, hash))
    }
    async fn block(
        &self,
        chain_id: ChainId,
        height: u64,
    ) -> Result<Option<SignedBlockHeader>, StoreError> {
        delegate!(self, s => s.block(chain_id, height))
    }
    async fn blocks(
        &self,
        chain_id: ChainId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<SignedBlockHeader>, StoreError> {
        delegate!(self, s => s.blocks(chain_id, before, limit))
    }
    async fn block_transactions(
        &self,
        chain_id: ChainId,
        height: u64,
    ) -> Result<Vec<StoredTransaction>, StoreError> {
        delegate!(self, s => s.block_transactions(chain_id, height))
    }
    async fn block_tx_hashes(
        &self,
        chain_id: ChainId,
        height: u64,
    ) -> Result<Vec<TxHash>, StoreError> {
        delegate!(self, s => s.block_tx_hashes(chain_id, height))
    }
    async fn producers(&self, chain_id: ChainId) -> Result<Vec<Address>, StoreError> {
        delegate!(self, s => s.producers(chain_id))
    }
    async fn account(
        &self,
        chain_id: ChainId,
        address: Address,
    ) -> Result<AccountView, StoreError> {
        delegate!(self, s => s.account(chain_id, address))
    }
    async fn assets(
        &self,
        chain_id: ChainId,
        after: Option<AssetCode>,
        limit: u32,
    ) -> Result<Vec<AssetState>, StoreError> {
        delegate!(self, s => s.assets(chain_id, after, limit))
    }
    async fn asset(
        &self,
        chain_id: ChainId,
        code: AssetCode,
    ) -> Result<Option<AssetState>, StoreError> {
        delegate!(self, s => s.asset(chain_id, code))
    }
    async fn htlc(&self, chain_id: ChainId, id: LockId) -> Result<Option<Htlc>, StoreError> {
        delegate!(self, s => s.htlc(chain_id, id))
    }
    async fn reserve_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
        request_hash: &[u8; 32],
        now_ms: u64,
        stale_after_ms: u64,
    ) -> Result<Reservation, StoreError> {
        delegate!(self, s => s.reserve_idempotency_key(tenant, key, request_hash, now_ms, stale_after_ms))
    }
    async fn complete_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
        claimed_at_ms: u64,
        response: &IdempotentResponse,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.complete_idempotency_key(tenant, key, claimed_at_ms, response))
    }
    async fn release_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
        claimed_at_ms: u64,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.release_idempotency_key(tenant, key, claimed_at_ms))
    }
}
