//! The originating end of SATP (G1): opens a session when a transfer to a
//! peer's ledger is created, and drives it from the transfer engine.
//!
//! Every message is signed, appended to `satp_messages` (write-ahead) and
//! bracketed by recovery-log entries before it is sent; the answer is
//! checked (signature with the pinned key, place in the session, hashes)
//! and stored before anything acts on it. After a crash, the engine looks
//! at the last stored message: an unanswered message of its own is sent
//! again byte for byte (the peer answers a repeat with its stored answer),
//! otherwise the next message follows from the peer's last answer.

use adapters::ledger::{Acted, LedgerAdapter, LockState, LockTerms, OperationKey};
use adapters::satp::context::TransferContext;
use adapters::satp::envelope::{self, Envelope};
use adapters::satp::messages::{
    Capabilities, Message, NetworkLockType, Sender, TransferInitClaim, VERSION, hash_json,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::Peer;
use super::evidence;
use super::fault;
use super::log::{self, Operation};
use super::problem;
use super::server::{asset_id, replay, stored};
use super::store::{Role, SatpStore, SessionRow, SessionStatus};
use crate::app::App;
use crate::sequencer::now_ms;
use crate::store::StoreError;
use crate::transfers::any::AnyLedger;
use crate::transfers::local::LocalLedger;
use crate::transfers::{Connector, StepError, Transfer, TransferState, advance, advance_to};

/// Why an exchange did not produce the peer's answer.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The peer could not be reached (or did not answer in time).
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// The peer refused the message with a signed SATP error.
    #[error("peer refused ({status}): {code}: {detail}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The error's `type` URN.
        code: String,
        /// Its detail.
        detail: String,
    },
    /// The peer answered something this gateway cannot accept.
    #[error("peer's answer refused: {0}")]
    Protocol(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ExchangeError {
    /// True when sending again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ExchangeError::Refused { status, .. } => *status == 503,
            ExchangeError::Unreachable(_) | ExchangeError::Store(_) => true,
            ExchangeError::Protocol(_) => false,
        }
    }
}

impl From<ExchangeError> for StepError {
    fn from(error: ExchangeError) -> Self {
        match error {
            ExchangeError::Store(e) => StepError::Store(e),
            other => StepError::Refused(other.to_string()),
        }
    }
}

/// What an exchange came to.
#[derive(Debug)]
pub enum Exchanged {
    /// The peer's answer (its JSON), verified and stored.
    Answer(Value),
    /// The peer took it without an answer (transfer-complete, session-abort).
    NoContent,
}

fn protocol(error: impl std::fmt::Display) -> ExchangeError {
    ExchangeError::Protocol(error.to_string())
}

/// What an error answer from `peer` about session `session_id` came with
/// HTTP `status` means. A signed error counts as a refusal only if it is
/// about this session and its signed status is the one it came with (a
/// replayed error of another exchange is not a refusal of this one).
pub(crate) fn refusal(
    body: &Value,
    peer: &Peer,
    session_id: &str,
    status: StatusCode,
) -> ExchangeError {
    refusal_by(body, &peer.keys, session_id, status)
}

/// [`refusal`] with the peer's keys. An unsigned 502, 503 or 504 is not
/// the peer's SATP server refusing: it is the peer still starting (its
/// `not-ready` answer), or a proxy in front of it, so it is transient like
/// an unreachable peer and the message is sent again later. So are an
/// unsigned 429 (the peer's rate limit, which counts a peer's messages by
/// its address and answers before the SATP server sees them) and 408 (a
/// proxy's timeout): the message was not looked at, and refusing would
/// unwind a transfer because the peer was busy. Any other unsigned answer
/// (404, 405, 413: a peer that does not take the message at all) is
/// refused.
fn refusal_by(
    body: &Value,
    keys: &adapters::satp::jws::KeySet,
    session_id: &str,
    status: StatusCode,
) -> ExchangeError {
    match problem::verify(body, keys) {
        Ok(p) if p.session_id == session_id && p.status == u64::from(status.as_u16()) => {
            ExchangeError::Refused {
                status: status.as_u16(),
                code: p.type_uri,
                detail: p.detail,
            }
        }
        // The peer's "cannot act now" (`satp::server::internal`): signed,
        // about no session, so that its cause stays in the peer's log.
        Ok(p)
            if p.session_id.is_empty()
                && status == StatusCode::SERVICE_UNAVAILABLE
                && p.status == u64::from(status.as_u16()) =>
        {
            ExchangeError::Unreachable(format!(
                "the peer cannot act on the message now ({status}; its log has the cause): {}",
                p.detail
            ))
        }
        Ok(p) => ExchangeError::Unreachable(format!(
            "an error document for another exchange ({} {})",
            p.status, p.session_id
        )),
        Err(e)
            if matches!(
                status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
                    | StatusCode::REQUEST_TIMEOUT
                    | StatusCode::TOO_MANY_REQUESTS
            ) =>
        {
            ExchangeError::Unreachable(format!(
                "{status} without a signed SATP error (the peer is starting or busy, or a proxy answered): {e}"
            ))
        }
        Err(e) => protocol(format!("{status}: {e}")),
    }
}

/// Sends `message` as the next client message of `session` (or, when the
/// last stored message is an unanswered one of the same type, sends that
/// one again unchanged) and stores the verified answer.
pub async fn exchange(
    app: &App,
    peer: &Peer,
    session: &SessionRow,
    message: Message,
) -> Result<Exchanged, ExchangeError> {
    use tracing::Instrument as _;
    let span = tracing::debug_span!(
        "satp.send",
        otel.kind = "client",
        satp.message_type = message.type_name(),
        satp.session_id = %session.session_id,
        satp.peer = %peer.gateway_id,
    );
    exchange_traced(app, peer, session, message)
        .instrument(span)
        .await
}

async fn exchange_traced(
    app: &App,
    peer: &Peer,
    session: &SessionRow,
    message: Message,
) -> Result<Exchanged, ExchangeError> {
    let store = &app.store;
    let identity = &app.satp.identity;
    let fault_step = app.satp.fault.as_ref();
    let session_id = session.session_id.as_str();
    let messages = store.messages(session_id).await?;
    let mut state = replay(&messages).map_err(protocol)?;
    let (envelope, seq, hash) = match messages.last() {
        Some(last) if last.sender == Role::Client && last.message_type == message.type_name() => (
            serde_json::from_str::<Envelope>(&last.envelope).map_err(protocol)?,
            last.seq,
            last.hash.clone(),
        ),
        _ => {
            let json = message.to_json();
            state.accept(&message, &json, Sender::Client).map_err(|e| {
                protocol(format!("this gateway's own message is out of place: {e}"))
            })?;
            let hash = hash_json(&json).map_err(protocol)?;
            let traceparent = crate::telemetry::current_traceparent();
            let sealed = envelope::seal_traced(&message, &identity.key, traceparent.as_deref())
                .map_err(protocol)?;
            let seq = messages.len() as u64;
            log::append(
                store,
                identity,
                session_id,
                message.type_name(),
                Operation::Init,
                &hash,
                now_ms(),
            )
            .await?;
            let row = stored(seq, Role::Client, &message, &sealed, hash.clone());
            if !store
                .append_messages(session_id, &[row], None, None)
                .await?
            {
                return Err(protocol("another task wrote to this session first"));
            }
            fault::reach(
                fault_step,
                "after-write-ahead",
                message.type_name(),
                session_id,
            )
            .await;
            (sealed, seq, hash)
        }
    };
    log::append(
        store,
        identity,
        session_id,
        message.type_name(),
        Operation::Exec,
        &hash,
        now_ms(),
    )
    .await?;
    let response =
        crate::telemetry::traced(app.satp.http.post(format!("{}/v1/satp/messages", peer.url)))
            .json(&envelope)
            .send()
            .await
            .map_err(|e| ExchangeError::Unreachable(e.to_string()))?;
    let status = response.status();
    if status == StatusCode::NO_CONTENT {
        let closed = match message {
            Message::TransferComplete { .. } => SessionStatus::Complete,
            Message::SessionAbort { .. } => SessionStatus::Aborted,
            _ => {
                return Err(protocol(
                    "the peer answered 204 to a message that needs an answer",
                ));
            }
        };
        fault::reach(fault_step, "after-send", message.type_name(), session_id).await;
        store
            .append_messages(session_id, &[], Some(closed), None)
            .await?;
        log::append(
            store,
            identity,
            session_id,
            message.type_name(),
            Operation::Done,
            &hash,
            now_ms(),
        )
        .await?;
        return Ok(Exchanged::NoContent);
    }
    let body: Value = response
        .json()
        .await
        .map_err(|e| ExchangeError::Unreachable(format!("reading the answer: {e}")))?;
    if status != StatusCode::OK {
        log::append(
            store,
            identity,
            session_id,
            message.type_name(),
            Operation::Fail,
            &hash,
            now_ms(),
        )
        .await?;
        return Err(refusal(&body, peer, session_id, status));
    }
    let answer_envelope: Envelope = serde_json::from_value(body).map_err(protocol)?;
    // The answer must be signed by a key pinned for this peer (its current
    // one, or a previous one during a rotation's overlap).
    let answer_key = envelope::signer(&answer_envelope, &peer.keys)
        .ok_or_else(|| protocol("the answer is signed by a key not pinned for the peer"))?;
    let (answer, json) = envelope::open(&answer_envelope, answer_key).map_err(protocol)?;
    if let Message::SessionAbort { .. } = answer {
        // The peer ended the session instead of answering.
        store
            .append_messages(session_id, &[], Some(SessionStatus::Aborted), None)
            .await?;
        return Err(ExchangeError::Refused {
            status: 409,
            code: "session-abort".into(),
            detail: "the peer aborted the session".into(),
        });
    }
    state
        .accept(&answer, &json, Sender::Server)
        .map_err(|e| protocol(format!("the answer is out of place: {e}")))?;
    fault::reach(fault_step, "after-send", message.type_name(), session_id).await;
    let answer_hash = hash_json(&json).map_err(protocol)?;
    let row = stored(
        seq + 1,
        Role::Server,
        &answer,
        &answer_envelope,
        answer_hash.clone(),
    );
    // A concurrent task may have stored the very same answer: that is fine.
    store
        .append_messages(session_id, &[row], None, None)
        .await?;
    log::append(
        store,
        identity,
        session_id,
        answer.type_name(),
        Operation::Ack,
        &answer_hash,
        now_ms(),
    )
    .await?;
    Ok(Exchanged::Answer(json))
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The peer refused the transfer.
    #[error("the peer gateway refused the transfer: {0}")]
    Refused(String),
    /// The peer could not be reached or answered wrongly.
    #[error("the peer gateway is unavailable: {0}")]
    Unavailable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ExchangeError> for OpenError {
    fn from(error: ExchangeError) -> Self {
        match error {
            ExchangeError::Store(e) => OpenError::Store(e),
            ExchangeError::Refused {
                status,
                code,
                detail,
            } if status != 503 => OpenError::Refused(format!("{code}: {detail}")),
            other => OpenError::Unavailable(other.to_string()),
        }
    }
}

/// The transfer context of a client transfer (`hop`: the receiving
/// gateway's own lock's expiry on a route through it).
pub fn context(t: &Transfer, hop: Option<u64>) -> TransferContext {
    TransferContext {
        transfer_id: t.id.clone(),
        source_chain_id: t.source_chain_id,
        target_chain_id: t.target_chain_id,
        source_asset: t.source_asset,
        target_asset: t.target_asset,
        amount: t.amount,
        sender: t.sender,
        recipient: t.recipient,
        source_lock_recipient: t.connector,
        hashlock: t.hashlock,
        source_lock_by_ms: t.source_lock_by_ms,
        source_expires_at_ms: t.source_expires_at_ms,
        target_expires_at_ms: t.target_expires_at_ms,
        hop_expires_at_ms: hop,
    }
}

/// Stage 1 for a new transfer `t` to `peer`'s ledger (or, with `hop`,
/// through `peer` to the ledger of one of its peers): proposal, receipt,
/// commence, ack. Returns the session.
pub async fn open(
    app: &App,
    peer: &Peer,
    t: &Transfer,
    hop: Option<u64>,
) -> Result<SessionRow, OpenError> {
    let identity = &app.satp.identity;
    let context_id = context(t, hop).encode();
    let session = SessionRow {
        session_id: uuid::Uuid::new_v4().to_string(),
        transfer_id: t.id.clone(),
        role: Role::Client,
        peer: peer.gateway_id.clone(),
        context_id: context_id.clone(),
        status: SessionStatus::Open,
        source_lock_id: None,
        created_at_ms: now_ms(),
    };
    if !app.store.create_session(&session, &[]).await? {
        return Err(OpenError::Unavailable("session id collision".into()));
    }
    app.satp.mark_recovered(&session.session_id);
    let claim = TransferInitClaim {
        digital_asset_id: asset_id(t.source_chain_id, &t.source_asset),
        asset_profile_id: asset_id(t.target_chain_id, &t.target_asset),
        network_lock_type: NetworkLockType::HashTimeLock,
        asset_lock_expiration_time: Some(t.source_expires_at_ms.saturating_sub(now_ms()) / 1000),
        verified_originator_entity_id: t.sender.to_string(),
        verified_beneficiary_entity_id: t.recipient.to_string(),
        originator_public_key: t.sender.to_string(),
        beneficiary_public_key: t.recipient.to_string(),
        sender_gateway_signature_public_key: identity.jwk.to_string(),
        receiver_gateway_signature_public_key: peer.jwk_text.clone(),
        sender_gateway_id: identity.gateway_id.clone(),
        recipient_gateway_id: peer.gateway_id.clone(),
        sender_gateway_network_id: t.source_chain_id.get().to_string(),
        recipient_gateway_network_id: t.target_chain_id.get().to_string(),
        sender_gateway_device_identity_public_key: None,
        receiver_gateway_device_identity_public_key: None,
        sender_gateway_owner_id: None,
        receiver_gateway_owner_id: None,
    };
    let hash_claim = hash_json(
        &serde_json::to_value(&claim).map_err(|e| OpenError::Unavailable(e.to_string()))?,
    )
    .map_err(|e| OpenError::Unavailable(e.to_string()))?;
    let proposal = Message::TransferProposal {
        version: VERSION.into(),
        session_id: session.session_id.clone(),
        transfer_context_id: context_id.clone(),
        transfer_init_claim_format: "TRANSFER_INIT_CLAIM_FORMAT_1".into(),
        transfer_init_claim: claim,
        gateway_and_network_capabilities: Capabilities {
            gateway_default_signature_algorithm: "ES256".into(),
            gateway_supported_signature_algorithms: Some(vec!["ES256".into()]),
            network_lock_type: NetworkLockType::HashTimeLock,
            network_lock_expiration_time: app.connector.config.timelock_ms_max / 1000,
            gateway_tls_scheme: "TLS_AES_128_GCM_SHA256".into(),
        },
    };
    let Exchanged::Answer(receipt) = exchange(app, peer, &session, proposal).await? else {
        return Err(OpenError::Unavailable("no proposal receipt".into()));
    };
    let commence = Message::TransferCommence {
        session_id: session.session_id.clone(),
        transfer_context_id: context_id,
        hash_transfer_init_claim: hash_claim,
        hash_prev_message: hash_json(&receipt)
            .map_err(|e| OpenError::Unavailable(e.to_string()))?,
    };
    exchange(app, peer, &session, commence).await?;
    Ok(session)
}

/// Sends a session-abort unless the session is over; failures are logged
/// only (each side unwinds by its own timelocks anyway).
pub async fn abort(app: &App, peer: &Peer, session: &SessionRow) {
    if session.status != SessionStatus::Open {
        return;
    }
    let message = Message::SessionAbort {
        session_id: session.session_id.clone(),
    };
    if let Err(error) = exchange(app, peer, session, message).await {
        tracing::info!(%error, session = %session.session_id, "session-abort not delivered");
    }
}

/// The hop expiry of a routed session's context (none for a direct one).
fn hop_expiry(session: &SessionRow) -> Result<Option<u64>, StepError> {
    TransferContext::decode(&session.context_id)
        .map(|c| c.hop_expires_at_ms)
        .map_err(|e| StepError::Corrupt(e.to_string()))
}

fn last_hash(messages: &[super::store::StoredMessage]) -> String {
    messages.last().map(|m| m.hash.clone()).unwrap_or_default()
}

/// One step of a transfer this gateway originated towards `peer`.
pub async fn step(
    app: &App,
    connector: &Connector,
    t: &Transfer,
    session: &SessionRow,
    peer: &Peer,
) -> Result<(), StepError> {
    let now = now_ms();
    let source = AnyLedger::Local(LocalLedger::new(app, connector, t.source_chain_id));
    let sender_lock = crate::transfers::sender_lock(t);
    let reaction = crate::transfers::reaction_ms(&connector.config);
    let session_id = session.session_id.clone();
    let context_id = session.context_id.clone();
    super::recovery::recover_once(app, peer, session).await;
    match t.state {
        TransferState::AwaitingSourceLock => {
            if let Some(lock) = source.find_open_lock(&sender_lock).await? {
                let next = Transfer {
                    state: TransferState::SourceLocked,
                    source_lock_id: Some(lock.id),
                    ..t.clone()
                };
                let detail = json!({ "lockId": lock.id.to_string(), "expiresAtMs": lock.terms.expires_at_ms.to_string() });
                return advance(app, t, next, "source_locked", detail).await;
            }
            if now >= t.source_lock_by_ms {
                advance_to(
                    app,
                    t,
                    TransferState::Cancelled,
                    "cancelled",
                    json!({ "reason": "the sender did not lock by sourceLockByMs" }),
                )
                .await?;
                abort(app, peer, session).await;
            }
            Ok(())
        }
        TransferState::SourceLocked => {
            let Some(source_lock) = t.source_lock_id else {
                return Err(StepError::Corrupt("source_locked without a lock".into()));
            };
            // Stage 2 and the first half of stage 3, resumed from the last
            // stored message.
            for _ in 0..4 {
                let messages = app.store.messages(&session_id).await?;
                let last_server = messages
                    .iter()
                    .rev()
                    .find(|m| m.sender == Role::Server)
                    .map(|m| m.message_type.as_str());
                let unanswered = messages.last().is_some_and(|m| m.sender == Role::Client);
                let lock_by =
                    crate::transfers::target_lock_by(&connector.config, t.source_lock_by_ms);
                // Past the deadline nothing new is asked of the peer; an
                // unanswered request gets the time the peer's lock would need
                // to be final, then the transfer unwinds (a lock the peer
                // made meanwhile still shows up as a claim of the source).
                let give_up = if unanswered {
                    lock_by
                        .saturating_add(connector.config.commit_ms_max)
                        .saturating_add(reaction)
                } else {
                    lock_by
                };
                let message = match last_server {
                    Some("ack-commence-msg") | Some("assertion-receipt-msg") if now > give_up => {
                        advance_to(
                            app,
                            t,
                            TransferState::Refunding,
                            "unwinding",
                            json!({ "reason": "the peer could not lock on the target in time" }),
                        )
                        .await?;
                        abort(app, peer, session).await;
                        return Ok(());
                    }
                    Some("ack-commence-msg") => {
                        let tx = ledger_core::TxHash::from_bytes(*source_lock.as_bytes());
                        let claim = evidence::inclusion(app, t.source_chain_id, tx)
                            .await?
                            .ok_or_else(|| {
                                StepError::Corrupt("the source lock is not committed".into())
                            })?;
                        Message::LockAssert {
                            session_id: session_id.clone(),
                            transfer_context_id: context_id.clone(),
                            lock_assertion_claim_format: evidence::INCLUSION.into(),
                            lock_assertion_claim: claim,
                            lock_assertion_expiration: super::rfc3339_ms(t.source_expires_at_ms),
                            hash_prev_message: last_hash(&messages),
                        }
                    }
                    Some("assertion-receipt-msg") => Message::CommitPrepare {
                        session_id: session_id.clone(),
                        transfer_context_id: context_id.clone(),
                        hash_prev_message: last_hash(&messages),
                    },
                    Some("commit-ready-msg") => {
                        let Some(ready) = messages
                            .iter()
                            .rev()
                            .find(|m| m.message_type == "commit-ready-msg")
                        else {
                            return Err(StepError::Corrupt("commit-ready vanished".into()));
                        };
                        let envelope: Envelope = serde_json::from_str(&ready.envelope)
                            .map_err(|e| StepError::Corrupt(e.to_string()))?;
                        let json = envelope::peek(&envelope).unwrap_or_default();
                        let (Some(format), Some(claim)) = (
                            json.get("mintAssertionFormat").and_then(Value::as_str),
                            json.get("mintAssertionClaim"),
                        ) else {
                            return Err(StepError::Corrupt("commit-ready without a claim".into()));
                        };
                        // On a route the peer's lock is on its own ledger, to
                        // the next gateway (its choice), until the hop expiry.
                        let routed = hop_expiry(session)?;
                        let terms = LockTerms {
                            sender: peer.account,
                            recipient: t.recipient,
                            asset: t.target_asset,
                            amount: t.target_amount,
                            hashlock: t.hashlock,
                            expires_at_ms: routed.unwrap_or(t.target_expires_at_ms),
                        };
                        let checked = if format == evidence::INCLUSION {
                            evidence::verify_lock(
                                claim,
                                peer.chain_id,
                                &peer.block_producers,
                                &terms,
                                true,
                                routed.is_none(),
                            )
                            .map_err(|e| e.to_string())
                        } else {
                            Err(format!("unsupported mintAssertionFormat {format}"))
                        };
                        return match checked {
                            Ok(lock) => {
                                let next = Transfer {
                                    state: TransferState::TargetLocked,
                                    target_lock_id: Some(lock),
                                    ..t.clone()
                                };
                                advance(app, t, next, "target_locked", json!({ "lockId": lock.to_string(), "peer": peer.gateway_id, "evidence": "commit-ready" })).await
                            }
                            Err(reason) => {
                                // The peer's lock is not what was agreed: do not
                                // count on it; unwind (the source refunds at expiry).
                                tracing::error!(transfer = %t.id, %reason, "the peer's commit-ready evidence is refused");
                                let detail = json!({ "reason": format!("the peer's target lock is not proven: {reason}") });
                                advance_to(app, t, TransferState::Refunding, "unwinding", detail)
                                    .await?;
                                abort(app, peer, session).await;
                                Ok(())
                            }
                        };
                    }
                    other => {
                        return Err(StepError::Corrupt(format!(
                            "session {session_id} stands at {other:?} while the source is locked"
                        )));
                    }
                };
                match exchange(app, peer, session, message).await {
                    Ok(_) => continue,
                    Err(error) if error.is_transient() => return Err(error.into()),
                    Err(error) => {
                        tracing::warn!(transfer = %t.id, %error, "the peer refused; unwinding");
                        advance_to(
                            app,
                            t,
                            TransferState::Refunding,
                            "unwinding",
                            json!({ "reason": error.to_string() }),
                        )
                        .await?;
                        abort(app, peer, session).await;
                        return Ok(());
                    }
                }
            }
            Ok(())
        }
        TransferState::TargetLocked => {
            let lock = match t.source_lock_id {
                Some(id) => source.lock_status(id).await?,
                None => None,
            };
            match lock.map(|l| l.state) {
                Some(LockState::Claimed { preimage }) => {
                    let next = Transfer {
                        state: TransferState::ClaimingSource,
                        preimage: Some(preimage),
                        ..t.clone()
                    };
                    advance(
                        app,
                        t,
                        next,
                        "source_claimed",
                        json!({ "preimage": format!("0x{}", hex::encode(preimage)), "by": "peer" }),
                    )
                    .await
                }
                Some(LockState::Locked) if now < t.source_expires_at_ms => Ok(()),
                _ => {
                    advance_to(
                        app,
                        t,
                        TransferState::Refunding,
                        "unwinding",
                        json!({ "reason": "the source lock was not claimed before it expired" }),
                    )
                    .await
                }
            }
        }
        TransferState::ClaimingSource => {
            // The source is claimed (that is how the preimage came): stage 3 closes.
            let (Some(source_lock), Some(target_lock), Some(preimage)) =
                (t.source_lock_id, t.target_lock_id, t.preimage)
            else {
                return Err(StepError::Corrupt(
                    "claimed without locks or preimage".into(),
                ));
            };
            for _ in 0..3 {
                let messages = app.store.messages(&session_id).await?;
                let last_server = messages
                    .iter()
                    .rev()
                    .find(|m| m.sender == Role::Server)
                    .map(|m| m.message_type.clone());
                let message = match last_server.as_deref() {
                    Some("commit-ready-msg") => Message::CommitFinal {
                        session_id: session_id.clone(),
                        transfer_context_id: context_id.clone(),
                        hash_prev_message: last_hash(&messages),
                        burn_assertion_claim_format: evidence::SETTLEMENT.into(),
                        burn_assertion_claim: evidence::settlement(
                            t.source_chain_id,
                            source_lock,
                            preimage,
                        ),
                    },
                    Some("ack-commit-final-msg") => {
                        let Some(ack) = messages
                            .iter()
                            .rev()
                            .find(|m| m.message_type == "ack-commit-final-msg")
                        else {
                            return Err(StepError::Corrupt("ack-commit-final vanished".into()));
                        };
                        let envelope: Envelope = serde_json::from_str(&ack.envelope)
                            .map_err(|e| StepError::Corrupt(e.to_string()))?;
                        let json = envelope::peek(&envelope).unwrap_or_default();
                        let claim = json
                            .get("assignmentAssertionClaim")
                            .cloned()
                            .unwrap_or_default();
                        if let Err(error) = evidence::verify_settlement(
                            &claim,
                            peer.chain_id,
                            target_lock,
                            t.hashlock,
                        ) {
                            tracing::error!(transfer = %t.id, %error, "the peer's assignment evidence is refused");
                        }
                        let commence = messages
                            .iter()
                            .find(|m| m.message_type == "transfer-commence-msg")
                            .map(|m| m.hash.clone())
                            .unwrap_or_default();
                        Message::TransferComplete {
                            session_id: session_id.clone(),
                            transfer_context_id: context_id.clone(),
                            hash_prev_message: last_hash(&messages),
                            hash_transfer_commence: commence,
                        }
                    }
                    other => {
                        return Err(StepError::Corrupt(format!(
                            "session {session_id} stands at {other:?} while closing"
                        )));
                    }
                };
                let is_complete = matches!(message, Message::TransferComplete { .. });
                match exchange(app, peer, session, message).await {
                    Ok(_) if is_complete => {
                        return advance_to(
                            app,
                            t,
                            TransferState::Completed,
                            "completed",
                            json!({ "sessionId": session_id }),
                        )
                        .await;
                    }
                    Ok(_) => continue,
                    Err(error) => return Err(error.into()),
                }
            }
            Ok(())
        }
        TransferState::Refunding => {
            let lock = match t.source_lock_id {
                Some(id) => source.lock_status(id).await?,
                None => None,
            };
            if let Some(lock) = lock {
                match lock.state {
                    // A claim at the last moment: the transfer completes after all.
                    LockState::Claimed { preimage } if t.target_lock_id.is_some() => {
                        let next = Transfer {
                            state: TransferState::ClaimingSource,
                            preimage: Some(preimage),
                            ..t.clone()
                        };
                        let detail = json!({ "preimage": format!("0x{}", hex::encode(preimage)), "by": "peer" });
                        return advance(app, t, next, "source_claimed", detail).await;
                    }
                    // Claimed although this side never saw the peer's lock
                    // (its commit-ready was lost or refused): the sender's
                    // funds went to the peer, who could only claim with the
                    // preimage the recipient revealed. Completed, not refunded.
                    LockState::Claimed { .. } => {
                        let detail = json!({ "reason": "the peer claimed the source lock; its own lock was not seen here" });
                        return advance_to(app, t, TransferState::Completed, "completed", detail)
                            .await;
                    }
                    LockState::Locked if now >= lock.terms.expires_at_ms => {
                        let op = OperationKey {
                            transfer_id: &t.id,
                            action: "source-refund",
                        };
                        if let Acted::Refused(reason) = source.refund(op, lock.id).await? {
                            return Err(StepError::Refused(format!("source-refund: {reason}")));
                        }
                        return Ok(());
                    }
                    LockState::Locked => return Ok(()),
                    LockState::Refunded => {}
                }
            }
            // Nothing (left) locked on this side: refunded; the peer is told.
            let next = Transfer {
                state: TransferState::Refunded,
                ..t.clone()
            };
            advance(app, t, next.clone(), "refunded", json!({})).await?;
            abort(app, peer, session).await;
            super::recovery::rollback(app, peer, session, &next).await;
            Ok(())
        }
        TransferState::Completed
        | TransferState::Refunded
        | TransferState::Cancelled
        | TransferState::Failed => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A peer that is starting answers 503 `not-ready` unsigned, a busy one
    /// 429 `rate-limited`: sent again later, not refused; an unsigned 400 or
    /// 413 is refused.
    #[test]
    fn an_unsigned_503_or_429_is_transient_and_an_unsigned_400_is_not() {
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let keys = adapters::satp::jws::KeySet::new(*key.verifying_key());
        let not_ready = serde_json::json!({
            "type": "urn:lockgate:problem:not-ready",
            "title": "Not ready",
            "status": 503,
            "detail": "the gateway is starting: running database migrations"
        });
        for status in [
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::GATEWAY_TIMEOUT,
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::TOO_MANY_REQUESTS,
        ] {
            let error = refusal_by(&not_ready, &keys, "s-1", status);
            assert!(
                matches!(error, ExchangeError::Unreachable(_)) && error.is_transient(),
                "{status}: {error:?}"
            );
        }
        for status in [StatusCode::BAD_REQUEST, StatusCode::PAYLOAD_TOO_LARGE] {
            let error = refusal_by(&not_ready, &keys, "s-1", status);
            assert!(
                matches!(error, ExchangeError::Protocol(_)) && !error.is_transient(),
                "{status}: {error:?}"
            );
        }
    }

    /// The peer's signed "cannot act now" (about no session) is transient
    /// and says so; the same document about another session is a replay.
    #[test]
    fn a_signed_cannot_act_now_is_transient_and_named_as_such() {
        let key = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
        let public = *key.verifying_key();
        let identity = super::super::Identity {
            gateway_id: "peer".into(),
            jwk: adapters::satp::jws::jwk(&public),
            kid: adapters::satp::jws::thumbprint(&public),
            key,
            keys: adapters::satp::jws::KeySet::new(public),
        };
        let keys = adapters::satp::jws::KeySet::new(public);
        let cannot = super::super::server::internal("a test").signed(&identity, 1_000);
        let error = refusal_by(&cannot, &keys, "s-1", StatusCode::SERVICE_UNAVAILABLE);
        match &error {
            ExchangeError::Unreachable(reason) => {
                assert!(reason.contains("cannot act"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(error.is_transient());
        // Came with another status than the one it signs: not this answer.
        let error = refusal_by(&cannot, &keys, "s-1", StatusCode::BAD_GATEWAY);
        assert!(
            matches!(&error, ExchangeError::Unreachable(r) if r.contains("another exchange")),
            "{error:?}"
        );
    }
}
