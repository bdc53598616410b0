//! Exchanges (payment-versus-payment, delivery-versus-payment) with a real
//! gateway process on a real PostgreSQL database: a cash ledger (4201, EUR)
//! and a securities ledger (4202, BOND) of one gateway. Xavier pays 500 EUR
//! for Yvonne's 10 BOND under one hashlock, with no connector liquidity:
//! each party locks to the other, Xavier's claim of the bonds reveals the
//! preimage and the gateway claims the cash for Yvonne.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ledger_core::{
    Address, Amount, AssetCode, ChainId, Hashlock, Preimage, Scale, SigningKey, TxBody,
};
use lockgate_e2e::*;
use serde_json::{Value, json};

const SECURITIES: u64 = 4202;

fn asset(code: &str) -> AssetCode {
    AssetCode::new(code).unwrap()
}

fn on(chain: u64, key: &SigningKey, nonce: u64, body: TxBody) -> ledger_core::SignedTransaction {
    sign_on(ChainId::new(chain).unwrap(), key, nonce, body)
}

struct Market {
    env: Env,
    token: String,
    connector: Address,
    xavier: SigningKey,
    yvonne: SigningKey,
}

impl Market {
    async fn new(db: &PgDatabase) -> Self {
        let connector_secret = ledger_core::hash::sha256(b"e2e-exchange-connector");
        let env = Env::new(&db.url).with_config(&format!(
            "[[extra_ledgers]]\nchain_id = {SECURITIES}\nblock_key = \"0x{}\"\nbatch_wait_ms = 1\n\n\
             [transfers]\nconnector_key = \"0x{}\"\ntick_ms = 100\nreaction_ms_max = 1500\n\
             commit_ms_max = 500\nclaim_window_ms = 2000\nsafety_margin_ms = 500\n",
            hex::encode(ledger_core::hash::sha256(b"e2e-exchange-securities")),
            hex::encode(connector_secret),
        ));
        let token = env.token().await;
        Self {
            env,
            token,
            connector: SigningKey::from_bytes(connector_secret).unwrap().address(),
            xavier: key(2),
            yvonne: key(3),
        }
    }

    async fn issue(&self, process: &Process) {
        let issuer = key(1);
        let register = |code| TxBody::RegisterAsset {
            code: asset(code),
            scale: Scale::new(0).unwrap(),
        };
        let issue = |code, to: Address, units| TxBody::Issue {
            asset: asset(code),
            to,
            amount: Amount::from_minor_units(units),
        };
        for tx in [
            on(CHAIN, &issuer, 0, register("EUR")),
            on(
                CHAIN,
                &issuer,
                1,
                issue("EUR", self.xavier.address(), 1_000),
            ),
            on(SECURITIES, &issuer, 0, register("BOND")),
            on(
                SECURITIES,
                &issuer,
                1,
                issue("BOND", self.yvonne.address(), 100),
            ),
        ] {
            let (status, body) = process.submit(&self.token, &tx).await.unwrap();
            assert_eq!(status, 201, "{body}");
        }
    }

    async fn create(&self, process: &Process, hashlock: Hashlock) -> Value {
        let response = process
            .http
            .post(format!("{}/v1/transfers", process.base))
            .bearer_auth(&self.token)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&json!({
                "kind": "exchange",
                "sourceChainId": CHAIN.to_string(), "targetChainId": SECURITIES.to_string(),
                "sourceAsset": "EUR", "targetAsset": "BOND",
                "amount": "500", "targetAmount": "10",
                "sender": self.xavier.address().to_string(),
                "recipient": self.yvonne.address().to_string(),
                "hashlock": hashlock.to_string(),
            }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["kind"], "exchange");
        assert_eq!(body["targetAmount"], "10");
        assert_eq!(
            body["connector"],
            self.yvonne.address().to_string(),
            "Xavier locks to Yvonne"
        );
        body
    }

    async fn wait(&self, process: &Process, id: &str, state: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (status, view) = process
                .get(&format!("/v1/transfers/{id}"), &self.token)
                .await;
            assert_eq!(status, 200, "{view}");
            if view["state"] == state {
                return view;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never {state}: {view}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn balance(&self, process: &Process, chain: u64, account: Address, code: &str) -> u128 {
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
            .find(|b| b["asset"] == code)
            .map_or(0, |b| b["amount"].as_str().unwrap().parse().unwrap())
    }

    async fn submit(&self, process: &Process, tx: ledger_core::SignedTransaction) {
        let (status, body) = process.submit(&self.token, &tx).await.unwrap();
        assert_eq!(status, 201, "{body}");
    }

    fn cash_lock(&self, created: &Value, hashlock: Hashlock) -> ledger_core::SignedTransaction {
        on(
            CHAIN,
            &self.xavier,
            0,
            TxBody::HtlcLock {
                asset: asset("EUR"),
                recipient: self.yvonne.address(),
                amount: Amount::from_minor_units(500),
                hashlock,
                expires_at_ms: created["sourceExpiresAtMs"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap(),
            },
        )
    }

    fn bond_lock(&self, hashlock: Hashlock, expires_at_ms: u64) -> ledger_core::SignedTransaction {
        on(
            SECURITIES,
            &self.yvonne,
            0,
            TxBody::HtlcLock {
                asset: asset("BOND"),
                recipient: self.xavier.address(),
                amount: Amount::from_minor_units(10),
                hashlock,
                expires_at_ms,
            },
        )
    }
}

#[tokio::test]
async fn delivery_versus_payment_completes_both_legs_without_connector_liquidity() {
    let db = PgDatabase::new().await;
    let m = Market::new(&db).await;
    let process = m.env.start().await;
    m.issue(&process).await;
    let preimage = [0x61u8; 32];
    let hashlock = Hashlock::of_preimage(&preimage);
    let created = m.create(&process, hashlock).await;
    let id = created["id"].as_str().unwrap();
    m.submit(&process, m.cash_lock(&created, hashlock)).await;
    m.wait(&process, id, "source_locked", Duration::from_secs(5))
        .await;
    let target_expires: u64 = created["targetExpiresAtMs"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    m.submit(&process, m.bond_lock(hashlock, target_expires))
        .await;
    let locked = m
        .wait(&process, id, "target_locked", Duration::from_secs(5))
        .await;
    // Xavier takes the bonds, revealing the preimage...
    let claim = on(
        SECURITIES,
        &m.xavier,
        0,
        TxBody::HtlcClaim {
            lock_id: locked["targetLockId"].as_str().unwrap().parse().unwrap(),
            preimage: Preimage::new(preimage.to_vec()).unwrap(),
        },
    );
    m.submit(&process, claim).await;
    // ...and the gateway claims the cash for Yvonne, who did nothing more.
    let done = m
        .wait(&process, id, "completed", Duration::from_secs(5))
        .await;
    let kinds: Vec<&str> = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "created",
            "source_locked",
            "target_locked",
            "target_claimed",
            "completed"
        ]
    );
    assert_eq!(
        m.balance(&process, CHAIN, m.xavier.address(), "EUR").await,
        500
    );
    assert_eq!(
        m.balance(&process, CHAIN, m.yvonne.address(), "EUR").await,
        500
    );
    assert_eq!(
        m.balance(&process, SECURITIES, m.xavier.address(), "BOND")
            .await,
        10
    );
    assert_eq!(
        m.balance(&process, SECURITIES, m.yvonne.address(), "BOND")
            .await,
        90
    );
    // No connector money moved.
    assert_eq!(m.balance(&process, CHAIN, m.connector, "EUR").await, 0);
    assert_eq!(
        m.balance(&process, SECURITIES, m.connector, "BOND").await,
        0
    );
}

#[tokio::test]
async fn a_counter_lock_that_expires_too_late_is_not_taken_and_the_payment_is_refunded() {
    let db = PgDatabase::new().await;
    let m = Market::new(&db).await;
    let process = m.env.start().await;
    m.issue(&process).await;
    let hashlock = Hashlock::of_preimage(&[0x62u8; 32]);
    let created = m.create(&process, hashlock).await;
    let id = created["id"].as_str().unwrap();
    m.submit(&process, m.cash_lock(&created, hashlock)).await;
    m.wait(&process, id, "source_locked", Duration::from_secs(5))
        .await;
    // Yvonne's lock would outlive Xavier's: after a last-moment claim of the
    // bonds she could not claim the cash. The engine must not count on it.
    let source_expires: u64 = created["sourceExpiresAtMs"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    m.submit(&process, m.bond_lock(hashlock, source_expires))
        .await;
    let done = m
        .wait(&process, id, "refunded", Duration::from_secs(20))
        .await;
    let kinds: Vec<&str> = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "source_locked", "unwinding", "refunded"]);
    assert!(done["targetLockId"].is_null(), "{done}");
    assert_eq!(
        m.balance(&process, CHAIN, m.xavier.address(), "EUR").await,
        1_000
    );
    assert_eq!(
        m.balance(&process, CHAIN, m.yvonne.address(), "EUR").await,
        0
    );
}
