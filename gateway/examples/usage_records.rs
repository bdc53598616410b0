//! Writes a benchmark's worth of signed usage records, and the registry and
//! agreements they need:
//!
//! ```text
//! cargo run --release -p lockgate --example usage_records -- RECORDS OPERATORS CHAIN_ID OUT_DIR
//! ```
//!
//! `OUT_DIR/operators.json` (for `POST /v1/settlement/operators`, tenant
//! `bench`), `OUT_DIR/agreements.json` (for `POST /v1/settlement/agreements`,
//! one per ordered pair of operators), `OUT_DIR/records.csv` (the bulk
//! import's CSV: RECORDS rows spread over the pairs, each pair's sequence
//! numbers from 1, signed by the sending operator's generated key, with the
//! EIP-712 domain of the ledger CHAIN_ID). Keys are derived from fixed
//! seeds: test keys, not secrets.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::io::Write;

use ledger_core::settlement::record::{Rate, ServiceLine, UsageRecord, discount_of};
use ledger_core::settlement::typed::record_digest;
use ledger_core::settlement::{Service, Tadig};
use ledger_core::{AssetCode, ChainId, SigningKey};
use lockgate::settlement::import::{CSV_HEADER, csv_line};

const JAN_2026: u64 = 1_767_225_600_000;
const FEB_2026: u64 = JAN_2026 + 31 * 86_400_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: usage_records RECORDS OPERATORS CHAIN_ID OUT_DIR";
    let records: u64 = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let operators: usize = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let chain = ChainId::new(args.get(3).and_then(|a| a.parse().ok()).expect(usage)).unwrap();
    let out = std::path::PathBuf::from(args.get(4).expect(usage));
    assert!((2..=100).contains(&operators), "2 to 100 operators");
    std::fs::create_dir_all(&out).unwrap();
    let parties: Vec<(Tadig, SigningKey)> = (0..operators)
        .map(|i| {
            let code: Tadig = format!("BEN{i:02}").parse().unwrap();
            let key = SigningKey::from_bytes(ledger_core::hash::sha256(
                format!("bench-operator-{i}").as_bytes(),
            ))
            .unwrap();
            (code, key)
        })
        .collect();
    let registry: Vec<serde_json::Value> = parties
        .iter()
        .map(|(code, key)| serde_json::json!({"tadig": code.to_string(), "name": format!("Bench operator {code}"), "address": key.address().to_string(), "tenant": "bench"}))
        .collect();
    std::fs::write(
        out.join("operators.json"),
        serde_json::to_string(&registry).unwrap(),
    )
    .unwrap();
    let rates = BTreeMap::from([
        (Service::VoiceMo, Rate { price: 10, per: 60 }),
        (Service::VoiceMt, Rate { price: 2, per: 60 }),
        (Service::Sms, Rate { price: 3, per: 1 }),
        (
            Service::Data,
            Rate {
                price: 150,
                per: 1_000_000,
            },
        ),
    ]);
    let mut pairs = Vec::new();
    let mut agreements = Vec::new();
    for (i, (sender, _)) in parties.iter().enumerate() {
        for (j, (recipient, _)) in parties.iter().enumerate() {
            if i != j {
                pairs.push((i, j));
                agreements.push(serde_json::json!({
                    "sender": sender.to_string(), "recipient": recipient.to_string(), "version": 1, "currency": "EUR",
                    "validFromMs": JAN_2026.to_string(), "validUntilMs": (FEB_2026 + 365 * 86_400_000).to_string(),
                    "rates": {"voice_mo": {"price": "10", "per": "60"}, "voice_mt": {"price": "2", "per": "60"}, "sms": {"price": "3", "per": "1"}, "data": {"price": "150", "per": "1000000"}},
                    "discountBps": 250,
                }));
            }
        }
    }
    std::fs::write(
        out.join("agreements.json"),
        serde_json::to_string(&agreements).unwrap(),
    )
    .unwrap();
    let mut csv = std::io::BufWriter::new(std::fs::File::create(out.join("records.csv")).unwrap());
    writeln!(csv, "{CSV_HEADER}").unwrap();
    let mut next = vec![1u64; pairs.len()];
    for n in 0..records {
        let p = (n as usize) % pairs.len();
        let (i, j) = pairs[p];
        let quantities = [
            (Service::VoiceMo, 1_000 + n % 100_000),
            (Service::VoiceMt, 500 + n % 50_000),
            (Service::Sms, n % 1_000),
            (Service::Data, 1_000_000 + n * 17),
        ];
        let lines: Vec<ServiceLine> = quantities
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
        let discount = discount_of(charges_total, 250).unwrap();
        let record = UsageRecord {
            sender: parties[i].0,
            recipient: parties[j].0,
            sequence: next[p],
            period_start_ms: JAN_2026,
            period_end_ms: FEB_2026,
            currency: AssetCode::new("EUR").unwrap(),
            agreement_version: 1,
            lines,
            charges_total,
            discount,
            total: charges_total - discount,
        };
        next[p] += 1;
        let signature = parties[i].1.sign_digest(&record_digest(chain, &record));
        writeln!(csv, "{}", csv_line(&record, &signature)).unwrap();
    }
    csv.flush().unwrap();
}
