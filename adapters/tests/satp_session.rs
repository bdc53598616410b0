//! A whole SATP session (stages 1-3) made independently with Python
//! `rfc8785` and `cryptography` (`tests/vectors/generate_satp_session.py`):
//! Lockgate opens every envelope with the sender's pinned key, parses every
//! message strictly, computes the same hashes, and accepts the hash chain;
//! it re-seals each message so that the signature verifies; and it refuses
//! a session whose order, ids or hash chain were tampered with, naming the
//! draft's error code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use adapters::satp::envelope::{self, Envelope, EnvelopeError};
use adapters::satp::jws;
use adapters::satp::messages::{Message, Sender};
use adapters::satp::session::Session;

fn transcript() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/satp_session.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn sender(name: &str) -> Sender {
    if name == "client" {
        Sender::Client
    } else {
        Sender::Server
    }
}

fn messages() -> Vec<(Sender, Message, serde_json::Value)> {
    let t = transcript();
    t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                sender(m["sender"].as_str().unwrap()),
                serde_json::from_value(m["message"].clone()).unwrap(),
                m["message"].clone(),
            )
        })
        .collect()
}

#[test]
fn an_independently_made_session_opens_hashes_and_chains() {
    let t = transcript();
    let client = jws::key_from_jwk(&t["keys"]["client"].to_string()).unwrap();
    let server = jws::key_from_jwk(&t["keys"]["server"].to_string()).unwrap();
    let mut session = Session::new();
    for entry in t["messages"].as_array().unwrap() {
        let envelope: Envelope = serde_json::from_value(entry["envelope"].clone()).unwrap();
        let who = sender(entry["sender"].as_str().unwrap());
        let key = if who == Sender::Client {
            &client
        } else {
            &server
        };
        let (message, json) = envelope::open(&envelope, key).unwrap();
        assert_eq!(json, entry["message"]);
        assert_eq!(
            message.hash().unwrap(),
            entry["hash"].as_str().unwrap(),
            "{}",
            message.type_name()
        );
        // Parsing and writing back gives the same JSON, member for member.
        assert_eq!(message.to_json(), entry["message"]);
        session.accept(&message, &json, who).unwrap();
        // The other gateway's key does not open it.
        let other = if who == Sender::Client {
            &server
        } else {
            &client
        };
        assert!(matches!(
            envelope::open(&envelope, other),
            Err(EnvelopeError::Jws(_))
        ));
    }
    assert!(session.is_complete());
}

#[test]
fn lockgate_sealed_messages_verify() {
    let secret = ledger_core_free_secret();
    let key = p256::ecdsa::SigningKey::from_slice(&secret).unwrap();
    for (_, message, json) in messages() {
        let sealed = envelope::seal(&message, &key).unwrap();
        let (opened, opened_json) = envelope::open(&sealed, key.verifying_key()).unwrap();
        assert_eq!(opened, message);
        assert_eq!(opened_json, json);
    }
}

#[test]
fn a_trace_context_travels_signed_in_the_protected_header_and_changes_no_message() {
    use base64::Engine as _;
    let secret = ledger_core_free_secret();
    let key = p256::ecdsa::SigningKey::from_slice(&secret).unwrap();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for (_, message, json) in messages() {
        let plain = envelope::seal(&message, &key).unwrap();
        let traced = envelope::seal_traced(&message, &key, Some(traceparent)).unwrap();
        // The same message bytes, so the same hash in the session's chain.
        assert_eq!(traced.payload, plain.payload);
        assert_eq!(envelope::traceparent(&plain), None);
        assert_eq!(envelope::traceparent(&traced).as_deref(), Some(traceparent));
        let (opened, opened_json) = envelope::open(&traced, key.verifying_key()).unwrap();
        assert_eq!((opened, opened_json), (message.clone(), json.clone()));
        // The header is signed: another trace context breaks the signature.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = String::from_utf8(b64.decode(&traced.protected).unwrap()).unwrap();
        let forged = envelope::Envelope {
            protected: b64.encode(header.replace("4bf9", "5bf9")),
            ..traced.clone()
        };
        assert_eq!(
            envelope::traceparent(&forged).as_deref(),
            Some("00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert!(matches!(
            envelope::open(&forged, key.verifying_key()),
            Err(EnvelopeError::Jws(_))
        ));
    }
}

fn ledger_core_free_secret() -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(b"lockgate-satp-test-signer").to_vec()
}

fn run(messages: &[(Sender, Message, serde_json::Value)]) -> Result<(), String> {
    let mut session = Session::new();
    for (who, message, json) in messages {
        session
            .accept(message, json, *who)
            .map_err(|e| e.code.to_string())?;
    }
    Ok(())
}

#[test]
fn tampered_sessions_are_refused_with_the_drafts_error_codes() {
    let all = messages();
    assert_eq!(run(&all), Ok(()));

    // Out of order: the lock assertion before the ACK-commence.
    let mut swapped = all.clone();
    swapped.swap(3, 4);
    assert_eq!(run(&swapped), Err("err_0.1.1".into()));

    // A message from the wrong side.
    let mut wrong_side = all.clone();
    wrong_side[1].0 = Sender::Client;
    assert_eq!(run(&wrong_side), Err("err_0.1.1".into()));

    // A broken hash chain at the commit prepare (step 3.1).
    let mut broken = all.clone();
    let (who, _, mut json) = broken[6].clone();
    json["hashPrevMessage"] = serde_json::json!("00".repeat(32));
    broken[6] = (who, serde_json::from_value(json.clone()).unwrap(), json);
    assert_eq!(run(&broken), Err("err_3.1.3".into()));

    // Another session id in the lock assertion (step 2.2).
    let mut other_session = all.clone();
    let (who, _, mut json) = other_session[4].clone();
    json["sessionId"] = serde_json::json!("someone-else");
    other_session[4] = (who, serde_json::from_value(json.clone()).unwrap(), json);
    assert_eq!(run(&other_session), Err("err_2.2.2".into()));

    // A receipt for another claim.
    let mut other_claim = all.clone();
    let (who, _, mut json) = other_claim[1].clone();
    json["hashTransferInitClaim"] = serde_json::json!("11".repeat(32));
    other_claim[1] = (who, serde_json::from_value(json.clone()).unwrap(), json);
    assert_eq!(run(&other_claim), Err("err_1.2.3".into()));

    // Aborted: nothing more is accepted.
    let mut aborted = all[..5].to_vec();
    let abort = serde_json::json!({
        "messageType": "urn:ietf:params:satp:core:msgtype:session-abort-msg",
        "sessionId": all[0].1.session_id(),
    });
    aborted.push((
        Sender::Server,
        serde_json::from_value(abort.clone()).unwrap(),
        abort,
    ));
    aborted.push(all[5].clone());
    assert_eq!(run(&aborted), Err("err_0.1.1".into()));
}

#[test]
fn unknown_fields_and_unknown_types_are_refused() {
    let (_, _, mut json) = messages()[3].clone();
    json["sequenceNumber"] = serde_json::json!(4);
    assert!(
        serde_json::from_value::<Message>(json).is_err(),
        "fields of older revisions are refused"
    );
    let old = serde_json::json!({"messageType": "urn:ietf:satp:msgtype:transfer-proposal-msg", "sessionId": "x"});
    assert!(
        serde_json::from_value::<Message>(old).is_err(),
        "the -06 URN prefix is refused"
    );
}
