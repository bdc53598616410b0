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

    /// Installs a new sequencer or none; the one it replaces is retired.
    fn set(&self, sequencer: Option<Sequencer>) {
        let old = match self.current.write() {
            Ok(mut guard) => std::mem::replace(&mut *guard, sequencer),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), sequencer),
        };
        if let Some(old) = old {
            old.retire();
        }
    }

    /// Takes the role (SQLite), or competes for it (PostgreSQL): one
    /// attempt before returning, so a lone gateway produces from its first
    /// request, then a background task that keeps trying while another
    /// process holds it and steps down if the session holding it is lost.
    pub async fn start(store: AnyStore, block_key: SigningKey, config: SequencerConfig) -> Self {
        let producer = Self::default();
        match &store {
            AnyStore::Sqlite(_) => {
                producer.set(Some(Sequencer::start(store.clone(), block_key, config)));
            }
            AnyStore::Postgres(pg) => {
                let pool = pg.pool().clone();
                let key = role_lock_key(config.chain_id);
                let mut session = try_take_role(&pool, key).await;
                if session.is_some() {
                    tracing::info!(
                        chain_id = config.chain_id.get(),
                        "this process is the block producer"
                    );
                    producer.set(Some(Sequencer::start(
                        store.clone(),
                        block_key.clone(),
                        config.clone(),
                    )));
                }
                let handle = producer.clone();
                tokio::spawn(async move {
                    loop {
                        if let Some(held) = session.take() {
                            if handle.sequencer().is_none() {
                                tracing::info!(
                                    chain_id = config.chain_id.get(),
                                    "this process is now the block producer"
                                );
                                handle.set(Some(Sequencer::start(
                                    store.clone(),
                                    block_key.clone(),
                                    config.clone(),
                                )));
                            }
                            watch_session(held, &handle).await;
                            tracing::warn!(
                                "lost the database session holding the block-producer role; stepping down"
                            );
                            handle.set(None);
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        session = try_take_role(&pool, key).await;
                    }
                });
            }
        }
        producer
    }
}

/// One attempt at the role: the session holding the lock, or `None`.
async fn try_take_role(pool: &sqlx::PgPool, key: i64) -> Option<sqlx::PgConnection> {
    let connection = pool.acquire().await.ok()?;
    // The session must outlive pool recycling: take it out of the pool.
    let mut session = connection.detach();
    let acquired: Result<bool, sqlx::Error> = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut session)
        .await;
    matches!(acquired, Ok(true)).then_some(session)
}

/// Returns when the session holding the role stops answering, or the
/// sequencer has stopped; dropping the session then releases the lock.
async fn watch_session(mut session: sqlx::PgConnection, producer: &Producer) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if producer.sequencer().is_none_or(|s| s.is_stopped()) {
            tracing::error!("the sequencer stopped; giving up the block-producer role");
            return;
        }
        let alive = match session.acquire().await {
            Ok(conn) => sqlx::query("SELECT 1").execute(conn).await.is_ok(),
            Err(_) => false,
        };
        if !alive {
            return;
        }
    }
}
