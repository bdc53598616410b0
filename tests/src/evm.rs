//! A real anvil node for tests, and `cast` (Foundry's command-line client)
//! as the independent client: both from npm (`scripts/install-evm-tools`),
//! started on 127.0.0.1 ports of their own.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::free_port;

/// anvil's well-known development keys (public test keys, funded with
/// 10,000 ETH each on every anvil).
pub const DEV_KEYS: [&str; 4] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
];

/// Their addresses.
pub const DEV_ADDRESSES: [&str; 4] = [
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
];

/// The chain id the tests' anvil runs.
pub const ANVIL_CHAIN: u64 = 31337;

/// The directory holding `anvil`, `cast` and `solcjs`:
/// `LOCKGATE_EVM_TOOLS`, else the cache `scripts/install-evm-tools` fills.
pub fn tools() -> PathBuf {
    let dir = match std::env::var("LOCKGATE_EVM_TOOLS") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => {
            let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
            PathBuf::from(home).join(".cache/lockgate/tools/evm/bin")
        }
    };
    assert!(
        dir.join("anvil").exists() && dir.join("cast").exists(),
        "anvil and cast are not in {}: run ./scripts/install-evm-tools (./scripts/test does)",
        dir.display()
    );
    dir
}

/// A running anvil, killed when dropped.
pub struct Anvil {
    child: tokio::process::Child,
    /// Its JSON-RPC URL.
    pub url: String,
    http: reqwest::Client,
}

impl Anvil {
    /// Starts anvil on a free port (automining), with `extra` arguments.
    pub async fn start(extra: &[&str]) -> Self {
        let port = free_port();
        let mut command = tokio::process::Command::new(tools().join("anvil"));
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--chain-id", &ANVIL_CHAIN.to_string(), "--silent"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let child = command.spawn().expect("anvil starts");
        let anvil = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        for _ in 0..200 {
            if anvil
                .try_rpc("eth_chainId", serde_json::json!([]))
                .await
                .is_some()
            {
                return anvil;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("anvil did not answer on port {port}");
    }

    async fn try_rpc(&self, method: &str, params: serde_json::Value) -> Option<serde_json::Value> {
        let response = self
            .http
            .post(&self.url)
            .json(
                &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
            )
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = response.json().await.ok()?;
        Some(body)
    }

    /// A JSON-RPC call; panics on an error answer.
    pub async fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let body = self.try_rpc(method, params).await.expect("anvil answers");
        assert!(body.get("error").is_none(), "{method}: {body}");
        body["result"].clone()
    }

    /// `evm_snapshot`: an id to revert to.
    pub async fn snapshot(&self) -> String {
        self.rpc("evm_snapshot", serde_json::json!([]))
            .await
            .as_str()
            .expect("snapshot id")
            .to_string()
    }

    /// `evm_revert`: drops every block (and transaction) after `snapshot`.
    pub async fn revert(&self, snapshot: &str) {
        let ok = self.rpc("evm_revert", serde_json::json!([snapshot])).await;
        assert_eq!(ok, serde_json::json!(true), "evm_revert");
    }

    /// Mines `blocks` empty blocks.
    pub async fn mine(&self, blocks: u64) {
        for _ in 0..blocks {
            self.rpc("evm_mine", serde_json::json!([])).await;
        }
    }

    /// Moves the chain's clock on by `seconds` and mines a block.
    pub async fn advance_time(&self, seconds: u64) {
        self.rpc("evm_increaseTime", serde_json::json!([seconds]))
            .await;
        self.mine(1).await;
    }

    /// The head's number.
    pub async fn block_number(&self) -> u64 {
        let n = self.rpc("eth_blockNumber", serde_json::json!([])).await;
        u64::from_str_radix(n.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16).unwrap_or(0)
    }

    /// Gas used by the head block (each automined block holds one
    /// transaction).
    pub async fn last_gas_used(&self) -> u64 {
        let block = self
            .rpc("eth_getBlockByNumber", serde_json::json!(["latest", false]))
            .await;
        u64::from_str_radix(
            block["gasUsed"]
                .as_str()
                .unwrap_or("0x0")
                .trim_start_matches("0x"),
            16,
        )
        .unwrap_or(0)
    }

    /// Runs `cast` against this node (`--rpc-url` appended for the
    /// subcommands that take it); panics unless it succeeds; its stdout.
    pub fn cast(&self, args: &[&str]) -> String {
        let mut all: Vec<&str> = args.to_vec();
        if matches!(
            args.first(),
            Some(&("send" | "call" | "balance" | "receipt" | "block-number" | "nonce"))
        ) {
            all.splice(1..1, ["--rpc-url", self.url.as_str()]);
        }
        cast(&all)
    }

    /// Stops the node.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Runs `cast` with `args`; panics unless it succeeds; its stdout, trimmed.
pub fn cast(args: &[&str]) -> String {
    let output = std::process::Command::new(tools().join("cast"))
        .args(args)
        .output()
        .expect("cast runs");
    // Long arguments (bytecode) are cut in the message.
    let shown: Vec<String> = args.iter().map(|a| a.chars().take(80).collect()).collect();
    assert!(
        output.status.success(),
        "cast {shown:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The creation bytecode of a committed artifact (`HTLC_ARTIFACT`, ...).
pub fn bytecode(artifact: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(artifact).expect("artifact");
    value["bytecode"].as_str().expect("bytecode").to_string()
}

/// Deploys the test ERC-20 (2 decimals) with `cast` from dev account `from`;
/// its address.
pub fn deploy_token(anvil: &Anvil, from: usize, symbol: &str) -> String {
    deploy_token_with_decimals(anvil, from, symbol, 2)
}

/// [`deploy_token`] with `decimals`.
pub fn deploy_token_with_decimals(
    anvil: &Anvil,
    from: usize,
    symbol: &str,
    decimals: u8,
) -> String {
    let code = bytecode(adapters::evm::TEST_TOKEN_ARTIFACT);
    let out = anvil.cast(&[
        "send",
        "--json",
        "--private-key",
        DEV_KEYS[from],
        "--create",
        &code,
        "constructor(string,string,uint8)",
        symbol,
        symbol,
        &decimals.to_string(),
    ]);
    let receipt: serde_json::Value = serde_json::from_str(&out).expect("receipt json");
    receipt["contractAddress"]
        .as_str()
        .expect("contract address")
        .to_string()
}

/// An ERC-20 balance, read with `cast`.
pub fn token_balance(anvil: &Anvil, token: &str, owner: &str) -> u128 {
    let out = anvil.cast(&["call", token, "balanceOf(address)(uint256)", owner]);
    parse_uint(&out)
}

/// A native balance in wei, read with `cast`.
pub fn native_balance(anvil: &Anvil, owner: &str) -> u128 {
    parse_uint(&anvil.cast(&["balance", owner]))
}

/// cast prints `1234 [1.234e3]` for large numbers.
pub fn parse_uint(text: &str) -> u128 {
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {text}"))
}
