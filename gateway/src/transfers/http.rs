//! The transfers API: create a transfer (`POST /v1/transfers`, with
//! `Idempotency-Key`), get one with its event history, list a tenant's.
//! A tenant sees only its own transfers (404 for the others).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_core::{Address, Amount, AssetCode, ChainId, Hashlock};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::store::TransferStore;
use super::{CreateError, Transfer, TransferEvent, TransferRequest};
use crate::api::{JsonBody, idempotency, once, query};
use crate::app::App;
use crate::auth::{Caller, Scope};
use crate::problem::Problem;
use crate::views::rfc3339;

/// A transfer to create.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateTransfer {
    /// The source ledger's chain id.
    #[schema(pattern = r"^[1-9][0-9]{0,18}$")]
    pub source_chain_id: String,
    /// The target ledger's chain id.
    #[schema(pattern = r"^[1-9][0-9]{0,18}$")]
    pub target_chain_id: String,
    /// The asset locked on the source.
    #[schema(pattern = r"^[A-Z][A-Z0-9-]{0,11}$")]
    pub source_asset: String,
    /// The asset paid on the target.
    #[schema(pattern = r"^[A-Z][A-Z0-9-]{0,11}$")]
    pub target_asset: String,
    /// Minor units locked on the source leg (the same on both legs of a
    /// connector transfer).
    #[schema(pattern = r"^[1-9][0-9]{0,38}$")]
    pub amount: String,
    /// `connector` (default): the sender's value reaches the recipient
    /// through a connector's liquidity. `exchange` (payment- or
    /// delivery-versus-payment between two ledgers of this gateway): the
    /// sender locks `amount` of `sourceAsset` to the recipient, the
    /// recipient locks `targetAmount` of `targetAsset` to the sender, under
    /// the sender's hashlock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^(connector|exchange)$")]
    pub kind: Option<String>,
    /// Minor units of the target leg: required for an exchange; for a
    /// connector transfer, absent or equal to `amount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[1-9][0-9]{0,38}$")]
    pub target_amount: Option<String>,
    /// Who locks on the source.
    #[schema(pattern = r"^0x[0-9a-fA-F]{40}$")]
    pub sender: String,
    /// Who is paid on the target (in an exchange: who is paid on the
    /// source and locks on the target).
    #[schema(pattern = r"^0x[0-9a-fA-F]{40}$")]
    pub recipient: String,
    /// SHA-256 of the 32-byte preimage (held by the recipient of a
    /// connector transfer; by the sender of an exchange).
    #[schema(pattern = r"^0x[0-9a-fA-F]{64}$")]
    pub hashlock: String,
    /// The client's reference (1 to 200 printable ASCII characters; the
    /// `settlement:` prefix is the gateway's own, for statement payments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[ -~]{1,200}$")]
    pub reference: Option<String>,
}

/// One server-sent event of `GET /v1/transfers/stream` (the stream is a
/// sequence of them; keep-alive comments are not events).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransferStreamEvent {
    /// Always `transfer`.
    #[schema(pattern = "^transfer$")]
    pub event: String,
    /// The entry's time in ms since the Unix epoch; pass the last one as
    /// `since` to resume.
    #[schema(pattern = r"^[0-9]{1,19}$")]
    pub id: String,
    /// The entry as JSON: `{"transferId", "seq", "state", "kind", "at",
    /// "detail"}`.
    pub data: String,
}

/// One event of a transfer's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferEventView {
    /// When, RFC 3339 UTC.
    #[schema(format = DateTime)]
    pub at: String,
    /// What happened: `created`, `source_locked`, `target_locked`,
    /// `target_claimed`, `source_claimed` (a transfer through a SATP peer),
    /// `completed`, `unwinding`, `refunded`, `cancelled`, `failed`.
    pub kind: String,
    /// Details.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A transfer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferView {
    /// Its id.
    pub id: String,
    /// `awaiting_source_lock`, `source_locked`, `target_locked`,
    /// `claiming_source`, `completed`, `refunding`, `refunded`, `cancelled`
    /// or `failed` (a step the plan rules out was refused; an operator
    /// must look).
    pub state: String,
    /// The source ledger.
    pub source_chain_id: String,
    /// The target ledger.
    pub target_chain_id: String,
    /// The asset locked on the source.
    pub source_asset: String,
    /// The asset paid on the target.
    pub target_asset: String,
    /// Minor units.
    pub amount: String,
    /// Who locks on the source.
    pub sender: String,
    /// Who is paid on the target.
    pub recipient: String,
    /// The hashlock.
    pub hashlock: String,
    /// `connector` or `exchange`.
    pub kind: String,
    /// Minor units of the target leg.
    pub target_amount: String,
    /// What the sender must do: an `HtlcLock` on the source ledger with
    /// `recipient` = this address (the connector's, the peer gateway's, or
    /// in an exchange the recipient's), `amount` and the hashlock, and
    /// `expiresAtMs` no earlier than `sourceExpiresAtMs`, committed by
    /// `sourceLockByMs`. In an exchange the recipient then locks
    /// `targetAmount` of the target asset to the sender with `expiresAtMs` =
    /// `targetExpiresAtMs`, committed within `commit_ms_max` + the engine's
    /// reaction time after `sourceLockByMs`.
    pub connector: String,
    /// Deadline for the sender's lock (ms since the Unix epoch).
    pub source_lock_by_ms: String,
    /// Earliest acceptable expiry of the sender's lock (ms).
    pub source_expires_at_ms: String,
    /// Expiry of the connector's lock on the target (ms): the recipient
    /// must claim before it.
    pub target_expires_at_ms: String,
    /// The sender's lock, once found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_lock_id: Option<String>,
    /// The connector's lock, once made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_lock_id: Option<String>,
    /// Created, RFC 3339 UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The client's reference; for a settlement statement's payment
    /// `settlement:<closeId>:<currency>:<payer>:<payee>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The history, oldest first.
    pub events: Vec<TransferEventView>,
}

/// A page of transfers, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferPage {
    /// The transfers (without their events).
    pub items: Vec<TransferView>,
    /// Pass as `cursor` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

pub(crate) fn view(t: &Transfer, events: &[TransferEvent]) -> TransferView {
    TransferView {
        id: t.id.clone(),
        state: t.state.name().to_string(),
        source_chain_id: t.source_chain_id.to_string(),
        target_chain_id: t.target_chain_id.to_string(),
        source_asset: t.source_asset.to_string(),
        target_asset: t.target_asset.to_string(),
        amount: t.amount.to_string(),
        kind: t.kind.name().to_string(),
        target_amount: t.target_amount.to_string(),
        sender: t.sender.to_string(),
        recipient: t.recipient.to_string(),
        hashlock: t.hashlock.to_string(),
        connector: t.connector.to_string(),
        source_lock_by_ms: t.source_lock_by_ms.to_string(),
        source_expires_at_ms: t.source_expires_at_ms.to_string(),
        target_expires_at_ms: t.target_expires_at_ms.to_string(),
        source_lock_id: t.source_lock_id.map(|l| l.to_string()),
        target_lock_id: t.target_lock_id.map(|l| l.to_string()),
        created_at: rfc3339(t.created_at_ms),
        reference: t.reference.clone(),
        events: events
            .iter()
            .map(|e| TransferEventView {
                at: rfc3339(e.at_ms),
                kind: e.kind.clone(),
                detail: e.detail.clone(),
            })
            .collect(),
    }
}

fn field<T: std::str::FromStr>(pointer: &str, text: &str) -> Result<T, Problem>
where
    T::Err: std::fmt::Display,
{
    text.parse::<T>()
        .map_err(|e| Problem::invalid_field(pointer, e.to_string()))
}

fn chain(pointer: &str, text: &str) -> Result<ChainId, Problem> {
    let n: u64 = field(pointer, text)?;
    ChainId::new(n).map_err(|e| Problem::invalid_field(pointer, e.to_string()))
}

fn request(body: &CreateTransfer) -> Result<TransferRequest, Problem> {
    let kind = match body.kind.as_deref() {
        None | Some("connector") => super::TransferKind::Connector,
        Some("exchange") => super::TransferKind::Exchange,
        Some(_) => {
            return Err(Problem::invalid_field(
                "/kind",
                "must be connector or exchange",
            ));
        }
    };
    let amount = field::<Amount>("/amount", &body.amount)?;
    let target_amount = match (&body.target_amount, kind) {
        (Some(text), _) => field::<Amount>("/targetAmount", text)?,
        (None, super::TransferKind::Connector) => amount,
        (None, super::TransferKind::Exchange) => {
            return Err(Problem::invalid_field(
                "/targetAmount",
                "an exchange needs the target leg's amount",
            ));
        }
    };
    Ok(TransferRequest {
        kind,
        target_amount,
        source_chain_id: chain("/sourceChainId", &body.source_chain_id)?,
        target_chain_id: chain("/targetChainId", &body.target_chain_id)?,
        source_asset: field::<AssetCode>("/sourceAsset", &body.source_asset)?,
        target_asset: field::<AssetCode>("/targetAsset", &body.target_asset)?,
        amount,
        sender: field::<Address>("/sender", &body.sender)?,
        recipient: field::<Address>("/recipient", &body.recipient)?,
        hashlock: field::<Hashlock>("/hashlock", &body.hashlock)?,
        reference: match &body.reference {
            None => None,
            Some(text) if text.starts_with("settlement:") => {
                return Err(Problem::invalid_field(
                    "/reference",
                    "references starting with settlement: are the gateway's (POST /v1/settlement/payments)",
                ));
            }
            Some(text)
                if (1..=200).contains(&text.len())
                    && text.bytes().all(|b| (b' '..=b'~').contains(&b)) =>
            {
                Some(text.clone())
            }
            Some(_) => {
                return Err(Problem::invalid_field(
                    "/reference",
                    "must be 1 to 200 printable ASCII characters",
                ));
            }
        },
    })
}

/// The problem a refused transfer request answers (`POST /v1/transfers` and
/// the settlement payments that create one): refusals of the request 422,
/// a busy hashlock 409, an unreachable peer 503 (to retry), the store's
/// errors as everywhere.
pub(crate) fn create_problem(error: CreateError) -> Problem {
    match error {
        CreateError::UnknownLedger(_)
        | CreateError::SameLedger
        | CreateError::ZeroAmount
        | CreateError::ExchangeAcrossGateways
        | CreateError::AmountsDiffer
        | CreateError::AssetsDiffer
        | CreateError::EvmToPeer
        | CreateError::AssetNotOnLedger { .. }
        | CreateError::ScalesDiffer { .. }
        | CreateError::SameParty => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "route-refused",
            "Route refused",
            error.to_string(),
        ),
        CreateError::HashlockInUse => Problem::new(
            StatusCode::CONFLICT,
            "hashlock-in-use",
            "Hashlock in use",
            error.to_string(),
        ),
        CreateError::LimitExceeded { .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit-exceeded",
            "Limit exceeded",
            error.to_string(),
        ),
        CreateError::Plan(plan) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "route-too-slow",
            "No safe timelocks",
            plan.to_string(),
        ),
        CreateError::PeerRefused(_) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "peer-refused",
            "Peer gateway refused",
            error.to_string(),
        ),
        CreateError::PeerUnavailable(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "peer-unavailable",
            "Peer gateway unavailable",
            error.to_string(),
        ),
        CreateError::Store(store) => Problem::from(store),
    }
}

async fn create_one(
    app: &App,
    caller: &Caller,
    body: &CreateTransfer,
) -> (StatusCode, serde_json::Value) {
    let result: Result<TransferView, Problem> = async {
        let request = request(body)?;
        let transfer = super::create(app, &app.connector, &caller.tenant, &request)
            .await
            .map_err(create_problem)?;
        let events = app.store.transfer_events(&transfer.id).await?;
        Ok(view(&transfer, &events))
    }
    .await;
    match result {
        Ok(view) => (
            StatusCode::CREATED,
            serde_json::to_value(view).unwrap_or_default(),
        ),
        Err(problem) => (
            problem.status(),
            serde_json::to_value(&problem).unwrap_or_default(),
        ),
    }
}

/// Create a cross-ledger transfer between two ledgers of this gateway.
///
/// Plans the timelocks and answers with what the sender must lock on the
/// source ledger; the gateway, as connector, then locks on the target,
/// claims the source once the recipient claims the target, or refunds every
/// leg if the recipient does not claim in time.
#[utoipa::path(
    post, path = "/v1/transfers", tag = "transfers",
    request_body = CreateTransfer,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the write safe to retry: 1 to 255 visible ASCII characters", pattern = r"^[!-~]{1,255}$")),
    responses(
        (status = 201, description = "Created and planned", body = TransferView),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Route refused or no safe timelocks", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["transfers:write"])),
)]
pub async fn create_transfer(
    State(app): State<Arc<App>>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body, raw): JsonBody<CreateTransfer>,
) -> Response {
    if let Err(problem) = caller.require(Scope::TransfersWrite) {
        return problem.into_response();
    }
    let key = match idempotency(&headers, "POST", "/v1/transfers", &raw) {
        Ok(key) => key,
        Err(problem) => return problem.into_response(),
    };
    once(&app, &caller, key, create_one(&app, &caller, &body)).await
}

/// Get a transfer with its event history.
#[utoipa::path(
    get, path = "/v1/transfers/{id}", tag = "transfers",
    params(("id" = String, Path, description = "Transfer id", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses(
        (status = 200, description = "The transfer", body = TransferView),
        (status = 404, description = "Unknown, or another tenant's", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["transfers:read"])),
)]
pub async fn get_transfer(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<TransferView>, Problem> {
    caller.require(Scope::TransfersRead)?;
    let not_found = || Problem::not_found(format!("no transfer {id}"));
    let transfer = app.store.transfer(&id).await?.ok_or_else(not_found)?;
    if transfer.tenant != caller.tenant {
        return Err(not_found());
    }
    let events = app.store.transfer_events(&id).await?;
    Ok(axum::Json(view(&transfer, &events)))
}

/// Cancel a transfer that still awaits the sender's lock.
///
/// Once the sender's lock is in place a transfer runs to completion or
/// refund; cancelling it then answers 409. Cancelling twice is harmless.
#[utoipa::path(
    post, path = "/v1/transfers/{id}/cancel", tag = "transfers",
    params(("id" = String, Path, description = "Transfer id", pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses(
        (status = 200, description = "Cancelled", body = TransferView),
        (status = 404, description = "Unknown, or another tenant's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already locked or over", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["transfers:write"])),
)]
pub async fn cancel_transfer(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<TransferView>, Problem> {
    caller.require(Scope::TransfersWrite)?;
    let transfer = super::cancel(&app, &caller.tenant, &id)
        .await
        .map_err(|error| match error {
            super::CancelError::NotFound => Problem::not_found(format!("no transfer {id}")),
            super::CancelError::TooLate(_) => Problem::new(
                StatusCode::CONFLICT,
                "transfer-locked",
                "Transfer cannot be cancelled",
                error.to_string(),
            ),
            super::CancelError::Unavailable(_) => {
                Problem::unavailable("ledger-unavailable", error.to_string())
            }
            super::CancelError::Store(store) => Problem::from(store),
        })?;
    let events = app.store.transfer_events(&id).await?;
    Ok(axum::Json(view(&transfer, &events)))
}

/// Paging of transfers.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TransferPageParams {
    /// `nextCursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,19}~[0-9a-f-]{36}$")]
    cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// Only transfers in this state.
    #[param(
        pattern = r"^(awaiting_source_lock|source_locked|target_locked|claiming_source|completed|refunding|refunded|cancelled|failed)$"
    )]
    state: Option<String>,
}

/// List the caller's transfers, newest first.
#[utoipa::path(
    get, path = "/v1/transfers", tag = "transfers",
    params(TransferPageParams),
    responses((status = 200, description = "A page of transfers", body = TransferPage)),
    security(("bearer" = ["transfers:read"])),
)]
pub async fn list_transfers(
    State(app): State<Arc<App>>,
    caller: Caller,
    uri: axum::http::Uri,
) -> Result<axum::Json<TransferPage>, Problem> {
    caller.require(Scope::TransfersRead)?;
    let params: TransferPageParams = query(uri.query())?;
    let limit = match params.limit.unwrap_or(50) {
        n @ 1..=200 => n,
        _ => {
            return Err(Problem::invalid_parameter(
                "limit",
                "limit must be between 1 and 200",
            ));
        }
    };
    let before = match params.cursor {
        Some(cursor) => {
            let (ms, id) = cursor
                .split_once('~')
                .ok_or_else(|| Problem::invalid_parameter("cursor", "not a cursor of this list"))?;
            // A time beyond what the store holds (2^63-1) is no cursor of
            // this list: 400, not a store error.
            let ms = ms
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms <= crate::dto::STORED_INTEGER_MAX)
                .ok_or_else(|| Problem::invalid_parameter("cursor", "not a cursor of this list"))?;
            Some((ms, id.to_string()))
        }
        None => None,
    };
    let state = match &params.state {
        Some(name) => Some(super::TransferState::from_name(name).ok_or_else(|| {
            Problem::invalid_parameter("state", format!("{name} is not a transfer state"))
        })?),
        None => None,
    };
    let mut transfers = app
        .store
        .transfers(&caller.tenant, before, limit + 1)
        .await?;
    if let Some(state) = state {
        // The filter applies within the page, so the cursor still names the
        // last transfer looked at, whether it matched or not.
        let more = transfers.len() > limit as usize;
        let last = transfers
            .get(limit as usize - 1)
            .map(|t| format!("{}~{}", t.created_at_ms, t.id));
        transfers.truncate(limit as usize);
        let items = transfers
            .iter()
            .filter(|t| t.state == state)
            .map(|t| view(t, &[]))
            .collect();
        let next_cursor = if more { last } else { None };
        return Ok(axum::Json(TransferPage { items, next_cursor }));
    }
    let more = transfers.len() > limit as usize;
    let items: Vec<TransferView> = transfers
        .iter()
        .take(limit as usize)
        .map(|t| view(t, &[]))
        .collect();
    let next_cursor = if more {
        transfers
            .get(limit as usize - 1)
            .map(|t| format!("{}~{}", t.created_at_ms, t.id))
    } else {
        None
    };
    Ok(axum::Json(TransferPage { items, next_cursor }))
}

/// Streams opened and not yet closed, across the process.
static OPEN_STREAMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Most streams one process serves at once.
const STREAMS_MAX: usize = 256;
/// How far back each poll looks, to catch changes whose commit lagged their timestamp.
const STREAM_OVERLAP_MS: u64 = 5_000;

/// Stream parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Start with the changes made at or after this time (ms since the Unix
    /// epoch); default: now. On reconnect, pass the last event id received.
    #[param(pattern = r"^[0-9]{1,19}$")]
    since: Option<String>,
}

struct StreamGuard;

impl Drop for StreamGuard {
    fn drop(&mut self) {
        OPEN_STREAMS.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Server-sent events of the caller's transfers.
///
/// One `transfer` event per history entry, as it is written:
/// `{"transferId", "seq", "state", "kind", "at", "detail"}` with the SSE id
/// the entry's time in ms. Delivery is at least once (a reconnect with
/// `since` = the last id may repeat entries); `(transferId, seq)` identifies
/// an entry. Comments keep the connection alive every 15 s.
#[utoipa::path(
    get, path = "/v1/transfers/stream", tag = "transfers",
    params(StreamParams),
    responses(
        (status = 200, description = "An event stream; each event is a TransferStreamEvent", content_type = "text/event-stream", body = TransferStreamEvent),
        (status = 503, description = "Too many open streams", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["transfers:read"])),
)]
pub async fn stream_transfers(
    State(app): State<Arc<App>>,
    caller: Caller,
    uri: axum::http::Uri,
) -> Result<Response, Problem> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use std::collections::HashMap;
    caller.require(Scope::TransfersRead)?;
    let params: StreamParams = query(uri.query())?;
    let since: u64 = match params.since {
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms <= crate::dto::STORED_INTEGER_MAX)
            .ok_or_else(|| {
                Problem::invalid_parameter("since", "since is a time in ms from 0 to 2^63-1")
            })?,
        None => crate::sequencer::now_ms(),
    };
    if OPEN_STREAMS.fetch_add(1, std::sync::atomic::Ordering::AcqRel) >= STREAMS_MAX {
        OPEN_STREAMS.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        return Err(Problem::unavailable(
            "overloaded",
            "too many open event streams; retry later",
        ));
    }
    let guard = StreamGuard;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Event>(64);
    let tenant = caller.tenant.clone();
    tokio::spawn(async move {
        let _guard = guard;
        // Per transfer, how many history entries were sent already.
        let mut sent: HashMap<String, usize> = HashMap::new();
        let mut cursor = since;
        loop {
            let now = crate::sequencer::now_ms();
            let from = cursor.saturating_sub(STREAM_OVERLAP_MS);
            let changed = match app.store.transfers_changed_since(&tenant, from, 500).await {
                Ok(changed) => changed,
                Err(error) => {
                    tracing::warn!(%error, "transfer stream: cannot read changes");
                    Vec::new()
                }
            };
            let full = changed.len() == 500;
            let last_seen = changed
                .last()
                .map(|t| t.updated_at_ms + STREAM_OVERLAP_MS)
                .unwrap_or(now);
            for transfer in changed {
                let Ok(events) = app.store.transfer_events(&transfer.id).await else {
                    continue;
                };
                let done = sent.entry(transfer.id.clone()).or_insert(0);
                for (seq, event) in events.iter().enumerate().skip(*done) {
                    if event.at_ms < since {
                        continue;
                    }
                    let data = serde_json::json!({
                        "transferId": transfer.id,
                        "seq": seq,
                        "state": transfer.state.name(),
                        "kind": event.kind,
                        "at": rfc3339(event.at_ms),
                        "detail": event.detail,
                    });
                    let sse = Event::default()
                        .event("transfer")
                        .id(event.at_ms.to_string())
                        .data(data.to_string());
                    if sender.send(sse).await.is_err() {
                        return;
                    }
                }
                *done = events.len();
            }
            // A full read may have left changes behind: read on from the
            // last one seen rather than from now.
            cursor = if full { last_seen } else { now };
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            if sender.is_closed() {
                return;
            }
        }
    });
    let mut receiver = receiver;
    let stream = futures_util::stream::poll_fn(move |cx| {
        receiver
            .poll_recv(cx)
            .map(|event| event.map(Ok::<_, std::convert::Infallible>))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response())
}
