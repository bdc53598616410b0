//! The REST API over real HTTP, against an in-process gateway on a fresh
//! database (SQLite and PostgreSQL): the ledger flow with proofs checked by
//! `ledger-core`, authentication and scopes, bad input, idempotency, tenant
//! visibility, paging, and the export verified offline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ledger_core::block::{BlockHeader, InclusionProof, SignedBlockHeader};
use ledger_core::{LockId, SignedTransaction};
use lockgate::auth::Scope;
use serde_json::json;
use support::*;

fn header_from(view: &serde_json::Value) -> SignedBlockHeader {
    SignedBlockHeader {
        header: BlockHeader {
            chain_id: chain(),
            height: view["height"].as_u64().unwrap(),
            previous_hash: view["previousHash"].as_str().unwrap().parse().unwrap(),
            timestamp_ms: view["timestampMs"].as_u64().unwrap(),
            tx_root: view["txRoot"].as_str().unwrap().parse().unwrap(),
            tx_count: view["txCount"].as_u64().unwrap() as u32,
            producer: view["producer"].as_str().unwrap().parse().unwrap(),
        },
        signature: view["signature"].as_str().unwrap().parse().unwrap(),
    }
}

/// Fetches a transaction's proof over HTTP and checks it with ledger-core,
/// trusting only the block key's address.
async fn check_proof(gateway: &Gateway, tx: &SignedTransaction) {
    let hash = tx.transaction.hash();
    let (status, view) = gateway
        .get(&format!("/v1/ledger/transactions/{hash}"), &gateway.admin())
        .await;
    assert_eq!(status, 200, "{view}");
    let returned: lockgate::dto::SignedTransactionDto =
        serde_json::from_value(view["transaction"].clone()).unwrap();
    assert_eq!(returned.to_domain().unwrap(), *tx);
    let proof = InclusionProof {
        header: header_from(&view["proof"]["blockHeader"]),
        index: view["proof"]["index"].as_u64().unwrap() as u32,
        path: view["proof"]["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                *p.as_str()
                    .unwrap()
                    .parse::<ledger_core::TxHash>()
                    .unwrap()
                    .as_bytes()
            })
            .collect(),
    };
    let trusted = [gateway.app.block_producer];
    proof.verify(tx, &trusted).unwrap();
}

async fn ledger_flow(kind: Db) {
    let gateway = Gateway::start(kind).await;
    let (alice, bob, carol) = (key(2), key(3), key(4));
    fund(&gateway, &[&alice, &carol], 10_000).await;

    // A batch: a transfer and a lock of alice in one block.
    let now = lockgate::sequencer::now_ms();
    let secret = [9u8; 32];
    let transfer_tx = sign(&alice, 0, transfer("EUR", bob.address(), 2_500));
    let lock_tx = sign(
        &alice,
        1,
        lock("EUR", bob.address(), 1_000, &secret, now + 60_000),
    );
    let lock_id = LockId::from(lock_tx.transaction.hash());
    let (status, body) = gateway
        .post(
            "/v1/ledger/transactions/batch",
            &gateway.admin(),
            &json!({ "transactions": [wire(&transfer_tx), wire(&lock_tx)] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "committed");
    assert_eq!(results[1]["receipt"]["lockId"], lock_id.to_string());
    assert_eq!(
        results[0]["receipt"]["blockHeight"],
        results[1]["receipt"]["blockHeight"]
    );

    let (status, htlc) = gateway
        .get(&format!("/v1/ledger/htlcs/{lock_id}"), &gateway.admin())
        .await;
    assert_eq!((status, htlc["status"].as_str()), (200, Some("locked")));

    // Claim by bob with the preimage.
    let (status, body) = gateway
        .submit(&sign(&bob, 0, claim(lock_id, &secret)))
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, htlc) = gateway
        .get(&format!("/v1/ledger/htlcs/{lock_id}"), &gateway.admin())
        .await;
    assert_eq!(htlc["status"], "claimed");
    assert_eq!(htlc["preimage"], format!("0x{}", hex::encode(secret)));

    // A lock that expires, then its refund (refused before expiry).
    let expiry = lockgate::sequencer::now_ms() + 400;
    let short = sign(&carol, 0, lock("EUR", bob.address(), 700, &[1; 32], expiry));
    let short_id = LockId::from(short.transaction.hash());
    assert_eq!(gateway.submit(&short).await.0, 201);
    let (status, body) = gateway.submit(&sign(&carol, 1, refund(short_id))).await;
    assert_eq!(status, 422);
    assert_eq!(body["type"], "urn:lockgate:problem:htlc-not-yet-expired");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let refund_tx = sign(&carol, 1, refund(short_id));
    let (status, body) = gateway.submit(&refund_tx).await;
    assert_eq!(status, 201, "{body}");

    // Balances as the ledger says.
    let balance = |v: &serde_json::Value| v["balances"][0]["amount"].as_str().unwrap().to_string();
    let (_, a) = gateway
        .get(
            &format!("/v1/ledger/accounts/{}", alice.address()),
            &gateway.admin(),
        )
        .await;
    assert_eq!(
        (balance(&a), a["nextNonce"].as_str().unwrap()),
        ("6500".to_string(), "2")
    );
    let (_, b) = gateway
        .get(
            &format!("/v1/ledger/accounts/{}", bob.address()),
            &gateway.admin(),
        )
        .await;
    assert_eq!(balance(&b), "3500");
    let (_, c) = gateway
        .get(
            &format!("/v1/ledger/accounts/{}", carol.address()),
            &gateway.admin(),
        )
        .await;
    assert_eq!(balance(&c), "10000");

    // Proofs of every kind of transaction check out with ledger-core.
    for tx in [&transfer_tx, &lock_tx, &refund_tx] {
        check_proof(&gateway, tx).await;
    }

    // The export verifies offline, pinned to the block key.
    let response = gateway
        .http
        .get(format!("{}/v1/ledger/export", gateway.base))
        .bearer_auth(gateway.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let report = lockgate::export::verify_export(
        text.as_bytes(),
        Some(chain()),
        vec![gateway.app.block_producer],
    )
    .unwrap();
    assert_eq!(report.summary.blocks, gateway.block_count().await);
    let eur = report.summary.state.asset(asset("EUR")).unwrap().unwrap();
    assert_eq!(eur.supply.minor_units(), 20_000);
    // An export cut short (its last block removed) fails.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.pop();
    let truncated = lines.join("\n");
    let error = lockgate::export::verify_export(
        truncated.as_bytes(),
        Some(chain()),
        vec![gateway.app.block_producer],
    )
    .unwrap_err();
    assert!(
        matches!(error, lockgate::export::VerifyError::Truncated { .. }),
        "{error}"
    );
    // A tampered export names the line at fault.
    let tampered = text.replacen("\"amount\":\"2500\"", "\"amount\":\"2499\"", 1);
    let error = lockgate::export::verify_export(
        tampered.as_bytes(),
        Some(chain()),
        vec![gateway.app.block_producer],
    )
    .unwrap_err();
    assert!(
        matches!(error, lockgate::export::VerifyError::Chain { line, .. } if line > 1),
        "{error}"
    );
}

#[tokio::test]
async fn ledger_flow_on_sqlite() {
    ledger_flow(Db::Sqlite).await;
}

#[tokio::test]
async fn ledger_flow_on_postgres() {
    ledger_flow(Db::Postgres).await;
}

/// A JWT signed with the right secret but the claims and header we choose.
fn forge(header: serde_json::Value, claims: serde_json::Value, secret: &[u8]) -> String {
    use base64_url as b64;
    let h = b64::encode(header.to_string().as_bytes());
    let c = b64::encode(claims.to_string().as_bytes());
    let input = format!("{h}.{c}");
    let signature = hmac_sha256(secret, input.as_bytes());
    format!("{input}.{}", b64::encode(&signature))
}

mod base64_url {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    pub(crate) fn encode(bytes: &[u8]) -> String {
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use ledger_core::hash::{sha256, sha256_concat};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = sha256_concat(&[&ipad, message]);
    sha256_concat(&[&opad, &inner])
}

#[tokio::test]
async fn authentication_failures_are_401_and_change_nothing() {
    let gateway = Gateway::start(Db::Sqlite).await;
    let secret = [0x42u8; 32];
    let now = lockgate::sequencer::now_ms() / 1000;
    let claims = |iss: &str, aud: &str, exp: u64| json!({"iss": iss, "aud": aud, "sub": "x", "exp": exp, "iat": now, "tenant": "t", "scope": "ledger:submit ledger:register-asset ledger:read"});
    let good_header = json!({"alg": "HS256", "typ": "JWT"});
    let valid = forge(
        good_header.clone(),
        claims("lockgate-dev", "lockgate", now + 600),
        &secret,
    );
    // Sanity: the forged-by-hand valid token is accepted.
    let tx = sign(&key(1), 0, register("EUR"));
    let (status, _) = gateway.get("/v1/ledger/blocks", &valid).await;
    assert_eq!(status, 200);

    let mut tampered = valid.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let unsigned = {
        let h = base64_url::encode(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes());
        let c = base64_url::encode(
            claims("lockgate-dev", "lockgate", now + 600)
                .to_string()
                .as_bytes(),
        );
        format!("{h}.{c}.")
    };
    let cases = [
        (
            "expired",
            forge(
                good_header.clone(),
                claims("lockgate-dev", "lockgate", now - 3600),
                &secret,
            ),
        ),
        (
            "wrong issuer",
            forge(
                good_header.clone(),
                claims("someone-else", "lockgate", now + 600),
                &secret,
            ),
        ),
        (
            "wrong audience",
            forge(
                good_header.clone(),
                claims("lockgate-dev", "other", now + 600),
                &secret,
            ),
        ),
        ("alg none", unsigned),
        (
            "wrong algorithm",
            forge(
                json!({"alg": "HS384", "typ": "JWT"}),
                claims("lockgate-dev", "lockgate", now + 600),
                &secret,
            ),
        ),
        ("tampered", tampered),
        (
            "wrong key",
            forge(
                good_header.clone(),
                claims("lockgate-dev", "lockgate", now + 600),
                &[1; 32],
            ),
        ),
        ("garbage", "not-a-jwt".to_string()),
    ];
    for (name, token) in cases {
        let (status, body) = gateway
            .post("/v1/ledger/transactions", &token, &wire(&tx))
            .await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["type"], "urn:lockgate:problem:unauthorized", "{name}");
    }
    let response = gateway
        .http
        .post(format!("{}/v1/ledger/transactions", gateway.base))
        .json(&wire(&tx))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "missing token");
    // RFC 9110: a 401 names the scheme; RFC 6750 section 3.1: without
    // credentials, no error code.
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"lockgate\""
    );
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );

    // A token that was sent and is not valid: invalid_token.
    let response = gateway
        .http
        .post(format!("{}/v1/ledger/transactions", gateway.base))
        .bearer_auth("not-a-jwt")
        .json(&wire(&tx))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"lockgate\", error=\"invalid_token\""
    );

    // Valid tokens without the scope: 403, with the scope it needs in the
    // challenge (RFC 6750 section 3.1, insufficient_scope).
    let read_only = gateway.token(&[Scope::LedgerRead], &[]);
    let response = gateway
        .http
        .post(format!("{}/v1/ledger/transactions", gateway.base))
        .bearer_auth(&read_only)
        .json(&wire(&tx))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"lockgate\", error=\"insufficient_scope\", scope=\"ledger:register-asset\""
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["type"], "urn:lockgate:problem:forbidden");
    let submit_only = gateway.token(&[Scope::LedgerSubmit], &[]);
    let (status, _) = gateway
        .post("/v1/ledger/transactions", &submit_only, &wire(&tx))
        .await;
    assert_eq!(status, 403, "RegisterAsset needs ledger:register-asset");
    let (status, _) = gateway.get("/v1/ledger/export", &read_only).await;
    assert_eq!(status, 403);
    // A batch is refused as a whole without the scope, before anything runs.
    let (status, body) = gateway
        .post(
            "/v1/ledger/transactions/batch",
            &read_only,
            &json!({ "transactions": [wire(&tx)] }),
        )
        .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (403, Some("urn:lockgate:problem:forbidden"))
    );
    // The scheme name is case-insensitive.
    let lower = gateway
        .http
        .get(format!("{}/v1/ledger/blocks", gateway.base))
        .header("authorization", format!("bearer {valid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), 200);
    assert_eq!(
        gateway.block_count().await,
        0,
        "a refused request changed the ledger"
    );

    // Open endpoints.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs/"] {
        let response = gateway
            .http
            .get(format!("{}{path}", gateway.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

/// One bad request: the body (or raw text) and what it must get.
struct BadCase {
    name: &'static str,
    body: String,
    content_type: &'static str,
    status: u16,
    slug: &'static str,
    pointer: Option<&'static str>,
}

fn bad_cases(
    good: &ledger_core::SignedTransaction,
    signer: &ledger_core::SigningKey,
) -> Vec<BadCase> {
    let json_case = |name, edit: &dyn Fn(&mut serde_json::Value), status, slug, pointer| {
        let mut body = wire(good);
        edit(&mut body);
        BadCase {
            name,
            body: body.to_string(),
            content_type: "application/json",
            status,
            slug,
            pointer,
        }
    };
    let other_chain = ledger_core::Transaction {
        chain_id: ledger_core::ChainId::new(CHAIN + 1).unwrap(),
        ..good.transaction.clone()
    }
    .sign(signer)
    .unwrap();
    let forged_signature = sign(&key(9), 0, transfer("EUR", key(3).address(), 10)).signature;
    let ahead = sign(signer, 5, transfer("EUR", key(3).address(), 10));
    let too_much = sign(signer, 0, transfer("EUR", key(3).address(), 1_000_000));
    vec![
        BadCase {
            name: "malformed JSON",
            body: "{\"chainId\": ".into(),
            content_type: "application/json",
            status: 400,
            slug: "malformed-json",
            pointer: None,
        },
        BadCase {
            name: "not JSON",
            body: wire(good).to_string(),
            content_type: "text/plain",
            status: 415,
            slug: "unsupported-media-type",
            pointer: None,
        },
        BadCase {
            name: "oversized",
            body: format!("{{\"pad\": \"{}\"}}", "x".repeat(2 << 20)),
            content_type: "application/json",
            status: 413,
            slug: "payload-too-large",
            pointer: None,
        },
        json_case(
            "unknown field",
            &|b| b["memo"] = json!("hi"),
            400,
            "unknown-field",
            None,
        ),
        json_case(
            "unknown field in message",
            &|b| b["message"]["memo"] = json!("hi"),
            400,
            "unknown-field",
            Some("/message"),
        ),
        json_case(
            "missing field",
            &|b| {
                b.as_object_mut().unwrap().remove("signature");
            },
            400,
            "missing-field",
            None,
        ),
        json_case(
            "wrong type",
            &|b| b["chainId"] = json!(4201),
            400,
            "wrong-type",
            None,
        ),
        json_case(
            "wrong type in message",
            &|b| b["message"]["amount"] = json!(10),
            400,
            "wrong-type",
            Some("/message"),
        ),
        json_case(
            "bad hex address",
            &|b| b["message"]["to"] = json!("0xZZ"),
            400,
            "invalid-hex",
            Some("/message/to"),
        ),
        json_case(
            "bad hex signature",
            &|b| b["signature"] = json!("0x1234"),
            400,
            "invalid-hex",
            Some("/signature"),
        ),
        json_case(
            "bad amount",
            &|b| b["message"]["amount"] = json!("1.5"),
            400,
            "invalid-field",
            Some("/message/amount"),
        ),
        json_case(
            "wrong checksum",
            &|b| {
                let to = b["message"]["to"].as_str().unwrap().to_string();
                let flipped: String = to
                    .chars()
                    .enumerate()
                    .map(|(i, c)| {
                        if i > 1 && c.is_ascii_alphabetic() {
                            if c.is_ascii_uppercase() {
                                c.to_ascii_lowercase()
                            } else {
                                c.to_ascii_uppercase()
                            }
                        } else {
                            c
                        }
                    })
                    .collect();
                b["message"]["to"] = json!(flipped);
            },
            400,
            "invalid-field",
            Some("/message/to"),
        ),
        json_case(
            "wrong chain id",
            &|b| *b = wire(&other_chain),
            422,
            "wrong-chain",
            None,
        ),
        json_case(
            "bad signature",
            &|b| b["signature"] = json!(forged_signature.to_string()),
            422,
            "bad-signature",
            None,
        ),
        json_case("nonce gap", &|b| *b = wire(&ahead), 422, "nonce-gap", None),
        json_case(
            "insufficient balance",
            &|b| *b = wire(&too_much),
            422,
            "insufficient-balance",
            None,
        ),
    ]
}

async fn bad_input(kind: Db) {
    let gateway = Gateway::start(kind).await;
    let alice = key(2);
    fund(&gateway, &[&alice], 1_000).await;
    let token = gateway.admin();
    let good = sign(&alice, 0, transfer("EUR", key(3).address(), 10));
    let before = gateway.fingerprint().await;
    for case in bad_cases(&good, &alice) {
        for idempotency_key in [None, Some(format!("bad-{}", case.name.replace(' ', "-")))] {
            let mut request = gateway
                .http
                .post(format!("{}/v1/ledger/transactions", gateway.base))
                .bearer_auth(&token)
                .header("content-type", case.content_type)
                .body(case.body.clone());
            if let Some(key) = &idempotency_key {
                request = request.header("idempotency-key", key);
            }
            let response = request.send().await.unwrap();
            let name = case.name;
            assert_eq!(response.status().as_u16(), case.status, "{name}");
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json",
                "{name}"
            );
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(
                body["type"],
                format!("urn:lockgate:problem:{}", case.slug),
                "{name}: {body}"
            );
            assert_eq!(body["status"], case.status, "{name}");
            assert!(body["requestId"].is_string(), "{name}");
            if let Some(pointer) = case.pointer {
                assert_eq!(body["pointer"], pointer, "{name}");
            }
        }
    }
    // Inside a batch, each bad transaction gets its own problem, and a batch
    // of nothing but bad ones changes nothing either.
    let batch: Vec<serde_json::Value> = bad_cases(&good, &alice)
        .into_iter()
        .filter(|c| c.status == 422)
        .map(|c| serde_json::from_str(&c.body).unwrap())
        .collect();
    let (status, body) = gateway
        .post(
            "/v1/ledger/transactions/batch",
            &token,
            &json!({ "transactions": batch }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for item in body["results"].as_array().unwrap() {
        assert_eq!(item["status"], "rejected", "{item}");
        assert_eq!(item["problem"]["status"], 422);
    }
    assert_eq!(
        gateway.fingerprint().await,
        before,
        "bad input changed the database"
    );

    // A replayed nonce: a different transaction with a used nonce.
    assert_eq!(gateway.submit(&good).await.0, 201);
    let after_good = gateway.fingerprint().await;
    let replay = sign(&alice, 0, transfer("EUR", key(4).address(), 1));
    let (status, body) = gateway.submit(&replay).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (422, Some("urn:lockgate:problem:nonce-replay"))
    );
    assert_eq!(gateway.fingerprint().await, after_good);

    // Bad path and query parameters, methods, routes: problems too.
    for (path, status, slug) in [
        ("/v1/ledger/transactions/0x12", 400, "invalid-parameter"),
        ("/v1/ledger/blocks?limit=0", 400, "invalid-parameter"),
        ("/v1/ledger/blocks?limit=abc", 400, "invalid-parameter"),
        ("/v1/ledger/blocks?color=red", 400, "invalid-parameter"),
        (
            "/v1/ledger/blocks?cursor=18446744073709551615",
            400,
            "invalid-parameter",
        ),
        (
            "/v1/ledger/blocks/18446744073709551616",
            400,
            "invalid-parameter",
        ),
        ("/v1/ledger/accounts/%FF", 400, "invalid-parameter"),
        ("/v1/nothing", 404, "not-found"),
    ] {
        let (got, body) = gateway.get(path, &token).await;
        assert_eq!(
            (got, body["type"].as_str()),
            (
                status,
                Some(format!("urn:lockgate:problem:{slug}").as_str())
            ),
            "{path}: {body}"
        );
    }
    // The pointer names the parameter at fault, and the title is the
    // type's own, whichever layer refused.
    let mut titles = std::collections::BTreeSet::new();
    for (path, pointer) in [
        ("/v1/ledger/blocks?limit=abc", "/limit"),
        ("/v1/ledger/blocks?limit=0", "/limit"),
        ("/v1/ledger/transactions/0x12", "/hash"),
    ] {
        let (_, body) = gateway.get(path, &token).await;
        assert_eq!(body["pointer"], pointer, "{path}: {body}");
        titles.insert(body["title"].to_string());
    }
    let (_, body) = gateway.get("/v1/ledger/accounts/%FF", &token).await;
    titles.insert(body["title"].to_string());
    assert_eq!(
        titles.len(),
        1,
        "one title for invalid-parameter: {titles:?}"
    );
    let response = gateway
        .http
        .delete(format!("{}/v1/ledger/blocks", gateway.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn bad_input_gets_specific_problems_and_changes_nothing_on_sqlite() {
    bad_input(Db::Sqlite).await;
}

#[tokio::test]
async fn bad_input_gets_specific_problems_and_changes_nothing_on_postgres() {
    bad_input(Db::Postgres).await;
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_answer() {
    let gateway = Gateway::start(Db::Postgres).await;
    let alice = key(2);
    fund(&gateway, &[&alice], 1_000).await;
    let token = gateway.admin();
    let send = |body: serde_json::Value, key: &'static str| {
        gateway
            .http
            .post(format!("{}/v1/ledger/transactions", gateway.base))
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let tx = sign(&alice, 0, transfer("EUR", key(3).address(), 10));
    let first = send(wire(&tx), "pay-1").await.unwrap();
    assert_eq!(first.status(), 201);
    let first_body: serde_json::Value = first.json().await.unwrap();
    let again = send(wire(&tx), "pay-1").await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<serde_json::Value>().await.unwrap(), first_body);
    // The same key for another request is refused and applies nothing.
    let other = sign(&alice, 1, transfer("EUR", key(3).address(), 20));
    let reused = send(wire(&other), "pay-1").await.unwrap();
    assert_eq!(reused.status(), 422);
    let body: serde_json::Value = reused.json().await.unwrap();
    assert_eq!(body["type"], "urn:lockgate:problem:idempotency-key-reused");
    let (_, account) = gateway
        .get(&format!("/v1/ledger/accounts/{}", alice.address()), &token)
        .await;
    assert_eq!(account["nextNonce"], "1");
    // A refusal is an answer too: replayed as it was.
    let refused = sign(&alice, 9, transfer("EUR", key(3).address(), 1));
    assert_eq!(send(wire(&refused), "pay-2").await.unwrap().status(), 422);
    let replayed = send(wire(&refused), "pay-2").await.unwrap();
    assert_eq!(replayed.status(), 422);
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");

    // Two different requests (from two different senders, so both could
    // apply) racing on one key: exactly one of them runs.
    let dave = key(7);
    let issue_dave = sign(&key(1), 2, issue("EUR", dave.address(), 100));
    assert_eq!(gateway.submit(&issue_dave).await.0, 201);
    let nonce_of = |who: ledger_core::Address| {
        let gateway = &gateway;
        let token = token.clone();
        async move {
            let (_, account) = gateway
                .get(&format!("/v1/ledger/accounts/{who}"), &token)
                .await;
            account["nextNonce"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        }
    };
    for round in 0..5u64 {
        let key_name: &'static str = Box::leak(format!("race-{round}").into_boxed_str());
        let (alice_before, dave_before) = (
            nonce_of(alice.address()).await,
            nonce_of(dave.address()).await,
        );
        let a = sign(&alice, alice_before, transfer("EUR", key(3).address(), 1));
        let b = sign(&dave, dave_before, transfer("EUR", key(4).address(), 1));
        let (ra, rb) = tokio::join!(send(wire(&a), key_name), send(wire(&b), key_name));
        let statuses = [ra.unwrap().status().as_u16(), rb.unwrap().status().as_u16()];
        assert!(statuses.contains(&201), "{statuses:?}");
        assert!(
            statuses.iter().all(|s| [201, 409, 422].contains(s)),
            "{statuses:?}"
        );
        let advanced = (nonce_of(alice.address()).await - alice_before)
            + (nonce_of(dave.address()).await - dave_before);
        assert_eq!(
            advanced, 1,
            "exactly one of the two requests ran ({statuses:?})"
        );
    }
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_accounts_and_transactions() {
    let gateway = Gateway::start(Db::Sqlite).await;
    let (alice, bob, mallory) = (key(2), key(3), key(5));
    fund(&gateway, &[&alice, &mallory], 1_000).await;
    let private = sign(&mallory, 0, transfer("EUR", key(6).address(), 5));
    assert_eq!(gateway.submit(&private).await.0, 201);
    let alice_tx = sign(&alice, 0, transfer("EUR", bob.address(), 5));
    assert_eq!(gateway.submit(&alice_tx).await.0, 201);

    let token = gateway.token(&[Scope::LedgerRead], &[alice.address()]);
    let (status, _) = gateway
        .get(&format!("/v1/ledger/accounts/{}", alice.address()), &token)
        .await;
    assert_eq!(status, 200);
    let (status, _) = gateway
        .get(
            &format!("/v1/ledger/transactions/{}", alice_tx.transaction.hash()),
            &token,
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = gateway
        .get(
            &format!("/v1/ledger/accounts/{}", mallory.address()),
            &token,
        )
        .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (404, Some("urn:lockgate:problem:not-found"))
    );
    let (status, _) = gateway
        .get(
            &format!("/v1/ledger/transactions/{}", private.transaction.hash()),
            &token,
        )
        .await;
    assert_eq!(status, 404);
    // Block headers are public to readers.
    let (status, _) = gateway.get("/v1/ledger/blocks/0", &token).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn blocks_page_by_cursor() {
    let gateway = Gateway::start(Db::Sqlite).await;
    let alice = key(2);
    fund(&gateway, &[&alice], 1_000).await; // blocks 0 and 1
    for nonce in 0..3 {
        assert_eq!(
            gateway
                .submit(&sign(&alice, nonce, transfer("EUR", key(3).address(), 1)))
                .await
                .0,
            201
        );
    }
    let token = gateway.admin();
    let mut heights = Vec::new();
    let mut path = "/v1/ledger/blocks?limit=2".to_string();
    loop {
        let (status, page) = gateway.get(&path, &token).await;
        assert_eq!(status, 200);
        heights.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["height"].as_u64().unwrap()),
        );
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/v1/ledger/blocks?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(heights, vec![4, 3, 2, 1, 0]);
    let (status, block) = gateway.get("/v1/ledger/blocks/2", &token).await;
    assert_eq!(status, 200);
    assert_eq!(block["transactions"].as_array().unwrap().len(), 1);
    let (status, _) = gateway.get("/v1/ledger/blocks/99", &token).await;
    assert_eq!(status, 404);
    // A limit above the configured page size is served as that size.
    let (status, page) = gateway.get("/v1/ledger/blocks?limit=10000", &token).await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    let (status, _) = gateway.get("/v1/ledger/blocks?limit=10001", &token).await;
    assert_eq!(status, 400);
}

/// Sixteen clients hammer the same accounts over HTTP; the database itself
/// shows afterwards that nothing was lost or overdrawn.
async fn concurrent_clients(kind: Db) {
    let gateway = Gateway::start(kind).await;
    let holders: Vec<_> = (10..26).map(key).collect();
    let refs: Vec<&ledger_core::SigningKey> = holders.iter().collect();
    fund(&gateway, &refs, 1_000).await;
    let gateway = std::sync::Arc::new(gateway);
    // Each of 16 clients owns one funded key (senders need their own nonce
    // sequence) and pays varying amounts to the first four of them, which
    // also pay out, so the same rows are hit from every side.
    let mut clients = Vec::new();
    for client in 0..16u64 {
        let gateway = gateway.clone();
        let holders = holders.clone();
        clients.push(tokio::spawn(async move {
            let me = holders[client as usize].clone();
            let mut nonce = 0;
            let mut applied = 0u64;
            for round in 0..25u64 {
                let to = holders[((client + round) % 4) as usize].address();
                let tx = sign(
                    &me,
                    nonce,
                    transfer("EUR", to, u128::from(1 + (round * 7 + client) % 50)),
                );
                let (status, body) = gateway.submit(&tx).await;
                match status {
                    201 => {
                        nonce += 1;
                        applied += 1;
                    }
                    422 => assert_eq!(
                        body["type"], "urn:lockgate:problem:insufficient-balance",
                        "{body}"
                    ),
                    _ => panic!("unexpected {status}: {body}"),
                }
            }
            (me.address(), applied)
        }));
    }
    let mut expected_nonces = Vec::new();
    for client in clients {
        expected_nonces.push(client.await.unwrap());
    }
    // Check from the database itself.
    let rows = gateway.rows("SELECT asset, amount FROM balances").await;
    let held: u128 = rows
        .iter()
        .map(|r| r["amount"].parse::<u128>().unwrap())
        .sum();
    let supply = gateway
        .rows("SELECT supply FROM assets WHERE code = 'EUR'")
        .await;
    assert_eq!(
        held.to_string(),
        supply[0]["supply"],
        "balances add up to the supply"
    );
    assert_eq!(supply[0]["supply"], "16000");
    for (address, applied) in expected_nonces {
        let hex_address = hex::encode(address.as_bytes());
        let (status, account) = gateway
            .get(&format!("/v1/ledger/accounts/{address}"), &gateway.admin())
            .await;
        assert_eq!(status, 200, "{account}");
        let nonce: u64 = account["nextNonce"].as_str().unwrap().parse().unwrap();
        let committed = gateway
            .rows(&format!(
                "SELECT nonce FROM transactions WHERE {}",
                gateway.address_is("sender", &hex_address)
            ))
            .await;
        assert_eq!(nonce, applied, "every acknowledged transaction is there");
        assert_eq!(committed.len() as u64, applied, "and only those, once each");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_lose_no_update_on_postgres() {
    concurrent_clients(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_lose_no_update_on_sqlite() {
    concurrent_clients(Db::Sqlite).await;
}

#[tokio::test]
async fn a_request_over_the_time_limit_gets_503_timeout() {
    let db = TestDb::new(Db::Sqlite).await;
    let gateway = Gateway::start_on(db, |config| config.limits.request_timeout_ms = 1).await;
    // 256 signatures to recover take several milliseconds on any machine.
    let alice = key(2);
    let txs: Vec<serde_json::Value> = (0..256)
        .map(|n| wire(&sign(&alice, n, transfer("EUR", key(3).address(), 1))))
        .collect();
    let (status, body) = gateway
        .post(
            "/v1/ledger/transactions/batch",
            &gateway.admin(),
            &json!({ "transactions": txs }),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "urn:lockgate:problem:timeout");
}

/// One gateway hosting two built-in ledgers (a cash ledger and a securities
/// ledger): each has its own chain id, block key, history and export; a
/// transaction goes to the ledger its chain id names.
async fn two_ledgers(kind: Db) {
    let db = TestDb::new(kind).await;
    let second_key = ledger_core::hash::sha256(b"second-ledger-block-key");
    let gateway = Gateway::start_on(db, |config| {
        config.extra_ledgers.push(lockgate::config::LedgerConfig {
            chain_id: CHAIN + 1,
            block_key: Some(lockgate::config::Secret::new(hex::encode(second_key))),
            batch_wait_ms: 1,
            ..lockgate::config::LedgerConfig::default()
        });
    })
    .await;
    let securities = ledger_core::ChainId::new(CHAIN + 1).unwrap();
    let token = gateway.admin();
    let (issuer, alice, bob) = (key(1), key(2), key(3));

    let (status, list) = gateway.get("/v1/ledgers", &token).await;
    assert_eq!(status, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0]["primary"].as_bool(), items[1]["chainId"].as_str()),
        (Some(true), Some("4202"))
    );

    // Cash on the primary ledger, a security on the second; the issuer's
    // nonces are per ledger.
    fund(&gateway, &[&alice], 1_000).await;
    let sec = |nonce, body| sign_on(securities, &issuer, nonce, body);
    assert_eq!(gateway.submit(&sec(0, register("BOND"))).await.0, 201);
    assert_eq!(
        gateway
            .submit(&sec(1, issue("BOND", bob.address(), 10)))
            .await
            .0,
        201
    );
    // A batch spanning both ledgers: each transaction lands in its own.
    let pay = sign(&alice, 0, transfer("EUR", bob.address(), 100));
    let deliver = sign_on(securities, &bob, 0, transfer("BOND", alice.address(), 4));
    let (status, body) = gateway
        .post(
            "/v1/ledger/transactions/batch",
            &token,
            &json!({ "transactions": [wire(&pay), wire(&deliver)] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "committed"),
        "{body}"
    );

    let balances = |v: &serde_json::Value| {
        v["balances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["asset"].as_str().unwrap().to_string(),
                    b["amount"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let (_, cash) = gateway
        .get(&format!("/v1/ledger/accounts/{}", alice.address()), &token)
        .await;
    assert_eq!(
        balances(&cash),
        vec![("EUR".to_string(), "900".to_string())]
    );
    let (_, bonds) = gateway
        .get(
            &format!("/v1/ledger/accounts/{}?chainId=4202", alice.address()),
            &token,
        )
        .await;
    assert_eq!(
        balances(&bonds),
        vec![("BOND".to_string(), "4".to_string())]
    );

    // Reads: a hash is found on whichever ledger holds it, unless pinned.
    let hash = deliver.transaction.hash();
    let (status, _) = gateway
        .get(&format!("/v1/ledger/transactions/{hash}"), &token)
        .await;
    assert_eq!(status, 200);
    let (status, _) = gateway
        .get(
            &format!("/v1/ledger/transactions/{hash}?chainId=4201"),
            &token,
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = gateway.get("/v1/ledger/blocks?chainId=999", &token).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (404, Some("urn:lockgate:problem:not-found"))
    );
    let (_, blocks) = gateway.get("/v1/ledger/blocks?chainId=4202", &token).await;
    let heights: Vec<u64> = blocks["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["height"].as_u64().unwrap())
        .collect();
    assert_eq!(
        heights,
        vec![2, 1, 0],
        "the second ledger has a chain of its own"
    );

    // A chain id hosted nowhere here is another chain.
    let elsewhere = sign_on(
        ledger_core::ChainId::new(4999).unwrap(),
        &alice,
        1,
        transfer("EUR", bob.address(), 1),
    );
    let (status, body) = gateway.submit(&elsewhere).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (422, Some("urn:lockgate:problem:wrong-chain"))
    );

    // Each ledger's export verifies against its own block key.
    for (chain, producer) in [
        (chain(), gateway.app.block_producer),
        (
            securities,
            ledger_core::SigningKey::from_bytes(second_key)
                .unwrap()
                .address(),
        ),
    ] {
        let response = gateway
            .http
            .get(format!("{}/v1/ledger/export?chainId={chain}", gateway.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let text = response.text().await.unwrap();
        let report =
            lockgate::export::verify_export(text.as_bytes(), Some(chain), vec![producer]).unwrap();
        assert_eq!(report.summary.blocks, 3);
    }
}

#[tokio::test]
async fn two_ledgers_in_one_gateway_on_sqlite() {
    two_ledgers(Db::Sqlite).await;
}

#[tokio::test]
async fn two_ledgers_in_one_gateway_on_postgres() {
    two_ledgers(Db::Postgres).await;
}

/// `/metrics`: requests by route template and status, transactions by
/// outcome, batch sizes, the block height, the producer role, value locked
/// by sender and the pool, each moving exactly as the requests made them.
#[tokio::test]
async fn metrics_follow_requests_commits_and_locks() {
    let gateway = Gateway::start(Db::Postgres).await;
    let chain = CHAIN.to_string();
    let before = gateway.metrics().await;
    let (alice, bob) = (key(2), key(3));
    fund(&gateway, &[&alice], 1_000).await; // two transactions, 201 each
    let now = lockgate::sequencer::now_ms();
    let (status, _) = gateway
        .submit(&sign(
            &alice,
            0,
            lock("EUR", bob.address(), 300, &[5u8; 32], now + 600_000),
        ))
        .await;
    assert_eq!(status, 201);
    // More than alice holds: the ledger rejects it.
    let (rejected, body) = gateway
        .submit(&sign(&alice, 1, transfer("EUR", bob.address(), 5_000)))
        .await;
    assert_eq!(rejected, 422, "{body}");
    let (status, _) = gateway.get("/v1/transfers/nope", &gateway.admin()).await;
    assert_eq!(status, 404);
    let (status, _) = gateway.get("/no/such/route", &gateway.admin()).await;
    assert_eq!(status, 404);

    let after = gateway.metrics().await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let post = [("method", "POST"), ("route", "/v1/ledger/transactions")];
    assert_eq!(
        delta(
            "lockgate_http_requests_total",
            &[post[0], post[1], ("status", "201")]
        ),
        3.0
    );
    assert_eq!(
        delta(
            "lockgate_http_requests_total",
            &[post[0], post[1], ("status", "422")]
        ),
        1.0
    );
    assert_eq!(
        delta("lockgate_http_request_duration_seconds_count", &post),
        4.0
    );
    assert_eq!(
        delta(
            "lockgate_http_request_duration_seconds_bucket",
            &[post[0], post[1], ("le", "+Inf")]
        ),
        4.0
    );
    assert_eq!(
        delta(
            "lockgate_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/v1/transfers/{id}"),
                ("status", "404")
            ]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "lockgate_http_requests_total",
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    let outcome = |o: &'static str| [("chain_id", chain.as_str()), ("outcome", o)];
    assert_eq!(
        delta("lockgate_ledger_transactions_total", &outcome("applied")),
        3.0
    );
    assert_eq!(
        delta("lockgate_ledger_transactions_total", &outcome("rejected")),
        1.0
    );
    assert_eq!(
        delta(
            "lockgate_ledger_batch_transactions_sum",
            &[("chain_id", chain.as_str())]
        ),
        4.0
    );
    assert_eq!(
        after.value(
            "lockgate_ledger_block_height",
            &[("chain_id", chain.as_str())]
        ),
        gateway.block_count().await as f64 - 1.0
    );
    assert_eq!(
        after.value("lockgate_block_producer", &[("chain_id", chain.as_str())]),
        1.0
    );
    let alice_hex = alice.address().to_string();
    assert_eq!(
        after.value(
            "lockgate_value_locked",
            &[
                ("chain_id", chain.as_str()),
                ("asset", "EUR"),
                ("participant", alice_hex.as_str())
            ]
        ),
        300.0
    );
    let age = after.value(
        "lockgate_value_locked_oldest_seconds",
        &[("participant", alice_hex.as_str())],
    );
    assert!((0.0..60.0).contains(&age), "{age}");
    assert_eq!(
        after.value("lockgate_db_pool_connections_max", &[]),
        gateway.app.config.database_connections_max as f64
    );
    assert!(after.value("lockgate_db_pool_connections", &[("state", "in_use")]) >= 0.0);
}

/// Per-tenant rate limit: a tenant over its burst gets 429 with
/// `Retry-After` and nothing it sent is processed; another tenant and the
/// probes are not affected; the bucket refills.
#[tokio::test]
async fn a_tenant_over_its_rate_gets_429_with_retry_after_and_changes_nothing() {
    let db = TestDb::new(Db::Sqlite).await;
    let gateway = Gateway::start_on(db, |config| {
        config.limits.tenant_requests_per_s = 1;
        config.limits.tenant_burst = 3;
    })
    .await;
    let now = lockgate::sequencer::now_ms() / 1000;
    let other = gateway
        .app
        .auth
        .mint("test", "tenant-b", &Scope::ALL, &[], now, 600)
        .unwrap();
    let admin = gateway.admin();
    for _ in 0..3 {
        assert_eq!(gateway.get("/v1/ledger/blocks", &admin).await.0, 200);
    }
    let before = gateway.fingerprint().await;
    let response = gateway
        .http
        .post(format!("{}/v1/ledger/transactions", gateway.base))
        .header("authorization", format!("Bearer {admin}"))
        .json(&wire(&sign(&key(1), 0, register("EUR"))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["type"], "urn:lockgate:problem:rate-limited");
    assert_eq!(body["status"], 429);
    assert_eq!(
        gateway.fingerprint().await,
        before,
        "a limited request changed the ledger"
    );
    // Another tenant has its own bucket; probes are never limited.
    assert_eq!(gateway.get("/v1/ledger/blocks", &other).await.0, 200);
    for path in ["/healthz", "/readyz", "/metrics"] {
        let status = gateway
            .http
            .get(format!("{}{path}", gateway.base))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{path}");
    }
    // One second later the bucket holds a request again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = gateway.submit(&sign(&key(1), 0, register("EUR"))).await;
    assert_eq!(status, 201, "{body}");
}

/// A 503 always says when to retry: the request time limit here (the
/// submission paths, which store their answer for idempotent replay, are
/// covered by the same middleware; tests/tests/gateway_process.rs checks
/// `not-block-producer`).
#[tokio::test]
async fn a_timed_out_request_gets_retry_after() {
    let db = TestDb::new(Db::Sqlite).await;
    let gateway = Gateway::start_on(db, |config| config.limits.request_timeout_ms = 1).await;
    let txs: Vec<serde_json::Value> = (0..256)
        .map(|n| wire(&sign(&key(2), n, transfer("EUR", key(3).address(), 1))))
        .collect();
    let response = gateway
        .http
        .post(format!("{}/v1/ledger/transactions/batch", gateway.base))
        .header("authorization", format!("Bearer {}", gateway.admin()))
        .json(&json!({ "transactions": txs }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
}

/// The connection limit: with two connections open, a third is not served
/// until one of them closes, and then it is.
#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::new(Db::Sqlite).await;
    let gateway = Gateway::start_on(db, |config| config.limits.connections_max = 2).await;
    let address = gateway.base.trim_start_matches("http://").to_string();
    let request = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n";
    async fn answered(stream: &mut tokio::net::TcpStream) -> String {
        let mut buffer = vec![0u8; 1024];
        let n = stream.read(&mut buffer).await.unwrap();
        String::from_utf8_lossy(&buffer[..n]).to_string()
    }
    let mut first = tokio::net::TcpStream::connect(&address).await.unwrap();
    first.write_all(request).await.unwrap();
    assert!(answered(&mut first).await.starts_with("HTTP/1.1 200"));
    let mut second = tokio::net::TcpStream::connect(&address).await.unwrap();
    second.write_all(request).await.unwrap();
    assert!(answered(&mut second).await.starts_with("HTTP/1.1 200"));
    // Both stay open (keep-alive). A third connects (the kernel's backlog)
    // but is not served.
    let mut third = tokio::net::TcpStream::connect(&address).await.unwrap();
    third.write_all(request).await.unwrap();
    let mut buffer = vec![0u8; 1024];
    let waited = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        third.read(&mut buffer),
    )
    .await;
    assert!(
        waited.is_err(),
        "a third connection was served beyond the limit"
    );
    drop(first);
    let served = tokio::time::timeout(std::time::Duration::from_secs(10), answered(&mut third))
        .await
        .expect("the third connection is served once one closes");
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    // The second connection still works.
    second.write_all(request).await.unwrap();
    assert!(answered(&mut second).await.starts_with("HTTP/1.1 200"));
}

/// A list cursor or stream position beyond what the store holds (2^63-1)
/// is a bad parameter (400), not a store failure (500). Found by
/// `scripts/api-fuzz` (schemathesis).
#[tokio::test]
async fn cursors_beyond_the_stored_range_are_400() {
    let gateway = Gateway::start(Db::Sqlite).await;
    let admin = gateway.admin();
    for path in [
        "/v1/transfers?cursor=9223372036854775808~00000000-0000-0000-0000-000000000000",
        "/v1/settlement/records?cursor=9223372036854775808~0x0000000000000000000000000000000000000000000000000000000000000000",
        "/v1/transfers/stream?since=9999999999999999999",
    ] {
        let (status, body) = gateway.get(path, &admin).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(
            body["type"], "urn:lockgate:problem:invalid-parameter",
            "{path}"
        );
    }
}
