//! Roaming settlement over real HTTP on SQLite and PostgreSQL: the operator
//! registry and agreement versions; usage records submitted with the
//! sender's EIP-712 signature, each rule violation refused with its own
//! problem type and nothing stored; acceptance (counter-signed, then anchored
//! on the built-in ledger, the anchor's inclusion proof checked with
//! ledger-core); a dispute resolved by a corrected record; the deadline; and
//! tenant isolation on every endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use ledger_core::settlement::record::{Rate, ServiceLine, UsageRecord, discount_of};
use ledger_core::settlement::typed::{
    DisputeTerms, acceptance_digest, dispute_digest, record_digest, record_hash,
};
use ledger_core::settlement::{Service, Tadig};
use ledger_core::{AssetCode, SigningKey, TxBody};
use lockgate::auth::Scope;
use lockgate::settlement::UsageRecordBody;
use serde_json::json;
use support::*;

const DAY: u64 = 86_400_000;
const JAN_2026: u64 = 1_767_225_600_000;
const FEB_2026: u64 = JAN_2026 + 31 * DAY;

struct Net {
    gw: Gateway,
    admin: String,
    fra: String,
    deu: String,
    gbr: String,
    fra_key: SigningKey,
    deu_key: SigningKey,
}

fn tadig(code: &str) -> Tadig {
    code.parse().unwrap()
}

impl Net {
    async fn new(kind: Db, dispute_window_ms: u64) -> Self {
        Self::with(kind, |config| {
            config.settlement.dispute_window_ms = dispute_window_ms
        })
        .await
    }

    async fn with(kind: Db, adjust: impl FnOnce(&mut lockgate::config::Config)) -> Self {
        let db = TestDb::new(kind).await;
        let gw = Gateway::start_on(db, adjust).await;
        let now = lockgate::sequencer::now_ms() / 1000;
        let mint = |tenant: &str, scopes: &[Scope]| {
            gw.app
                .auth
                .mint("test", tenant, scopes, &[], now, 600)
                .unwrap()
        };
        let party = [Scope::SettlementRead, Scope::SettlementWrite];
        let net = Self {
            admin: mint("registry", &[Scope::SettlementAdmin]),
            fra: mint("op-fra", &party),
            deu: mint("op-deu", &party),
            gbr: mint("op-gbr", &party),
            fra_key: key(11),
            deu_key: key(12),
            gw,
        };
        for (code, name, key, tenant) in [
            ("FRAF1", "Visited France", &net.fra_key, "op-fra"),
            ("DEUD2", "Home Germany", &net.deu_key, "op-deu"),
            ("GBRCN", "Bystander UK", &key(13), "op-gbr"),
        ] {
            let (status, body) = net
                .gw
                .post("/v1/settlement/operators", &net.admin, &json!({"tadig": code, "name": name, "address": key.address().to_string(), "tenant": tenant}))
                .await;
            assert_eq!(status, 201, "{body}");
        }
        net
    }

    fn record(&self, sequence: u64, voice_seconds: u64) -> UsageRecord {
        let rates = rates();
        let lines: Vec<ServiceLine> = [
            (Service::VoiceMo, voice_seconds),
            (Service::Sms, 4_321),
            (Service::Data, 987_654_321),
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
        let discount = discount_of(charges_total, 250).unwrap();
        UsageRecord {
            sender: tadig("FRAF1"),
            recipient: tadig("DEUD2"),
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

    fn submission(&self, record: &UsageRecord, signer: &SigningKey) -> serde_json::Value {
        let signature = signer.sign_digest(&record_digest(self.gw.app.chain_id, record));
        json!({"record": UsageRecordBody::from_domain(record), "signature": signature.to_string()})
    }

    async fn submit(&self, token: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.gw.post("/v1/settlement/records", token, body).await
    }

    fn acceptance(&self, hash: &str, signer: &SigningKey) -> serde_json::Value {
        let digest = acceptance_digest(self.gw.app.chain_id, &hash32(hash), "DEUD2");
        json!({"signature": signer.sign_digest(&digest).to_string()})
    }
}

fn rates() -> BTreeMap<Service, Rate> {
    BTreeMap::from([
        (Service::VoiceMo, Rate { price: 10, per: 60 }),
        (Service::Sms, Rate { price: 3, per: 1 }),
        (
            Service::Data,
            Rate {
                price: 150,
                per: 1_000_000,
            },
        ),
    ])
}

fn hash32(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim_start_matches("0x"), &mut out).unwrap();
    out
}

fn agreement(version: u32) -> serde_json::Value {
    json!({
        "sender": "FRAF1", "recipient": "DEUD2", "version": version, "currency": "EUR",
        "validFromMs": (JAN_2026 - 365 * DAY).to_string(), "validUntilMs": (JAN_2026 + 365 * DAY).to_string(),
        "rates": {"voice_mo": {"price": "10", "per": "60"}, "sms": {"price": "3", "per": "1"}, "data": {"price": "150", "per": "1000000"}},
        "discountBps": 250,
    })
}

async fn workflow(kind: Db) {
    let net = Net::new(kind, 14 * DAY).await;
    let gw = &net.gw;

    // The registry: the same details again are fine, others are a conflict;
    // a party's tenant cannot register.
    let fra = key(11).address().to_string();
    let again =
        json!({"tadig": "FRAF1", "name": "Visited France", "address": fra, "tenant": "op-fra"});
    assert_eq!(
        gw.post("/v1/settlement/operators", &net.admin, &again)
            .await
            .0,
        200
    );
    let other =
        json!({"tadig": "FRAF1", "name": "Someone else", "address": fra, "tenant": "op-fra"});
    assert_eq!(
        gw.post("/v1/settlement/operators", &net.admin, &other)
            .await
            .0,
        409
    );
    assert_eq!(
        gw.post("/v1/settlement/operators", &net.fra, &again)
            .await
            .0,
        403
    );
    let (status, list) = gw.get("/v1/settlement/operators", &net.gbr).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    assert!(
        list["items"][0].get("tenant").is_none(),
        "tenants are shown to admins only"
    );

    // Agreements: versions come one after another; admins only.
    assert_eq!(
        gw.post("/v1/settlement/agreements", &net.fra, &agreement(1))
            .await
            .0,
        403
    );
    let (status, body) = gw
        .post("/v1/settlement/agreements", &net.admin, &agreement(1))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = gw
        .post("/v1/settlement/agreements", &net.admin, &agreement(3))
        .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (409, Some("urn:lockgate:problem:agreement-version")),
        "{body}"
    );
    // A time beyond what the store keeps (2^63-1 ms) is the caller's error,
    // named, not a failed write.
    let mut beyond = agreement(2);
    beyond["validUntilMs"] = json!("9223372036854775808");
    let (status, body) = gw
        .post("/v1/settlement/agreements", &net.admin, &beyond)
        .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (400, Some("urn:lockgate:problem:invalid-field")),
        "{body}"
    );
    assert!(
        body.to_string().contains("/validUntilMs"),
        "the problem names the field: {body}"
    );
    let (status, _) = gw
        .get(
            "/v1/settlement/agreements?sender=FRAF1&recipient=DEUD2",
            &net.gbr,
        )
        .await;
    assert_eq!(status, 404, "a bystander does not see the agreement");
    let (status, list) = gw
        .get(
            "/v1/settlement/agreements?sender=FRAF1&recipient=DEUD2",
            &net.deu,
        )
        .await;
    assert_eq!((status, list["items"].as_array().unwrap().len()), (200, 1));

    // Every violation is refused with its own type, and nothing is stored.
    let good = net.record(1, 123_457);
    let refusals: Vec<(UsageRecord, &SigningKey, u16, &str)> = vec![
        (
            {
                let mut r = good.clone();
                r.total += 1;
                r
            },
            &net.fra_key,
            422,
            "record-total-mismatch",
        ),
        (
            {
                let mut r = good.clone();
                r.charges_total += 1;
                r.total += 1;
                r
            },
            &net.fra_key,
            422,
            "record-charges-total-mismatch",
        ),
        (
            {
                let mut r = good.clone();
                r.lines[0].charge += 1;
                r
            },
            &net.fra_key,
            422,
            "record-charge-mismatch",
        ),
        (
            {
                let mut r = good.clone();
                r.lines[1].rate.price = 4;
                r
            },
            &net.fra_key,
            422,
            "record-rate-mismatch",
        ),
        (
            {
                let mut r = good.clone();
                r.discount = 0;
                r.total = r.charges_total;
                r
            },
            &net.fra_key,
            422,
            "record-discount-mismatch",
        ),
        (
            {
                let mut r = good.clone();
                r.period_end_ms = u64::from(u32::MAX) * 1_000_000;
                r
            },
            &net.fra_key,
            422,
            "record-period-in-future",
        ),
        (
            {
                let mut r = good.clone();
                r.currency = AssetCode::new("USD").unwrap();
                r
            },
            &net.fra_key,
            422,
            "record-no-agreement",
        ),
        (
            {
                let mut r = good.clone();
                r.agreement_version = 2;
                r
            },
            &net.fra_key,
            422,
            "record-wrong-agreement-version",
        ),
        (
            {
                let mut r = good.clone();
                r.sequence = 2;
                r
            },
            &net.fra_key,
            422,
            "record-sequence-gap",
        ),
        (good.clone(), &net.deu_key, 422, "bad-signature"),
    ];
    for (record, signer, status, slug) in &refusals {
        let (got, body) = net.submit(&net.fra, &net.submission(record, signer)).await;
        assert_eq!(
            (got, body["type"].as_str()),
            (
                *status,
                Some(format!("urn:lockgate:problem:{slug}").as_str())
            ),
            "{body}"
        );
    }
    // The recipient's tenant cannot submit as the sender.
    assert_eq!(
        net.submit(&net.deu, &net.submission(&good, &net.fra_key))
            .await
            .0,
        403
    );
    let (_, list) = gw.get("/v1/settlement/records", &net.fra).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "refused records are not stored"
    );

    // Submitted, then a duplicate sequence number refused.
    let (status, submitted) = net
        .submit(&net.fra, &net.submission(&good, &net.fra_key))
        .await;
    assert_eq!(status, 201, "{submitted}");
    assert_eq!(submitted["state"], "submitted");
    let hash = submitted["recordHash"].as_str().unwrap().to_string();
    assert_eq!(hash32(&hash), record_hash(&good));
    let other_content = net.record(1, 100_000);
    let (status, body) = net
        .submit(&net.fra, &net.submission(&other_content, &net.fra_key))
        .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (409, Some("urn:lockgate:problem:record-duplicate-sequence")),
        "{body}"
    );

    // Isolation: a bystander sees and does nothing; the sender cannot answer.
    let path = format!("/v1/settlement/records/{hash}");
    assert_eq!(gw.get(&path, &net.gbr).await.0, 404);
    assert_eq!(gw.get(&format!("{path}/anchor"), &net.gbr).await.0, 404);
    let garbage =
        json!({"reason": "", "disputedAmount": "x", "evidenceHash": "0x", "signature": "0x"});
    assert_eq!(
        gw.post(&format!("{path}/dispute"), &net.gbr, &garbage)
            .await
            .0,
        404,
        "404 whatever a non-party sends"
    );
    assert_eq!(
        gw.post(
            &format!("{path}/accept"),
            &net.gbr,
            &net.acceptance(&hash, &net.deu_key)
        )
        .await
        .0,
        404
    );
    assert_eq!(
        gw.get("/v1/settlement/records", &net.gbr).await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        gw.post(
            &format!("{path}/accept"),
            &net.fra,
            &net.acceptance(&hash, &net.deu_key)
        )
        .await
        .0,
        403
    );
    // The recipient's acceptance must be signed by the recipient.
    let (status, body) = gw
        .post(
            &format!("{path}/accept"),
            &net.deu,
            &net.acceptance(&hash, &net.fra_key),
        )
        .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (422, Some("urn:lockgate:problem:bad-signature")),
        "{body}"
    );
    assert_eq!(
        gw.get(&path, &net.deu).await.1["state"],
        "submitted",
        "nothing changed"
    );

    // Accepted and anchored; the anchor's proof checks with ledger-core.
    let (status, accepted) = gw
        .post(
            &format!("{path}/accept"),
            &net.deu,
            &net.acceptance(&hash, &net.deu_key),
        )
        .await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["state"], "accepted");
    assert_eq!(accepted["anchored"], true, "{accepted}");
    assert_eq!(
        gw.post(
            &format!("{path}/accept"),
            &net.deu,
            &net.acceptance(&hash, &net.deu_key)
        )
        .await
        .0,
        409
    );
    let (status, anchor) = gw.get(&format!("{path}/anchor"), &net.fra).await;
    assert_eq!(status, 200, "{anchor}");
    let signed = lockgate::satp::evidence::verify_inclusion(
        &anchor["inclusion"],
        gw.app.chain_id,
        &[gw.app.block_producer],
    )
    .unwrap();
    match &signed.transaction.body {
        TxBody::Anchor {
            document_hash,
            parties,
        } => {
            assert_eq!(document_hash.as_bytes(), &hash32(&hash));
            assert_eq!(
                parties.as_slice(),
                &[net.fra_key.address(), net.deu_key.address()]
            );
        }
        other => panic!("not an anchor: {other:?}"),
    }
    // A tampered proof does not check.
    let mut tampered = anchor["inclusion"].clone();
    tampered["proof"]["index"] = json!(tampered["proof"]["index"].as_u64().unwrap() + 1);
    assert!(
        lockgate::satp::evidence::verify_inclusion(
            &tampered,
            gw.app.chain_id,
            &[gw.app.block_producer]
        )
        .is_err()
    );

    // Record 2 disputed, then corrected: the correction takes its number.
    let second = net.record(2, 60_000);
    let (status, body) = net
        .submit(&net.fra, &net.submission(&second, &net.fra_key))
        .await;
    assert_eq!(status, 201, "{body}");
    let second_hash = body["recordHash"].as_str().unwrap().to_string();
    let terms = DisputeTerms {
        record_hash: hash32(&second_hash),
        recipient: "DEUD2",
        reason: "voice minutes double-counted on 2026-01-17",
        disputed_amount: 5_000,
        evidence_hash: [0xab; 32],
    };
    let dispute = json!({
        "reason": terms.reason, "disputedAmount": "5000", "evidenceHash": format!("0x{}", "ab".repeat(32)),
        "signature": net.deu_key.sign_digest(&dispute_digest(gw.app.chain_id, &terms)).to_string(),
    });
    let (status, disputed) = gw
        .post(
            &format!("/v1/settlement/records/{second_hash}/dispute"),
            &net.deu,
            &dispute,
        )
        .await;
    assert_eq!(status, 200, "{disputed}");
    assert_eq!(disputed["state"], "disputed");
    assert_eq!(disputed["dispute"]["disputedAmount"], "5000");
    // A correction of an accepted record is refused.
    let mut wrong = net.submission(&net.record(1, 100_000), &net.fra_key);
    wrong["replaces"] = json!(hash);
    let (status, body) = net.submit(&net.fra, &wrong).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (422, Some("urn:lockgate:problem:record-bad-replacement")),
        "{body}"
    );
    let corrected = net.record(2, 30_000);
    let mut correction = net.submission(&corrected, &net.fra_key);
    correction["replaces"] = json!(second_hash);
    let (status, body) = net.submit(&net.fra, &correction).await;
    assert_eq!(status, 201, "{body}");
    let corrected_hash = body["recordHash"].as_str().unwrap().to_string();
    assert_eq!(
        gw.get(&format!("/v1/settlement/records/{second_hash}"), &net.deu)
            .await
            .1["state"],
        "superseded"
    );
    let (status, body) = gw
        .post(
            &format!("/v1/settlement/records/{corrected_hash}/accept"),
            &net.deu,
            &net.acceptance(&corrected_hash, &net.deu_key),
        )
        .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("accepted")),
        "{body}"
    );
    // Sequence 3 comes next.
    let (status, body) = net
        .submit(&net.fra, &net.submission(&net.record(3, 1), &net.fra_key))
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, page) = gw.get("/v1/settlement/records?limit=2", &net.deu).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["nextCursor"].as_str().unwrap();
    let (_, rest) = gw
        .get(
            &format!("/v1/settlement/records?limit=2&cursor={cursor}"),
            &net.deu,
        )
        .await;
    assert_eq!(
        rest["items"].as_array().unwrap().len(),
        2,
        "four records in all, superseded included"
    );
}

#[tokio::test]
async fn workflow_on_sqlite() {
    workflow(Db::Sqlite).await;
}

#[tokio::test]
async fn workflow_on_postgres() {
    workflow(Db::Postgres).await;
}

/// The settlement writes take an `Idempotency-Key` like the ledger's (a
/// route layer claims it, not their handlers): the same request with the
/// same key is answered from the store with `Idempotent-Replayed: true` and
/// not run again (a second run of this agreement would be a 409), another
/// request with that key is 422 and changes nothing, and a 403 is not kept
/// (the same key then runs with a token that may).
async fn settlement_writes_honour_idempotency_keys(kind: Db) {
    let net = Net::new(kind, 14 * DAY).await;
    let gw = &net.gw;
    let send = |token: &str, key: &str, body: &serde_json::Value| {
        gw.http
            .post(format!("{}/v1/settlement/agreements", gw.base))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
    };
    let first = send(&net.admin, "agreement-1", &agreement(1))
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: serde_json::Value = first.json().await.unwrap();

    let again = send(&net.admin, "agreement-1", &agreement(1))
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        201,
        "answered from the store, not run again"
    );
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<serde_json::Value>().await.unwrap(), first);

    // The registry's own tenant, with a token that may only read: the
    // scope is checked before the key, so it sees no stored answer.
    let reader = gw
        .app
        .auth
        .mint(
            "test",
            "registry",
            &[Scope::SettlementRead],
            &[],
            lockgate::sequencer::now_ms() / 1000,
            600,
        )
        .unwrap();
    let peek = send(&reader, "agreement-1", &agreement(1)).await.unwrap();
    assert_eq!(peek.status(), 403, "a replay is no way around the scope");
    assert!(peek.headers().get("idempotent-replayed").is_none());

    let other = send(&net.admin, "agreement-1", &agreement(2))
        .await
        .unwrap();
    assert_eq!(other.status(), 422);
    let other: serde_json::Value = other.json().await.unwrap();
    assert_eq!(other["type"], "urn:lockgate:problem:idempotency-key-reused");
    let (status, list) = gw
        .get(
            "/v1/settlement/agreements?sender=FRAF1&recipient=DEUD2",
            &net.admin,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "the reused key did not add version 2: {list}"
    );

    let refused = send(&reader, "agreement-2", &agreement(2)).await.unwrap();
    assert_eq!(refused.status(), 403);
    let allowed = send(&net.admin, "agreement-2", &agreement(2))
        .await
        .unwrap();
    assert_eq!(allowed.status(), 201, "the 403 was not kept for the key");
    assert!(allowed.headers().get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn settlement_writes_honour_idempotency_keys_on_sqlite() {
    settlement_writes_honour_idempotency_keys(Db::Sqlite).await;
}

#[tokio::test]
async fn settlement_writes_honour_idempotency_keys_on_postgres() {
    settlement_writes_honour_idempotency_keys(Db::Postgres).await;
}

#[tokio::test]
async fn no_answer_after_the_deadline() {
    let net = Net::new(Db::Sqlite, 300).await;
    let (status, body) = net
        .gw
        .post("/v1/settlement/agreements", &net.admin, &agreement(1))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = net
        .submit(&net.fra, &net.submission(&net.record(1, 60), &net.fra_key))
        .await;
    assert_eq!(status, 201, "{body}");
    let hash = body["recordHash"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (status, body) = net
        .gw
        .post(
            &format!("/v1/settlement/records/{hash}/accept"),
            &net.deu,
            &net.acceptance(&hash, &net.deu_key),
        )
        .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (409, Some("urn:lockgate:problem:record-deadline-passed")),
        "{body}"
    );
    assert_eq!(
        net.gw
            .get(&format!("/v1/settlement/records/{hash}"), &net.deu)
            .await
            .1["state"],
        "submitted"
    );
}

fn agreement_between(sender: &str, recipient: &str) -> serde_json::Value {
    let mut a = agreement(1);
    a["sender"] = json!(sender);
    a["recipient"] = json!(recipient);
    a
}

impl Net {
    async fn submit_ok(&self, token: &str, record: &UsageRecord, key: &SigningKey) -> String {
        let (status, body) = self.submit(token, &self.submission(record, key)).await;
        assert_eq!(status, 201, "{body}");
        body["recordHash"].as_str().unwrap().to_string()
    }

    async fn accept_ok(&self, hash: &str, token: &str, signer: &SigningKey, recipient: &str) {
        let digest = acceptance_digest(self.gw.app.chain_id, &hash32(hash), recipient);
        let body = json!({"signature": signer.sign_digest(&digest).to_string()});
        let (status, body) = self
            .gw
            .post(
                &format!("/v1/settlement/records/{hash}/accept"),
                token,
                &body,
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// A record from `sender` to `recipient` (EUR, January).
    fn record_between(
        &self,
        sender: &str,
        recipient: &str,
        sequence: u64,
        voice_seconds: u64,
    ) -> UsageRecord {
        let mut r = self.record(sequence, voice_seconds);
        r.sender = tadig(sender);
        r.recipient = tadig(recipient);
        r
    }
}

/// Rebuilds the signed `Statement` from its view.
fn statement_of(view: &serde_json::Value) -> ledger_core::settlement::statement::Statement {
    use ledger_core::settlement::netting::Payment;
    use ledger_core::settlement::statement::{FxRate, Statement, StatementLine};
    let s = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    let n = |v: &serde_json::Value| s(v).parse::<u128>().unwrap();
    let code = |v: &serde_json::Value| AssetCode::new(v.as_str().unwrap()).unwrap();
    Statement {
        operator: tadig(&s(&view["operator"])),
        currency: code(&view["currency"]),
        period_start_ms: s(&view["periodStartMs"]).parse().unwrap(),
        period_end_ms: s(&view["periodEndMs"]).parse().unwrap(),
        lines: view["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| StatementLine {
                record_hash: hash32(l["recordHash"].as_str().unwrap()),
                counterparty: tadig(&s(&l["counterparty"])),
                amount: n(&l["amount"]),
                receivable: l["receivable"].as_bool().unwrap(),
            })
            .collect(),
        receivable: n(&view["receivable"]),
        payable: n(&view["payable"]),
        payments: view["payments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| Payment {
                payer: tadig(&s(&p["payer"])),
                payee: tadig(&s(&p["payee"])),
                amount: n(&p["amount"]),
            })
            .collect(),
        fx_rates: view["fxRates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| FxRate {
                from: code(&r["from"]),
                to: code(&r["to"]),
                numerator: n(&r["numerator"]),
                denominator: n(&r["denominator"]),
            })
            .collect(),
    }
}

async fn close_and_statements(kind: Db) {
    let net = Net::new(kind, 1_500).await;
    let gw = &net.gw;
    let gbr_key = key(13);
    let gbr_token = gw
        .app
        .auth
        .mint(
            "test",
            "op-gbr",
            &[Scope::SettlementRead, Scope::SettlementWrite],
            &[],
            lockgate::sequencer::now_ms() / 1000,
            600,
        )
        .unwrap();
    for (s, r) in [("FRAF1", "DEUD2"), ("DEUD2", "GBRCN"), ("GBRCN", "FRAF1")] {
        let (status, body) = gw
            .post(
                "/v1/settlement/agreements",
                &net.admin,
                &agreement_between(s, r),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // FRA -> DEU accepted; DEU -> GBR accepted; GBR -> FRA unanswered
    // (deemed accepted at its deadline); FRA -> DEU #2 disputed (left out).
    let fra_deu = net
        .submit_ok(
            &net.fra,
            &net.record_between("FRAF1", "DEUD2", 1, 600_000),
            &net.fra_key,
        )
        .await;
    let deu_gbr = net
        .submit_ok(
            &net.deu,
            &net.record_between("DEUD2", "GBRCN", 1, 300_000),
            &net.deu_key,
        )
        .await;
    let gbr_fra = net
        .submit_ok(
            &gbr_token,
            &net.record_between("GBRCN", "FRAF1", 1, 120_000),
            &gbr_key,
        )
        .await;
    let disputed = net
        .submit_ok(
            &net.fra,
            &net.record_between("FRAF1", "DEUD2", 2, 1_000),
            &net.fra_key,
        )
        .await;
    net.accept_ok(&fra_deu, &net.deu, &net.deu_key, "DEUD2")
        .await;
    net.accept_ok(&deu_gbr, &gbr_token, &gbr_key, "GBRCN").await;
    let terms = DisputeTerms {
        record_hash: hash32(&disputed),
        recipient: "DEUD2",
        reason: "not ours",
        disputed_amount: 1,
        evidence_hash: [0; 32],
    };
    let dispute = json!({"reason": "not ours", "disputedAmount": "1", "evidenceHash": format!("0x{}", "00".repeat(32)),
        "signature": net.deu_key.sign_digest(&dispute_digest(gw.app.chain_id, &terms)).to_string()});
    assert_eq!(
        gw.post(
            &format!("/v1/settlement/records/{disputed}/dispute"),
            &net.deu,
            &dispute
        )
        .await
        .0,
        200
    );
    // Let the unanswered record's deadline pass.
    tokio::time::sleep(std::time::Duration::from_millis(1_600)).await;

    let close = json!({"periodStartMs": JAN_2026.to_string(), "periodEndMs": FEB_2026.to_string(),
        "settlementCurrency": "USD", "fxRates": [{"from": "EUR", "to": "USD", "numerator": "108", "denominator": "100"}]});
    assert_eq!(
        gw.post("/v1/settlement/closes", &net.fra, &close).await.0,
        403,
        "parties do not close"
    );
    let mut no_rate = close.clone();
    no_rate["fxRates"] = json!([]);
    let (status, body) = gw.post("/v1/settlement/closes", &net.admin, &no_rate).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (422, Some("urn:lockgate:problem:close-refused")),
        "{body}"
    );
    let (status, closed) = gw.post("/v1/settlement/closes", &net.admin, &close).await;
    assert_eq!(status, 201, "{closed}");
    assert_eq!(
        closed["recordCount"], 3,
        "accepted and deemed accepted, not the disputed one"
    );
    let statements = closed["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 3);
    let close_id = hash32(closed["closeId"].as_str().unwrap());
    let mut nets = 0i128;
    let mut payments = std::collections::BTreeSet::new();
    for view in statements {
        // Signed by the gateway over exactly what it shows.
        let statement = statement_of(view);
        let digest = ledger_core::settlement::typed::statement_digest(
            gw.app.chain_id,
            &close_id,
            &statement,
        );
        let signature: ledger_core::Signature =
            view["signature"].as_str().unwrap().parse().unwrap();
        let signer = ledger_core::signature::recover_signer(&digest, &signature).unwrap();
        assert_eq!(signer.to_string(), view["signer"].as_str().unwrap());
        assert_eq!(signer, gw.app.connector.key.address());
        assert_eq!(view["currency"], "USD");
        assert_eq!(statement.net().to_string(), view["net"].as_str().unwrap());
        nets += statement.net();
        for p in &statement.payments {
            payments.insert((p.payer, p.payee, p.amount));
        }
        assert!(
            statement
                .lines
                .iter()
                .all(|l| l.record_hash != hash32(&disputed))
        );
    }
    assert_eq!(nets, 0, "positions are conserved");
    assert!(
        payments.len() <= 2,
        "three operators settle in at most two payments: {payments:?}"
    );
    // The FRA -> DEU line is converted at 1.08.
    let fra = statements
        .iter()
        .find(|s| s["operator"] == "FRAF1")
        .unwrap();
    let line = fra["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["recordHash"] == fra_deu)
        .unwrap();
    let eur_total = net.record_between("FRAF1", "DEUD2", 1, 600_000).total;
    assert_eq!(
        line["amount"].as_str().unwrap(),
        ledger_core::settlement::record::round_half_up(eur_total * 108, 100)
            .unwrap()
            .to_string()
    );

    // Each party sees its own statement only; a closed period has nothing left.
    let (_, mine) = gw.get("/v1/settlement/statements", &net.deu).await;
    let mine = mine["items"].as_array().unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["operator"], "DEUD2");
    assert_eq!(
        gw.get(
            &format!(
                "/v1/settlement/closes/{}",
                closed["closeId"].as_str().unwrap()
            ),
            &net.deu
        )
        .await
        .0,
        403
    );
    let (status, again) = gw
        .get(
            &format!(
                "/v1/settlement/closes/{}",
                closed["closeId"].as_str().unwrap()
            ),
            &net.admin,
        )
        .await;
    assert_eq!((status, again["recordCount"].as_u64()), (200, Some(3)));
    let (status, body) = gw.post("/v1/settlement/closes", &net.admin, &close).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (422, Some("urn:lockgate:problem:nothing-to-close")),
        "{body}"
    );
    // The deemed-accepted record is accepted now, and gets anchored.
    let path = format!("/v1/settlement/records/{gbr_fra}");
    for _ in 0..100 {
        let (_, record) = gw.get(&path, &net.fra).await;
        if record["anchored"] == true {
            assert_eq!(record["state"], "accepted");
            assert!(
                record.get("acceptanceSignature").is_none(),
                "deemed, not signed"
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the deemed-accepted record was never anchored");
}

#[tokio::test]
async fn close_and_statements_on_sqlite() {
    close_and_statements(Db::Sqlite).await;
}

#[tokio::test]
async fn close_and_statements_on_postgres() {
    close_and_statements(Db::Postgres).await;
}

async fn post_raw(
    gw: &Gateway,
    path: &str,
    token: &str,
    content_type: &str,
    body: String,
) -> (u16, serde_json::Value) {
    let response = gw
        .http
        .post(format!("{}{path}", gw.base))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn bulk_import(kind: Db) {
    use lockgate::settlement::import::{CSV_HEADER, csv_line};
    let net = Net::new(kind, 14 * DAY).await;
    let gw = &net.gw;
    assert_eq!(
        gw.post("/v1/settlement/agreements", &net.admin, &agreement(1))
            .await
            .0,
        201
    );
    let sign = |r: &UsageRecord, k: &SigningKey| k.sign_digest(&record_digest(gw.app.chain_id, r));
    // 2,000 good rows in sequence, with bad rows between them (each on a
    // line the report must name), across two batches.
    let mut lines = vec![CSV_HEADER.to_string()];
    let mut expected: Vec<(u64, &str)> = Vec::new();
    for sequence in 1..=2_000u64 {
        let r = net.record(sequence, sequence * 7);
        lines.push(csv_line(&r, &sign(&r, &net.fra_key)));
        let bad = match sequence {
            10 => {
                let mut bad = net.record(11, 1);
                bad.total += 1;
                Some((
                    csv_line(&bad, &sign(&bad, &net.fra_key)),
                    "record-total-mismatch",
                ))
            }
            100 => {
                let r = net.record(101, 1);
                Some((csv_line(&r, &sign(&r, &net.deu_key)), "bad-signature"))
            }
            500 => Some(("FRAF1,DEUD2,not-a-row".to_string(), "invalid-field")),
            1_500 => {
                let r = net.record(3, 99);
                Some((
                    csv_line(&r, &sign(&r, &net.fra_key)),
                    "record-duplicate-sequence",
                ))
            }
            1_800 => {
                let r = net.record(5_000, 1);
                Some((csv_line(&r, &sign(&r, &net.fra_key)), "record-sequence-gap"))
            }
            _ => None,
        };
        if let Some((line, kind)) = bad {
            lines.push(line);
            expected.push((lines.len() as u64, kind));
        }
    }
    let csv = lines.join("\n") + "\n";
    let path = "/v1/settlement/records/import";
    // A dry run checks everything and stores nothing.
    let (status, dry) = post_raw(
        gw,
        &format!("{path}?dryRun=true"),
        &net.fra,
        "text/csv",
        csv.clone(),
    )
    .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        (
            dry["imported"].as_u64(),
            dry["refused"].as_u64(),
            dry["dryRun"].as_bool()
        ),
        (Some(2_000), Some(5), Some(true))
    );
    assert_eq!(
        gw.get("/v1/settlement/records?limit=1", &net.fra).await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // The import.
    let (status, report) =
        post_raw(gw, path, &net.fra, "text/csv; charset=utf-8", csv.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (
            report["rows"].as_u64(),
            report["imported"].as_u64(),
            report["refused"].as_u64()
        ),
        (Some(2_005), Some(2_000), Some(5)),
        "{report}"
    );
    let got: Vec<(u64, String)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = expected.iter().map(|(l, k)| (*l, k.to_string())).collect();
    assert_eq!(got, want);
    // Stored like single submissions: sequence 2001 comes next.
    let (status, body) = net
        .submit(
            &net.fra,
            &net.submission(&net.record(2_001, 1), &net.fra_key),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Importing the file again stores nothing new.
    let (_, again) = post_raw(gw, path, &net.fra, "text/csv", csv).await;
    assert_eq!(again["imported"], 0);
    // NDJSON, from another tenant: rows for an operator it does not act for are refused.
    let r = net.record(2_002, 1);
    let ndjson = format!(
        "{}\n\n{}\n",
        net.submission(&r, &net.fra_key),
        net.submission(&net.record(2_003, 1), &net.fra_key)
    );
    let (status, report) =
        post_raw(gw, path, &net.gbr, "application/x-ndjson", ndjson.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["imported"].as_u64(), report["refused"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(report["errors"][1]["line"], 3, "blank lines count as lines");
    let (_, report) = post_raw(gw, path, &net.fra, "application/x-ndjson", ndjson).await;
    assert_eq!(report["imported"], 2, "{report}");
    // A wrong header or media type changes nothing.
    assert_eq!(
        post_raw(gw, path, &net.fra, "text/csv", "sender,recipient\n".into())
            .await
            .0,
        400
    );
    assert_eq!(
        post_raw(gw, path, &net.fra, "application/json", "{}".into())
            .await
            .0,
        415
    );
}

#[tokio::test]
async fn bulk_import_on_sqlite() {
    bulk_import(Db::Sqlite).await;
}

#[tokio::test]
async fn bulk_import_on_postgres() {
    bulk_import(Db::Postgres).await;
}

const TARGET: u64 = CHAIN + 1;

async fn first_statement(gw: &Gateway, close_id: &str, token: &str) -> serde_json::Value {
    let (_, list) = gw
        .get(
            &format!("/v1/settlement/statements?closeId={close_id}"),
            token,
        )
        .await;
    list["items"][0].clone()
}

async fn wait_transfer(gw: &Gateway, path: &str, token: &str, state: &str) -> serde_json::Value {
    for _ in 0..400 {
        let (_, view) = gw.get(path, token).await;
        if view["state"] == state {
            return view;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let (_, view) = gw.get(path, token).await;
    panic!("the payment transfer never reached {state}: {view}");
}

async fn statement_paid_through_a_transfer(kind: Db) {
    use ledger_core::{ChainId, Hashlock, LockId};
    let net = Net::with(kind, |config| {
        config.extra_ledgers.push(lockgate::config::LedgerConfig {
            chain_id: TARGET,
            batch_wait_ms: 1,
            ..lockgate::config::LedgerConfig::default()
        });
        config.transfers.commit_ms_max = 300;
        config.transfers.reaction_ms_max = 300;
        config.transfers.safety_margin_ms = 100;
        config.transfers.claim_window_ms = 5_000;
        config.transfers.tick_ms = 50;
    })
    .await;
    let gw = &net.gw;
    let target = ChainId::new(TARGET).unwrap();
    // EUR on both ledgers: DEUD2's account pays on the first, the gateway
    // (connector) has liquidity on the second.
    let issuer = key(1);
    let connector = gw.app.connector.key.address();
    for (chain, holder) in [(chain(), net.deu_key.address()), (target, connector)] {
        for (nonce, body) in [(0, register("EUR")), (1, issue("EUR", holder, 100_000_000))] {
            let (status, body) = gw.submit(&sign_on(chain, &issuer, nonce, body)).await;
            assert_eq!(status, 201, "{body}");
        }
    }
    // One accepted record FRAF1 -> DEUD2, closed: DEUD2 pays FRAF1.
    assert_eq!(
        gw.post("/v1/settlement/agreements", &net.admin, &agreement(1))
            .await
            .0,
        201
    );
    let record = net.record(1, 600_000);
    let hash = net.submit_ok(&net.fra, &record, &net.fra_key).await;
    net.accept_ok(&hash, &net.deu, &net.deu_key, "DEUD2").await;
    let (status, closed) = gw
        .post(
            "/v1/settlement/closes",
            &net.admin,
            &json!({"periodStartMs": JAN_2026.to_string(), "periodEndMs": FEB_2026.to_string()}),
        )
        .await;
    assert_eq!(status, 201, "{closed}");
    let close_id = closed["closeId"].as_str().unwrap().to_string();
    let amount = record.total;
    let statement = first_statement(gw, &close_id, &net.deu).await;
    assert_eq!(
        (
            statement["paid"].as_bool(),
            statement["payments"][0]["status"].as_str()
        ),
        (Some(false), Some("unpaid"))
    );

    // The payee holds the preimage; the payer pays through a transfer.
    let secret = [0x77u8; 32];
    let pay = json!({"closeId": close_id, "currency": "EUR", "payer": "DEUD2", "payee": "FRAF1",
        "sourceChainId": CHAIN.to_string(), "targetChainId": TARGET.to_string(),
        "sender": net.deu_key.address().to_string(), "recipient": net.fra_key.address().to_string(),
        "hashlock": Hashlock::of_preimage(&secret).to_string()});
    assert_eq!(
        gw.post("/v1/settlement/payments", &net.fra, &pay).await.0,
        403,
        "only the payer pays"
    );
    assert_eq!(
        gw.post("/v1/settlement/payments", &net.gbr, &pay).await.0,
        403
    );
    let mut elsewhere = pay.clone();
    elsewhere["recipient"] = json!(net.deu_key.address().to_string());
    let (status, body) = gw
        .post("/v1/settlement/payments", &net.deu, &elsewhere)
        .await;
    assert_eq!(status, 400, "the payer cannot pay itself: {body}");
    let mut wrong = pay.clone();
    wrong["payee"] = json!("GBRCN");
    wrong["recipient"] = json!(key(13).address().to_string());
    assert_eq!(
        gw.post("/v1/settlement/payments", &net.deu, &wrong).await.0,
        404
    );
    let (status, transfer) = gw.post("/v1/settlement/payments", &net.deu, &pay).await;
    assert_eq!(status, 201, "{transfer}");
    assert_eq!(transfer["amount"].as_str().unwrap(), amount.to_string());
    assert_eq!(
        transfer["reference"].as_str().unwrap(),
        format!("settlement:{close_id}:EUR:DEUD2:FRAF1")
    );
    let id = transfer["id"].as_str().unwrap().to_string();
    let (status, body) = gw.post("/v1/settlement/payments", &net.deu, &pay).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (409, Some("urn:lockgate:problem:payment-in-progress")),
        "{body}"
    );
    let statement = first_statement(gw, &close_id, &net.deu).await;
    assert_eq!(statement["payments"][0]["status"], "in_progress");
    assert_eq!(statement["payments"][0]["transferId"], id.as_str());
    assert_eq!(statement["paid"], false);

    // The payer locks; the gateway locks on the target; the payee claims.
    let expires: u64 = transfer["sourceExpiresAtMs"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (status, body) = gw
        .submit(&sign_on(
            chain(),
            &net.deu_key,
            0,
            lock("EUR", connector, amount, &secret, expires),
        ))
        .await;
    assert_eq!(status, 201, "{body}");
    let transfer_path = format!("/v1/transfers/{id}");
    // The payment transfer is the payer's tenant's, read with transfers:read.
    let reader = gw
        .app
        .auth
        .mint(
            "test",
            "op-deu",
            &[Scope::TransfersRead],
            &[],
            lockgate::sequencer::now_ms() / 1000,
            600,
        )
        .unwrap();
    let view = wait_transfer(gw, &transfer_path, &reader, "target_locked").await;
    let target_lock: LockId = view["targetLockId"].as_str().unwrap().parse().unwrap();
    // Not paid before every leg completed.
    assert_eq!(
        first_statement(gw, &close_id, &net.deu).await["paid"],
        false
    );
    let (status, body) = gw
        .submit(&sign_on(
            target,
            &net.fra_key,
            0,
            claim(target_lock, &secret),
        ))
        .await;
    assert_eq!(status, 201, "{body}");
    wait_transfer(gw, &transfer_path, &reader, "completed").await;
    let statement = first_statement(gw, &close_id, &net.deu).await;
    assert_eq!(
        (
            statement["paid"].as_bool(),
            statement["payments"][0]["status"].as_str()
        ),
        (Some(true), Some("paid"))
    );
    let (_, fra_list) = gw
        .get(
            &format!("/v1/settlement/statements?closeId={close_id}"),
            &net.fra,
        )
        .await;
    assert_eq!(
        fra_list["items"][0]["paid"], true,
        "the payee's statement shows it paid too"
    );
    let (status, body) = gw.post("/v1/settlement/payments", &net.deu, &pay).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (409, Some("urn:lockgate:problem:payment-made")),
        "{body}"
    );
    // A client cannot forge a settlement reference on its own transfers.
    let mut forged = json!({"sourceChainId": CHAIN.to_string(), "targetChainId": TARGET.to_string(), "sourceAsset": "EUR", "targetAsset": "EUR",
        "amount": "1", "sender": net.deu_key.address().to_string(), "recipient": net.fra_key.address().to_string(),
        "hashlock": Hashlock::of_preimage(&[9; 32]).to_string()});
    forged["reference"] = json!(format!("settlement:{close_id}:EUR:DEUD2:FRAF1"));
    assert_eq!(gw.post("/v1/transfers", &gw.admin(), &forged).await.0, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_paid_through_a_transfer_on_sqlite() {
    statement_paid_through_a_transfer(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_paid_through_a_transfer_on_postgres() {
    statement_paid_through_a_transfer(Db::Postgres).await;
}

async fn a_note_resolves_a_dispute(kind: Db) {
    use ledger_core::settlement::typed::note_digest;
    let net = Net::new(kind, 14 * DAY).await;
    let gw = &net.gw;
    assert_eq!(
        gw.post("/v1/settlement/agreements", &net.admin, &agreement(1))
            .await
            .0,
        201
    );
    let record = net.record(1, 600_000);
    let hash = net.submit_ok(&net.fra, &record, &net.fra_key).await;
    let base = format!("/v1/settlement/records/{hash}");
    let note = |kind: &str, amount: u128, key: &SigningKey| {
        let reason = "half the disputed data volume";
        let digest = note_digest(gw.app.chain_id, &hash32(&hash), kind, amount, reason);
        json!({"kind": kind, "amount": amount.to_string(), "reason": reason, "signature": key.sign_digest(&digest).to_string()})
    };
    // Only on a disputed record.
    let (status, body) = gw
        .post(
            &format!("{base}/note"),
            &net.fra,
            &note("credit", 5_000, &net.fra_key),
        )
        .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (409, Some("urn:lockgate:problem:record-not-disputed")),
        "{body}"
    );
    let terms = DisputeTerms {
        record_hash: hash32(&hash),
        recipient: "DEUD2",
        reason: "too much data",
        disputed_amount: 10_000,
        evidence_hash: [0; 32],
    };
    let dispute = json!({"reason": "too much data", "disputedAmount": "10000", "evidenceHash": format!("0x{}", "00".repeat(32)),
        "signature": net.deu_key.sign_digest(&dispute_digest(gw.app.chain_id, &terms)).to_string()});
    let (gbr, fra) = (
        gw.post(&format!("{base}/dispute"), &net.gbr, &dispute)
            .await
            .0,
        gw.post(&format!("{base}/dispute"), &net.fra, &dispute)
            .await
            .0,
    );
    assert_eq!(
        (gbr, fra),
        (404, 403),
        "neither a bystander nor the sender disputes"
    );
    assert_eq!(
        gw.post(&format!("{base}/dispute"), &net.deu, &dispute)
            .await
            .0,
        200
    );
    // A non-party gets 404 whatever it sends.
    let garbage = json!({"kind": "x", "amount": "x", "reason": "", "signature": "0x"});
    assert_eq!(
        gw.post(&format!("{base}/note"), &net.gbr, &garbage).await.0,
        404
    );
    assert_eq!(
        gw.post(
            &format!("{base}/note/accept"),
            &net.gbr,
            &json!({"signature": "0x"})
        )
        .await
        .0,
        404
    );
    // The recipient cannot issue it, a bystander cannot see it, a credit
    // above the total and a signature not the sender's are refused.
    assert_eq!(
        gw.post(
            &format!("{base}/note"),
            &net.deu,
            &note("credit", 5_000, &net.deu_key)
        )
        .await
        .0,
        403
    );
    assert_eq!(
        gw.post(
            &format!("{base}/note"),
            &net.gbr,
            &note("credit", 5_000, &net.fra_key)
        )
        .await
        .0,
        404
    );
    assert_eq!(
        gw.post(
            &format!("{base}/note"),
            &net.fra,
            &note("credit", record.total + 1, &net.fra_key)
        )
        .await
        .0,
        400
    );
    assert_eq!(
        gw.post(
            &format!("{base}/note"),
            &net.fra,
            &note("credit", 5_000, &net.deu_key)
        )
        .await
        .0,
        422
    );
    let (status, issued) = gw
        .post(
            &format!("{base}/note"),
            &net.fra,
            &note("credit", 5_000, &net.fra_key),
        )
        .await;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(
        issued["state"], "disputed",
        "open until the recipient accepts"
    );
    // The recipient accepts by signing the same note.
    let digest = note_digest(
        gw.app.chain_id,
        &hash32(&hash),
        "credit",
        5_000,
        "half the disputed data volume",
    );
    let wrong = json!({"signature": net.fra_key.sign_digest(&digest).to_string()});
    assert_eq!(
        gw.post(&format!("{base}/note/accept"), &net.deu, &wrong)
            .await
            .0,
        422
    );
    assert_eq!(
        gw.post(&format!("{base}/note/accept"), &net.fra, &wrong)
            .await
            .0,
        403
    );
    let accept = json!({"signature": net.deu_key.sign_digest(&digest).to_string()});
    let (status, resolved) = gw
        .post(&format!("{base}/note/accept"), &net.deu, &accept)
        .await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(
        (resolved["state"].as_str(), resolved["anchored"].as_bool()),
        (Some("accepted"), Some(true))
    );
    assert!(resolved["note"]["recipientSignature"].is_string());
    // The close counts the record with the credit applied.
    let (status, closed) = gw
        .post(
            "/v1/settlement/closes",
            &net.admin,
            &json!({"periodStartMs": JAN_2026.to_string(), "periodEndMs": FEB_2026.to_string()}),
        )
        .await;
    assert_eq!(status, 201, "{closed}");
    let fra = closed["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["operator"] == "FRAF1")
        .unwrap();
    assert_eq!(
        fra["receivable"].as_str().unwrap(),
        (record.total - 5_000).to_string()
    );
}

#[tokio::test]
async fn a_note_resolves_a_dispute_on_sqlite() {
    a_note_resolves_a_dispute(Db::Sqlite).await;
}

#[tokio::test]
async fn a_note_resolves_a_dispute_on_postgres() {
    a_note_resolves_a_dispute(Db::Postgres).await;
}

#[tokio::test]
async fn per_service_discounts_are_kept_and_applied() {
    let net = Net::new(Db::Sqlite, 14 * DAY).await;
    let gw = &net.gw;
    let mut a = agreement(1);
    a["rates"]["data"]["discountBps"] = json!(1000);
    let (status, body) = gw.post("/v1/settlement/agreements", &net.admin, &a).await;
    assert_eq!(status, 201, "{body}");
    let (_, list) = gw
        .get(
            "/v1/settlement/agreements?sender=FRAF1&recipient=DEUD2",
            &net.deu,
        )
        .await;
    assert_eq!(list["items"][0]["rates"]["data"]["discountBps"], 1000);
    assert!(
        list["items"][0]["rates"]["sms"]
            .get("discountBps")
            .is_none()
    );
    // A record discounted on the whole total is refused; line by line passes.
    let mut record = net.record(1, 123_457);
    let (status, body) = net
        .submit(&net.fra, &net.submission(&record, &net.fra_key))
        .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (422, Some("urn:lockgate:problem:record-discount-mismatch")),
        "{body}"
    );
    let stored = lockgate::settlement::AgreementBody::from_domain(
        &serde_json::from_value::<lockgate::settlement::AgreementBody>(list["items"][0].clone())
            .unwrap()
            .to_domain()
            .unwrap(),
    )
    .to_domain()
    .unwrap();
    record.discount = stored
        .discount(&record.lines, record.charges_total)
        .unwrap();
    record.total = record.charges_total - record.discount;
    let (status, body) = net
        .submit(&net.fra, &net.submission(&record, &net.fra_key))
        .await;
    assert_eq!(status, 201, "{body}");
    // A record line may not carry a discount of its own.
    let mut wire = net.submission(&net.record(2, 1), &net.fra_key);
    wire["record"]["lines"][0]["rate"]["discountBps"] = json!(1);
    assert_eq!(net.submit(&net.fra, &wire).await.0, 400);
}
