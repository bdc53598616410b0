//! The recovery log of draft-ietf-satp-gateway-recovery: per session, an
//! append-only list of entries, one written immediately before and one
//! after every step, each naming the hash of the one before (a hash chain)
//! and signed by this gateway's identity key.
//!
//! An entry is the JSON object
//! `{"sessionId","seq","step","operation","atMs","payloadHash","lastEntryHash"}`
//! (`seq` and `atMs` decimal strings; `operation` one of the draft's
//! `init`, `exec`, `done`, `ack`, `fail`; `step` the message type or
//! ledger action; `payloadHash` the SHA-256 of what the step carried, hex,
//! or empty). Its hash is the SHA-256 of its RFC 8785 canonical form (hex)
//! and its signature a detached JWS (ES256, `typ` `satp-log+json`) over the
//! same form. [`verify_chain`] checks a log offline with the gateway's keys
//! (each entry with the key its `kid` names: entries written before a
//! rotation of the identity key name the old key).

use adapters::satp::jws::KeySet;
use adapters::satp::{jcs, jws};
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use super::Identity;
use super::store::{LogRow, SatpStore};
use crate::store::{AnyStore, StoreError};

/// The `typ` of a log entry's signature.
pub const TYP: &str = "satp-log+json";

/// The draft's five operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// About to execute.
    Init,
    /// Executing.
    Exec,
    /// Succeeded.
    Done,
    /// Acknowledged the peer.
    Ack,
    /// Failed.
    Fail,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Init => "init",
            Operation::Exec => "exec",
            Operation::Done => "done",
            Operation::Ack => "ack",
            Operation::Fail => "fail",
        }
    }
}

/// Appends an entry to a session's log.
pub async fn append(
    store: &AnyStore,
    identity: &Identity,
    session_id: &str,
    step: &str,
    operation: Operation,
    payload_hash: &str,
    now_ms: u64,
) -> Result<(), StoreError> {
    // Two writers may race for the next place; the loser reads again.
    for _ in 0..4 {
        let (seq, last) = match store.last_log(session_id).await? {
            Some(row) => (row.seq + 1, row.hash),
            None => (0, String::new()),
        };
        let entry = json!({
            "sessionId": session_id,
            "seq": seq.to_string(),
            "step": step,
            "operation": operation.name(),
            "atMs": now_ms.to_string(),
            "payloadHash": payload_hash,
            "lastEntryHash": last,
        });
        let canonical = jcs::canonicalize(&entry).map_err(crate::store::corrupt)?;
        let hash = hex::encode(sha2::Sha256::digest(&canonical));
        let mut header = Map::new();
        header.insert("kid".into(), json!(identity.kid));
        header.insert("typ".into(), json!(TYP));
        let signature =
            jws::sign_detached(&entry, &header, &identity.key).map_err(crate::store::corrupt)?;
        let row = LogRow {
            seq,
            entry: String::from_utf8(canonical).map_err(crate::store::corrupt)?,
            hash,
            signature,
        };
        if store.append_log(session_id, &row).await? {
            return Ok(());
        }
    }
    Err(StoreError::Corrupt(format!(
        "the recovery log of session {session_id} is contended"
    )))
}

/// Why a log does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("log entry {seq}: {reason}")]
pub struct LogError {
    /// The first bad entry.
    pub seq: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks a session's log: places in order from 0, each entry's hash and
/// signature (with the key of `keys` its `kid` names), and each
/// `lastEntryHash` the previous entry's hash.
pub fn verify_chain(rows: &[LogRow], keys: &KeySet) -> Result<(), LogError> {
    let mut last = String::new();
    for (place, row) in rows.iter().enumerate() {
        let bad = |reason: &str| LogError {
            seq: row.seq,
            reason: reason.to_string(),
        };
        if row.seq != place as u64 {
            return Err(bad("out of place"));
        }
        let entry: Value = serde_json::from_str(&row.entry).map_err(|_| bad("not JSON"))?;
        let canonical = jcs::canonicalize(&entry).map_err(|_| bad("not canonical JSON"))?;
        if canonical != row.entry.as_bytes() {
            return Err(bad("not in canonical form"));
        }
        if hex::encode(sha2::Sha256::digest(&canonical)) != row.hash {
            return Err(bad("hash does not match"));
        }
        if entry.get("seq").and_then(Value::as_str) != Some(row.seq.to_string().as_str()) {
            return Err(bad("seq does not match its place"));
        }
        if entry.get("lastEntryHash").and_then(Value::as_str) != Some(last.as_str()) {
            return Err(bad("lastEntryHash is not the previous entry's hash"));
        }
        let key = keys
            .signer_of(&row.signature)
            .ok_or_else(|| bad("signed by a key that is not the gateway's"))?;
        jws::verify_detached(&row.signature, &entry, key).map_err(|e| bad(&e.to_string()))?;
        last = row.hash.clone();
    }
    Ok(())
}
