//! Closing a settlement period (`POST /v1/settlement/closes`,
//! `settlement:admin`) and reading the statements (`GET
//! /v1/settlement/statements`, each operator's tenant its own).
//!
//! A close takes every record not closed before whose period lies within
//! the close's period and that is accepted, or was left unanswered past its
//! deadline (deemed accepted then, and anchored like any accepted record).
//! Disputed records wait for their correction. It nets them
//! (`ledger_core::settlement::statement::close`), signs each operator's
//! statement with the gateway's key (EIP-712 `Statement`, docs/settlement.md),
//! and stores the close, its statements and the records' close in one
//! database transaction.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use ledger_core::AssetCode;
use ledger_core::settlement::netting::Payment;
use ledger_core::settlement::statement::{CloseTerms, FxRate, Statement, close};
use ledger_core::settlement::typed::statement_digest;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::decimal;
use super::store::{PaymentLink, SettlementStore, StoredClose, StoredStatement};
use crate::api::{JsonBody, query};
use crate::app::App;
use crate::auth::{Caller, Scope};
use crate::problem::Problem;
use crate::sequencer::now_ms;

/// An FX rate: `numerator / denominator` units of `to` per unit of `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FxRateBody {
    /// A record currency.
    #[schema(pattern = r"^[A-Z][A-Z0-9-]{0,11}$")]
    pub from: String,
    /// The settlement currency.
    #[schema(pattern = r"^[A-Z][A-Z0-9-]{0,11}$")]
    pub to: String,
    /// Numerator.
    #[schema(pattern = r"^[1-9][0-9]{0,38}$")]
    pub numerator: String,
    /// Denominator.
    #[schema(pattern = r"^[1-9][0-9]{0,38}$")]
    pub denominator: String,
}

/// A period to close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CloseBody {
    /// Period start (ms, inclusive).
    #[schema(pattern = r"^(0|[1-9][0-9]{0,18})$")]
    pub period_start_ms: String,
    /// Period end (ms, exclusive).
    #[schema(pattern = r"^(0|[1-9][0-9]{0,18})$")]
    pub period_end_ms: String,
    /// `multilateral` (default: fewest payments across all operators) or
    /// `bilateral` (one payment per pair).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^(multilateral|bilateral)$")]
    pub netting: Option<String>,
    /// Settle everything in this currency, converting with `fxRates`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[A-Z][A-Z0-9-]{0,11}$")]
    pub settlement_currency: Option<String>,
    /// One rate from each other record currency into the settlement currency.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub fx_rates: Vec<FxRateBody>,
}

/// One record on a statement.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatementLineView {
    /// The record.
    pub record_hash: String,
    /// The other operator.
    pub counterparty: String,
    /// In the statement's currency.
    pub amount: String,
    /// True when the operator is owed it.
    pub receivable: bool,
}

/// A payment that settles positions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    /// Who pays.
    pub payer: String,
    /// Who is paid.
    pub payee: String,
    /// Minor units of the statement's currency.
    pub amount: String,
    /// `unpaid`, `in_progress` (a transfer pays it and is not over) or
    /// `paid` (that transfer completed on every leg). Not signed: it is
    /// read when the statement is.
    #[serde(default)]
    #[schema(pattern = r"^(unpaid|in_progress|paid)$")]
    pub status: String,
    /// The transfer paying it (the latest, if several were tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_id: Option<String>,
}

/// An operator's statement, signed by the gateway.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatementView {
    /// The close (the EIP-712 `closeId`).
    pub close_id: String,
    /// The operator.
    pub operator: String,
    /// The currency.
    pub currency: String,
    /// Period start (ms).
    pub period_start_ms: String,
    /// Period end (ms).
    pub period_end_ms: String,
    /// Its records.
    pub lines: Vec<StatementLineView>,
    /// What it is owed.
    pub receivable: String,
    /// What it owes.
    pub payable: String,
    /// `receivable − payable` (negative: it pays).
    pub net: String,
    /// The payments it makes or receives.
    pub payments: Vec<PaymentView>,
    /// The FX rates applied.
    pub fx_rates: Vec<FxRateBody>,
    /// The gateway's EIP-712 signature of the `Statement`.
    pub signature: String,
    /// The gateway address that signed.
    pub signer: String,
    /// True once every payment it makes or receives is paid.
    #[serde(default)]
    pub paid: bool,
}

/// A closed period.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloseView {
    /// The close id.
    pub close_id: String,
    /// Its terms.
    pub terms: CloseBody,
    /// Records closed.
    #[schema(minimum = 0, maximum = 9007199254740991_u64)]
    pub record_count: u64,
    /// One per operator and currency.
    pub statements: Vec<StatementView>,
}

/// Statements.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatementList {
    /// Newest close first.
    pub items: Vec<StatementView>,
}

fn code(pointer: &str, text: &str) -> Result<AssetCode, Problem> {
    AssetCode::new(text).map_err(|e| Problem::invalid_field(pointer, e.to_string()))
}

fn terms_of(body: &CloseBody) -> Result<CloseTerms, Problem> {
    let field = |e: super::FieldError| Problem::invalid_field(&e.pointer, e.reason);
    let period_start_ms: u64 =
        super::stored_decimal("/periodStartMs", &body.period_start_ms).map_err(field)?;
    let period_end_ms: u64 =
        super::stored_decimal("/periodEndMs", &body.period_end_ms).map_err(field)?;
    if period_end_ms <= period_start_ms {
        return Err(Problem::invalid_field(
            "/periodEndMs",
            "must be after periodStartMs",
        ));
    }
    let multilateral = match body.netting.as_deref() {
        None | Some("multilateral") => true,
        Some("bilateral") => false,
        Some(_) => {
            return Err(Problem::invalid_field(
                "/netting",
                "must be multilateral or bilateral",
            ));
        }
    };
    let settlement_currency = body
        .settlement_currency
        .as_deref()
        .map(|c| code("/settlementCurrency", c))
        .transpose()?;
    let mut fx_rates = Vec::new();
    for (i, rate) in body.fx_rates.iter().enumerate() {
        let at = |f: &str| format!("/fxRates/{i}/{f}");
        fx_rates.push(FxRate {
            from: code(&at("from"), &rate.from)?,
            to: code(&at("to"), &rate.to)?,
            numerator: decimal(&at("numerator"), &rate.numerator).map_err(field)?,
            denominator: decimal(&at("denominator"), &rate.denominator).map_err(field)?,
        });
    }
    Ok(CloseTerms {
        period_start_ms,
        period_end_ms,
        multilateral,
        settlement_currency,
        fx_rates,
    })
}

fn statement_view(close_id: &str, s: &Statement, signature: &str, signer: &str) -> StatementView {
    let payment = |p: &Payment| PaymentView {
        payer: p.payer.to_string(),
        payee: p.payee.to_string(),
        amount: p.amount.to_string(),
        status: "unpaid".into(),
        transfer_id: None,
    };
    StatementView {
        close_id: close_id.to_string(),
        operator: s.operator.to_string(),
        currency: s.currency.to_string(),
        period_start_ms: s.period_start_ms.to_string(),
        period_end_ms: s.period_end_ms.to_string(),
        lines: s
            .lines
            .iter()
            .map(|l| StatementLineView {
                record_hash: format!("0x{}", hex::encode(l.record_hash)),
                counterparty: l.counterparty.to_string(),
                amount: l.amount.to_string(),
                receivable: l.receivable,
            })
            .collect(),
        receivable: s.receivable.to_string(),
        payable: s.payable.to_string(),
        net: s.net().to_string(),
        payments: s.payments.iter().map(payment).collect(),
        fx_rates: s
            .fx_rates
            .iter()
            .map(|r| FxRateBody {
                from: r.from.to_string(),
                to: r.to.to_string(),
                numerator: r.numerator.to_string(),
                denominator: r.denominator.to_string(),
            })
            .collect(),
        signature: signature.to_string(),
        signer: signer.to_string(),
        paid: s.payments.is_empty(),
    }
}

/// The reference a statement payment's transfers carry.
fn payment_reference(close_id: &str, currency: &str, payer: &str, payee: &str) -> String {
    format!("settlement:{close_id}:{currency}:{payer}:{payee}")
}

/// Where a payment stands, from the transfers carrying its reference (only
/// the gateway sets `settlement:` references, in the same database
/// transaction that creates the transfer, so a crash cannot leave a paying
/// transfer unaccounted for).
async fn payment_status(
    app: &App,
    close_id: &str,
    currency: &str,
    payer: &str,
    payee: &str,
) -> Result<(String, Option<String>), Problem> {
    use crate::transfers::store::TransferStore as _;
    let reference = payment_reference(close_id, currency, payer, payee);
    let mut status = ("unpaid".to_string(), None);
    for transfer in app.store.transfers_by_reference(&reference).await? {
        match transfer.state {
            crate::transfers::TransferState::Completed => {
                return Ok(("paid".into(), Some(transfer.id)));
            }
            state if !state.is_final() => status = ("in_progress".into(), Some(transfer.id)),
            _ => {
                if status.0 == "unpaid" {
                    status.1 = Some(transfer.id);
                }
            }
        }
    }
    Ok(status)
}

/// Fills in each payment's status and each statement's `paid`.
async fn with_payment_status(
    app: &App,
    mut views: Vec<StatementView>,
) -> Result<Vec<StatementView>, Problem> {
    for view in &mut views {
        let mut all_paid = true;
        for payment in &mut view.payments {
            let (status, transfer) = payment_status(
                app,
                &view.close_id,
                &view.currency,
                &payment.payer,
                &payment.payee,
            )
            .await?;
            all_paid &= status == "paid";
            payment.status = status;
            payment.transfer_id = transfer;
        }
        view.paid = all_paid;
    }
    Ok(views)
}

fn stored_view(s: &StoredStatement) -> Result<StatementView, Problem> {
    serde_json::from_str(&s.body)
        .map_err(|e| Problem::from(crate::store::StoreError::Corrupt(e.to_string())))
}

/// Close a settlement period: net the accepted records and sign a statement
/// per operator and currency.
#[utoipa::path(
    post, path = "/v1/settlement/closes", tag = "settlement",
    request_body = CloseBody,
    responses(
        (status = 201, description = "Closed", body = CloseView),
        (status = 422, description = "Nothing to close, or a missing or bad FX rate", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A record changed meanwhile; close again", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["settlement:admin"])),
)]
pub async fn close_period(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body, _raw): JsonBody<CloseBody>,
) -> Result<(StatusCode, axum::Json<CloseView>), Problem> {
    caller.require(Scope::SettlementAdmin)?;
    let terms = terms_of(&body)?;
    let now = now_ms();
    let records = app
        .store
        .records_to_close(terms.period_start_ms, terms.period_end_ms, now)
        .await?;
    if records.is_empty() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "nothing-to-close",
            "Nothing to close",
            "no accepted record of this period is left to close",
        ));
    }
    // A record resolved by a credit or debit note is owed with the note applied.
    let mut pairs: Vec<([u8; 32], ledger_core::settlement::record::UsageRecord)> =
        Vec::with_capacity(records.len());
    for r in &records {
        let mut record = r.record.clone();
        if let Some(note) = &r.note {
            record.total = note.apply(record.total).ok_or_else(|| {
                Problem::from(crate::store::StoreError::Corrupt(
                    "a note exceeds its record".into(),
                ))
            })?;
        }
        pairs.push((r.hash, record));
    }
    let statements = close(&pairs, &terms).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "close-refused",
            "Close refused",
            e.to_string(),
        )
    })?;
    let close_id = ledger_core::hash::sha256(uuid::Uuid::new_v4().as_bytes());
    let id = format!("0x{}", hex::encode(close_id));
    let key = &app.connector.key;
    let signer = key.address().to_checksum();
    let mut views = Vec::with_capacity(statements.len());
    let mut stored = Vec::with_capacity(statements.len());
    for statement in &statements {
        let signature = key
            .sign_digest(&statement_digest(app.chain_id, &close_id, statement))
            .to_string();
        let view = statement_view(&id, statement, &signature, &signer);
        stored.push(StoredStatement {
            close_id: id.clone(),
            operator: statement.operator,
            currency: statement.currency.to_string(),
            body: serde_json::to_string(&view)
                .map_err(|e| Problem::from(crate::store::StoreError::Corrupt(e.to_string())))?,
            signature,
        });
        views.push(view);
    }
    let close_row = StoredClose {
        id: id.clone(),
        terms: serde_json::to_string(&body)
            .map_err(|e| Problem::from(crate::store::StoreError::Corrupt(e.to_string())))?,
        signer: key.address(),
        created_at_ms: now,
    };
    if !app.store.put_close(&close_row, &stored, &records).await? {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "close-raced",
            "Records changed",
            "a record changed while closing; close again",
        )
        // Sent again, even under the same Idempotency-Key, the close runs
        // again (an answer with Retry-After is not kept for the key).
        .retry_after(1));
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(CloseView {
            close_id: id,
            terms: body,
            record_count: records.len() as u64,
            statements: views,
        }),
    ))
}

/// Get a close with its statements.
#[utoipa::path(
    get, path = "/v1/settlement/closes/{id}", tag = "settlement",
    params(("id" = String, Path, description = "The close id", pattern = r"^0x[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "The close", body = CloseView),
        (status = 404, description = "Unknown", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["settlement:admin"])),
)]
pub async fn get_close(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<CloseView>, Problem> {
    caller.require(Scope::SettlementAdmin)?;
    let close = app
        .store
        .close(&id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no close {id}")))?;
    let terms: CloseBody = serde_json::from_str(&close.terms)
        .map_err(|e| Problem::from(crate::store::StoreError::Corrupt(e.to_string())))?;
    let statements = app.store.statements(Some(&id), None, 10_000).await?;
    let views = statements
        .iter()
        .map(stored_view)
        .collect::<Result<Vec<_>, _>>()?;
    let views = with_payment_status(&app, views).await?;
    let record_count = views.iter().map(|v| v.lines.len() as u64).sum::<u64>() / 2;
    Ok(axum::Json(CloseView {
        close_id: close.id,
        terms,
        record_count,
        statements: views,
    }))
}

/// Query of the statements list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatementParams {
    /// Only this close's.
    #[serde(rename = "closeId")]
    #[param(pattern = r"^0x[0-9a-f]{64}$")]
    close_id: Option<String>,
}

/// The statements of the caller's operators, newest close first (at most 200).
#[utoipa::path(
    get, path = "/v1/settlement/statements", tag = "settlement",
    params(StatementParams),
    responses((status = 200, description = "The statements", body = StatementList)),
    security(("bearer" = ["settlement:read"])),
)]
pub async fn list_statements(
    State(app): State<Arc<App>>,
    caller: Caller,
    uri: axum::http::Uri,
) -> Result<axum::Json<StatementList>, Problem> {
    caller.require(Scope::SettlementRead)?;
    let params: StatementParams = query(uri.query())?;
    let statements = app
        .store
        .statements(params.close_id.as_deref(), Some(&caller.tenant), 200)
        .await?;
    let items = statements
        .iter()
        .map(stored_view)
        .collect::<Result<Vec<_>, _>>()?;
    let items = with_payment_status(&app, items).await?;
    Ok(axum::Json(StatementList { items }))
}

/// A statement payment to make through a transfer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PayStatement {
    /// The close.
    #[schema(pattern = r"^0x[0-9a-f]{64}$")]
    pub close_id: String,
    /// The statement's currency (the asset moved on both legs).
    #[schema(pattern = r"^[A-Z][A-Z0-9-]{0,11}$")]
    pub currency: String,
    /// The paying operator (the caller's).
    #[schema(pattern = r"^[A-Z]{3}[A-Z0-9]{2}$")]
    pub payer: String,
    /// The paid operator.
    #[schema(pattern = r"^[A-Z]{3}[A-Z0-9]{2}$")]
    pub payee: String,
    /// The ledger the payer pays from.
    #[schema(pattern = r"^[1-9][0-9]{0,18}$")]
    pub source_chain_id: String,
    /// The ledger the payee is paid on.
    #[schema(pattern = r"^[1-9][0-9]{0,18}$")]
    pub target_chain_id: String,
    /// The payer's account on the source ledger (it locks there).
    #[schema(pattern = r"^0x[0-9a-fA-F]{40}$")]
    pub sender: String,
    /// The payee's account on the target ledger: its registered address.
    #[schema(pattern = r"^0x[0-9a-fA-F]{40}$")]
    pub recipient: String,
    /// SHA-256 of the preimage the payee holds.
    #[schema(pattern = r"^0x[0-9a-fA-F]{64}$")]
    pub hashlock: String,
}

/// Pay one payment of a statement through a transfer (the payer's tenant).
///
/// Creates a connector transfer of exactly the payment's amount in the
/// statement's currency, referenced `settlement:<closeId>:<currency>:<payer>:<payee>`,
/// and links it to the payment: the statements show the payment `paid` (and
/// themselves `paid` when all their payments are) only once the transfer
/// has completed on every leg. One transfer at a time pays a payment; a new
/// one may be made after a refunded or cancelled one.
#[utoipa::path(
    post, path = "/v1/settlement/payments", tag = "settlement",
    request_body = PayStatement,
    responses(
        (status = 201, description = "The transfer, created and linked", body = crate::transfers::http::TransferView),
        (status = 403, description = "The tenant does not act for the payer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment in the close", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Paid, or a transfer paying it is under way", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The transfer is refused, as `POST /v1/transfers` refuses it: `route-refused`, `route-too-slow`, `limit-exceeded`, `peer-refused`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`peer-unavailable`: the peer gateway of the route did not answer; nothing was created, retry later", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["settlement:write"])),
)]
pub async fn pay_statement(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body, _raw): JsonBody<PayStatement>,
) -> Result<(StatusCode, axum::Json<crate::transfers::http::TransferView>), Problem> {
    use crate::transfers::store::TransferStore as _;
    caller.require(Scope::SettlementWrite)?;
    let tadig = |pointer: &str, text: &str| -> Result<ledger_core::settlement::Tadig, Problem> {
        text.parse()
            .map_err(|e: ledger_core::settlement::BadTadig| {
                Problem::invalid_field(pointer, e.to_string())
            })
    };
    let (payer, payee) = (tadig("/payer", &body.payer)?, tadig("/payee", &body.payee)?);
    let currency = code("/currency", &body.currency)?;
    let parse_chain = |pointer: &str, text: &str| -> Result<ledger_core::ChainId, Problem> {
        let n: u64 =
            decimal(pointer, text).map_err(|e| Problem::invalid_field(&e.pointer, e.reason))?;
        ledger_core::ChainId::new(n).map_err(|e| Problem::invalid_field(pointer, e.to_string()))
    };
    let address = |pointer: &str, text: &str| -> Result<ledger_core::Address, Problem> {
        text.parse()
            .map_err(|e: ledger_core::ParseError| Problem::invalid_field(pointer, e.to_string()))
    };
    let source_chain_id = parse_chain("/sourceChainId", &body.source_chain_id)?;
    let target_chain_id = parse_chain("/targetChainId", &body.target_chain_id)?;
    let sender = address("/sender", &body.sender)?;
    let recipient = address("/recipient", &body.recipient)?;
    let hashlock: ledger_core::Hashlock = body
        .hashlock
        .parse()
        .map_err(|e: ledger_core::ParseError| Problem::invalid_field("/hashlock", e.to_string()))?;
    let operator = app.store.operator(payer).await?;
    if operator.is_none_or(|o| o.tenant != caller.tenant) {
        return Err(Problem::forbidden(format!(
            "this tenant does not act for {payer}"
        )));
    }
    // The payee is paid at its registered address, never where the payer says.
    if let Some(payee_operator) = app.store.operator(payee).await?
        && payee_operator.address != recipient
    {
        return Err(Problem::invalid_field(
            "/recipient",
            format!(
                "a statement payment goes to the payee's registered address {}",
                payee_operator.address
            ),
        ));
    }
    let not_found = || {
        Problem::not_found(format!(
            "close {} has no payment {payer} -> {payee} in {currency}",
            body.close_id
        ))
    };
    let statements = app
        .store
        .statements(Some(&body.close_id), Some(&caller.tenant), 10_000)
        .await?;
    let statement = statements
        .iter()
        .find(|s| s.operator == payer && s.currency == currency.as_str())
        .ok_or_else(not_found)?;
    let amount: u128 = stored_view(statement)?
        .payments
        .iter()
        .find(|p| p.payer == payer.as_str() && p.payee == payee.as_str())
        .ok_or_else(not_found)?
        .amount
        .parse()
        .map_err(|_| Problem::from(crate::store::StoreError::Corrupt("statement amount".into())))?;
    let (status, transfer) = payment_status(
        &app,
        &body.close_id,
        currency.as_str(),
        payer.as_str(),
        payee.as_str(),
    )
    .await?;
    if status != "unpaid" {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            if status == "paid" {
                "payment-made"
            } else {
                "payment-in-progress"
            },
            "Payment not open",
            format!(
                "the payment is {status} (transfer {})",
                transfer.unwrap_or_default()
            ),
        ));
    }
    let request = crate::transfers::TransferRequest {
        kind: crate::transfers::TransferKind::Connector,
        source_chain_id,
        target_chain_id,
        source_asset: currency,
        target_asset: currency,
        amount: ledger_core::Amount::from_minor_units(amount),
        target_amount: ledger_core::Amount::from_minor_units(amount),
        sender,
        recipient,
        hashlock,
        reference: Some(payment_reference(
            &body.close_id,
            currency.as_str(),
            payer.as_str(),
            payee.as_str(),
        )),
    };
    let transfer = crate::transfers::create(&app, &app.connector, &caller.tenant, &request)
        .await
        .map_err(|error| match error {
            // The hashlock, or the index allowing one open transfer per
            // payment (migration 0010): a concurrent or retried request.
            crate::transfers::CreateError::HashlockInUse => Problem::new(
                StatusCode::CONFLICT,
                "payment-in-progress",
                "Payment not open",
                "a transfer paying this payment exists already, or the hashlock is in use",
            ),
            // Everything else as `POST /v1/transfers` answers it (an
            // unreachable peer is a 503 to retry, not a refusal).
            other => crate::transfers::http::create_problem(other),
        })?;
    app.store
        .put_payment(&PaymentLink {
            transfer_id: transfer.id.clone(),
            close_id: body.close_id.clone(),
            currency: currency.to_string(),
            payer,
            payee,
            created_at_ms: now_ms(),
        })
        .await?;
    let events = app.store.transfer_events(&transfer.id).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(crate::transfers::http::view(&transfer, &events)),
    ))
}
