//! The `evm` [`LedgerAdapter`]: an EVM chain (Ethereum, Besu, Quorum, a
//! local anvil) through the Lockgate HTLC contract
//! (`adapters/contracts/LockgateHtlc.sol`, compiled artifact in
//! `adapters/contracts/out/`), driven over JSON-RPC with alloy.
//!
//! **Locks.** One contract holds every lock, of the chain's native coin
//! (`token` = the zero address) or of an ERC-20 token. A lock's id is
//! `keccak256(abi.encode(sender, salt))`; the adapter's salt for an action is
//! [`salt_of`] its [`OperationKey`], so the id of the lock a `lock` call
//! makes is known before anything is sent. That makes the chain itself the
//! write-ahead record: a resubmitted lock (after a crash, a dropped
//! transaction or a reorg) can never make a second lock, and a claim or
//! refund settles a lock once, so resubmitting those is harmless too.
//!
//! **Finality.** Every read the engine acts on ([`LedgerAdapter::lock_status`],
//! [`LedgerAdapter::find_open_lock`], [`LedgerAdapter::committed_lock`],
//! [`LedgerAdapter::events_since`]) is taken at the *confirmed* height:
//! `confirmations` blocks below the head. An action is `Done` only once its
//! effect is visible there. A lock or claim that a reorg removes before it
//! is confirmed is therefore never acted on; when it was the adapter's own,
//! the next call finds its effect gone and its transaction no longer known
//! to the node, and submits it again.
//!
//! **Sending.** One send at a time per adapter (so per account): the nonce
//! is the node's pending transaction count for the account, read under that
//! lock, so concurrent actions never share a nonce and a reorg or a node
//! restart that forgets transactions heals by itself. Each transaction is
//! EIP-1559 (fees from `eth_feeHistory`, capped by
//! [`EvmConfig::max_fee_per_gas_cap`]), simulated first (a revert is a
//! refusal, decoded from the contract's custom errors), its gas limit the
//! estimate plus [`EvmConfig::gas_headroom_percent`]. An ERC-20 lock first
//! approves the contract once for the maximum allowance. The account must be
//! used by this adapter alone.
//!
//! **Remembering.** A transaction's hash is remembered (in memory) before it
//! is broadcast; a mined transaction whose effect a racing read missed is
//! in flight, not lost, and a simulation that reverts is a refusal only when
//! the chain does not show the effect after all. Every JSON-RPC request has
//! a timeout ([`EvmConfig::rpc_timeout_ms`]).
//!
//! **Waiting.** An action waits for its effect to be confirmed for at most
//! [`EvmConfig::wait_ms_max`], then answers [`AdapterError::Pending`]; the
//! engine calls again on its next tick and the call picks up where the
//! chain is.
//!
//! **Time.** Timelocks are block timestamps in seconds: expiries are rounded
//! up to whole seconds (the finality model's `time_resolution_ms` is 1000).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::{TransactionBuilder, TxSignerSync};
use alloy::primitives::{Address as EvmAddress, B256, Bytes, TxKind, U256};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::{BlockId, BlockNumberOrTag, Filter, Log, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent, SolInterface};
use ledger_core::{Address, Amount, AssetCode, ChainId, Hashlock, LockId};
use sha2::{Digest, Sha256};

use crate::finality::FinalityModel;
use crate::ledger::{
    Acted, AdapterError, EventPage, LedgerAdapter, LedgerDescription, LedgerKind, LockEvent,
    LockInfo, LockState, LockTerms, OperationKey,
};

alloy::sol! {
    /// The Lockgate HTLC contract's interface (`LockgateHtlc.sol`); a test
    /// checks every selector against the compiled artifact.
    interface LockgateHtlc {
        event Locked(bytes32 indexed id, bytes32 indexed hashlock, address indexed recipient, address sender, address token, uint256 amount, uint64 timelock);
        event Claimed(bytes32 indexed id, bytes32 preimage);
        event Refunded(bytes32 indexed id);

        error LockExists(bytes32 id);
        error NotLocked(bytes32 id);
        error ZeroAmount();
        error ZeroRecipient();
        error TimelockPassed(uint64 timelock);
        error TimelockNotPassed(uint64 timelock);
        error WrongPreimage();
        error WrongValue(uint256 sent, uint256 expected);
        error TokenTransferFailed(address token);
        error TokenAmountMismatch(uint256 received, uint256 expected);
        error NativeTransferFailed(address to);
        error Reentered();

        function lockId(address sender, bytes32 salt) external pure returns (bytes32);
        function lock(bytes32 salt, address recipient, address token, uint256 amount, bytes32 hashlock, uint64 timelock) external payable returns (bytes32 id);
        function claim(bytes32 id, bytes32 preimage) external;
        function refund(bytes32 id) external;
        function locks(bytes32 id) external view returns (address sender, uint64 timelock, uint8 state, address recipient, address token, uint256 amount, bytes32 hashlock);
    }

    /// The part of ERC-20 the adapter uses.
    interface Erc20 {
        function allowance(address owner, address spender) external view returns (uint256);
        function approve(address spender, uint256 value) external returns (bool);
        function balanceOf(address owner) external view returns (uint256);
        function decimals() external view returns (uint8);
    }
}

/// The compiled HTLC contract (solc 0.8.37, see `scripts/build-contracts`).
pub const HTLC_ARTIFACT: &str = include_str!("../contracts/out/LockgateHtlc.json");

/// The compiled test ERC-20 (anyone may mint; for tests and demos only).
pub const TEST_TOKEN_ARTIFACT: &str = include_str!("../contracts/out/TestToken.json");

/// What the adapter could not do outside of [`LedgerAdapter`] calls
/// (loading a key, deploying).
#[derive(Debug, thiserror::Error)]
pub enum EvmError {
    /// A key, artifact or setting is unusable.
    #[error("{0}")]
    Invalid(String),
    /// The node failed or refused.
    #[error("EVM node: {0}")]
    Node(String),
}

/// An asset the adapter moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvmAsset {
    /// The chain's native coin (wei are the minor units).
    Native,
    /// An ERC-20 token at this address (its base units are the minor units).
    Erc20(Address),
}

/// How the adapter reaches its chain and contract.
#[derive(Clone, Debug)]
pub struct EvmConfig {
    /// The ledger's chain id (the EVM chain id; checked against the node by
    /// [`EvmLedger::check_node`]).
    pub chain_id: ChainId,
    /// The node's JSON-RPC URL (`http://` or `https://`).
    pub rpc_url: String,
    /// The HTLC contract's address.
    pub contract: Address,
    /// The block the contract was deployed in: logs are never read below it.
    pub from_block: u64,
    /// Blocks on top of a block before what it holds counts as final.
    pub confirmations: u32,
    /// Longest time between two blocks (ms).
    pub block_interval_ms_max: u64,
    /// Longest time from sending a transaction to its inclusion (ms).
    pub inclusion_ms_max: u64,
    /// Largest difference between block timestamps and true time (ms).
    pub clock_drift_ms_max: u64,
    /// The assets: a Lockgate asset code for the native coin and each token.
    pub assets: Vec<(AssetCode, EvmAsset)>,
    /// Most blocks one `eth_getLogs` request spans.
    pub log_range_blocks: u64,
    /// How far below the confirmed height lock searches look.
    pub lookback_blocks: u64,
    /// How often a waiting action polls the node (ms).
    pub poll_ms: u64,
    /// Longest an action waits for its effect to be confirmed (ms).
    pub wait_ms_max: u64,
    /// Highest `maxFeePerGas` (wei) the adapter offers; above it, actions wait.
    pub max_fee_per_gas_cap: u128,
    /// Added to every gas estimate, in percent.
    pub gas_headroom_percent: u64,
    /// Longest one JSON-RPC request may take (ms).
    pub rpc_timeout_ms: u64,
}

impl EvmConfig {
    /// A configuration with the defaults for everything but the chain, the
    /// node, the contract and the assets: 0 confirmations, 12 s blocks, 60 s
    /// inclusion, 15 s clock drift, 10,000-block log requests, 100,000
    /// blocks of look-back, 200 ms polls, 2 s waits, a 1,000 gwei fee cap,
    /// 30% gas headroom and 3 s RPC timeouts.
    pub fn new(
        chain_id: ChainId,
        rpc_url: &str,
        contract: Address,
        assets: Vec<(AssetCode, EvmAsset)>,
    ) -> Self {
        Self {
            chain_id,
            rpc_url: rpc_url.to_string(),
            contract,
            from_block: 0,
            confirmations: 0,
            block_interval_ms_max: 12_000,
            inclusion_ms_max: 60_000,
            clock_drift_ms_max: 15_000,
            assets,
            log_range_blocks: 10_000,
            lookback_blocks: 100_000,
            poll_ms: 200,
            wait_ms_max: 2_000,
            max_fee_per_gas_cap: 1_000_000_000_000,
            gas_headroom_percent: 30,
            rpc_timeout_ms: 3_000,
        }
    }
}

/// Where a signing key comes from. (A keystore file is decrypted by the
/// gateway, `lockgate::keys`, the one loader of every key it holds, which
/// hands the secret over as `Bytes`.)
#[derive(Clone)]
pub enum EvmKey {
    /// A hex private key (with or without `0x`).
    Hex(String),
    /// The 32 secret bytes.
    Bytes([u8; 32]),
}

impl std::fmt::Debug for EvmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvmKey::Hex(_) => f.write_str("EvmKey::Hex(<redacted>)"),
            EvmKey::Bytes(_) => f.write_str("EvmKey::Bytes(<redacted>)"),
        }
    }
}

/// Loads a signing key.
pub fn load_key(key: &EvmKey) -> Result<PrivateKeySigner, EvmError> {
    match key {
        EvmKey::Hex(hex_key) => {
            let text = hex_key.trim();
            let text = text.strip_prefix("0x").unwrap_or(text);
            let bytes = hex::decode(text)
                .map_err(|_| EvmError::Invalid("the EVM key is not hex".into()))?;
            PrivateKeySigner::from_slice(&bytes)
                .map_err(|_| EvmError::Invalid("the EVM key is not a secp256k1 secret key".into()))
        }
        EvmKey::Bytes(bytes) => PrivateKeySigner::from_slice(bytes)
            .map_err(|_| EvmError::Invalid("the EVM key is not a secp256k1 secret key".into())),
    }
}

/// The creation bytecode in a compiled artifact (`"bytecode": "0x..."`).
pub fn artifact_bytecode(artifact: &str) -> Result<Vec<u8>, EvmError> {
    let value: serde_json::Value =
        serde_json::from_str(artifact).map_err(|e| EvmError::Invalid(format!("artifact: {e}")))?;
    let code = value
        .get("bytecode")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| EvmError::Invalid("artifact has no bytecode".into()))?;
    hex::decode(code.trim_start_matches("0x"))
        .map_err(|_| EvmError::Invalid("artifact bytecode is not hex".into()))
}

/// The salt of the lock an action makes: SHA-256 of
/// `"lockgate-evm-lock-1" || len(transfer id) || transfer id || len(action)
/// || action`, each length 8 bytes big-endian.
pub fn salt_of(op: OperationKey<'_>) -> B256 {
    let mut hasher = Sha256::new();
    hasher.update(b"lockgate-evm-lock-1");
    for part in [op.transfer_id, op.action] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    B256::from(<[u8; 32]>::from(hasher.finalize()))
}

/// The id the contract gives a lock from `sender` with `salt`.
pub fn lock_id_of(sender: Address, salt: B256) -> LockId {
    let encoded = (evm_address(sender), salt);
    let hash = alloy::primitives::keccak256(alloy::sol_types::SolValue::abi_encode(&encoded));
    LockId::from_bytes(hash.0)
}

/// A Lockgate address as an EVM address.
pub fn evm_address(address: Address) -> EvmAddress {
    EvmAddress::from(*address.as_bytes())
}

/// An EVM address as a Lockgate address.
pub fn lockgate_address(address: EvmAddress) -> Address {
    Address::from_bytes(address.into_array())
}

/// Deploys a contract from `artifact` with `constructor_args` (ABI-encoded)
/// from `signer`; answers its address and the block it was deployed in.
pub async fn deploy(
    rpc_url: &str,
    signer: &PrivateKeySigner,
    artifact: &str,
    constructor_args: &[u8],
) -> Result<(Address, u64), EvmError> {
    let provider = connect(rpc_url, 30_000)?;
    let mut code = artifact_bytecode(artifact)?;
    code.extend_from_slice(constructor_args);
    let request = TransactionRequest::default()
        .with_from(signer.address())
        .with_deploy_code(Bytes::from(code));
    let chain_id = provider
        .get_chain_id()
        .await
        .map_err(|e| EvmError::Node(e.to_string()))?;
    let (hash, raw) = sign(&provider, signer, request, chain_id, u128::MAX, 30)
        .await
        .map_err(|e| EvmError::Node(e.to_string()))?;
    broadcast(&provider, &raw)
        .await
        .map_err(|e| EvmError::Node(e.to_string()))?;
    let started = Instant::now();
    loop {
        let receipt = provider
            .get_transaction_receipt(hash)
            .await
            .map_err(|e| EvmError::Node(e.to_string()))?;
        if let Some(receipt) = receipt {
            if !receipt.status() {
                return Err(EvmError::Node("the deployment reverted".into()));
            }
            let address = receipt
                .contract_address
                .ok_or_else(|| EvmError::Node("no contract address in the receipt".into()))?;
            return Ok((lockgate_address(address), receipt.block_number.unwrap_or(0)));
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(EvmError::Node(
                "the deployment was not mined in 120 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A provider whose every request gives up after `timeout_ms`.
fn connect(rpc_url: &str, timeout_ms: u64) -> Result<RootProvider, EvmError> {
    use alloy::transports::http::reqwest;
    let url: reqwest::Url = rpc_url
        .parse()
        .map_err(|e| EvmError::Invalid(format!("rpc url {rpc_url}: {e}")))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(timeout_ms.max(1)))
        .build()
        .map_err(|e| EvmError::Invalid(format!("HTTP client: {e}")))?;
    Ok(RootProvider::new(
        alloy::rpc::client::RpcClient::new_http_with_client(client, url),
    ))
}

/// Fills fees, gas and nonce into `request` and signs it as an EIP-1559
/// transaction for `chain_id`: its hash and its raw bytes. The caller holds
/// the account's send lock until it has broadcast them.
async fn sign(
    provider: &RootProvider,
    signer: &PrivateKeySigner,
    request: TransactionRequest,
    chain_id: u64,
    max_fee_cap: u128,
    headroom_percent: u64,
) -> Result<(B256, Vec<u8>), SendError> {
    // Simulated against the pending block: its timestamp is now, as the
    // transaction's will be (the latest block may be old on a quiet chain).
    let gas = provider
        .estimate_gas(request.clone())
        .block(BlockId::Number(BlockNumberOrTag::Pending))
        .await
        .map_err(reverted_or_node)?;
    let fees = provider.estimate_eip1559_fees().await.map_err(node)?;
    if fees.max_fee_per_gas > max_fee_cap {
        return Err(SendError::Node(format!(
            "maxFeePerGas {} wei is above the cap of {max_fee_cap}",
            fees.max_fee_per_gas
        )));
    }
    let nonce = provider
        .get_transaction_count(signer.address())
        .pending()
        .await
        .map_err(node)?;
    let mut tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: gas.saturating_add(gas.saturating_mul(headroom_percent) / 100),
        max_fee_per_gas: fees.max_fee_per_gas,
        max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
        to: request.to.unwrap_or(TxKind::Create),
        value: request.value.unwrap_or_default(),
        access_list: Default::default(),
        input: request.input.into_input().unwrap_or_default(),
    };
    let signature = signer
        .sign_transaction_sync(&mut tx)
        .map_err(|e| SendError::Node(format!("signing: {e}")))?;
    let envelope = TxEnvelope::from(tx.into_signed(signature));
    Ok((*envelope.tx_hash(), envelope.encoded_2718()))
}

/// Sends a signed transaction.
async fn broadcast(provider: &RootProvider, raw: &[u8]) -> Result<(), SendError> {
    match provider.send_raw_transaction(raw).await {
        Ok(_) => Ok(()),
        // The node has it already (a resend): as good as sent.
        Err(e) if e.to_string().to_ascii_lowercase().contains("already known") => Ok(()),
        Err(e) => Err(node(e)),
    }
}

/// Why a transaction was not sent.
#[derive(Debug, thiserror::Error)]
enum SendError {
    /// The simulation reverted: the chain refuses the action.
    #[error("{0}")]
    Reverted(String),
    /// The node failed.
    #[error("{0}")]
    Node(String),
}

fn node(error: impl std::fmt::Display) -> SendError {
    SendError::Node(error.to_string())
}

/// A failed simulation: a revert with data is the contract's refusal, in
/// words; anything else is the node's failure.
fn reverted_or_node(error: alloy::transports::TransportError) -> SendError {
    let payload = error.as_error_resp();
    if let Some(data) = payload.and_then(|p| p.as_revert_data()) {
        return SendError::Reverted(revert_reason(&data));
    }
    match payload {
        Some(p) if p.message.to_ascii_lowercase().contains("revert") => {
            SendError::Reverted(p.message.to_string())
        }
        _ => SendError::Node(error.to_string()),
    }
}

/// The contract's custom error in words.
pub fn revert_reason(data: &[u8]) -> String {
    use LockgateHtlc::LockgateHtlcErrors as E;
    match E::abi_decode(data) {
        Ok(E::LockExists(e)) => format!("the lock {} exists already", e.id),
        Ok(E::NotLocked(e)) => format!("the lock {} is not open", e.id),
        Ok(E::ZeroAmount(_)) => "the amount is zero".into(),
        Ok(E::ZeroRecipient(_)) => "the recipient is the zero address".into(),
        Ok(E::TimelockPassed(e)) => format!("the timelock {} has passed", e.timelock),
        Ok(E::TimelockNotPassed(e)) => format!("the timelock {} has not passed", e.timelock),
        Ok(E::WrongPreimage(_)) => "the preimage does not match the hashlock".into(),
        Ok(E::WrongValue(e)) => format!("sent {} wei, expected {}", e.sent, e.expected),
        Ok(E::TokenTransferFailed(e)) => format!("the token {} transfer failed", e.token),
        Ok(E::TokenAmountMismatch(e)) => {
            format!(
                "the contract received {} token units, expected {}",
                e.received, e.expected
            )
        }
        Ok(E::NativeTransferFailed(e)) => format!("paying {} failed", e.to),
        Ok(E::Reentered(_)) => "re-entered".into(),
        Err(_) => format!("reverted (0x{})", hex::encode(data)),
    }
}

/// The fault-injection hook: called with a point (`before-send`,
/// `after-send`) and the action; when it answers true the action halts
/// for good (the process is about to be killed by a crash test).
pub type Halt = Arc<dyn Fn(&'static str, OperationKey<'_>) -> bool + Send + Sync>;

/// A lock as the contract stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stored {
    sender: EvmAddress,
    timelock: u64,
    state: u8,
    recipient: EvmAddress,
    token: EvmAddress,
    amount: U256,
    hashlock: B256,
}

const STATE_NONE: u8 = 0;
const STATE_LOCKED: u8 = 1;
const STATE_CLAIMED: u8 = 2;
const STATE_REFUNDED: u8 = 3;

/// An EVM chain through the Lockgate HTLC contract (see the module docs).
pub struct EvmLedger {
    config: EvmConfig,
    provider: RootProvider,
    signer: PrivateKeySigner,
    /// One send at a time (nonce, sign, send).
    send: tokio::sync::Mutex<()>,
    /// One allowance check-and-approve at a time.
    approving: tokio::sync::Mutex<()>,
    /// The last transaction sent for each action, by `transfer id/action`.
    sent: std::sync::Mutex<HashMap<String, B256>>,
    halt: Option<Halt>,
}

impl std::fmt::Debug for EvmLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvmLedger")
            .field("chain_id", &self.config.chain_id)
            .field("contract", &self.config.contract)
            .field("account", &self.account())
            .finish_non_exhaustive()
    }
}

/// What an action waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    /// The lock exists (in any state).
    Made,
    /// The lock is claimed.
    Claimed,
    /// The lock is refunded.
    Refunded,
}

impl Effect {
    fn seen(self, state: u8) -> bool {
        match self {
            Effect::Made => state != STATE_NONE,
            Effect::Claimed => state == STATE_CLAIMED,
            Effect::Refunded => state == STATE_REFUNDED,
        }
    }

    /// The other settlement, which rules this one out for good.
    fn ruled_out(self, state: u8) -> Option<&'static str> {
        match (self, state) {
            (Effect::Claimed, STATE_REFUNDED) => Some("the lock was refunded"),
            (Effect::Refunded, STATE_CLAIMED) => Some("the lock was claimed"),
            _ => None,
        }
    }
}

impl EvmLedger {
    /// The adapter for `config`, acting from `signer`'s account.
    pub fn new(config: EvmConfig, signer: PrivateKeySigner) -> Result<Self, EvmError> {
        let provider = connect(&config.rpc_url, config.rpc_timeout_ms)?;
        Ok(Self {
            config,
            provider,
            signer,
            send: tokio::sync::Mutex::new(()),
            approving: tokio::sync::Mutex::new(()),
            sent: std::sync::Mutex::new(HashMap::new()),
            halt: None,
        })
    }

    /// Installs the fault-injection hook.
    pub fn with_halt(mut self, halt: Halt) -> Self {
        self.halt = Some(halt);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &EvmConfig {
        &self.config
    }

    /// Checks that the node answers, is on the configured chain and has
    /// code at the contract's address.
    pub async fn check_node(&self) -> Result<(), EvmError> {
        let chain = self
            .provider
            .get_chain_id()
            .await
            .map_err(|e| EvmError::Node(e.to_string()))?;
        if chain != self.config.chain_id.get() {
            return Err(EvmError::Invalid(format!(
                "the node at {} is on chain {chain}, configured {}",
                self.config.rpc_url, self.config.chain_id
            )));
        }
        let code = self
            .provider
            .get_code_at(evm_address(self.config.contract))
            .await
            .map_err(|e| EvmError::Node(e.to_string()))?;
        if code.is_empty() {
            return Err(EvmError::Invalid(format!(
                "no contract at {} on chain {chain}",
                self.config.contract
            )));
        }
        Ok(())
    }

    fn contract(&self) -> EvmAddress {
        evm_address(self.config.contract)
    }

    fn token_of(&self, asset: AssetCode) -> Option<EvmAddress> {
        self.config
            .assets
            .iter()
            .find(|(code, _)| *code == asset)
            .map(|(_, a)| match a {
                EvmAsset::Native => EvmAddress::ZERO,
                EvmAsset::Erc20(address) => evm_address(*address),
            })
    }

    fn asset_of(&self, token: EvmAddress) -> Option<AssetCode> {
        self.config
            .assets
            .iter()
            .find(|(_, a)| match a {
                EvmAsset::Native => token == EvmAddress::ZERO,
                EvmAsset::Erc20(address) => evm_address(*address) == token,
            })
            .map(|(code, _)| *code)
    }

    /// The confirmed height: `confirmations` below the head.
    async fn confirmed(&self) -> Result<u64, AdapterError> {
        let head = self
            .provider
            .get_block_number()
            .await
            .map_err(unavailable)?;
        Ok(head.saturating_sub(u64::from(self.config.confirmations)))
    }

    /// The stored lock `id` at `block` (`None`: the latest block).
    async fn stored(&self, id: B256, block: Option<u64>) -> Result<Stored, AdapterError> {
        let call = LockgateHtlc::locksCall { id };
        let request = TransactionRequest::default()
            .with_to(self.contract())
            .with_input(call.abi_encode());
        let at = match block {
            Some(n) => BlockId::Number(BlockNumberOrTag::Number(n)),
            None => BlockId::Number(BlockNumberOrTag::Latest),
        };
        let data = self
            .provider
            .call(request)
            .block(at)
            .await
            .map_err(unavailable)?;
        let r = LockgateHtlc::locksCall::abi_decode_returns(&data)
            .map_err(|e| AdapterError::Corrupt(format!("locks(): {e}")))?;
        Ok(Stored {
            sender: r.sender,
            timelock: r.timelock,
            state: r.state,
            recipient: r.recipient,
            token: r.token,
            amount: r.amount,
            hashlock: r.hashlock,
        })
    }

    /// Logs of the contract matching `filter` (topics set by the caller)
    /// from `from` to `to`, in requests of at most `log_range_blocks`.
    async fn logs(&self, filter: Filter, from: u64, to: u64) -> Result<Vec<Log>, AdapterError> {
        let mut out = Vec::new();
        let step = self.config.log_range_blocks.max(1);
        let mut start = from.max(self.config.from_block);
        while start <= to {
            let end = to.min(start.saturating_add(step - 1));
            let page = self
                .provider
                .get_logs(
                    &filter
                        .clone()
                        .address(self.contract())
                        .from_block(start)
                        .to_block(end),
                )
                .await
                .map_err(unavailable)?;
            out.extend(page.into_iter().filter(|l| !l.removed));
            start = end + 1;
        }
        Ok(out)
    }

    /// Where lock searches start, below `confirmed`.
    fn search_from(&self, confirmed: u64) -> u64 {
        confirmed
            .saturating_sub(self.config.lookback_blocks)
            .max(self.config.from_block)
    }

    /// The preimage revealed by the claim of lock `id`, from its `Claimed` event.
    async fn preimage_of(&self, id: B256, confirmed: u64) -> Result<[u8; 32], AdapterError> {
        let filter = Filter::new()
            .event_signature(LockgateHtlc::Claimed::SIGNATURE_HASH)
            .topic1(id);
        let logs = self
            .logs(filter, self.search_from(confirmed), confirmed)
            .await?;
        let log = logs.first().ok_or_else(|| {
            AdapterError::Unavailable(format!(
                "lock {id} is claimed but its Claimed event is not within the look-back"
            ))
        })?;
        let event = LockgateHtlc::Claimed::decode_log_data(log.data())
            .map_err(|e| AdapterError::Corrupt(format!("Claimed event: {e}")))?;
        Ok(event.preimage.0)
    }

    fn info(&self, id: B256, s: &Stored, state: LockState) -> Result<LockInfo, AdapterError> {
        let asset = self.asset_of(s.token).ok_or_else(|| {
            AdapterError::Corrupt(format!("lock {id} holds unconfigured token {}", s.token))
        })?;
        Ok(LockInfo {
            id: LockId::from_bytes(id.0),
            terms: LockTerms {
                sender: lockgate_address(s.sender),
                recipient: lockgate_address(s.recipient),
                asset,
                amount: amount_of(s.amount)?,
                hashlock: Hashlock::from_bytes(s.hashlock.0),
                expires_at_ms: s.timelock.saturating_mul(1000),
            },
            state,
        })
    }

    fn remember(&self, key: String, hash: B256) {
        if let Ok(mut sent) = self.sent.lock() {
            sent.insert(key, hash);
        }
    }

    fn remembered(&self, key: &str) -> Option<B256> {
        self.sent
            .lock()
            .ok()
            .and_then(|sent| sent.get(key).copied())
    }

    /// Whether transaction `hash` may still take effect: waiting in the
    /// node's pool, or mined successfully (its effect may not be visible
    /// yet to a read that raced it). A transaction mined but reverted, or
    /// unknown to the node (dropped by a reorg or evicted), is not.
    async fn in_flight(&self, hash: B256) -> Result<bool, AdapterError> {
        match self
            .provider
            .get_transaction_by_hash(hash)
            .await
            .map_err(unavailable)?
        {
            Some(tx) if tx.block_number.is_none() => Ok(true),
            Some(_) => Ok(self
                .provider
                .get_transaction_receipt(hash)
                .await
                .map_err(unavailable)?
                .is_some_and(|r| r.status())),
            None => Ok(false),
        }
    }

    /// Signs `request` and broadcasts it under the send lock, remembering
    /// its hash under `key` before it leaves (a resend after a lost answer
    /// finds it).
    async fn send(&self, key: String, request: TransactionRequest) -> Result<B256, SendError> {
        let _serial = self.send.lock().await;
        let (hash, raw) = sign(
            &self.provider,
            &self.signer,
            request,
            self.config.chain_id.get(),
            self.config.max_fee_per_gas_cap,
            self.config.gas_headroom_percent,
        )
        .await?;
        self.remember(key, hash);
        broadcast(&self.provider, &raw).await?;
        Ok(hash)
    }

    async fn halt_at(&self, point: &'static str, op: OperationKey<'_>) {
        if let Some(halt) = &self.halt
            && halt(point, op)
        {
            std::future::pending::<()>().await;
        }
    }

    /// Makes `effect` happen to lock `id` by sending `call` (with `value`
    /// wei) unless the chain already shows it, and waits (bounded) until
    /// it is confirmed. See the module docs.
    async fn act(
        &self,
        op: OperationKey<'_>,
        id: B256,
        effect: Effect,
        call: Vec<u8>,
        value: U256,
        token: Option<(EvmAddress, U256)>,
    ) -> Result<Acted<()>, AdapterError> {
        let started = Instant::now();
        let wait = Duration::from_millis(self.config.wait_ms_max);
        loop {
            let confirmed = self.confirmed().await?;
            let final_state = self.stored(id, Some(confirmed)).await?.state;
            if effect.seen(final_state) {
                return Ok(Acted::Done(()));
            }
            if let Some(reason) = effect.ruled_out(final_state) {
                return Ok(Acted::Refused(reason.into()));
            }
            let key = format!("{}/{}", op.transfer_id, op.action);
            let latest = self.stored(id, None).await?.state;
            let in_flight = if effect.seen(latest) {
                // Mined, not yet confirmed.
                true
            } else if let Some(hash) = self.remembered(&key) {
                // Waiting in the pool, or mined a moment after the read
                // above: wait. Reverted or dropped (a reorg, an eviction):
                // decide afresh.
                let waiting = self.in_flight(hash).await?;
                if !waiting {
                    tracing::warn!(transfer = op.transfer_id, action = op.action, %hash,
                        "EVM transaction reverted or no longer known to the node (reorg or eviction); deciding afresh");
                }
                waiting
            } else {
                false
            };
            if !in_flight {
                if let Some(reason) = effect.ruled_out(latest) {
                    // Settled the other way in a block not yet confirmed:
                    // wait for it to be confirmed (or reorged away).
                    tracing::info!(
                        transfer = op.transfer_id,
                        action = op.action,
                        reason,
                        "waiting for confirmation"
                    );
                } else {
                    if let Some((token, amount)) = token {
                        self.ensure_allowance(token, amount).await?;
                    }
                    let request = TransactionRequest::default()
                        .with_from(self.signer.address())
                        .with_to(self.contract())
                        .with_input(call.clone())
                        .with_value(value);
                    self.halt_at("before-send", op).await;
                    match self.send(key, request).await {
                        Ok(hash) => {
                            tracing::debug!(transfer = op.transfer_id, action = op.action, %hash, "EVM transaction sent");
                            self.halt_at("after-send", op).await;
                        }
                        Err(SendError::Reverted(reason)) => {
                            // The simulation may have raced a transaction of
                            // ours being mined: a refusal counts only when
                            // the chain does not show the effect after all.
                            if !effect.seen(self.stored(id, None).await?.state) {
                                return Ok(Acted::Refused(reason));
                            }
                        }
                        Err(SendError::Node(error)) => {
                            return Err(AdapterError::Unavailable(error));
                        }
                    }
                }
            }
            if started.elapsed() >= wait {
                return Err(AdapterError::Pending(format!(
                    "{} of lock {id}: waiting for {} confirmation(s)",
                    op.action, self.config.confirmations
                )));
            }
            tokio::time::sleep(Duration::from_millis(self.config.poll_ms.max(10))).await;
        }
    }

    /// Approves the contract for the maximum allowance of `token` when the
    /// current one is below `amount`, and waits until the approval is mined.
    async fn ensure_allowance(&self, token: EvmAddress, amount: U256) -> Result<(), AdapterError> {
        let allowance = |provider: RootProvider, owner, spender| async move {
            let request = TransactionRequest::default()
                .with_to(token)
                .with_input(Erc20::allowanceCall { owner, spender }.abi_encode());
            let data = provider.call(request).await.map_err(unavailable)?;
            Erc20::allowanceCall::abi_decode_returns(&data)
                .map_err(|e| AdapterError::Corrupt(format!("allowance(): {e}")))
        };
        let (owner, spender) = (self.signer.address(), self.contract());
        let _one_at_a_time = self.approving.lock().await;
        if allowance(self.provider.clone(), owner, spender).await? >= amount {
            return Ok(());
        }
        let request = TransactionRequest::default()
            .with_from(owner)
            .with_to(token)
            .with_input(
                Erc20::approveCall {
                    spender,
                    value: U256::MAX,
                }
                .abi_encode(),
            );
        // One approval per token: one already on its way is waited for.
        let key = format!("approve/{token}");
        let hash = match self.remembered(&key) {
            Some(hash) if self.in_flight(hash).await? => hash,
            _ => self
                .send(key, request)
                .await
                .map_err(|e| AdapterError::Unavailable(format!("approve: {e}")))?,
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(self.config.wait_ms_max) {
            if let Some(receipt) = self
                .provider
                .get_transaction_receipt(hash)
                .await
                .map_err(unavailable)?
            {
                if receipt.status() {
                    return Ok(());
                }
                return Err(AdapterError::Unavailable(format!(
                    "approve {hash} reverted"
                )));
            }
            tokio::time::sleep(Duration::from_millis(self.config.poll_ms.max(10))).await;
        }
        Err(AdapterError::Pending(format!(
            "approve {hash} not mined yet"
        )))
    }

    /// The decimals of `asset` on this chain (18 for the native coin, the
    /// token's `decimals()` otherwise); `None` for an asset not configured.
    pub async fn decimals(&self, asset: AssetCode) -> Result<Option<u8>, AdapterError> {
        let Some(token) = self.token_of(asset) else {
            return Ok(None);
        };
        if token == EvmAddress::ZERO {
            return Ok(Some(18));
        }
        let request = TransactionRequest::default()
            .with_to(token)
            .with_input(Erc20::decimalsCall {}.abi_encode());
        let data = self.provider.call(request).await.map_err(unavailable)?;
        Erc20::decimalsCall::abi_decode_returns(&data)
            .map(Some)
            .map_err(|e| AdapterError::Corrupt(format!("decimals() of {token}: {e}")))
    }

    /// The lock `lock` calls under `op` make (or made).
    pub fn lock_id_for(&self, op: OperationKey<'_>) -> LockId {
        use crate::ledger::LedgerAdapter as _;
        lock_id_of(self.account(), salt_of(op))
    }
}

fn amount_of(value: U256) -> Result<Amount, AdapterError> {
    u128::try_from(value)
        .map(Amount::from_minor_units)
        .map_err(|_| AdapterError::Corrupt(format!("amount {value} exceeds 128 bits")))
}

fn unavailable(error: impl std::fmt::Display) -> AdapterError {
    AdapterError::Unavailable(format!("EVM node: {error}"))
}

/// Seconds for a timelock at or after `ms`.
fn timelock_of(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

impl LedgerAdapter for EvmLedger {
    fn account(&self) -> Address {
        lockgate_address(self.signer.address())
    }

    fn describe(&self) -> LedgerDescription {
        LedgerDescription {
            chain_id: self.config.chain_id,
            kind: LedgerKind::Evm,
            finality: FinalityModel {
                inclusion_ms_max: self.config.inclusion_ms_max,
                confirmations: self.config.confirmations,
                block_interval_ms_max: self.config.block_interval_ms_max,
                clock_drift_ms_max: self.config.clock_drift_ms_max,
                time_resolution_ms: 1000,
            },
        }
    }

    async fn lock(
        &self,
        op: OperationKey<'_>,
        terms: &LockTerms,
    ) -> Result<Acted<LockId>, AdapterError> {
        if terms.sender != self.account() {
            return Err(AdapterError::Corrupt(
                "the EVM adapter locks only from its own account".into(),
            ));
        }
        let Some(token) = self.token_of(terms.asset) else {
            return Ok(Acted::Refused(format!(
                "asset {} is not configured on chain {}",
                terms.asset, self.config.chain_id
            )));
        };
        let salt = salt_of(op);
        let id = lock_id_of(self.account(), salt);
        let amount = U256::from(terms.amount.minor_units());
        let call = LockgateHtlc::lockCall {
            salt,
            recipient: evm_address(terms.recipient),
            token,
            amount,
            hashlock: B256::from(*terms.hashlock.as_bytes()),
            timelock: timelock_of(terms.expires_at_ms),
        }
        .abi_encode();
        let (value, allowance) = if token == EvmAddress::ZERO {
            (amount, None)
        } else {
            (U256::ZERO, Some((token, amount)))
        };
        let acted = self
            .act(
                op,
                B256::from(*id.as_bytes()),
                Effect::Made,
                call,
                value,
                allowance,
            )
            .await?;
        Ok(acted.map(|()| id))
    }

    async fn claim(
        &self,
        op: OperationKey<'_>,
        lock: LockId,
        preimage: [u8; 32],
    ) -> Result<Acted<()>, AdapterError> {
        let id = B256::from(*lock.as_bytes());
        let call = LockgateHtlc::claimCall {
            id,
            preimage: B256::from(preimage),
        }
        .abi_encode();
        self.act(op, id, Effect::Claimed, call, U256::ZERO, None)
            .await
    }

    async fn refund(&self, op: OperationKey<'_>, lock: LockId) -> Result<Acted<()>, AdapterError> {
        let id = B256::from(*lock.as_bytes());
        let call = LockgateHtlc::refundCall { id }.abi_encode();
        self.act(op, id, Effect::Refunded, call, U256::ZERO, None)
            .await
    }

    async fn committed_lock(&self, op: OperationKey<'_>) -> Result<Option<LockId>, AdapterError> {
        let id = self.lock_id_for(op);
        let confirmed = self.confirmed().await?;
        let stored = self
            .stored(B256::from(*id.as_bytes()), Some(confirmed))
            .await?;
        Ok((stored.state != STATE_NONE).then_some(id))
    }

    async fn lock_status(&self, id: LockId) -> Result<Option<LockInfo>, AdapterError> {
        let key = B256::from(*id.as_bytes());
        let confirmed = self.confirmed().await?;
        let stored = self.stored(key, Some(confirmed)).await?;
        let state = match stored.state {
            STATE_NONE => return Ok(None),
            STATE_LOCKED => LockState::Locked,
            STATE_CLAIMED => LockState::Claimed {
                preimage: self.preimage_of(key, confirmed).await?,
            },
            STATE_REFUNDED => LockState::Refunded,
            other => return Err(AdapterError::Corrupt(format!("lock state {other}"))),
        };
        self.info(key, &stored, state).map(Some)
    }

    async fn assets(&self) -> Result<Vec<AssetCode>, AdapterError> {
        Ok(self.config.assets.iter().map(|(code, _)| *code).collect())
    }

    async fn events_since(
        &self,
        checkpoint: u64,
        blocks_max: u32,
    ) -> Result<EventPage, AdapterError> {
        let confirmed = self.confirmed().await?;
        let from = checkpoint.max(self.config.from_block);
        if from > confirmed || blocks_max == 0 {
            return Ok(EventPage {
                events: Vec::new(),
                next_checkpoint: from,
            });
        }
        let to = confirmed.min(from.saturating_add(u64::from(blocks_max) - 1));
        let filter = Filter::new().event_signature(vec![
            LockgateHtlc::Locked::SIGNATURE_HASH,
            LockgateHtlc::Claimed::SIGNATURE_HASH,
            LockgateHtlc::Refunded::SIGNATURE_HASH,
        ]);
        let mut events = Vec::new();
        for log in self.logs(filter, from, to).await? {
            let height = log.block_number.unwrap_or(from);
            let topic = log.topic0().copied().unwrap_or_default();
            let event = if topic == LockgateHtlc::Locked::SIGNATURE_HASH {
                let e = LockgateHtlc::Locked::decode_log_data(log.data())
                    .map_err(|e| AdapterError::Corrupt(format!("Locked event: {e}")))?;
                let stored = Stored {
                    sender: e.sender,
                    timelock: e.timelock,
                    state: STATE_LOCKED,
                    recipient: e.recipient,
                    token: e.token,
                    amount: e.amount,
                    hashlock: e.hashlock,
                };
                match self.info(e.id, &stored, LockState::Locked) {
                    Ok(info) => LockEvent::Locked(info),
                    // Locks of tokens not configured here are not ours to follow.
                    Err(_) => continue,
                }
            } else if topic == LockgateHtlc::Claimed::SIGNATURE_HASH {
                let e = LockgateHtlc::Claimed::decode_log_data(log.data())
                    .map_err(|e| AdapterError::Corrupt(format!("Claimed event: {e}")))?;
                LockEvent::Claimed {
                    id: LockId::from_bytes(e.id.0),
                    preimage: e.preimage.0,
                }
            } else {
                let e = LockgateHtlc::Refunded::decode_log_data(log.data())
                    .map_err(|e| AdapterError::Corrupt(format!("Refunded event: {e}")))?;
                LockEvent::Refunded {
                    id: LockId::from_bytes(e.id.0),
                }
            };
            events.push((height, event));
        }
        Ok(EventPage {
            events,
            next_checkpoint: to + 1,
        })
    }

    async fn prove_lock(&self, id: LockId) -> Result<Option<serde_json::Value>, AdapterError> {
        let key = B256::from(*id.as_bytes());
        let confirmed = self.confirmed().await?;
        let filter = Filter::new()
            .event_signature(LockgateHtlc::Locked::SIGNATURE_HASH)
            .topic1(key);
        let logs = self
            .logs(filter, self.search_from(confirmed), confirmed)
            .await?;
        let Some(log) = logs.first() else {
            return Ok(None);
        };
        let e = LockgateHtlc::Locked::decode_log_data(log.data())
            .map_err(|e| AdapterError::Corrupt(format!("Locked event: {e}")))?;
        Ok(Some(serde_json::json!({
            "format": "lockgate-evm-lock-1",
            "chainId": self.config.chain_id.get().to_string(),
            "contract": self.contract().to_checksum(None),
            "lockId": format!("{key}"),
            "transactionHash": log.transaction_hash.map(|h| h.to_string()),
            "blockNumber": log.block_number.map(|n| n.to_string()),
            "blockHash": log.block_hash.map(|h| h.to_string()),
            "logIndex": log.log_index.map(|n| n.to_string()),
            "confirmedAt": confirmed.to_string(),
            "lock": {
                "sender": e.sender.to_checksum(None),
                "recipient": e.recipient.to_checksum(None),
                "token": e.token.to_checksum(None),
                "amount": e.amount.to_string(),
                "hashlock": format!("{}", e.hashlock),
                "timelock": e.timelock.to_string(),
            },
        })))
    }

    async fn find_open_lock(&self, terms: &LockTerms) -> Result<Option<LockInfo>, AdapterError> {
        let Some(token) = self.token_of(terms.asset) else {
            return Ok(None);
        };
        let confirmed = self.confirmed().await?;
        let filter = Filter::new()
            .event_signature(LockgateHtlc::Locked::SIGNATURE_HASH)
            .topic2(B256::from(*terms.hashlock.as_bytes()))
            .topic3(evm_address(terms.recipient).into_word());
        let amount = U256::from(terms.amount.minor_units());
        let mut best: Option<LockInfo> = None;
        for log in self
            .logs(filter, self.search_from(confirmed), confirmed)
            .await?
        {
            let Ok(e) = LockgateHtlc::Locked::decode_log_data(log.data()) else {
                continue;
            };
            if e.sender != evm_address(terms.sender)
                || e.token != token
                || e.amount != amount
                || e.timelock.saturating_mul(1000) < terms.expires_at_ms
            {
                continue;
            }
            let stored = self.stored(e.id, Some(confirmed)).await?;
            if stored.state != STATE_LOCKED {
                continue;
            }
            let info = self.info(e.id, &stored, LockState::Locked)?;
            if best.is_none_or(|b| info.terms.expires_at_ms < b.terms.expires_at_ms) {
                best = Some(info);
            }
        }
        Ok(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact_selectors(artifact: &str) -> HashMap<String, String> {
        let value: serde_json::Value = serde_json::from_str(artifact).unwrap_or_default();
        serde_json::from_value(value["methodIdentifiers"].clone()).unwrap_or_default()
    }

    #[test]
    fn the_interface_matches_the_compiled_contract() {
        let ids = artifact_selectors(HTLC_ARTIFACT);
        let check = |signature: &str, selector: [u8; 4]| {
            assert_eq!(
                ids.get(signature).map(String::as_str),
                Some(hex::encode(selector).as_str()),
                "{signature}"
            );
        };
        check(
            "lock(bytes32,address,address,uint256,bytes32,uint64)",
            LockgateHtlc::lockCall::SELECTOR,
        );
        check("claim(bytes32,bytes32)", LockgateHtlc::claimCall::SELECTOR);
        check("refund(bytes32)", LockgateHtlc::refundCall::SELECTOR);
        check("locks(bytes32)", LockgateHtlc::locksCall::SELECTOR);
        check(
            "lockId(address,bytes32)",
            LockgateHtlc::lockIdCall::SELECTOR,
        );
        assert_eq!(
            ids.len(),
            5,
            "the contract has functions the interface lacks: {ids:?}"
        );
        // Events and errors by their signatures in the ABI.
        let abi: serde_json::Value = serde_json::from_str(HTLC_ARTIFACT).unwrap_or_default();
        let mut signatures = Vec::new();
        for item in abi["abi"].as_array().into_iter().flatten() {
            if item["type"] == "event" || item["type"] == "error" {
                let inputs: Vec<String> = item["inputs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|i| i["type"].as_str().unwrap_or_default().to_string())
                    .collect();
                signatures.push(format!(
                    "{}({})",
                    item["name"].as_str().unwrap_or_default(),
                    inputs.join(",")
                ));
            }
        }
        signatures.sort();
        let mut ours = vec![
            LockgateHtlc::Locked::SIGNATURE.to_string(),
            LockgateHtlc::Claimed::SIGNATURE.to_string(),
            LockgateHtlc::Refunded::SIGNATURE.to_string(),
        ];
        ours.extend(
            LockgateHtlc::LockgateHtlcErrors::SIGNATURES
                .iter()
                .map(|s| s.to_string()),
        );
        ours.sort();
        assert_eq!(signatures, ours);
    }

    #[test]
    fn lock_ids_are_computed_as_the_contract_does() {
        // keccak256(abi.encode(sender, salt)), checked against the value
        // anvil's contract returned for lockId(0xf39F...2266, 0x..07).
        let sender: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
            .parse()
            .unwrap_or(Address::from_bytes([0; 20]));
        let mut salt = [0u8; 32];
        salt[31] = 7;
        assert_eq!(
            lock_id_of(sender, B256::from(salt)).to_string(),
            "0x42c9ecb41bbf615df9e85456012d62643406d811e5d8213a8a93f8f518fb8e47"
        );
    }

    #[test]
    fn salts_differ_per_action_and_transfer() {
        let a = salt_of(OperationKey {
            transfer_id: "t1",
            action: "target-lock",
        });
        let b = salt_of(OperationKey {
            transfer_id: "t1",
            action: "source-lock",
        });
        let c = salt_of(OperationKey {
            transfer_id: "t2",
            action: "target-lock",
        });
        assert!(a != b && a != c && b != c);
        // No ambiguity between the two fields.
        assert_ne!(
            salt_of(OperationKey {
                transfer_id: "t1\0a",
                action: "b"
            }),
            salt_of(OperationKey {
                transfer_id: "t1",
                action: "a\0b"
            })
        );
    }

    #[test]
    fn timelocks_round_up_to_seconds() {
        assert_eq!(timelock_of(1_000), 1);
        assert_eq!(timelock_of(1_001), 2);
        assert_eq!(timelock_of(0), 0);
    }

    #[test]
    fn custom_errors_read_as_words() {
        let data = alloy::sol_types::SolError::abi_encode(&LockgateHtlc::WrongPreimage {});
        assert_eq!(
            revert_reason(&data),
            "the preimage does not match the hashlock"
        );
        assert!(revert_reason(&[1, 2, 3, 4]).starts_with("reverted (0x01020304)"));
    }
}
