//! Fuzz target: the body of `POST /v1/satp/messages` and
//! `POST /v1/satp/recovery` as a peer gateway sends it, and a peer's
//! answer as the originating gateway reads it, up to the signature check:
//! the flattened-JWS `Envelope` (strict JSON), what the server computes
//! before trusting anything (`envelope::peek`, the message hash, the `kid`
//! of the protected header), then `envelope::open` / `open_value` with the
//! pinned key the `kid` names (JWS: base64url, header JSON, `alg` pinned,
//! `crit` refused, ES256 verification) and the message inside
//! (`Message`, `RecoveryMessage`). A body that is not an envelope is tried
//! as a peer's signed error document (`satp::problem::verify`, a detached
//! JWS over the canonical JSON), as `satp::client` reads a refusal.
//!
//! The seeds are envelopes signed with the fixtures' keys, so unmodified
//! seeds verify; mutations mostly exercise the parsing before and around
//! the signature. What a verified payload then goes through is the
//! `satp_message` target.
//!
//! Asserts: no panic; an envelope that opens re-seals (JCS + ES256) and
//! opens again to the same canonical JSON.

#![no_main]

use adapters::satp::envelope::{self, Envelope};
use adapters::satp::jcs::canonicalize;
use adapters::satp::messages::{Message, hash_json};
use adapters::satp::recovery::RecoveryMessage;
use libfuzzer_sys::fuzz_target;
use lockgate::satp::problem;
use lockgate_fuzz::{SATP_PEERS, peer_by_kid, satp_client_key, satp_server_key};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let envelope: Envelope = match serde_json::from_slice(data) {
        Ok(envelope) => envelope,
        Err(_) => {
            if let Ok(document) = serde_json::from_slice::<Value>(data) {
                for (_, key) in SATP_PEERS.iter() {
                    let keys = adapters::satp::jws::KeySet::new(*key);
                    if let Ok(verified) = problem::verify(&document, &keys) {
                        assert!(document.get("jws").is_some());
                        let _ = verified.status;
                    }
                }
            }
            return;
        }
    };
    // Before the signature is checked (server.rs: `handle`).
    let peek = envelope::peek(&envelope).unwrap_or_default();
    let _ = hash_json(&peek);
    // The server's own reader of the `kid` (`satp::server::header_kid`).
    let kid = adapters::satp::jws::header_kid(&envelope.protected);
    // An unknown kid is refused by the server; the first pinned key is
    // tried anyway so that the JWS checks run on every input.
    let key = kid
        .as_deref()
        .and_then(peer_by_kid)
        .unwrap_or(&SATP_PEERS[0].1);
    let Ok(json) = envelope::open_value(&envelope, key) else {
        return;
    };
    if let Ok((message, opened)) = envelope::open(&envelope, key) {
        assert_eq!(opened, json);
        let _ = message.hash();
        let _ = message.type_name();
    }
    if let Ok(message) = serde_json::from_value::<RecoveryMessage>(json.clone()) {
        let _ = message.hash();
        if let RecoveryMessage::RecoverUpdate {
            recovered_messages, ..
        } = &message
        {
            for inner in recovered_messages.iter().take(lockgate_fuzz::ITEMS_MAX) {
                for (_, key) in SATP_PEERS.iter() {
                    if let Ok(value) = envelope::open_value(inner, key) {
                        let _ = serde_json::from_value::<Message>(value);
                    }
                }
            }
        }
    }
    reseal(&json, key);
});

/// A payload that verified is signed again with the same identity and must
/// open to the same canonical JSON.
fn reseal(json: &Value, key: &p256::ecdsa::VerifyingKey) {
    let signer = [satp_client_key(), satp_server_key()]
        .into_iter()
        .find(|k| k.verifying_key() == key)
        .expect("the key is a fixture's");
    let Ok(canonical) = canonicalize(json) else {
        // Numbers JCS refuses cannot be sealed either.
        assert!(envelope::seal_value(json, &signer).is_err());
        return;
    };
    let sealed = envelope::seal_value(json, &signer).expect("a canonical value seals");
    let opened = envelope::open_value(&sealed, key).expect("a sealed value opens");
    assert_eq!(
        canonicalize(&opened).expect("what opened is canonical"),
        canonical
    );
}
