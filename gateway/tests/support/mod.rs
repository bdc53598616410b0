//! Shared helpers of the gateway's tests: fresh databases (a new SQLite file,
//! or a new database on the test PostgreSQL server per test), an in-process
//! gateway on a real TCP port, tokens, and signed transactions.
//!
//! PostgreSQL: `LOCKGATE_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) names a server where tests
//! may create and drop databases; `./scripts/test` starts one if none runs.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use ledger_core::hash::sha256;
use ledger_core::{
    Address, Amount, AssetCode, ChainId, Hashlock, LockId, Preimage, Scale, SignedTransaction,
    SigningKey, Transaction, TxBody,
};
use lockgate::app::App;
use lockgate::auth::Scope;
use lockgate::config::{Config, Secret};
use lockgate::dto::SignedTransactionDto;

pub const CHAIN: u64 = 4201;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub fn pg_admin_url() -> String {
    std::env::var("LOCKGATE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty database, dropped when this is dropped.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(kind: Db) -> Self {
        let dir = tempfile::tempdir().unwrap();
        match kind {
            Db::Sqlite => Self {
                url: format!("sqlite://{}", dir.path().join("test.db").display()),
                dir,
                pg_name: None,
            },
            Db::Postgres => {
                let name = format!("lockgate_test_{}", uuid::Uuid::new_v4().simple());
                let admin = pg_admin_url();
                let pool = sqlx::PgPool::connect(&admin).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL for tests at {admin}: {e} (./scripts/test starts one)")
                });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
                Self {
                    url: format!("{base}/{name}"),
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let admin = pg_admin_url();
            // Drop runs outside any runtime guarantee: use a thread of its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&pool)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

pub fn test_config(db: &TestDb) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: db.dir.path().to_path_buf(),
        database_url: Some(Secret::new(db.url.clone())),
        database_connections_max: 8,
        ..Config::default()
    };
    config.ledger.chain_id = CHAIN;
    config.ledger.batch_wait_ms = 1;
    config.ledger.block_key = Some(Secret::new(format!(
        "0x{}",
        hex::encode(sha256(b"test-block-key"))
    )));
    config.auth.hs256_secret = Some(Secret::new(hex::encode([0x42u8; 32])));
    config
}

/// A gateway running in this process on a real port.
pub struct Gateway {
    pub base: String,
    pub app: Arc<App>,
    pub http: reqwest::Client,
    pub db: TestDb,
}

impl Gateway {
    pub async fn start(kind: Db) -> Self {
        let db = TestDb::new(kind).await;
        Self::start_on(db, |_| {}).await
    }

    pub async fn start_on(db: TestDb, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config(&db);
        adjust(&mut config);
        let app = lockgate::app::build(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        // Served as `lockgate serve` does: the connection limit, and the
        // client address for the rate limit of requests without a token.
        let listener =
            lockgate::limits::LimitedListener::new(listener, app.config.limits.connections_max);
        let router = lockgate::api::router(app.clone());
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<lockgate::limits::ClientAddr>(),
            )
            .await;
        });
        // The producer role is taken asynchronously on PostgreSQL.
        for _ in 0..100 {
            if app.producer.sequencer().is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(
            app.producer.sequencer().is_some(),
            "the gateway did not become block producer"
        );
        Self {
            base,
            app,
            http: reqwest::Client::new(),
            db,
        }
    }

    pub fn token(&self, scopes: &[Scope], accounts: &[Address]) -> String {
        let now = lockgate::sequencer::now_ms() / 1000;
        self.app
            .auth
            .mint("test", "tenant-a", scopes, accounts, now, 600)
            .unwrap()
    }

    pub fn admin(&self) -> String {
        self.token(&Scope::ALL, &[])
    }

    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Submits one transaction with the admin token.
    pub async fn submit(&self, tx: &SignedTransaction) -> (u16, serde_json::Value) {
        self.post("/v1/ledger/transactions", &self.admin(), &wire(tx))
            .await
    }

    /// Scrapes `/metrics` (no token) and parses the text format.
    pub async fn metrics(&self) -> Metrics {
        let response = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; version=0.0.4"
        );
        Metrics::parse(&response.text().await.unwrap())
    }

    /// Everything the ledger holds, as text: blocks, transactions (which
    /// hold the nonces), balances, assets and HTLCs. Equal fingerprints mean
    /// nothing changed.
    pub async fn fingerprint(&self) -> String {
        use lockgate::store::AnyStore;
        let tables = ["blocks", "transactions", "balances", "assets", "htlcs"];
        let mut out = String::new();
        match &self.app.store {
            AnyStore::Postgres(store) => {
                for table in tables {
                    let (text,): (Option<String>,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT string_agg(t::text, '|' ORDER BY t::text) FROM {table} t"
                    )))
                    .fetch_one(store.pool())
                    .await
                    .unwrap();
                    out.push_str(&format!("{table}: {}\n", text.unwrap_or_default()));
                }
            }
            AnyStore::Sqlite(store) => {
                for table in tables {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
                        .fetch_all(store.pool())
                        .await
                        .unwrap();
                    let mut lines: Vec<String> = rows
                        .iter()
                        .map(|row| {
                            use sqlx::{Column, Row, ValueRef};
                            row.columns()
                                .iter()
                                .map(|c| {
                                    let raw = row.try_get_raw(c.ordinal()).unwrap();
                                    if raw.is_null() {
                                        "null".to_string()
                                    } else if let Ok(text) = row.try_get::<String, _>(c.ordinal()) {
                                        text
                                    } else if let Ok(number) = row.try_get::<i64, _>(c.ordinal()) {
                                        number.to_string()
                                    } else {
                                        hex::encode(row.try_get::<Vec<u8>, _>(c.ordinal()).unwrap())
                                    }
                                })
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .collect();
                    lines.sort();
                    out.push_str(&format!("{table}: {}\n", lines.join("|")));
                }
            }
        }
        out
    }

    /// Runs a query on the gateway's own database; each row maps column
    /// names to values as text (amounts are NUMERIC on PostgreSQL, TEXT on
    /// SQLite; PostgreSQL numbers come through JSON, so keep them below 2^53).
    pub async fn rows(&self, sql: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        use lockgate::store::AnyStore;
        use sqlx::{Column, Row};
        match &self.app.store {
            AnyStore::Postgres(store) => {
                let wrapped = format!("SELECT to_json(q)::text FROM ({sql}) q");
                let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(wrapped))
                    .fetch_all(store.pool())
                    .await
                    .unwrap();
                rows.iter()
                    .map(|(json,)| {
                        let value: serde_json::Map<String, serde_json::Value> =
                            serde_json::from_str(json).unwrap();
                        value
                            .iter()
                            .map(|(k, v)| {
                                let text = match v {
                                    serde_json::Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                };
                                (k.clone(), text)
                            })
                            .collect()
                    })
                    .collect()
            }
            AnyStore::Sqlite(store) => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_all(store.pool())
                    .await
                    .unwrap();
                rows.iter()
                    .map(|row| {
                        row.columns()
                            .iter()
                            .map(|c| {
                                let text = match row.try_get::<String, _>(c.ordinal()) {
                                    Ok(text) => text,
                                    Err(_) => {
                                        row.try_get::<i64, _>(c.ordinal()).unwrap().to_string()
                                    }
                                };
                                (c.name().to_string(), text)
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// A SQL condition `column = <address bytes>` in this database's dialect.
    pub fn address_is(&self, column: &str, hex_address: &str) -> String {
        match &self.app.store {
            lockgate::store::AnyStore::Postgres(_) => {
                format!("{column} = '\\x{hex_address}'::bytea")
            }
            lockgate::store::AnyStore::Sqlite(_) => format!("{column} = x'{hex_address}'"),
        }
    }

    pub async fn block_count(&self) -> u64 {
        use lockgate::store::LedgerStore;
        self.app
            .store
            .tip(self.app.chain_id)
            .await
            .unwrap()
            .next_height
    }
}

pub fn chain() -> ChainId {
    ChainId::new(CHAIN).unwrap()
}

pub fn key(i: u64) -> SigningKey {
    SigningKey::from_bytes(sha256(format!("gateway-test-{i}").as_bytes())).unwrap()
}

pub fn asset(code: &str) -> AssetCode {
    AssetCode::new(code).unwrap()
}

pub fn sign(key: &SigningKey, nonce: u64, body: TxBody) -> SignedTransaction {
    sign_on(chain(), key, nonce, body)
}

pub fn sign_on(chain_id: ChainId, key: &SigningKey, nonce: u64, body: TxBody) -> SignedTransaction {
    Transaction {
        chain_id,
        from: key.address(),
        nonce,
        body,
    }
    .sign(key)
    .unwrap()
}

pub fn wire(tx: &SignedTransaction) -> serde_json::Value {
    serde_json::to_value(SignedTransactionDto::from_domain(tx)).unwrap()
}

pub fn register(code: &str) -> TxBody {
    TxBody::RegisterAsset {
        code: asset(code),
        scale: Scale::new(2).unwrap(),
    }
}

pub fn issue(code: &str, to: Address, units: u128) -> TxBody {
    TxBody::Issue {
        asset: asset(code),
        to,
        amount: Amount::from_minor_units(units),
    }
}

pub fn transfer(code: &str, to: Address, units: u128) -> TxBody {
    TxBody::Transfer {
        asset: asset(code),
        to,
        amount: Amount::from_minor_units(units),
    }
}

pub fn lock(
    code: &str,
    recipient: Address,
    units: u128,
    preimage: &[u8; 32],
    expires_at_ms: u64,
) -> TxBody {
    TxBody::HtlcLock {
        asset: asset(code),
        recipient,
        amount: Amount::from_minor_units(units),
        hashlock: Hashlock::of_preimage(preimage),
        expires_at_ms,
    }
}

pub fn claim(lock_id: LockId, preimage: &[u8]) -> TxBody {
    TxBody::HtlcClaim {
        lock_id,
        preimage: Preimage::new(preimage.to_vec()).unwrap(),
    }
}

pub fn refund(lock_id: LockId) -> TxBody {
    TxBody::HtlcRefund { lock_id }
}

/// Registers EUR by key 1 and issues `units` to each of `holders`.
pub async fn fund(gateway: &Gateway, holders: &[&SigningKey], units: u128) {
    let issuer = key(1);
    let (status, body) = gateway.submit(&sign(&issuer, 0, register("EUR"))).await;
    assert_eq!(status, 201, "{body}");
    for (i, holder) in holders.iter().enumerate() {
        let (status, body) = gateway
            .submit(&sign(
                &issuer,
                i as u64 + 1,
                issue("EUR", holder.address(), units),
            ))
            .await;
        assert_eq!(status, 201, "{body}");
    }
}

/// One sample: the metric name, its labels and its value.
type Sample = (String, Vec<(String, String)>, f64);

/// A parsed Prometheus text exposition: every sample with its labels.
#[derive(Debug)]
pub struct Metrics {
    samples: Vec<Sample>,
}

impl Metrics {
    /// Parses the text format (comments skipped; label values unescaped).
    pub fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad sample: {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), Vec::new()),
                Some((name, rest)) => {
                    let rest = rest.strip_suffix('}').unwrap();
                    let mut labels = Vec::new();
                    let mut chars = rest.chars().peekable();
                    while chars.peek().is_some() {
                        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                        assert_eq!(chars.next(), Some('"'), "{line}");
                        let mut value = String::new();
                        while let Some(c) = chars.next() {
                            match c {
                                '\\' => match chars.next() {
                                    Some('n') => value.push('\n'),
                                    Some(c) => value.push(c),
                                    None => panic!("{line}"),
                                },
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        if chars.peek() == Some(&',') {
                            chars.next();
                        }
                        labels.push((key.trim().to_string(), value));
                    }
                    (name.to_string(), labels)
                }
            };
            samples.push((name, labels, value));
        }
        Self { samples }
    }

    /// The sample of `name` whose labels include all of `labels`; panics
    /// unless exactly one matches.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| *v)
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
        found.first().copied()
    }

    /// [`Metrics::get`], 0 when absent (a counter not yet incremented).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }
}
