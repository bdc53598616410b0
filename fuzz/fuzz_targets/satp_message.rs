//! Fuzz target: what a SATP message from a peer goes through once its
//! envelope's signature verified (the JSON a pinned peer signed is still a
//! peer's input): the strict `Message` / `RecoveryMessage` parsing, the
//! session's order and hash chain (`Session::accept`, as `satp::server` and
//! `satp::recovery` replay it), `TransferContext::decode` of
//! `transferContextId`, the JWKs of a proposal, the lock evidence of
//! lock-assert and commit-ready (`satp::evidence::verify_lock`: a signed
//! ledger transaction, a signed block header, an RFC 6962 audit path), the
//! settlement evidence of commit-final and ack-commit-final, the envelopes
//! of RECOVER-UPDATE and the refund evidence of ROLLBACK / ROLLBACK-ACK.
//!
//! The input is one message (a JSON object) or a session (a JSON array of
//! messages, accepted in order). Evidence is checked against the message's
//! own `transferContextId` when it decodes, else against the fixtures'
//! terms, with the fixtures' block producer trusted; seeds are a whole
//! session made with those, so they pass every check.
//!
//! Asserts: no panic; RFC 8785 canonicalisation is idempotent; a message
//! survives its own JSON form; a context id that decodes is the encoding of
//! what it decodes to; a lock that is accepted has the terms asked for; an
//! accepted preimage opens the hashlock.

#![no_main]

use adapters::ledger::LockTerms;
use adapters::satp::context::TransferContext;
use adapters::satp::envelope;
use adapters::satp::jcs::canonicalize;
use adapters::satp::jws;
use adapters::satp::messages::{FLOW, Message, Sender, hash_json};
use adapters::satp::recovery::RecoveryMessage;
use adapters::satp::session::Session;
use ledger_core::{ChainId, LockId, TxBody};
use libfuzzer_sys::fuzz_target;
use lockgate::satp::evidence;
use lockgate_fuzz::{
    ITEMS_MAX, SATP_PEERS, SOURCE_CHAIN, TARGET_CHAIN, chain, context, producer, source_terms,
    target_terms,
};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    jcs_is_idempotent(&value);
    let items: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().take(ITEMS_MAX).collect(),
        other => vec![other],
    };
    let mut session = Session::new();
    for item in items {
        if let Ok(message) = serde_json::from_value::<Message>(item.clone()) {
            core(&message, item, &mut session);
        } else if let Ok(message) = serde_json::from_value::<RecoveryMessage>(item.clone()) {
            recovery(&message);
        }
    }
});

/// JCS output is JSON whose JCS form is itself.
fn jcs_is_idempotent(value: &Value) {
    if let Ok(canonical) = canonicalize(value) {
        let parsed: Value = serde_json::from_slice(&canonical).expect("JCS output is JSON");
        assert_eq!(
            canonicalize(&parsed).expect("JCS output canonicalises"),
            canonical
        );
    }
}

fn sender_of(message: &Message) -> Sender {
    FLOW.iter()
        .find(|(name, _)| *name == message.type_name())
        .map_or(Sender::Client, |(_, sender)| *sender)
}

fn core(message: &Message, json: &Value, session: &mut Session) {
    let again: Message =
        serde_json::from_value(message.to_json()).expect("a message's own JSON parses");
    assert_eq!(&again, message);
    let _ = message.hash();
    let _ = hash_json(json);
    let _ = session.accept(message, json, sender_of(message));

    let decoded = message
        .transfer_context_id()
        .and_then(|id| TransferContext::decode(id).ok().map(|c| (id, c)));
    if let Some((id, c)) = &decoded {
        assert_eq!(&c.encode(), id);
        assert_eq!(TransferContext::decode(id).as_ref(), Ok(c));
    }
    let c = decoded.map_or_else(context, |(_, c)| c);
    match message {
        Message::TransferProposal {
            transfer_init_claim: claim,
            ..
        } => {
            let _ = jws::key_from_jwk(&claim.sender_gateway_signature_public_key);
            let _ = jws::key_from_jwk(&claim.receiver_gateway_signature_public_key);
            if let Ok(value) = serde_json::to_value(claim) {
                let _ = hash_json(&value);
            }
        }
        Message::LockAssert {
            lock_assertion_claim: claim,
            ..
        } => lock(claim, c.source_chain_id, &source_terms(&c), false, true),
        Message::CommitReady {
            mint_assertion_claim: claim,
            ..
        } => lock(
            claim,
            c.target_chain_id,
            &target_terms(&c),
            true,
            c.hop_expires_at_ms.is_none(),
        ),
        Message::CommitFinal {
            burn_assertion_claim: claim,
            ..
        }
        | Message::AckCommitFinal {
            assignment_assertion_claim: claim,
            ..
        } => {
            let lock = claim
                .get("lockId")
                .and_then(Value::as_str)
                .and_then(|text| text.parse::<LockId>().ok())
                .unwrap_or_default();
            for chain_id in [c.source_chain_id, c.target_chain_id] {
                if let Ok(preimage) = evidence::verify_settlement(claim, chain_id, lock, c.hashlock)
                {
                    assert_eq!(ledger_core::hash::sha256(&preimage), *c.hashlock.as_bytes());
                }
            }
        }
        _ => {}
    }
}

/// Lock evidence as the server (lock-assert) or client (commit-ready) checks it.
fn lock(claim: &Value, chain_id: ChainId, terms: &LockTerms, exact: bool, recipient: bool) {
    let Ok(lock) = evidence::verify_lock(claim, chain_id, &[producer()], terms, exact, recipient)
    else {
        return;
    };
    let signed = evidence::verify_inclusion(claim, chain_id, &[producer()])
        .expect("accepted evidence is included");
    assert_eq!(LockId::from(signed.transaction.hash()), lock);
    assert_eq!(signed.transaction.chain_id, chain_id);
    assert_eq!(signed.transaction.from, terms.sender);
    let TxBody::HtlcLock {
        amount,
        hashlock,
        expires_at_ms,
        ..
    } = signed.transaction.body
    else {
        panic!("accepted lock evidence is not an HtlcLock");
    };
    assert_eq!((amount, hashlock), (terms.amount, terms.hashlock));
    assert!(expires_at_ms >= terms.expires_at_ms);
}

fn recovery(message: &RecoveryMessage) {
    let again: RecoveryMessage =
        serde_json::from_value(message.to_json()).expect("a message's own JSON parses");
    assert_eq!(&again, message);
    let _ = message.hash();
    match message {
        RecoveryMessage::RecoverUpdate {
            recovered_messages, ..
        } => {
            // As `satp::recovery::recover` checks them: each verified with
            // one of the two keys, parsed, and accepted in order.
            let mut session = Session::new();
            for envelope in recovered_messages.iter().take(ITEMS_MAX) {
                let _ = envelope::peek(envelope);
                let Some(json) = SATP_PEERS
                    .iter()
                    .find_map(|(_, key)| envelope::open_value(envelope, key).ok())
                else {
                    break;
                };
                let Ok(inner) = serde_json::from_value::<Message>(json.clone()) else {
                    break;
                };
                if session.accept(&inner, &json, sender_of(&inner)).is_err() {
                    break;
                }
            }
        }
        RecoveryMessage::Rollback { actions, .. } => refunds(actions, chain(SOURCE_CHAIN)),
        RecoveryMessage::RollbackAck { actions, .. } => refunds(actions, chain(TARGET_CHAIN)),
        _ => {}
    }
}

/// Refund evidence as `satp::recovery::check_refund` (crate-private) checks it.
fn refunds(actions: &[adapters::satp::recovery::Compensation], chain_id: ChainId) {
    for action in actions.iter().take(ITEMS_MAX) {
        let Some(evidence) = &action.evidence else {
            continue;
        };
        if let Ok(signed) = evidence::verify_inclusion(evidence, chain_id, &[producer()]) {
            assert_eq!(signed.transaction.chain_id, chain_id);
            if let (TxBody::HtlcRefund { lock_id }, Some(named)) =
                (&signed.transaction.body, &action.lock_id)
            {
                let _ = lock_id.to_string() == *named;
            }
        }
    }
}
