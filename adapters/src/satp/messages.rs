//! SATP core messages as draft-ietf-satp-core-17 defines them (sections
//! 8-10; see `docs/research/satp-wire-format.md` for the extract), on the
//! JSON wire format: lowerCamelCase fields, `messageType` the full URN.
//!
//! Lockgate's choices where the draft is silent (documented in
//! `docs/satp.md`):
//! - the hash of a message (`hashPrevMessage`, `hashTransferCommence`) is
//!   the SHA-256, as 64 lowercase hex digits, of the RFC 8785 canonical form
//!   of the message's JSON object (without any signature);
//! - `hashTransferInitClaim` is the same over the `transferInitClaim` object;
//! - `hashPrevMessage` names the message this one answers: the previous
//!   message of the session, whoever sent it;
//! - a message travels signed as a flattened JWS JSON object (see
//!   [`super::envelope`]).
//!
//! Parsing is strict: unknown fields are refused, so a peer speaking another
//! revision fails loudly rather than being half understood.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest as _;

use super::jcs::{JcsError, canonicalize};

/// The URN prefix of every SATP core message type.
pub const MSGTYPE_PREFIX: &str = "urn:ietf:params:satp:core:msgtype:";
/// The protocol version the draft defines.
pub const VERSION: &str = "1.0";

/// SHA-256 of the canonical form of a JSON value, 64 lowercase hex digits.
pub fn hash_json(value: &Value) -> Result<String, JcsError> {
    Ok(hex::encode(sha2::Sha256::digest(canonicalize(value)?)))
}

/// A transfer-init claim (section 8.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferInitClaim {
    /// Globally unique id of the asset in the origin network.
    pub digital_asset_id: String,
    /// Id of the asset profile.
    pub asset_profile_id: String,
    /// `TIME_LOCK`, `HASH_LOCK` or `HASH_TIME_LOCK`.
    pub network_lock_type: NetworkLockType,
    /// Lock duration in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 0, maximum = 9007199254740991_u64)
    )]
    pub asset_lock_expiration_time: Option<u64>,
    /// The originator's identity.
    pub verified_originator_entity_id: String,
    /// The beneficiary's identity.
    pub verified_beneficiary_entity_id: String,
    /// The originator's key in the origin network.
    pub originator_public_key: String,
    /// The beneficiary's key in the destination network.
    pub beneficiary_public_key: String,
    /// The sender gateway's message-signing key (a JWK, as JSON text).
    pub sender_gateway_signature_public_key: String,
    /// The receiver gateway's message-signing key (a JWK, as JSON text).
    pub receiver_gateway_signature_public_key: String,
    /// The sender gateway's id.
    pub sender_gateway_id: String,
    /// The recipient gateway's id.
    pub recipient_gateway_id: String,
    /// The origin network's id.
    pub sender_gateway_network_id: String,
    /// The destination network's id.
    pub recipient_gateway_network_id: String,
    /// Optional device key of the sender gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_gateway_device_identity_public_key: Option<String>,
    /// Optional device key of the receiver gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver_gateway_device_identity_public_key: Option<String>,
    /// Optional owner of the sender gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_gateway_owner_id: Option<String>,
    /// Optional owner of the receiver gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver_gateway_owner_id: Option<String>,
}

/// The lock mechanisms of section 8.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NetworkLockType {
    /// Time lock only.
    TimeLock,
    /// Hash lock only.
    HashLock,
    /// Hash-time lock: what Lockgate's transfers use.
    HashTimeLock,
}

/// Gateway and network capabilities (section 8.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    /// The JWS algorithm the gateway signs with (`ES256`).
    pub gateway_default_signature_algorithm: String,
    /// Other algorithms it accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_supported_signature_algorithms: Option<Vec<String>>,
    /// The lock mechanism of the network.
    pub network_lock_type: NetworkLockType,
    /// Lock duration the network offers, seconds.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 0, maximum = 9007199254740991_u64)
    )]
    pub network_lock_expiration_time: u64,
    /// TLS 1.3 cipher suite, e.g. `TLS_AES_128_GCM_SHA256`.
    pub gateway_tls_scheme: String,
}

/// Every SATP core message (draft-ietf-satp-core-17, JSON wire format),
/// tagged by its `messageType` URN; it travels as the base64url payload of a
/// flattened JWS `Envelope` signed with ES256. Hashes are SHA-256 over the
/// RFC 8785 canonical JSON, 64 lowercase hex digits (`docs/satp.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "messageType", deny_unknown_fields)]
#[allow(clippy::large_enum_variant)] // parsed once per HTTP request
pub enum Message {
    /// 1.1 G1 -> G2: opens the session.
    #[serde(
        rename = "urn:ietf:params:satp:core:msgtype:transfer-proposal-msg",
        rename_all = "camelCase"
    )]
    TransferProposal {
        /// `"1.0"`.
        version: String,
        /// The session.
        session_id: String,
        /// The transfer.
        transfer_context_id: String,
        /// `TRANSFER_INIT_CLAIM_FORMAT_1`.
        transfer_init_claim_format: String,
        /// The claim.
        transfer_init_claim: TransferInitClaim,
        /// The capabilities.
        gateway_and_network_capabilities: Capabilities,
    },
    /// 1.2 G2 -> G1: accepts the proposal.
    #[serde(
        rename = "urn:ietf:params:satp:core:msgtype:proposal-receipt-msg",
        rename_all = "camelCase"
    )]
    ProposalReceipt {
        /// `"1.0"`.
        version: String,
        /// The session.
        session_id: String,
        /// The transfer.
        transfer_context_id: String,
        /// Hash of the accepted transfer-init claim.
        hash_transfer_init_claim: String,
        /// When the proposal was received (RFC 3339, Lockgate's choice).
        timestamp: String,
    },
    /// 1.3 G1 -> G2.
    #[serde(
        rename = "urn:ietf:params:satp:core:msgtype:transfer-commence-msg",
        rename_all = "camelCase"
    )]
    TransferCommence {
        /// The session.
        session_id: String,
        /// The transfer.
        transfer_context_id: String,
        /// Hash of the transfer-init claim.
        hash_transfer_init_claim: String,
        /// Hash of the proposal receipt.
        hash_prev_message: String,
    },
    /// 1.4 G2 -> G1.
    #[serde(
        rename = "urn:ietf:params:satp:core:msgtype:ack-commence-msg",
        rename_all = "camelCase"
    )]
    AckCommence {
        /// The session.
        session_id: String,
        /// The transfer.
        transfer_context_id: String,
        /// Hash of the transfer commence.
        hash_prev_message: String,
    },
    /// 2.2 G1 -> G2: the asset is locked; evidence the receiver checks itself.
    #[serde(
        rename = "urn:ietf:params:satp:core:msgtype:lock-assert-msg",
        rename_all = "camelCase"
    )]
    LockAssert {
        /// The session.
        session_id: String,
        /// The transfer.
        transfer_context_id: String,
        /// Format of the claim.
        lock_assertion_claim_format: String,
        /// The network-specific evidence of the lock.
        lock_assertion_claim: Value,
        /// Until when the assertion holds (RFC 3339).
        lock_assertion_expiration: String,
        /// Hash of the ACK-commence.
        hash_prev_message: String,
    },
    /// 2.4 G2 -> G1.
    #[serde(
        rename = "urn:ietf:params:satp:core:msgtype:assertion-receipt-msg",
        rename_all = "camelCase"
    )]
    AssertionReceipt {
        /// The session.
        session_id: String,
        /// The transfer.
        transfer_context_id: String,
        /// Hash of the lock assertion.
        hash_prev_message: String,
    },
    /// 3.1 G1 -> G2.
    #[serde(
        rename = "urn:ietf:params:satp:core:msgtype:commit-prepare-msg",
        rename_all = "camelCase"
    )]
    CommitPrepare {
        /// The session.
        session_id: String,
        /// The transfer.
        transfer_context_id: String,
        /// Hash of the assertion receipt.
        hash_prev_message: String,
    },
    /// 3.3 G2 -> G1: minted (or locked) on the target.
    #[serde(
        rename = "urn:ietf:params:satp:core:msgtype:commit-ready-msg",
        rename_all = "camelCase"
    )]
    CommitReady {
        /// The session.
        session_id: String,
        /// The transfer.
        transfer_context_id: String,
        /// Hash of the commit prepare.
        hash_prev_message: String,
        /// Format of the claim (the field list's name; the draft's example
        /// says `mintAssertionClaimFormat`).
        mint_assertion_format: String,
        /// Evidence of the mint.
        mint_assertion_claim: Value,
    },
    /// 3.5 G1 -> G2: burned (or settled) on the source.
    #[serde(
        rename = "urn:ietf:params:satp:core:msgtype:commit-final-msg",
        rename_all = "camelCase"
    )]
    CommitFinal {
        /// The session.
        session_id: String,
        /// The transfer.
        transfer_context_id: String,
        /// Hash of the commit ready.
        hash_prev_message: String,
        /// Format of the claim.
        burn_assertion_claim_format: String,
        /// Evidence of the burn, signed by the client.
        burn_assertion_claim: Value,
    },
    /// 3.7 G2 -> G1: assigned to the beneficiary.
    #[serde(
        rename = "urn:ietf:params:satp:core:msgtype:ack-commit-final-msg",
        rename_all = "camelCase"
    )]
    AckCommitFinal {
        /// The session.
        session_id: String,
        /// The transfer.
        transfer_context_id: String,
        /// Hash of the commit final.
        hash_prev_message: String,
        /// Format of the claim.
        assignment_assertion_claim_format: String,
        /// Evidence of the assignment.
        assignment_assertion_claim: Value,
    },
    /// 3.9 G1 -> G2: closes the session.
    #[serde(
        rename = "urn:ietf:params:satp:core:msgtype:commit-transfer-complete-msg",
        rename_all = "camelCase"
    )]
    TransferComplete {
        /// The session.
        session_id: String,
        /// The transfer.
        transfer_context_id: String,
        /// Hash of the ACK-commit-final.
        hash_prev_message: String,
        /// Hash of the transfer commence.
        hash_transfer_commence: String,
    },
    /// Either gateway, at any time: ends the session (section 10.7).
    #[serde(
        rename = "urn:ietf:params:satp:core:msgtype:session-abort-msg",
        rename_all = "camelCase"
    )]
    SessionAbort {
        /// The session.
        session_id: String,
    },
}

/// Which gateway sends a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// G1, the client (origin side).
    Client,
    /// G2, the server (destination side).
    Server,
}

/// The main flow, in order, with who sends each step.
pub const FLOW: [(&str, Sender); 11] = [
    ("transfer-proposal-msg", Sender::Client),
    ("proposal-receipt-msg", Sender::Server),
    ("transfer-commence-msg", Sender::Client),
    ("ack-commence-msg", Sender::Server),
    ("lock-assert-msg", Sender::Client),
    ("assertion-receipt-msg", Sender::Server),
    ("commit-prepare-msg", Sender::Client),
    ("commit-ready-msg", Sender::Server),
    ("commit-final-msg", Sender::Client),
    ("ack-commit-final-msg", Sender::Server),
    ("commit-transfer-complete-msg", Sender::Client),
];

impl Message {
    /// The message type's short name (after the URN prefix).
    pub fn type_name(&self) -> &'static str {
        match self {
            Message::TransferProposal { .. } => "transfer-proposal-msg",
            Message::ProposalReceipt { .. } => "proposal-receipt-msg",
            Message::TransferCommence { .. } => "transfer-commence-msg",
            Message::AckCommence { .. } => "ack-commence-msg",
            Message::LockAssert { .. } => "lock-assert-msg",
            Message::AssertionReceipt { .. } => "assertion-receipt-msg",
            Message::CommitPrepare { .. } => "commit-prepare-msg",
            Message::CommitReady { .. } => "commit-ready-msg",
            Message::CommitFinal { .. } => "commit-final-msg",
            Message::AckCommitFinal { .. } => "ack-commit-final-msg",
            Message::TransferComplete { .. } => "commit-transfer-complete-msg",
            Message::SessionAbort { .. } => "session-abort-msg",
        }
    }

    /// The session id.
    pub fn session_id(&self) -> &str {
        match self {
            Message::TransferProposal { session_id, .. }
            | Message::ProposalReceipt { session_id, .. }
            | Message::TransferCommence { session_id, .. }
            | Message::AckCommence { session_id, .. }
            | Message::LockAssert { session_id, .. }
            | Message::AssertionReceipt { session_id, .. }
            | Message::CommitPrepare { session_id, .. }
            | Message::CommitReady { session_id, .. }
            | Message::CommitFinal { session_id, .. }
            | Message::AckCommitFinal { session_id, .. }
            | Message::TransferComplete { session_id, .. }
            | Message::SessionAbort { session_id } => session_id,
        }
    }

    /// The transfer context id (none on a session abort).
    pub fn transfer_context_id(&self) -> Option<&str> {
        match self {
            Message::TransferProposal {
                transfer_context_id,
                ..
            }
            | Message::ProposalReceipt {
                transfer_context_id,
                ..
            }
            | Message::TransferCommence {
                transfer_context_id,
                ..
            }
            | Message::AckCommence {
                transfer_context_id,
                ..
            }
            | Message::LockAssert {
                transfer_context_id,
                ..
            }
            | Message::AssertionReceipt {
                transfer_context_id,
                ..
            }
            | Message::CommitPrepare {
                transfer_context_id,
                ..
            }
            | Message::CommitReady {
                transfer_context_id,
                ..
            }
            | Message::CommitFinal {
                transfer_context_id,
                ..
            }
            | Message::AckCommitFinal {
                transfer_context_id,
                ..
            }
            | Message::TransferComplete {
                transfer_context_id,
                ..
            } => Some(transfer_context_id),
            Message::SessionAbort { .. } => None,
        }
    }

    /// `hashPrevMessage`, where the message has one.
    pub fn hash_prev_message(&self) -> Option<&str> {
        match self {
            Message::TransferCommence {
                hash_prev_message, ..
            }
            | Message::AckCommence {
                hash_prev_message, ..
            }
            | Message::LockAssert {
                hash_prev_message, ..
            }
            | Message::AssertionReceipt {
                hash_prev_message, ..
            }
            | Message::CommitPrepare {
                hash_prev_message, ..
            }
            | Message::CommitReady {
                hash_prev_message, ..
            }
            | Message::CommitFinal {
                hash_prev_message, ..
            }
            | Message::AckCommitFinal {
                hash_prev_message, ..
            }
            | Message::TransferComplete {
                hash_prev_message, ..
            } => Some(hash_prev_message),
            _ => None,
        }
    }

    /// The message as JSON.
    pub fn to_json(&self) -> Value {
        // A message holds strings, integers and JSON values only.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The message's hash (see the module docs).
    pub fn hash(&self) -> Result<String, JcsError> {
        hash_json(&self.to_json())
    }
}
