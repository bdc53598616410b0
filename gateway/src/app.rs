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
use crate::store::{AnyStore, LedgerStore, PgStore, SqliteStore};

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
    /// Wakes the transfer engine before its tick: a block was committed, a
    /// transfer created or a SATP message accepted.
    pub wake: Arc<tokio::sync::Notify>,
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

/// Connects to the configured database and runs its migrations.
pub async fn connect(config: &Config) -> anyhow::Result<AnyStore> {
    let url = config.database_url();
    let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // Durability of acknowledged transactions must not depend on the
        // server's defaults: every session commits synchronously.
        let options = sqlx::postgres::PgConnectOptions::from_str(&url)
            .context("parsing the PostgreSQL URL")?
            .options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(config.database_connections_max)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .context("connecting to PostgreSQL")?;
        AnyStore::Postgres(PgStore::new(pool))
    } else if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("creating the data directory {}", config.data_dir.display())
        })?;
        let options = SqliteConnectOptions::from_str(&url)
            .context("parsing the SQLite URL")?
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
            .context("opening the SQLite database")?;
        AnyStore::Sqlite(SqliteStore::new(pool))
    } else {
        anyhow::bail!("database_url must start with postgres:// or sqlite:");
    };
    store
        .migrate()
        .await
        .context("running database migrations")?;
    Ok(store)
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
    // The metrics recorder first, so nothing recorded from here on is lost.
    let _ = crate::metrics::handle();
    let store = connect(&config).await?;
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
    let mut ledgers = Vec::new();
    for ledger in config.ledgers() {
        let key = block_key(&config, ledger)?;
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
                on_commit: wake.clone(),
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
        key: connector_key(&config)?,
        config: config.transfers.clone(),
    };
    let satp = crate::satp::Satp::from_config(&config)?;
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
