//! Load generator for topology (b): two gateway processes (release build),
//! each on its own PostgreSQL database, and C concurrent clients each
//! running transfers end to end: `POST /v1/transfers` on A, the sender's
//! lock on A, the recipient's claim on B once A reports `target_locked`,
//! until A reports `completed`. Prints the time from the POST to
//! `completed` (median, p90, p99, max) and the completed transfers per
//! second of the whole run.
//!
//! ```text
//! scripts/bench-satp [TRANSFERS] [CONCURRENCY] [TICK_MS]
//! ```
//!
//! The clients poll A every 2 ms, so a latency includes up to 2 ms of
//! polling; every step a client takes (its lock, its claim) is included.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_core::{Amount, Hashlock, Preimage, SigningKey, TxBody};
use lockgate_e2e::satp::*;
use lockgate_e2e::*;
use serde_json::{Value, json};

const POLL_MS: u64 = 25;

fn arg(position: usize, default: u64) -> u64 {
    std::env::args()
        .nth(position)
        .map_or(default, |a| a.parse().expect("a number"))
}

async fn until(pa: &Process, token: &str, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, view) = pa.get(&format!("/v1/transfers/{id}"), token).await;
        assert_eq!(status, 200, "{view}");
        if view["state"] == state {
            return view;
        }
        assert!(
            view["state"] != "refunded"
                && view["state"] != "cancelled"
                && view["state"] != "failed",
            "{view}"
        );
        assert!(Instant::now() < deadline, "stuck: {view}");
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// One client: `count` transfers from its own sender to its own recipient.
async fn client(
    net: Arc<Net>,
    pa: Arc<Process>,
    pb: Arc<Process>,
    index: u64,
    count: u64,
) -> (Vec<Duration>, Vec<Duration>) {
    let sender: SigningKey = key(1_000 + index);
    let recipient: SigningKey = key(2_000 + index);
    let mut latencies = Vec::new();
    // The baseline, measured in the same run: one durable ledger
    // transaction over HTTP (the sender's lock, the recipient's claim).
    let mut commits = Vec::new();
    for n in 0..count {
        let preimage = ledger_core::hash::sha256(format!("load-{index}-{n}").as_bytes());
        let hashlock = Hashlock::of_preimage(&preimage);
        let started = Instant::now();
        let response = pa
            .http
            .post(format!("{}/v1/transfers", pa.base))
            .bearer_auth(&net.a.token)
            .header("Idempotency-Key", format!("load-{index}-{n}"))
            .json(&json!({
                "sourceChainId": CHAIN_A.to_string(), "targetChainId": CHAIN_B.to_string(),
                "sourceAsset": "EUR", "targetAsset": "EUR", "amount": "1",
                "sender": sender.address().to_string(), "recipient": recipient.address().to_string(),
                "hashlock": hashlock.to_string(),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let created: Value = response.json().await.unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        let expires: u64 = created["sourceExpiresAtMs"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let lock = on(
            CHAIN_A,
            &sender,
            n,
            TxBody::HtlcLock {
                asset: eur(),
                recipient: net.b.connector.address(),
                amount: Amount::from_minor_units(1),
                hashlock,
                expires_at_ms: expires,
            },
        );
        let submitted = Instant::now();
        let (status, body) = pa.submit(&net.a.token, &lock).await.unwrap();
        assert_eq!(status, 201, "{body}");
        commits.push(submitted.elapsed());
        let locked = until(&pa, &net.a.token, &id, "target_locked").await;
        let claim = on(
            CHAIN_B,
            &recipient,
            n,
            TxBody::HtlcClaim {
                lock_id: locked["targetLockId"].as_str().unwrap().parse().unwrap(),
                preimage: Preimage::new(preimage.to_vec()).unwrap(),
            },
        );
        let submitted = Instant::now();
        let (status, body) = pb.submit(&net.b.token, &claim).await.unwrap();
        assert_eq!(status, 201, "{body}");
        commits.push(submitted.elapsed());
        until(&pa, &net.a.token, &id, "completed").await;
        latencies.push(started.elapsed());
    }
    (latencies, commits)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::main]
async fn main() {
    let transfers = arg(1, 200);
    let concurrency = arg(2, 8).max(1);
    let tick_ms = arg(3, 200);
    let settings = format!(
        "tick_ms = {tick_ms}\nreaction_ms_max = 5000\ncommit_ms_max = 5000\n\
         claim_window_ms = 60000\nsafety_margin_ms = 5000\n"
    );
    let net = Arc::new(Net::new_with(&settings).await);
    let pb = Arc::new(net.b.start(&[("RUST_LOG", "error")]).await);
    let pa = Arc::new(net.a.start(&[("RUST_LOG", "error")]).await);
    net.issue(&pa, &pb).await;
    // Each client's sender holds EUR on A (nonce 0 of the issuer is the
    // registration, 1 alice's issue).
    let issuer = key(1);
    for index in 0..concurrency {
        let issue = on(
            CHAIN_A,
            &issuer,
            2 + index,
            TxBody::Issue {
                asset: eur(),
                to: key(1_000 + index).address(),
                amount: Amount::from_minor_units(1_000_000),
            },
        );
        let (status, body) = pa.submit(&net.a.token, &issue).await.unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let per_client = transfers.div_ceil(concurrency);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for index in 0..concurrency {
        tasks.push(tokio::spawn(client(
            net.clone(),
            pa.clone(),
            pb.clone(),
            index,
            per_client,
        )));
    }
    let mut latencies = Vec::new();
    let mut commits = Vec::new();
    for task in tasks {
        let (l, c) = task.await.unwrap();
        latencies.extend(l);
        commits.extend(c);
    }
    let wall = started.elapsed();
    latencies.sort();
    commits.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "two gateways, {} transfers, {concurrency} concurrent clients, engine tick {tick_ms} ms",
        latencies.len()
    );
    println!(
        "POST -> completed: median {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
    );
    let baseline = percentile(&commits, 0.5);
    println!(
        "baseline, same run: one durable ledger transaction over HTTP, median {:.1} ms (p99 {:.1} ms); \
         a two-gateway transfer takes {:.1}x that (median to median)",
        ms(baseline),
        ms(percentile(&commits, 0.99)),
        ms(percentile(&latencies, 0.5)) / ms(baseline).max(0.001),
    );
    println!(
        "throughput: {:.1} completed transfers/s over {:.1} s",
        latencies.len() as f64 / wall.as_secs_f64(),
        wall.as_secs_f64()
    );
}
