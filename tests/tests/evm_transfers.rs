//! Transfers through the engine between the built-in ledger and an ERC-20
//! on a real anvil node, the gateway as connector, with real gateway
//! processes on a real PostgreSQL database:
//!
//! - built-in EUR -> EURT on anvil: the recipient claims on anvil with
//!   `cast` (an independent client), the gateway sees the claim and claims
//!   the sender's lock on the built-in ledger;
//! - EURT on anvil -> built-in EUR: the sender approves and locks with
//!   `cast`, the gateway finds the lock, locks on the built-in ledger, the
//!   recipient claims there, the gateway claims on anvil;
//! - the gateway killed with SIGKILL between the claim on one ledger and
//!   its own claim on the other (before its claim is sent, and after it was
//!   sent but before it was confirmed), then restarted: the transfer
//!   completes with exact balances on both ledgers.
//!
//! The time from the recipient's claim to the transfer's completion is
//! printed (`--nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ledger_core::{
    Address, Amount, AssetCode, Hashlock, LockId, Preimage, Scale, SigningKey, TxBody,
};
use lockgate_e2e::evm::*;
use lockgate_e2e::*;

const ISSUED: u128 = 1_000_000;

fn eur() -> AssetCode {
    AssetCode::new("EUR").unwrap()
}

struct Net {
    anvil: Anvil,
    env: Env,
    token: String,
    contract: String,
    api: String,
    /// The gateway's account on the built-in ledger.
    connector: Address,
    alice: SigningKey,
    bob: SigningKey,
}

impl Net {
    async fn new(db: &PgDatabase) -> Self {
        Self::with_confirmations(db, 0).await
    }

    async fn with_confirmations(db: &PgDatabase, confirmations: u32) -> Self {
        let anvil = Anvil::start(&[]).await;
        // The HTLC contract, deployed with the gateway's own command.
        let deployer = Env::new(&db.url).with_vars(&[
            ("LOCKGATE_EVM_KEY", DEV_KEYS[0]),
            ("LOCKGATE_EVM_RPC_URL", anvil.url.as_str()),
        ]);
        let deployed: serde_json::Value =
            serde_json::from_str(&deployer.run(&["evm-deploy"]).await).unwrap();
        assert_eq!(
            deployed["account"].as_str().unwrap().to_lowercase(),
            DEV_ADDRESSES[0].to_lowercase()
        );
        let contract = deployed["contract"].as_str().unwrap().to_string();
        // The token, deployed and minted with cast: the gateway's EVM
        // account (dev 0) holds liquidity, dev 1 sends.
        let token = deploy_token(&anvil, 3, "EURT");
        // A token counting in 18 decimals, which EUR (2) may not pair with.
        let wide = deploy_token_with_decimals(&anvil, 3, "WEUR", 18);
        for holder in [DEV_ADDRESSES[0], DEV_ADDRESSES[1]] {
            anvil.cast(&[
                "send",
                "--private-key",
                DEV_KEYS[3],
                &token,
                "mint(address,uint256)",
                holder,
                &ISSUED.to_string(),
            ]);
        }
        let connector_secret = ledger_core::hash::sha256(b"e2e-evm-connector");
        let connector = SigningKey::from_bytes(connector_secret).unwrap().address();
        let env = Env::new(&db.url).with_config(&format!(
            "[transfers]\nconnector_key = \"0x{}\"\ntick_ms = 100\nreaction_ms_max = 1500\n\
             commit_ms_max = 500\nclaim_window_ms = 6000\nsafety_margin_ms = 1000\n\
             asset_pairs = [[\"EUR\", \"EURT\"], [\"EURT\", \"EUR\"], [\"EUR\", \"WEUR\"]]\n\n\
             [[evm]]\nchain_id = {ANVIL_CHAIN}\nrpc_url = \"{}\"\ncontract = \"{contract}\"\n\
             deploy_block = {}\nkey = \"{}\"\nconfirmations = {confirmations}\nblock_interval_ms_max = 1000\n\
             inclusion_ms_max = 2000\nclock_drift_ms_max = 2000\npoll_ms = 20\nwait_ms_max = 1000\n\
             assets = {{ EURT = \"{token}\", WEUR = \"{wide}\" }}\n",
            hex::encode(connector_secret),
            anvil.url,
            deployed["deployBlock"],
            DEV_KEYS[0],
        ));
        let api = env.token().await;
        Self {
            anvil,
            env,
            token,
            contract,
            api,
            connector,
            alice: key(2),
            bob: key(3),
        }
    }

    /// EUR on the built-in ledger: to alice (a sender) and the connector
    /// (liquidity).
    async fn issue(&self, process: &Process) {
        let issuer = key(1);
        let register = TxBody::RegisterAsset {
            code: eur(),
            scale: Scale::new(2).unwrap(),
        };
        let issue = |to: Address| TxBody::Issue {
            asset: eur(),
            to,
            amount: Amount::from_minor_units(ISSUED),
        };
        for (nonce, body) in [register, issue(self.alice.address()), issue(self.connector)]
            .into_iter()
            .enumerate()
        {
            let (status, body) = process
                .submit(&self.api, &sign(&issuer, nonce as u64, body))
                .await
                .unwrap();
            assert_eq!(status, 201, "{body}");
        }
    }

    async fn create(
        &self,
        process: &Process,
        (source, target): (u64, u64),
        (source_asset, target_asset): (&str, &str),
        amount: u128,
        (sender, recipient): (&str, &str),
        hashlock: Hashlock,
    ) -> serde_json::Value {
        let response = process
            .http
            .post(format!("{}/v1/transfers", process.base))
            .bearer_auth(&self.api)
            .json(&serde_json::json!({
                "sourceChainId": source.to_string(), "targetChainId": target.to_string(),
                "sourceAsset": source_asset, "targetAsset": target_asset,
                "amount": amount.to_string(), "sender": sender, "recipient": recipient,
                "hashlock": hashlock.to_string(),
            }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        body
    }

    async fn wait(
        &self,
        process: &Process,
        id: &str,
        state: &str,
        within: Duration,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let (status, view) = process.get(&format!("/v1/transfers/{id}"), &self.api).await;
            assert_eq!(status, 200, "{view}");
            if view["state"] == state {
                return view;
            }
            assert!(
                !["completed", "refunded", "cancelled", "failed"]
                    .contains(&view["state"].as_str().unwrap_or_default()),
                "transfer ended {} instead of {state}: {view}",
                view["state"]
            );
            assert!(
                Instant::now() < deadline,
                "transfer never reached {state}: {view}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn eur_balance(&self, process: &Process, account: Address) -> u128 {
        let (status, view) = process
            .get(
                &format!("/v1/ledger/accounts/{account}?chainId={CHAIN}"),
                &self.api,
            )
            .await;
        assert_eq!(status, 200, "{view}");
        view["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["asset"] == "EUR")
            .map_or(0, |b| b["amount"].as_str().unwrap().parse().unwrap())
    }

    fn eurt(&self, owner: &str) -> u128 {
        token_balance(&self.anvil, &self.token, owner)
    }

    /// Sender dev 1 approves and locks `amount` EURT on anvil with cast, to
    /// the connector's EVM account, as the transfer asks.
    fn evm_sender_lock(&self, transfer: &serde_json::Value, amount: u128, salt: u8) {
        let expires: u64 = transfer["sourceExpiresAtMs"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let connector = transfer["connector"].as_str().unwrap();
        assert_eq!(connector.to_lowercase(), DEV_ADDRESSES[0].to_lowercase());
        self.anvil.cast(&[
            "send",
            "--private-key",
            DEV_KEYS[1],
            &self.token,
            "approve(address,uint256)",
            &self.contract,
            &amount.to_string(),
        ]);
        self.anvil.cast(&[
            "send",
            "--private-key",
            DEV_KEYS[1],
            &self.contract,
            "lock(bytes32,address,address,uint256,bytes32,uint64)",
            &format!("0x{salt:064x}"),
            connector,
            &self.token,
            &amount.to_string(),
            transfer["hashlock"].as_str().unwrap(),
            &expires.div_ceil(1000).to_string(),
        ]);
    }

    /// Bob claims the target lock on the built-in ledger.
    async fn bob_claims(&self, process: &Process, lock: &str, secret: [u8; 32]) {
        let claim = sign(
            &self.bob,
            0,
            TxBody::HtlcClaim {
                lock_id: lock.parse::<LockId>().unwrap(),
                preimage: Preimage::new(secret.to_vec()).unwrap(),
            },
        );
        let (status, body) = process.submit(&self.api, &claim).await.unwrap();
        assert_eq!(status, 201, "{body}");
    }
}

#[tokio::test]
async fn built_in_eur_to_erc20_on_anvil_the_recipient_claiming_with_cast() {
    let db = PgDatabase::new().await;
    let net = Net::new(&db).await;
    let process = net.env.start().await;
    net.issue(&process).await;
    let secret = [0x61u8; 32];
    let hashlock = Hashlock::of_preimage(&secret);
    let recipient = DEV_ADDRESSES[2];
    let transfer = net
        .create(
            &process,
            (CHAIN, ANVIL_CHAIN),
            ("EUR", "EURT"),
            300,
            (&net.alice.address().to_string(), recipient),
            hashlock,
        )
        .await;
    let id = transfer["id"].as_str().unwrap();
    assert_eq!(
        transfer["connector"].as_str().unwrap(),
        net.connector.to_string()
    );
    let expires: u64 = transfer["sourceExpiresAtMs"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let target_expires: u64 = transfer["targetExpiresAtMs"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(target_expires % 1000, 0, "an EVM timelock is whole seconds");
    let lock = sign(
        &net.alice,
        0,
        TxBody::HtlcLock {
            asset: eur(),
            recipient: net.connector,
            amount: Amount::from_minor_units(300),
            hashlock,
            expires_at_ms: expires,
        },
    );
    let (status, body) = process.submit(&net.api, &lock).await.unwrap();
    assert_eq!(status, 201, "{body}");
    let view = net
        .wait(&process, id, "target_locked", Duration::from_secs(20))
        .await;
    let target_lock = view["targetLockId"].as_str().unwrap().to_string();
    assert_eq!(
        net.eurt(&net.contract),
        300,
        "the gateway's EURT is locked in the contract"
    );
    // The recipient claims on anvil with cast.
    net.anvil.cast(&[
        "send",
        "--private-key",
        DEV_KEYS[2],
        &net.contract,
        "claim(bytes32,bytes32)",
        &target_lock,
        &format!("0x{}", hex::encode(secret)),
    ]);
    let claimed = Instant::now();
    let done = net
        .wait(&process, id, "completed", Duration::from_secs(20))
        .await;
    eprintln!(
        "figure: recipient's claim on anvil -> gateway's claim on the built-in ledger (transfer completed): {} ms",
        claimed.elapsed().as_millis()
    );
    assert!(
        done["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "target_claimed")
    );
    assert_eq!(net.eurt(recipient), 300);
    assert_eq!(net.eurt(DEV_ADDRESSES[0]), ISSUED - 300);
    assert_eq!(net.eurt(&net.contract), 0);
    assert_eq!(
        net.eur_balance(&process, net.alice.address()).await,
        ISSUED - 300
    );
    assert_eq!(net.eur_balance(&process, net.connector).await, ISSUED + 300);
    net.anvil.stop().await;
}

/// ERC-20 on anvil -> built-in EUR, the gateway halted at `fault` (if any)
/// on its claim on anvil, killed and restarted there.
async fn erc20_to_built_in(fault: Option<&str>) {
    let db = PgDatabase::new().await;
    let net = Net::new(&db).await;
    let mut process = match fault {
        Some(step) => {
            net.env
                .start_with_env(&[("LOCKGATE_FAULT_STEP", step)])
                .await
        }
        None => net.env.start().await,
    };
    net.issue(&process).await;
    let secret = [0x71u8; 32];
    let hashlock = Hashlock::of_preimage(&secret);
    let transfer = net
        .create(
            &process,
            (ANVIL_CHAIN, CHAIN),
            ("EURT", "EUR"),
            200,
            (DEV_ADDRESSES[1], &net.bob.address().to_string()),
            hashlock,
        )
        .await;
    let id = transfer["id"].as_str().unwrap().to_string();
    net.evm_sender_lock(&transfer, 200, 1);
    let view = net
        .wait(&process, &id, "target_locked", Duration::from_secs(20))
        .await;
    assert!(view["sourceLockId"].is_string());
    let target_lock = view["targetLockId"].as_str().unwrap().to_string();
    net.bob_claims(&process, &target_lock, secret).await;
    let claimed = Instant::now();
    if let Some(step) = fault {
        let line = process
            .stdout_line(
                "lockgate fault-injection halted at",
                Duration::from_secs(20),
            )
            .await
            .unwrap_or_else(|| panic!("the gateway never halted at {step}"));
        assert!(line.contains(step) && line.contains(&id), "{line}");
        process.kill9().await;
        process = net.env.start().await;
    }
    net.wait(&process, &id, "completed", Duration::from_secs(30))
        .await;
    if fault.is_none() {
        eprintln!(
            "figure: recipient's claim on the built-in ledger -> gateway's claim on anvil confirmed (transfer completed): {} ms",
            claimed.elapsed().as_millis()
        );
    }
    // Exact balances on both ledgers: the gateway was paid once on anvil.
    assert_eq!(net.eurt(DEV_ADDRESSES[0]), ISSUED + 200);
    assert_eq!(net.eurt(DEV_ADDRESSES[1]), ISSUED - 200);
    assert_eq!(net.eurt(&net.contract), 0);
    assert_eq!(net.eur_balance(&process, net.bob.address()).await, 200);
    assert_eq!(net.eur_balance(&process, net.connector).await, ISSUED - 200);
    net.anvil.stop().await;
}

#[tokio::test]
async fn erc20_on_anvil_to_built_in_eur_the_sender_locking_with_cast() {
    erc20_to_built_in(None).await;
}

#[tokio::test]
async fn killed_between_the_recipient_claim_and_its_own_claim_on_anvil() {
    erc20_to_built_in(Some("before-write-ahead:source-claim")).await;
}

#[tokio::test]
async fn killed_after_sending_its_claim_on_anvil_before_it_was_confirmed() {
    erc20_to_built_in(Some("after-write-ahead:source-claim")).await;
}

#[tokio::test]
async fn killed_after_its_claim_on_anvil_was_confirmed_before_recording_it() {
    erc20_to_built_in(Some("after-submit:source-claim")).await;
}

#[tokio::test]
async fn transfers_the_evm_chain_cannot_carry_are_refused_and_nothing_is_sent() {
    let db = PgDatabase::new().await;
    let net = Net::new(&db).await;
    let process = net.env.start().await;
    net.issue(&process).await;
    let nonce = net.anvil.cast(&["nonce", DEV_ADDRESSES[0]]);
    let response = process
        .http
        .post(format!("{}/v1/transfers", process.base))
        .bearer_auth(&net.api)
        .json(&serde_json::json!({
            "sourceChainId": CHAIN.to_string(), "targetChainId": ANVIL_CHAIN.to_string(),
            "sourceAsset": "EUR", "targetAsset": "EUR", "amount": "5",
            "sender": net.alice.address().to_string(), "recipient": DEV_ADDRESSES[2],
            "hashlock": Hashlock::of_preimage(&[1; 32]).to_string(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not configured on chain 31337"),
        "{problem}"
    );
    // EUR (2 decimals) into WEUR (18): refused, the minor units differ.
    let response = process
        .http
        .post(format!("{}/v1/transfers", process.base))
        .bearer_auth(&net.api)
        .json(&serde_json::json!({
            "sourceChainId": CHAIN.to_string(), "targetChainId": ANVIL_CHAIN.to_string(),
            "sourceAsset": "EUR", "targetAsset": "WEUR", "amount": "5",
            "sender": net.alice.address().to_string(), "recipient": DEV_ADDRESSES[2],
            "hashlock": Hashlock::of_preimage(&[2; 32]).to_string(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("2 decimals and the target asset 18"),
        "{problem}"
    );
    let (status, page) = process.get("/v1/transfers", &net.api).await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    assert_eq!(net.anvil.cast(&["nonce", DEV_ADDRESSES[0]]), nonce);
    net.anvil.stop().await;
}

/// Lock `id`'s state at anvil's head, read with cast.
fn head_state(anvil: &Anvil, contract: &str, id: &str) -> String {
    let stored = anvil.cast(&[
        "call",
        contract,
        "locks(bytes32)(address,uint64,uint8,address,address,uint256,bytes32)",
        id,
    ]);
    stored.lines().nth(2).unwrap_or_default().to_string()
}

/// Mines a block every 200 ms until dropped.
struct Miner(tokio::task::JoinHandle<()>);

impl Miner {
    fn start(url: &str) -> Self {
        let url = url.to_string();
        Self(tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let _ = http
                    .post(&url)
                    .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []}))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }))
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[tokio::test]
async fn reorgs_in_the_middle_of_a_transfer_with_two_confirmations() {
    let db = PgDatabase::new().await;
    let net = Net::with_confirmations(&db, 2).await;
    let process = net.env.start().await;
    net.issue(&process).await;
    let secret = [0x81u8; 32];
    let hashlock = Hashlock::of_preimage(&secret);
    let transfer = net
        .create(
            &process,
            (ANVIL_CHAIN, CHAIN),
            ("EURT", "EUR"),
            200,
            (DEV_ADDRESSES[1], &net.bob.address().to_string()),
            hashlock,
        )
        .await;
    let id = transfer["id"].as_str().unwrap().to_string();
    let state = |view: &serde_json::Value| view["state"].as_str().unwrap_or_default().to_string();

    // 1. The sender's lock is mined but not confirmed, then reorged away:
    // the gateway never takes it up.
    let before_lock = net.anvil.snapshot().await;
    net.evm_sender_lock(&transfer, 200, 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, view) = process.get(&format!("/v1/transfers/{id}"), &net.api).await;
    assert_eq!(
        state(&view),
        "awaiting_source_lock",
        "an unconfirmed lock was taken up: {view}"
    );
    net.anvil.revert(&before_lock).await;
    net.anvil.mine(3).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, view) = process.get(&format!("/v1/transfers/{id}"), &net.api).await;
    assert_eq!(state(&view), "awaiting_source_lock", "{view}");
    assert_eq!(net.eur_balance(&process, net.bob.address()).await, 0);

    // 2. The sender locks again; once that is confirmed the gateway locks
    // the target.
    net.evm_sender_lock(&transfer, 200, 2);
    let view = {
        let _miner = Miner::start(&net.anvil.url);
        net.wait(&process, &id, "target_locked", Duration::from_secs(20))
            .await
    };
    let source_lock = view["sourceLockId"].as_str().unwrap().to_string();
    let target_lock = view["targetLockId"].as_str().unwrap().to_string();

    // 3. The gateway's own claim on anvil is mined, then reorged away
    // before it is confirmed: the gateway sends it again.
    let before_claim = net.anvil.snapshot().await;
    net.bob_claims(&process, &target_lock, secret).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while head_state(&net.anvil, &net.contract, &source_lock) != "2" {
        assert!(
            Instant::now() < deadline,
            "the gateway never claimed on anvil"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, view) = process.get(&format!("/v1/transfers/{id}"), &net.api).await;
    assert_eq!(
        state(&view),
        "claiming_source",
        "an unconfirmed claim counted: {view}"
    );
    net.anvil.revert(&before_claim).await;
    // The claim is gone with the reverted block (the gateway may already
    // have sent it again: it polls every 20 ms). Without that resend the
    // lock would stay open and the transfer never complete.
    // The gateway notices and claims again; blocks confirm it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while head_state(&net.anvil, &net.contract, &source_lock) != "2" {
        assert!(Instant::now() < deadline, "the gateway never claimed again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _miner = Miner::start(&net.anvil.url);
    net.wait(&process, &id, "completed", Duration::from_secs(20))
        .await;
    assert_eq!(net.eurt(DEV_ADDRESSES[0]), ISSUED + 200);
    assert_eq!(net.eurt(DEV_ADDRESSES[1]), ISSUED - 200);
    assert_eq!(net.eurt(&net.contract), 0);
    assert_eq!(net.eur_balance(&process, net.bob.address()).await, 200);
    assert_eq!(net.eur_balance(&process, net.connector).await, ISSUED - 200);
}
