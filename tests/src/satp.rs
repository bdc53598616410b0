//! Two gateways for SATP tests: gateway A hosts ledger 4201 (alice's EUR),
//! gateway B hosts ledger 4301 and provides the EUR liquidity there. Each
//! has its own PostgreSQL database, its own keys, and pins the other.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use ledger_core::{Address, Amount, AssetCode, ChainId, Hashlock, Scale, SigningKey, TxBody};
use serde_json::{Value, json};

use crate::*;

pub const CHAIN_A: u64 = 4201;
pub const CHAIN_B: u64 = 4301;
pub const ISSUED_A: u128 = 1_000;
pub const ISSUED_B: u128 = 10_000;
pub const AMOUNT: u128 = 300;

pub fn eur() -> AssetCode {
    AssetCode::new("EUR").unwrap()
}

pub fn secret(label: &str) -> [u8; 32] {
    ledger_core::hash::sha256(label.as_bytes())
}

pub fn on(
    chain: u64,
    key: &SigningKey,
    nonce: u64,
    body: TxBody,
) -> ledger_core::SignedTransaction {
    sign_on(ChainId::new(chain).unwrap(), key, nonce, body)
}

/// One gateway of the pair.
pub struct Side {
    pub db: PgDatabase,
    pub env: Env,
    pub token: String,
    pub chain: u64,
    pub listen: String,
    pub connector: SigningKey,
    pub satp_key: p256::ecdsa::SigningKey,
    pub identity: Value,
}

impl Side {
    pub async fn new(name: &str, chain: u64) -> Self {
        let db = PgDatabase::new().await;
        let connector_secret = secret(&format!("satp-{name}-connector"));
        let satp_secret = secret(&format!("satp-{name}-identity"));
        let env = Env::new(&db.url).with_vars(&[
            ("LOCKGATE_CHAIN_ID", &chain.to_string()),
            (
                "LOCKGATE_BLOCK_KEY",
                &format!("0x{}", hex::encode(secret(&format!("satp-{name}-block")))),
            ),
            (
                "LOCKGATE_CONNECTOR_KEY",
                &format!("0x{}", hex::encode(connector_secret)),
            ),
            (
                "LOCKGATE_SATP_KEY",
                &format!("0x{}", hex::encode(satp_secret)),
            ),
            ("LOCKGATE_SATP_GATEWAY_ID", &format!("gw-{name}")),
            (
                "LOCKGATE_JWT_SECRET",
                &hex::encode(secret(&format!("satp-{name}-jwt"))),
            ),
        ]);
        let identity: Value =
            serde_json::from_str(env.run(&["satp-identity"]).await.trim()).unwrap();
        let token = env.token().await;
        Self {
            db,
            env,
            token,
            chain,
            listen: format!("127.0.0.1:{}", free_port()),
            connector: SigningKey::from_bytes(connector_secret).unwrap(),
            satp_key: p256::ecdsa::SigningKey::from_slice(&satp_secret).unwrap(),
            identity,
        }
    }

    /// A token this gateway issues to `peer` for its ledger API.
    pub async fn peer_token(&self, peer: &Side) -> String {
        let account = peer.connector.address().to_string();
        let tenant = format!("peer:{}", peer.identity["gatewayId"].as_str().unwrap());
        self.env
            .run(&[
                "token",
                "--tenant",
                &tenant,
                "--scope",
                "ledger:read",
                "--scope",
                "ledger:submit",
                "--account",
                &account,
                "--ttl-s",
                "86400",
            ])
            .await
            .trim()
            .to_string()
    }

    pub fn config(&self, peer: &Side, token: &str, transfers: &str) -> String {
        format!(
            "[transfers]\n{transfers}\n{}",
            Self::peer_entry(peer, token, &[])
        )
    }

    /// A `[[peers]]` entry pinning `peer`, with the token it issued this
    /// gateway and the ledgers reachable through it.
    pub fn peer_entry(peer: &Side, token: &str, routes: &[u64]) -> String {
        Self::peer_entry_keys(
            peer,
            token,
            routes,
            &peer.identity["identityKey"].to_string(),
            &[],
        )
    }

    /// [`Side::peer_entry`] pinning `identity_key` (JWK text) and the
    /// `previous` identity keys of a rotation.
    pub fn peer_entry_keys(
        peer: &Side,
        token: &str,
        routes: &[u64],
        identity_key: &str,
        previous: &[String],
    ) -> String {
        let previous: Vec<String> = previous.iter().map(|k| format!("'{k}'")).collect();
        format!(
            "[[peers]]\ngateway_id = \"{}\"\nurl = \"http://{}\"\nidentity_key = '{identity_key}'\n\
             previous_identity_keys = [{}]\n\
             chain_id = {}\nblock_producer = \"{}\"\naccount = \"{}\"\ntoken = \"{token}\"\n\
             commit_ms_max = 500\nclock_drift_ms_max = 100\nroutes = {routes:?}\n\n",
            peer.identity["gatewayId"].as_str().unwrap(),
            peer.listen,
            previous.join(", "),
            peer.chain,
            peer.identity["blockProducer"].as_str().unwrap(),
            peer.identity["account"].as_str().unwrap(),
        )
    }

    pub async fn start(&self, vars: &[(&str, &str)]) -> Process {
        self.env.start_at(&self.listen, vars).await
    }
}

/// The tests' engine settings: short timelocks (the source lock is due 2 s
/// after creation, B's lock expires after about 7 s, alice's after 10 s).
pub const TRANSFERS: &str = "tick_ms = 100\nreaction_ms_max = 1500\ncommit_ms_max = 500\n\
                             claim_window_ms = 2000\nsafety_margin_ms = 500\n";

pub struct Net {
    pub a: Side,
    pub b: Side,
    pub alice: SigningKey,
    pub bob: SigningKey,
}

impl Net {
    pub async fn new() -> Self {
        Self::new_with(TRANSFERS).await
    }

    /// Two gateways whose `[transfers]` section is `transfers`.
    pub async fn new_with(transfers: &str) -> Self {
        let mut a = Side::new("a", CHAIN_A).await;
        let mut b = Side::new("b", CHAIN_B).await;
        let token_for_a = b.peer_token(&a).await;
        let token_for_b = a.peer_token(&b).await;
        let config_a = a.config(&b, &token_for_a, transfers);
        let config_b = b.config(&a, &token_for_b, transfers);
        a.env.write_config(&config_a);
        b.env.write_config(&config_b);
        Self {
            a,
            b,
            alice: key(2),
            bob: key(3),
        }
    }

    /// EUR on both ledgers: alice's on A, B's liquidity on B.
    pub async fn issue(&self, pa: &Process, pb: &Process) {
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
        for (process, token, tx) in [
            (pa, &self.a.token, on(CHAIN_A, &issuer, 0, register.clone())),
            (
                pa,
                &self.a.token,
                on(CHAIN_A, &issuer, 1, issue(self.alice.address(), ISSUED_A)),
            ),
            (pb, &self.b.token, on(CHAIN_B, &issuer, 0, register)),
            (
                pb,
                &self.b.token,
                on(
                    CHAIN_B,
                    &issuer,
                    1,
                    issue(self.b.connector.address(), ISSUED_B),
                ),
            ),
        ] {
            let (status, body) = process.submit(token, &tx).await.unwrap();
            assert_eq!(status, 201, "{body}");
        }
    }

    /// Bob's claim, on B's ledger, of the target lock named in A's view of
    /// a transfer (`targetLockId`), opened with `preimage`.
    pub fn bob_claim(&self, locked: &Value, preimage: &[u8; 32]) -> ledger_core::SignedTransaction {
        let lock_id: ledger_core::LockId =
            locked["targetLockId"].as_str().unwrap().parse().unwrap();
        on(
            CHAIN_B,
            &self.bob,
            0,
            TxBody::HtlcClaim {
                lock_id,
                preimage: ledger_core::Preimage::new(preimage.to_vec()).unwrap(),
            },
        )
    }

    /// Creates the transfer on A; returns its view.
    pub async fn create(&self, pa: &Process, hashlock: Hashlock) -> Value {
        self.create_with_key(pa, hashlock, &uuid::Uuid::new_v4().to_string())
            .await
    }

    /// [`Net::create`] under a chosen `Idempotency-Key`.
    pub async fn create_with_key(&self, pa: &Process, hashlock: Hashlock, key: &str) -> Value {
        self.create_with_headers(pa, hashlock, &[("Idempotency-Key", key)])
            .await
    }

    /// [`Net::create`] with these request headers.
    pub async fn create_with_headers(
        &self,
        pa: &Process,
        hashlock: Hashlock,
        headers: &[(&str, &str)],
    ) -> Value {
        let mut request = pa
            .http
            .post(format!("{}/v1/transfers", pa.base))
            .bearer_auth(&self.a.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .json(&json!({
                "sourceChainId": CHAIN_A.to_string(), "targetChainId": CHAIN_B.to_string(),
                "sourceAsset": "EUR", "targetAsset": "EUR", "amount": AMOUNT.to_string(),
                "sender": self.alice.address().to_string(), "recipient": self.bob.address().to_string(),
                "hashlock": hashlock.to_string(),
            }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        assert_eq!(
            body["connector"],
            self.b.connector.address().to_string(),
            "alice locks to B's account"
        );
        body
    }

    /// Alice locks on A as the transfer asks.
    pub async fn lock(&self, pa: &Process, created: &Value, hashlock: Hashlock) {
        self.lock_with_nonce(pa, created, hashlock, 0).await;
    }

    /// [`Net::lock`] with alice's `nonce` (her first lock is 0).
    pub async fn lock_with_nonce(
        &self,
        pa: &Process,
        created: &Value,
        hashlock: Hashlock,
        nonce: u64,
    ) {
        let expires: u64 = created["sourceExpiresAtMs"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let lock = on(
            CHAIN_A,
            &self.alice,
            nonce,
            TxBody::HtlcLock {
                asset: eur(),
                recipient: self.b.connector.address(),
                amount: Amount::from_minor_units(AMOUNT),
                hashlock,
                expires_at_ms: expires,
            },
        );
        let (status, body) = pa.submit(&self.a.token, &lock).await.unwrap();
        assert_eq!(status, 201, "{body}");
    }

    /// Waits for the target lock of A's transfer `id`, has bob claim it on
    /// B's ledger (his transaction `nonce`) with `preimage`, waits until A
    /// reports the transfer completed.
    pub async fn claim_and_complete(
        &self,
        pa: &Process,
        pb: &Process,
        id: &str,
        preimage: [u8; 32],
        nonce: u64,
    ) {
        let locked = self
            .wait(pa, id, "target_locked", Duration::from_secs(20))
            .await;
        let target_lock: ledger_core::LockId =
            locked["targetLockId"].as_str().unwrap().parse().unwrap();
        let claim = on(
            CHAIN_B,
            &self.bob,
            nonce,
            TxBody::HtlcClaim {
                lock_id: target_lock,
                preimage: ledger_core::Preimage::new(preimage.to_vec()).unwrap(),
            },
        );
        let (status, body) = pb.submit(&self.b.token, &claim).await.unwrap();
        assert_eq!(status, 201, "{body}");
        self.wait(pa, id, "completed", Duration::from_secs(20))
            .await;
    }

    pub async fn wait(&self, pa: &Process, id: &str, state: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (status, view) = pa.get(&format!("/v1/transfers/{id}"), &self.a.token).await;
            assert_eq!(status, 200, "{view}");
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
}

pub async fn balance(process: &Process, token: &str, chain: u64, account: Address) -> u128 {
    let (status, view) = process
        .get(
            &format!("/v1/ledger/accounts/{account}?chainId={chain}"),
            token,
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

/// A side's signed recovery log of `session`, in order.
pub async fn log_rows(side: &Side, session: &str) -> Vec<lockgate::satp::store::LogRow> {
    let pool = side.db.pool().await;
    let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT seq, entry, hash, signature FROM satp_log WHERE session_id = $1 ORDER BY seq",
    )
    .bind(session)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter()
        .map(
            |(seq, entry, hash, signature)| lockgate::satp::store::LogRow {
                seq: seq as u64,
                entry,
                hash,
                signature,
            },
        )
        .collect()
}

/// The state of B's side of the transfer, read from B's database.
pub async fn server_state(b: &Side) -> (String, String) {
    let pool = b.db.pool().await;
    let row: (String, String) = sqlx::query_as(
        "SELECT t.state, s.status FROM transfers t JOIN satp_sessions s ON s.transfer_id = t.id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    row
}
