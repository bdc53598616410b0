//! The receiving end of SATP (G2): `POST /v1/satp/messages`.
//!
//! A message is accepted only when it is signed by a pinned peer's identity
//! key (found by the JWS `kid`), belongs to a session with that peer, and is
//! the next step of the session by [`adapters::satp::session::Session`]:
//! right type, right sender, right ids, `hashPrevMessage` the hash of the
//! previous message. The work it asks for is done (checking the lock's
//! evidence, locking on the target ledger, ...) and the received message
//! and the answer are stored together, then the answer is sent.
//!
//! The exact envelope of the last message, sent again (the client did not
//! hear the answer), gets the stored answer again; any other repeat of an
//! earlier message is a replay and is refused with nothing changed.

use adapters::ledger::{Acted, LedgerAdapter, LockState, LockTerms, OperationKey};
use adapters::planner::claim_margin_ms;
use adapters::satp::context::TransferContext;
use adapters::satp::envelope::{self, Envelope};
use adapters::satp::messages::{Message, NetworkLockType, Sender, hash_json};
use adapters::satp::session::Session;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ledger_core::LockId;
use serde_json::{Value, json};
use std::sync::Arc;
use tracing::Instrument as _;

use super::evidence;
use super::fault;
use super::log::{self, Operation};
use super::problem::SatpProblem;
use super::store::{Role, SatpStore, SessionRow, SessionStatus, StoredMessage};
use super::{Peer, rfc3339_ms};
use crate::app::App;
use crate::sequencer::now_ms;
use crate::store::{LedgerStore, StoreError};
use crate::transfers::any::AnyLedger;
use crate::transfers::local::LocalLedger;
use crate::transfers::store::TransferStore;
use crate::transfers::{Transfer, TransferEvent, TransferState};

/// Receive one SATP message from a peer gateway.
///
/// The body is the message as a flattened JWS (`Envelope`) signed with the
/// peer's pinned identity key (`docs/satp.md`). The answer is the next
/// message of the session, signed with this gateway's identity key; a
/// transfer-complete or session-abort is answered with 204. An error is an
/// RFC 9457 problem with a SATP error URN (`urn:ietf:params:satp:core:error:err_X.Y.Z`),
/// signed in its `jws` member. No bearer token: the peer is known by its key.
#[utoipa::path(
    post, path = "/v1/satp/messages", tag = "satp", operation_id = "receive_satp_message",
    request_body(content = Envelope, content_type = "application/json"),
    responses(
        (status = 200, description = "The session's next message, signed", body = Envelope),
        (status = 204, description = "transfer-complete or session-abort received"),
        (status = 400, description = "Malformed, or not the session's next message (err_0.1.1)", body = super::problem::SatpError, content_type = "application/problem+json"),
        (status = 403, description = "Not this peer's session (err_0.1.2)", body = super::problem::SatpError, content_type = "application/problem+json"),
        (status = 404, description = "Does not match the session (ids, hashes)", body = super::problem::SatpError, content_type = "application/problem+json"),
        (status = 409, description = "Refused: already locked, or a concurrent message", body = super::problem::SatpError, content_type = "application/problem+json"),
        (status = 410, description = "Too late: a deadline of the transfer passed", body = super::problem::SatpError, content_type = "application/problem+json"),
        (status = 415, description = "Unsupported claim format or lock type", body = super::problem::SatpError, content_type = "application/problem+json"),
        (status = 422, description = "Bad signature or unacceptable terms", body = super::problem::SatpError, content_type = "application/problem+json"),
        (status = 503, description = "Cannot act now; send the message again later", body = super::problem::SatpError, content_type = "application/problem+json"),
    ),
    security(()),
)]
pub async fn receive(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match handle(&app, &body).instrument(receive_span(&body)).await {
        Ok(Some(answer)) => (StatusCode::OK, axum::Json(answer)).into_response(),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(problem) => {
            tracing::info!(code = %problem.code, detail = %problem.detail, "SATP message refused");
            problem.response(&app.satp.identity, now_ms())
        }
    }
}

/// The span of one received message (`crate::telemetry`): under the
/// request's span when that is in the trace the message's protected header
/// names (the sender sends the same context in both), else under the
/// sender's span the header names (no HTTP header, or another trace). Read
/// before the signature is checked, like the HTTP header: it places spans
/// and nothing else (the sampler does not follow it), and the message type
/// and session id recorded are what the body claims.
fn receive_span(body: &[u8]) -> tracing::Span {
    let envelope = serde_json::from_slice::<Envelope>(body).ok();
    let message = envelope.as_ref().and_then(envelope::peek);
    let field = |name: &str| {
        message
            .as_ref()
            .and_then(|m| m.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let span = tracing::debug_span!(
        "satp.receive",
        // `urn:...:transfer-proposal-msg` -> `transfer-proposal-msg`.
        satp.message_type = %field("messageType").rsplit(':').next().unwrap_or_default(),
        satp.session_id = %field("sessionId"),
    );
    if let Some(traceparent) = envelope.as_ref().and_then(envelope::traceparent) {
        crate::telemetry::join_trace(&span, &traceparent);
    }
    span
}

/// What a peer pins of this gateway (to be checked out of band).
#[utoipa::path(
    get, path = "/v1/satp/identity", tag = "satp", operation_id = "satp_identity",
    responses((status = 200, description = "`{gatewayId, identityKey (JWK), kid, chainId, blockProducer, account}`", body = Object)),
    security(()),
)]
pub async fn identity(State(app): State<Arc<App>>) -> axum::Json<Value> {
    axum::Json(super::identity_document(
        &app.satp.identity,
        app.chain_id,
        app.block_producer,
        app.connector.key.address(),
    ))
}

pub(crate) fn internal(error: impl std::fmt::Display) -> SatpProblem {
    tracing::warn!(%error, "SATP server: cannot act now");
    unavailable()
}

/// The signed 503 of [`internal`], without its log line.
fn unavailable() -> SatpProblem {
    SatpProblem {
        status: 503,
        code: "err_0.1.1".into(),
        title: "Service unavailable".into(),
        // The cause stays in this gateway's log, not in a document it signs
        // for a peer.
        detail: "the gateway cannot act on this message now; send it again later".into(),
        session_id: String::new(),
        transfer_context_id: String::new(),
        hash_prev_message: String::new(),
    }
}

/// The transfer a session serves, as stored now.
pub(crate) async fn session_transfer(
    app: &App,
    session: &SessionRow,
) -> Result<Transfer, SatpProblem> {
    app.store
        .transfer(&session.transfer_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| internal("the session's transfer is missing"))
}

pub(crate) fn header_kid(envelope: &Envelope) -> Option<String> {
    adapters::satp::jws::header_kid(&envelope.protected)
}

/// Rebuilds a session's state from its stored messages.
pub fn replay(messages: &[StoredMessage]) -> Result<Session, String> {
    let mut session = Session::new();
    for stored in messages {
        let envelope: Envelope =
            serde_json::from_str(&stored.envelope).map_err(|e| e.to_string())?;
        let json = envelope::peek(&envelope).ok_or("a stored message does not decode")?;
        let message: Message = serde_json::from_value(json.clone()).map_err(|e| e.to_string())?;
        let sender = match stored.sender {
            Role::Client => Sender::Client,
            Role::Server => Sender::Server,
        };
        session
            .accept(&message, &json, sender)
            .map_err(|e| e.to_string())?;
    }
    Ok(session)
}

pub(crate) fn stored(
    seq: u64,
    sender: Role,
    message: &Message,
    envelope: &Envelope,
    hash: String,
) -> StoredMessage {
    StoredMessage {
        seq,
        sender,
        message_type: message.type_name().to_string(),
        // An envelope is three strings: it always serialises.
        envelope: serde_json::to_string(envelope).unwrap_or_default(),
        hash,
        at_ms: now_ms(),
    }
}

async fn handle(app: &App, body: &[u8]) -> Result<Option<Value>, SatpProblem> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| SatpProblem::new("err_0.1.1", format!("not a SATP envelope: {e}")))?;
    let peek = envelope::peek(&envelope).unwrap_or_default();
    let text = |name: &str| {
        peek.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let hash = hash_json(&peek).unwrap_or_default();
    let about = |p: SatpProblem| p.about(&text("sessionId"), &text("transferContextId"), &hash);
    // Until the signature verifies, nothing the body says is repeated in
    // the (signed) answer.
    let (peer, signer) = header_kid(&envelope)
        .and_then(|kid| app.satp.peer_by_kid(&kid))
        .ok_or_else(|| SatpProblem::new("err_0.1.3", "the signing key is not a pinned peer's"))?;
    let (message, json) = envelope::open(&envelope, signer).map_err(|e| match e {
        envelope::EnvelopeError::Message(_) => about(SatpProblem::new("err_0.1.1", e.to_string())),
        _ => SatpProblem::new("err_0.1.3", e.to_string()),
    })?;
    let envelope_text = serde_json::to_string(&envelope).unwrap_or_default();
    let session_id = message.session_id().to_string();
    let session = app.store.session(&session_id).await.map_err(internal)?;
    let Some(session) = session else {
        return match message {
            Message::TransferProposal { .. } => {
                propose(app, peer, signer, &message, &json, &envelope_text, &hash).await
            }
            _ => Err(about(SatpProblem::new("err_1.1.2", "no such session"))),
        };
    };
    if session.peer != peer.gateway_id || session.role != Role::Server {
        return Err(about(SatpProblem::new(
            "err_0.1.2",
            "not a session this gateway serves for this peer",
        )));
    }
    if session.status == SessionStatus::Aborted {
        return match message {
            Message::SessionAbort { .. } => Ok(None),
            _ => Err(about(SatpProblem::new(
                "err_0.1.1",
                "the session was aborted",
            ))),
        };
    }
    let messages = app.store.messages(&session_id).await.map_err(internal)?;
    // The same envelope again: the client did not hear the answer.
    if let Some(place) = messages.iter().position(|m| m.envelope == envelope_text) {
        let last_client = messages.iter().rposition(|m| m.sender == Role::Client);
        if Some(place) == last_client {
            return match messages.get(place + 1) {
                Some(answer) => Ok(Some(
                    serde_json::from_str(&answer.envelope).map_err(internal)?,
                )),
                None => Ok(None),
            };
        }
        return Err(about(SatpProblem::new(
            "err_0.1.1",
            "replayed message: it was answered earlier in the session",
        )));
    }
    let mut state = replay(&messages).map_err(internal)?;
    state
        .accept(&message, &json, Sender::Client)
        .map_err(|e| about(SatpProblem::new(e.code, e.reason)))?;
    let context = TransferContext::decode(&session.context_id).map_err(internal)?;
    let identity = &app.satp.identity;
    log::append(
        &app.store,
        identity,
        &session_id,
        message.type_name(),
        Operation::Init,
        &hash,
        now_ms(),
    )
    .await
    .map_err(internal)?;
    // This gateway's engine moves the same transfer: during commit-prepare
    // it takes up the target lock this handler just committed (woken by
    // the lock's block) before the handler records it, and at a deadline it
    // cancels or unwinds. When it moved the transfer between this handler's
    // read and its write, the work is done again from the transfer as it is
    // now, which is what the peer's resend of the message would do a tick
    // later: every step can be done again (ledger actions are keyed by
    // transfer and action, and a state already reached is answered as
    // reached). At most `WORK_ATTEMPTS` attempts in all.
    let mut attempts = 0;
    let worked = loop {
        attempts += 1;
        let transfer = session_transfer(app, &session).await?;
        let work = Work {
            app,
            peer,
            session: &session,
            context: &context,
            transfer: &transfer,
            hash: &hash,
            conflicted: std::sync::atomic::AtomicBool::new(false),
        };
        let worked = work.message(&message, &about).await;
        if worked.is_err() && work.conflicted.load(std::sync::atomic::Ordering::Relaxed) {
            if attempts < WORK_ATTEMPTS {
                tracing::debug!(
                    attempts,
                    "SATP server: the transfer changed meanwhile; working again"
                );
                continue;
            }
            tracing::warn!(
                attempts,
                "SATP server: cannot act now: the transfer kept changing; the peer will send again"
            );
        }
        break worked;
    };
    let (answer, status, source_lock) = match worked {
        Ok(worked) => worked,
        Err(problem) => {
            log::append(
                &app.store,
                identity,
                &session_id,
                message.type_name(),
                Operation::Fail,
                &hash,
                now_ms(),
            )
            .await
            .map_err(internal)?;
            return Err(problem);
        }
    };
    let fault_step = app.satp.fault.as_ref();
    fault::reach(
        fault_step,
        "after-receive",
        message.type_name(),
        &session_id,
    )
    .await;
    let seq = messages.len() as u64;
    let mut rows = vec![stored(seq, Role::Client, &message, &envelope, hash.clone())];
    let mut reply = None;
    if let Some(answer) = &answer {
        let sealed = envelope::seal(answer, &identity.key).map_err(internal)?;
        let answer_hash = answer.hash().map_err(internal)?;
        rows.push(stored(seq + 1, Role::Server, answer, &sealed, answer_hash));
        reply = Some(serde_json::to_value(&sealed).map_err(internal)?);
    }
    if !app
        .store
        .append_messages(&session_id, &rows, Some(status), source_lock.as_deref())
        .await
        .map_err(internal)?
    {
        // A concurrent copy of this very message (a resend that overtook a
        // slow first try) was stored first: answer as it was answered.
        let now_stored = app.store.messages(&session_id).await.map_err(internal)?;
        if let Some(place) = now_stored.iter().position(|m| m.envelope == envelope_text) {
            return match now_stored.get(place + 1) {
                Some(answer) => Ok(Some(
                    serde_json::from_str(&answer.envelope).map_err(internal)?,
                )),
                None => Ok(None),
            };
        }
        return Err(internal("another message of this session was stored first"));
    }
    log::append(
        &app.store,
        identity,
        &session_id,
        message.type_name(),
        Operation::Done,
        &hash,
        now_ms(),
    )
    .await
    .map_err(internal)?;
    fault::reach(fault_step, "after-store", message.type_name(), &session_id).await;
    app.wake.notify_one();
    Ok(reply)
}

/// How many times [`handle`] does a message's work when this gateway's
/// engine moved the transfer meanwhile; then the peer resends.
const WORK_ATTEMPTS: u32 = 3;

/// The work one message asks of the server.
struct Work<'a> {
    app: &'a App,
    peer: &'a Peer,
    session: &'a SessionRow,
    context: &'a TransferContext,
    transfer: &'a Transfer,
    hash: &'a str,
    /// Set by [`Work::advance`] when the transfer changed since it was read.
    conflicted: std::sync::atomic::AtomicBool,
}

impl Work<'_> {
    /// The work `message` asks, and the answer, session status and source
    /// lock to store with it.
    async fn message(
        &self,
        message: &Message,
        about: &impl Fn(SatpProblem) -> SatpProblem,
    ) -> Result<(Option<Message>, SessionStatus, Option<String>), SatpProblem> {
        Ok(match &message {
            Message::TransferCommence { .. } => (
                Some(Message::AckCommence {
                    session_id: self.session.session_id.clone(),
                    transfer_context_id: self.session.context_id.clone(),
                    hash_prev_message: self.hash.to_string(),
                }),
                SessionStatus::Open,
                None,
            ),
            Message::LockAssert {
                lock_assertion_claim_format,
                lock_assertion_claim,
                ..
            } => {
                let lock = self
                    .lock_asserted(lock_assertion_claim_format, lock_assertion_claim)
                    .await?;
                (
                    Some(Message::AssertionReceipt {
                        session_id: self.session.session_id.clone(),
                        transfer_context_id: self.session.context_id.clone(),
                        hash_prev_message: self.hash.to_string(),
                    }),
                    SessionStatus::Open,
                    Some(lock.to_string()),
                )
            }
            Message::CommitPrepare { .. } => {
                let claim = self.commit_prepare().await?;
                (
                    Some(Message::CommitReady {
                        session_id: self.session.session_id.clone(),
                        transfer_context_id: self.session.context_id.clone(),
                        hash_prev_message: self.hash.to_string(),
                        mint_assertion_format: evidence::INCLUSION.into(),
                        mint_assertion_claim: claim,
                    }),
                    SessionStatus::Open,
                    None,
                )
            }
            Message::CommitFinal {
                burn_assertion_claim_format,
                burn_assertion_claim,
                ..
            } => {
                let claim = self
                    .commit_final(burn_assertion_claim_format, burn_assertion_claim)
                    .await?;
                (
                    Some(Message::AckCommitFinal {
                        session_id: self.session.session_id.clone(),
                        transfer_context_id: self.session.context_id.clone(),
                        hash_prev_message: self.hash.to_string(),
                        assignment_assertion_claim_format: evidence::SETTLEMENT.into(),
                        assignment_assertion_claim: claim,
                    }),
                    SessionStatus::Open,
                    None,
                )
            }
            Message::TransferComplete { .. } => (None, SessionStatus::Complete, None),
            Message::SessionAbort { .. } => {
                self.aborted().await?;
                (None, SessionStatus::Aborted, None)
            }
            // The session accepted it, so it is a client message; the proposal
            // opens a session and never reaches here.
            _ => {
                return Err(about(SatpProblem::new(
                    "err_0.1.1",
                    "not a client message here",
                )));
            }
        })
    }

    fn problem(&self, code: &str, detail: impl Into<String>) -> SatpProblem {
        SatpProblem::new(code, detail).about(
            &self.session.session_id,
            &self.session.context_id,
            self.hash,
        )
    }

    async fn advance(&self, next: Transfer, kind: &str, detail: Value) -> Result<(), SatpProblem> {
        let now = now_ms();
        let t = self.transfer;
        let next = Transfer {
            version: t.version + 1,
            updated_at_ms: now,
            ..next
        };
        let event = TransferEvent {
            at_ms: now,
            kind: kind.into(),
            detail,
        };
        if !self
            .app
            .store
            .update_transfer(&next, t.version, &event)
            .await
            .map_err(internal)?
        {
            // Logged by `handle` if the work cannot be done again.
            self.conflicted
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(unavailable());
        }
        crate::transfers::record_transition(t, &next, now);
        Ok(())
    }

    /// lock-assert: the sender's lock, proven on the source ledger.
    async fn lock_asserted(&self, format: &str, claim: &Value) -> Result<LockId, SatpProblem> {
        if format != evidence::INCLUSION {
            return Err(self.problem(
                "err_2.2.3",
                format!("lockAssertionClaimFormat must be {}", evidence::INCLUSION),
            ));
        }
        let c = self.context;
        let terms = LockTerms {
            sender: c.sender,
            recipient: c.source_lock_recipient,
            asset: c.source_asset,
            amount: c.amount,
            hashlock: c.hashlock,
            expires_at_ms: c.source_expires_at_ms,
        };
        let lock = evidence::verify_lock(
            claim,
            c.source_chain_id,
            &self.peer.block_producers,
            &terms,
            false,
            true,
        )
        .map_err(|e| self.problem("err_2.2.7", format!("the lock is not proven: {e}")))?;
        let t = self.transfer;
        match t.state {
            TransferState::AwaitingSourceLock => {
                let next = Transfer {
                    state: TransferState::SourceLocked,
                    source_lock_id: Some(lock),
                    ..t.clone()
                };
                self.advance(
                    next,
                    "source_locked",
                    json!({ "lockId": lock.to_string(), "evidence": "lock-assert" }),
                )
                .await?;
                Ok(lock)
            }
            _ if t.source_lock_id == Some(lock) => Ok(lock),
            TransferState::Cancelled => Err(self.problem(
                "err_2.2.9",
                "the transfer was cancelled: the lock came too late",
            )),
            _ => Err(self.problem("err_2.2.8", "another lock was asserted for this transfer")),
        }
    }

    /// commit-prepare: lock on the target ledger; the evidence of that lock.
    async fn commit_prepare(&self) -> Result<Value, SatpProblem> {
        let app = self.app;
        let t = self.transfer;
        let connector = &app.connector;
        let target = AnyLedger::Local(LocalLedger::new(app, connector, t.target_chain_id));
        let lock_id = match (t.state, t.target_lock_id) {
            (
                TransferState::TargetLocked
                | TransferState::ClaimingSource
                | TransferState::Completed,
                Some(id),
            ) => id,
            (TransferState::SourceLocked, _) => {
                let lock_by =
                    crate::transfers::target_lock_by(&connector.config, t.source_lock_by_ms);
                let op = OperationKey {
                    transfer_id: &t.id,
                    action: "target-lock",
                };
                let committed = target.committed_lock(op).await.map_err(internal)?;
                let id = match committed {
                    Some(id) => id,
                    None if now_ms() > lock_by => {
                        let next = Transfer {
                            state: TransferState::Refunding,
                            ..t.clone()
                        };
                        self.advance(next, "unwinding", json!({ "reason": "commit-prepare came after the target lock deadline" }))
                            .await?;
                        return Err(self.problem(
                            "err_2.2.9",
                            "too late to lock on the target ledger; the transfer unwinds",
                        ));
                    }
                    None => {
                        let terms = LockTerms {
                            sender: connector.key.address(),
                            recipient: t.recipient,
                            asset: t.target_asset,
                            amount: t.amount,
                            hashlock: t.hashlock,
                            expires_at_ms: t.target_expires_at_ms,
                        };
                        match target.lock(op, &terms).await.map_err(internal)? {
                            Acted::Done(id) => id,
                            Acted::Refused(reason) => {
                                let next = Transfer {
                                    state: TransferState::Refunding,
                                    ..t.clone()
                                };
                                self.advance(next, "unwinding", json!({ "reason": format!("the target lock was refused: {reason}") }))
                                    .await?;
                                return Err(self.problem(
                                    "err_2.2.7",
                                    format!("cannot lock on the target ledger: {reason}"),
                                ));
                            }
                        }
                    }
                };
                let next = Transfer {
                    state: TransferState::TargetLocked,
                    target_lock_id: Some(id),
                    ..t.clone()
                };
                self.advance(next, "target_locked", json!({ "lockId": id.to_string() }))
                    .await?;
                id
            }
            (state, _) => {
                return Err(self.problem(
                    "err_2.2.9",
                    format!("the transfer is {}; nothing can be locked", state.name()),
                ));
            }
        };
        evidence::inclusion(
            app,
            t.target_chain_id,
            ledger_core::TxHash::from_bytes(*lock_id.as_bytes()),
        )
        .await
        .map_err(internal)?
        .ok_or_else(|| internal("the target lock is not committed"))
    }

    /// commit-final: the source lock is settled; the target lock is assigned
    /// to the recipient (claimed by this gateway for it, if need be).
    async fn commit_final(&self, format: &str, claim: &Value) -> Result<Value, SatpProblem> {
        if format != evidence::SETTLEMENT {
            return Err(self.problem(
                "err_3.5.4",
                format!("burnAssertionClaimFormat must be {}", evidence::SETTLEMENT),
            ));
        }
        let t = self.transfer;
        let (Some(source_lock), Some(target_lock)) = (t.source_lock_id, t.target_lock_id) else {
            return Err(self.problem("err_0.1.1", "no locks to settle"));
        };
        let preimage =
            evidence::verify_settlement(claim, t.source_chain_id, source_lock, t.hashlock)
                .map_err(|e| {
                    self.problem("err_3.5.4", format!("the settlement is not proven: {e}"))
                })?;
        let app = self.app;
        let target = AnyLedger::Local(LocalLedger::new(app, &app.connector, t.target_chain_id));
        match target
            .lock_status(target_lock)
            .await
            .map_err(internal)?
            .map(|l| l.state)
        {
            Some(LockState::Claimed { .. }) => {}
            Some(LockState::Locked) => {
                let op = OperationKey {
                    transfer_id: &t.id,
                    action: "target-assign",
                };
                if let Acted::Refused(reason) = target
                    .claim(op, target_lock, preimage)
                    .await
                    .map_err(internal)?
                {
                    return Err(self.problem(
                        "err_2.2.9",
                        format!("cannot assign the target lock: {reason}"),
                    ));
                }
            }
            _ => return Err(self.problem("err_2.2.9", "the target lock was refunded")),
        }
        Ok(evidence::settlement(
            t.target_chain_id,
            target_lock,
            preimage,
        ))
    }

    /// session-abort: unwind what is not locked on the target yet.
    async fn aborted(&self) -> Result<(), SatpProblem> {
        let t = self.transfer;
        let (state, kind) = match t.state {
            TransferState::AwaitingSourceLock => (TransferState::Cancelled, "cancelled"),
            TransferState::SourceLocked => (TransferState::Refunding, "unwinding"),
            // Locked on the target: the engine claims or refunds at expiry.
            _ => return Ok(()),
        };
        let next = Transfer { state, ..t.clone() };
        self.advance(
            next,
            kind,
            json!({ "reason": "the originating gateway aborted the session" }),
        )
        .await
    }
}

/// transfer-proposal: checks the terms and records the transfer.
async fn propose(
    app: &App,
    peer: &Peer,
    signer: &p256::ecdsa::VerifyingKey,
    message: &Message,
    json: &Value,
    envelope_text: &str,
    hash: &str,
) -> Result<Option<Value>, SatpProblem> {
    let Message::TransferProposal {
        session_id,
        transfer_context_id,
        transfer_init_claim: claim,
        gateway_and_network_capabilities: capabilities,
        ..
    } = message
    else {
        return Err(SatpProblem::new(
            "err_0.1.1",
            "expected a transfer proposal",
        ));
    };
    let problem = |code: &str, detail: String| {
        SatpProblem::new(code, detail).about(session_id, transfer_context_id, hash)
    };
    let mut session = Session::new();
    session
        .accept(message, json, Sender::Client)
        .map_err(|e| problem(e.code, e.reason))?;
    if session_id.is_empty() || session_id.len() > 64 {
        return Err(problem(
            "err_1.1.2",
            "sessionId must be 1 to 64 characters".into(),
        ));
    }
    let context = TransferContext::decode(transfer_context_id)
        .map_err(|e| problem("err_1.1.1", e.to_string()))?;
    let identity = &app.satp.identity;
    let connector = &app.connector;
    // Where this gateway locks, to whom, until when: on the target ledger
    // to the recipient; or, on a route (topology c), on its own primary
    // ledger to the account of the peer that hosts the target ledger.
    let next = match context.hop_expires_at_ms {
        None => None,
        Some(_) => Some(
            app.satp
                .peer_for_chain(context.target_chain_id)
                .ok_or_else(|| {
                    problem(
                        "err_1.1.1",
                        format!(
                            "this gateway has no peer hosting ledger {}",
                            context.target_chain_id
                        ),
                    )
                })?,
        ),
    };
    let (lock_chain, lock_recipient, lock_expiry) = match (next, context.hop_expires_at_ms) {
        (Some(next), Some(hop)) => (app.chain_id, next.account, hop),
        _ => (
            context.target_chain_id,
            context.recipient,
            context.target_expires_at_ms,
        ),
    };
    let hosted = app
        .ledger(lock_chain)
        .is_some_and(|l| l.producer.sequencer().is_some());
    if !hosted {
        return Err(problem(
            "err_1.1.1",
            format!("this gateway does not produce ledger {lock_chain}"),
        ));
    }
    if context.source_chain_id != peer.chain_id {
        return Err(problem(
            "err_1.1.1",
            "the source ledger is not the peer's".into(),
        ));
    }
    if context.source_lock_recipient != connector.key.address() {
        return Err(problem(
            "err_1.1.1",
            "sourceLockRecipient is not this gateway's account".into(),
        ));
    }
    if claim.network_lock_type != NetworkLockType::HashTimeLock
        || capabilities.network_lock_type != NetworkLockType::HashTimeLock
    {
        return Err(problem(
            "err_1.1.32",
            "only HASH_TIME_LOCK transfers are supported".into(),
        ));
    }
    if capabilities.gateway_default_signature_algorithm != "ES256" {
        return Err(problem("err_1.1.31", "only ES256 is supported".into()));
    }
    let key_is = |text: &str, key: &p256::ecdsa::VerifyingKey| {
        adapters::satp::jws::key_from_jwk(text).is_ok_and(|k| k == *key)
    };
    // The sender's key in the claim is the one that signed the proposal (a
    // pinned key of the peer's); the receiver's is this gateway's current
    // key, or a previous one while a peer has not yet pinned the new one.
    if claim.sender_gateway_id != peer.gateway_id
        || !key_is(&claim.sender_gateway_signature_public_key, signer)
    {
        return Err(problem(
            "err_1.1.17",
            "the sender gateway is not the pinned peer".into(),
        ));
    }
    if claim.recipient_gateway_id != identity.gateway_id
        || !adapters::satp::jws::key_from_jwk(&claim.receiver_gateway_signature_public_key)
            .is_ok_and(|k| identity.keys.contains(&k))
    {
        return Err(problem(
            "err_1.1.18",
            "the receiver gateway is not this gateway".into(),
        ));
    }
    if claim.sender_gateway_network_id != context.source_chain_id.get().to_string()
        || claim.recipient_gateway_network_id != context.target_chain_id.get().to_string()
        || claim.verified_originator_entity_id != context.sender.to_string()
        || claim.verified_beneficiary_entity_id != context.recipient.to_string()
        || claim.digital_asset_id != asset_id(context.source_chain_id, &context.source_asset)
        || claim.asset_profile_id != asset_id(context.target_chain_id, &context.target_asset)
    {
        return Err(problem(
            "err_1.1.11",
            "the transfer-init claim does not match the transfer context".into(),
        ));
    }
    if !crate::transfers::same_value(
        &connector.config,
        context.source_asset,
        context.target_asset,
    ) {
        return Err(problem(
            "err_1.1.12",
            "this gateway does not treat sourceAsset and targetAsset as the same value".into(),
        ));
    }
    if context.amount.is_zero() {
        return Err(problem(
            "err_1.1.1",
            "amount must be greater than zero".into(),
        ));
    }
    if app
        .store
        .asset(lock_chain, context.target_asset)
        .await
        .map_err(internal)?
        .is_none()
    {
        return Err(problem(
            "err_1.1.12",
            format!("no asset {} on ledger {lock_chain}", context.target_asset),
        ));
    }
    // The margins this gateway needs: time to claim the source after a
    // last-moment claim on the target, and no lock longer than allowed.
    let config = &connector.config;
    let now = now_ms();
    let params = crate::transfers::plan_params(config, now);
    let target_finality = LocalLedger::new(app, connector, lock_chain)
        .describe()
        .finality;
    let margin = claim_margin_ms(&peer.finality, &target_finality, &params)
        .map_err(|e| problem("err_1.1.33", e.to_string()))?;
    // On a route, this gateway's own lock must also outlive the next one by
    // the margin it needs to claim its own after a claim on the next.
    let next_margin = match next {
        Some(next) => claim_margin_ms(&target_finality, &next.finality, &params)
            .map_err(|e| problem("err_1.1.33", e.to_string()))?,
        None => 0,
    };
    if context.source_lock_by_ms <= now
        || lock_expiry <= context.source_lock_by_ms
        || context.source_expires_at_ms < lock_expiry.saturating_add(margin)
        || (next.is_some()
            && lock_expiry < context.target_expires_at_ms.saturating_add(next_margin))
    {
        return Err(problem(
            "err_1.1.33",
            format!(
                "the timelocks leave this gateway less than {margin} ms to claim the source after a claim on the target"
            ),
        ));
    }
    if lock_expiry.saturating_sub(now) > config.timelock_ms_max {
        return Err(problem(
            "err_1.1.33",
            format!(
                "the target lock would last longer than {} ms",
                config.timelock_ms_max
            ),
        ));
    }
    let receipt = Message::ProposalReceipt {
        version: adapters::satp::messages::VERSION.into(),
        session_id: session_id.clone(),
        transfer_context_id: transfer_context_id.clone(),
        hash_transfer_init_claim: hash_json(&serde_json::to_value(claim).map_err(internal)?)
            .map_err(internal)?,
        timestamp: rfc3339_ms(now),
    };
    let sealed = envelope::seal(&receipt, &identity.key).map_err(internal)?;
    let transfer = Transfer {
        id: uuid::Uuid::new_v4().to_string(),
        kind: crate::transfers::TransferKind::Connector,
        tenant: format!("peer:{}", peer.gateway_id),
        state: TransferState::AwaitingSourceLock,
        source_chain_id: context.source_chain_id,
        target_chain_id: lock_chain,
        source_asset: context.source_asset,
        target_asset: context.target_asset,
        amount: context.amount,
        target_amount: context.amount,
        sender: context.sender,
        recipient: lock_recipient,
        connector: connector.key.address(),
        hashlock: context.hashlock,
        source_lock_by_ms: context.source_lock_by_ms,
        source_expires_at_ms: context.source_expires_at_ms,
        target_expires_at_ms: lock_expiry,
        source_lock_id: None,
        target_lock_id: None,
        preimage: None,
        created_at_ms: now,
        updated_at_ms: now,
        version: 0,
        reference: None,
        trace_parent: crate::telemetry::current_traceparent(),
    };
    if let Some(next) = next {
        forward(app, peer, next, &context, &transfer)
            .await
            .map_err(|detail| problem("err_2.2.7", detail))?;
    }
    let row = SessionRow {
        session_id: session_id.clone(),
        transfer_id: transfer.id.clone(),
        role: Role::Server,
        peer: peer.gateway_id.clone(),
        context_id: transfer_context_id.clone(),
        status: SessionStatus::Open,
        source_lock_id: None,
        created_at_ms: now,
    };
    let received: Envelope = serde_json::from_str(envelope_text).map_err(internal)?;
    let rows = [
        stored(0, Role::Client, message, &received, hash.to_string()),
        stored(
            1,
            Role::Server,
            &receipt,
            &sealed,
            receipt.hash().map_err(internal)?,
        ),
    ];
    fault::reach(
        app.satp.fault.as_ref(),
        "after-receive",
        message.type_name(),
        session_id,
    )
    .await;
    if !app
        .store
        .create_session(&row, &rows)
        .await
        .map_err(internal)?
    {
        return Err(problem(
            "err_1.1.2",
            "the session exists already; send the proposal again".into(),
        ));
    }
    // Created here: this process holds it in full, as the client side's
    // `open` records for its own. Without it the engine's first step ran a
    // RECOVER exchange for every session this side accepted, and logged an
    // error whenever the client had moved on meanwhile.
    app.satp.mark_recovered(session_id);
    log::append(
        &app.store,
        identity,
        session_id,
        message.type_name(),
        Operation::Done,
        hash,
        now,
    )
    .await
    .map_err(internal)?;
    let event = TransferEvent {
        at_ms: now,
        kind: "created".into(),
        detail: json!({
            "peer": peer.gateway_id,
            "sessionId": session_id,
            "originTransferId": context.transfer_id,
            "sourceLockByMs": transfer.source_lock_by_ms.to_string(),
            "sourceExpiresAtMs": transfer.source_expires_at_ms.to_string(),
            "targetExpiresAtMs": transfer.target_expires_at_ms.to_string(),
            "marginMs": margin.to_string(),
        }),
    };
    let created = app
        .store
        .create_transfer(&transfer, &event, u128::from(config.tenant_locked_max))
        .await
        .map_err(internal)?;
    let refused = match created {
        crate::transfers::store::Created::Created => None,
        crate::transfers::store::Created::LimitExceeded => Some((
            "err_2.2.8",
            "this peer's unfinished transfers would lock more than allowed",
        )),
        crate::transfers::store::Created::HashlockInUse => {
            Some(("err_2.2.8", "this hashlock already serves a transfer"))
        }
    };
    if let Some((code, detail)) = refused {
        app.store
            .append_messages(session_id, &[], Some(SessionStatus::Aborted), None)
            .await
            .map_err(internal)?;
        return Err(problem(code, detail.into()));
    }
    fault::reach(
        app.satp.fault.as_ref(),
        "after-store",
        message.type_name(),
        session_id,
    )
    .await;
    Ok(Some(serde_json::to_value(&sealed).map_err(internal)?))
}

/// On a route (topology c): this gateway's own transfer onward to `next`,
/// whose source lock is the one this gateway makes on commit-prepare of the
/// incoming session (`incoming`, to `next`'s account on this gateway's
/// ledger). Stage 1 with `next` runs before the incoming proposal is
/// answered, so the route is accepted end to end or not at all.
async fn forward(
    app: &App,
    from: &Peer,
    next: &Peer,
    context: &TransferContext,
    incoming: &Transfer,
) -> Result<(), String> {
    let connector = &app.connector;
    let config = &connector.config;
    let now = now_ms();
    let onward = Transfer {
        id: uuid::Uuid::new_v4().to_string(),
        kind: crate::transfers::TransferKind::Connector,
        tenant: format!("route:{}", from.gateway_id),
        state: TransferState::AwaitingSourceLock,
        source_chain_id: incoming.target_chain_id,
        target_chain_id: context.target_chain_id,
        source_asset: context.target_asset,
        target_asset: context.target_asset,
        amount: context.amount,
        target_amount: context.amount,
        sender: connector.key.address(),
        recipient: context.recipient,
        connector: next.account,
        hashlock: context.hashlock,
        // This gateway's own lock is the incoming session's target lock: it
        // may start until the connector's deadline and is final within
        // `commit_ms_max` after it.
        source_lock_by_ms: crate::transfers::target_lock_by(config, context.source_lock_by_ms)
            + config.commit_ms_max,
        source_expires_at_ms: incoming.target_expires_at_ms,
        target_expires_at_ms: context.target_expires_at_ms,
        source_lock_id: None,
        target_lock_id: None,
        preimage: None,
        created_at_ms: now,
        updated_at_ms: now,
        version: 0,
        trace_parent: incoming.trace_parent.clone(),
        reference: None,
    };
    let session = super::client::open(app, next, &onward, None)
        .await
        .map_err(|e| {
            tracing::info!(error = %e, next = %next.gateway_id, "the onward session was not opened");
            "the route's next gateway did not accept the transfer".to_string()
        })?;
    let event = TransferEvent {
        at_ms: now,
        kind: "created".into(),
        detail: json!({
            "route": { "from": from.gateway_id, "to": next.gateway_id, "originTransferId": context.transfer_id },
            "sourceLockByMs": onward.source_lock_by_ms.to_string(),
            "sourceExpiresAtMs": onward.source_expires_at_ms.to_string(),
            "targetExpiresAtMs": onward.target_expires_at_ms.to_string(),
        }),
    };
    let created = app
        .store
        .create_transfer(&onward, &event, u128::from(config.tenant_locked_max))
        .await;
    if !matches!(created, Ok(crate::transfers::store::Created::Created)) {
        super::client::abort(app, next, &session).await;
        tracing::warn!(?created, "the onward transfer was not recorded");
        return Err("the onward transfer could not be recorded".into());
    }
    Ok(())
}

/// The asset ids of the transfer-init claim: `<chain id>/<asset code>`.
pub fn asset_id(chain: ledger_core::ChainId, asset: &ledger_core::AssetCode) -> String {
    format!("{}/{}", chain.get(), asset)
}

impl From<StoreError> for SatpProblem {
    fn from(error: StoreError) -> Self {
        internal(error)
    }
}

#[cfg(test)]
mod span_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::telemetry::{current_traceparent, with_test_tracing};

    fn body(traceparent: Option<&str>) -> Vec<u8> {
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let message = Message::SessionAbort {
            session_id: "s-1".into(),
        };
        let sealed = envelope::seal_traced(&message, &key, traceparent).unwrap();
        serde_json::to_vec(&sealed).unwrap()
    }

    #[test]
    fn a_message_without_the_http_header_joins_the_trace_its_envelope_names() {
        with_test_tracing(|| {
            let sender = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
            // Outside any request span (no HTTP traceparent came).
            let span = receive_span(&body(Some(sender)));
            let inside = span.in_scope(current_traceparent).unwrap();
            assert!(
                inside.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
                "{inside}"
            );
            // Inside a request span of another trace: the envelope wins.
            let request = tracing::info_span!("request");
            request.in_scope(|| {
                let span = receive_span(&body(Some(sender)));
                let inside = span.in_scope(current_traceparent).unwrap();
                assert!(
                    inside.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
                    "{inside}"
                );
            });
            // No context in the envelope: the request's trace, or a new one.
            let span = receive_span(&body(None));
            let inside = span.in_scope(current_traceparent).unwrap();
            assert!(
                !inside.contains("0af7651916cd43dd8448eb211c80319c"),
                "{inside}"
            );
            // Not an envelope at all: still a span, no panic.
            let span = receive_span(b"not json");
            assert!(span.in_scope(current_traceparent).is_some());
        });
    }
}
