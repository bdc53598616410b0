//! The rules the ledger's tables keep by themselves, whatever writes to
//! them (migration 0012): on PostgreSQL a transaction row must name an
//! existing block and blocks and transactions are append-only; on both
//! databases an account's nonce is read from its transactions, and the
//! migration that dropped the stored copy refuses a database where the copy
//! disagreed with them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ledger_core::{Outcome, Rejection, SigningKey};
use lockgate::app::ConnectError;
use lockgate::store::{LedgerStore, StoreError};
use support::*;

async fn open(db: &TestDb) -> lockgate::store::AnyStore {
    lockgate::app::connect(&test_config(db)).await.unwrap()
}

/// Commits one block: register EUR, issue 100 to alice; alice pays bob 1.
async fn one_block(store: &lockgate::store::AnyStore) -> (SigningKey, SigningKey) {
    let (issuer, alice, bob) = (key(1), key(2), key(3));
    let txs = vec![
        sign(&issuer, 0, register("EUR")).verify().unwrap(),
        sign(&issuer, 1, issue("EUR", alice.address(), 100))
            .verify()
            .unwrap(),
        sign(&alice, 0, transfer("EUR", bob.address(), 1))
            .verify()
            .unwrap(),
    ];
    let result = store
        .commit_batch(chain(), &key(99), 1_000, &txs)
        .await
        .unwrap();
    assert!(result.outcomes.iter().all(|o| o.is_applied()));
    (issuer, alice)
}

fn sqlstate(error: sqlx::Error) -> String {
    error
        .as_database_error()
        .and_then(|e| e.code().map(|c| c.to_string()))
        .unwrap_or_else(|| panic!("not a database error: {error}"))
}

#[tokio::test]
async fn a_transaction_naming_no_block_is_refused_on_postgres() {
    let db = TestDb::new(Db::Postgres).await;
    let store = open(&db).await;
    store.migrate().await.unwrap();
    one_block(&store).await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let insert = |height: i64, nonce: i64| {
        sqlx::query(
            "INSERT INTO transactions (chain_id, hash, height, position, sender, nonce, kind, message, signature) \
             VALUES ($1, $2, $3, 9, $4, $5, 'transfer', '{}', $6)",
        )
        .bind(CHAIN as i64)
        .bind(vec![height as u8 + nonce as u8; 32])
        .bind(height)
        .bind(vec![7u8; 20])
        .bind(nonce)
        .bind(vec![1u8; 65])
    };
    // Block 1 does not exist: refused, as the foreign key refused it.
    let error = insert(1, 0).execute(&pool).await.unwrap_err();
    assert_eq!(sqlstate(error), "23503", "foreign_key_violation");
    // In one statement with rows naming block 0, which exists: all refused.
    let error = sqlx::query(
        "INSERT INTO transactions (chain_id, hash, height, position, sender, nonce, kind, message, signature) \
         SELECT $1, sha256(n::text::bytea), n, 5, '\\x0707070707070707070707070707070707070707'::bytea, n, 'transfer', '{}', $2 \
         FROM generate_series(0, 1) AS n",
    )
    .bind(CHAIN as i64)
    .bind(vec![1u8; 65])
    .execute(&pool)
    .await
    .unwrap_err();
    assert_eq!(sqlstate(error), "23503");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 3, "nothing of the refused statements was written");
    // A table of the caller's named `blocks` does not stand in for the
    // ledger's: the check reads the ledger's schema only.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("CREATE TEMP TABLE blocks (chain_id BIGINT, height BIGINT)")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO pg_temp.blocks VALUES ($1, 11)")
        .bind(CHAIN as i64)
        .execute(&mut *conn)
        .await
        .unwrap();
    let error = insert(11, 0).execute(&mut *conn).await.unwrap_err();
    assert_eq!(sqlstate(error), "23503", "a temporary `blocks` is not read");
    drop(conn);
    // A row naming block 0 is accepted (the check is not a blanket refusal).
    insert(0, 9).execute(&pool).await.unwrap();
}

#[tokio::test]
async fn blocks_and_transactions_are_append_only() {
    for kind in [Db::Sqlite, Db::Postgres] {
        let db = TestDb::new(kind).await;
        let store = open(&db).await;
        one_block(&store).await;
        let pool = Pool::connect(kind, &db).await;
        let mut statements = vec![
            "UPDATE blocks SET timestamp_ms = timestamp_ms + 1",
            "DELETE FROM blocks",
            "UPDATE transactions SET nonce = nonce + 1",
            "DELETE FROM transactions WHERE position = 2",
            "DELETE FROM transactions",
        ];
        if kind == Db::Postgres {
            statements.extend(["TRUNCATE blocks", "TRUNCATE transactions"]);
        }
        for statement in statements {
            let error = pool.execute_err(statement).await;
            let expected = match kind {
                Db::Postgres => "23001",
                Db::Sqlite => "rows are never updated or deleted",
            };
            assert!(error.contains(expected), "{kind:?} {statement}: {error}");
        }
        assert_eq!(
            pool.count("SELECT count(*) FROM blocks").await,
            1,
            "{kind:?}"
        );
        assert_eq!(
            pool.count("SELECT count(*) FROM transactions").await,
            3,
            "{kind:?}"
        );
        // A removed transaction would have freed alice's nonce 0 for a
        // replay; with nothing removable it stays used.
        let account = store.account(chain(), key(2).address()).await.unwrap();
        assert_eq!(account.next_nonce, 1, "{kind:?}");
    }
}

/// A database of either kind, for statements written out in full.
enum Pool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Pool {
    async fn connect(kind: Db, db: &TestDb) -> Self {
        match kind {
            Db::Postgres => Self::Postgres(sqlx::PgPool::connect(&db.url).await.unwrap()),
            Db::Sqlite => {
                let options =
                    <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&db.url)
                        .unwrap()
                        .create_if_missing(true);
                Self::Sqlite(sqlx::SqlitePool::connect_with(options).await.unwrap())
            }
        }
    }

    async fn migrate_to(&self, kind: Db, version: i64) {
        let dir = match kind {
            Db::Postgres => "postgres",
            Db::Sqlite => "sqlite",
        };
        let path = format!("{}/../migrations/{dir}", env!("CARGO_MANIFEST_DIR"));
        let migrator = sqlx::migrate::Migrator::new(std::path::Path::new(&path))
            .await
            .unwrap();
        match self {
            Self::Postgres(pool) => migrator.run_to(version, pool).await.unwrap(),
            Self::Sqlite(pool) => migrator.run_to(version, pool).await.unwrap(),
        }
    }

    async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self {
            Self::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
            Self::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// A statement that must fail: its error, SQLSTATE first.
    async fn execute_err(&self, sql: &str) -> String {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        let result = match self {
            Self::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
            Self::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        };
        match result {
            Ok(()) => panic!("the statement succeeded"),
            Err(error) => {
                let code = error
                    .as_database_error()
                    .and_then(|e| e.code().map(|c| c.to_string()))
                    .unwrap_or_default();
                format!("{code} {error}")
            }
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self {
            Self::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Self::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }

    /// Whether the `accounts` table is still there.
    async fn has_accounts(&self) -> bool {
        let sql = "SELECT count(*) FROM accounts";
        match self {
            Self::Postgres(pool) => sqlx::query(sql).execute(pool).await.is_ok(),
            Self::Sqlite(pool) => sqlx::query(sql).execute(pool).await.is_ok(),
        }
    }
}

/// A byte string as a literal of the database's dialect.
fn blob(kind: Db, bytes: &[u8]) -> String {
    match kind {
        Db::Postgres => format!("'\\x{}'::bytea", hex::encode(bytes)),
        Db::Sqlite => format!("x'{}'", hex::encode(bytes)),
    }
}

/// An `accounts` row of before migration 12: (key index, next nonce).
type AccountRow = (u64, i64);

/// A database at migration 11 (with the `accounts` table) holding one
/// block whose transactions are alice's `nonces`, and the `accounts` rows
/// `(key index, next_nonce)`, as the gateway of then wrote them.
async fn before_0012(kind: Db, nonces: &[i64], accounts: &[AccountRow]) -> (TestDb, Pool) {
    let db = TestDb::new(kind).await;
    let pool = Pool::connect(kind, &db).await;
    pool.migrate_to(kind, 11).await;
    let alice = key(2).address();
    pool.execute(&format!(
        "INSERT INTO blocks (chain_id, height, hash, previous_hash, timestamp_ms, tx_root, tx_count, producer, signature) \
         VALUES ({CHAIN}, 0, {}, {}, 1000, {}, {}, {}, {})",
        blob(kind, &[1; 32]),
        blob(kind, &[0; 32]),
        blob(kind, &[2; 32]),
        nonces.len(),
        blob(kind, key(99).address().as_bytes()),
        blob(kind, &[3; 65]),
    ))
    .await;
    for (position, nonce) in nonces.iter().enumerate() {
        pool.execute(&format!(
            "INSERT INTO transactions (chain_id, hash, height, position, sender, nonce, kind, message, signature) \
             VALUES ({CHAIN}, {}, 0, {position}, {}, {nonce}, 'transfer', '{{}}', {})",
            blob(kind, &[10 + position as u8; 32]),
            blob(kind, alice.as_bytes()),
            blob(kind, &[4; 65]),
        ))
        .await;
    }
    for (index, next_nonce) in accounts {
        pool.execute(&format!(
            "INSERT INTO accounts (chain_id, address, next_nonce) VALUES ({CHAIN}, {}, {next_nonce})",
            blob(kind, key(*index).address().as_bytes()),
        ))
        .await;
    }
    (db, pool)
}

#[tokio::test]
async fn the_migration_that_drops_stored_nonces_checks_them_first() {
    for kind in [Db::Sqlite, Db::Postgres] {
        // Consistent, with a row saying nonce 0 for an account that never
        // sent: migrated, and the nonces are the same read either way.
        let (db, pool) = before_0012(kind, &[0, 1], &[(2, 2), (3, 0)]).await;
        let store = open(&db).await;
        assert!(!pool.has_accounts().await, "{kind:?}: the copy is gone");
        let account = store.account(chain(), key(2).address()).await.unwrap();
        assert_eq!(account.next_nonce, 2, "{kind:?}");
        let account = store.account(chain(), key(3).address()).await.unwrap();
        assert_eq!(account.next_nonce, 0, "{kind:?}");

        // Refused, and the database left as it was, when the stored nonce
        // says more than the transactions, when they have a gap, when a
        // sender has transactions but no row, or a row says a nonce was
        // used that no transaction used.
        let refused: [(&[i64], &[AccountRow]); 4] = [
            (&[0, 1], &[(2, 3)]),
            (&[0, 2], &[(2, 3)]),
            (&[0, 1], &[]),
            (&[0, 1], &[(2, 2), (3, 1)]),
        ];
        for (nonces, accounts) in refused {
            let (db, pool) = before_0012(kind, nonces, accounts).await;
            let error = lockgate::app::connect(&test_config(&db))
                .await
                .map(|_| ())
                .unwrap_err();
            assert!(
                matches!(error, ConnectError::Migrate(StoreError::Migrate(_))),
                "{kind:?} {nonces:?} {accounts:?}: {error}"
            );
            let expected = match kind {
                Db::Postgres => "accounts.next_nonce disagrees with the transactions stored",
                Db::Sqlite => "CHECK constraint failed: consistent = 1",
            };
            assert!(
                error.to_string().contains(expected),
                "{kind:?} {nonces:?} {accounts:?}: {error}"
            );
            assert!(pool.has_accounts().await, "{kind:?}: rolled back");
        }
    }
}

#[tokio::test]
async fn the_nonce_is_read_from_the_transactions() {
    for kind in [Db::Sqlite, Db::Postgres] {
        let db = TestDb::new(kind).await;
        let store = open(&db).await;
        store.migrate().await.unwrap();
        let (issuer, alice) = one_block(&store).await;
        assert_eq!(
            store
                .account(chain(), issuer.address())
                .await
                .unwrap()
                .next_nonce,
            2
        );
        assert_eq!(
            store
                .account(chain(), alice.address())
                .await
                .unwrap()
                .next_nonce,
            1
        );
        assert_eq!(
            store
                .account(chain(), key(3).address())
                .await
                .unwrap()
                .next_nonce,
            0,
            "{kind:?}: an account that never sent"
        );
        // A replay of alice's nonce 0 is refused on the nonce read back.
        let replay = sign(&alice, 0, transfer("EUR", key(3).address(), 1))
            .verify()
            .unwrap();
        let result = store
            .commit_batch(chain(), &key(99), 2_000, &[replay])
            .await
            .unwrap();
        assert_eq!(
            result.outcomes[0],
            Outcome::Rejected(Rejection::NonceReplay {
                expected: 1,
                actual: 0
            }),
            "{kind:?}"
        );
    }
}
