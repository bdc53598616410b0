//! End to end with real processes: the built `lockgate` binary on a fresh
//! PostgreSQL database, driven over HTTP. Covers the ledger flow with an
//! inclusion proof checked by `ledger-core`, a `kill -9` in the middle of a
//! stream of submissions followed by a restart (every acknowledged
//! transaction is there, nothing applied twice, `lockgate verify` accepts the
//! export), and two processes on one database (one block producer, and a
//! takeover when it dies).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ledger_core::block::{BlockHeader, InclusionProof, SignedBlockHeader};
use ledger_core::{Amount, AssetCode, Hashlock, LockId, Preimage, Scale, TxBody, TxHash};
use lockgate_e2e::*;
use tokio::sync::Mutex;

fn eur() -> AssetCode {
    AssetCode::new("EUR").unwrap()
}

fn transfer(to: ledger_core::Address, units: u128) -> TxBody {
    TxBody::Transfer {
        asset: eur(),
        to,
        amount: Amount::from_minor_units(units),
    }
}

fn now_ms() -> u64 {
    lockgate::sequencer::now_ms()
}

async fn proof_of(
    process: &Process,
    token: &str,
    hash: TxHash,
) -> (InclusionProof, serde_json::Value) {
    let (status, view) = process
        .get(&format!("/v1/ledger/transactions/{hash}"), token)
        .await;
    assert_eq!(status, 200, "{view}");
    let h = &view["proof"]["blockHeader"];
    let header = SignedBlockHeader {
        header: BlockHeader {
            chain_id: chain(),
            height: h["height"].as_u64().unwrap(),
            previous_hash: h["previousHash"].as_str().unwrap().parse().unwrap(),
            timestamp_ms: h["timestampMs"].as_u64().unwrap(),
            tx_root: h["txRoot"].as_str().unwrap().parse().unwrap(),
            tx_count: h["txCount"].as_u64().unwrap() as u32,
            producer: h["producer"].as_str().unwrap().parse().unwrap(),
        },
        signature: h["signature"].as_str().unwrap().parse().unwrap(),
    };
    let proof = InclusionProof {
        header,
        index: view["proof"]["index"].as_u64().unwrap() as u32,
        path: view["proof"]["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| *p.as_str().unwrap().parse::<TxHash>().unwrap().as_bytes())
            .collect(),
    };
    (proof, view)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_flow_then_kill_9_mid_stream_and_restart() {
    let db = PgDatabase::new().await;
    let env = Env::new(&db.url);
    let process = env.start().await;
    let token = env.token().await;
    let (issuer, alice, bob, carol) = (key(1), key(2), key(3), key(4));

    // Issue, transfer, lock/claim, lock/refund.
    let setup = [
        sign(
            &issuer,
            0,
            TxBody::RegisterAsset {
                code: eur(),
                scale: Scale::new(2).unwrap(),
            },
        ),
        sign(
            &issuer,
            1,
            TxBody::Issue {
                asset: eur(),
                to: alice.address(),
                amount: Amount::from_minor_units(1_000_000),
            },
        ),
        sign(
            &issuer,
            2,
            TxBody::Issue {
                asset: eur(),
                to: carol.address(),
                amount: Amount::from_minor_units(5_000),
            },
        ),
        sign(&alice, 0, transfer(bob.address(), 10_000)),
    ];
    for tx in &setup {
        let (status, body) = process.submit(&token, tx).await.unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let secret = [5u8; 32];
    let lock = sign(
        &alice,
        1,
        TxBody::HtlcLock {
            asset: eur(),
            recipient: bob.address(),
            amount: Amount::from_minor_units(777),
            hashlock: Hashlock::of_preimage(&secret),
            expires_at_ms: now_ms() + 120_000,
        },
    );
    let lock_id = LockId::from(lock.transaction.hash());
    assert_eq!(process.submit(&token, &lock).await.unwrap().0, 201);
    let claim = sign(
        &bob,
        0,
        TxBody::HtlcClaim {
            lock_id,
            preimage: Preimage::new(secret.to_vec()).unwrap(),
        },
    );
    assert_eq!(process.submit(&token, &claim).await.unwrap().0, 201);
    let short = sign(
        &carol,
        0,
        TxBody::HtlcLock {
            asset: eur(),
            recipient: bob.address(),
            amount: Amount::from_minor_units(100),
            hashlock: Hashlock::of_preimage(&[6; 32]),
            expires_at_ms: now_ms() + 300,
        },
    );
    let short_id = LockId::from(short.transaction.hash());
    assert_eq!(process.submit(&token, &short).await.unwrap().0, 201);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let refund = sign(&carol, 1, TxBody::HtlcRefund { lock_id: short_id });
    assert_eq!(process.submit(&token, &refund).await.unwrap().0, 201);
    let (_, htlc) = process
        .get(&format!("/v1/ledger/htlcs/{short_id}"), &token)
        .await;
    assert_eq!(htlc["status"], "refunded");

    // The claim's inclusion proof, checked with ledger-core against the block key alone.
    let (proof, view) = proof_of(&process, &token, claim.transaction.hash()).await;
    let returned: lockgate::dto::SignedTransactionDto =
        serde_json::from_value(view["transaction"].clone()).unwrap();
    proof
        .verify(&returned.to_domain().unwrap(), &[env.block_key.address()])
        .unwrap();

    // A stream of submissions from four senders; kill -9 in the middle.
    let senders: Vec<_> = (10..14).map(key).collect();
    for (i, sender) in senders.iter().enumerate() {
        let tx = sign(&alice, 2 + i as u64, transfer(sender.address(), 50_000));
        assert_eq!(process.submit(&token, &tx).await.unwrap().0, 201);
    }
    let acknowledged = Arc::new(Mutex::new(Vec::<(TxHash, ledger_core::Address, u64)>::new()));
    let process = Arc::new(Mutex::new(process));
    let base = process.lock().await.base.clone();
    let mut streams = Vec::new();
    for sender in senders.clone() {
        let acknowledged = acknowledged.clone();
        let token = token.clone();
        let base = base.clone();
        streams.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for nonce in 0..10_000u64 {
                let tx = sign(&sender, nonce, transfer(key(20).address(), 1));
                let body =
                    serde_json::to_value(lockgate::dto::SignedTransactionDto::from_domain(&tx))
                        .unwrap();
                let sent = http
                    .post(format!("{base}/v1/ledger/transactions"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == 201 => {
                        acknowledged.lock().await.push((
                            tx.transaction.hash(),
                            sender.address(),
                            nonce,
                        ));
                    }
                    _ => return,
                }
            }
        }));
    }
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if acknowledged.lock().await.len() >= 60 {
            break;
        }
    }
    process.lock().await.kill9().await;
    for stream in streams {
        stream.await.unwrap();
    }
    let acknowledged = acknowledged.lock().await.clone();
    assert!(acknowledged.len() >= 60);

    // Restart on the same database.
    let process = env.start().await;
    for _ in 0..100 {
        if process.is_producer().await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (hash, _, _) in &acknowledged {
        let (status, _) = process
            .get(&format!("/v1/ledger/transactions/{hash}"), &token)
            .await;
        assert_eq!(status, 200, "acknowledged transaction {hash} lost");
    }
    // Nothing applied twice: per sender, committed transactions are exactly
    // nonces 0..next_nonce, once each; acknowledged ones are among them.
    let pool = db.pool().await;
    for sender in &senders {
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT nonce FROM transactions WHERE sender = $1 ORDER BY nonce")
                .bind(sender.address().as_bytes().to_vec())
                .fetch_all(&pool)
                .await
                .unwrap();
        let nonces: Vec<u64> = rows.iter().map(|(n,)| *n as u64).collect();
        assert_eq!(
            nonces,
            (0..nonces.len() as u64).collect::<Vec<_>>(),
            "gap or duplicate"
        );
        let (_, account) = process
            .get(&format!("/v1/ledger/accounts/{}", sender.address()), &token)
            .await;
        assert_eq!(account["nextNonce"], nonces.len().to_string());
        let acked: BTreeSet<u64> = acknowledged
            .iter()
            .filter(|(_, s, _)| *s == sender.address())
            .map(|(_, _, n)| *n)
            .collect();
        assert!(acked.iter().all(|n| (*n as usize) < nonces.len()));
        // The stream continues where the ledger is.
        let next = sign(sender, nonces.len() as u64, transfer(key(20).address(), 1));
        assert_eq!(process.submit(&token, &next).await.unwrap().0, 201);
    }
    let (held, supply): (String, String) = sqlx::query_as(
        "SELECT (SELECT sum(amount) FROM balances WHERE asset = 'EUR')::text, (SELECT supply FROM assets WHERE code = 'EUR')::text",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(held, supply);
    pool.close().await;

    // The export verifies offline with `lockgate verify`; a tampered one does not.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chain.ndjson");
    process.export(&token, &file).await;
    let (ok, report) = env.verify(&file).await;
    assert!(ok, "{report}");
    assert!(report.starts_with("OK: chain 4201 intact"), "{report}");
    let text = std::fs::read_to_string(&file).unwrap();
    let tampered = dir.path().join("tampered.ndjson");
    std::fs::write(
        &tampered,
        text.replacen("\"amount\":\"10000\"", "\"amount\":\"90000\"", 1),
    )
    .unwrap();
    let (ok, report) = env.verify(&tampered).await;
    assert!(!ok, "a tampered export passed: {report}");
    assert!(report.starts_with("FAIL: line "), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_block_producer_per_database_and_takeover_after_kill_9() {
    let db = PgDatabase::new().await;
    let env = Env::new(&db.url);
    let token = env.token().await;
    let first = env.start().await;
    let second = env.start().await;
    for _ in 0..100 {
        if first.is_producer().await || second.is_producer().await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give the other one time to (wrongly) take the role too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let producers = (first.is_producer().await, second.is_producer().await);
    assert!(
        producers.0 ^ producers.1,
        "exactly one producer expected, got {producers:?}"
    );
    let (mut leader, follower) = if producers.0 {
        (first, second)
    } else {
        (second, first)
    };

    let issuer = key(1);
    let register = sign(
        &issuer,
        0,
        TxBody::RegisterAsset {
            code: eur(),
            scale: Scale::new(2).unwrap(),
        },
    );
    let (status, body) = follower.submit(&token, &register).await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "urn:lockgate:problem:not-block-producer");
    // It says when to retry.
    let response = follower
        .http
        .post(format!("{}/v1/ledger/transactions", follower.base))
        .bearer_auth(&token)
        .json(
            &serde_json::to_value(lockgate::dto::SignedTransactionDto::from_domain(&register))
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(leader.submit(&token, &register).await.unwrap().0, 201);
    // The follower serves reads of what the leader wrote.
    let (status, blocks) = follower.get("/v1/ledger/blocks", &token).await;
    assert_eq!(status, 200);
    assert_eq!(blocks["items"].as_array().unwrap().len(), 1);

    leader.kill9().await;
    let mut took_over = false;
    for _ in 0..150 {
        if follower.is_producer().await {
            took_over = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(took_over, "the follower did not take over within 15 s");
    let issue = sign(
        &issuer,
        1,
        TxBody::Issue {
            asset: eur(),
            to: key(2).address(),
            amount: Amount::from_minor_units(5),
        },
    );
    let (status, body) = follower.submit(&token, &issue).await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["blockHeight"], 1,
        "the new producer continues the same chain"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chain.ndjson");
    follower.export(&token, &file).await;
    let (ok, report) = env.verify(&file).await;
    assert!(ok, "{report}");
}

/// The README's first command: `lockgate serve` with no configuration at all
/// runs on an embedded SQLite file in ./lockgate-data, listens on
/// 127.0.0.1:8080, says so, and `lockgate token` in the same directory gives
/// a token it accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_no_configuration_runs_on_embedded_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let clean = |command: &mut tokio::process::Command| {
        for (name, _) in std::env::vars() {
            if name.starts_with("LOCKGATE_") || name == "DATABASE_URL" {
                command.env_remove(name);
            }
        }
        command
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
    };
    let mut serve = tokio::process::Command::new(binary());
    serve.arg("serve").stdout(std::process::Stdio::piped());
    clean(&mut serve);
    let mut child = serve.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut printed = Vec::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await
    {
        printed.push(line);
        if printed.len() == 4 {
            break;
        }
    }
    let text = printed.join("\n");
    // The address first (the listener is bound before start-up), then the
    // line that says it serves.
    assert!(
        text.starts_with(
            "lockgate starting on http://127.0.0.1:8080 (embedded SQLite in lockgate-data"
        ),
        "{text}"
    );
    assert!(
        printed.get(1).is_some_and(|line| line.starts_with(
            "lockgate listening on http://127.0.0.1:8080 (embedded SQLite in lockgate-data"
        )),
        "{text}"
    );
    assert!(
        text.contains("lockgate token"),
        "it says how to get a token: {text}"
    );
    assert!(dir.path().join("lockgate-data/lockgate.db").exists());

    let mut token = tokio::process::Command::new(binary());
    token.arg("token");
    clean(&mut token);
    let output = token.output().await.unwrap();
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let response = reqwest::Client::new()
        .get("http://127.0.0.1:8080/v1/ledger/blocks")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

/// A cross-ledger transfer survives `kill -9`: the gateway (connector
/// between its two ledgers) dies with both locks in place; after the
/// restart the engine picks the transfer up from the database, sees the
/// recipient's claim, and claims the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_resumes_after_kill_9() {
    let db = PgDatabase::new().await;
    let connector_secret = ledger_core::hash::sha256(b"e2e-connector");
    let connector = ledger_core::SigningKey::from_bytes(connector_secret)
        .unwrap()
        .address();
    let env = Env::new(&db.url).with_config(&format!(
        "[[extra_ledgers]]\nchain_id = 4202\nblock_key = \"0x{}\"\nbatch_wait_ms = 1\n\n\
         [transfers]\nconnector_key = \"0x{}\"\ntick_ms = 100\nreaction_ms_max = 1000\ncommit_ms_max = 500\n\
         claim_window_ms = 20000\nsafety_margin_ms = 500\n",
        hex::encode(ledger_core::hash::sha256(b"e2e-second-ledger")),
        hex::encode(connector_secret),
    ));
    let mut process = env.start().await;
    let token = env.token().await;
    let target = ledger_core::ChainId::new(4202).unwrap();
    let (issuer, alice, bob) = (key(1), key(2), key(3));
    let on_target = |key: &ledger_core::SigningKey, nonce, body| sign_on(target, key, nonce, body);
    for tx in [
        sign(
            &issuer,
            0,
            TxBody::RegisterAsset {
                code: eur(),
                scale: Scale::new(2).unwrap(),
            },
        ),
        sign(
            &issuer,
            1,
            TxBody::Issue {
                asset: eur(),
                to: alice.address(),
                amount: Amount::from_minor_units(1_000),
            },
        ),
        on_target(
            &issuer,
            0,
            TxBody::RegisterAsset {
                code: eur(),
                scale: Scale::new(2).unwrap(),
            },
        ),
        on_target(
            &issuer,
            1,
            TxBody::Issue {
                asset: eur(),
                to: connector,
                amount: Amount::from_minor_units(10_000),
            },
        ),
    ] {
        let (status, body) = process.submit(&token, &tx).await.unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let secret = [0x77u8; 32];
    let hashlock = Hashlock::of_preimage(&secret);
    let response = process
        .http
        .post(format!("{}/v1/transfers", process.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "sourceChainId": "4201", "targetChainId": "4202", "sourceAsset": "EUR", "targetAsset": "EUR",
            "amount": "300", "sender": alice.address().to_string(), "recipient": bob.address().to_string(),
            "hashlock": hashlock.to_string(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let view: serde_json::Value = response.json().await.unwrap();
    let id = view["id"].as_str().unwrap().to_string();
    let lock = sign(
        &alice,
        0,
        TxBody::HtlcLock {
            asset: eur(),
            recipient: connector,
            amount: Amount::from_minor_units(300),
            hashlock,
            expires_at_ms: view["sourceExpiresAtMs"].as_str().unwrap().parse().unwrap(),
        },
    );
    assert_eq!(process.submit(&token, &lock).await.unwrap().0, 201);
    let wait = |process: &Process, state: &'static str| {
        let token = token.clone();
        let id = id.clone();
        let http = process.http.clone();
        let base = process.base.clone();
        async move {
            for _ in 0..300 {
                let view: serde_json::Value = http
                    .get(format!("{base}/v1/transfers/{id}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if view["state"] == state {
                    return view;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("transfer never reached {state}");
        }
    };
    let view = wait(&process, "target_locked").await;
    let target_lock: LockId = view["targetLockId"].as_str().unwrap().parse().unwrap();

    // The gateway dies with both locks in place.
    process.kill9().await;
    let process = env.start().await;
    // The recipient claims on the target; the restarted engine claims the source.
    let claim = on_target(
        &bob,
        0,
        TxBody::HtlcClaim {
            lock_id: target_lock,
            preimage: Preimage::new(secret.to_vec()).unwrap(),
        },
    );
    let (status, body) = process.submit(&token, &claim).await.unwrap();
    assert_eq!(status, 201, "{body}");
    let view = wait(&process, "completed").await;
    let kinds: Vec<&str> = view["events"]
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
    let (_, account) = process
        .get(&format!("/v1/ledger/accounts/{connector}"), &token)
        .await;
    assert_eq!(
        account["balances"][0]["amount"], "300",
        "the connector was paid on the source"
    );
}

/// The database restarts under load: while it is down, `/readyz` answers 503
/// and submissions answer 503 with `Retry-After` (never 500); once it is back
/// the gateway recovers by itself (readiness, the producer role, commits),
/// and every acknowledged transaction is in the ledger, each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_under_load_loses_no_acknowledged_transaction() {
    let server = PrivatePostgres::start();
    server.create_database("lockgate").await;
    let env = Env::new(&server.url("lockgate"));
    let process = Arc::new(env.start().await);
    let token = Arc::new(env.token().await);
    let issuer = key(1);
    let senders: Vec<u64> = (10..16).collect();
    let register = sign(
        &issuer,
        0,
        TxBody::RegisterAsset {
            code: eur(),
            scale: Scale::new(2).unwrap(),
        },
    );
    assert_eq!(process.submit(&token, &register).await.unwrap().0, 201);
    for (i, s) in senders.iter().enumerate() {
        let issue = sign(
            &issuer,
            i as u64 + 1,
            TxBody::Issue {
                asset: eur(),
                to: key(*s).address(),
                amount: Amount::from_minor_units(1_000_000),
            },
        );
        assert_eq!(process.submit(&token, &issue).await.unwrap().0, 201);
    }

    // Load: each sender submits transfers one after the other, retrying the
    // same signed transaction on 503 or a broken connection until it is
    // acknowledged (a retry of a committed one answers like the first time).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let statuses = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, u64>::new()));
    let mut workers = Vec::new();
    for s in senders.clone() {
        let (process, token, stop, statuses) = (
            process.clone(),
            token.clone(),
            stop.clone(),
            statuses.clone(),
        );
        workers.push(tokio::spawn(async move {
            let sender = key(s);
            let mut acknowledged = Vec::new();
            let mut nonce = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let tx = sign(&sender, nonce, transfer(key(99).address(), 1));
                loop {
                    match process.submit(&token, &tx).await {
                        Ok((201, _)) => {
                            *statuses.lock().await.entry(201).or_default() += 1;
                            break;
                        }
                        Ok((status, body)) => {
                            *statuses.lock().await.entry(status).or_default() += 1;
                            assert_eq!(status, 503, "{body}");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        // The process never dies here; a connection cut
                        // mid-request is retried like a 503.
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
                acknowledged.push(tx.transaction.hash());
                nonce += 1;
            }
            (s, acknowledged)
        }));
    }
    let ready = |process: Arc<Process>| async move {
        process
            .http
            .get(format!("{}/readyz", process.base))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    // Some load first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while statuses.lock().await.get(&201).copied().unwrap_or(0) < 100 {
        assert!(tokio::time::Instant::now() < deadline, "no load");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    server.stop();
    let response = process
        .http
        .get(format!("{}/readyz", process.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "readiness with the database down");
    assert_eq!(response.headers()["retry-after"], "1");
    let down: serde_json::Value = response.json().await.unwrap();
    assert_eq!(down["type"], "urn:lockgate:problem:not-ready");
    // A submission while it is down: 503 with Retry-After.
    let probe = sign(&key(50), 0, transfer(key(99).address(), 1));
    let body =
        serde_json::to_value(lockgate::dto::SignedTransactionDto::from_domain(&probe)).unwrap();
    let response = process
        .http
        .post(format!("{}/v1/ledger/transactions", process.base))
        .bearer_auth(token.as_str())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    tokio::time::sleep(Duration::from_secs(2)).await;

    server.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while ready(process.clone()).await != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready again within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Commits resume: the load goes on for a while after the restart.
    let after_restart = statuses.lock().await.get(&201).copied().unwrap_or(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while statuses.lock().await.get(&201).copied().unwrap_or(0) < after_restart + 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "commits did not resume after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for worker in workers {
        acknowledged.push(
            tokio::time::timeout(Duration::from_secs(60), worker)
                .await
                .expect("a worker hung")
                .unwrap(),
        );
    }
    let statuses = statuses.lock().await.clone();
    assert!(
        statuses.keys().all(|s| *s == 201 || *s == 503),
        "only 201 and 503: {statuses:?}"
    );
    assert!(statuses.get(&503).copied().unwrap_or(0) > 0, "{statuses:?}");

    // Every acknowledged transaction is in the ledger, and nothing else:
    // each sender's nonce and balance are exactly what was acknowledged.
    let mut total = 0u64;
    for (s, hashes) in &acknowledged {
        for hash in hashes {
            let (status, _) = process
                .get(&format!("/v1/ledger/transactions/{hash}"), &token)
                .await;
            assert_eq!(status, 200, "acknowledged {hash} is missing");
        }
        let (status, account) = process
            .get(
                &format!("/v1/ledger/accounts/{}", key(*s).address()),
                &token,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(account["nextNonce"], hashes.len().to_string(), "{account}");
        total += hashes.len() as u64;
    }
    let (_, recipient) = process
        .get(
            &format!("/v1/ledger/accounts/{}", key(99).address()),
            &token,
        )
        .await;
    assert_eq!(
        recipient["balances"][0]["amount"],
        total.to_string(),
        "{recipient}"
    );
}

/// Secrets given to the gateway (block key, connector key, SATP identity
/// key, JWT secret; the same keys from keystore files and those files'
/// passwords) and the bearer tokens it is sent never reach its log, even at
/// `trace` level, through start-up, submissions, a refused token, the probes
/// and the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_log() {
    let db = PgDatabase::new().await;
    let connector = hex::encode(ledger_core::hash::sha256(b"log-test-connector-key"));
    let satp = hex::encode(ledger_core::hash::sha256(b"log-test-satp-key"));
    let log = tempfile::NamedTempFile::new().unwrap();
    let env = Env::new(&db.url)
        .with_vars(&[
            ("LOCKGATE_CONNECTOR_KEY", &format!("0x{connector}")),
            ("LOCKGATE_SATP_KEY", &format!("0x{satp}")),
            ("RUST_LOG", "trace"),
        ])
        .log_to(log.path().to_path_buf());
    let process = env.start().await;
    let token = env.token().await;
    let register = sign(
        &key(1),
        0,
        TxBody::RegisterAsset {
            code: eur(),
            scale: Scale::new(2).unwrap(),
        },
    );
    assert_eq!(process.submit(&token, &register).await.unwrap().0, 201);
    let wrong = format!("{token}x");
    assert_eq!(process.get("/v1/ledger/blocks", &wrong).await.0, 401);
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(process.get(path, "").await.0, 200, "{path}");
    }
    drop(process);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The same keys again, from keystore files whose passwords come from
    // the environment (named by the file for the connector key, given
    // directly for the block and SATP keys); a trace-level start-up and a
    // submission log nothing of the passwords or the decrypted keys.
    let dir = tempfile::tempdir().unwrap();
    let block_key = hex::encode(ledger_core::hash::sha256(b"e2e-block-key"));
    let passwords = [
        "block-keystore-pw-0d3c",
        "connector-keystore-pw-8e21",
        "satp-keystore-pw-6b7a",
    ];
    let mut files = Vec::new();
    for (name, key, password) in [
        ("block", &block_key, passwords[0]),
        ("connector", &connector, passwords[1]),
        ("satp", &satp, passwords[2]),
    ] {
        let file = dir.path().join(format!("{name}.json"));
        env.run_with(
            &[
                "keystore",
                "encrypt",
                "--key-env",
                "KEY_IN",
                "--password-env",
                "PW_IN",
                "--out",
                file.to_str().unwrap(),
            ],
            &[("KEY_IN", key.as_str()), ("PW_IN", password)],
        )
        .await;
        files.push(file.to_str().unwrap().to_string());
    }
    let mut env = env;
    env.without_var("LOCKGATE_BLOCK_KEY");
    env.without_var("LOCKGATE_CONNECTOR_KEY");
    env.without_var("LOCKGATE_SATP_KEY");
    env.write_config(&format!(
        "[transfers]\nconnector_keystore = \"{}\"\nconnector_keystore_password_env = \"CONNECTOR_KEYSTORE_PW\"\n",
        files[1]
    ));
    let process = env
        .start_with_env(&[
            ("LOCKGATE_BLOCK_KEYSTORE", &files[0]),
            ("LOCKGATE_BLOCK_KEYSTORE_PASSWORD", passwords[0]),
            ("CONNECTOR_KEYSTORE_PW", passwords[1]),
            ("LOCKGATE_SATP_KEYSTORE", &files[2]),
            ("LOCKGATE_SATP_KEYSTORE_PASSWORD", passwords[2]),
        ])
        .await;
    let transfer = sign(
        &key(1),
        1,
        TxBody::Issue {
            asset: eur(),
            to: key(2).address(),
            amount: Amount::from_minor_units(5),
        },
    );
    assert_eq!(process.submit(&token, &transfer).await.unwrap().0, 201);
    drop(process);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let text = std::fs::read_to_string(log.path()).unwrap().to_lowercase();
    assert!(text.lines().count() > 50, "a trace-level log was written");
    for password in passwords {
        assert!(
            !text.contains(password),
            "a keystore password is in the log"
        );
    }
    for (name, secret) in [
        ("block key", block_key.as_str()),
        ("connector key", connector.as_str()),
        ("SATP identity key", satp.as_str()),
        ("JWT secret", env.jwt_secret_hex.as_str()),
    ] {
        assert!(
            !text.contains(&secret.to_lowercase()),
            "the {name} is in the log"
        );
    }
    // The signature part of a token is what makes it a credential.
    let signature = token.rsplit('.').next().unwrap().to_lowercase();
    assert!(!text.contains(&signature), "a bearer token is in the log");
}

/// A log filter that names a module shows every line of that module: with
/// `RUST_LOG=warn,lockgate::store=debug`, each committed block's `commit
/// timeline` line. (With the filter attached to the log layer, sqlx's check
/// of whether to log each statement, answered no and not followed by an
/// event, made tracing-subscriber drop the store's next line:
/// tokio-rs/tracing#2519.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_filter_naming_a_module_shows_all_its_lines() {
    let db = PgDatabase::new().await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let env = Env::new(&db.url)
        .with_vars(&[("RUST_LOG", "warn,lockgate::store=debug")])
        .log_to(log.path().to_path_buf());
    let process = env.start().await;
    let token = env.token().await;
    let issuer = key(1);
    let register = sign(
        &issuer,
        0,
        TxBody::RegisterAsset {
            code: eur(),
            scale: Scale::new(2).unwrap(),
        },
    );
    assert_eq!(process.submit(&token, &register).await.unwrap().0, 201);
    // One at a time: each in a block of its own.
    for nonce in 1..=4 {
        let issue = sign(
            &issuer,
            nonce,
            TxBody::Issue {
                asset: eur(),
                to: key(2).address(),
                amount: Amount::from_minor_units(100),
            },
        );
        assert_eq!(process.submit(&token, &issue).await.unwrap().0, 201);
    }
    drop(process);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(log.path()).unwrap();
    let timelines = text
        .lines()
        .filter(|line| line.contains("commit timeline"))
        .count();
    assert_eq!(timelines, 5, "one line per block:\n{text}");
    assert!(
        !text.contains("lockgate::sequencer"),
        "a module the filter does not name stays at warn:\n{text}"
    );
}
