//! EVM chains this gateway is the connector on (`[[evm]]` in the
//! configuration): each becomes an `adapters::evm::EvmLedger`, acting from
//! the gateway's EVM account through the deployed Lockgate HTLC contract.
//!
//! Built with the `evm` cargo feature (on by default). Without it the
//! [`EvmLedger`] type here has no values, every `match` on it is empty, and a
//! configuration with `[[evm]]` chains is refused at start.
//!
//! The transfer engine's fault injection (`transfers.fault_step`) reaches
//! into the adapter: for an EVM action `before-write-ahead` halts before the
//! transaction is sent, `after-write-ahead` right after it was sent (before
//! its receipt), and `after-submit` once it is confirmed but not yet
//! recorded in the transfer. (The EVM adapter writes nothing ahead to the
//! database: its lock ids derive from the action, so the chain itself is the
//! record; see `adapters::evm`.)

use std::sync::Arc;

use crate::config::Config;

#[cfg(feature = "evm")]
pub use adapters::evm::EvmLedger;

/// Without the `evm` feature there are no EVM ledgers.
#[cfg(not(feature = "evm"))]
#[derive(Debug)]
pub enum EvmLedger {}

/// Readiness of an EVM chain: the node answers, on the configured chain,
/// with the contract deployed (`adapters::evm::EvmLedger::check_node`).
#[cfg(feature = "evm")]
pub async fn health(ledger: &EvmLedger) -> Result<(), String> {
    ledger.check_node().await.map_err(|e| e.to_string())
}

/// Readiness of an EVM chain (never called: no values exist).
#[cfg(not(feature = "evm"))]
pub async fn health(ledger: &EvmLedger) -> Result<(), String> {
    match *ledger {}
}

#[cfg(not(feature = "evm"))]
impl EvmLedger {
    /// The decimals of an asset (never called: no values exist).
    pub async fn decimals(
        &self,
        _: ledger_core::AssetCode,
    ) -> Result<Option<u8>, adapters::ledger::AdapterError> {
        match *self {}
    }
}

#[cfg(not(feature = "evm"))]
impl adapters::ledger::LedgerAdapter for EvmLedger {
    fn account(&self) -> ledger_core::Address {
        match *self {}
    }
    fn describe(&self) -> adapters::ledger::LedgerDescription {
        match *self {}
    }
    async fn lock(
        &self,
        _: adapters::ledger::OperationKey<'_>,
        _: &adapters::ledger::LockTerms,
    ) -> Result<adapters::ledger::Acted<ledger_core::LockId>, adapters::ledger::AdapterError> {
        match *self {}
    }
    async fn claim(
        &self,
        _: adapters::ledger::OperationKey<'_>,
        _: ledger_core::LockId,
        _: [u8; 32],
    ) -> Result<adapters::ledger::Acted<()>, adapters::ledger::AdapterError> {
        match *self {}
    }
    async fn refund(
        &self,
        _: adapters::ledger::OperationKey<'_>,
        _: ledger_core::LockId,
    ) -> Result<adapters::ledger::Acted<()>, adapters::ledger::AdapterError> {
        match *self {}
    }
    async fn committed_lock(
        &self,
        _: adapters::ledger::OperationKey<'_>,
    ) -> Result<Option<ledger_core::LockId>, adapters::ledger::AdapterError> {
        match *self {}
    }
    async fn lock_status(
        &self,
        _: ledger_core::LockId,
    ) -> Result<Option<adapters::ledger::LockInfo>, adapters::ledger::AdapterError> {
        match *self {}
    }
    async fn assets(&self) -> Result<Vec<ledger_core::AssetCode>, adapters::ledger::AdapterError> {
        match *self {}
    }
    async fn events_since(
        &self,
        _: u64,
        _: u32,
    ) -> Result<adapters::ledger::EventPage, adapters::ledger::AdapterError> {
        match *self {}
    }
    async fn prove_lock(
        &self,
        _: ledger_core::LockId,
    ) -> Result<Option<serde_json::Value>, adapters::ledger::AdapterError> {
        match *self {}
    }
    async fn find_open_lock(
        &self,
        _: &adapters::ledger::LockTerms,
    ) -> Result<Option<adapters::ledger::LockInfo>, adapters::ledger::AdapterError> {
        match *self {}
    }
}

/// The configured EVM chains' adapters.
#[cfg(not(feature = "evm"))]
pub async fn from_config(config: &Config) -> anyhow::Result<Vec<Arc<EvmLedger>>> {
    anyhow::ensure!(
        config.evm.is_empty(),
        "[[evm]] chains are configured but this build has no `evm` feature"
    );
    Ok(Vec::new())
}

/// The configured EVM chains' adapters. A node that does not answer at
/// start is logged and retried by every later call; a node on another
/// chain, or without the contract, stops the start.
#[cfg(feature = "evm")]
pub async fn from_config(config: &Config) -> anyhow::Result<Vec<Arc<EvmLedger>>> {
    use adapters::evm::{EvmAsset, EvmConfig, EvmError, EvmKey, load_key};
    use anyhow::Context as _;
    use ledger_core::{AssetCode, ChainId};

    let mut out = Vec::new();
    for evm in &config.evm {
        let chain_id = ChainId::new(evm.chain_id).context("[[evm]] chain_id")?;
        // The one loader of every key (`crate::keys`): hex or keystore.
        let Some(bytes) = evm.key_source().load()? else {
            anyhow::bail!("[[evm]] chain {chain_id} has no key");
        };
        let signer = load_key(&EvmKey::Bytes(bytes))
            .with_context(|| format!("[[evm]] chain {chain_id} key"))?;
        let mut assets = Vec::new();
        for (code, asset) in &evm.assets {
            let code = AssetCode::new(code).context("[[evm]] asset code")?;
            let asset = if asset == "native" {
                EvmAsset::Native
            } else {
                EvmAsset::Erc20(asset.parse().context("[[evm]] token address")?)
            };
            assets.push((code, asset));
        }
        let contract = evm.contract.parse().context("[[evm]] contract")?;
        let mut adapter_config = EvmConfig::new(chain_id, evm.rpc_url.expose(), contract, assets);
        adapter_config.from_block = evm.deploy_block;
        adapter_config.confirmations = evm.confirmations;
        adapter_config.block_interval_ms_max = evm.block_interval_ms_max;
        adapter_config.inclusion_ms_max = evm.inclusion_ms_max;
        adapter_config.clock_drift_ms_max = evm.clock_drift_ms_max;
        adapter_config.poll_ms = evm.poll_ms;
        adapter_config.wait_ms_max = evm.wait_ms_max;
        adapter_config.rpc_timeout_ms = evm.rpc_timeout_ms;
        adapter_config.max_fee_per_gas_cap = u128::from(evm.max_fee_per_gas_gwei) * 1_000_000_000;
        adapter_config.log_range_blocks = evm.log_range_blocks;
        adapter_config.lookback_blocks = evm.lookback_blocks;
        let fault = config.transfers.fault_step.clone();
        let ledger = EvmLedger::new(adapter_config, signer)
            .with_context(|| format!("[[evm]] chain {chain_id}"))?
            .with_halt(Arc::new(move |point, op| {
                use crate::transfers::fault::{FaultPoint, matches};
                let point = match point {
                    "before-send" => FaultPoint::BeforeWriteAhead,
                    _ => FaultPoint::AfterWriteAhead,
                };
                matches(fault.as_ref(), point, op.action, op.transfer_id)
            }));
        match ledger.check_node().await {
            Ok(()) => {}
            Err(EvmError::Node(error)) => {
                tracing::warn!(chain = %chain_id, %error, "the EVM node does not answer; transfers on it wait until it does");
            }
            Err(error) => anyhow::bail!("[[evm]] chain {chain_id}: {error}"),
        }
        tracing::info!(chain = %chain_id, account = %adapters::ledger::LedgerAdapter::account(&ledger), contract = %evm.contract, "EVM chain attached");
        out.push(Arc::new(ledger));
    }
    Ok(out)
}
