//! Crash tests of the SATP protocol with real processes on real PostgreSQL
//! databases: for every message of a session and every fault point of the
//! side that handles it (`satp.fault_step`, see `lockgate::satp::fault`),
//! one gateway halts exactly there, is killed with SIGKILL and restarted
//! without the fault. Every transfer must then end completed on both
//! ledgers or, when it never got going, with nothing locked anywhere, and
//! the EUR on each ledger must be exactly what was issued there, moved or
//! not as a whole.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ledger_core::Hashlock;
use lockgate_e2e::satp::*;
use lockgate_e2e::*;
use serde_json::{Value, json};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Victim {
    A,
    B,
}

/// Messages of stage 1: a crash there fails the client's request.
const STAGE_ONE: [&str; 2] = ["transfer-proposal-msg", "transfer-commence-msg"];

async fn b_transfers(b: &Side) -> Vec<String> {
    let pool = b.db.pool().await;
    let rows: Vec<(String,)> = sqlx::query_as("SELECT state FROM transfers")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.into_iter().map(|(s,)| s).collect()
}

async fn wait_b(b: &Side, done: impl Fn(&[String]) -> bool, within: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let states = b_transfers(b).await;
        if done(&states) {
            return states;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "B's transfers never settled: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// True when `side`'s recovery log has an entry for `step` with `operation`.
async fn log_has(side: &Side, step: &str, operation: &str) -> bool {
    let pool = side.db.pool().await;
    let rows: Vec<(String,)> = sqlx::query_as("SELECT entry FROM satp_log")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.iter().any(|(entry,)| {
        let entry: Value = serde_json::from_str(entry).unwrap();
        entry["step"] == step && entry["operation"] == operation
    })
}

/// Waits for `process` to halt at the fault, kills it, starts it again
/// without the fault.
async fn restart(process: &mut Process, side: &Side, step: &str) -> Process {
    process
        .stdout_line(
            "lockgate fault-injection halted at",
            Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|| panic!("the gateway never halted at {step}"));
    process.kill9().await;
    side.start(&[]).await
}

async fn crash_at(victim: Victim, step: &str) {
    crash_with(victim, "LOCKGATE_SATP_FAULT_STEP", step).await;
}

/// B's claim of the sender's lock on A's ledger (the peer adapter's
/// write-ahead action), killed at each point: B must still be paid.
async fn crash_claim_at(point: &str) {
    crash_with(
        Victim::B,
        "LOCKGATE_FAULT_STEP",
        &format!("{point}:source-claim"),
    )
    .await;
}

async fn crash_with(victim: Victim, setting: &str, step: &str) {
    let net = Net::new().await;
    let fault = [(setting, step)];
    type Vars<'a> = &'a [(&'a str, &'a str)];
    let (a_vars, b_vars): (Vars, Vars) = match victim {
        Victim::A => (&fault, &[]),
        Victim::B => (&[], &fault),
    };
    let mut pb = net.b.start(b_vars).await;
    let mut pa = net.a.start(a_vars).await;
    net.issue(&pa, &pb).await;
    let preimage = [0x51u8; 32];
    let hashlock = Hashlock::of_preimage(&preimage);
    let message = step.split_once(':').unwrap().1;
    if setting == "LOCKGATE_SATP_FAULT_STEP" && STAGE_ONE.contains(&message) {
        // The client's request fails with the crash; nothing may stay locked.
        let http = pa.http.clone();
        let url = format!("{}/v1/transfers", pa.base);
        let token = net.a.token.clone();
        let body = json!({
            "sourceChainId": CHAIN_A.to_string(), "targetChainId": CHAIN_B.to_string(),
            "sourceAsset": "EUR", "targetAsset": "EUR", "amount": AMOUNT.to_string(),
            "sender": net.alice.address().to_string(), "recipient": net.bob.address().to_string(),
            "hashlock": hashlock.to_string(),
        });
        let request = tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "stage-one")
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        match victim {
            Victim::A => pa = restart(&mut pa, &net.a, step).await,
            Victim::B => pb = restart(&mut pb, &net.b, step).await,
        }
        let status = request.await.unwrap();
        assert!(
            status.is_err() || status.as_ref().is_ok_and(|s| *s == 503),
            "{status:?}"
        );
        // B unwinds whatever it accepted: cancelled once the sender's lock is overdue.
        let states = wait_b(
            &net.b,
            |s| s.iter().all(|s| s == "cancelled"),
            Duration::from_secs(15),
        )
        .await;
        assert!(states.len() <= 1, "{states:?}");
        let (_, page) = pa.get("/v1/transfers", &net.a.token).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 0, "{page}");
        assert_eq!(
            balance(&pa, &net.a.token, CHAIN_A, net.alice.address()).await,
            ISSUED_A
        );
        assert_eq!(
            balance(&pb, &net.b.token, CHAIN_B, net.b.connector.address()).await,
            ISSUED_B
        );
        return;
    }

    let created = net.create(&pa, hashlock).await;
    let id = created["id"].as_str().unwrap().to_string();
    net.lock(&pa, &created, hashlock).await;
    let early = setting == "LOCKGATE_SATP_FAULT_STEP"
        && matches!(message, "lock-assert-msg" | "commit-prepare-msg");
    if early {
        match victim {
            Victim::A => pa = restart(&mut pa, &net.a, step).await,
            Victim::B => pb = restart(&mut pb, &net.b, step).await,
        }
    }
    let locked = net
        .wait(&pa, &id, "target_locked", Duration::from_secs(20))
        .await;
    let claim = net.bob_claim(&locked, &preimage);
    // A restarted B takes its block producer role back once PostgreSQL has
    // dropped the killed process's session: until then it answers 503.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = pb.submit(&net.b.token, &claim).await.unwrap();
        if status == 503 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(status, 201, "{body}");
        break;
    }
    if !early {
        match victim {
            Victim::A => pa = restart(&mut pa, &net.a, step).await,
            Victim::B => pb = restart(&mut pb, &net.b, step).await,
        }
    }
    let done: Value = net
        .wait(&pa, &id, "completed", Duration::from_secs(20))
        .await;
    assert!(done["events"].as_array().unwrap().len() >= 5, "{done}");
    wait_b(
        &net.b,
        |s| s.len() == 1 && s[0] == "completed",
        Duration::from_secs(15),
    )
    .await;
    // Moved as a whole on both ledgers; nothing made or lost on either.
    assert_eq!(
        balance(&pa, &net.a.token, CHAIN_A, net.alice.address()).await,
        ISSUED_A - AMOUNT
    );
    assert_eq!(
        balance(&pa, &net.a.token, CHAIN_A, net.b.connector.address()).await,
        AMOUNT
    );
    assert_eq!(
        balance(&pb, &net.b.token, CHAIN_B, net.bob.address()).await,
        AMOUNT
    );
    assert_eq!(
        balance(&pb, &net.b.token, CHAIN_B, net.b.connector.address()).await,
        ISSUED_B - AMOUNT
    );
    // A restarted originating gateway ran RECOVER with its peer first.
    if victim == Victim::A {
        assert!(
            log_has(&net.a, "recover-success-msg", "done").await,
            "A's log shows no completed RECOVER"
        );
    }
    // The session closed on both sides, each with the 11 messages.
    for side in [&net.a, &net.b] {
        let pool = side.db.pool().await;
        let (status, count): (String, i64) = sqlx::query_as(
            "SELECT s.status, (SELECT COUNT(*) FROM satp_messages m WHERE m.session_id = s.session_id) FROM satp_sessions s",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        assert_eq!((status.as_str(), count), ("complete", 11));
    }
}

macro_rules! crash_tests {
    ($($name:ident: $victim:expr, $step:expr;)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                crash_at($victim, $step).await;
            }
        )*
    };
}

crash_tests! {
    a_after_write_ahead_of_the_proposal: Victim::A, "after-write-ahead:transfer-proposal-msg";
    a_after_sending_the_proposal: Victim::A, "after-send:transfer-proposal-msg";
    a_after_write_ahead_of_commence: Victim::A, "after-write-ahead:transfer-commence-msg";
    a_after_sending_commence: Victim::A, "after-send:transfer-commence-msg";
    a_after_write_ahead_of_lock_assert: Victim::A, "after-write-ahead:lock-assert-msg";
    a_after_sending_lock_assert: Victim::A, "after-send:lock-assert-msg";
    a_after_write_ahead_of_commit_prepare: Victim::A, "after-write-ahead:commit-prepare-msg";
    a_after_sending_commit_prepare: Victim::A, "after-send:commit-prepare-msg";
    a_after_write_ahead_of_commit_final: Victim::A, "after-write-ahead:commit-final-msg";
    a_after_sending_commit_final: Victim::A, "after-send:commit-final-msg";
    a_after_write_ahead_of_transfer_complete: Victim::A, "after-write-ahead:commit-transfer-complete-msg";
    a_after_sending_transfer_complete: Victim::A, "after-send:commit-transfer-complete-msg";
    b_after_receiving_the_proposal: Victim::B, "after-receive:transfer-proposal-msg";
    b_after_storing_the_proposal: Victim::B, "after-store:transfer-proposal-msg";
    b_after_receiving_commence: Victim::B, "after-receive:transfer-commence-msg";
    b_after_storing_commence: Victim::B, "after-store:transfer-commence-msg";
    b_after_receiving_lock_assert: Victim::B, "after-receive:lock-assert-msg";
    b_after_storing_lock_assert: Victim::B, "after-store:lock-assert-msg";
    b_after_receiving_commit_prepare: Victim::B, "after-receive:commit-prepare-msg";
    b_after_storing_commit_prepare: Victim::B, "after-store:commit-prepare-msg";
    b_after_receiving_commit_final: Victim::B, "after-receive:commit-final-msg";
    b_after_storing_commit_final: Victim::B, "after-store:commit-final-msg";
    b_after_receiving_transfer_complete: Victim::B, "after-receive:commit-transfer-complete-msg";
    b_after_storing_transfer_complete: Victim::B, "after-store:commit-transfer-complete-msg";
}

#[tokio::test]
async fn b_before_write_ahead_of_its_claim_on_a() {
    crash_claim_at("before-write-ahead").await;
}

#[tokio::test]
async fn b_after_write_ahead_of_its_claim_on_a() {
    crash_claim_at("after-write-ahead").await;
}

#[tokio::test]
async fn b_after_a_committed_its_claim() {
    crash_claim_at("after-submit").await;
}
