//! The worked example of roaming settlement (docs/settlement.md), as one
//! command:
//!
//! ```text
//! cargo run -p lockgate --example settlement_walkthrough
//! ```
//!
//! It starts a gateway in this process on a fresh embedded SQLite database
//! and drives its HTTP API like three operators and a clearing house would:
//! three operators (France, Germany, UK) and their agreements; a month of
//! weekly usage records between every pair, each signed by its sender
//! (EIP-712); one record disputed and resolved by a corrected record; every
//! other record accepted (counter-signed) and anchored on the built-in
//! ledger; the month closed with multilateral netting; the signed statements
//! printed and checked (each signature is the gateway's, the nets sum to
//! zero, the payments settle every position); every payment made through a
//! cross-ledger transfer (the payer locks on ledger 4201, the gateway pays
//! the payee on ledger 4202, the payee claims) until every statement shows
//! paid. `cargo test` runs it too.
//!
//! Keys are derived from fixed seeds: test keys, not secrets.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use ledger_core::SigningKey;
use ledger_core::settlement::Service;
use ledger_core::settlement::record::{Rate, ServiceLine, UsageRecord, discount_of};
use ledger_core::settlement::typed::{
    DisputeTerms, acceptance_digest, dispute_digest, record_digest,
};
use lockgate::auth::Scope;
use lockgate::settlement::UsageRecordBody;
use serde_json::{Value, json};

const DAY: u64 = 86_400_000;
const JAN_2026: u64 = 1_767_225_600_000;
const FEB_2026: u64 = JAN_2026 + 31 * DAY;

struct Party {
    tadig: &'static str,
    name: &'static str,
    key: SigningKey,
    token: String,
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "POST" => self.http.post(url).json(&body.unwrap_or(Value::Null)),
            _ => self.http.get(url),
        };
        let response = request.bearer_auth(token).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.call(method, path, token, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }
}

fn rates() -> BTreeMap<Service, Rate> {
    BTreeMap::from([
        (Service::VoiceMo, Rate { price: 12, per: 60 }),
        (Service::VoiceMt, Rate { price: 2, per: 60 }),
        (Service::Sms, Rate { price: 3, per: 1 }),
        (
            Service::Data,
            Rate {
                price: 200,
                per: 1_000_000,
            },
        ),
    ])
}

/// A week's record from `sender` to `recipient`, with usage scaled by `scale`.
fn weekly(sender: &Party, recipient: &Party, sequence: u64, week: u64, scale: u64) -> UsageRecord {
    let rates = rates();
    let lines: Vec<ServiceLine> = [
        (Service::VoiceMo, 180_000 * scale),
        (Service::VoiceMt, 90_000 * scale),
        (Service::Sms, 2_000 * scale),
        (Service::Data, 400_000_000 * scale),
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
    let discount = discount_of(charges_total, 300).unwrap();
    let start = JAN_2026 + week * 7 * DAY;
    UsageRecord {
        sender: sender.tadig.parse().unwrap(),
        recipient: recipient.tadig.parse().unwrap(),
        sequence,
        period_start_ms: start,
        period_end_ms: (start + 7 * DAY).min(FEB_2026),
        currency: ledger_core::AssetCode::new("EUR").unwrap(),
        agreement_version: 1,
        lines,
        charges_total,
        discount,
        total: charges_total - discount,
    }
}

fn euros(minor: &str) -> String {
    let n: i128 = minor.parse().unwrap();
    format!(
        "{}{}.{:02}",
        if n < 0 { "-" } else { "" },
        n.abs() / 100,
        n.abs() % 100
    )
}

/// The whole walkthrough; returns the statements.
async fn walkthrough(quiet: bool) -> Vec<Value> {
    let say = |text: String| {
        if !quiet {
            println!("{text}");
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = lockgate::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.ledger.batch_wait_ms = 1;
    // A second ledger the payees are paid on, the gateway as connector.
    config.extra_ledgers.push(lockgate::config::LedgerConfig {
        chain_id: 4202,
        batch_wait_ms: 1,
        ..Default::default()
    });
    config.transfers.tick_ms = 50;
    config.transfers.commit_ms_max = 500;
    config.transfers.reaction_ms_max = 500;
    config.transfers.claim_window_ms = 10_000;
    let app = lockgate::app::build(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = Api {
        base: format!("http://{}", listener.local_addr().unwrap()),
        http: reqwest::Client::new(),
    };
    let router = lockgate::api::router(app.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    while app.producer.sequencer().is_none() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let now = lockgate::sequencer::now_ms() / 1000;
    let mint = |tenant: &str, scopes: &[Scope]| {
        app.auth
            .mint("walkthrough", tenant, scopes, &[], now, 3600)
            .unwrap()
    };
    let party = |tadig, name, seed: &str, tenant| Party {
        tadig,
        name,
        key: SigningKey::from_bytes(ledger_core::hash::sha256(seed.as_bytes())).unwrap(),
        token: mint(
            tenant,
            &[
                Scope::SettlementRead,
                Scope::SettlementWrite,
                Scope::TransfersRead,
            ],
        ),
    };
    let parties = [
        party("FRAF1", "Visited France", "walkthrough-fra", "op-fra"),
        party("DEUD2", "Home Germany", "walkthrough-deu", "op-deu"),
        party("GBRCN", "United Kingdom", "walkthrough-gbr", "op-gbr"),
    ];
    let admin = mint("clearing-house", &[Scope::SettlementAdmin]);
    let chain = app.chain_id;

    say(format!(
        "Gateway at {} (primary ledger {chain}), statements signed by {}",
        api.base,
        app.connector.key.address()
    ));
    say("\n1. Operators and agreements (EUR, 3% discount)".into());
    for p in &parties {
        api.ok("POST", "/v1/settlement/operators", &admin, Some(json!({"tadig": p.tadig, "name": p.name, "address": p.key.address().to_string(), "tenant": format!("op-{}", &p.tadig[..3].to_lowercase())}))).await;
        say(format!(
            "   {} {:<16} signs as {}",
            p.tadig,
            p.name,
            p.key.address()
        ));
    }
    for s in &parties {
        for r in &parties {
            if s.tadig != r.tadig {
                api.ok("POST", "/v1/settlement/agreements", &admin, Some(json!({
                    "sender": s.tadig, "recipient": r.tadig, "version": 1, "currency": "EUR",
                    "validFromMs": JAN_2026.to_string(), "validUntilMs": (FEB_2026 + 365 * DAY).to_string(),
                    "rates": {"voice_mo": {"price": "12", "per": "60"}, "voice_mt": {"price": "2", "per": "60"}, "sms": {"price": "3", "per": "1"}, "data": {"price": "200", "per": "1000000"}},
                    "discountBps": 300,
                })))
                .await;
            }
        }
    }

    say("\n2. A month of weekly usage records, each signed by its sender".into());
    let mut submitted: Vec<(usize, usize, String, UsageRecord)> = Vec::new();
    for (si, s) in parties.iter().enumerate() {
        for (ri, r) in parties.iter().enumerate() {
            if si == ri {
                continue;
            }
            // Traffic differs by direction, so positions do not cancel out.
            let scale = 1 + ((si * 3 + ri) as u64 % 4);
            for week in 0..4 {
                let record = weekly(s, r, week + 1, week, scale);
                let signature = s.key.sign_digest(&record_digest(chain, &record));
                let answer = api
                    .ok("POST", "/v1/settlement/records", &s.token, Some(json!({"record": UsageRecordBody::from_domain(&record), "signature": signature.to_string()})))
                    .await;
                submitted.push((
                    si,
                    ri,
                    answer["recordHash"].as_str().unwrap().to_string(),
                    record,
                ));
            }
        }
    }
    say(format!(
        "   {} records submitted, e.g. {} -> {} week 1: total EUR {}",
        submitted.len(),
        submitted[0].3.sender,
        submitted[0].3.recipient,
        euros(&submitted[0].3.total.to_string())
    ));

    say("\n3. DEUD2 disputes FRAF1's week 2; FRAF1 corrects it".into());
    let (fra, deu) = (&parties[0], &parties[1]);
    let disputed = submitted
        .iter()
        .position(|(s, r, _, rec)| *s == 0 && *r == 1 && rec.sequence == 2)
        .unwrap();
    let (_, _, hash, original) = submitted.remove(disputed);
    let reason = "data volume double-counted on 2026-01-10";
    let mut hash_bytes = [0u8; 32];
    hex::decode_to_slice(hash.trim_start_matches("0x"), &mut hash_bytes).unwrap();
    let terms = DisputeTerms {
        record_hash: hash_bytes,
        recipient: "DEUD2",
        reason,
        disputed_amount: 50_000,
        evidence_hash: ledger_core::hash::sha256(b"CDR extract, 2026-01-10"),
    };
    api.ok("POST", &format!("/v1/settlement/records/{hash}/dispute"), &deu.token, Some(json!({
        "reason": reason, "disputedAmount": "50000", "evidenceHash": format!("0x{}", hex::encode(terms.evidence_hash)),
        "signature": deu.key.sign_digest(&dispute_digest(chain, &terms)).to_string(),
    })))
    .await;
    say(format!(
        "   disputed: EUR {} of EUR {} ({reason})",
        euros("50000"),
        euros(&original.total.to_string())
    ));
    let mut corrected = original.clone();
    let data = corrected
        .lines
        .iter_mut()
        .find(|l| l.service == Service::Data)
        .unwrap();
    data.quantity /= 2;
    data.charge = data.rate.charge(data.quantity).unwrap();
    corrected.charges_total = corrected.lines.iter().map(|l| l.charge).sum();
    corrected.discount = discount_of(corrected.charges_total, 300).unwrap();
    corrected.total = corrected.charges_total - corrected.discount;
    let signature = fra.key.sign_digest(&record_digest(chain, &corrected));
    let answer = api
        .ok("POST", "/v1/settlement/records", &fra.token, Some(json!({"record": UsageRecordBody::from_domain(&corrected), "signature": signature.to_string(), "replaces": hash})))
        .await;
    say(format!(
        "   corrected record: EUR {} (the disputed one is now {})",
        euros(&corrected.total.to_string()),
        api.ok(
            "GET",
            &format!("/v1/settlement/records/{hash}"),
            &deu.token,
            None
        )
        .await["state"]
    ));
    submitted.push((
        0,
        1,
        answer["recordHash"].as_str().unwrap().to_string(),
        corrected,
    ));

    say("\n4. Every record accepted (counter-signed) and anchored on the built-in ledger".into());
    for (_, ri, hash, record) in &submitted {
        let recipient = &parties[*ri];
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hash.trim_start_matches("0x"), &mut bytes).unwrap();
        let digest = acceptance_digest(chain, &bytes, recipient.tadig);
        let accepted = api
            .ok(
                "POST",
                &format!("/v1/settlement/records/{hash}/accept"),
                &recipient.token,
                Some(json!({"signature": recipient.key.sign_digest(&digest).to_string()})),
            )
            .await;
        assert_eq!(accepted["anchored"], true, "{accepted}");
        let _ = record;
    }
    let (_, _, hash, _) = &submitted[0];
    let anchor = api
        .ok(
            "GET",
            &format!("/v1/settlement/records/{hash}/anchor"),
            &parties[0].token,
            None,
        )
        .await;
    lockgate::satp::evidence::verify_inclusion(&anchor["inclusion"], chain, &[app.block_producer])
        .unwrap();
    say(format!(
        "   {} anchored; e.g. {hash} in block {} (inclusion proof checked)",
        submitted.len(),
        anchor["inclusion"]["proof"]["blockHeader"]["height"]
    ));

    say("\n5. January closed, multilateral netting in EUR".into());
    let closed = api
        .ok("POST", "/v1/settlement/closes", &admin, Some(json!({"periodStartMs": JAN_2026.to_string(), "periodEndMs": FEB_2026.to_string(), "netting": "multilateral"})))
        .await;
    let statements = closed["statements"].as_array().unwrap().clone();
    say(format!(
        "   close {}: {} records, {} statements",
        closed["closeId"].as_str().unwrap(),
        closed["recordCount"],
        statements.len()
    ));
    say(format!(
        "\n   {:<6} {:>14} {:>14} {:>14}   payments",
        "", "receivable", "payable", "net"
    ));
    let mut nets = 0i128;
    let mut payments = std::collections::BTreeSet::new();
    for s in &statements {
        nets += s["net"].as_str().unwrap().parse::<i128>().unwrap();
        let mut made = Vec::new();
        for p in s["payments"].as_array().unwrap() {
            payments.insert((
                p["payer"].to_string(),
                p["payee"].to_string(),
                p["amount"].to_string(),
            ));
            if p["payer"] == s["operator"] {
                made.push(format!(
                    "pays {} EUR {}",
                    p["payee"].as_str().unwrap(),
                    euros(p["amount"].as_str().unwrap())
                ));
            }
        }
        say(format!(
            "   {:<6} {:>14} {:>14} {:>14}   {}",
            s["operator"].as_str().unwrap(),
            euros(s["receivable"].as_str().unwrap()),
            euros(s["payable"].as_str().unwrap()),
            euros(s["net"].as_str().unwrap()),
            if made.is_empty() {
                "receives".to_string()
            } else {
                made.join(", ")
            }
        ));
        assert_eq!(
            s["signer"].as_str().unwrap(),
            app.connector.key.address().to_string()
        );
    }
    assert_eq!(nets, 0, "positions are conserved");
    assert!(
        payments.len() <= 2,
        "three operators settle in at most two payments"
    );
    say(format!(
        "\n   nets sum to zero; {} payments settle everything (gross: {} records)",
        payments.len(),
        closed["recordCount"]
    ));
    pay_everything(&api, &app, &parties, &closed, &statements, &say).await
}

#[cfg_attr(test, allow(dead_code))]
fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(walkthrough(false));
}

/// Step 6: every payment through a cross-ledger transfer; the final statements.
async fn pay_everything(
    api: &Api,
    app: &lockgate::app::App,
    parties: &[Party],
    closed: &Value,
    statements: &[Value],
    say: &impl Fn(String),
) -> Vec<Value> {
    say("\n6. Each payment made through a cross-ledger transfer (EUR, ledger 4201 -> 4202)".into());
    let now = lockgate::sequencer::now_ms() / 1000;
    let ledger = app
        .auth
        .mint(
            "walkthrough",
            "ledger-operator",
            &Scope::ALL,
            &[],
            now,
            3600,
        )
        .unwrap();
    let (chain, second) = (app.chain_id, ledger_core::ChainId::new(4202).unwrap());
    let connector = app.connector.key.address();
    let issuer = SigningKey::from_bytes(ledger_core::hash::sha256(b"walkthrough-issuer")).unwrap();
    let mut nonces: BTreeMap<(u64, ledger_core::Address), u64> = BTreeMap::new();
    let mut submit = |chain: ledger_core::ChainId, key: &SigningKey, body: ledger_core::TxBody| {
        let nonce = nonces.entry((chain.get(), key.address())).or_insert(0);
        let tx = ledger_core::Transaction {
            chain_id: chain,
            from: key.address(),
            nonce: *nonce,
            body,
        };
        *nonce += 1;
        serde_json::to_value(lockgate::dto::SignedTransactionDto::from_domain(
            &tx.sign(key).unwrap(),
        ))
        .unwrap()
    };
    let eur = ledger_core::AssetCode::new("EUR").unwrap();
    let units = |n: u128| ledger_core::Amount::from_minor_units(n);
    let mut funding = Vec::new();
    for c in [chain, second] {
        funding.push(submit(
            c,
            &issuer,
            ledger_core::TxBody::RegisterAsset {
                code: eur,
                scale: ledger_core::Scale::new(2).unwrap(),
            },
        ));
    }
    for p in parties {
        funding.push(submit(
            chain,
            &issuer,
            ledger_core::TxBody::Issue {
                asset: eur,
                to: p.key.address(),
                amount: units(10_000_000),
            },
        ));
    }
    funding.push(submit(
        second,
        &issuer,
        ledger_core::TxBody::Issue {
            asset: eur,
            to: connector,
            amount: units(10_000_000),
        },
    ));
    for tx in funding {
        api.ok("POST", "/v1/ledger/transactions", &ledger, Some(tx))
            .await;
    }
    let close_id = closed["closeId"].as_str().unwrap().to_string();
    for (n, s) in statements.iter().enumerate() {
        for p in s["payments"].as_array().unwrap() {
            if p["payer"] != s["operator"] {
                continue;
            }
            let payer = parties.iter().find(|x| x.tadig == p["payer"]).unwrap();
            let payee = parties.iter().find(|x| x.tadig == p["payee"]).unwrap();
            // The payee holds the preimage.
            let secret = ledger_core::hash::sha256(
                format!("walkthrough-payment-{n}-{}", payee.tadig).as_bytes(),
            );
            let hashlock = ledger_core::Hashlock::of_preimage(&secret);
            let transfer = api
                .ok("POST", "/v1/settlement/payments", &payer.token, Some(json!({
                    "closeId": close_id, "currency": "EUR", "payer": payer.tadig, "payee": payee.tadig,
                    "sourceChainId": chain.to_string(), "targetChainId": "4202",
                    "sender": payer.key.address().to_string(), "recipient": payee.key.address().to_string(),
                    "hashlock": hashlock.to_string(),
                })))
                .await;
            let id = transfer["id"].as_str().unwrap().to_string();
            let amount: u128 = transfer["amount"].as_str().unwrap().parse().unwrap();
            let expires: u64 = transfer["sourceExpiresAtMs"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let lock = submit(
                chain,
                &payer.key,
                ledger_core::TxBody::HtlcLock {
                    asset: eur,
                    recipient: connector,
                    amount: units(amount),
                    hashlock,
                    expires_at_ms: expires,
                },
            );
            api.ok("POST", "/v1/ledger/transactions", &ledger, Some(lock))
                .await;
            let view = wait_state(api, &id, &payer.token, "target_locked").await;
            let target_lock: ledger_core::LockId =
                view["targetLockId"].as_str().unwrap().parse().unwrap();
            let claim = submit(
                second,
                &payee.key,
                ledger_core::TxBody::HtlcClaim {
                    lock_id: target_lock,
                    preimage: ledger_core::Preimage::new(secret.to_vec()).unwrap(),
                },
            );
            api.ok("POST", "/v1/ledger/transactions", &ledger, Some(claim))
                .await;
            wait_state(api, &id, &payer.token, "completed").await;
            say(format!(
                "   {} paid {} EUR {} (transfer {id})",
                payer.tadig,
                payee.tadig,
                euros(&amount.to_string())
            ));
        }
    }
    let mut final_statements = Vec::new();
    for p in parties {
        let list = api
            .ok(
                "GET",
                &format!("/v1/settlement/statements?closeId={close_id}"),
                &p.token,
                None,
            )
            .await;
        let statement = list["items"][0].clone();
        assert_eq!(statement["paid"], true, "{statement}");
        say(format!(
            "   {} final statement: net EUR {}, paid: {}",
            p.tadig,
            euros(statement["net"].as_str().unwrap()),
            statement["paid"]
        ));
        final_statements.push(statement);
    }
    final_statements
}

async fn wait_state(api: &Api, id: &str, token: &str, state: &str) -> Value {
    for _ in 0..400 {
        let view = api
            .ok("GET", &format!("/v1/transfers/{id}"), token, None)
            .await;
        if view["state"] == state {
            return view;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("transfer {id} never reached {state}");
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_walkthrough_runs() {
        let statements = super::walkthrough(true).await;
        assert_eq!(statements.len(), 3);
    }
}
