//! The settlement API under `/v1/settlement`: the operator registry and
//! agreements (`settlement:admin`), usage records submitted, accepted and
//! disputed by the operators' tenants (`settlement:write`), read by the
//! parties (`settlement:read`), and each accepted record's anchor proof.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_core::settlement::Tadig;
use ledger_core::settlement::record::RecordError;
use ledger_core::settlement::typed::{
    DisputeTerms, acceptance_digest, dispute_digest, record_digest, record_hash,
};
use ledger_core::signature::recover_signer;
use ledger_core::{Address, Signature};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::store::{AgreementPut, OperatorPut, RecordPut, SettlementStore};
use super::{AgreementBody, DisputeBody, Operator, RecordState, StoredRecord, UsageRecordBody};
use crate::api::{JsonBody, idempotency, once, query};
use crate::app::App;
use crate::auth::{Caller, Scope};
use crate::problem::Problem;
use crate::sequencer::now_ms;

/// An operator to register.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OperatorBody {
    /// TADIG code: 3 upper-case letters, 2 upper-case letters or digits.
    #[schema(pattern = r"^[A-Z]{3}[A-Z0-9]{2}$")]
    pub tadig: String,
    /// Name (1 to 200 characters).
    pub name: String,
    /// The address whose EIP-712 signatures are the operator's.
    #[schema(pattern = r"^0x[0-9a-fA-F]{40}$")]
    pub address: String,
    /// The API tenant that acts for the operator (1 to 200 characters).
    pub tenant: String,
}

/// A registered operator.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperatorView {
    /// TADIG code.
    pub tadig: String,
    /// Name.
    pub name: String,
    /// Signing address (EIP-55).
    pub address: String,
    /// The acting tenant (shown to `settlement:admin` callers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// The registry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperatorList {
    /// Every operator, by TADIG code.
    pub items: Vec<OperatorView>,
}

/// Agreement versions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgreementList {
    /// By currency, then version.
    pub items: Vec<AgreementBody>,
}

/// A usage record to submit, with the sender's signature.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubmitRecord {
    /// The record (the EIP-712 `UsageRecord` message).
    pub record: UsageRecordBody,
    /// The sender operator's EIP-712 signature of it (65 bytes, `r || s || v`).
    #[schema(pattern = r"^0x[0-9a-fA-F]{130}$")]
    pub signature: String,
    /// The hash of the disputed record this one corrects (same operators
    /// and sequence number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^0x[0-9a-f]{64}$")]
    pub replaces: Option<String>,
}

/// The recipient's acceptance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AcceptRecord {
    /// The recipient operator's EIP-712 signature of
    /// `RecordAcceptance(recordHash, recipient)`.
    #[schema(pattern = r"^0x[0-9a-fA-F]{130}$")]
    pub signature: String,
}

/// The recipient's dispute.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DisputeRecord {
    /// Why (1 to 1,000 characters).
    pub reason: String,
    /// Minor units of the total disputed (at most the total).
    #[schema(pattern = r"^(0|[1-9][0-9]{0,38})$")]
    pub disputed_amount: String,
    /// SHA-256 of the evidence document (zeros for none).
    #[schema(pattern = r"^0x[0-9a-f]{64}$")]
    pub evidence_hash: String,
    /// The recipient operator's EIP-712 signature of the `RecordDispute`.
    #[schema(pattern = r"^0x[0-9a-fA-F]{130}$")]
    pub signature: String,
}

/// A usage record and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordView {
    /// `hashStruct(UsageRecord)`, the record's identity.
    pub record_hash: String,
    /// `submitted`, `accepted`, `disputed` or `superseded`.
    pub state: String,
    /// The record.
    pub record: UsageRecordBody,
    /// The sender's signature.
    pub sender_signature: String,
    /// Submitted (ms).
    pub submitted_at_ms: String,
    /// The recipient answers before this (ms).
    pub deadline_ms: String,
    /// The disputed record this one corrects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// The recipient's acceptance signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acceptance_signature: Option<String>,
    /// The dispute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispute: Option<DisputeBody>,
    /// The credit or debit note resolving the dispute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<super::NoteBody>,
    /// The anchoring transaction's hash on the primary ledger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor_tx_hash: Option<String>,
    /// True once that transaction is committed.
    pub anchored: bool,
}

/// A page of records.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordPage {
    /// Newest first.
    pub items: Vec<RecordView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// An accepted record's anchor on the built-in ledger.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnchorView {
    /// The record.
    pub record_hash: String,
    /// The ledger (the gateway's primary one).
    pub chain_id: String,
    /// The `Anchor` transaction (documentHash = recordHash) with its
    /// inclusion proof under the signed block header: the SATP
    /// `ledger-inclusion-1` evidence format (docs/satp.md), checked offline
    /// with `ledger-core` (`InclusionProof::verify` and the block key).
    #[schema(value_type = Object)]
    pub inclusion: serde_json::Value,
}

fn view(r: &StoredRecord) -> RecordView {
    RecordView {
        record_hash: hex0x(&r.hash),
        state: r.state.name().into(),
        record: UsageRecordBody::from_domain(&r.record),
        sender_signature: r.sender_signature.to_string(),
        submitted_at_ms: r.submitted_at_ms.to_string(),
        deadline_ms: r.deadline_ms.to_string(),
        replaces: r.replaces.as_ref().map(hex0x),
        acceptance_signature: r.acceptance_signature.map(|s| s.to_string()),
        dispute: r.dispute.clone(),
        note: r.note.clone(),
        anchor_tx_hash: r.anchor.as_ref().map(|a| a.tx_hash.to_string()),
        anchored: r.anchored,
    }
}

fn hex0x(bytes: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn hash32(pointer: &str, text: &str) -> Result<[u8; 32], Problem> {
    let digits = text
        .strip_prefix("0x")
        .filter(|d| {
            d.len() == 64
                && d.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .ok_or_else(|| {
            Problem::invalid_field(pointer, "must be 0x and 64 lower-case hex digits")
        })?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out)
        .map_err(|_| Problem::invalid_field(pointer, "not hex"))?;
    Ok(out)
}

fn signature(pointer: &str, text: &str) -> Result<Signature, Problem> {
    text.parse::<Signature>()
        .map_err(|e| Problem::invalid_field(pointer, e.to_string()))
}

fn field_problem(error: super::FieldError) -> Problem {
    Problem::invalid_field(&error.pointer, error.reason)
}

/// The problem for a refused record: one type per violation.
pub fn record_problem(error: &RecordError) -> Problem {
    let slug = match error {
        RecordError::SameParty => "record-same-party",
        RecordError::EmptyPeriod => "record-empty-period",
        RecordError::PeriodInFuture { .. } => "record-period-in-future",
        RecordError::NoLines => "record-no-lines",
        RecordError::DuplicateService(_) => "record-duplicate-service",
        RecordError::NoAgreement { .. } => "record-no-agreement",
        RecordError::WrongAgreementVersion { .. } => "record-wrong-agreement-version",
        RecordError::ServiceNotAgreed(_) => "record-service-not-agreed",
        RecordError::RateMismatch { .. } => "record-rate-mismatch",
        RecordError::ChargeMismatch { .. } => "record-charge-mismatch",
        RecordError::ChargesTotalMismatch { .. } => "record-charges-total-mismatch",
        RecordError::DiscountMismatch { .. } => "record-discount-mismatch",
        RecordError::TotalMismatch { .. } => "record-total-mismatch",
        RecordError::ZeroSequence => "record-zero-sequence",
        RecordError::DuplicateSequence(_) => "record-duplicate-sequence",
        RecordError::SequenceGap { .. } => "record-sequence-gap",
        RecordError::Overflow => "record-overflow",
    };
    let status = match error {
        RecordError::DuplicateSequence(_) => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Problem::new(status, slug, "Usage record refused", error.to_string())
}

/// The operators the caller's tenant acts for.
async fn tenant_operators(app: &App, caller: &Caller) -> Result<Vec<Operator>, Problem> {
    Ok(app
        .store
        .operators()
        .await?
        .into_iter()
        .filter(|o| o.tenant == caller.tenant)
        .collect())
}

/// The record `hash` if the caller's tenant is party to it (404 otherwise).
async fn party_record(
    app: &App,
    caller: &Caller,
    hash: [u8; 32],
) -> Result<(StoredRecord, Operator, Operator), Problem> {
    let not_found = || Problem::not_found(format!("no usage record {}", hex0x(&hash)));
    let record = app.store.record(hash).await?.ok_or_else(not_found)?;
    let sender = app
        .store
        .operator(record.record.sender)
        .await?
        .ok_or_else(not_found)?;
    let recipient = app
        .store
        .operator(record.record.recipient)
        .await?
        .ok_or_else(not_found)?;
    if sender.tenant != caller.tenant && recipient.tenant != caller.tenant {
        return Err(not_found());
    }
    Ok((record, sender, recipient))
}

fn json_result<T: Serialize>(
    status: StatusCode,
    result: Result<T, Problem>,
) -> (StatusCode, serde_json::Value) {
    match result {
        Ok(value) => (status, serde_json::to_value(value).unwrap_or_default()),
        Err(problem) => (
            problem.status(),
            serde_json::to_value(&problem).unwrap_or_default(),
        ),
    }
}

/// Writes `next` over the record at `expected_version`; 409
/// `record-answered` when it changed meanwhile.
async fn write_record(
    app: &App,
    next: &StoredRecord,
    expected_version: i64,
) -> Result<(), Problem> {
    if app.store.update_record(next, expected_version).await? {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::CONFLICT,
        "record-answered",
        "Record already answered",
        "the record changed meanwhile",
    ))
}

/// Anchors a just-accepted record now if this process produces blocks (the
/// anchorer takes it up otherwise, or after a crash), and answers the record
/// as stored.
async fn anchored_view(
    app: &App,
    accepted: StoredRecord,
) -> Result<axum::Json<RecordView>, Problem> {
    if let Err(error) = super::anchor(app, &accepted).await {
        tracing::warn!(%error, "anchoring an accepted record failed; the anchorer retries");
    }
    let current = app.store.record(accepted.hash).await?.unwrap_or(accepted);
    Ok(axum::Json(view(&current)))
}

/// Register an operator.
#[utoipa::path(
    post, path = "/v1/settlement/operators", tag = "settlement",
    request_body = OperatorBody,
    responses(
        (status = 201, description = "Registered", body = OperatorView),
        (status = 200, description = "Registered before with exactly these details", body = OperatorView),
        (status = 409, description = "The TADIG code is registered with other details", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["settlement:admin"])),
)]
pub async fn register_operator(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body, _raw): JsonBody<OperatorBody>,
) -> Result<(StatusCode, axum::Json<OperatorView>), Problem> {
    caller.require(Scope::SettlementAdmin)?;
    let tadig: Tadig = body
        .tadig
        .parse()
        .map_err(|e: ledger_core::settlement::BadTadig| {
            Problem::invalid_field("/tadig", e.to_string())
        })?;
    let address: Address = body
        .address
        .parse()
        .map_err(|e: ledger_core::ParseError| Problem::invalid_field("/address", e.to_string()))?;
    for (pointer, text) in [("/name", &body.name), ("/tenant", &body.tenant)] {
        if text.trim().is_empty() || text.chars().count() > 200 {
            return Err(Problem::invalid_field(
                pointer,
                "must be 1 to 200 characters, not blank",
            ));
        }
    }
    let operator = Operator {
        tadig,
        name: body.name.clone(),
        address,
        tenant: body.tenant.clone(),
        created_at_ms: now_ms(),
    };
    let shown = |o: &Operator| OperatorView {
        tadig: o.tadig.to_string(),
        name: o.name.clone(),
        address: o.address.to_checksum(),
        tenant: Some(o.tenant.clone()),
    };
    match app.store.put_operator(&operator).await? {
        OperatorPut::Created => Ok((StatusCode::CREATED, axum::Json(shown(&operator)))),
        OperatorPut::Exists(existing)
            if (
                existing.name.as_str(),
                existing.address,
                existing.tenant.as_str(),
            ) == (
                operator.name.as_str(),
                operator.address,
                operator.tenant.as_str(),
            ) =>
        {
            Ok((StatusCode::OK, axum::Json(shown(&existing))))
        }
        OperatorPut::Exists(_) => Err(Problem::new(
            StatusCode::CONFLICT,
            "operator-exists",
            "Operator exists",
            format!("{tadig} is registered with other details"),
        )),
    }
}

/// List the operators.
#[utoipa::path(
    get, path = "/v1/settlement/operators", tag = "settlement",
    responses((status = 200, description = "Every operator", body = OperatorList)),
    security(("bearer" = ["settlement:read"]), ("bearer" = ["settlement:admin"])),
)]
pub async fn list_operators(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<axum::Json<OperatorList>, Problem> {
    if caller.require(Scope::SettlementAdmin).is_err() {
        caller.require(Scope::SettlementRead)?;
    }
    let admin = caller.scopes.contains(&Scope::SettlementAdmin);
    let items = app
        .store
        .operators()
        .await?
        .into_iter()
        .map(|o| OperatorView {
            tadig: o.tadig.to_string(),
            name: o.name,
            address: o.address.to_checksum(),
            tenant: admin.then_some(o.tenant),
        })
        .collect();
    Ok(axum::Json(OperatorList { items }))
}

/// Add an agreement version.
///
/// Versions count from 1 per sender, recipient and currency; each new one
/// must be the next. A record is judged by the highest version whose
/// validity covers its whole period.
#[utoipa::path(
    post, path = "/v1/settlement/agreements", tag = "settlement",
    request_body = AgreementBody,
    responses(
        (status = 201, description = "Added", body = AgreementBody),
        (status = 409, description = "Not the next version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a well-formed agreement, or an unknown operator", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["settlement:admin"])),
)]
pub async fn add_agreement(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body, _raw): JsonBody<AgreementBody>,
) -> Result<(StatusCode, axum::Json<AgreementBody>), Problem> {
    caller.require(Scope::SettlementAdmin)?;
    let agreement = body.to_domain().map_err(field_problem)?;
    agreement.check().map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "agreement-invalid",
            "Agreement refused",
            e.to_string(),
        )
    })?;
    for party in [agreement.sender, agreement.recipient] {
        if app.store.operator(party).await?.is_none() {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-operator",
                "Unknown operator",
                format!("{party} is not registered"),
            ));
        }
    }
    match app.store.put_agreement(&agreement, now_ms()).await? {
        AgreementPut::Created => Ok((
            StatusCode::CREATED,
            axum::Json(AgreementBody::from_domain(&agreement)),
        )),
        AgreementPut::VersionNotNext { expected } => Err(Problem::new(
            StatusCode::CONFLICT,
            "agreement-version",
            "Not the next agreement version",
            format!("the next version of this agreement is {expected}"),
        )),
    }
}

/// Query of the agreements list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AgreementParams {
    /// The charging operator.
    #[param(pattern = r"^[A-Z]{3}[A-Z0-9]{2}$")]
    sender: String,
    /// The charged operator.
    #[param(pattern = r"^[A-Z]{3}[A-Z0-9]{2}$")]
    recipient: String,
}

/// List the agreement versions between two operators (their tenants, or an admin).
#[utoipa::path(
    get, path = "/v1/settlement/agreements", tag = "settlement",
    params(AgreementParams),
    responses(
        (status = 200, description = "The versions", body = AgreementList),
        (status = 404, description = "Not a party", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["settlement:read"]), ("bearer" = ["settlement:admin"])),
)]
pub async fn list_agreements(
    State(app): State<Arc<App>>,
    caller: Caller,
    uri: axum::http::Uri,
) -> Result<axum::Json<AgreementList>, Problem> {
    let admin = caller.scopes.contains(&Scope::SettlementAdmin);
    if !admin {
        caller.require(Scope::SettlementRead)?;
    }
    let params: AgreementParams = query(uri.query())?;
    let sender: Tadig = params
        .sender
        .parse()
        .map_err(|e: ledger_core::settlement::BadTadig| {
            Problem::invalid_parameter("sender", e.to_string())
        })?;
    let recipient: Tadig =
        params
            .recipient
            .parse()
            .map_err(|e: ledger_core::settlement::BadTadig| {
                Problem::invalid_parameter("recipient", e.to_string())
            })?;
    if !admin {
        let mine = tenant_operators(&app, &caller).await?;
        if !mine
            .iter()
            .any(|o| o.tadig == sender || o.tadig == recipient)
        {
            return Err(Problem::not_found(format!(
                "no agreements between {sender} and {recipient}"
            )));
        }
    }
    let items = app
        .store
        .agreements(sender, recipient)
        .await?
        .iter()
        .map(AgreementBody::from_domain)
        .collect();
    Ok(axum::Json(AgreementList { items }))
}

async fn submit_one(
    app: &App,
    caller: &Caller,
    body: &SubmitRecord,
) -> (StatusCode, serde_json::Value) {
    let result: Result<RecordView, Problem> = async {
        let record = body.record.to_domain().map_err(field_problem)?;
        let signature = signature("/signature", &body.signature)?;
        let replaces = body
            .replaces
            .as_deref()
            .map(|h| hash32("/replaces", h))
            .transpose()?;
        let sender = app.store.operator(record.sender).await?;
        let Some(sender) = sender.filter(|s| s.tenant == caller.tenant) else {
            return Err(Problem::forbidden(format!(
                "this tenant does not act for {}",
                record.sender
            )));
        };
        let Some(recipient) = app.store.operator(record.recipient).await? else {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-operator",
                "Unknown operator",
                format!("{} is not registered", record.recipient),
            ));
        };
        let digest = record_digest(app.chain_id, &record);
        let signer = recover_signer(&digest, &signature)
            .map_err(|e| Problem::invalid_field("/signature", e.to_string()))?;
        if signer != sender.address {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-signature",
                "Bad signature",
                format!(
                    "the signature is {signer}'s, not the sender {}'s ({})",
                    sender.tadig, sender.address
                ),
            ));
        }
        let now = now_ms();
        let agreements = app
            .store
            .agreements(record.sender, record.recipient)
            .await?;
        record
            .validate(&agreements, now)
            .map_err(|e| record_problem(&e))?;
        let hash = record_hash(&record);
        let stored = StoredRecord {
            hash,
            record,
            sender_signature: signature,
            state: RecordState::Submitted,
            submitted_at_ms: now,
            deadline_ms: now.saturating_add(app.config.settlement.dispute_window_ms),
            replaces,
            acceptance_signature: None,
            accepted_at_ms: None,
            dispute: None,
            note: None,
            anchor: None,
            anchored: false,
            updated_at_ms: now,
            version: 0,
        };
        let _ = recipient;
        match app.store.insert_record(&stored).await? {
            RecordPut::Created => Ok(view(&stored)),
            RecordPut::Exists => Err(Problem::new(
                StatusCode::CONFLICT,
                "record-exists",
                "Record exists",
                format!("the record {} was submitted before", hex0x(&hash)),
            )),
            RecordPut::Sequence(error) => Err(record_problem(&error)),
            RecordPut::BadReplacement(reason) => Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "record-bad-replacement",
                "Bad correction",
                reason,
            )),
        }
    }
    .await;
    json_result(StatusCode::CREATED, result)
}

/// Submit a usage record (the sender operator's tenant), signed by the sender.
///
/// The record is checked against the agreement in force (totals, rates,
/// charges, discount), its period must have ended, and its sequence number
/// must come next; each violation has its own problem type. A correction of
/// a disputed record names it in `replaces` and takes its sequence number.
#[utoipa::path(
    post, path = "/v1/settlement/records", tag = "settlement",
    request_body = SubmitRecord,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the write safe to retry: 1 to 255 visible ASCII characters", pattern = r"^[!-~]{1,255}$")),
    responses(
        (status = 201, description = "Submitted", body = RecordView),
        (status = 403, description = "The tenant does not act for the sender", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Duplicate sequence number, or submitted before", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Refused: a rule of the record, its agreement or its signature", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["settlement:write"])),
)]
pub async fn submit_record(
    State(app): State<Arc<App>>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body, raw): JsonBody<SubmitRecord>,
) -> Response {
    if let Err(problem) = caller.require(Scope::SettlementWrite) {
        return problem.into_response();
    }
    let key = match idempotency(&headers, "POST", "/v1/settlement/records", &raw) {
        Ok(key) => key,
        Err(problem) => return problem.into_response(),
    };
    once(&app, &caller, key, submit_one(&app, &caller, &body)).await
}

/// Query of the records list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordPageParams {
    /// `nextCursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,19}~0x[0-9a-f]{64}$")]
    cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// List the records the caller's operators are party to, newest first.
#[utoipa::path(
    get, path = "/v1/settlement/records", tag = "settlement",
    params(RecordPageParams),
    responses((status = 200, description = "A page of records", body = RecordPage)),
    security(("bearer" = ["settlement:read"])),
)]
pub async fn list_records(
    State(app): State<Arc<App>>,
    caller: Caller,
    uri: axum::http::Uri,
) -> Result<axum::Json<RecordPage>, Problem> {
    caller.require(Scope::SettlementRead)?;
    let params: RecordPageParams = query(uri.query())?;
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
            let bad = || Problem::invalid_parameter("cursor", "not a cursor of this list");
            let (ms, hash) = cursor.split_once('~').ok_or_else(bad)?;
            Some((
                ms.parse::<u64>()
                    .ok()
                    .filter(|ms| *ms <= crate::dto::STORED_INTEGER_MAX)
                    .ok_or_else(bad)?,
                hash32("cursor", hash).map_err(|_| bad())?,
            ))
        }
        None => None,
    };
    let mut records = app
        .store
        .records_of_tenant(&caller.tenant, before, limit + 1)
        .await?;
    let more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            records
                .last()
                .map(|r| format!("{}~{}", r.submitted_at_ms, hex0x(&r.hash)))
        })
        .flatten();
    Ok(axum::Json(RecordPage {
        items: records.iter().map(view).collect(),
        next_cursor,
    }))
}

/// Get a usage record (its parties only).
#[utoipa::path(
    get, path = "/v1/settlement/records/{hash}", tag = "settlement",
    params(("hash" = String, Path, description = "The record hash", pattern = r"^0x[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "The record", body = RecordView),
        (status = 404, description = "Unknown, or not the caller's", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["settlement:read"])),
)]
pub async fn get_record(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(hash): Path<String>,
) -> Result<axum::Json<RecordView>, Problem> {
    caller.require(Scope::SettlementRead)?;
    let hash = hash32("hash", &hash)?;
    let (record, _, _) = party_record(&app, &caller, hash).await?;
    Ok(axum::Json(view(&record)))
}

/// The checks common to accepting and disputing: the caller is the
/// recipient's tenant, the record awaits an answer, before its deadline.
async fn answerable(
    app: &App,
    caller: &Caller,
    hash: [u8; 32],
) -> Result<(StoredRecord, Operator), Problem> {
    let (record, _sender, recipient) = party_record(app, caller, hash).await?;
    if recipient.tenant != caller.tenant {
        return Err(Problem::forbidden(format!(
            "only the recipient {} answers a record",
            recipient.tadig
        )));
    }
    if record.state != RecordState::Submitted {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "record-answered",
            "Record already answered",
            format!("the record is {}", record.state.name()),
        ));
    }
    if now_ms() >= record.deadline_ms {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "record-deadline-passed",
            "Deadline passed",
            format!("the deadline to answer was {} ms", record.deadline_ms),
        ));
    }
    Ok((record, recipient))
}

fn check_signer(
    digest: &[u8; 32],
    signature: &Signature,
    operator: &Operator,
) -> Result<(), Problem> {
    let signer = recover_signer(digest, signature)
        .map_err(|e| Problem::invalid_field("/signature", e.to_string()))?;
    if signer != operator.address {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-signature",
            "Bad signature",
            format!(
                "the signature is {signer}'s, not {}'s ({})",
                operator.tadig, operator.address
            ),
        ));
    }
    Ok(())
}

/// Accept a usage record (the recipient's tenant), counter-signed.
///
/// The record is then anchored on the gateway's primary ledger (see
/// `anchorTxHash`, `anchored`, and `GET .../anchor`).
#[utoipa::path(
    post, path = "/v1/settlement/records/{hash}/accept", tag = "settlement",
    params(("hash" = String, Path, description = "The record hash", pattern = r"^0x[0-9a-f]{64}$")),
    request_body = AcceptRecord,
    responses(
        (status = 200, description = "Accepted", body = RecordView),
        (status = 403, description = "Not the recipient", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown, or not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Answered already, or past the deadline", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not the recipient's signature", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["settlement:write"])),
)]
pub async fn accept_record(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(hash): Path<String>,
    JsonBody(body, _raw): JsonBody<AcceptRecord>,
) -> Result<axum::Json<RecordView>, Problem> {
    caller.require(Scope::SettlementWrite)?;
    let hash = hash32("hash", &hash)?;
    let (record, recipient) = answerable(&app, &caller, hash).await?;
    let signature = signature("/signature", &body.signature)?;
    check_signer(
        &acceptance_digest(app.chain_id, &hash, recipient.tadig.as_str()),
        &signature,
        &recipient,
    )?;
    let now = now_ms();
    let accepted = StoredRecord {
        state: RecordState::Accepted,
        acceptance_signature: Some(signature),
        accepted_at_ms: Some(now),
        updated_at_ms: now,
        version: record.version + 1,
        ..record.clone()
    };
    write_record(&app, &accepted, record.version).await?;
    anchored_view(&app, accepted).await
}

/// Dispute a usage record (the recipient's tenant), signed.
#[utoipa::path(
    post, path = "/v1/settlement/records/{hash}/dispute", tag = "settlement",
    params(("hash" = String, Path, description = "The record hash", pattern = r"^0x[0-9a-f]{64}$")),
    request_body = DisputeRecord,
    responses(
        (status = 200, description = "Disputed", body = RecordView),
        (status = 403, description = "Not the recipient", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown, or not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Answered already, or past the deadline", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad dispute, or not the recipient's signature", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["settlement:write"])),
)]
pub async fn dispute_record(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(hash): Path<String>,
    JsonBody(body, _raw): JsonBody<DisputeRecord>,
) -> Result<axum::Json<RecordView>, Problem> {
    caller.require(Scope::SettlementWrite)?;
    let hash = hash32("hash", &hash)?;
    // Non-parties get 404 whatever they send.
    let (record, recipient) = answerable(&app, &caller, hash).await?;
    let signature = signature("/signature", &body.signature)?;
    if body.reason.trim().is_empty() || body.reason.chars().count() > 1000 {
        return Err(Problem::invalid_field(
            "/reason",
            "must be 1 to 1000 characters, not blank",
        ));
    }
    let disputed_amount: u128 =
        super::decimal("/disputedAmount", &body.disputed_amount).map_err(field_problem)?;
    let evidence_hash = hash32("/evidenceHash", &body.evidence_hash)?;
    if disputed_amount > record.record.total {
        return Err(Problem::invalid_field(
            "/disputedAmount",
            format!(
                "must be at most the record's total, {}",
                record.record.total
            ),
        ));
    }
    let terms = DisputeTerms {
        record_hash: hash,
        recipient: recipient.tadig.as_str(),
        reason: &body.reason,
        disputed_amount,
        evidence_hash,
    };
    check_signer(
        &dispute_digest(app.chain_id, &terms),
        &signature,
        &recipient,
    )?;
    let now = now_ms();
    let disputed = StoredRecord {
        state: RecordState::Disputed,
        dispute: Some(DisputeBody {
            reason: body.reason.clone(),
            disputed_amount: disputed_amount.to_string(),
            evidence_hash: hex0x(&evidence_hash),
            signature: signature.to_string(),
            disputed_at_ms: now.to_string(),
        }),
        updated_at_ms: now,
        version: record.version + 1,
        ..record.clone()
    };
    write_record(&app, &disputed, record.version).await?;
    Ok(axum::Json(view(&disputed)))
}

/// An accepted record's anchor: the `Anchor` transaction with its
/// inclusion proof (its parties only).
#[utoipa::path(
    get, path = "/v1/settlement/records/{hash}/anchor", tag = "settlement",
    params(("hash" = String, Path, description = "The record hash", pattern = r"^0x[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "The anchor and its proof", body = AnchorView),
        (status = 404, description = "Unknown, not the caller's, or not anchored yet", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["settlement:read"])),
)]
pub async fn get_anchor(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(hash): Path<String>,
) -> Result<axum::Json<AnchorView>, Problem> {
    caller.require(Scope::SettlementRead)?;
    let hash = hash32("hash", &hash)?;
    let (record, _, _) = party_record(&app, &caller, hash).await?;
    let not_yet =
        || Problem::not_found(format!("the record {} is not anchored (yet)", hex0x(&hash)));
    let anchor = record
        .anchor
        .filter(|_| record.anchored)
        .ok_or_else(not_yet)?;
    let inclusion = crate::satp::evidence::inclusion(&app, anchor.chain_id, anchor.tx_hash)
        .await?
        .ok_or_else(not_yet)?;
    Ok(axum::Json(AnchorView {
        record_hash: hex0x(&hash),
        chain_id: anchor.chain_id.to_string(),
        inclusion,
    }))
}

/// A credit or debit note to issue on a disputed record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IssueNote {
    /// `credit` (lowers what the recipient owes) or `debit` (raises it).
    #[schema(pattern = r"^(credit|debit)$")]
    pub kind: String,
    /// Minor units (a credit at most the record's total).
    #[schema(pattern = r"^(0|[1-9][0-9]{0,38})$")]
    pub amount: String,
    /// Why (1 to 1,000 characters).
    pub reason: String,
    /// The sender's EIP-712 signature of `RecordNote(recordHash, kind, amount, reason)`.
    #[schema(pattern = r"^0x[0-9a-fA-F]{130}$")]
    pub signature: String,
}

/// Issue a credit or debit note on a disputed record (the sender's tenant).
///
/// The note resolves the dispute once the recipient accepts it by signing
/// the same `RecordNote` (`POST .../note/accept`); a later note replaces one
/// not yet accepted.
#[utoipa::path(
    post, path = "/v1/settlement/records/{hash}/note", tag = "settlement",
    params(("hash" = String, Path, description = "The record hash", pattern = r"^0x[0-9a-f]{64}$")),
    request_body = IssueNote,
    responses(
        (status = 200, description = "Issued", body = RecordView),
        (status = 403, description = "Not the sender", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown, or not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The record is not disputed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad note, or not the sender's signature", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["settlement:write"])),
)]
pub async fn issue_note(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(hash): Path<String>,
    JsonBody(body, _raw): JsonBody<IssueNote>,
) -> Result<axum::Json<RecordView>, Problem> {
    caller.require(Scope::SettlementWrite)?;
    let hash = hash32("hash", &hash)?;
    // Non-parties get 404 whatever they send.
    let (record, sender, _recipient) = party_record(&app, &caller, hash).await?;
    let signature = signature("/signature", &body.signature)?;
    if body.kind != "credit" && body.kind != "debit" {
        return Err(Problem::invalid_field("/kind", "must be credit or debit"));
    }
    if body.reason.trim().is_empty() || body.reason.chars().count() > 1000 {
        return Err(Problem::invalid_field(
            "/reason",
            "must be 1 to 1000 characters, not blank",
        ));
    }
    let amount: u128 = super::decimal("/amount", &body.amount).map_err(field_problem)?;
    if sender.tenant != caller.tenant {
        return Err(Problem::forbidden(format!(
            "only the sender {} issues a note",
            sender.tadig
        )));
    }
    if record.state != RecordState::Disputed {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "record-not-disputed",
            "Record not disputed",
            format!("the record is {}", record.state.name()),
        ));
    }
    let note = super::NoteBody {
        kind: body.kind.clone(),
        amount: amount.to_string(),
        reason: body.reason.clone(),
        sender_signature: signature.to_string(),
        recipient_signature: None,
    };
    if note.apply(record.record.total).is_none() {
        return Err(Problem::invalid_field(
            "/amount",
            format!(
                "a credit is at most the record's total, {}",
                record.record.total
            ),
        ));
    }
    let digest = ledger_core::settlement::typed::note_digest(
        app.chain_id,
        &hash,
        &body.kind,
        amount,
        &body.reason,
    );
    check_signer(&digest, &signature, &sender)?;
    let next = StoredRecord {
        note: Some(note),
        updated_at_ms: now_ms(),
        version: record.version + 1,
        ..record.clone()
    };
    write_record(&app, &next, record.version).await?;
    Ok(axum::Json(view(&next)))
}

/// Accept the note on a disputed record (the recipient's tenant), signing
/// the same `RecordNote`: the dispute is resolved, the record accepted with
/// the note applied, and anchored.
#[utoipa::path(
    post, path = "/v1/settlement/records/{hash}/note/accept", tag = "settlement",
    params(("hash" = String, Path, description = "The record hash", pattern = r"^0x[0-9a-f]{64}$")),
    request_body = AcceptRecord,
    responses(
        (status = 200, description = "Resolved and accepted", body = RecordView),
        (status = 403, description = "Not the recipient", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown, or not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not disputed, or no note", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not the recipient's signature", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["settlement:write"])),
)]
pub async fn accept_note(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(hash): Path<String>,
    JsonBody(body, _raw): JsonBody<AcceptRecord>,
) -> Result<axum::Json<RecordView>, Problem> {
    caller.require(Scope::SettlementWrite)?;
    let hash = hash32("hash", &hash)?;
    // Non-parties get 404 whatever they send.
    let (record, _sender, recipient) = party_record(&app, &caller, hash).await?;
    let signature = signature("/signature", &body.signature)?;
    if recipient.tenant != caller.tenant {
        return Err(Problem::forbidden(format!(
            "only the recipient {} accepts a note",
            recipient.tadig
        )));
    }
    let note = match (&record.note, record.state) {
        (Some(note), RecordState::Disputed) => note.clone(),
        _ => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "record-not-disputed",
                "Record not disputed",
                format!("the record is {} without an open note", record.state.name()),
            ));
        }
    };
    let amount: u128 = note
        .amount
        .parse()
        .map_err(|_| Problem::from(crate::store::StoreError::Corrupt("note amount".into())))?;
    let digest = ledger_core::settlement::typed::note_digest(
        app.chain_id,
        &hash,
        &note.kind,
        amount,
        &note.reason,
    );
    check_signer(&digest, &signature, &recipient)?;
    let now = now_ms();
    let accepted = StoredRecord {
        state: RecordState::Accepted,
        note: Some(super::NoteBody {
            recipient_signature: Some(signature.to_string()),
            ..note
        }),
        accepted_at_ms: Some(now),
        updated_at_ms: now,
        version: record.version + 1,
        ..record.clone()
    };
    write_record(&app, &accepted, record.version).await?;
    anchored_view(&app, accepted).await
}
