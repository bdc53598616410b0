//! Assembly of a running gateway: configuration in, database connected and
//! migrated, keys loaded, block producer started, router built.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ledger_core::{Address, ChainId, SigningKey};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::auth::{Authenticator, HasAuthenticator};
use crate::config::{Config, development_secret};
use crate::producer::Producer;
use crate::sequencer::SequencerConfig;
use crate::store::{AnyStore, LedgerStore, PgStore, SqliteStore, StoreError};

/// Everything a request handler can reach.
#[derive(Debug)]
pub struct App {
    /// The configuration.
    pub config: Config,
    /// The primary ledger's chain id (`ledgers[0]`).
    pub chain_id: ChainId,
    /// The store.
    pub store: AnyStore,
    /// Token verification.
    pub auth: Authenticator,
    /// The primary ledger's block-producer role (`ledgers[0]`).
    pub producer: Producer,
    /// The primary ledger's block key address (`ledgers[0]`).
    pub block_producer: Address,
    /// Every hosted ledger, the primary first.
    pub ledgers: Vec<Ledger>,
    /// The connector of cross-ledger transfers between hosted ledgers.
    pub connector: crate::transfers::Connector,
    /// SATP identity and pinned peers.
    pub satp: crate::satp::Satp,
    /// The EVM chains this gateway is the connector on.
    pub evm: Vec<Arc<crate::evm::EvmLedger>>,
    /// Wakes the transfer engine before its tick: a transfer was created or
    /// a SATP message accepted.
    pub wake: Arc<tokio::sync::Notify>,
    /// Notified after a hosted ledger commits a block that applied an HTLC
    /// transaction (a lock, claim or refund). The transfer engine listens
    /// only while it has active transfers of its own, so a ledger busy with
    /// plain payments does not cost a scan of the transfer table per block
    /// (`crate::transfers::spawn_engine`).
    pub committed: Arc<tokio::sync::Notify>,
    /// One lock per ledger for the connector's own transactions there: an
    /// action reads the account's next nonce, signs, writes ahead and
    /// submits under it, so two actions never take the same nonce.
    account_locks: std::sync::Mutex<std::collections::HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    /// The per-tenant rate limit (`crate::limits`).
    pub limiter: crate::limits::TenantLimiter,
}

/// One hosted built-in ledger.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// Its chain id.
    pub chain_id: ChainId,
    /// Its block-producer role.
    pub producer: Producer,
    /// Its block key's address.
    pub block_producer: Address,
}

impl App {
    /// The lock of the connector's account on ledger `chain` (see `account_locks`).
    pub fn account_lock(&self, chain: ChainId) -> Arc<tokio::sync::Mutex<()>> {
        match self.account_locks.lock() {
            Ok(mut locks) => locks.entry(chain.get()).or_default().clone(),
            // A panic while holding this map cannot leave it inconsistent.
            Err(poisoned) => poisoned
                .into_inner()
                .entry(chain.get())
                .or_default()
                .clone(),
        }
    }

    /// The EVM chain with this chain id.
    pub fn evm(&self, chain_id: ChainId) -> Option<&crate::evm::EvmLedger> {
        use adapters::ledger::LedgerAdapter as _;
        self.evm
            .iter()
            .find(|l| l.describe().chain_id == chain_id)
            .map(|l| l.as_ref())
    }

    /// The hosted ledger with this chain id.
    pub fn ledger(&self, chain_id: ChainId) -> Option<&Ledger> {
        self.ledgers.iter().find(|l| l.chain_id == chain_id)
    }
}

impl HasAuthenticator for Arc<App> {
    fn authenticator(&self) -> &Authenticator {
        &self.auth
    }
}

/// A step of start-up ([`build_reporting`]), which `/readyz` names while the
/// gateway starts (`crate::startup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opening the database (the first attempt; retries are
    /// `WaitingForDatabase`).
    ConnectingToDatabase,
    /// The database did not answer; start-up retries it
    /// (`database_startup_wait_ms_max`).
    WaitingForDatabase,
    /// Running the database migrations (they may wait for another
    /// replica's migrations, which hold sqlx's lock).
    RunningMigrations,
    /// Taking or competing for each ledger's block-producer role.
    StartingLedgers,
    /// Checking each `[[evm]]` chain's node and contract.
    CheckingEvmChains,
}

impl Phase {
    /// What the gateway is doing, as `/readyz` says it.
    pub fn describe(self) -> &'static str {
        match self {
            Phase::ConnectingToDatabase => "connecting to the database",
            Phase::WaitingForDatabase => {
                "waiting for the database, which does not answer (retrying)"
            }
            Phase::RunningMigrations => "running database migrations",
            Phase::StartingLedgers => "starting the ledgers' block producers",
            Phase::CheckingEvmChains => "checking the EVM chains",
        }
    }
}

/// Why the database could not be opened and migrated. (The cause is part
/// of each message, so it is not also chained as a `source`.)
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL names neither PostgreSQL nor SQLite.
    #[error("database_url must start with postgres:// or sqlite:")]
    UnknownScheme,
    /// The URL does not parse.
    #[error("parsing the database URL: {0}")]
    Url(sqlx::Error),
    /// The SQLite data directory cannot be created.
    #[error("creating the data directory {}: {cause}", path.display())]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// Opening the database failed.
    #[error("connecting to {database}: {cause}")]
    Connect {
        /// `PostgreSQL` or `the SQLite database`.
        database: &'static str,
        /// The cause.
        cause: sqlx::Error,
    },
    /// The migrations failed.
    #[error("running database migrations: {0}")]
    Migrate(StoreError),
}

impl ConnectError {
    /// True when the database did not answer (refused or timed-out
    /// connection, a server starting up or shutting down, a connection lost
    /// during the migrations), rather than refusing: worth retrying.
    pub fn is_unavailable(&self) -> bool {
        match self {
            ConnectError::Connect { cause, .. } => crate::store::is_unavailable(cause),
            ConnectError::Migrate(error) => error.is_unavailable(),
            _ => false,
        }
    }
}

/// Connects to the configured database and runs its migrations, once.
pub async fn connect(config: &Config) -> Result<AnyStore, ConnectError> {
    connect_reporting(config, &|_| {}).await
}

/// [`connect`], telling `report` when the migrations start.
async fn connect_reporting(
    config: &Config,
    report: &(dyn Fn(Phase) + Sync),
) -> Result<AnyStore, ConnectError> {
    let url = config.database_url();
    let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // Durability of acknowledged transactions must not depend on the
        // server's defaults: every session commits synchronously.
        let options = sqlx::postgres::PgConnectOptions::from_str(&url)
            .map_err(ConnectError::Url)?
            .options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(config.database_connections_max)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|cause| ConnectError::Connect {
                database: "PostgreSQL",
                cause,
            })?;
        AnyStore::Postgres(PgStore::new(pool))
    } else if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir).map_err(|cause| ConnectError::DataDir {
            path: config.data_dir.clone(),
            cause,
        })?;
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(ConnectError::Url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed batch survives power loss, not just a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(config.database_connections_max.min(8))
            .connect_with(options)
            .await
            .map_err(|cause| ConnectError::Connect {
                database: "the SQLite database",
                cause,
            })?;
        AnyStore::Sqlite(SqliteStore::new(pool))
    } else {
        return Err(ConnectError::UnknownScheme);
    };
    report(Phase::RunningMigrations);
    store.migrate().await.map_err(ConnectError::Migrate)?;
    Ok(store)
}

/// [`connect`], retrying while the database does not answer, for up to
/// `database_startup_wait_ms_max` (a database that starts after the gateway, as
/// on Kubernetes or compose, or restarts meanwhile); any other error ends
/// start-up at once. The first failure is logged as a warning, then one
/// line a minute at most while it lasts.
async fn connect_waiting(
    config: &Config,
    report: &(dyn Fn(Phase) + Sync),
) -> Result<AnyStore, ConnectError> {
    const BACKOFF_MAX: Duration = Duration::from_secs(10);
    const LOG_EVERY: Duration = Duration::from_secs(60);
    let started = tokio::time::Instant::now();
    let wait_max = Duration::from_millis(config.database_startup_wait_ms_max);
    let mut backoff = Duration::from_millis(250);
    let mut attempts: u64 = 0;
    let mut logged: Option<tokio::time::Instant> = None;
    report(Phase::ConnectingToDatabase);
    loop {
        // A retry stays in `WaitingForDatabase` until it gets further.
        let error = match connect_reporting(config, report).await {
            Ok(store) => {
                if attempts > 0 {
                    tracing::info!(attempts = attempts + 1, "the database answers; starting");
                }
                return Ok(store);
            }
            Err(error) => error,
        };
        attempts += 1;
        let waited = started.elapsed();
        if !error.is_unavailable() {
            return Err(error);
        }
        if waited + backoff > wait_max {
            if attempts > 1 {
                tracing::error!(
                    attempts,
                    waited_s = waited.as_secs(),
                    "gave up waiting for the database (database_startup_wait_ms_max)"
                );
            }
            return Err(error);
        }
        report(Phase::WaitingForDatabase);
        if logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            tracing::warn!(
                %error,
                attempts,
                waited_s = waited.as_secs(),
                wait_s_max = wait_max.as_secs(),
                "the database does not answer; retrying (/readyz answers 503 meanwhile)"
            );
            logged = Some(tokio::time::Instant::now());
        } else {
            tracing::debug!(%error, attempts, "the database does not answer; retrying");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// A ledger's block key: configured (hex or keystore, `crate::keys`), or a
/// development key in the data directory (`block-key.hex` for the primary
/// ledger, `block-key-<chain id>.hex` for the others).
pub fn block_key(
    config: &Config,
    ledger: &crate::config::LedgerConfig,
) -> anyhow::Result<SigningKey> {
    if let Some(key) = config.block_key_source(ledger).secp256k1()? {
        return Ok(key);
    }
    let file = if ledger.chain_id == config.ledger.chain_id {
        "block-key.hex".to_string()
    } else {
        format!("block-key-{}.hex", ledger.chain_id)
    };
    let bytes = development_secret(&config.data_dir.join(file)).context("development block key")?;
    SigningKey::from_bytes(bytes).context("the development block key is not a valid secp256k1 key")
}

/// The connector's account key (also this gateway's account on peers'
/// ledgers): configured (hex or keystore), or generated into the data
/// directory.
pub fn connector_key(config: &Config) -> anyhow::Result<SigningKey> {
    if let Some(key) = config.connector_key_source().secp256k1()? {
        return Ok(key);
    }
    let bytes = development_secret(&config.data_dir.join("connector-key.hex"))
        .context("development connector key")?;
    SigningKey::from_bytes(bytes)
        .context("the development connector key is not a valid secp256k1 key")
}

/// The JWT authenticator: configured secret, or the development one.
pub fn authenticator(config: &Config) -> anyhow::Result<Authenticator> {
    let secret = match &config.auth.hs256_secret {
        Some(secret) => {
            let bytes = hex::decode(secret.expose().trim().trim_start_matches("0x"))
                .context("auth.hs256_secret must be hex")?;
            anyhow::ensure!(
                bytes.len() >= 32,
                "auth.hs256_secret must be at least 32 bytes"
            );
            bytes
        }
        None => development_secret(&config.data_dir.join("jwt-dev-secret.hex"))
            .context("development JWT secret")?
            .to_vec(),
    };
    Ok(Authenticator::new(
        &secret,
        &config.auth.issuer,
        &config.auth.audience,
    ))
}

/// Builds the running application state.
pub async fn build(config: Config) -> anyhow::Result<Arc<App>> {
    build_reporting(config, &|_| {}).await
}

/// [`build`], telling `report` each [`Phase`] as it starts (`lockgate serve`
/// answers `/readyz` with it meanwhile). A database that does not answer is
/// retried for up to `database_startup_wait_ms_max`.
pub async fn build_reporting(
    config: Config,
    report: &(dyn Fn(Phase) + Sync),
) -> anyhow::Result<Arc<App>> {
    // The metrics recorder first, so nothing recorded from here on is lost.
    let _ = crate::metrics::handle();
    // The keys before the database: a wrong keystore password or a missing
    // password variable ends start-up at once, not after the wait for the
    // database and the migrations. (The `[[evm]]` keys are read with their
    // chains, below.)
    let block_keys = config
        .ledgers()
        .map(|ledger| block_key(&config, ledger))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let connector_key = connector_key(&config)?;
    let satp = crate::satp::Satp::from_config(&config)?;
    let store = connect_waiting(&config, report).await?;
    if matches!(store, AnyStore::Postgres(_))
        && (!config.block_key_source(&config.ledger).is_configured()
            || config.auth.hs256_secret.is_none())
    {
        tracing::warn!(
            "running on PostgreSQL with a development block key or JWT secret from {}: \
             every replica on this database needs the same block key (ledger.block_key or \
             ledger.block_keystore) and auth.hs256_secret, or their blocks and tokens will not agree",
            config.data_dir.display()
        );
    }
    let auth = authenticator(&config)?;
    let wake = Arc::new(tokio::sync::Notify::new());
    let committed = Arc::new(tokio::sync::Notify::new());
    report(Phase::StartingLedgers);
    let mut ledgers = Vec::new();
    for (ledger, key) in config.ledgers().zip(block_keys) {
        let chain_id = ChainId::new(ledger.chain_id).context("chain_id")?;
        let producer = Producer::start(
            store.clone(),
            key.clone(),
            SequencerConfig {
                chain_id,
                batch_txs_max: ledger.batch_txs_max,
                batch_wait: Duration::from_millis(ledger.batch_wait_ms),
                queue_txs_max: ledger.queue_txs_max,
                state_cache_entries_max: ledger.state_cache_entries_max,
                on_commit: committed.clone(),
            },
        )
        .await;
        ledgers.push(Ledger {
            chain_id,
            producer,
            block_producer: key.address(),
        });
    }
    let primary = ledgers[0].clone();
    let connector = crate::transfers::Connector {
        key: connector_key,
        config: config.transfers.clone(),
    };
    if !config.evm.is_empty() {
        report(Phase::CheckingEvmChains);
    }
    let evm = crate::evm::from_config(&config).await?;
    let limiter = crate::limits::TenantLimiter::new(
        config.limits.tenant_requests_per_s,
        config.limits.tenant_burst,
    );
    let app = Arc::new(App {
        config,
        chain_id: primary.chain_id,
        store,
        auth,
        producer: primary.producer,
        block_producer: primary.block_producer,
        ledgers,
        connector: connector.clone(),
        satp,
        evm,
        wake,
        committed,
        account_locks: std::sync::Mutex::default(),
        limiter,
    });
    // Idle tenants' buckets are forgotten, so the limiter's memory follows
    // the active tenants and addresses, not every one ever seen.
    let weak = Arc::downgrade(&app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            match weak.upgrade() {
                Some(app) => app.limiter.forget_idle(),
                None => break,
            }
        }
    });
    if let Some(step) = &connector.config.fault_step {
        tracing::warn!(%step, "fault injection is set: the transfer engine halts at this step (crash tests only)");
    }
    crate::transfers::spawn_engine(app.clone(), connector);
    crate::settlement::spawn_anchorer(app.clone());
    Ok(app)
}
