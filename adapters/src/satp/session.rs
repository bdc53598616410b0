//! The order and hash chain of a SATP session (stages 1 to 3), checked
//! message by message: each message must be the next step of the flow, come
//! from the right gateway, carry the session's ids, and name the previous
//! message by its hash. A violation is reported with the SATP error code
//! the draft assigns to it (`urn:ietf:params:satp:core:error:err_X.Y.Z`).

use serde_json::Value;

use super::messages::{FLOW, Message, Sender, hash_json};

/// A violation, with its SATP error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct SessionError {
    /// The SATP error code (`err_1.3.4`), or `err_0.1.1` for a message out of place.
    pub code: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl SessionError {
    fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    /// The error's type URN.
    pub fn type_urn(&self) -> String {
        format!("urn:ietf:params:satp:core:error:{}", self.code)
    }
}

/// The codes for mismatched transferContextId, sessionId and hashPrevMessage
/// at each step (section 11.4, table 1), by the step's index in [`FLOW`].
fn mismatch_codes(step: usize) -> (&'static str, &'static str, &'static str) {
    match step {
        1 => ("err_1.2.1", "err_1.2.2", "err_1.2.3"),
        2 => ("err_1.3.1", "err_1.3.2", "err_1.3.4"),
        3 => ("err_1.4.1", "err_1.4.2", "err_1.4.3"),
        4 => ("err_2.2.1", "err_2.2.2", "err_2.2.5"),
        5 => ("err_2.4.1", "err_2.4.2", "err_2.4.3"),
        6 => ("err_3.1.1", "err_3.1.2", "err_3.1.3"),
        7 => ("err_3.3.1", "err_3.3.2", "err_3.3.3"),
        8 => ("err_3.5.1", "err_3.5.2", "err_3.5.3"),
        9 => ("err_3.7.1", "err_3.7.2", "err_3.7.3"),
        _ => ("err_3.9.1", "err_3.9.2", "err_3.9.3"),
    }
}

/// A session as seen so far.
#[derive(Debug, Clone, Default)]
pub struct Session {
    session_id: Option<String>,
    transfer_context_id: Option<String>,
    hash_transfer_init_claim: Option<String>,
    hash_transfer_commence: Option<String>,
    last_hash: Option<String>,
    next_step: usize,
    aborted: bool,
}

impl Session {
    /// A session before its first message.
    pub fn new() -> Self {
        Self::default()
    }

    /// True once transfer-complete was accepted.
    pub fn is_complete(&self) -> bool {
        self.next_step == FLOW.len()
    }

    /// True once a session-abort was accepted.
    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    /// Checks `message` (parsed from `json`, sent by `sender`) as the next
    /// message of the session and records it.
    pub fn accept(
        &mut self,
        message: &Message,
        json: &Value,
        sender: Sender,
    ) -> Result<(), SessionError> {
        if self.aborted {
            return Err(SessionError::new("err_0.1.1", "the session was aborted"));
        }
        if let Message::SessionAbort { session_id } = message {
            if self.session_id.as_deref() != Some(session_id) {
                return Err(SessionError::new(
                    "err_1.1.2",
                    "session-abort names another session",
                ));
            }
            self.aborted = true;
            return Ok(());
        }
        let step = self.next_step;
        let Some((expected, expected_sender)) = FLOW.get(step) else {
            return Err(SessionError::new("err_0.1.1", "the session is complete"));
        };
        if message.type_name() != *expected || sender != *expected_sender {
            return Err(SessionError::new(
                "err_0.1.1",
                format!(
                    "expected {expected} from the {expected_sender:?}, got {} from the {sender:?}",
                    message.type_name()
                ),
            ));
        }
        let hash = hash_json(json).map_err(|e| SessionError::new("err_0.1.1", e.to_string()))?;
        if step == 0 {
            let Message::TransferProposal {
                version,
                transfer_init_claim,
                ..
            } = message
            else {
                return Err(SessionError::new(
                    "err_0.1.1",
                    "expected a transfer proposal",
                ));
            };
            if version != super::messages::VERSION {
                return Err(SessionError::new(
                    "err_0.1.1",
                    format!("version {version} is not 1.0"),
                ));
            }
            let claim = serde_json::to_value(transfer_init_claim)
                .map_err(|e| SessionError::new("err_1.1.3", e.to_string()))?;
            self.hash_transfer_init_claim =
                Some(hash_json(&claim).map_err(|e| SessionError::new("err_1.1.3", e.to_string()))?);
            self.session_id = Some(message.session_id().to_string());
            self.transfer_context_id = message.transfer_context_id().map(str::to_string);
        } else {
            let (context_code, session_code, hash_code) = mismatch_codes(step);
            if message.transfer_context_id() != self.transfer_context_id.as_deref() {
                return Err(SessionError::new(
                    context_code,
                    "transferContextId does not match the session",
                ));
            }
            if Some(message.session_id()) != self.session_id.as_deref() {
                return Err(SessionError::new(
                    session_code,
                    "sessionId does not match the session",
                ));
            }
            // Hashes a message repeats from earlier in the session.
            let repeated = match message {
                Message::ProposalReceipt {
                    hash_transfer_init_claim,
                    ..
                } => Some((
                    hash_transfer_init_claim,
                    &self.hash_transfer_init_claim,
                    "err_1.2.3",
                    "hashTransferInitClaim is not the proposal's claim",
                )),
                Message::TransferCommence {
                    hash_transfer_init_claim,
                    ..
                } => Some((
                    hash_transfer_init_claim,
                    &self.hash_transfer_init_claim,
                    "err_1.3.3",
                    "hashTransferInitClaim is not the proposal's claim",
                )),
                Message::TransferComplete {
                    hash_transfer_commence,
                    ..
                } => Some((
                    hash_transfer_commence,
                    &self.hash_transfer_commence,
                    "err_3.9.4",
                    "hashTransferCommence is not the transfer commence's hash",
                )),
                _ => None,
            };
            if let Some((claimed, expected, code, reason)) = repeated
                && Some(claimed) != expected.as_ref()
            {
                return Err(SessionError::new(code, reason));
            }
            if let Some(claimed) = message.hash_prev_message()
                && Some(claimed) != self.last_hash.as_deref()
            {
                return Err(SessionError::new(
                    hash_code,
                    "hashPrevMessage is not the hash of the previous message",
                ));
            }
            if matches!(message, Message::TransferCommence { .. }) {
                self.hash_transfer_commence = Some(hash.clone());
            }
        }
        self.last_hash = Some(hash);
        self.next_step += 1;
        Ok(())
    }
}
