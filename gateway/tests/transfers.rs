//! Cross-ledger transfers with the gateway as connector between two of its
//! ledgers, over real HTTP on SQLite and PostgreSQL: the claim path (the
//! recipient's claim on the target reveals the preimage and the connector
//! claims the source), the refund path (nobody claims: both legs refunded
//! at their expiries), cancellation, tenant isolation and idempotency.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use ledger_core::{Amount, ChainId, Hashlock, LockId, TxBody};
use lockgate::auth::Scope;
use serde_json::json;
use support::*;

const TARGET: u64 = CHAIN + 1;

/// The target ledger beside the default one, and EUR on it as EURT.
fn two_ledgers(config: &mut lockgate::config::Config) {
    config.extra_ledgers.push(lockgate::config::LedgerConfig {
        chain_id: TARGET,
        batch_wait_ms: 1,
        ..lockgate::config::LedgerConfig::default()
    });
    config.transfers.asset_pairs = vec![["EUR".into(), "EURT".into()]];
}

async fn gateway(kind: Db) -> Gateway {
    let db = TestDb::new(kind).await;
    Gateway::start_on(db, |config| {
        two_ledgers(config);
        // Short timelocks so the refund path runs in seconds.
        config.transfers.commit_ms_max = 300;
        config.transfers.reaction_ms_max = 200;
        config.transfers.safety_margin_ms = 100;
        config.transfers.claim_window_ms = 700;
        config.transfers.tick_ms = 50;
    })
    .await
}

/// The two ledgers and the asset pair, with an engine whose tick is a
/// minute away: within a test, only what wakes it moves a transfer.
async fn slow_engine_gateway(kind: Db) -> Gateway {
    let db = TestDb::new(kind).await;
    Gateway::start_on(db, |config| {
        two_ledgers(config);
        config.transfers.tick_ms = 60_000;
    })
    .await
}

fn target() -> ChainId {
    ChainId::new(TARGET).unwrap()
}

/// EUR for alice on the source; EURT liquidity for the connector on the target.
async fn setup(gateway: &Gateway) {
    let (issuer, alice) = (key(1), key(2));
    fund(gateway, &[&alice], 1_000).await;
    let connector = gateway.app.connector.key.address();
    assert_eq!(
        gateway
            .submit(&sign_on(target(), &issuer, 0, register("EURT")))
            .await
            .0,
        201
    );
    assert_eq!(
        gateway
            .submit(&sign_on(
                target(),
                &issuer,
                1,
                issue("EURT", connector, 10_000)
            ))
            .await
            .0,
        201
    );
}

async fn balance(gateway: &Gateway, chain: u64, who: ledger_core::Address, asset: &str) -> u128 {
    let (_, account) = gateway
        .get(
            &format!("/v1/ledger/accounts/{who}?chainId={chain}"),
            &gateway.admin(),
        )
        .await;
    account["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["asset"] == asset)
        .map(|b| b["amount"].as_str().unwrap().parse().unwrap())
        .unwrap_or(0)
}

async fn wait_for(gateway: &Gateway, id: &str, state: &str) -> serde_json::Value {
    for _ in 0..200 {
        let (status, view) = gateway
            .get(&format!("/v1/transfers/{id}"), &gateway.admin())
            .await;
        assert_eq!(status, 200, "{view}");
        if view["state"] == state {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, view) = gateway
        .get(&format!("/v1/transfers/{id}"), &gateway.admin())
        .await;
    panic!("transfer never reached {state}: {view:#}");
}

async fn create(gateway: &Gateway, hashlock: Hashlock) -> serde_json::Value {
    let body = json!({
        "sourceChainId": CHAIN.to_string(), "targetChainId": TARGET.to_string(),
        "sourceAsset": "EUR", "targetAsset": "EURT", "amount": "500",
        "sender": key(2).address().to_string(), "recipient": key(3).address().to_string(),
        "hashlock": hashlock.to_string(),
    });
    let (status, view) = gateway.post("/v1/transfers", &gateway.admin(), &body).await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["state"], "awaiting_source_lock");
    view
}

/// The sender's lock, exactly as the transfer asks for it.
async fn sender_locks(gateway: &Gateway, view: &serde_json::Value, hashlock: Hashlock) {
    let lock = TxBody::HtlcLock {
        asset: asset("EUR"),
        recipient: view["connector"].as_str().unwrap().parse().unwrap(),
        amount: Amount::from_minor_units(500),
        hashlock,
        expires_at_ms: view["sourceExpiresAtMs"].as_str().unwrap().parse().unwrap(),
    };
    let (status, body) = gateway.submit(&sign(&key(2), 0, lock)).await;
    assert_eq!(status, 201, "{body}");
}

fn kinds(view: &serde_json::Value) -> Vec<String> {
    view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

async fn claim_path(kind: Db) {
    let gateway = gateway(kind).await;
    setup(&gateway).await;
    let connector = gateway.app.connector.key.address();
    let (alice, bob) = (key(2), key(3));
    let secret = [0x42u8; 32];
    let hashlock = Hashlock::of_preimage(&secret);
    let view = create(&gateway, hashlock).await;
    let id = view["id"].as_str().unwrap();
    assert!(
        view["targetExpiresAtMs"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            < view["sourceExpiresAtMs"].as_str().unwrap().parse().unwrap()
    );

    sender_locks(&gateway, &view, hashlock).await;
    let view = wait_for(&gateway, id, "target_locked").await;
    let target_lock: LockId = view["targetLockId"].as_str().unwrap().parse().unwrap();
    // Value locked by sender: alice on the source, the connector on the target.
    let metrics = gateway.metrics().await;
    let alice_hex = alice.address().to_string();
    let connector_hex = connector.to_string();
    let (source, target_id) = (CHAIN.to_string(), TARGET.to_string());
    assert_eq!(
        metrics.value(
            "lockgate_value_locked",
            &[
                ("chain_id", source.as_str()),
                ("asset", "EUR"),
                ("participant", alice_hex.as_str())
            ]
        ),
        500.0
    );
    assert_eq!(
        metrics.value(
            "lockgate_value_locked",
            &[
                ("chain_id", target_id.as_str()),
                ("asset", "EURT"),
                ("participant", connector_hex.as_str())
            ]
        ),
        500.0
    );
    assert_eq!(
        metrics.value("lockgate_transfers", &[("state", "target_locked")]),
        1.0
    );
    // The recipient claims on the target with the preimage.
    let (status, body) = gateway
        .submit(&sign_on(target(), &bob, 0, claim(target_lock, &secret)))
        .await;
    assert_eq!(status, 201, "{body}");
    let view = wait_for(&gateway, id, "completed").await;
    assert_eq!(
        kinds(&view),
        [
            "created",
            "source_locked",
            "target_locked",
            "target_claimed",
            "completed"
        ]
    );

    assert_eq!(balance(&gateway, CHAIN, alice.address(), "EUR").await, 500);
    assert_eq!(balance(&gateway, CHAIN, connector, "EUR").await, 500);
    assert_eq!(balance(&gateway, TARGET, bob.address(), "EURT").await, 500);
    assert_eq!(balance(&gateway, TARGET, connector, "EURT").await, 9_500);

    let metrics = gateway.metrics().await;
    let completed = [("state", "completed")];
    assert_eq!(metrics.value("lockgate_transfers", &completed), 1.0);
    assert_eq!(
        metrics.value("lockgate_transfers", &[("state", "target_locked")]),
        0.0
    );
    assert_eq!(
        metrics.value("lockgate_transfers_finished_total", &completed),
        1.0
    );
    assert_eq!(
        metrics.value("lockgate_transfer_duration_seconds_count", &completed),
        1.0
    );
    // The connector locked the target and claimed the source itself.
    for call in ["lock", "claim"] {
        assert!(
            metrics.value(
                "lockgate_adapter_call_duration_seconds_count",
                &[("adapter", "builtin"), ("call", call)]
            ) >= 1.0,
            "{call}"
        );
    }
    assert_eq!(
        metrics.get(
            "lockgate_value_locked",
            &[("participant", alice_hex.as_str())]
        ),
        None,
        "a claimed lock holds no value"
    );
}

async fn refund_path(kind: Db) {
    let gateway = gateway(kind).await;
    setup(&gateway).await;
    let connector = gateway.app.connector.key.address();
    let hashlock = Hashlock::of_preimage(&[0x43u8; 32]);
    let view = create(&gateway, hashlock).await;
    let id = view["id"].as_str().unwrap();
    sender_locks(&gateway, &view, hashlock).await;
    wait_for(&gateway, id, "target_locked").await;
    // Nobody claims: both legs come back at their expiries.
    let view = wait_for(&gateway, id, "refunded").await;
    assert_eq!(
        kinds(&view),
        [
            "created",
            "source_locked",
            "target_locked",
            "unwinding",
            "refunded"
        ]
    );
    assert_eq!(
        balance(&gateway, CHAIN, key(2).address(), "EUR").await,
        1_000
    );
    assert_eq!(balance(&gateway, CHAIN, connector, "EUR").await, 0);
    assert_eq!(balance(&gateway, TARGET, connector, "EURT").await, 10_000);
    assert_eq!(balance(&gateway, TARGET, key(3).address(), "EURT").await, 0);
    let metrics = gateway.metrics().await;
    assert_eq!(
        metrics.value(
            "lockgate_transfers_finished_total",
            &[("state", "refunded")]
        ),
        1.0
    );
    assert_eq!(
        metrics.value("lockgate_transfers", &[("state", "refunded")]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_path_on_sqlite() {
    claim_path(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_path_on_postgres() {
    claim_path(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_path_on_sqlite() {
    refund_path(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_path_on_postgres() {
    refund_path(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lock_in_time_cancels_and_other_tenants_see_nothing() {
    let gateway = gateway(Db::Sqlite).await;
    setup(&gateway).await;
    let view = create(&gateway, Hashlock::of_preimage(&[1; 32])).await;
    let id = view["id"].as_str().unwrap();
    let view = wait_for(&gateway, id, "cancelled").await;
    assert_eq!(kinds(&view), ["created", "cancelled"]);
    assert_eq!(
        balance(
            &gateway,
            TARGET,
            gateway.app.connector.key.address(),
            "EURT"
        )
        .await,
        10_000
    );

    let now = lockgate::sequencer::now_ms() / 1000;
    let stranger = gateway
        .app
        .auth
        .mint("x", "tenant-b", &[Scope::TransfersRead], &[], now, 60)
        .unwrap();
    let (status, _) = gateway.get(&format!("/v1/transfers/{id}"), &stranger).await;
    assert_eq!(status, 404);
    let (status, page) = gateway.get("/v1/transfers", &stranger).await;
    assert_eq!((status, page["items"].as_array().unwrap().len()), (200, 0));
    let (_, page) = gateway.get("/v1/transfers", &gateway.admin()).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    // Refused routes.
    let body = json!({
        "sourceChainId": CHAIN.to_string(), "targetChainId": "999", "sourceAsset": "EUR", "targetAsset": "EURT",
        "amount": "5", "sender": key(2).address().to_string(), "recipient": key(3).address().to_string(),
        "hashlock": Hashlock::of_preimage(&[2; 32]).to_string(),
    });
    let (status, problem) = gateway.post("/v1/transfers", &gateway.admin(), &body).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (422, Some("urn:lockgate:problem:route-refused"))
    );
    let (status, _) = gateway
        .post(
            "/v1/transfers",
            &gateway.token(&[Scope::TransfersRead], &[]),
            &body,
        )
        .await;
    assert_eq!(status, 403);
    // A connector moves one value: EUR into GBP is not a configured pair.
    let other_asset = json!({
        "sourceChainId": CHAIN.to_string(), "targetChainId": TARGET.to_string(), "sourceAsset": "EUR", "targetAsset": "GBP",
        "amount": "5", "sender": key(2).address().to_string(), "recipient": key(3).address().to_string(),
        "hashlock": Hashlock::of_preimage(&[3; 32]).to_string(),
    });
    let (status, problem) = gateway
        .post("/v1/transfers", &gateway.admin(), &other_asset)
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (422, Some("urn:lockgate:problem:route-refused")),
        "{problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("asset_pairs"),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_until_locked_and_a_tenant_limit_on_locked_value() {
    let db = TestDb::new(Db::Postgres).await;
    let gateway = Gateway::start_on(db, |config| {
        two_ledgers(config);
        config.transfers.tenant_locked_max = 700;
    })
    .await;
    setup(&gateway).await;
    let token = gateway.admin();

    // 500 of 700 is fine; another 500 would pass the limit.
    let first = create(&gateway, Hashlock::of_preimage(&[10; 32])).await;
    let body = json!({
        "sourceChainId": CHAIN.to_string(), "targetChainId": TARGET.to_string(), "sourceAsset": "EUR", "targetAsset": "EURT",
        "amount": "500", "sender": key(2).address().to_string(), "recipient": key(3).address().to_string(),
        "hashlock": Hashlock::of_preimage(&[11; 32]).to_string(),
    });
    let (status, problem) = gateway.post("/v1/transfers", &token, &body).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (422, Some("urn:lockgate:problem:limit-exceeded")),
        "{problem}"
    );

    // Cancelled while awaiting the sender's lock: twice is harmless, and it frees the limit.
    let id = first["id"].as_str().unwrap();
    for _ in 0..2 {
        let (status, view) = gateway
            .post(&format!("/v1/transfers/{id}/cancel"), &token, &json!({}))
            .await;
        assert_eq!(
            (status, view["state"].as_str()),
            (200, Some("cancelled")),
            "{view}"
        );
    }
    let (status, second) = gateway.post("/v1/transfers", &token, &body).await;
    assert_eq!(status, 201, "{second}");

    // Once the sender's lock is in place, it cannot be cancelled.
    sender_locks(&gateway, &second, Hashlock::of_preimage(&[11; 32])).await;
    let second_id = second["id"].as_str().unwrap();
    wait_for(&gateway, second_id, "target_locked").await;
    let (status, problem) = gateway
        .post(
            &format!("/v1/transfers/{second_id}/cancel"),
            &token,
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (409, Some("urn:lockgate:problem:transfer-locked"))
    );

    let (_, cancelled) = gateway.get("/v1/transfers?state=cancelled", &token).await;
    let ids: Vec<&str> = cancelled["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id]);
    let (status, _) = gateway.get("/v1/transfers?state=nonsense", &token).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_carries_each_history_entry() {
    let gateway = gateway(Db::Sqlite).await;
    setup(&gateway).await;
    let token = gateway.admin();
    let mut stream = gateway
        .http
        .get(format!("{}/v1/transfers/stream", gateway.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let view = create(&gateway, Hashlock::of_preimage(&[20; 32])).await;
    let id = view["id"].as_str().unwrap().to_string();
    let (status, _) = gateway
        .post(&format!("/v1/transfers/{id}/cancel"), &token, &json!({}))
        .await;
    assert_eq!(status, 200);

    let mut text = String::new();
    let mut seen: Vec<(u64, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < 2 && tokio::time::Instant::now() < deadline {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                let event: serde_json::Value = serde_json::from_str(data).unwrap();
                assert!(frame.contains("event: transfer"));
                if event["transferId"] == id.as_str() {
                    seen.push((
                        event["seq"].as_u64().unwrap(),
                        event["kind"].as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    }
    assert_eq!(
        seen,
        vec![(0, "created".to_string()), (1, "cancelled".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_off_the_terms_is_not_taken_and_a_hashlock_serves_once() {
    let gateway = gateway(Db::Postgres).await;
    setup(&gateway).await;
    let token = gateway.admin();
    let hashlock = Hashlock::of_preimage(&[30; 32]);
    let view = create(&gateway, hashlock).await;
    let id = view["id"].as_str().unwrap();
    // The planned margin separates the two expiries.
    let source: u64 = view["sourceExpiresAtMs"].as_str().unwrap().parse().unwrap();
    let target_expiry: u64 = view["targetExpiresAtMs"].as_str().unwrap().parse().unwrap();
    let margin: u64 = view["events"][0]["detail"]["marginMs"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        margin >= 300 + 2 * 50 + 300 + 100,
        "margin {margin} covers both finalities, reaction and safety"
    );
    assert_eq!(source - target_expiry, margin);

    // The same hashlock for a second transfer is refused.
    let body = json!({
        "sourceChainId": CHAIN.to_string(), "targetChainId": TARGET.to_string(), "sourceAsset": "EUR", "targetAsset": "EURT",
        "amount": "500", "sender": key(2).address().to_string(), "recipient": key(3).address().to_string(),
        "hashlock": hashlock.to_string(),
    });
    let (status, problem) = gateway.post("/v1/transfers", &token, &body).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (409, Some("urn:lockgate:problem:hashlock-in-use")),
        "{problem}"
    );

    // A sender lock expiring too early is not taken: the transfer is cancelled at its deadline.
    let short = TxBody::HtlcLock {
        asset: asset("EUR"),
        recipient: gateway.app.connector.key.address(),
        amount: Amount::from_minor_units(500),
        hashlock,
        expires_at_ms: source - 1,
    };
    assert_eq!(gateway.submit(&sign(&key(2), 0, short)).await.0, 201);
    let view = wait_for(&gateway, id, "cancelled").await;
    assert_eq!(kinds(&view), ["created", "cancelled"]);
    assert_eq!(
        balance(
            &gateway,
            TARGET,
            gateway.app.connector.key.address(),
            "EURT"
        )
        .await,
        10_000,
        "the connector locked nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_after_the_sender_locked_is_refused() {
    // A slow engine, so the sender's lock is on the ledger before it looks.
    let gateway = slow_engine_gateway(Db::Sqlite).await;
    setup(&gateway).await;
    let hashlock = Hashlock::of_preimage(&[31; 32]);
    let view = create(&gateway, hashlock).await;
    sender_locks(&gateway, &view, hashlock).await;
    let id = view["id"].as_str().unwrap();
    let (status, problem) = gateway
        .post(
            &format!("/v1/transfers/{id}/cancel"),
            &gateway.admin(),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (409, Some("urn:lockgate:problem:transfer-locked")),
        "{problem}"
    );
}

/// A committed block makes the engine look at the transfer table only when
/// the block has an HTLC transaction and the engine has a transfer to move:
/// plain payments do not pay a scan per block, with or without a transfer
/// active, and the sender's lock and the recipient's claim still move a
/// transfer at once (the tick here is a minute, so only the blocks can).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_wake_the_engine_only_while_a_transfer_waits() {
    let gateway = slow_engine_gateway(Db::Postgres).await;
    setup(&gateway).await;
    // No transfer active. At most the look that a commit of the set-up
    // prompted before the engine knew it had nothing to move.
    let looks = commit_looks_over_ten_payments(&gateway, 2).await;
    assert!(
        looks <= 1.0,
        "the engine scanned on {looks} of 10 payment blocks"
    );
    let secret = [41; 32];
    let hashlock = Hashlock::of_preimage(&secret);
    let view = create(&gateway, hashlock).await;
    let id = view["id"].as_str().unwrap();
    sender_locks(&gateway, &view, hashlock).await;
    let view = wait_for(&gateway, id, "target_locked").await;
    // Active now, waiting for the recipient's claim: payment blocks still
    // prompt no look.
    let looks = commit_looks_over_ten_payments(&gateway, 12).await;
    assert!(
        looks <= 1.0,
        "the engine scanned on {looks} of 10 payment blocks with a transfer active"
    );
    let paid = gateway.metrics().await;
    // The claim's block does, and the engine completes the transfer.
    let target_lock: LockId = view["targetLockId"].as_str().unwrap().parse().unwrap();
    let (status, body) = gateway
        .submit(&sign_on(target(), &key(3), 0, claim(target_lock, &secret)))
        .await;
    assert_eq!(status, 201, "{body}");
    wait_for(&gateway, id, "completed").await;
    let done = gateway.metrics().await;
    assert!(engine_scans(&done, "commit") > engine_scans(&paid, "commit"));
    assert_eq!(engine_scans(&done, "tick"), 0.0, "a tick is a minute away");
    assert!(
        engine_scans(&done, "wake") >= 1.0,
        "the creation woke the engine"
    );
}

/// The transfer engine's looks prompted by `cause`, so far.
fn engine_scans(metrics: &Metrics, cause: &str) -> f64 {
    metrics.value("lockgate_transfer_engine_scans_total", &[("cause", cause)])
}

/// Ten blocks of payments, one after another (the issuer's nonces from
/// `first_nonce`), and the engine's looks at the transfers that their
/// commits prompted meanwhile.
async fn commit_looks_over_ten_payments(gateway: &Gateway, first_nonce: u64) -> f64 {
    let before = gateway.metrics().await;
    for nonce in first_nonce..first_nonce + 10 {
        let (status, body) = gateway
            .submit(&sign(&key(1), nonce, issue("EUR", key(4).address(), 1)))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    engine_scans(&gateway.metrics().await, "commit") - engine_scans(&before, "commit")
}

/// A retried `POST /v1/transfers` with the same `Idempotency-Key` returns the
/// same transfer (marked replayed) and makes no second one; the key with a
/// different request is refused and changes nothing.
async fn a_retried_create_returns_the_same_transfer(kind: Db) {
    let gateway = gateway(kind).await;
    setup(&gateway).await;
    let hashlock = Hashlock::of_preimage(&[0x31; 32]);
    let body = json!({
        "sourceChainId": CHAIN.to_string(), "targetChainId": TARGET.to_string(),
        "sourceAsset": "EUR", "targetAsset": "EURT", "amount": "500",
        "sender": key(2).address().to_string(), "recipient": key(3).address().to_string(),
        "hashlock": hashlock.to_string(),
    });
    let send = |body: serde_json::Value| {
        let request = gateway
            .http
            .post(format!("{}/v1/transfers", gateway.base))
            .bearer_auth(gateway.admin())
            .header("Idempotency-Key", "create-once")
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let replayed = response
                .headers()
                .get("idempotent-replayed")
                .map(|v| v.to_str().unwrap().to_string());
            let view: serde_json::Value = response.json().await.unwrap();
            (status, replayed, view)
        }
    };
    let (status, replayed, first) = send(body.clone()).await;
    assert_eq!((status, replayed), (201, None), "{first}");
    let (status, replayed, second) = send(body.clone()).await;
    assert_eq!(
        (status, replayed.as_deref()),
        (201, Some("true")),
        "{second}"
    );
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["sourceExpiresAtMs"], first["sourceExpiresAtMs"]);

    let mut other = body;
    other["amount"] = json!("400");
    let (status, _, problem) = send(other).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:lockgate:problem:idempotency-key-reused"
    );

    let (status, page) = gateway.get("/v1/transfers", &gateway.admin()).await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["id"], first["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_create_returns_the_same_transfer_on_sqlite() {
    a_retried_create_returns_the_same_transfer(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_create_returns_the_same_transfer_on_postgres() {
    a_retried_create_returns_the_same_transfer(Db::Postgres).await;
}
