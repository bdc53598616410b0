//! `lockgate bench`, the load generator, against a gateway process on
//! PostgreSQL, at a size that runs in seconds: every phase runs, every
//! transfer is acknowledged, the baselines are measured in the same run, and
//! the end-of-run check (each account's balance and nonce against the
//! acknowledged transfers, the supply against what was issued, the balance
//! rows' sum against the supply) passes. No figure is asserted: this is a
//! test of the tool, not of the machine's speed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use lockgate_e2e::*;

#[tokio::test]
async fn the_load_generator_runs_every_phase_and_checks_the_ledger() {
    let db = PgDatabase::new().await;
    let env = Env::new(&db.url);
    // One tenant sending as fast as the gateway answers, as
    // scripts/bench-throughput runs it: no per-tenant rate limit.
    let gateway = env
        .start_with_env(&[("LOCKGATE_TENANT_REQUESTS_PER_S", "0")])
        .await;
    let token = env.token().await;
    let pid = gateway.child.id().unwrap().to_string();
    let json = env.data_dir.path().join("report.json");
    let stdout = env
        .run(&[
            "bench",
            "--url",
            &gateway.base,
            "--token",
            &token,
            "--accounts",
            "60",
            "--transfers",
            "300",
            "--connections",
            "4",
            "--batch-connections",
            "2",
            "--batch-size",
            "32",
            "--baseline-secs",
            "1",
            "--gateway-pid",
            &pid,
            "--database-url",
            &db.url,
            "--seed",
            "7",
            "--json",
            json.to_str().unwrap(),
        ])
        .await;
    for phase in ["single ", "single-hot ", "batch ", "batch-hot "] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(phase) && l.contains("300 committed, 0 refused")),
            "phase {phase:?} missing or incomplete:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("baseline: pgbench one-row INSERT"),
        "{stdout}"
    );
    assert!(stdout.contains("baseline: HTTP GET /healthz"), "{stdout}");
    assert!(stdout.contains("baseline: signature recovery"), "{stdout}");
    assert!(
        stdout.contains("check: 60 accounts' balances and nonces match"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["phases"].as_array().unwrap().len(), 4);
    assert_eq!(report["accounts_checked"].as_u64(), Some(60));
    // 60 accounts funded with 10^9 minor units each; transfers move, never create.
    assert_eq!(report["supply"], "60000000000");

    // What the check compared, read independently: 60 funded accounts plus
    // nothing else of the asset, and the senders' nonces add up to the
    // 1,200 acknowledged transfers.
    let pool = db.pool().await;
    let code: String = sqlx::query_scalar("SELECT code FROM assets WHERE code LIKE 'B%'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (rows, sum): (i64, String) =
        sqlx::query_as("SELECT count(*), sum(amount)::text FROM balances WHERE asset = $1")
            .bind(&code)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((rows, sum.as_str()), (60, "60000000000"));
    let transfers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transactions WHERE kind = 'Transfer'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(transfers, 1200);
}
