//! The sequencer: the one loop per ledger that applies transactions and
//! produces blocks. Handlers hand it verified transactions over a bounded
//! queue; it gathers whatever queued up while the previous batch committed
//! (a submission that arrives alone waits up to `batch_wait_ms` for company,
//! by default not at all), up to `batch_txs_max`, into one batch, and commits the batch as one block in one
//! database transaction (group commit: one fsync for the whole batch). Each
//! handler is answered only after that commit, so an acknowledged
//! transaction is durable.
//!
//! On PostgreSQL the sequencer keeps the committed state its batches read
//! and wrote (`store::WarmState`, bounded by `state_cache_entries_max`), so
//! a commit reads only what it has not seen and writes its block in one
//! statement; the cache is dropped after any failed commit and never
//! outlives the producer role.
//!
//! The sequencer runs on an OS thread of its own (`block-producer-<chain
//! id>`), in a single-threaded runtime, with database connections of its
//! own (`AnyStore::for_block_producer`): a batch is a chain of round trips
//! (read what the cache lacks, write the block), and on the shared runtime
//! each reply waited behind the request handlers' tasks before the
//! sequencer saw it; measured in docs/perf/README.md. Handlers reach it
//! over the queue and get their answers over one-shot channels, which work
//! across runtimes.
//!
//! Only the process that holds the block-producer role runs a sequencer (see
//! `crate::producer`); the queue is bounded by transactions waiting
//! (`queue_txs_max`), and a full queue answers 503 at once rather than
//! letting latency grow without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ledger_core::block::SignedBlockHeader;
use ledger_core::types::BlockHash;
use ledger_core::{ChainId, Outcome, SigningKey, TxBody, VerifiedTransaction};
use tokio::sync::{mpsc, oneshot};

use crate::store::{AnyStore, LedgerStore, StoreError, WarmState};

/// What the sequencer answers for one submission.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// Outcome per transaction of the submission.
    pub outcomes: Vec<Outcome>,
    /// The block holding the applied ones.
    pub block: Option<SignedBlockHeader>,
    /// That block's hash, computed once for every submission of the block
    /// (each receipt names it).
    pub block_hash: Option<BlockHash>,
    /// Position in that block, per transaction, when applied.
    pub positions: Vec<Option<u32>>,
}

/// Why a submission was not processed.
#[derive(Debug, thiserror::Error)]
pub enum SequencerError {
    /// The queue is full.
    #[error("the sequencer queue is full")]
    Busy,
    /// The sequencer stopped (shutdown, or lost the producer role).
    #[error("the sequencer is not running")]
    Stopped,
    /// The commit failed; nothing of the batch was applied.
    #[error("commit failed: {0}")]
    Store(#[from] StoreError),
}

struct Job {
    txs: Vec<VerifiedTransaction>,
    reply: oneshot::Sender<Result<Receipt, Arc<StoreError>>>,
}

/// Handle to a running sequencer.
#[derive(Clone, Debug)]
pub struct Sequencer {
    queue: mpsc::Sender<Job>,
    waiting_txs: Arc<AtomicUsize>,
    queue_txs_max: usize,
    retired: Arc<AtomicBool>,
}

/// Sequencer settings.
#[derive(Clone, Debug)]
pub struct SequencerConfig {
    /// The ledger.
    pub chain_id: ChainId,
    /// Largest batch.
    pub batch_txs_max: usize,
    /// How long to wait to fill a batch.
    pub batch_wait: Duration,
    /// Most transactions waiting.
    pub queue_txs_max: usize,
    /// Most entries (nonces, balances, assets, HTLCs) of committed state the
    /// sequencer keeps between batches (see `store::WarmState`); 0 keeps
    /// none, so every commit reads what it needs from the database.
    pub state_cache_entries_max: usize,
    /// Notified after every committed block that applied an HTLC
    /// transaction (a lock, claim or refund: what a transfer can wait for),
    /// so the transfer engine reacts without waiting for its next tick. A
    /// block of plain payments does not notify it.
    pub on_commit: Arc<tokio::sync::Notify>,
}

/// Milliseconds since the Unix epoch by the system clock (0 if it is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Sequencer {
    /// Starts the sequencer task; it runs until every handle is dropped.
    pub fn start(store: AnyStore, block_key: SigningKey, config: SequencerConfig) -> Self {
        // The channel bound counts jobs; the real bound is on transactions.
        let (queue, mut jobs) = mpsc::channel::<Job>(config.queue_txs_max.max(1));
        let waiting_txs = Arc::new(AtomicUsize::new(0));
        let waiting = waiting_txs.clone();
        let retired = Arc::new(AtomicBool::new(false));
        let sequencer = Self {
            queue,
            waiting_txs,
            queue_txs_max: config.queue_txs_max,
            retired: retired.clone(),
        };
        let run = async move {
            // Committed state carried from one batch to the next; it lives
            // exactly as long as this task, which runs only while this
            // process holds the producer role.
            let mut warm: Option<WarmState> = None;
            let store = store.for_block_producer();
            while let Some(first) = jobs.recv().await {
                let mut count = first.txs.len();
                let mut batch = vec![first];
                // Whatever queued up while the last batch committed goes in
                // at once; only a submission that arrives alone waits up to
                // `batch_wait` for company.
                while count < config.batch_txs_max {
                    match jobs.try_recv() {
                        Ok(job) => {
                            count += job.txs.len();
                            batch.push(job);
                        }
                        Err(_) => break,
                    }
                }
                if batch.len() == 1 && !config.batch_wait.is_zero() {
                    let deadline = tokio::time::Instant::now() + config.batch_wait;
                    while count < config.batch_txs_max {
                        match tokio::time::timeout_at(deadline, jobs.recv()).await {
                            Ok(Some(job)) => {
                                count += job.txs.len();
                                batch.push(job);
                            }
                            _ => break,
                        }
                    }
                }
                waiting.fetch_sub(count, Ordering::AcqRel);
                if retired.load(Ordering::Acquire) {
                    // The role is gone: commit nothing more (its cache may
                    // be stale by now). The submissions waiting are
                    // answered 503, as the queue's later ones are once it
                    // closes here.
                    break;
                }
                let moved_locks =
                    commit(&store, &block_key, config.chain_id, batch, &mut warm).await;
                if warm
                    .as_ref()
                    .is_some_and(|w| w.snapshot.entry_count() > config.state_cache_entries_max)
                {
                    // Over the bound: start again from the database (the
                    // next commit is a cold one and refills what it reads).
                    warm = None;
                }
                if moved_locks {
                    config.on_commit.notify_one();
                }
            }
        };
        // The producer runs on a thread of its own, with its own runtime
        // and database connections: each batch is a chain of round trips
        // (read, write, answer), and on the shared runtime every reply
        // waited behind the request handlers' tasks (see docs/perf).
        let chain = config.chain_id.get();
        let spawned = std::thread::Builder::new()
            .name(format!("block-producer-{chain}"))
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(run),
                    // The queue's receiver is dropped with `run`: the
                    // sequencer reports itself stopped and the producer
                    // steps down.
                    Err(error) => {
                        tracing::error!(%error, chain_id = chain, "cannot start the block producer's runtime")
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, chain_id = chain, "cannot start the block producer's thread");
        }
        sequencer
    }

    /// Stops the sequencer when this process gives up the producer role:
    /// whatever it has not started committing is answered 503
    /// (`SequencerError::Stopped`) rather than committed from a cache that
    /// another producer may have made stale. Handles that submissions still
    /// hold would otherwise keep it running.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// True once the sequencer task has ended (it never should; the
    /// producer steps down when it does, so another process can take over).
    pub fn is_stopped(&self) -> bool {
        self.queue.is_closed()
    }

    /// Submits verified transactions and waits for their durable outcome.
    pub async fn submit(&self, txs: Vec<VerifiedTransaction>) -> Result<Receipt, SequencerError> {
        let n = txs.len();
        let before = self.waiting_txs.fetch_add(n, Ordering::AcqRel);
        if before + n > self.queue_txs_max {
            self.waiting_txs.fetch_sub(n, Ordering::AcqRel);
            return Err(SequencerError::Busy);
        }
        let (reply, answer) = oneshot::channel();
        if let Err(error) = self.queue.try_send(Job { txs, reply }) {
            self.waiting_txs.fetch_sub(n, Ordering::AcqRel);
            return Err(match error {
                mpsc::error::TrySendError::Full(_) => SequencerError::Busy,
                mpsc::error::TrySendError::Closed(_) => SequencerError::Stopped,
            });
        }
        match answer.await {
            Ok(Ok(receipt)) => Ok(receipt),
            Ok(Err(error)) => Err(SequencerError::Store(match Arc::try_unwrap(error) {
                Ok(error) => error,
                // Shared by the batch's other submissions: keep whether the
                // database was unreachable (503) or the commit failed (500).
                Err(shared) if shared.is_unavailable() => {
                    StoreError::Unavailable(shared.to_string())
                }
                Err(shared) => StoreError::Corrupt(shared.to_string()),
            })),
            Err(_) => Err(SequencerError::Stopped),
        }
    }
}

/// Commits `batch` as one block and answers its submitters. True when the
/// block applied an HTLC transaction (a lock, claim or refund): what a
/// cross-ledger transfer can be waiting for (`SequencerConfig::on_commit`).
async fn commit(
    store: &AnyStore,
    block_key: &SigningKey,
    chain_id: ChainId,
    batch: Vec<Job>,
    warm: &mut Option<WarmState>,
) -> bool {
    let mut all = Vec::with_capacity(batch.iter().map(|job| job.txs.len()).sum());
    let mut jobs = Vec::with_capacity(batch.len());
    for job in batch {
        let n = job.txs.len();
        all.extend(job.txs);
        jobs.push((n, job.reply));
    }
    let started = std::time::Instant::now();
    let result = store
        .commit_batch_warm(chain_id, block_key, now_ms(), &all, warm)
        .await;
    match result {
        Ok(result) => {
            let applied = result.outcomes.iter().filter(|o| o.is_applied()).count();
            crate::metrics::batch_committed(
                chain_id.get(),
                applied,
                result.outcomes.len() - applied,
                started.elapsed(),
            );
            tracing::debug!(
                txs = all.len(),
                height = result.block.as_ref().map(|b| b.header.height),
                elapsed_us = started.elapsed().as_micros() as u64,
                "batch committed"
            );
            let moved_locks = all.iter().zip(&result.outcomes).any(|(tx, outcome)| {
                outcome.is_applied()
                    && matches!(
                        tx.transaction().body,
                        TxBody::HtlcLock { .. }
                            | TxBody::HtlcClaim { .. }
                            | TxBody::HtlcRefund { .. }
                    )
            });
            let block_hash = result.block.as_ref().map(|b| b.header.hash());
            let mut offset = 0;
            for (n, reply) in jobs {
                let receipt = Receipt {
                    outcomes: result.outcomes[offset..offset + n].to_vec(),
                    block: result.block,
                    block_hash,
                    positions: result.positions[offset..offset + n].to_vec(),
                };
                offset += n;
                // A handler that gave up (client gone) just misses its answer;
                // the transaction is committed all the same.
                let _ = reply.send(Ok(receipt));
            }
            moved_locks
        }
        Err(error) => {
            crate::metrics::commit_failed(chain_id.get());
            tracing::error!(%error, txs = all.len(), "batch commit failed; nothing of it applied");
            let error = Arc::new(error);
            for (_, reply) in jobs {
                let _ = reply.send(Err(error.clone()));
            }
            false
        }
    }
}
