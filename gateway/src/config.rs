//! Configuration: a typed struct read from an optional TOML file, then
//! overridden by environment variables, then validated. Every setting has a
//! default that runs a development gateway on an embedded SQLite file.
//!
//! The file is named by `--config FILE` or `LOCKGATE_CONFIG` (none by
//! default); log verbosity follows `RUST_LOG` (default `info`, logs on stderr).
//!
//! | TOML key | environment | default |
//! |---|---|---|
//! | `listen` | `LOCKGATE_LISTEN` | `127.0.0.1:8080` |
//! | `data_dir` | `LOCKGATE_DATA_DIR` | `./lockgate-data` |
//! | `database_url` | `LOCKGATE_DATABASE_URL`, else `DATABASE_URL` | `sqlite://<data_dir>/lockgate.db` (also when empty) |
//! | `database_connections_max` | `LOCKGATE_DATABASE_CONNECTIONS_MAX` | 16 (SQLite uses at most 8; on PostgreSQL each ledger's block producer opens up to 2 more of its own) |
//! | `database_startup_wait_ms_max` | `LOCKGATE_DATABASE_STARTUP_WAIT_MS_MAX` | 600000 (how long start-up retries a database that does not answer; 0: one attempt) |
//! | `ledger.chain_id` | `LOCKGATE_CHAIN_ID` | 4201 |
//! | `ledger.block_key` | `LOCKGATE_BLOCK_KEY` | generated into `<data_dir>/block-key.hex` |
//! | `ledger.block_keystore` (file), with `block_keystore_password` or `block_keystore_password_env` (a variable's name) | `LOCKGATE_BLOCK_KEYSTORE`, with `LOCKGATE_BLOCK_KEYSTORE_PASSWORD` (the password itself) | none: instead of `block_key` (see Keys below) |
//! | `ledger.batch_txs_max` | `LOCKGATE_BATCH_TXS_MAX` | 1024 |
//! | `ledger.batch_wait_ms` | `LOCKGATE_BATCH_WAIT_MS` | 0 |
//! | `ledger.queue_txs_max` | `LOCKGATE_QUEUE_TXS_MAX` | 65536 |
//! | `ledger.state_cache_entries_max` | `LOCKGATE_STATE_CACHE_ENTRIES_MAX` | 2000000 (PostgreSQL only; 0 turns the producer's state cache off) |
//! | `[[extra_ledgers]]` (same keys as `ledger`, `block_keystore` included) | — | none; block keys default to `<data_dir>/block-key-<chain id>.hex` |
//! | `transfers.connector_key` | `LOCKGATE_CONNECTOR_KEY` | generated into `<data_dir>/connector-key.hex` |
//! | `transfers.connector_keystore`, with `connector_keystore_password` or `connector_keystore_password_env` | `LOCKGATE_CONNECTOR_KEYSTORE`, with `LOCKGATE_CONNECTOR_KEYSTORE_PASSWORD` | none: instead of `connector_key` |
//! | `transfers.reaction_ms_max` / `claim_window_ms` / `safety_margin_ms` / `commit_ms_max` | — | 5000 / 60000 / 5000 / 5000 |
//! | `transfers.timelock_ms_max` / `tick_ms` | — | 86400000 / 200 |
//! | `transfers.tenant_locked_max` | — | 1000000000000 (minor units of one target asset, per tenant) |
//! | `transfers.asset_pairs` | — | none: a connector transfer keeps its asset code unless `[source, target]` is listed, e.g. `[["EUR", "EURT"]]` |
//! | `transfers.fault_step` | `LOCKGATE_FAULT_STEP` | unset; crash tests only, see `transfers::fault` |
//! | `satp.gateway_id` | `LOCKGATE_SATP_GATEWAY_ID` | `lockgate-<ledger.chain_id>` |
//! | `satp.identity_key` (P-256, 32 bytes hex) | `LOCKGATE_SATP_KEY` | generated into `<data_dir>/satp-key.hex` |
//! | `satp.identity_keystore`, with `identity_keystore_password` or `identity_keystore_password_env` | `LOCKGATE_SATP_KEYSTORE`, with `LOCKGATE_SATP_KEYSTORE_PASSWORD` | none: instead of `identity_key` |
//! | `satp.previous_identity_keys` (public JWKs, as JSON text) | — | none; after a rotation, this gateway's earlier identity keys, to verify what it signed with them (never to sign) |
//! | `satp.fault_step` | `LOCKGATE_SATP_FAULT_STEP` | unset; crash tests only, see `satp::fault` |
//! | `[[peers]]`: `gateway_id`, `url` (`http://`), `identity_key` (JWK text), `previous_identity_keys` (JWK texts still accepted during a rotation), `chain_id`, `block_producer`, `previous_block_producers` (addresses of the ledger's earlier block keys), `account`, `token`, `commit_ms_max`, `clock_drift_ms_max`, `routes` (chain ids reachable through the peer) | — | none; see `satp` (`lockgate satp-identity` prints what a peer pins) |
//! | `[[evm]]`: `chain_id`, `rpc_url`, `contract`, `deploy_block`, `key` (hex) or `keystore` (file) with `keystore_password` / `keystore_password_env`, `assets` (code = `"native"` or token address), `confirmations`, `block_interval_ms_max`, `inclusion_ms_max`, `clock_drift_ms_max`, `poll_ms`, `wait_ms_max`, `rpc_timeout_ms`, `max_fee_per_gas_gwei`, `log_range_blocks`, `lookback_blocks` | — | none; see `adapters::evm` and docs/evm.md (`confirmations` required; defaults 12000 / 60000 / 15000 ms, 200 ms polls, 2000 ms waits, 3000 ms RPC timeouts, 1000 gwei, 10000 / 100000 blocks) |
//! | `settlement.dispute_window_ms` | `LOCKGATE_DISPUTE_WINDOW_MS` | 1209600000 (14 days) |
//! | `auth.issuer` | `LOCKGATE_JWT_ISSUER` | `lockgate-dev` |
//! | `auth.audience` | `LOCKGATE_JWT_AUDIENCE` | `lockgate` |
//! | `auth.hs256_secret` | `LOCKGATE_JWT_SECRET` | generated into `<data_dir>/jwt-dev-secret.hex` |
//! | `limits.request_body_bytes_max` | `LOCKGATE_REQUEST_BODY_BYTES_MAX` | 1048576 |
//! | `limits.batch_request_txs_max` | `LOCKGATE_BATCH_REQUEST_TXS_MAX` | 1024 |
//! | `limits.page_size_max` | `LOCKGATE_PAGE_SIZE_MAX` | 200 |
//! | `limits.request_timeout_ms` | `LOCKGATE_REQUEST_TIMEOUT_MS` | 30000 |
//! | `limits.import_bytes_max` / `import_timeout_ms` | — | 1073741824 / 3600000 (bulk imports of usage records) |
//! | `limits.tenant_requests_per_s` / `tenant_burst` | `LOCKGATE_TENANT_REQUESTS_PER_S` / `LOCKGATE_TENANT_BURST` | 1000 / 2000 (per tenant, or per client address without a valid token; 0 turns the limit off; 429 + `Retry-After` beyond) |
//! | `limits.connections_max` | `LOCKGATE_CONNECTIONS_MAX` | 1024 (open client connections; more wait in the backlog) |
//! | `telemetry.otlp_endpoint` | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is), else `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended) | unset: no OpenTelemetry export. The TOML value is a base URL like `OTEL_EXPORTER_OTLP_ENDPOINT`'s; see `telemetry` |
//! | `telemetry.service_name` | `OTEL_SERVICE_NAME` | `satp.gateway_id` |
//! | `telemetry.filter` | `LOCKGATE_TRACE_FILTER` | `info,lockgate=debug,adapters=debug`: which spans are exported (`RUST_LOG` syntax; the log keeps following `RUST_LOG`) |
//!
//! Secrets (the keys, keystore passwords, the JWT secret, the database URL,
//! peers' tokens) are held in [`Secret`], whose `Debug` prints
//! `[redacted]`, and are never logged.
//!
//! **Keys.** Every signing key (the block keys, the connector key, the SATP
//! identity key, an `[[evm]]` chain's key) is given one way of two: as hex
//! (`…_key`), or as a Web3 Secret Storage (v3) keystore file (`…_keystore`)
//! with its password either in the file (`…_keystore_password`) or in an
//! environment variable the file names (`…_keystore_password_env`). At most
//! one of key and keystore (an `[[evm]]` chain needs exactly one), and a
//! keystore needs exactly one of its two password settings; neither key nor
//! keystore means a development key in the data directory. In the
//! environment, setting a key's variable (`LOCKGATE_BLOCK_KEY`) or its
//! keystore variable (`LOCKGATE_BLOCK_KEYSTORE`) replaces whatever the file
//! says about that key (setting both is an error), and
//! `LOCKGATE_…_KEYSTORE_PASSWORD` replaces the file's password settings.
//! `lockgate keystore` makes keystore files; `crate::keys` loads them; the
//! procedures (making keystores, rotating keys) are in docs/operations.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::keys::KeySource;

/// A secret string that never shows in logs or debug output.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself: call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the embedded database and generated development keys live.
    pub data_dir: PathBuf,
    /// `postgres://...` or `sqlite://...`; empty for the embedded default.
    pub database_url: Option<Secret>,
    /// Pool size (PostgreSQL: each ledger's block producer opens up to 2
    /// connections of its own besides).
    pub database_connections_max: u32,
    /// How long start-up keeps retrying a database that does not answer
    /// (refused or timed-out connections, a server starting up or shutting
    /// down) before the process gives up and exits; 0 makes one attempt.
    /// Other database errors (authentication, a missing database, a failed
    /// migration) end start-up at once. `/readyz` answers 503 meanwhile.
    pub database_startup_wait_ms_max: u64,
    /// The primary built-in ledger (the one `/v1/ledger` serves when no
    /// `chainId` is given).
    pub ledger: LedgerConfig,
    /// Further built-in ledgers this gateway hosts, each with its own chain
    /// id, block key and history (for example a cash ledger beside a
    /// securities ledger). Their block keys default to development keys in
    /// `<data_dir>/block-key-<chain id>.hex`.
    pub extra_ledgers: Vec<LedgerConfig>,
    /// Cross-ledger transfers between the hosted ledgers.
    pub transfers: TransfersConfig,
    /// This gateway's SATP identity.
    pub satp: SatpConfig,
    /// Other gateways this one exchanges transfers with, each pinned by its
    /// identity key and its ledger's block key.
    pub peers: Vec<PeerConfig>,
    /// EVM chains this gateway is the connector on, each through a
    /// deployed Lockgate HTLC contract (the `evm` feature, on by default).
    pub evm: Vec<EvmLedgerConfig>,
    /// Roaming settlement.
    pub settlement: SettlementConfig,
    /// API authentication.
    pub auth: AuthConfig,
    /// Request limits.
    pub limits: LimitsConfig,
    /// OpenTelemetry export of the spans (`telemetry`).
    pub telemetry: TelemetryConfig,
}

/// The built-in ledger.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// The ledger's chain id (EIP-712 domain `chainId`), 1 to 2^63-1.
    pub chain_id: u64,
    /// Block key: 32-byte secp256k1 secret as 0x hex. Or `block_keystore`.
    pub block_key: Option<Secret>,
    /// A Web3 Secret Storage (v3) keystore file holding the block key.
    pub block_keystore: Option<PathBuf>,
    /// The block keystore's password; or `block_keystore_password_env`.
    pub block_keystore_password: Option<Secret>,
    /// The environment variable holding the block keystore's password.
    pub block_keystore_password_env: Option<String>,
    /// A batch (one block, one database transaction) stops taking further
    /// submissions once it holds this many transactions; a submission (a
    /// batch request) is never split, so a block can hold more.
    pub batch_txs_max: usize,
    /// How long a submission that finds the sequencer idle and the queue
    /// empty waits for company before it is committed alone. 0 (the
    /// default) commits it at once: whatever arrives during that commit
    /// forms the next block, so blocks grow with the load by themselves
    /// (group commit), and waiting only left the producer idle (with 32
    /// clients it drew them into one wave per block; docs/perf item 11).
    pub batch_wait_ms: u64,
    /// Most transactions waiting for the sequencer; beyond it, 503.
    pub queue_txs_max: usize,
    /// Most entries (nonces, balances, assets, HTLCs) of committed state the
    /// block producer keeps in memory between batches (PostgreSQL only;
    /// about 150 bytes each); 0 turns the cache off.
    pub state_cache_entries_max: usize,
}

/// Cross-ledger transfers, where this gateway is the connector between two
/// of its ledgers with its own liquidity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransfersConfig {
    /// The connector's account key (the same address on every hosted
    /// ledger), 32-byte secp256k1 secret as 0x hex; a development key in
    /// `<data_dir>/connector-key.hex` if absent.
    pub connector_key: Option<Secret>,
    /// A Web3 Secret Storage (v3) keystore file holding the connector key.
    pub connector_keystore: Option<PathBuf>,
    /// The connector keystore's password; or `connector_keystore_password_env`.
    pub connector_keystore_password: Option<Secret>,
    /// The environment variable holding the connector keystore's password.
    pub connector_keystore_password_env: Option<String>,
    /// The engine's worst-case time to notice an event and act on it.
    pub reaction_ms_max: u64,
    /// How long the recipient has to claim once both locks are in place.
    pub claim_window_ms: u64,
    /// Extra margin in every timelock step.
    pub safety_margin_ms: u64,
    /// Worst-case time for a built-in ledger transaction to commit.
    pub commit_ms_max: u64,
    /// Longest acceptable timelock, from the time the transfer is created.
    pub timelock_ms_max: u64,
    /// How often the engine looks at active transfers.
    pub tick_ms: u64,
    /// Most minor units of one target asset that one tenant's unfinished
    /// transfers may hold locked at once (the connector's exposure to it).
    pub tenant_locked_max: u64,
    /// Crash tests only: the engine step at which to halt, see
    /// [`crate::transfers::fault`].
    pub fault_step: Option<crate::transfers::fault::FaultStep>,
    /// Pairs of asset codes `[source, target]` this gateway, as connector,
    /// treats as the same value (a token and its bridged form, `EUR` and
    /// `EURT`); a connector transfer between two different codes is refused
    /// unless listed. Swaps between assets are exchanges.
    pub asset_pairs: Vec<[String; 2]>,
}

impl Default for TransfersConfig {
    fn default() -> Self {
        Self {
            connector_key: None,
            connector_keystore: None,
            connector_keystore_password: None,
            connector_keystore_password_env: None,
            reaction_ms_max: 5_000,
            claim_window_ms: 60_000,
            safety_margin_ms: 5_000,
            commit_ms_max: 5_000,
            timelock_ms_max: 86_400_000,
            tick_ms: 200,
            tenant_locked_max: 1_000_000_000_000,
            fault_step: None,
            asset_pairs: Vec::new(),
        }
    }
}

/// This gateway's identity in SATP sessions.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SatpConfig {
    /// The gateway's id (`senderGatewayId` / `recipientGatewayId`); empty
    /// for `lockgate-<ledger.chain_id>`.
    pub gateway_id: String,
    /// The P-256 key that signs this gateway's SATP messages, 32 bytes hex.
    /// Or `identity_keystore`.
    pub identity_key: Option<Secret>,
    /// A Web3 Secret Storage (v3) keystore file holding the identity key.
    pub identity_keystore: Option<PathBuf>,
    /// The identity keystore's password; or `identity_keystore_password_env`.
    pub identity_keystore_password: Option<Secret>,
    /// The environment variable holding the identity keystore's password.
    pub identity_keystore_password_env: Option<String>,
    /// This gateway's earlier identity keys (public P-256 JWKs, as JSON
    /// text), kept after a rotation so that what it signed with them (its
    /// recovery log, its messages of sessions still open) still verifies
    /// here. Never used to sign.
    pub previous_identity_keys: Vec<String>,
    /// Crash tests only: the protocol step at which to halt (`satp::fault`).
    pub fault_step: Option<String>,
}

/// Another gateway, pinned.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's SATP gateway id.
    pub gateway_id: String,
    /// Base URL of the peer's API, `http://host:port` (TLS, where wanted, is
    /// terminated in front of the gateway).
    pub url: String,
    /// The peer's SATP identity key: a P-256 public JWK, as JSON text.
    pub identity_key: String,
    /// The peer's earlier identity keys (JWK text), still accepted during a
    /// rotation's overlap: a message is checked with the pinned key whose
    /// thumbprint its JWS `kid` names.
    #[serde(default)]
    pub previous_identity_keys: Vec<String>,
    /// The chain id of the built-in ledger the peer hosts.
    pub chain_id: u64,
    /// The address of the key that signs that ledger's blocks.
    pub block_producer: String,
    /// Addresses of the ledger's earlier block keys (after a rotation of
    /// its block key): evidence in blocks they signed is still accepted.
    #[serde(default)]
    pub previous_block_producers: Vec<String>,
    /// The peer's own account (its connector) on every built-in ledger.
    pub account: String,
    /// A token the peer issued to this gateway for its ledger API
    /// (`ledger:read` and `ledger:submit`, bound to this gateway's account),
    /// used to claim and refund locks made to this gateway on the peer's
    /// ledger. Without it this gateway can send transfers to the peer but not
    /// receive them from it.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Worst-case time from submitting a transaction to the peer's ledger to
    /// it being final, network included.
    #[serde(default = "PeerConfig::default_commit_ms_max")]
    pub commit_ms_max: u64,
    /// Largest difference between the peer's clock and this gateway's.
    #[serde(default = "PeerConfig::default_clock_drift_ms_max")]
    pub clock_drift_ms_max: u64,
    /// Ledgers hosted by the peer's own peers, reachable through it (a
    /// route A -> B -> C); planned with the peer's finality.
    #[serde(default)]
    pub routes: Vec<u64>,
}

impl PeerConfig {
    fn default_commit_ms_max() -> u64 {
        5_000
    }

    fn default_clock_drift_ms_max() -> u64 {
        1_000
    }
}

/// An EVM chain reached through the Lockgate HTLC contract
/// (`adapters::evm`). The gateway acts there from its own EVM account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvmLedgerConfig {
    /// The chain's EIP-155 chain id (also its Lockgate ledger id); checked
    /// against the node at start.
    pub chain_id: u64,
    /// The node's JSON-RPC URL (`http://` or `https://`).
    pub rpc_url: Secret,
    /// The HTLC contract's address (`lockgate evm-deploy` deploys one).
    pub contract: String,
    /// The block the contract was deployed in: logs are not read below it.
    #[serde(default)]
    pub deploy_block: u64,
    /// The account key: 32-byte secp256k1 secret as hex. Or `keystore`.
    #[serde(default)]
    pub key: Option<Secret>,
    /// A Web3 Secret Storage (v3) keystore file holding the account key.
    #[serde(default)]
    pub keystore: Option<PathBuf>,
    /// The keystore's password; or the environment variable named by
    /// `keystore_password_env`.
    #[serde(default)]
    pub keystore_password: Option<Secret>,
    /// The environment variable holding the keystore's password.
    #[serde(default)]
    pub keystore_password_env: Option<String>,
    /// Assets: a Lockgate asset code to `"native"` (the chain's coin, in
    /// wei) or an ERC-20 token's 0x address (in its base units).
    pub assets: std::collections::BTreeMap<String, String>,
    /// Blocks on top before a block's contents count as final. Required:
    /// there is no safe default (0 suits BFT chains and dev nodes only).
    pub confirmations: u32,
    /// Longest time between two blocks (ms).
    #[serde(default = "EvmLedgerConfig::default_block_interval_ms_max")]
    pub block_interval_ms_max: u64,
    /// Longest time from sending a transaction to its inclusion (ms).
    #[serde(default = "EvmLedgerConfig::default_inclusion_ms_max")]
    pub inclusion_ms_max: u64,
    /// Largest difference between block timestamps and true time (ms).
    #[serde(default = "EvmLedgerConfig::default_clock_drift_ms_max")]
    pub clock_drift_ms_max: u64,
    /// How often a waiting action polls the node (ms).
    #[serde(default = "EvmLedgerConfig::default_poll_ms")]
    pub poll_ms: u64,
    /// Longest one engine step waits for an action's confirmations (ms);
    /// less than `transfers.reaction_ms_max`.
    #[serde(default = "EvmLedgerConfig::default_wait_ms_max")]
    pub wait_ms_max: u64,
    /// Longest one JSON-RPC request may take (ms).
    #[serde(default = "EvmLedgerConfig::default_rpc_timeout_ms")]
    pub rpc_timeout_ms: u64,
    /// Highest maxFeePerGas offered, in gwei.
    #[serde(default = "EvmLedgerConfig::default_max_fee_gwei")]
    pub max_fee_per_gas_gwei: u64,
    /// Most blocks per eth_getLogs request.
    #[serde(default = "EvmLedgerConfig::default_log_range_blocks")]
    pub log_range_blocks: u64,
    /// How far back lock searches look (blocks).
    #[serde(default = "EvmLedgerConfig::default_lookback_blocks")]
    pub lookback_blocks: u64,
}

impl EvmLedgerConfig {
    /// Where the chain's account key comes from.
    pub fn key_source(&self) -> KeySource<'_> {
        KeySource {
            section: format!("[[evm]] (chain {})", self.chain_id),
            key_name: "key",
            keystore_name: "keystore",
            key: self.key.as_ref(),
            keystore: self.keystore.as_deref(),
            password: self.keystore_password.as_ref(),
            password_env: self.keystore_password_env.as_deref(),
        }
    }

    fn default_block_interval_ms_max() -> u64 {
        12_000
    }
    fn default_inclusion_ms_max() -> u64 {
        60_000
    }
    fn default_clock_drift_ms_max() -> u64 {
        15_000
    }
    fn default_poll_ms() -> u64 {
        200
    }
    fn default_wait_ms_max() -> u64 {
        2_000
    }
    fn default_rpc_timeout_ms() -> u64 {
        3_000
    }
    fn default_max_fee_gwei() -> u64 {
        1_000
    }
    fn default_log_range_blocks() -> u64 {
        10_000
    }
    fn default_lookback_blocks() -> u64 {
        100_000
    }
}

/// Roaming settlement.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SettlementConfig {
    /// How long a recipient has to accept or dispute a usage record (ms).
    pub dispute_window_ms: u64,
}

impl Default for SettlementConfig {
    fn default() -> Self {
        Self {
            // 14 days.
            dispute_window_ms: 14 * 24 * 3_600_000,
        }
    }
}

/// JWT bearer authentication (HS256, pinned).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// HS256 secret (at least 32 bytes), hex; generated for development if absent.
    pub hs256_secret: Option<Secret>,
}

/// Limits on requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body accepted.
    pub request_body_bytes_max: usize,
    /// Most transactions in one batch request.
    pub batch_request_txs_max: usize,
    /// Largest page of a list.
    pub page_size_max: u32,
    /// Requests taking longer are answered 503.
    pub request_timeout_ms: u64,
    /// Largest body of a bulk import (streamed, never held whole).
    pub import_bytes_max: u64,
    /// A bulk import taking longer is cut off (what it stored stays).
    pub import_timeout_ms: u64,
    /// Sustained requests per second per tenant (token bucket); 0 turns the
    /// limit off. See `limits`.
    pub tenant_requests_per_s: u32,
    /// Requests a tenant may send at once above the sustained rate.
    pub tenant_burst: u32,
    /// Most open client connections; more wait in the kernel's backlog.
    pub connections_max: usize,
}

/// OpenTelemetry export (see `crate::telemetry`). The standard `OTEL_*`
/// environment variables of the OTLP exporter and the batch span processor
/// (`OTEL_EXPORTER_OTLP_PROTOCOL`, `_HEADERS`, `_TIMEOUT`, `OTEL_BSP_*`,
/// `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SDK_DISABLED`) apply as well.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); unset:
    /// no export.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans; `satp.gateway_id` if unset.
    pub service_name: Option<String>,
    /// Which spans are exported, in `RUST_LOG` syntax.
    pub filter: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: None,
            filter: "info,lockgate=debug,adapters=debug".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("lockgate-data"),
            database_url: None,
            database_connections_max: 16,
            database_startup_wait_ms_max: 600_000,
            ledger: LedgerConfig::default(),
            extra_ledgers: Vec::new(),
            transfers: TransfersConfig::default(),
            satp: SatpConfig::default(),
            peers: Vec::new(),
            evm: Vec::new(),
            settlement: SettlementConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            chain_id: 4201,
            block_key: None,
            block_keystore: None,
            block_keystore_password: None,
            block_keystore_password_env: None,
            batch_txs_max: 1024,
            batch_wait_ms: 0,
            queue_txs_max: 65_536,
            state_cache_entries_max: 2_000_000,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "lockgate-dev".into(),
            audience: "lockgate".into(),
            hs256_secret: None,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            request_body_bytes_max: 1 << 20,
            batch_request_txs_max: 1024,
            page_size_max: 200,
            request_timeout_ms: 30_000,
            import_bytes_max: 1 << 30,
            import_timeout_ms: 3_600_000,
            tenant_requests_per_s: 1_000,
            tenant_burst: 2_000,
            connections_max: 1_024,
        }
    }
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// An environment variable has a bad value.
    #[error("environment variable {name}: {reason}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// The environment's say on one signing key: `key_var` (the key as hex) or
/// `keystore_var` (a keystore file), and `password_var` (that keystore's
/// password). Naming a key or a keystore here replaces whatever the file
/// said about that key; naming both is an error.
struct EnvKey {
    key_var: &'static str,
    keystore_var: &'static str,
    password_var: &'static str,
}

impl EnvKey {
    fn apply(
        &self,
        key: &mut Option<Secret>,
        keystore: &mut Option<PathBuf>,
        password: &mut Option<Secret>,
        password_env: &mut Option<String>,
    ) -> Result<(), ConfigError> {
        self.apply_from(
            |name| std::env::var(name).ok(),
            key,
            keystore,
            password,
            password_env,
        )
    }

    /// [`EnvKey::apply`] with the variables read through `var`.
    fn apply_from(
        &self,
        var: impl Fn(&str) -> Option<String>,
        key: &mut Option<Secret>,
        keystore: &mut Option<PathBuf>,
        password: &mut Option<Secret>,
        password_env: &mut Option<String>,
    ) -> Result<(), ConfigError> {
        match (var(self.key_var), var(self.keystore_var)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Env {
                    name: self.keystore_var,
                    reason: format!("set only one of {} and {}", self.key_var, self.keystore_var),
                });
            }
            (Some(value), None) => {
                *key = Some(Secret::new(value));
                *keystore = None;
                *password = None;
                *password_env = None;
            }
            (None, Some(path)) => {
                *keystore = Some(PathBuf::from(path));
                *key = None;
            }
            (None, None) => {}
        }
        if let Some(value) = var(self.password_var) {
            *password = Some(Secret::new(value));
            *password_env = None;
        }
        Ok(())
    }
}

fn env_parse<T: std::str::FromStr>(name: &'static str, target: &mut T) -> Result<(), ConfigError>
where
    T::Err: std::fmt::Display,
{
    if let Ok(value) = std::env::var(name) {
        *target = value.parse().map_err(|e: T::Err| ConfigError::Env {
            name,
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

impl Config {
    /// Reads the file (if any), applies the environment, validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_path_buf(),
                    source: Box::new(source),
                })?
            }
            None => Config::default(),
        };
        config.apply_env()?;
        config.normalize();
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self) -> Result<(), ConfigError> {
        env_parse("LOCKGATE_LISTEN", &mut self.listen)?;
        if let Ok(dir) = std::env::var("LOCKGATE_DATA_DIR") {
            self.data_dir = PathBuf::from(dir);
        }
        for name in ["LOCKGATE_DATABASE_URL", "DATABASE_URL"] {
            if let Ok(url) = std::env::var(name)
                && !url.is_empty()
            {
                self.database_url = Some(Secret::new(url));
                break;
            }
        }
        env_parse(
            "LOCKGATE_DATABASE_CONNECTIONS_MAX",
            &mut self.database_connections_max,
        )?;
        env_parse(
            "LOCKGATE_DATABASE_STARTUP_WAIT_MS_MAX",
            &mut self.database_startup_wait_ms_max,
        )?;
        env_parse("LOCKGATE_CHAIN_ID", &mut self.ledger.chain_id)?;
        let ledger = &mut self.ledger;
        EnvKey {
            key_var: "LOCKGATE_BLOCK_KEY",
            keystore_var: "LOCKGATE_BLOCK_KEYSTORE",
            password_var: "LOCKGATE_BLOCK_KEYSTORE_PASSWORD",
        }
        .apply(
            &mut ledger.block_key,
            &mut ledger.block_keystore,
            &mut ledger.block_keystore_password,
            &mut ledger.block_keystore_password_env,
        )?;
        env_parse("LOCKGATE_BATCH_TXS_MAX", &mut self.ledger.batch_txs_max)?;
        env_parse("LOCKGATE_BATCH_WAIT_MS", &mut self.ledger.batch_wait_ms)?;
        env_parse("LOCKGATE_QUEUE_TXS_MAX", &mut self.ledger.queue_txs_max)?;
        env_parse(
            "LOCKGATE_STATE_CACHE_ENTRIES_MAX",
            &mut self.ledger.state_cache_entries_max,
        )?;
        let transfers = &mut self.transfers;
        EnvKey {
            key_var: "LOCKGATE_CONNECTOR_KEY",
            keystore_var: "LOCKGATE_CONNECTOR_KEYSTORE",
            password_var: "LOCKGATE_CONNECTOR_KEYSTORE_PASSWORD",
        }
        .apply(
            &mut transfers.connector_key,
            &mut transfers.connector_keystore,
            &mut transfers.connector_keystore_password,
            &mut transfers.connector_keystore_password_env,
        )?;
        if let Ok(step) = std::env::var("LOCKGATE_FAULT_STEP") {
            self.transfers.fault_step = Some(step.parse().map_err(
                |e: crate::transfers::fault::BadFaultStep| ConfigError::Env {
                    name: "LOCKGATE_FAULT_STEP",
                    reason: e.to_string(),
                },
            )?);
        }
        if let Ok(id) = std::env::var("LOCKGATE_SATP_GATEWAY_ID") {
            self.satp.gateway_id = id;
        }
        let satp = &mut self.satp;
        EnvKey {
            key_var: "LOCKGATE_SATP_KEY",
            keystore_var: "LOCKGATE_SATP_KEYSTORE",
            password_var: "LOCKGATE_SATP_KEYSTORE_PASSWORD",
        }
        .apply(
            &mut satp.identity_key,
            &mut satp.identity_keystore,
            &mut satp.identity_keystore_password,
            &mut satp.identity_keystore_password_env,
        )?;
        if let Ok(step) = std::env::var("LOCKGATE_SATP_FAULT_STEP") {
            self.satp.fault_step = Some(step);
        }
        env_parse(
            "LOCKGATE_DISPUTE_WINDOW_MS",
            &mut self.settlement.dispute_window_ms,
        )?;
        if let Ok(issuer) = std::env::var("LOCKGATE_JWT_ISSUER") {
            self.auth.issuer = issuer;
        }
        if let Ok(audience) = std::env::var("LOCKGATE_JWT_AUDIENCE") {
            self.auth.audience = audience;
        }
        if let Ok(secret) = std::env::var("LOCKGATE_JWT_SECRET") {
            self.auth.hs256_secret = Some(Secret::new(secret));
        }
        env_parse(
            "LOCKGATE_REQUEST_BODY_BYTES_MAX",
            &mut self.limits.request_body_bytes_max,
        )?;
        env_parse(
            "LOCKGATE_BATCH_REQUEST_TXS_MAX",
            &mut self.limits.batch_request_txs_max,
        )?;
        env_parse("LOCKGATE_PAGE_SIZE_MAX", &mut self.limits.page_size_max)?;
        env_parse(
            "LOCKGATE_REQUEST_TIMEOUT_MS",
            &mut self.limits.request_timeout_ms,
        )?;
        env_parse(
            "LOCKGATE_TENANT_REQUESTS_PER_S",
            &mut self.limits.tenant_requests_per_s,
        )?;
        env_parse("LOCKGATE_TENANT_BURST", &mut self.limits.tenant_burst)?;
        env_parse("LOCKGATE_CONNECTIONS_MAX", &mut self.limits.connections_max)?;
        if let Ok(filter) = std::env::var("LOCKGATE_TRACE_FILTER") {
            self.telemetry.filter = filter;
        }
        Ok(())
    }

    /// An empty database URL means the embedded default, whether it came
    /// from the file or the environment.
    fn normalize(&mut self) {
        if self.satp.gateway_id.is_empty() {
            self.satp.gateway_id = format!("lockgate-{}", self.ledger.chain_id);
        }
        if self
            .database_url
            .as_ref()
            .is_some_and(|url| url.expose().trim().is_empty())
        {
            self.database_url = None;
        }
    }

    /// Every hosted ledger, the primary first.
    pub fn ledgers(&self) -> impl Iterator<Item = &LedgerConfig> {
        std::iter::once(&self.ledger).chain(&self.extra_ledgers)
    }

    /// Where a hosted ledger's block key comes from.
    pub fn block_key_source<'a>(&self, ledger: &'a LedgerConfig) -> KeySource<'a> {
        let section = if ledger.chain_id == self.ledger.chain_id {
            "ledger".to_string()
        } else {
            format!("extra_ledgers (chain {})", ledger.chain_id)
        };
        KeySource {
            section,
            key_name: "block_key",
            keystore_name: "block_keystore",
            key: ledger.block_key.as_ref(),
            keystore: ledger.block_keystore.as_deref(),
            password: ledger.block_keystore_password.as_ref(),
            password_env: ledger.block_keystore_password_env.as_deref(),
        }
    }

    /// Where the connector key comes from.
    pub fn connector_key_source(&self) -> KeySource<'_> {
        let t = &self.transfers;
        KeySource {
            section: "transfers".into(),
            key_name: "connector_key",
            keystore_name: "connector_keystore",
            key: t.connector_key.as_ref(),
            keystore: t.connector_keystore.as_deref(),
            password: t.connector_keystore_password.as_ref(),
            password_env: t.connector_keystore_password_env.as_deref(),
        }
    }

    /// Where the SATP identity key comes from.
    pub fn identity_key_source(&self) -> KeySource<'_> {
        let s = &self.satp;
        KeySource {
            section: "satp".into(),
            key_name: "identity_key",
            keystore_name: "identity_keystore",
            key: s.identity_key.as_ref(),
            keystore: s.identity_keystore.as_deref(),
            password: s.identity_keystore_password.as_ref(),
            password_env: s.identity_keystore_password_env.as_deref(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |what: &str| Err(ConfigError::Invalid(what.to_string()));
        let mut chain_ids = std::collections::BTreeSet::new();
        for ledger in self.ledgers() {
            if ledger.chain_id == 0 || ledger.chain_id > crate::dto::STORED_INTEGER_MAX {
                return invalid("every ledger's chain_id must be between 1 and 2^63-1");
            }
            if !chain_ids.insert(ledger.chain_id) {
                return invalid("two ledgers have the same chain_id");
            }
            if ledger.batch_txs_max == 0 || ledger.batch_txs_max > 65_536 {
                return invalid("batch_txs_max must be between 1 and 65536");
            }
            if ledger.queue_txs_max < ledger.batch_txs_max {
                return invalid("queue_txs_max must be at least batch_txs_max");
            }
        }
        let mut sources = vec![self.connector_key_source(), self.identity_key_source()];
        sources.extend(self.ledgers().map(|l| self.block_key_source(l)));
        for source in &sources {
            source.check().map_err(ConfigError::Invalid)?;
        }
        // Every pinned identity key names one gateway: a `kid` must say
        // whose message it is.
        let mut kids = std::collections::BTreeMap::new();
        for jwk in &self.satp.previous_identity_keys {
            let Ok(key) = adapters::satp::jws::key_from_jwk(jwk) else {
                return invalid(
                    "every satp.previous_identity_keys entry must be a P-256 public JWK",
                );
            };
            kids.insert(
                adapters::satp::jws::thumbprint(&key),
                self.satp.gateway_id.as_str(),
            );
        }
        for peer in &self.peers {
            for jwk in std::iter::once(&peer.identity_key).chain(&peer.previous_identity_keys) {
                let Ok(key) = adapters::satp::jws::key_from_jwk(jwk) else {
                    return invalid(
                        "a peer's identity_key and previous_identity_keys must be P-256 public JWKs",
                    );
                };
                let owner = kids
                    .entry(adapters::satp::jws::thumbprint(&key))
                    .or_insert(peer.gateway_id.as_str());
                if *owner != peer.gateway_id {
                    return invalid(
                        "one identity key is pinned for two gateways (peers, or this gateway's previous keys)",
                    );
                }
            }
            if peer
                .previous_block_producers
                .iter()
                .any(|p| p.parse::<ledger_core::Address>().is_err())
            {
                return invalid("a peer's previous_block_producers must be 0x addresses");
            }
        }
        if self.extra_ledgers.len() > 15 {
            return invalid("a gateway hosts at most 16 ledgers");
        }
        if self.limits.batch_request_txs_max == 0
            || self.limits.batch_request_txs_max > self.ledger.queue_txs_max
            || self.limits.batch_request_txs_max > 65_536
        {
            return invalid(
                "limits.batch_request_txs_max must be between 1 and ledger.queue_txs_max (and at most 65536)",
            );
        }
        if self.limits.page_size_max == 0 || self.limits.page_size_max > 10_000 {
            return invalid("limits.page_size_max must be between 1 and 10000");
        }
        if self.limits.connections_max == 0 {
            return invalid("limits.connections_max must be at least 1");
        }
        if self.limits.request_timeout_ms == 0 {
            return invalid("limits.request_timeout_ms must be at least 1");
        }
        if self.database_connections_max == 0 {
            return invalid("database_connections_max must be at least 1");
        }
        let mut gateway_ids = std::collections::BTreeSet::from([self.satp.gateway_id.as_str()]);
        for peer in &self.peers {
            if !gateway_ids.insert(peer.gateway_id.as_str()) || peer.gateway_id.is_empty() {
                return invalid(
                    "every peer needs its own non-empty gateway_id, not this gateway's",
                );
            }
            if !chain_ids.insert(peer.chain_id) {
                return invalid("a peer's chain_id is already a hosted ledger's or another peer's");
            }
            for route in &peer.routes {
                if !chain_ids.insert(*route) {
                    return invalid(
                        "a peer's route is a hosted ledger, a peer's, or another route",
                    );
                }
            }
            if !peer.url.starts_with("http://") {
                return invalid(
                    "a peer's url must start with http:// (terminate TLS in front of the gateway)",
                );
            }
            if adapters::satp::jws::key_from_jwk(&peer.identity_key).is_err() {
                return invalid("a peer's identity_key must be a P-256 public JWK");
            }
            if peer.block_producer.parse::<ledger_core::Address>().is_err()
                || peer.account.parse::<ledger_core::Address>().is_err()
            {
                return invalid("a peer's block_producer and account must be 0x addresses");
            }
        }
        for evm in &self.evm {
            if evm.chain_id == 0 || evm.chain_id > crate::dto::STORED_INTEGER_MAX {
                return invalid("an [[evm]] chain_id must be between 1 and 2^63-1");
            }
            if !chain_ids.insert(evm.chain_id) {
                return invalid("an [[evm]] chain_id is already a hosted ledger's or a peer's");
            }
            let url = evm.rpc_url.expose();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return invalid("an [[evm]] rpc_url must start with http:// or https://");
            }
            if evm.contract.parse::<ledger_core::Address>().is_err() {
                return invalid("an [[evm]] contract must be a 0x address");
            }
            if evm.key.is_some() == evm.keystore.is_some() {
                return invalid("an [[evm]] chain needs exactly one of key and keystore");
            }
            evm.key_source().check().map_err(ConfigError::Invalid)?;
            if evm.assets.is_empty() {
                return invalid("an [[evm]] chain needs at least one asset");
            }
            for (code, asset) in &evm.assets {
                if ledger_core::AssetCode::new(code).is_err()
                    || (asset != "native" && asset.parse::<ledger_core::Address>().is_err())
                {
                    return invalid(
                        "[[evm]] assets map asset codes to \"native\" or an ERC-20 token's 0x address",
                    );
                }
            }
            if evm.poll_ms == 0 || evm.log_range_blocks == 0 || evm.rpc_timeout_ms == 0 {
                return invalid(
                    "an [[evm]] poll_ms, log_range_blocks and rpc_timeout_ms must be at least 1",
                );
            }
            if evm.wait_ms_max >= self.transfers.reaction_ms_max {
                return invalid(
                    "an [[evm]] wait_ms_max must be less than transfers.reaction_ms_max (a step that waits must not delay the engine's reaction)",
                );
            }
        }
        if self.settlement.dispute_window_ms == 0 {
            return invalid("settlement.dispute_window_ms must be at least 1");
        }
        if self.auth.issuer.is_empty() || self.auth.audience.is_empty() {
            return invalid("auth.issuer and auth.audience must not be empty");
        }
        Ok(())
    }

    /// The database URL: the configured one, or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_string(),
            None => format!("sqlite://{}", self.data_dir.join("lockgate.db").display()),
        }
    }
}

/// Reads a development secret from `path`, or makes 32 random bytes and
/// writes them there (mode 0600) on first use.
pub fn development_secret(path: &Path) -> Result<[u8; 32], std::io::Error> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim().trim_start_matches("0x"), &mut bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        return Ok(bytes);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options.open(path)?;
    writeln!(file, "0x{}", hex::encode(bytes))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_secrets_do_not_print() {
        let mut config = Config::default();
        config.validate().unwrap();
        config.auth.hs256_secret = Some(Secret::new("super-secret-value".into()));
        assert!(!format!("{config:?}").contains("super-secret-value"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error =
            toml::from_str::<Config>("listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap_err();
        assert!(error.to_string().contains("listen_port"), "{error}");
        let ok: Config = toml::from_str("[ledger]\nchain_id = 7\n").unwrap();
        assert_eq!(ok.ledger.chain_id, 7);
    }

    #[test]
    fn an_empty_database_url_means_the_embedded_default() {
        let mut config: Config = toml::from_str("database_url = \"\"\ndata_dir = \"d\"\n").unwrap();
        config.normalize();
        assert_eq!(config.database_url(), "sqlite://d/lockgate.db");
    }

    fn invalid(toml: &str) -> String {
        let config: Config = toml::from_str(toml).unwrap();
        match config.validate() {
            Err(ConfigError::Invalid(message)) => message,
            other => panic!("{toml}: {other:?}"),
        }
    }

    #[test]
    fn every_key_has_at_most_one_source_and_a_keystore_one_password() {
        for (toml, message) in [
            (
                "[ledger]\nblock_key = \"0x01\"\nblock_keystore = \"b.json\"\nblock_keystore_password_env = \"P\"\n",
                "ledger: give either block_key or block_keystore, not both",
            ),
            (
                "[transfers]\nconnector_keystore = \"c.json\"\n",
                "transfers: connector_keystore needs connector_keystore_password or connector_keystore_password_env",
            ),
            (
                "[satp]\nidentity_keystore = \"s.json\"\nidentity_keystore_password = \"x\"\nidentity_keystore_password_env = \"P\"\n",
                "satp: give either identity_keystore_password or identity_keystore_password_env, not both",
            ),
            (
                "[satp]\nidentity_keystore_password_env = \"P\"\n",
                "satp: identity_keystore_password or identity_keystore_password_env without identity_keystore",
            ),
            (
                "[[extra_ledgers]]\nchain_id = 4301\nblock_keystore = \"b.json\"\n",
                "extra_ledgers (chain 4301): block_keystore needs block_keystore_password or block_keystore_password_env",
            ),
        ] {
            assert_eq!(invalid(toml), message);
        }
        let ok: Config = toml::from_str(
            "[ledger]\nblock_keystore = \"b.json\"\nblock_keystore_password_env = \"P\"\n\
             [transfers]\nconnector_key = \"0x01\"\n\
             [satp]\nidentity_keystore = \"s.json\"\nidentity_keystore_password = \"x\"\n",
        )
        .unwrap();
        ok.validate().unwrap();
        assert!(ok.block_key_source(&ok.ledger).is_configured());
        // The password is a secret like the keys.
        assert!(!format!("{ok:?}").contains("\"x\""));
    }

    #[test]
    fn the_environment_replaces_the_files_source_of_a_key() {
        let env_key = EnvKey {
            key_var: "K",
            keystore_var: "KS",
            password_var: "KP",
        };
        let apply = |vars: &[(&str, &str)], ledger: &mut LedgerConfig| {
            let vars: std::collections::BTreeMap<String, String> = vars
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            env_key.apply_from(
                |name| vars.get(name).cloned(),
                &mut ledger.block_key,
                &mut ledger.block_keystore,
                &mut ledger.block_keystore_password,
                &mut ledger.block_keystore_password_env,
            )
        };
        let from_file = || LedgerConfig {
            block_keystore: Some(PathBuf::from("file.json")),
            block_keystore_password_env: Some("FILE_PW".into()),
            ..LedgerConfig::default()
        };
        // A key in the environment replaces the file's keystore.
        let mut ledger = from_file();
        apply(&[("K", "0x01")], &mut ledger).unwrap();
        assert_eq!(ledger.block_key, Some(Secret::new("0x01".into())));
        assert_eq!(
            (ledger.block_keystore, ledger.block_keystore_password_env),
            (None, None)
        );
        // A keystore and its password in the environment replace the file's.
        let mut ledger = LedgerConfig {
            block_key: Some(Secret::new("0x02".into())),
            ..from_file()
        };
        apply(&[("KS", "env.json"), ("KP", "pw")], &mut ledger).unwrap();
        assert_eq!(ledger.block_key, None);
        assert_eq!(ledger.block_keystore, Some(PathBuf::from("env.json")));
        assert_eq!(
            ledger.block_keystore_password,
            Some(Secret::new("pw".into()))
        );
        assert_eq!(ledger.block_keystore_password_env, None);
        // Nothing in the environment: the file stands.
        let mut ledger = from_file();
        apply(&[], &mut ledger).unwrap();
        assert_eq!(ledger.block_keystore, Some(PathBuf::from("file.json")));
        // Both in the environment: refused, naming the variables only.
        let error = apply(&[("K", "0x01"), ("KS", "env.json")], &mut from_file()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable KS: set only one of K and KS"
        );
    }

    #[test]
    fn previous_keys_of_peers_are_checked() {
        let jwk = |seed: &str| {
            let key =
                p256::ecdsa::SigningKey::from_slice(&ledger_core::hash::sha256(seed.as_bytes()))
                    .unwrap();
            adapters::satp::jws::jwk(key.verifying_key()).to_string()
        };
        let peer = |id: &str, chain: u64, key: &str, previous: &[String], producers: &str| {
            format!(
                "[[peers]]\ngateway_id = \"{id}\"\nurl = \"http://127.0.0.1:1\"\nidentity_key = '{key}'\n\
                 previous_identity_keys = [{}]\nchain_id = {chain}\n\
                 block_producer = \"0x0000000000000000000000000000000000000001\"\n\
                 previous_block_producers = [{producers}]\n\
                 account = \"0x0000000000000000000000000000000000000002\"\n",
                previous
                    .iter()
                    .map(|k| format!("'{k}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let (old, new, other) = (jwk("old"), jwk("new"), jwk("other"));
        let fine = peer(
            "b",
            4301,
            &new,
            std::slice::from_ref(&old),
            "\"0x0000000000000000000000000000000000000003\"",
        );
        let config: Config = toml::from_str(&fine).unwrap();
        config.validate().unwrap();
        assert_eq!(
            invalid(&peer("b", 4301, &new, &["{}".to_string()], "")),
            "a peer's identity_key and previous_identity_keys must be P-256 public JWKs"
        );
        assert_eq!(
            invalid(&peer("b", 4301, &new, &[], "\"0x12\"")),
            "a peer's previous_block_producers must be 0x addresses"
        );
        // A kid must name one gateway.
        let two = format!(
            "{fine}{}",
            peer("c", 4401, &other, std::slice::from_ref(&old), "")
        );
        assert_eq!(
            invalid(&two),
            "one identity key is pinned for two gateways (peers, or this gateway's previous keys)"
        );
        let own = format!("[satp]\nprevious_identity_keys = ['{old}']\n{fine}");
        assert_eq!(
            invalid(&own),
            "one identity key is pinned for two gateways (peers, or this gateway's previous keys)"
        );
        assert_eq!(
            invalid("[satp]\nprevious_identity_keys = ['{\"kty\":\"EC\"}']\n"),
            "every satp.previous_identity_keys entry must be a P-256 public JWK"
        );
    }

    #[test]
    fn development_secrets_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.hex");
        let first = development_secret(&path).unwrap();
        assert_eq!(development_secret(&path).unwrap(), first);
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_example_configuration_loads() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/lockgate.example.toml"
        ));
        let text = std::fs::read_to_string(path).unwrap();
        let config: Config = toml::from_str(&text).unwrap();
        config.validate().unwrap();
        assert_eq!(config.ledger.chain_id, 4201);
    }
}
