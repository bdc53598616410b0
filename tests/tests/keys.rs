//! Signing keys, end to end: a gateway whose block, connector and SATP
//! identity keys come from encrypted keystore files (made with `lockgate
//! keystore`) signs exactly as with the same keys given in plain; a wrong or
//! missing keystore password stops start-up with an error that names the
//! file or variable and never the password. And a rotation of a gateway's
//! SATP identity key between two gateway processes, following the
//! procedure of docs/operations.md ("Keys"): the peer pins the new key and
//! keeps the old one, a session that was open across the rotation
//! completes, new messages carry the new key's `kid`, what was signed
//! before still verifies, and once the old key is dropped it is refused
//! like any key the peer does not pin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use adapters::satp::envelope::{self, Envelope};
use adapters::satp::jws::{self, KeySet};
use adapters::satp::messages::Message;
use adapters::satp::recovery::RecoveryMessage;
use ledger_core::hash::sha256;
use ledger_core::{Hashlock, Scale, TxBody};
use lockgate_e2e::satp::*;
use lockgate_e2e::*;
use serde_json::Value;

/// `lockgate keystore encrypt` of `key` into `out`; the JSON it prints.
async fn encrypt(env: &Env, key: &[u8; 32], password: &str, out: &Path) -> Value {
    let printed = env
        .run_with(
            &[
                "keystore",
                "encrypt",
                "--key-env",
                "KEY_TO_ENCRYPT",
                "--password-env",
                "KEYSTORE_PASSWORD",
                "--out",
                out.to_str().unwrap(),
            ],
            &[
                ("KEY_TO_ENCRYPT", &format!("0x{}", hex::encode(key))),
                ("KEYSTORE_PASSWORD", password),
            ],
        )
        .await;
    serde_json::from_str(printed.trim()).unwrap()
}

#[tokio::test]
async fn keys_from_keystore_files_sign_as_the_plain_keys_do() {
    let db = PgDatabase::new().await;
    let mut env = Env::new(&db.url);
    let dir = tempfile::tempdir().unwrap();
    // The same keys the harness gives other tests in plain.
    let block = sha256(b"e2e-block-key");
    let connector = sha256(b"keys-test-connector");
    let satp = sha256(b"keys-test-satp");
    let (block_pw, connector_pw, satp_pw) = ("block-pw-7c1e", "connector-pw-51aa", "satp-pw-93d0");
    let files = [
        dir.path().join("block.json"),
        dir.path().join("connector.json"),
        dir.path().join("satp.json"),
    ];
    let printed = [
        encrypt(&env, &block, block_pw, &files[0]).await,
        encrypt(&env, &connector, connector_pw, &files[1]).await,
        encrypt(&env, &satp, satp_pw, &files[2]).await,
    ];
    // What the command prints is the keys' public identity, no secret.
    let satp_key = p256::ecdsa::SigningKey::from_slice(&satp).unwrap();
    let satp_jwk = jws::jwk(satp_key.verifying_key());
    assert_eq!(printed[0]["address"], env.block_key.address().to_string());
    assert_eq!(
        printed[1]["address"],
        ledger_core::SigningKey::from_bytes(connector)
            .unwrap()
            .address()
            .to_string()
    );
    assert_eq!(printed[2]["identityKey"], satp_jwk);
    assert_eq!(printed[2]["kid"], jws::thumbprint(satp_key.verifying_key()));
    for (file, key) in files.iter().zip([block, connector, satp]) {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.contains(&hex::encode(key)), "the key is encrypted");
    }

    // The block and connector keystores from the file (passwords in
    // variables it names), the SATP keystore from the environment.
    env.without_var("LOCKGATE_BLOCK_KEY");
    env.write_config(&format!(
        "[ledger]\nblock_keystore = \"{}\"\nblock_keystore_password_env = \"BLOCK_PW\"\n\
         [transfers]\nconnector_keystore = \"{}\"\nconnector_keystore_password_env = \"CONNECTOR_PW\"\n",
        files[0].display(),
        files[1].display()
    ));
    let vars = [
        ("BLOCK_PW", block_pw),
        ("CONNECTOR_PW", connector_pw),
        ("LOCKGATE_SATP_KEYSTORE", files[2].to_str().unwrap()),
        ("LOCKGATE_SATP_KEYSTORE_PASSWORD", satp_pw),
    ];
    let process = env.start_with_env(&vars).await;
    let (status, identity) = process.get("/v1/satp/identity", "").await;
    assert_eq!(status, 200, "{identity}");
    assert_eq!(identity["identityKey"], satp_jwk);
    assert_eq!(identity["blockProducer"], printed[0]["address"]);
    assert_eq!(identity["account"], printed[1]["address"]);
    // Blocks are signed with the block key from the keystore: the export
    // verifies against the plain key's address.
    let token = env.token().await;
    let register = sign(
        &key(1),
        0,
        TxBody::RegisterAsset {
            code: eur(),
            scale: Scale::new(2).unwrap(),
        },
    );
    let (status, body) = process.submit(&token, &register).await.unwrap();
    assert_eq!(status, 201, "{body}");
    let export = dir.path().join("export.ndjson");
    process.export(&token, &export).await;
    let (intact, report) = env.verify(&export).await;
    assert!(intact, "{report}");
    drop(process);

    // A wrong password: start-up fails, naming the file, not the password.
    let wrong = "not-the-block-pw-4f2b";
    let mut bad = vars;
    bad[0] = ("BLOCK_PW", wrong);
    let stderr = env.start_failure(&bad).await;
    assert!(
        stderr.contains(&format!("keystore {}: wrong password", files[0].display())),
        "{stderr}"
    );
    assert!(!stderr.contains(wrong), "{stderr}");
    // The keys are read before the database is reached: with no database
    // answering (start-up would wait for it for 10 minutes), a wrong
    // password still ends start-up at once.
    let nowhere = format!("postgres://postgres@127.0.0.1:{}/nothing", free_port());
    let mut unreachable = bad.to_vec();
    unreachable.push(("LOCKGATE_DATABASE_URL", &nowhere));
    let stderr = env.start_failure(&unreachable).await;
    assert!(
        stderr.contains(&format!("keystore {}: wrong password", files[0].display())),
        "{stderr}"
    );
    assert!(!stderr.contains("does not answer"), "{stderr}");
    // The password variable unset: start-up fails, naming the variable.
    let stderr = env
        .start_failure(&[("BLOCK_PW", block_pw), bad[2], bad[3]])
        .await;
    assert!(
        stderr.contains(
            "transfers.connector_keystore_password_env: the keystore password variable \
             CONNECTOR_PW is not set"
        ),
        "{stderr}"
    );
    for secret in [block_pw, satp_pw] {
        assert!(!stderr.contains(secret), "{stderr}");
    }
    // A key and a keystore for the same key: refused, naming the settings.
    let stderr = env
        .start_failure(&[
            vars[0],
            vars[1],
            vars[2],
            vars[3],
            ("LOCKGATE_SATP_KEY", &format!("0x{}", hex::encode(satp))),
        ])
        .await;
    assert!(
        stderr.contains("set only one of LOCKGATE_SATP_KEY and LOCKGATE_SATP_KEYSTORE"),
        "{stderr}"
    );
    assert!(!stderr.contains(&hex::encode(satp)), "{stderr}");
}

/// The engine settings of the rotation test: like [`TRANSFERS`], with a
/// longer reaction bound so that a gateway restart fits between a
/// transfer's creation and the sender's lock (due about 6.5 s after it).
const ROTATION_TRANSFERS: &str = "tick_ms = 100\nreaction_ms_max = 6000\ncommit_ms_max = 500\n\
                                  claim_window_ms = 2000\nsafety_margin_ms = 500\n";

/// One transfer from alice (lock nonce `nonce`) to bob (claim nonce
/// `nonce`), completed; its id.
async fn transfer(net: &Net, pa: &Process, pb: &Process, nonce: u64, seed: u8) -> String {
    let preimage = [seed; 32];
    let hashlock = Hashlock::of_preimage(&preimage);
    let created = net.create(pa, hashlock).await;
    let id = created["id"].as_str().unwrap().to_string();
    net.lock_with_nonce(pa, &created, hashlock, nonce).await;
    net.claim_and_complete(pa, pb, &id, preimage, nonce).await;
    id
}

/// The session (id, context id) of A's transfer `id`.
async fn session_of(a: &Side, id: &str) -> (String, String) {
    let pool = a.db.pool().await;
    let row =
        sqlx::query_as("SELECT session_id, context_id FROM satp_sessions WHERE transfer_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    row
}

/// A side's stored messages of session `session`: (sender, envelope), in
/// order.
async fn session_envelopes(side: &Side, session: &str) -> Vec<(String, Envelope)> {
    let pool = side.db.pool().await;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT sender, envelope FROM satp_messages WHERE session_id = $1 ORDER BY seq",
    )
    .bind(session)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter()
        .map(|(sender, e)| (sender, serde_json::from_str(&e).unwrap()))
        .collect()
}

/// The `kid` of each envelope of the session A sent, and checks that every
/// envelope verifies with the key its `kid` names in `a_keys` or `b_keys`.
fn client_kids(envelopes: &[(String, Envelope)], a_keys: &KeySet, b_keys: &KeySet) -> Vec<String> {
    assert_eq!(envelopes.len(), 11, "a whole session");
    let mut kids = Vec::new();
    for (sender, envelope) in envelopes {
        let keys = if sender == "client" { a_keys } else { b_keys };
        let key = envelope::signer(envelope, keys)
            .unwrap_or_else(|| panic!("a {sender} message signed by an unpinned key"));
        envelope::open(envelope, key).unwrap();
        if sender == "client" {
            kids.push(jws::header_kid(&envelope.protected).unwrap());
        }
    }
    kids
}

/// A side's recovery log of session `session`, checked with `keys`; the
/// `kid` of each entry.
async fn log_kids(side: &Side, session: &str, keys: &KeySet) -> Vec<String> {
    let rows = log_rows(side, session).await;
    lockgate::satp::log::verify_chain(&rows, keys).unwrap();
    rows.iter()
        .map(|row| jws::header_kid(&row.signature).unwrap())
        .collect()
}

/// Posts `body` to B's `path`; (status, answer).
async fn post(process: &Process, path: &str, body: &Value) -> (u16, Value) {
    let response = process
        .http
        .post(format!("{}{path}", process.base))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_rotated_satp_identity_key_signs_new_messages_and_old_signatures_still_verify() {
    let mut net = Net::new_with(ROTATION_TRANSFERS).await;
    let mut pb = net.b.start(&[]).await;
    let mut pa = net.a.start(&[]).await;
    net.issue(&pa, &pb).await;
    let old_jwk = net.a.identity["identityKey"].to_string();
    let old_kid = net.a.identity["kid"].as_str().unwrap().to_string();
    let old_key = *net.a.satp_key.verifying_key();
    let b_keys =
        KeySet::new(jws::key_from_jwk(&net.b.identity["identityKey"].to_string()).unwrap());
    let first = transfer(&net, &pa, &pb, 0, 0x51).await;

    // 1. A makes its new key straight into a keystore; the key never
    //    exists in plain text outside the test's own check below.
    let dir = tempfile::tempdir().unwrap();
    let keystore = dir.path().join("satp-2.json");
    let password = "rotation-pw-2e9f";
    let made: Value = serde_json::from_str(
        net.a
            .env
            .run_with(
                &[
                    "keystore",
                    "new",
                    "--password-env",
                    "NEW_PW",
                    "--out",
                    keystore.to_str().unwrap(),
                ],
                &[("NEW_PW", password)],
            )
            .await
            .trim(),
    )
    .unwrap();
    let new_jwk = made["identityKey"].to_string();
    let new_kid = made["kid"].as_str().unwrap().to_string();
    assert_ne!(new_kid, old_kid);
    let new_key = jws::key_from_jwk(&new_jwk).unwrap();
    let a_keys = KeySet::new(new_key).with_previous(old_key);

    // 2. B pins the new key and keeps the old one, and restarts.
    let token_for_b = net.a.peer_token(&net.b).await;
    let config_b = format!(
        "[transfers]\n{ROTATION_TRANSFERS}\n{}",
        Side::peer_entry_keys(
            &net.a,
            &token_for_b,
            &[],
            &new_jwk,
            std::slice::from_ref(&old_jwk)
        )
    );
    net.b.env.write_config(&config_b);
    pb.kill9().await;
    pb = net.b.start(&[]).await;

    // A session opens while A still signs with the old key (B accepts it:
    // it is pinned as previous)...
    let preimage = [0x52u8; 32];
    let hashlock = Hashlock::of_preimage(&preimage);
    let created = net.create(&pa, hashlock).await;
    let across = created["id"].as_str().unwrap().to_string();

    // 3. ...and A switches to the new key (keeping the old one's public
    //    half, to verify what it signed before) and restarts mid-session.
    let mut config_a = std::fs::read_to_string(net.a.env.config_file.as_ref().unwrap()).unwrap();
    config_a = format!("[satp]\nprevious_identity_keys = ['{old_jwk}']\n\n{config_a}");
    net.a.env.write_config(&config_a);
    net.a.env.without_var("LOCKGATE_SATP_KEY");
    let keystore_vars = [
        ("LOCKGATE_SATP_KEYSTORE", keystore.to_str().unwrap()),
        ("LOCKGATE_SATP_KEYSTORE_PASSWORD", password),
    ];
    // What A now tells its peers to pin: the new key, the old as previous.
    let identity: Value = serde_json::from_str(
        net.a
            .env
            .run_with(&["satp-identity"], &keystore_vars)
            .await
            .trim(),
    )
    .unwrap();
    assert_eq!(identity["identityKey"].to_string(), new_jwk);
    assert_eq!(identity["kid"], new_kid.as_str());
    // Earlier keys are not advertised (a new peer must not pin them).
    assert!(identity.get("previousIdentityKeys").is_none(), "{identity}");
    pa.kill9().await;
    pa = net.a.start(&keystore_vars).await;
    let (_, served) = pa.get("/v1/satp/identity", "").await;
    assert_eq!(served["kid"], new_kid.as_str());

    // The session open across the rotation completes: A recovers it with B
    // (RECOVER signed with the new key) and goes on with the new key.
    net.lock_with_nonce(&pa, &created, hashlock, 1).await;
    net.claim_and_complete(&pa, &pb, &across, preimage, 1).await;
    // And a transfer entirely after the rotation.
    let after = transfer(&net, &pa, &pb, 2, 0x53).await;

    // Who signed what, as stored on both sides (each envelope verified
    // with the pinned key its kid names).
    let (first, across, after) = (
        session_of(&net.a, &first).await,
        session_of(&net.a, &across).await,
        session_of(&net.a, &after).await,
    );
    for side in [&net.a, &net.b] {
        let kids = |envelopes: &[(String, Envelope)]| client_kids(envelopes, &a_keys, &b_keys);
        let first_kids = kids(&session_envelopes(side, &first.0).await);
        assert!(first_kids.iter().all(|k| *k == old_kid), "{first_kids:?}");
        let across_kids = kids(&session_envelopes(side, &across.0).await);
        assert_eq!(across_kids[..2], [old_kid.clone(), old_kid.clone()]);
        assert!(
            across_kids[2..].iter().all(|k| *k == new_kid),
            "{across_kids:?}"
        );
        let after_kids = kids(&session_envelopes(side, &after.0).await);
        assert!(after_kids.iter().all(|k| *k == new_kid), "{after_kids:?}");
    }
    // A's recovery logs verify with its keys: the old session's entries all
    // by the old key, the session across the rotation by both, in one chain.
    let logged = log_kids(&net.a, &first.0, &a_keys).await;
    assert!(logged.iter().all(|k| *k == old_kid));
    let logged = log_kids(&net.a, &across.0, &a_keys).await;
    assert!(
        logged.contains(&old_kid) && logged.contains(&new_kid),
        "{logged:?}"
    );
    assert!(
        logged
            .iter()
            .skip_while(|k| **k == old_kid)
            .all(|k| *k == new_kid)
    );
    // ...and not with the new key alone.
    let new_only = KeySet::new(new_key);
    let pool = net.a.db.pool().await;
    let (signature,): (String,) =
        sqlx::query_as("SELECT signature FROM satp_log WHERE session_id = $1 ORDER BY seq LIMIT 1")
            .bind(&first.0)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert!(new_only.signer_of(&signature).is_none());

    // B hands the old session back (RECOVER-UPDATE, asked with the new key):
    // A's envelopes in it, signed with the old key, verify with what A pins.
    let session_of_first = first.clone();
    let new_secret = lockgate::keys::decrypt_keystore(
        &keystore,
        &lockgate::config::Secret::new(password.into()),
    )
    .unwrap();
    let new_signing = p256::ecdsa::SigningKey::from_slice(&new_secret).unwrap();
    let recover = RecoveryMessage::Recover {
        session_id: session_of_first.0.clone(),
        context_id: session_of_first.1.clone(),
        satp_phase: "3".into(),
        sequence_number: 0,
        is_backup: false,
        last_entry_timestamp: String::new(),
    };
    let sealed =
        serde_json::to_value(envelope::seal_value(&recover.to_json(), &new_signing).unwrap())
            .unwrap();
    let (status, answer) = post(&pb, "/v1/satp/recovery", &sealed).await;
    assert_eq!(status, 200, "{answer}");
    let answer: Envelope = serde_json::from_value(answer).unwrap();
    let json = envelope::open_value(&answer, envelope::signer(&answer, &b_keys).unwrap()).unwrap();
    let RecoveryMessage::RecoverUpdate {
        recovered_messages, ..
    } = serde_json::from_value(json).unwrap()
    else {
        panic!("not a recover-update");
    };
    assert_eq!(recovered_messages.len(), 11);
    for envelope in &recovered_messages {
        let key = envelope::signer(envelope, &a_keys)
            .or_else(|| envelope::signer(envelope, &b_keys))
            .unwrap();
        envelope::open(envelope, key).unwrap();
    }

    // A key B does not pin is refused (err_0.1.3), before anything else is
    // looked at.
    let stranger = p256::ecdsa::SigningKey::from_slice(&secret("rotation-stranger")).unwrap();
    let abort = |signer: &p256::ecdsa::SigningKey| {
        let message = Message::SessionAbort {
            session_id: session_of_first.0.clone(),
        };
        serde_json::to_value(envelope::seal(&message, signer).unwrap()).unwrap()
    };
    let refused = |answer: &Value, status: u16| {
        assert_eq!(status, 422, "{answer}");
        assert_eq!(
            answer["type"], "urn:ietf:params:satp:core:error:err_0.1.3",
            "{answer}"
        );
        lockgate::satp::problem::verify(answer, &b_keys).expect("signed by B");
    };
    let (status, answer) = post(&pb, "/v1/satp/messages", &abort(&stranger)).await;
    refused(&answer, status);

    // 4. The overlap ends: B drops the old key. A message signed with it
    //    (the old session's proposal, as stored) is now refused the same
    //    way, while A, on its new key, goes on.
    let config_b = format!(
        "[transfers]\n{ROTATION_TRANSFERS}\n{}",
        Side::peer_entry_keys(&net.a, &token_for_b, &[], &new_jwk, &[])
    );
    net.b.env.write_config(&config_b);
    pb.kill9().await;
    pb = net.b.start(&[]).await;
    let proposal = &session_envelopes(&net.a, &first.0).await[0].1;
    assert_eq!(jws::header_kid(&proposal.protected).unwrap(), old_kid);
    let (status, answer) = post(
        &pb,
        "/v1/satp/messages",
        &serde_json::to_value(proposal).unwrap(),
    )
    .await;
    refused(&answer, status);
    // Alice has spent her 1,000 on three transfers: 1,000 more for a fourth.
    let issue = on(
        CHAIN_A,
        &key(1),
        2,
        TxBody::Issue {
            asset: eur(),
            to: net.alice.address(),
            amount: ledger_core::Amount::from_minor_units(ISSUED_A),
        },
    );
    let (status, body) = pa.submit(&net.a.token, &issue).await.unwrap();
    assert_eq!(status, 201, "{body}");
    transfer(&net, &pa, &pb, 3, 0x54).await;
}
