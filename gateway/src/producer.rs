//! The block-producer role: exactly one gateway process per database applies
//! transactions and seals blocks.
//!
//! - PostgreSQL: the role is a session-level advisory lock
//!   (`pg_try_advisory_lock`) held on a dedicated connection. A process
//!   without it keeps trying every second and takes over when the holder's
//!   session ends (crash, `kill -9`, network loss: PostgreSQL releases the
//!   lock with the session). Independently of the role, every commit also
//!   takes a transaction-level advisory lock on another key before it reads
//!   the chain tip, so even two processes that both believed they held the
//!   role could never fork the chain.
//! - SQLite: the embedded database belongs to one process; it is always the
//!   producer, and commits use `BEGIN IMMEDIATE` so a second process on the
//!   same file fails to write instead of forking.
//!
//! A process that is not the producer serves reads and answers writes with
//! 503 `not-block-producer` and `Retry-After`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ledger_core::{ChainId, SigningKey};
use sqlx::Acquire;

use crate::sequencer::{Sequencer, SequencerConfig};
use crate::store::AnyStore;

/// The advisory-lock key of the producer role of a ledger.
pub fn role_lock_key(chain_id: ChainId) -> i64 {
    lock_key(b"lockgate-block-producer", chain_id)
}

/// The advisory-lock key every commit of a ledger takes.
pub fn commit_lock_key(chain_id: ChainId) -> i64 {
    lock_key(b"lockgate-block-commit", chain_id)
}

fn lock_key(purpose: &[u8], chain_id: ChainId) -> i64 {
    let hash = ledger_core::hash::sha256(&[purpose, &chain_id.get().to_be_bytes()].concat());
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&hash[..8]);
    i64::from_be_bytes(eight)
}

/// The running sequencer, when this process is the producer.
#[derive(Clone, Debug, Default)]
pub struct Producer {
    current: Arc<RwLock<Option<Sequencer>>>,
}

impl Producer {
    /// The sequencer, if this process currently holds the role.
    pub fn sequencer(&self) -> Option<Sequencer> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, sequencer: Option<Sequencer>) {
        match self.current.write() {
            Ok(mut guard) => *guard = sequencer,
            Err(poisoned) => *poisoned.into_inner() = sequencer,
        }
    }

    /// Starts competing for the role (PostgreSQL) or takes it (SQLite).
    pub fn start(store: AnyStore, block_key: SigningKey, config: SequencerConfig) -> Self {
        let producer = Self::default();
        match &store {
            AnyStore::Sqlite(_) => {
                producer.set(Some(Sequencer::start(store.clone(), block_key, config)));
            }
            AnyStore::Postgres(pg) => {
                let pool = pg.pool().clone();
                let handle = producer.clone();
                tokio::spawn(async move {
                    loop {
                        hold_role(&pool, &handle, &store, &block_key, &config).await;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                });
            }
        }
        producer
    }
}

/// Tries to take the role; while held, checks the session every second and
/// gives the role up as soon as the session is in doubt.
async fn hold_role(
    pool: &sqlx::PgPool,
    producer: &Producer,
    store: &AnyStore,
    block_key: &SigningKey,
    config: &SequencerConfig,
) {
    let Ok(connection) = pool.acquire().await else {
        return;
    };
    // The session must outlive pool recycling: take it out of the pool.
    let mut session = connection.detach();
    let key = role_lock_key(config.chain_id);
    let acquired: Result<bool, sqlx::Error> = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut session)
        .await;
    if !matches!(acquired, Ok(true)) {
        return;
    }
    tracing::info!(
        chain_id = config.chain_id.get(),
        "this process is now the block producer"
    );
    producer.set(Some(Sequencer::start(
        store.clone(),
        block_key.clone(),
        config.clone(),
    )));
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let alive = match session.acquire().await {
            Ok(conn) => sqlx::query("SELECT 1").execute(conn).await.is_ok(),
            Err(_) => false,
        };
        if !alive {
            tracing::warn!(
                "lost the database session holding the block-producer role; stepping down"
            );
            producer.set(None);
            return;
        }
    }
}
