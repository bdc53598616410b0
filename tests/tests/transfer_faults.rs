//! Crash tests of the transfer engine with real processes on a real
//! PostgreSQL database: for every step of every ledger action the connector
//! takes (`transfers.fault_step`, see `lockgate::transfers::fault`), the
//! gateway halts at that step, is killed with SIGKILL, and is restarted
//! without the fault. Every transfer must then end completed on both legs or
//! refunded on both legs, and the total of the asset across both ledgers
//! must be what was issued, with no lock left open.
//!
//! Topology (a): one gateway, two built-in ledgers (4201 source, 4202
//! target), the gateway as connector with its own liquidity on the target.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ledger_core::{
    Address, Amount, AssetCode, ChainId, Hashlock, LockId, Preimage, Scale, SigningKey, TxBody,
};
use lockgate_e2e::*;

const TARGET: u64 = 4202;
const ISSUED_SOURCE: u128 = 1_000;
const ISSUED_TARGET: u128 = 10_000;
const AMOUNT: u128 = 300;

fn eur() -> AssetCode {
    AssetCode::new("EUR").unwrap()
}

fn on(chain: u64, key: &SigningKey, nonce: u64, body: TxBody) -> ledger_core::SignedTransaction {
    sign_on(ChainId::new(chain).unwrap(), key, nonce, body)
}

/// How the transfer is meant to end.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Ending {
    /// The recipient claims on the target.
    Completed,
    /// Nobody claims; both locks expire.
    Refunded,
}

struct Scenario {
    env: Env,
    token: String,
    connector: Address,
    alice: SigningKey,
    bob: SigningKey,
}

impl Scenario {
    async fn new(db: &PgDatabase) -> Self {
        let connector_secret = ledger_core::hash::sha256(b"e2e-fault-connector");
        let connector = SigningKey::from_bytes(connector_secret).unwrap().address();
        // Timelocks (see the planner): the source lock is due 2 s after the
        // transfer is created, the target lock 4 s after; the target expires
        // at 7 s, the source at 9.5 s.
        let env = Env::new(&db.url).with_config(&format!(
            "[[extra_ledgers]]\nchain_id = {TARGET}\nblock_key = \"0x{}\"\nbatch_wait_ms = 1\n\n\
             [transfers]\nconnector_key = \"0x{}\"\ntick_ms = 100\nreaction_ms_max = 1500\n\
             commit_ms_max = 500\nclaim_window_ms = 2000\nsafety_margin_ms = 500\n",
            hex::encode(ledger_core::hash::sha256(b"e2e-fault-second-ledger")),
            hex::encode(connector_secret),
        ));
        let token = env.token().await;
        Self {
            env,
            token,
            connector,
            alice: key(2),
            bob: key(3),
        }
    }

    /// Registers EUR on both ledgers and issues to the sender (source) and
    /// the connector (target).
    async fn issue(&self, process: &Process) {
        let issuer = key(1);
        let register = TxBody::RegisterAsset {
            code: eur(),
            scale: Scale::new(2).unwrap(),
        };
        let issue = |to: Address, units| TxBody::Issue {
            asset: eur(),
            to,
            amount: Amount::from_minor_units(units),
        };
        for tx in [
            on(CHAIN, &issuer, 0, register.clone()),
            on(
                CHAIN,
                &issuer,
                1,
                issue(self.alice.address(), ISSUED_SOURCE),
            ),
            on(TARGET, &issuer, 0, register),
            on(TARGET, &issuer, 1, issue(self.connector, ISSUED_TARGET)),
        ] {
            let (status, body) = process.submit(&self.token, &tx).await.unwrap();
            assert_eq!(status, 201, "{body}");
        }
    }

    async fn view(&self, process: &Process, id: &str) -> serde_json::Value {
        let (status, view) = process
            .get(&format!("/v1/transfers/{id}"), &self.token)
            .await;
        assert_eq!(status, 200, "{view}");
        view
    }

    async fn wait(
        &self,
        process: &Process,
        id: &str,
        state: &str,
        within: Duration,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let view = self.view(process, id).await;
            if view["state"] == state {
                return view;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "transfer never reached {state}: {view}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn balance(&self, process: &Process, chain: u64, account: Address) -> u128 {
        let (status, view) = process
            .get(
                &format!("/v1/ledger/accounts/{account}?chainId={chain}"),
                &self.token,
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

    async fn lock_status(&self, process: &Process, chain: u64, id: &str) -> String {
        let (status, view) = process
            .get(
                &format!("/v1/ledger/htlcs/{id}?chainId={chain}"),
                &self.token,
            )
            .await;
        assert_eq!(status, 200, "{view}");
        view["status"].as_str().unwrap().to_string()
    }
}

/// Runs one transfer with the engine halting at `step`, kills the gateway
/// there, restarts it and checks the ending on both ledgers.
async fn crash_at(step: &str, ending: Ending) {
    let db = PgDatabase::new().await;
    let s = Scenario::new(&db).await;
    let mut process = s.env.start_with_env(&[("LOCKGATE_FAULT_STEP", step)]).await;
    s.issue(&process).await;
    let secret = [0x5au8; 32];
    let hashlock = Hashlock::of_preimage(&secret);
    let response = process
        .http
        .post(format!("{}/v1/transfers", process.base))
        .bearer_auth(&s.token)
        .header("Idempotency-Key", format!("fault-{step}"))
        .json(&serde_json::json!({
            "sourceChainId": CHAIN.to_string(), "targetChainId": TARGET.to_string(),
            "sourceAsset": "EUR", "targetAsset": "EUR", "amount": AMOUNT.to_string(),
            "sender": s.alice.address().to_string(), "recipient": s.bob.address().to_string(),
            "hashlock": hashlock.to_string(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let expires = |field: &str| -> u64 { created[field].as_str().unwrap().parse().unwrap() };
    let lock = on(
        CHAIN,
        &s.alice,
        0,
        TxBody::HtlcLock {
            asset: eur(),
            recipient: s.connector,
            amount: Amount::from_minor_units(AMOUNT),
            hashlock,
            expires_at_ms: expires("sourceExpiresAtMs"),
        },
    );
    let (status, body) = process.submit(&s.token, &lock).await.unwrap();
    assert_eq!(status, 201, "{body}");

    // Long enough for the slowest action, the source refund after the
    // source lock expires.
    let until_source_expiry = Duration::from_millis(
        expires("sourceExpiresAtMs").saturating_sub(lockgate::sequencer::now_ms()),
    );
    let patience = until_source_expiry + Duration::from_secs(20);
    let halted_line = format!("lockgate fault-injection halted at {step} transfer {id}");
    let crashes_at = |action: &str| step.ends_with(&format!(":{action}"));

    if crashes_at("target-lock") {
        assert!(
            process.stdout_line(&halted_line, patience).await.is_some(),
            "the engine never reached {step}"
        );
        process.kill9().await;
        process = s.env.start().await;
    }
    let view = s.wait(&process, &id, "target_locked", patience).await;
    let target_lock = view["targetLockId"].as_str().unwrap().to_string();
    let final_state = match ending {
        Ending::Completed => {
            let claim = on(
                TARGET,
                &s.bob,
                0,
                TxBody::HtlcClaim {
                    lock_id: target_lock.parse::<LockId>().unwrap(),
                    preimage: Preimage::new(secret.to_vec()).unwrap(),
                },
            );
            let (status, body) = process.submit(&s.token, &claim).await.unwrap();
            assert_eq!(status, 201, "{body}");
            "completed"
        }
        Ending::Refunded => "refunded",
    };
    if !crashes_at("target-lock") {
        assert!(
            process.stdout_line(&halted_line, patience).await.is_some(),
            "the engine never reached {step}"
        );
        process.kill9().await;
        process = s.env.start().await;
    }
    let view = s.wait(&process, &id, final_state, patience).await;

    // Both legs ended the same way, and nothing was made or lost.
    let source_lock = view["sourceLockId"].as_str().unwrap().to_string();
    let (alice, connector_source) = (
        s.balance(&process, CHAIN, s.alice.address()).await,
        s.balance(&process, CHAIN, s.connector).await,
    );
    let (bob, connector_target) = (
        s.balance(&process, TARGET, s.bob.address()).await,
        s.balance(&process, TARGET, s.connector).await,
    );
    let source_status = s.lock_status(&process, CHAIN, &source_lock).await;
    let target_status = s.lock_status(&process, TARGET, &target_lock).await;
    match ending {
        Ending::Completed => {
            assert_eq!(
                (source_status.as_str(), target_status.as_str()),
                ("claimed", "claimed")
            );
            assert_eq!((alice, connector_source), (ISSUED_SOURCE - AMOUNT, AMOUNT));
            assert_eq!((bob, connector_target), (AMOUNT, ISSUED_TARGET - AMOUNT));
        }
        Ending::Refunded => {
            assert_eq!(
                (source_status.as_str(), target_status.as_str()),
                ("refunded", "refunded")
            );
            assert_eq!((alice, connector_source), (ISSUED_SOURCE, 0));
            assert_eq!((bob, connector_target), (0, ISSUED_TARGET));
        }
    }
    assert_eq!(alice + connector_source, ISSUED_SOURCE);
    assert_eq!(bob + connector_target, ISSUED_TARGET);

    // The history tells the same story once: no step recorded twice.
    let kinds: Vec<String> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    let mut unique = kinds.clone();
    unique.dedup();
    assert_eq!(kinds, unique, "an event recorded twice: {kinds:?}");
    assert_eq!(
        kinds.last().map(String::as_str),
        Some(final_state),
        "{kinds:?}"
    );
}

macro_rules! crash_tests {
    ($($name:ident: $step:literal => $ending:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            crash_at($step, Ending::$ending).await;
        }
    )*};
}

crash_tests! {
    kill_before_write_ahead_of_target_lock: "before-write-ahead:target-lock" => Completed;
    kill_after_write_ahead_of_target_lock: "after-write-ahead:target-lock" => Completed;
    kill_after_submit_of_target_lock: "after-submit:target-lock" => Completed;
    kill_before_write_ahead_of_source_claim: "before-write-ahead:source-claim" => Completed;
    kill_after_write_ahead_of_source_claim: "after-write-ahead:source-claim" => Completed;
    kill_after_submit_of_source_claim: "after-submit:source-claim" => Completed;
    kill_before_write_ahead_of_target_refund: "before-write-ahead:target-refund" => Refunded;
    kill_after_write_ahead_of_target_refund: "after-write-ahead:target-refund" => Refunded;
    kill_after_submit_of_target_refund: "after-submit:target-refund" => Refunded;
    kill_before_write_ahead_of_source_refund: "before-write-ahead:source-refund" => Refunded;
    kill_after_write_ahead_of_source_refund: "after-write-ahead:source-refund" => Refunded;
    kill_after_submit_of_source_refund: "after-submit:source-refund" => Refunded;
}
