//! `lockgate records import`, the command, against a gateway process on
//! PostgreSQL: a CSV file of 3,000 signed usage records with one bad row is
//! streamed to the bulk import; the good rows are stored, the bad one is
//! reported by its line number and problem type, progress is shown, and the
//! exit status says some rows were refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use ledger_core::settlement::record::{Rate, ServiceLine, UsageRecord, discount_of};
use ledger_core::settlement::typed::record_digest;
use ledger_core::settlement::{Service, Tadig};
use ledger_core::{AssetCode, SigningKey};
use lockgate::settlement::import::{CSV_HEADER, csv_line};
use lockgate_e2e::*;

const JAN_2026: u64 = 1_767_225_600_000;
const FEB_2026: u64 = JAN_2026 + 31 * 86_400_000;

fn record(sequence: u64) -> UsageRecord {
    let rates = BTreeMap::from([
        (Service::VoiceMo, Rate { price: 10, per: 60 }),
        (Service::Sms, Rate { price: 3, per: 1 }),
    ]);
    let lines: Vec<ServiceLine> = [
        (Service::VoiceMo, 600 + sequence),
        (Service::Sms, sequence % 7),
    ]
    .into_iter()
    .map(|(service, quantity)| {
        let rate = rates[&service];
        ServiceLine {
            service,
            quantity,
            rate,
            charge: rate.charge(quantity).unwrap(),
        }
    })
    .collect();
    let charges_total: u128 = lines.iter().map(|l| l.charge).sum();
    let discount = discount_of(charges_total, 100).unwrap();
    UsageRecord {
        sender: "FRAF1".parse::<Tadig>().unwrap(),
        recipient: "DEUD2".parse::<Tadig>().unwrap(),
        sequence,
        period_start_ms: JAN_2026,
        period_end_ms: FEB_2026,
        currency: AssetCode::new("EUR").unwrap(),
        agreement_version: 1,
        lines,
        charges_total,
        discount,
        total: charges_total - discount,
    }
}

#[tokio::test]
async fn the_command_streams_a_file_and_reports_the_bad_rows() {
    let db = PgDatabase::new().await;
    let env = Env::new(&db.url);
    let process = env.start().await;
    let token = env.token().await;
    let fra = SigningKey::from_bytes(ledger_core::hash::sha256(b"e2e-fra")).unwrap();
    let deu = SigningKey::from_bytes(ledger_core::hash::sha256(b"e2e-deu")).unwrap();
    let post = |path: &'static str, body: serde_json::Value| {
        let request = process
            .http
            .post(format!("{}{path}", process.base))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                201,
                "{path}: {}",
                response.text().await.unwrap()
            );
        }
    };
    post("/v1/settlement/operators", serde_json::json!({"tadig": "FRAF1", "name": "F", "address": fra.address().to_string(), "tenant": "dev"})).await;
    post("/v1/settlement/operators", serde_json::json!({"tadig": "DEUD2", "name": "D", "address": deu.address().to_string(), "tenant": "other"})).await;
    post("/v1/settlement/agreements", serde_json::json!({
        "sender": "FRAF1", "recipient": "DEUD2", "version": 1, "currency": "EUR",
        "validFromMs": JAN_2026.to_string(), "validUntilMs": (FEB_2026 + 86_400_000).to_string(),
        "rates": {"voice_mo": {"price": "10", "per": "60"}, "sms": {"price": "3", "per": "1"}}, "discountBps": 100,
    }))
    .await;
    // 3,000 good rows; a bad one (its total off by one) on line 1,502.
    let mut lines = vec![CSV_HEADER.to_string()];
    for sequence in 1..=3_000u64 {
        let r = record(sequence);
        lines.push(csv_line(&r, &fra.sign_digest(&record_digest(chain(), &r))));
        if sequence == 1_500 {
            let mut bad = record(1_501);
            bad.total += 1;
            lines.push(csv_line(
                &bad,
                &fra.sign_digest(&record_digest(chain(), &bad)),
            ));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("january.csv");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let output = tokio::process::Command::new(binary())
        .args([
            "records",
            "import",
            file.to_str().unwrap(),
            "--url",
            &process.base,
            "--token",
            &token,
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "some rows refused: {stdout} {stderr}"
    );
    assert!(
        stdout.contains("line 1502: record-total-mismatch: total must be"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("3001 rows: 3000 imported, 1 refused"),
        "{stdout}"
    );
    assert!(stderr.contains("(100%)"), "progress is shown: {stderr}");
    // Stored: sequence 3,001 is next for a single submission.
    let r = record(3_001);
    let response = process
        .http
        .post(format!("{}/v1/settlement/records", process.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "record": lockgate::settlement::UsageRecordBody::from_domain(&r),
            "signature": fra.sign_digest(&record_digest(chain(), &r)).to_string(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // A file that imports cleanly exits 0.
    let clean = dir.path().join("february.ndjson");
    let r = record(3_002);
    let line = serde_json::json!({
        "record": lockgate::settlement::UsageRecordBody::from_domain(&r),
        "signature": fra.sign_digest(&record_digest(chain(), &r)).to_string(),
    });
    std::fs::write(&clean, format!("{line}\n")).unwrap();
    let status = tokio::process::Command::new(binary())
        .args([
            "records",
            "import",
            clean.to_str().unwrap(),
            "--url",
            &process.base,
            "--token",
            &token,
        ])
        .output()
        .await
        .unwrap()
        .status;
    assert!(status.success());
}
