//! Crash recovery between two gateways, after draft-ietf-satp-recovery:
//! `POST /v1/satp/recovery` and the two exchanges a gateway starts.
//!
//! **RECOVER.** The first time a restarted gateway acts on a session that
//! was open before it started, it sends RECOVER (how many session messages
//! it holds) to the peer; the peer answers RECOVER-UPDATE with every session
//! message it holds from there on, each the signed envelope as it went over
//! the wire. The recovered gateway checks every one (signature by its
//! sender's key, place in the session, hash chain) and, as the client,
//! stores the answers it had lost (it died after hearing them); as the
//! server it stores nothing (a client message it never answered will be
//! resent and answered). It acknowledges (RECOVER-UPDATE-ACK, with how many
//! messages it holds now) and the peer confirms (RECOVER-SUCCESS) when both
//! hold the same session. The session then resumes where the stored
//! messages say. Either side may be the recovered one; every step is logged.
//!
//! **ROLLBACK.** When the originating gateway has unwound a transfer
//! (refunded, or cancelled after stage 1), it sends ROLLBACK listing its
//! compensating actions (the sender's lock: refunded, with the refund's
//! inclusion evidence, or pending until its expiry, or none) and the peer
//! answers ROLLBACK-ACK with its own (its target lock, likewise).
//!
//! Recovery never blocks safety: if the peer cannot be reached, each side
//! goes on by its own ledger and timelocks and tries again on a later step.

use std::sync::Arc;

use adapters::satp::envelope::{self, Envelope};
use adapters::satp::messages::{Message, Sender};
use adapters::satp::recovery::{Compensation, RecoveryMessage};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ledger_core::HtlcStatus;
use reqwest::StatusCode as ClientStatus;
use serde_json::Value;

use super::Peer;
use super::client::ExchangeError;
use super::evidence;
use super::log::{self, Operation};
use super::problem::SatpProblem;
use super::server::{header_kid, internal, replay, session_transfer, stored};
use super::store::{Role, SatpStore, SessionRow, StoredMessage};
use crate::app::App;
use crate::sequencer::now_ms;
use crate::store::{LedgerStore, StoreError};
use crate::transfers::Transfer;
use crate::transfers::store::TransferStore;

/// Receive a recovery message (RECOVER, RECOVER-UPDATE-ACK, ROLLBACK) from a peer gateway.
///
/// The body is the message as a flattened JWS (`Envelope`) signed with the
/// peer's pinned identity key; the answer is the next recovery message
/// (RECOVER-UPDATE, RECOVER-SUCCESS, ROLLBACK-ACK), signed with this
/// gateway's identity key (`docs/satp.md`). Errors are signed SATP problems.
#[utoipa::path(
    post, path = "/v1/satp/recovery", tag = "satp", operation_id = "receive_satp_recovery_message",
    request_body(content = Envelope, content_type = "application/json"),
    responses(
        (status = 200, description = "The answer, signed", body = Envelope),
        (status = 400, description = "Malformed, or not a message this gateway answers", body = super::problem::SatpError, content_type = "application/problem+json"),
        (status = 403, description = "Not this peer's session", body = super::problem::SatpError, content_type = "application/problem+json"),
        (status = 422, description = "Bad signature, or no such session", body = super::problem::SatpError, content_type = "application/problem+json"),
        (status = 503, description = "Cannot act now; send it again later", body = super::problem::SatpError, content_type = "application/problem+json"),
    ),
    security(()),
)]
pub async fn receive(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match handle(&app, &body).await {
        Ok(answer) => (StatusCode::OK, axum::Json(answer)).into_response(),
        Err(problem) => problem.response(&app.satp.identity, now_ms()),
    }
}

async fn handle(app: &App, body: &[u8]) -> Result<Value, SatpProblem> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| SatpProblem::new("err_0.1.1", format!("not a SATP envelope: {e}")))?;
    let (peer, signer) = header_kid(&envelope)
        .and_then(|kid| app.satp.peer_by_kid(&kid))
        .ok_or_else(|| SatpProblem::new("err_0.1.3", "the signing key is not a pinned peer's"))?;
    let json = envelope::open_value(&envelope, signer)
        .map_err(|e| SatpProblem::new("err_0.1.3", e.to_string()))?;
    let message: RecoveryMessage = serde_json::from_value(json.clone())
        .map_err(|e| SatpProblem::new("err_0.1.1", format!("not a recovery message: {e}")))?;
    let hash = message.hash().map_err(internal)?;
    let session_id = message.session_id().to_string();
    let session = app
        .store
        .session(&session_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| SatpProblem::new("err_1.1.2", "no such session"))?;
    let about = |p: SatpProblem| p.about(&session.session_id, &session.context_id, &hash);
    if session.peer != peer.gateway_id {
        return Err(about(SatpProblem::new(
            "err_0.1.2",
            "the session is another peer's",
        )));
    }
    let identity = &app.satp.identity;
    let now = now_ms();
    log::append(
        &app.store,
        identity,
        &session_id,
        message.type_name(),
        Operation::Ack,
        &hash,
        now,
    )
    .await
    .map_err(internal)?;
    let answer = match message {
        RecoveryMessage::Recover {
            context_id,
            sequence_number,
            ..
        } => {
            if context_id != session.context_id {
                return Err(about(SatpProblem::new(
                    "err_1.1.1",
                    "contextId is not the session's",
                )));
            }
            let messages = app.store.messages(&session_id).await.map_err(internal)?;
            let recovered = messages
                .iter()
                .skip(sequence_number as usize)
                .map(|m| serde_json::from_str::<Envelope>(&m.envelope))
                .collect::<Result<Vec<_>, _>>()
                .map_err(internal)?;
            RecoveryMessage::RecoverUpdate {
                session_id: session_id.clone(),
                context_id: session.context_id.clone(),
                hash_recover_message: hash.clone(),
                recovered_messages: recovered,
            }
        }
        RecoveryMessage::RecoverUpdateAck {
            success,
            sequence_number,
            ..
        } => {
            let held = app
                .store
                .messages(&session_id)
                .await
                .map_err(internal)?
                .len() as u32;
            // The recovered side holds what this side holds, plus at most its
            // own last message, unanswered, which it will send again.
            let same = success && (sequence_number == held || sequence_number == held + 1);
            RecoveryMessage::RecoverSuccess {
                session_id: session_id.clone(),
                context_id: session.context_id.clone(),
                hash_recover_update_ack_message: hash.clone(),
                success: same,
            }
        }
        RecoveryMessage::Rollback { actions, .. } => {
            for action in &actions {
                if let Some(evidence) = &action.evidence {
                    check_refund(evidence, peer, action).map_err(|e| {
                        about(SatpProblem::new(
                            "err_2.2.7",
                            format!("{}: {e}", action.action),
                        ))
                    })?;
                }
            }
            let transfer = session_transfer(app, &session).await?;
            RecoveryMessage::RollbackAck {
                session_id: session_id.clone(),
                context_id: session.context_id.clone(),
                hash_rollback_message: hash.clone(),
                actions: compensations(app, &transfer, session.role)
                    .await
                    .map_err(internal)?,
            }
        }
        other => {
            return Err(about(SatpProblem::new(
                "err_0.1.1",
                format!("{} is an answer, not a request", other.type_name()),
            )));
        }
    };
    let answer_hash = answer.hash().map_err(internal)?;
    log::append(
        &app.store,
        identity,
        &session_id,
        answer.type_name(),
        Operation::Done,
        &answer_hash,
        now_ms(),
    )
    .await
    .map_err(internal)?;
    let sealed = envelope::seal_value(&answer.to_json(), &identity.key).map_err(internal)?;
    serde_json::to_value(sealed).map_err(internal)
}

/// Checks a peer's refund evidence: an `HtlcRefund` of the named lock, on
/// the peer's ledger, proven against its pinned block key.
fn check_refund(evidence: &Value, peer: &Peer, action: &Compensation) -> Result<(), String> {
    let signed = evidence::verify_inclusion(evidence, peer.chain_id, &peer.block_producers)
        .map_err(|e| e.to_string())?;
    match (&signed.transaction.body, &action.lock_id) {
        (ledger_core::TxBody::HtlcRefund { lock_id }, Some(named))
            if lock_id.to_string() == *named =>
        {
            Ok(())
        }
        _ => Err("the evidence is not the refund of the named lock".into()),
    }
}

/// This gateway's compensating actions for `transfer`: its own lock
/// (the sender's on the source ledger for the client, its target lock for
/// the server), refunded or not.
pub async fn compensations(
    app: &App,
    transfer: &Transfer,
    role: Role,
) -> Result<Vec<Compensation>, StoreError> {
    let (action, chain, lock) = match role {
        Role::Client => (
            "source-refund",
            transfer.source_chain_id,
            transfer.source_lock_id,
        ),
        Role::Server => (
            "target-refund",
            transfer.target_chain_id,
            transfer.target_lock_id,
        ),
    };
    let mut compensation = Compensation {
        action: action.into(),
        chain_id: chain.get().to_string(),
        lock_id: lock.map(|l| l.to_string()),
        status: "none".into(),
        expires_at_ms: None,
        evidence: None,
    };
    if let Some(lock) = lock
        && let Some(htlc) = app.store.htlc(chain, lock).await?
    {
        compensation.expires_at_ms = Some(htlc.expires_at_ms.to_string());
        compensation.status = match htlc.status {
            HtlcStatus::Refunded => "refunded",
            HtlcStatus::Locked => "pending",
            HtlcStatus::Claimed { .. } => "claimed",
        }
        .into();
        if let Some(stored) = app.store.action(&transfer.id, action).await? {
            compensation.evidence = evidence::inclusion(app, chain, stored.tx_hash).await?;
        }
    }
    Ok(vec![compensation])
}

/// Logs (`init`) and sends a recovery message; the peer's verified answer
/// and the hash of the message sent (which the answer must name).
async fn send(
    app: &App,
    peer: &Peer,
    message: &RecoveryMessage,
) -> Result<(RecoveryMessage, String), ExchangeError> {
    let hash = message
        .hash()
        .map_err(|e| ExchangeError::Protocol(e.to_string()))?;
    log::append(
        &app.store,
        &app.satp.identity,
        message.session_id(),
        message.type_name(),
        Operation::Init,
        &hash,
        now_ms(),
    )
    .await?;
    let traceparent = crate::telemetry::current_traceparent();
    let sealed = envelope::seal_value_traced(
        &message.to_json(),
        &app.satp.identity.key,
        traceparent.as_deref(),
    )
    .map_err(|e| ExchangeError::Protocol(e.to_string()))?;
    let response =
        crate::telemetry::traced(app.satp.http.post(format!("{}/v1/satp/recovery", peer.url)))
            .json(&sealed)
            .send()
            .await
            .map_err(|e| ExchangeError::Unreachable(e.to_string()))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| ExchangeError::Unreachable(format!("reading the answer: {e}")))?;
    if status != ClientStatus::OK {
        return Err(super::client::refusal(
            &body,
            peer,
            message.session_id(),
            status,
        ));
    }
    let envelope: Envelope =
        serde_json::from_value(body).map_err(|e| ExchangeError::Protocol(e.to_string()))?;
    let signer = envelope::signer(&envelope, &peer.keys).ok_or_else(|| {
        ExchangeError::Protocol("the answer is signed by a key not pinned for the peer".into())
    })?;
    let json = envelope::open_value(&envelope, signer)
        .map_err(|e| ExchangeError::Protocol(e.to_string()))?;
    let answer =
        serde_json::from_value(json).map_err(|e| ExchangeError::Protocol(e.to_string()))?;
    Ok((answer, hash))
}

fn phase(messages: &[StoredMessage]) -> &'static str {
    match messages.len() {
        0..=4 => "1",
        5..=6 => "2",
        _ => "3",
    }
}

/// Runs RECOVER with the peer for `session` (see the module docs). Returns
/// whether both sides now hold the same session.
pub async fn recover(app: &App, peer: &Peer, session: &SessionRow) -> Result<bool, ExchangeError> {
    let store = &app.store;
    let identity = &app.satp.identity;
    let session_id = session.session_id.as_str();
    let mut messages = store.messages(session_id).await?;
    let last_entry = store
        .log(session_id)
        .await?
        .last()
        .and_then(|row| serde_json::from_str::<Value>(&row.entry).ok())
        .and_then(|entry| {
            entry
                .get("atMs")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    let recover = RecoveryMessage::Recover {
        session_id: session_id.to_string(),
        context_id: session.context_id.clone(),
        satp_phase: phase(&messages).into(),
        sequence_number: messages.len() as u32,
        is_backup: false,
        last_entry_timestamp: last_entry,
    };
    let (update, recover_hash) = send(app, peer, &recover).await?;
    let RecoveryMessage::RecoverUpdate {
        hash_recover_message,
        recovered_messages,
        ..
    } = &update
    else {
        return Err(ExchangeError::Protocol(format!(
            "expected recover-update, got {}",
            update.type_name()
        )));
    };
    if *hash_recover_message != recover_hash {
        return Err(ExchangeError::Protocol(
            "recover-update answers another RECOVER".into(),
        ));
    }
    let update_hash = update
        .hash()
        .map_err(|e| ExchangeError::Protocol(e.to_string()))?;
    log::append(
        store,
        identity,
        session_id,
        update.type_name(),
        Operation::Ack,
        &update_hash,
        now_ms(),
    )
    .await?;
    // Every recovered message must verify with its sender's key and extend
    // the session as stored here.
    let mut state = replay(&messages).map_err(ExchangeError::Protocol)?;
    let mut success = true;
    let mut adopted = Vec::new();
    for envelope in recovered_messages {
        // Each envelope is checked with the key its `kid` names: one pinned
        // for the peer, or one of this gateway's own (current or previous:
        // its messages from before a rotation come back signed with the old
        // key).
        let opened = match (
            envelope::signer(envelope, &peer.keys),
            envelope::signer(envelope, &identity.keys),
        ) {
            (Some(key), _) => envelope::open_value(envelope, key).map(|json| {
                let sender = if session.role == Role::Client {
                    Role::Server
                } else {
                    Role::Client
                };
                (json, sender)
            }),
            (None, Some(key)) => {
                envelope::open_value(envelope, key).map(|json| (json, session.role))
            }
            (None, None) => {
                success = false;
                break;
            }
        };
        let Ok((json, sender)) = opened else {
            success = false;
            break;
        };
        let Ok(message) = serde_json::from_value::<Message>(json.clone()) else {
            success = false;
            break;
        };
        let as_sender = if sender == Role::Client {
            Sender::Client
        } else {
            Sender::Server
        };
        if state.accept(&message, &json, as_sender).is_err() {
            success = false;
            break;
        }
        // Only the client adopts what it lacks: answers to its own requests.
        if session.role == Role::Client && sender == Role::Server {
            let hash = message
                .hash()
                .map_err(|e| ExchangeError::Protocol(e.to_string()))?;
            let seq = (messages.len() + adopted.len()) as u64;
            adopted.push(stored(seq, sender, &message, envelope, hash));
        } else {
            break;
        }
    }
    if success && !adopted.is_empty() {
        store
            .append_messages(session_id, &adopted, None, None)
            .await?;
        messages.extend(adopted);
    }
    let ack = RecoveryMessage::RecoverUpdateAck {
        session_id: session_id.to_string(),
        context_id: session.context_id.clone(),
        hash_recover_update_message: update_hash,
        success,
        sequence_number: messages.len() as u32,
    };
    let (done, ack_hash) = send(app, peer, &ack).await?;
    let RecoveryMessage::RecoverSuccess {
        success: agreed,
        hash_recover_update_ack_message,
        ..
    } = &done
    else {
        return Err(ExchangeError::Protocol(format!(
            "expected recover-success, got {}",
            done.type_name()
        )));
    };
    let agreed = *agreed && *hash_recover_update_ack_message == ack_hash && success;
    let done_hash = done
        .hash()
        .map_err(|e| ExchangeError::Protocol(e.to_string()))?;
    let operation = if agreed {
        Operation::Done
    } else {
        Operation::Fail
    };
    log::append(
        store,
        identity,
        session_id,
        done.type_name(),
        operation,
        &done_hash,
        now_ms(),
    )
    .await?;
    Ok(agreed)
}

/// Runs RECOVER once per process for a session that was open before this
/// process started; failures are logged and retried on a later step.
pub async fn recover_once(app: &App, peer: &Peer, session: &SessionRow) {
    if session.status != super::store::SessionStatus::Open
        || app.satp.is_recovered(&session.session_id)
    {
        return;
    }
    match recover(app, peer, session).await {
        Ok(agreed) => {
            crate::metrics::recovery_run("satp", if agreed { "agreed" } else { "disagreed" });
            if !agreed {
                tracing::error!(session = %session.session_id, "RECOVER: the peer holds a different session");
            }
            app.satp.mark_recovered(&session.session_id);
        }
        Err(error) => {
            crate::metrics::recovery_run("satp", "failed");
            tracing::info!(%error, session = %session.session_id, "RECOVER not completed; retrying later");
        }
    }
}

/// Sends ROLLBACK with this gateway's compensating actions; logged, best effort.
pub async fn rollback(app: &App, peer: &Peer, session: &SessionRow, transfer: &Transfer) {
    let result: Result<(), ExchangeError> = async {
        let actions = compensations(app, transfer, session.role).await?;
        let message = RecoveryMessage::Rollback {
            session_id: session.session_id.clone(),
            context_id: session.context_id.clone(),
            actions,
        };
        let (ack, hash) = send(app, peer, &message).await?;
        let identity = &app.satp.identity;
        let RecoveryMessage::RollbackAck {
            hash_rollback_message,
            actions,
            ..
        } = &ack
        else {
            return Err(ExchangeError::Protocol(format!(
                "expected rollback-ack, got {}",
                ack.type_name()
            )));
        };
        if *hash_rollback_message != hash {
            return Err(ExchangeError::Protocol(
                "rollback-ack answers another ROLLBACK".into(),
            ));
        }
        for action in actions {
            if let Some(evidence) = &action.evidence {
                check_refund(evidence, peer, action).map_err(ExchangeError::Protocol)?;
            }
        }
        let ack_hash = ack
            .hash()
            .map_err(|e| ExchangeError::Protocol(e.to_string()))?;
        log::append(
            &app.store,
            identity,
            &session.session_id,
            ack.type_name(),
            Operation::Done,
            &ack_hash,
            now_ms(),
        )
        .await?;
        Ok(())
    }
    .await;
    if let Err(error) = result {
        tracing::info!(%error, session = %session.session_id, "ROLLBACK not delivered");
    }
}
