//! Operations end to end, with real `lockgate serve` processes on real
//! PostgreSQL: what the probes and the API answer while the gateway starts
//! (migrations held back by a lock the test holds, a fresh database, a
//! database that is down), start-up failures that must end the process,
//! and the bounded submission queue (503 `overloaded` when it is full,
//! nothing lost or applied twice).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ledger_core::{Amount, AssetCode, Scale, SignedTransaction, TxBody};
use lockgate_e2e::*;
use sqlx::Connection as _;

fn asset(code: &str) -> AssetCode {
    AssetCode::new(code).unwrap()
}

fn register(code: &str) -> TxBody {
    TxBody::RegisterAsset {
        code: asset(code),
        scale: Scale::new(2).unwrap(),
    }
}

/// An HTTP answer: status, `Retry-After`, content type, body.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    content_type: Option<String>,
    body: serde_json::Value,
}

async fn answer(response: reqwest::Response) -> Answer {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (retry_after, content_type) = (header("retry-after"), header("content-type"));
    Answer {
        status: response.status().as_u16(),
        retry_after,
        content_type,
        body: response.json().await.unwrap_or(serde_json::Value::Null),
    }
}

async fn get(process: &Process, path: &str, token: &str) -> Answer {
    answer(
        process
            .http
            .get(format!("{}{path}", process.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn post_tx(process: &Process, token: &str, tx: &SignedTransaction) -> Answer {
    let body = serde_json::to_value(lockgate::dto::SignedTransactionDto::from_domain(tx)).unwrap();
    answer(
        process
            .http
            .post(format!("{}/v1/ledger/transactions", process.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Waits until `sql` (a count) is at least 1: the gateway is waiting for a
/// lock the test holds.
async fn wait_until_blocked(pool: &sqlx::PgPool, sql: &'static str, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway did not wait for {what} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sessions of this database waiting for a lock on `_sqlx_migrations`.
const WAITING_FOR_MIGRATIONS_TABLE: &str = "SELECT count(*) FROM pg_locks l \
     JOIN pg_class c ON c.oid = l.relation \
     WHERE c.relname = '_sqlx_migrations' AND NOT l.granted \
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// Sessions of this database waiting for an advisory lock.
const WAITING_FOR_ADVISORY_LOCK: &str = "SELECT count(*) FROM pg_locks \
     WHERE locktype = 'advisory' AND NOT granted \
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// Sessions of this database waiting for a lock on `blocks`.
const WAITING_FOR_BLOCKS_TABLE: &str = "SELECT count(*) FROM pg_locks l \
     JOIN pg_class c ON c.oid = l.relation \
     WHERE c.relname = 'blocks' AND NOT l.granted \
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// What a starting gateway answers: alive, not ready (naming `phase`), and
/// a 503 problem with `Retry-After` for the API, which changes nothing.
async fn assert_starting(process: &Process, token: &str, phase: &str) {
    let health = get(process, "/healthz", "").await;
    assert_eq!(health.status, 200, "liveness while starting");
    assert_eq!(health.body["status"], "starting", "{}", health.body);

    let ready = get(process, "/readyz", "").await;
    assert_eq!(
        ready.status, 503,
        "readiness while starting: {}",
        ready.body
    );
    assert_eq!(ready.retry_after.as_deref(), Some("1"));
    assert_eq!(
        ready.content_type.as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(ready.body["type"], "urn:lockgate:problem:not-ready");
    assert_eq!(ready.body["status"], 503);
    assert_eq!(
        ready.body["detail"],
        format!("the gateway is starting: {phase}"),
        "{}",
        ready.body
    );

    let blocks = get(process, "/v1/ledger/blocks", token).await;
    assert_eq!(blocks.status, 503, "{}", blocks.body);
    assert_eq!(blocks.retry_after.as_deref(), Some("1"));
    assert_eq!(blocks.body["type"], "urn:lockgate:problem:not-ready");
    assert!(
        blocks.body["detail"].as_str().unwrap().contains(phase),
        "{}",
        blocks.body
    );

    // A submission is refused before anything reads it (checked by
    // `assert_serving`: USD never exists).
    let submitted = post_tx(process, token, &sign(&key(70), 0, register("USD"))).await;
    assert_eq!(submitted.status, 503, "{}", submitted.body);
    assert!(submitted.retry_after.is_some());
    assert_eq!(submitted.body["type"], "urn:lockgate:problem:not-ready");
}

/// Waits for the gateway to say it serves, then checks that it does: ready,
/// a submission committed, and the one refused while starting absent.
async fn assert_serving(process: &mut Process, token: &str) {
    assert!(
        process
            .stdout_line("lockgate listening on ", Duration::from_secs(60))
            .await
            .is_some(),
        "the gateway did not finish starting within 60 s"
    );
    let ready = get(process, "/readyz", "").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body["status"], "ok");
    let health = get(process, "/healthz", "").await;
    assert_eq!(health.body["status"], "ok");
    let committed = post_tx(process, token, &sign(&key(1), 0, register("EUR"))).await;
    assert_eq!(committed.status, 201, "{}", committed.body);
    assert_eq!(
        get(process, "/v1/ledger/assets/EUR", token).await.status,
        200
    );
    assert_eq!(
        get(process, "/v1/ledger/assets/USD", token).await.status,
        404,
        "the submission refused while starting was not applied"
    );
}

/// Migrations that wait (here for a lock on sqlx's `_sqlx_migrations`
/// table, as they would behind another replica's migrations) keep the
/// gateway unready, answering; once they run it serves on the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_migrations_wait_and_200_once_they_ran() {
    let db = PgDatabase::new().await;
    let env = Env::new(&db.url);
    let token = env.token().await;
    // A first start migrates the database.
    let mut first = env.start().await;
    first.kill9().await;

    let pool = db.pool().await;
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let mut process = env.start_starting(&[]).await;
    wait_until_blocked(&pool, WAITING_FOR_MIGRATIONS_TABLE, "_sqlx_migrations").await;
    assert_starting(&process, &token, "running database migrations").await;

    holder.rollback().await.unwrap();
    assert_serving(&mut process, &token).await;
}

/// A fresh database: the migrations wait for sqlx's migration lock (an
/// advisory lock keyed by the database name) held by the test, as behind
/// another replica creating the schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_fresh_database_readyz_is_503_until_the_schema_exists() {
    let db = PgDatabase::new().await;
    let env = Env::new(&db.url);
    let token = env.token().await;
    let name = db.url.rsplit('/').next().unwrap();
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(sqlx_migration_lock_id(name))
        .execute(&mut holder)
        .await
        .unwrap();
    let pool = db.pool().await;
    let mut process = env.start_starting(&[]).await;
    wait_until_blocked(&pool, WAITING_FOR_ADVISORY_LOCK, "sqlx's migration lock").await;
    assert_starting(&process, &token, "running database migrations").await;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'blocks'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 0, "no schema yet");

    let released: bool = sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
        .bind(sqlx_migration_lock_id(name))
        .fetch_one(&mut holder)
        .await
        .unwrap();
    assert!(released);
    assert_serving(&mut process, &token).await;
}

/// sqlx's PostgreSQL migration lock: `0x3d32ad9e * crc32(database name)`
/// (sqlx-postgres `migrate.rs`, `generate_lock_id`). A wrong key would let
/// the migrations run and fail the test.
fn sqlx_migration_lock_id(database: &str) -> i64 {
    // CRC-32/ISO-HDLC, bit by bit.
    let mut crc = !0u32;
    for byte in database.bytes() {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    0x3d32_ad9e_i64 * i64::from(!crc)
}

/// The database is down when the gateway starts: it answers `/readyz` 503
/// (waiting for the database) instead of exiting, logs the wait a bounded
/// number of times, and serves once the database is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_down_at_start_is_waited_for() {
    let server = PrivatePostgres::start();
    server.create_database("lockgate").await;
    server.stop();
    let log = tempfile::NamedTempFile::new().unwrap();
    let env = Env::new(&server.url("lockgate")).log_to(log.path().to_path_buf());
    let token = env.token().await;
    let started = tokio::time::Instant::now();
    let mut process = env.start_starting(&[]).await;

    // The first attempt is "connecting" until sqlx's own connect retries
    // give up (5 s); then it waits and retries.
    let phase = "waiting for the database, which does not answer (retrying)";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready = get(&process, "/readyz", "").await;
        assert_eq!(ready.status, 503, "{}", ready.body);
        if ready.body["detail"] == format!("the gateway is starting: {phase}") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never waiting for the database: {}",
            ready.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = get(&process, "/healthz", "").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "starting");
    let blocks = get(&process, "/v1/ledger/blocks", &token).await;
    assert_eq!(blocks.status, 503);
    assert!(blocks.retry_after.is_some());

    server.restart();
    assert_serving(&mut process, &token).await;
    // One warning when the wait starts, then at most one a minute.
    let minutes = started.elapsed().as_secs() / 60;
    let text = std::fs::read_to_string(log.path()).unwrap();
    let warnings = text
        .lines()
        .filter(|l| l.contains("the database does not answer; retrying"))
        .count() as u64;
    assert!(
        (1..=minutes + 1).contains(&warnings),
        "{warnings} warnings in {minutes} min:\n{text}"
    );
}

/// Start-up errors that retrying cannot fix end the process with a non-zero
/// status and the cause: a database that does not exist, and applied
/// migrations this binary does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_errors_other_than_an_unreachable_database_exit_non_zero() {
    let admin = pg_admin_url();
    let base = admin.rsplit_once('/').unwrap().0;
    let missing = Env::new(&format!("{base}/lockgate_no_such_database"));
    let (status, log) = missing.serve_until_exit(&[], Duration::from_secs(60)).await;
    assert!(!status.success(), "{log}");
    assert!(log.contains("does not exist"), "{log}");

    let db = PgDatabase::new().await;
    let env = Env::new(&db.url);
    let mut first = env.start().await;
    first.kill9().await;
    let pool = db.pool().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from a newer build', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (status, log) = env.serve_until_exit(&[], Duration::from_secs(60)).await;
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("running database migrations") && log.contains("99990101000000"),
        "{log}"
    );
}

/// The sequencer's queue is bounded (`ledger.queue_txs_max`): while a
/// commit cannot finish (the test holds a lock on `blocks`), the first
/// `queue_txs_max` submissions wait and the rest are refused at once with
/// 503 `overloaded` and `Retry-After`. Once the commit goes through, every
/// acknowledged transaction is in the ledger exactly once, every refused one
/// is absent, and resubmitting the refused ones commits them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_submission_queue_answers_503_overloaded_and_loses_nothing() {
    const QUEUE_TXS_MAX: usize = 4;
    const SENDERS: u64 = 24;
    const UNITS: u128 = 7;
    let db = PgDatabase::new().await;
    let env = Env::new(&db.url).with_vars(&[
        ("LOCKGATE_QUEUE_TXS_MAX", "4"),
        ("LOCKGATE_BATCH_REQUEST_TXS_MAX", "4"),
        // One submission per batch: the stalled commit holds exactly one.
        ("LOCKGATE_BATCH_TXS_MAX", "1"),
        // No queued submission times out while the test holds the lock.
        ("LOCKGATE_REQUEST_TIMEOUT_MS", "600000"),
    ]);
    let process = std::sync::Arc::new(env.start().await);
    let token = std::sync::Arc::new(env.token().await);
    let issuer = key(1);
    let recipient = key(99).address();
    let sender = |i: u64| key(100 + i);
    assert_eq!(
        post_tx(&process, &token, &sign(&issuer, 0, register("EUR")))
            .await
            .status,
        201
    );
    for i in 0..SENDERS {
        let issue = TxBody::Issue {
            asset: asset("EUR"),
            to: sender(i).address(),
            amount: Amount::from_minor_units(1_000),
        };
        let issued = post_tx(&process, &token, &sign(&issuer, i + 1, issue)).await;
        assert_eq!(issued.status, 201, "{}", issued.body);
    }
    let transfer = |i: u64| {
        sign(
            &sender(i),
            0,
            TxBody::Transfer {
                asset: asset("EUR"),
                to: recipient,
                amount: Amount::from_minor_units(UNITS),
            },
        )
    };
    let submit = |i: u64| {
        let (process, token, tx) = (process.clone(), token.clone(), transfer(i));
        tokio::spawn(async move { (i, post_tx(&process, &token, &tx).await) })
    };

    // Commits stall: the block insert waits for the test's lock. The first
    // transfer is taken into a batch and waits in its commit.
    let pool = db.pool().await;
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE blocks IN EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let mut pending = vec![submit(0)];
    wait_until_blocked(&pool, WAITING_FOR_BLOCKS_TABLE, "the blocks table").await;
    // The others at once: QUEUE_TXS_MAX of them queue, the rest are refused.
    pending.extend((1..SENDERS).map(submit));
    let refused_count = SENDERS as usize - 1 - QUEUE_TXS_MAX;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while pending.iter().filter(|h| h.is_finished()).count() < refused_count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refusals did not come at once"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The queued ones (and the stalled one) are still waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (finished, waiting): (Vec<_>, Vec<_>) = pending.into_iter().partition(|h| h.is_finished());
    assert_eq!(
        finished.len(),
        refused_count,
        "only the overflow is answered"
    );
    let mut refused = Vec::new();
    for handle in finished {
        let (i, answer) = handle.await.unwrap();
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert_eq!(answer.body["type"], "urn:lockgate:problem:overloaded");
        assert_eq!(answer.retry_after.as_deref(), Some("1"));
        refused.push(i);
    }

    blocker.rollback().await.unwrap();
    let mut acknowledged = Vec::new();
    for handle in waiting {
        let (i, answer) = tokio::time::timeout(Duration::from_secs(60), handle)
            .await
            .expect("a queued submission was never answered")
            .unwrap();
        assert_eq!(answer.status, 201, "{}", answer.body);
        acknowledged.push(i);
    }
    assert_eq!(acknowledged.len(), 1 + QUEUE_TXS_MAX);

    // Acknowledged: committed once (nonce 1, balance debited once). Refused:
    // absent, nothing changed.
    let account = |i: u64| {
        let (process, token) = (process.clone(), token.clone());
        async move {
            get(
                &process,
                &format!("/v1/ledger/accounts/{}", sender(i).address()),
                &token,
            )
            .await
            .body
        }
    };
    for &i in &acknowledged {
        let hash = transfer(i).transaction.hash();
        let found = get(&process, &format!("/v1/ledger/transactions/{hash}"), &token).await;
        assert_eq!(found.status, 200, "acknowledged {hash} is missing");
        let view = account(i).await;
        assert_eq!(view["nextNonce"], "1", "{view}");
        assert_eq!(view["balances"][0]["amount"], (1_000 - UNITS).to_string());
    }
    for &i in &refused {
        let hash = transfer(i).transaction.hash();
        let found = get(&process, &format!("/v1/ledger/transactions/{hash}"), &token).await;
        assert_eq!(found.status, 404, "refused {hash} was applied");
        let view = account(i).await;
        assert_eq!(view["nextNonce"], "0", "{view}");
        assert_eq!(view["balances"][0]["amount"], "1000");
    }
    let paid = get(
        &process,
        &format!("/v1/ledger/accounts/{recipient}"),
        &token,
    )
    .await;
    assert_eq!(
        paid.body["balances"][0]["amount"],
        (UNITS * acknowledged.len() as u128).to_string()
    );

    // Retrying what was refused is safe, and the chain verifies.
    for &i in &refused {
        let retried = post_tx(&process, &token, &transfer(i)).await;
        assert_eq!(retried.status, 201, "{}", retried.body);
    }
    let paid = get(
        &process,
        &format!("/v1/ledger/accounts/{recipient}"),
        &token,
    )
    .await;
    assert_eq!(
        paid.body["balances"][0]["amount"],
        (UNITS * u128::from(SENDERS)).to_string()
    );
    let export = tempfile::NamedTempFile::new().unwrap();
    process.export(&token, export.path()).await;
    let (intact, report) = env.verify(export.path()).await;
    assert!(intact, "{report}");
}
