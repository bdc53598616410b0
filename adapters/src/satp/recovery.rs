//! The messages of the SATP gateway-recovery draft (draft-ietf-satp-recovery,
//! "SATP-2pc"), on Lockgate's JSON wire format: RECOVER, RECOVER-UPDATE,
//! RECOVER-UPDATE-ACK, RECOVER-SUCCESS, ROLLBACK and ROLLBACK-ACK. They
//! travel signed in the same flattened-JWS envelope as the core messages.
//!
//! Lockgate's choices where the draft is silent or loose (`docs/satp.md`):
//! - URNs `urn:ietf:SATP-2pc:msgtype:<name>` as the draft writes them, with
//!   `recover-update-ack-msg` for the recovered gateway's acknowledgement and
//!   `recover-success-msg` for the counterparty's final answer (the draft
//!   gives one URN to the pair);
//! - the "recovered logs" of RECOVER-UPDATE are the counterparty's stored
//!   session messages (each the signed envelope as it went over the wire)
//!   from the recovered gateway's `sequenceNumber` on, so the recovered
//!   gateway verifies every one with its sender's key before using it;
//! - hashes (`hashRecoverMessage`, ...) are SHA-256 of the canonical JSON,
//!   as for the core messages;
//! - a rollback lists, per lock this gateway made or settled for the
//!   session, the compensating action and its state (`refunded`,
//!   `pending` until its expiry, `none` when nothing was locked), with the
//!   refund transaction's inclusion evidence where there is one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::envelope::Envelope;
use super::jcs::JcsError;
use super::messages::hash_json;

/// The URN prefix of the recovery messages.
pub const MSGTYPE_PREFIX: &str = "urn:ietf:SATP-2pc:msgtype:";

/// One compensating action of a rollback.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Compensation {
    /// `source-refund` or `target-refund`.
    pub action: String,
    /// The ledger.
    pub chain_id: String,
    /// The lock, when one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_id: Option<String>,
    /// `refunded`, `pending` (refundable from `expiresAtMs`) or `none`.
    pub status: String,
    /// The lock's expiry (ms), when one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<String>,
    /// Inclusion evidence of the refund transaction, when this gateway made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Value>,
}

/// A recovery message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "messageType", deny_unknown_fields)]
pub enum RecoveryMessage {
    /// The recovered gateway to its counterparty, after a restart.
    #[serde(
        rename = "urn:ietf:SATP-2pc:msgtype:recover-msg",
        rename_all = "camelCase"
    )]
    Recover {
        /// The session.
        session_id: String,
        /// Its `transferContextId`.
        context_id: String,
        /// The last SATP stage the recovered gateway knows of (`1` to `3`).
        satp_phase: String,
        /// How many session messages the recovered gateway holds.
        #[cfg_attr(feature = "openapi", schema(format = Int64, minimum = 0, maximum = 4294967295_u64))]
        sequence_number: u32,
        /// Whether a backup gateway took over (never, in Lockgate).
        is_backup: bool,
        /// When the recovered gateway wrote its last log entry (ms).
        last_entry_timestamp: String,
    },
    /// The counterparty's answer: what the recovered gateway lacks.
    #[serde(
        rename = "urn:ietf:SATP-2pc:msgtype:recover-update-msg",
        rename_all = "camelCase"
    )]
    RecoverUpdate {
        /// The session.
        session_id: String,
        /// Its `transferContextId`.
        context_id: String,
        /// Hash of the RECOVER message.
        hash_recover_message: String,
        /// The counterparty's stored session messages from `sequenceNumber` on.
        recovered_messages: Vec<Envelope>,
    },
    /// The recovered gateway: it holds the session again.
    #[serde(
        rename = "urn:ietf:SATP-2pc:msgtype:recover-update-ack-msg",
        rename_all = "camelCase"
    )]
    RecoverUpdateAck {
        /// The session.
        session_id: String,
        /// Its `transferContextId`.
        context_id: String,
        /// Hash of the RECOVER-UPDATE message.
        hash_recover_update_message: String,
        /// True when every recovered message verified and fitted.
        success: bool,
        /// How many session messages the recovered gateway holds now.
        #[cfg_attr(feature = "openapi", schema(format = Int64, minimum = 0, maximum = 4294967295_u64))]
        sequence_number: u32,
    },
    /// The counterparty: the session may resume.
    #[serde(
        rename = "urn:ietf:SATP-2pc:msgtype:recover-success-msg",
        rename_all = "camelCase"
    )]
    RecoverSuccess {
        /// The session.
        session_id: String,
        /// Its `transferContextId`.
        context_id: String,
        /// Hash of the RECOVER-UPDATE-ACK message.
        hash_recover_update_ack_message: String,
        /// True when both sides hold the same session.
        success: bool,
    },
    /// A gateway that unwound its side lists its compensating actions.
    #[serde(
        rename = "urn:ietf:SATP-2pc:msgtype:rollback-msg",
        rename_all = "camelCase"
    )]
    Rollback {
        /// The session.
        session_id: String,
        /// Its `transferContextId`.
        context_id: String,
        /// The sender's compensating actions.
        actions: Vec<Compensation>,
    },
    /// The counterparty's answer, with its own compensating actions.
    #[serde(
        rename = "urn:ietf:SATP-2pc:msgtype:rollback-ack-msg",
        rename_all = "camelCase"
    )]
    RollbackAck {
        /// The session.
        session_id: String,
        /// Its `transferContextId`.
        context_id: String,
        /// Hash of the ROLLBACK message.
        hash_rollback_message: String,
        /// The answering gateway's compensating actions.
        actions: Vec<Compensation>,
    },
}

impl RecoveryMessage {
    /// The message type's short name.
    pub fn type_name(&self) -> &'static str {
        match self {
            RecoveryMessage::Recover { .. } => "recover-msg",
            RecoveryMessage::RecoverUpdate { .. } => "recover-update-msg",
            RecoveryMessage::RecoverUpdateAck { .. } => "recover-update-ack-msg",
            RecoveryMessage::RecoverSuccess { .. } => "recover-success-msg",
            RecoveryMessage::Rollback { .. } => "rollback-msg",
            RecoveryMessage::RollbackAck { .. } => "rollback-ack-msg",
        }
    }

    /// The session id.
    pub fn session_id(&self) -> &str {
        match self {
            RecoveryMessage::Recover { session_id, .. }
            | RecoveryMessage::RecoverUpdate { session_id, .. }
            | RecoveryMessage::RecoverUpdateAck { session_id, .. }
            | RecoveryMessage::RecoverSuccess { session_id, .. }
            | RecoveryMessage::Rollback { session_id, .. }
            | RecoveryMessage::RollbackAck { session_id, .. } => session_id,
        }
    }

    /// The message as JSON.
    pub fn to_json(&self) -> Value {
        // Strings, booleans, small integers and JSON values only.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// SHA-256 of the canonical JSON, hex.
    pub fn hash(&self) -> Result<String, JcsError> {
        hash_json(&self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_has_the_drafts_urns_and_refuses_unknown_fields() {
        let recover = RecoveryMessage::Recover {
            session_id: "s".into(),
            context_id: "c".into(),
            satp_phase: "2".into(),
            sequence_number: 5,
            is_backup: false,
            last_entry_timestamp: "1".into(),
        };
        let json = recover.to_json();
        assert_eq!(json["messageType"], "urn:ietf:SATP-2pc:msgtype:recover-msg");
        assert_eq!(json["sequenceNumber"], 5);
        let back: RecoveryMessage = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, recover);
        let mut extra = json;
        extra["unknown"] = Value::Bool(true);
        assert!(serde_json::from_value::<RecoveryMessage>(extra).is_err());
    }
}
