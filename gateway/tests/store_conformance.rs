//! The store contract, run against both implementations: the PostgreSQL
//! store and the embedded SQLite store must behave the same on every call.
//! Each test gets a fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ledger_core::block::ChainTip;
use ledger_core::merkle::MerkleTree;
use ledger_core::{
    Amount, HtlcStatus, LockId, Outcome, Rejection, SigningKey, TxHash, VerifiedTransaction,
};
use lockgate::store::{
    AnyStore, CommitResult, IdempotentResponse, LedgerStore, Reservation, StoreError, WarmState,
};
use support::*;

async fn store(kind: Db) -> (AnyStore, TestDb) {
    let db = TestDb::new(kind).await;
    let config = test_config(&db);
    let store = lockgate::app::connect(&config).await.unwrap();
    (store, db)
}

fn verified(key: &SigningKey, nonce: u64, body: ledger_core::TxBody) -> VerifiedTransaction {
    sign(key, nonce, body).verify().unwrap()
}

/// Commits through `commit_batch`, or, when `warm` is given, through
/// `commit_batch_warm` with the producer's cache carried across calls (what
/// the sequencer does).
struct Committer {
    store: AnyStore,
    warm: Option<Option<WarmState>>,
}

impl Committer {
    async fn commit_batch(
        &mut self,
        chain_id: ledger_core::ChainId,
        producer: &SigningKey,
        now_ms: u64,
        txs: &[VerifiedTransaction],
    ) -> Result<CommitResult, StoreError> {
        match &mut self.warm {
            None => {
                self.store
                    .commit_batch(chain_id, producer, now_ms, txs)
                    .await
            }
            Some(warm) => {
                self.store
                    .commit_batch_warm(chain_id, producer, now_ms, txs, warm)
                    .await
            }
        }
    }
}

async fn conformance(kind: Db, warm: bool) {
    let (store, _db) = store(kind).await;
    let mut committer = Committer {
        store: store.clone(),
        warm: warm.then_some(None),
    };
    let producer = key(99);
    let (issuer, alice, bob) = (key(1), key(2), key(3));
    assert_eq!(store.tip(chain()).await.unwrap(), ChainTip::GENESIS);

    // A batch: register, issue, transfer, and one rejected (nonce gap).
    let batch = vec![
        verified(&issuer, 0, register("EUR")),
        verified(&issuer, 1, issue("EUR", alice.address(), 1000)),
        verified(&alice, 0, transfer("EUR", bob.address(), 300)),
        verified(&alice, 7, transfer("EUR", bob.address(), 1)),
    ];
    let result = committer
        .commit_batch(chain(), &producer, 1_000, &batch)
        .await
        .unwrap();
    assert_eq!(&result.outcomes[..3], &[Outcome::Applied; 3]);
    assert!(matches!(
        result.outcomes[3],
        Outcome::Rejected(Rejection::NonceGap { .. })
    ));
    assert_eq!(result.positions, vec![Some(0), Some(1), Some(2), None]);
    let block0 = result.block.unwrap();
    assert_eq!(block0.header.height, 0);
    assert_eq!(block0.header.tx_count, 3);
    block0.verify_signature().unwrap();

    // The block and its transactions read back exactly.
    assert_eq!(store.block(chain(), 0).await.unwrap(), Some(block0));
    let txs = store.block_transactions(chain(), 0).await.unwrap();
    assert_eq!(txs.len(), 3);
    for (i, stored) in txs.iter().enumerate() {
        assert_eq!(stored.signed, *batch[i].signed());
        assert_eq!(stored.hash, batch[i].hash());
        assert_eq!((stored.height, stored.position), (0, i as u32));
    }
    let hashes: Vec<TxHash> = txs.iter().map(|t| t.hash).collect();
    assert_eq!(MerkleTree::new(&hashes).root(), block0.header.tx_root);
    assert_eq!(
        store
            .transaction(chain(), batch[2].hash())
            .await
            .unwrap()
            .unwrap()
            .signed,
        *batch[2].signed()
    );
    assert_eq!(
        store.transaction(chain(), batch[3].hash()).await.unwrap(),
        None
    );

    let account = store.account(chain(), alice.address()).await.unwrap();
    assert_eq!(account.next_nonce, 1);
    assert_eq!(
        account.balances,
        vec![(asset("EUR"), Amount::from_minor_units(700))]
    );
    let nobody = store.account(chain(), key(50).address()).await.unwrap();
    assert_eq!((nobody.next_nonce, nobody.balances.len()), (0, 0));
    let assets = store.assets(chain(), None, 10).await.unwrap();
    assert_eq!(assets.len(), 1);
    assert_eq!(assets[0].supply, Amount::from_minor_units(1000));
    assert_eq!(
        store.asset(chain(), asset("EUR")).await.unwrap(),
        Some(assets[0])
    );
    assert_eq!(store.asset(chain(), asset("USD")).await.unwrap(), None);

    // HTLC: lock, then claim in the next block; amounts beyond 2^64 survive.
    let secret = [7u8; 32];
    let lock_tx = verified(&alice, 1, lock("EUR", bob.address(), 200, &secret, 5_000));
    let lock_id = LockId::from(lock_tx.hash());
    let result = committer
        .commit_batch(chain(), &producer, 2_000, &[lock_tx])
        .await
        .unwrap();
    assert_eq!(result.block.unwrap().header.height, 1);
    assert_eq!(
        store.htlc(chain(), lock_id).await.unwrap().unwrap().status,
        HtlcStatus::Locked
    );
    let result = committer
        .commit_batch(
            chain(),
            &producer,
            3_000,
            &[verified(&bob, 0, claim(lock_id, &secret))],
        )
        .await
        .unwrap();
    assert_eq!(result.outcomes, vec![Outcome::Applied]);
    let htlc = store.htlc(chain(), lock_id).await.unwrap().unwrap();
    assert_eq!(htlc.status, HtlcStatus::Claimed { preimage: secret });
    assert_eq!(
        store
            .account(chain(), bob.address())
            .await
            .unwrap()
            .balances,
        vec![(asset("EUR"), Amount::from_minor_units(500))]
    );
    let big = u128::MAX - 1000;
    let result = committer
        .commit_batch(
            chain(),
            &producer,
            3_000,
            &[verified(&issuer, 2, issue("EUR", issuer.address(), big))],
        )
        .await
        .unwrap();
    assert_eq!(result.outcomes, vec![Outcome::Applied]);
    assert_eq!(
        store
            .asset(chain(), asset("EUR"))
            .await
            .unwrap()
            .unwrap()
            .supply,
        Amount::MAX
    );

    // A batch where nothing applies writes nothing, not even a block.
    let tip = store.tip(chain()).await.unwrap();
    let result = committer
        .commit_batch(
            chain(),
            &producer,
            4_000,
            &[verified(&alice, 0, transfer("EUR", bob.address(), 1))],
        )
        .await
        .unwrap();
    assert_eq!(result.block, None);
    assert_eq!(store.tip(chain()).await.unwrap(), tip);

    // Block time never goes back even if the clock does.
    let result = committer
        .commit_batch(
            chain(),
            &producer,
            10,
            &[verified(&alice, 2, transfer("EUR", bob.address(), 1))],
        )
        .await
        .unwrap();
    assert_eq!(
        result.block.unwrap().header.timestamp_ms,
        tip.last_timestamp_ms
    );

    // Paging of blocks, newest first.
    let page = store.blocks(chain(), None, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|b| b.header.height).collect::<Vec<_>>(),
        vec![4, 3]
    );
    let page = store.blocks(chain(), Some(3), 10).await.unwrap();
    assert_eq!(
        page.iter().map(|b| b.header.height).collect::<Vec<_>>(),
        vec![2, 1, 0]
    );

    // Idempotency keys: claimed once, completed, replayed; stale claims
    // (a process died mid-request) can be taken over, and the old claim can
    // then neither complete nor release; released keys are free again.
    let hash = [1u8; 32];
    let reserve = |key: &'static str, hash: [u8; 32], now: u64, stale: u64| {
        let store = store.clone();
        async move {
            store
                .reserve_idempotency_key("t", key, &hash, now, stale)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        reserve("k", hash, 1_000, 10_000).await,
        Reservation::Reserved {
            claimed_at_ms: 1_000
        }
    );
    assert_eq!(
        reserve("k", [2; 32], 1_001, 10_000).await,
        Reservation::InProgress { request_hash: hash }
    );
    let record = IdempotentResponse {
        request_hash: hash,
        status: 201,
        body: "{\"a\":1}".into(),
    };
    store
        .complete_idempotency_key("t", "k", 1_000, &record)
        .await
        .unwrap();
    assert_eq!(
        reserve("k", hash, 99_999, 10).await,
        Reservation::Done(record.clone())
    );
    let other_tenant = store
        .reserve_idempotency_key("other-tenant", "k", &hash, 1_000, 10_000)
        .await
        .unwrap();
    assert_eq!(
        other_tenant,
        Reservation::Reserved {
            claimed_at_ms: 1_000
        }
    );

    assert_eq!(
        reserve("stale", hash, 1_000, 10_000).await,
        Reservation::Reserved {
            claimed_at_ms: 1_000
        }
    );
    assert!(matches!(
        reserve("stale", hash, 5_000, 10_000).await,
        Reservation::InProgress { .. }
    ));
    assert_eq!(
        reserve("stale", hash, 20_000, 10_000).await,
        Reservation::Reserved {
            claimed_at_ms: 20_000
        }
    );
    // The first, overtaken claim finishes late: it records nothing.
    store
        .complete_idempotency_key("t", "stale", 1_000, &record)
        .await
        .unwrap();
    store
        .release_idempotency_key("t", "stale", 1_000)
        .await
        .unwrap();
    assert!(matches!(
        reserve("stale", hash, 20_001, 10_000).await,
        Reservation::InProgress { .. }
    ));
    // The owner releases it; then it is free.
    store
        .release_idempotency_key("t", "stale", 20_000)
        .await
        .unwrap();
    assert_eq!(
        reserve("stale", hash, 20_002, 10_000).await,
        Reservation::Reserved {
            claimed_at_ms: 20_002
        }
    );
    // Releasing never drops a completed answer.
    store
        .release_idempotency_key("t", "k", 1_000)
        .await
        .unwrap();
    assert!(matches!(
        reserve("k", hash, 1, 1).await,
        Reservation::Done(_)
    ));
    store.ping().await.unwrap();
}

#[tokio::test]
async fn sqlite_store_conforms() {
    conformance(Db::Sqlite, false).await;
}

#[tokio::test]
async fn postgres_store_conforms() {
    conformance(Db::Postgres, false).await;
}

/// The same contract through the block producer's warm commits.
#[tokio::test]
async fn postgres_store_conforms_with_the_producers_cache() {
    conformance(Db::Postgres, true).await;
}

/// The producer's cache is only sound while no one else commits: a second
/// producer's block (a role hand-over) must make the next warm commit fail
/// (`Superseded`, a 503) and write nothing, and the commit after it must
/// start from the database.
#[tokio::test]
async fn a_warm_commit_after_another_producers_block_writes_nothing() {
    let (store, db) = store(Db::Postgres).await;
    let other = lockgate::app::connect(&test_config(&db)).await.unwrap();
    let producer = key(99);
    let (issuer, alice, bob) = (key(1), key(2), key(3));
    let mut warm = None;
    let setup = [
        verified(&issuer, 0, register("EUR")),
        verified(&issuer, 1, issue("EUR", alice.address(), 1000)),
    ];
    store
        .commit_batch_warm(chain(), &producer, 1_000, &setup, &mut warm)
        .await
        .unwrap();
    assert!(warm.is_some(), "a PostgreSQL commit leaves the cache warm");
    // Block 1, warm: alice's nonce and balance are now in the cache.
    store
        .commit_batch_warm(
            chain(),
            &producer,
            1_500,
            &[verified(&alice, 0, transfer("EUR", bob.address(), 100))],
            &mut warm,
        )
        .await
        .unwrap();
    assert!(warm.is_some());

    // Another process commits block 2: alice spends 600 with nonce 1.
    let result = other
        .commit_batch(
            chain(),
            &producer,
            2_000,
            &[verified(&alice, 1, transfer("EUR", bob.address(), 600))],
        )
        .await
        .unwrap();
    assert_eq!(result.block.unwrap().header.height, 2);

    // The cache still says alice holds 900 at nonce 1, so an 800 transfer
    // with nonce 1 applies against it; the database must refuse the block.
    let stale = store
        .commit_batch_warm(
            chain(),
            &producer,
            3_000,
            &[verified(&alice, 1, transfer("EUR", bob.address(), 800))],
            &mut warm,
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::Superseded)),
        "a block on a stale tip must not commit: {stale:?}"
    );
    assert!(
        stale.unwrap_err().is_unavailable(),
        "answered 503: nothing was applied, so submitting again is safe"
    );
    assert!(warm.is_none(), "a failed commit drops the cache");
    assert_eq!(store.tip(chain()).await.unwrap().next_height, 3);
    let account = store.account(chain(), alice.address()).await.unwrap();
    assert_eq!(account.next_nonce, 2);
    assert_eq!(
        account.balances,
        vec![(asset("EUR"), Amount::from_minor_units(300))]
    );

    // The next commit reads the database again: nonce 2, 300 left.
    let result = store
        .commit_batch_warm(
            chain(),
            &producer,
            4_000,
            &[
                verified(&alice, 2, transfer("EUR", bob.address(), 500)),
                verified(&alice, 2, transfer("EUR", bob.address(), 300)),
            ],
            &mut warm,
        )
        .await
        .unwrap();
    assert!(matches!(result.outcomes[0], Outcome::Rejected(_)));
    assert_eq!(result.outcomes[1], Outcome::Applied);
    assert_eq!(result.block.unwrap().header.height, 3);
    assert!(warm.is_some());
    let bob_account = store.account(chain(), bob.address()).await.unwrap();
    assert_eq!(
        bob_account.balances,
        vec![(asset("EUR"), Amount::from_minor_units(1000))]
    );
}

/// A sequencer on PostgreSQL, on its own thread and connections, commits
/// what it is given; once retired (its process gave up the producer role)
/// it commits nothing more, and every later submission is refused as
/// `Stopped` (503) instead of being committed from a cache another producer
/// may have made stale.
#[tokio::test]
async fn a_retired_sequencer_commits_nothing_more() {
    use lockgate::sequencer::{Sequencer, SequencerConfig, SequencerError};
    let (store, _db) = store(Db::Postgres).await;
    let sequencer = Sequencer::start(
        store.clone(),
        key(99),
        SequencerConfig {
            chain_id: chain(),
            batch_txs_max: 64,
            batch_wait: std::time::Duration::from_millis(1),
            queue_txs_max: 64,
            state_cache_entries_max: 1_000,
            on_commit: std::sync::Arc::new(tokio::sync::Notify::new()),
        },
    );
    let (issuer, alice, bob) = (key(1), key(2), key(3));
    let receipt = sequencer
        .submit(vec![
            verified(&issuer, 0, register("EUR")),
            verified(&issuer, 1, issue("EUR", alice.address(), 1000)),
        ])
        .await
        .unwrap();
    assert_eq!(receipt.outcomes, vec![Outcome::Applied, Outcome::Applied]);
    let receipt = sequencer
        .submit(vec![verified(
            &alice,
            0,
            transfer("EUR", bob.address(), 100),
        )])
        .await
        .unwrap();
    assert_eq!(receipt.block.unwrap().header.height, 1);

    sequencer.retire();
    for nonce in [1, 2] {
        let refused = sequencer
            .submit(vec![verified(
                &alice,
                nonce,
                transfer("EUR", bob.address(), 1),
            )])
            .await;
        assert!(
            matches!(refused, Err(SequencerError::Stopped)),
            "{refused:?}"
        );
    }
    assert_eq!(store.tip(chain()).await.unwrap().next_height, 2);
    let account = store.account(chain(), alice.address()).await.unwrap();
    assert_eq!(account.next_nonce, 1);
}

#[tokio::test]
async fn migrations_are_idempotent() {
    for kind in [Db::Sqlite, Db::Postgres] {
        let (store, db) = store(kind).await;
        store.migrate().await.unwrap();
        let again = lockgate::app::connect(&test_config(&db)).await.unwrap();
        again.migrate().await.unwrap();
    }
}
