//! Bulk import of usage records: `POST /v1/settlement/records/import`
//! (CSV or NDJSON, streamed) and the `lockgate records import FILE` command
//! that uploads a file to it.
//!
//! The body is read as it arrives, never whole: rows are cut into batches of
//! [`BATCH_ROWS`], each batch's signatures are recovered in parallel, every
//! row is checked exactly as `POST /v1/settlement/records` checks one (the
//! caller acts for the sender, the signature is the sender's, the record
//! obeys its agreement, its sequence number comes next), and the good rows
//! of a batch are stored in one database transaction. A bad row is reported
//! with its line number, problem type and reason and does not stop the
//! import. Memory stays bounded by one batch and the per-pair caches.
//!
//! **CSV** (`text/csv`): a header line, then one record per line, these
//! columns in this order, no quoting (no value contains a comma):
//!
//! ```text
//! sender,recipient,sequence,periodStartMs,periodEndMs,currency,agreementVersion,voiceMoQuantity,voiceMoPrice,voiceMoPer,voiceMoCharge,voiceMtQuantity,voiceMtPrice,voiceMtPer,voiceMtCharge,smsQuantity,smsPrice,smsPer,smsCharge,dataQuantity,dataPrice,dataPer,dataCharge,chargesTotal,discount,total,signature
//! ```
//!
//! A service whose four cells are empty has no line; the lines of a CSV
//! record are in this order (voice_mo, voice_mt, sms, data), which is the
//! order the sender signs them in.
//!
//! **NDJSON** (`application/x-ndjson`): one `SubmitRecord` object per line
//! (`{"record": {...}, "signature": "0x..."}`), as `POST .../records` takes.
//!
//! Blank lines are skipped. With `?dryRun=true` every row is checked but
//! nothing is stored (the benchmark's baseline).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::StreamExt as _;
use ledger_core::settlement::Tadig;
use ledger_core::settlement::record::{Agreement, Rate, ServiceLine, UsageRecord, check_sequence};
use ledger_core::settlement::typed::{record_digest, record_hash};
use ledger_core::signature::recover_signer;
use ledger_core::{Address, AssetCode, Signature};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::http::{SubmitRecord, record_problem};
use super::store::{RecordPut, SettlementStore};
use super::{Operator, RecordState, StoredRecord};
use crate::api::query;
use crate::app::App;
use crate::auth::{Caller, Scope};
use crate::problem::Problem;
use crate::sequencer::now_ms;

/// Rows checked and stored together.
pub const BATCH_ROWS: usize = 1_000;

/// The longest line accepted (bytes).
pub const LINE_BYTES_MAX: usize = 64 * 1024;

/// Errors listed in a report (the rest are counted).
pub const ERRORS_LISTED_MAX: usize = 1_000;

/// The CSV header, exactly.
pub const CSV_HEADER: &str = "sender,recipient,sequence,periodStartMs,periodEndMs,currency,agreementVersion,voiceMoQuantity,voiceMoPrice,voiceMoPer,voiceMoCharge,voiceMtQuantity,voiceMtPrice,voiceMtPer,voiceMtCharge,smsQuantity,smsPrice,smsPer,smsCharge,dataQuantity,dataPrice,dataPer,dataCharge,chargesTotal,discount,total,signature";

/// One refused row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RowError {
    /// Its line in the body (1 is the first line; the CSV header is line 1).
    #[schema(minimum = 1, maximum = 9007199254740991_u64)]
    pub line: u64,
    /// The problem type's slug (`record-total-mismatch`, `bad-signature`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Why.
    pub detail: String,
}

/// What an import came to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// Rows read (not counting the header and blank lines).
    #[schema(minimum = 0, maximum = 9007199254740991_u64)]
    pub rows: u64,
    /// Rows stored (checked only, with `dryRun`).
    #[schema(minimum = 0, maximum = 9007199254740991_u64)]
    pub imported: u64,
    /// Rows refused.
    #[schema(minimum = 0, maximum = 9007199254740991_u64)]
    pub refused: u64,
    /// The first refused rows, in line order.
    pub errors: Vec<RowError>,
    /// True when more rows were refused than listed.
    pub errors_truncated: bool,
    /// True when nothing was stored on purpose (`dryRun`).
    pub dry_run: bool,
}

impl ImportReport {
    fn refuse(&mut self, line: u64, kind: &str, detail: impl Into<String>) {
        self.refused += 1;
        if self.errors.len() < ERRORS_LISTED_MAX {
            self.errors.push(RowError {
                line,
                kind: kind.into(),
                detail: detail.into(),
            });
        } else {
            self.errors_truncated = true;
        }
    }
}

/// The body's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV with [`CSV_HEADER`].
    Csv,
    /// One JSON `SubmitRecord` per line.
    Ndjson,
}

/// A row parsed, before its checks.
struct Row {
    line: u64,
    record: UsageRecord,
    signature: Signature,
}

fn cell<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    super::decimal::<T>(name, text).map_err(|e| e.to_string())
}

/// A cell the store keeps in a signed 64-bit column (a sequence number or a
/// time): at most 2^63-1, as through `POST /v1/settlement/records`.
fn stored_cell(name: &str, text: &str) -> Result<u64, String> {
    super::stored_decimal(name, text).map_err(|e| e.to_string())
}

/// Parses one CSV data line.
fn csv_row(line: &str) -> Result<(UsageRecord, Signature), String> {
    if line.contains('"') {
        return Err("quoted fields are not accepted".into());
    }
    let cells: Vec<&str> = line.split(',').collect();
    if cells.len() != 27 {
        return Err(format!("27 columns expected, found {}", cells.len()));
    }
    let services = [
        ledger_core::settlement::Service::VoiceMo,
        ledger_core::settlement::Service::VoiceMt,
        ledger_core::settlement::Service::Sms,
        ledger_core::settlement::Service::Data,
    ];
    let mut lines = Vec::new();
    for (i, service) in services.into_iter().enumerate() {
        let group = &cells[7 + 4 * i..11 + 4 * i];
        if group.iter().all(|c| c.is_empty()) {
            continue;
        }
        let name = service.name();
        lines.push(ServiceLine {
            service,
            quantity: cell(&format!("{name} quantity"), group[0])?,
            rate: Rate {
                price: cell(&format!("{name} price"), group[1])?,
                per: cell(&format!("{name} per"), group[2])?,
            },
            charge: cell(&format!("{name} charge"), group[3])?,
        });
    }
    let record = UsageRecord {
        sender: cells[0]
            .parse()
            .map_err(|e: ledger_core::settlement::BadTadig| e.to_string())?,
        recipient: cells[1]
            .parse()
            .map_err(|e: ledger_core::settlement::BadTadig| e.to_string())?,
        sequence: stored_cell("sequence", cells[2])?,
        period_start_ms: stored_cell("periodStartMs", cells[3])?,
        period_end_ms: stored_cell("periodEndMs", cells[4])?,
        currency: AssetCode::new(cells[5]).map_err(|e| format!("currency: {e}"))?,
        agreement_version: cell("agreementVersion", cells[6])?,
        lines,
        charges_total: cell("chargesTotal", cells[23])?,
        discount: cell("discount", cells[24])?,
        total: cell("total", cells[25])?,
    };
    let signature = cells[26]
        .parse::<Signature>()
        .map_err(|e| format!("signature: {e}"))?;
    Ok((record, signature))
}

/// The CSV line of `record` signed with `signature` (for generators and tests).
pub fn csv_line(record: &UsageRecord, signature: &Signature) -> String {
    let mut cells = vec![
        record.sender.to_string(),
        record.recipient.to_string(),
        record.sequence.to_string(),
        record.period_start_ms.to_string(),
        record.period_end_ms.to_string(),
        record.currency.to_string(),
        record.agreement_version.to_string(),
    ];
    for service in ledger_core::settlement::Service::ALL {
        match record.lines.iter().find(|l| l.service == service) {
            Some(l) => cells.extend([
                l.quantity.to_string(),
                l.rate.price.to_string(),
                l.rate.per.to_string(),
                l.charge.to_string(),
            ]),
            None => cells.extend(std::iter::repeat_n(String::new(), 4)),
        }
    }
    cells.extend([
        record.charges_total.to_string(),
        record.discount.to_string(),
        record.total.to_string(),
        signature.to_string(),
    ]);
    cells.join(",")
}

fn ndjson_row(line: &str) -> Result<(UsageRecord, Signature), String> {
    let submit: SubmitRecord =
        serde_json::from_str(line).map_err(|e| format!("not a SubmitRecord: {e}"))?;
    if submit.replaces.is_some() {
        return Err("corrections (replaces) are submitted one by one, not imported".into());
    }
    let record = submit.record.to_domain().map_err(|e| e.to_string())?;
    let signature = submit
        .signature
        .parse::<Signature>()
        .map_err(|e| format!("signature: {e}"))?;
    Ok((record, signature))
}

/// What a batch's checks need to remember across batches.
struct Context {
    tenant: String,
    chain_id: ledger_core::ChainId,
    now_ms: u64,
    deadline_ms: u64,
    dry_run: bool,
    operators: HashMap<Tadig, Option<Operator>>,
    agreements: HashMap<(Tadig, Tadig), Vec<Agreement>>,
    /// The highest sequence number per pair, as far as this import knows.
    last: HashMap<(Tadig, Tadig), Option<u64>>,
}

async fn operator(app: &App, ctx: &mut Context, code: Tadig) -> Result<Option<Operator>, Problem> {
    if let Some(known) = ctx.operators.get(&code) {
        return Ok(known.clone());
    }
    let found = app.store.operator(code).await?;
    ctx.operators.insert(code, found.clone());
    Ok(found)
}

/// Checks and stores one batch.
async fn batch(
    app: &App,
    ctx: &mut Context,
    rows: Vec<Row>,
    report: &mut ImportReport,
) -> Result<(), Problem> {
    // Signatures first, in parallel: the expensive part.
    let chain_id = ctx.chain_id;
    let (rows, signers): (Vec<Row>, Vec<Option<Address>>) =
        tokio::task::spawn_blocking(move || {
            let signers = rows
                .par_iter()
                .map(|row| {
                    recover_signer(&record_digest(chain_id, &row.record), &row.signature).ok()
                })
                .collect();
            (rows, signers)
        })
        .await
        .map_err(|_| Problem::internal())?;
    let mut good: Vec<(u64, StoredRecord)> = Vec::with_capacity(rows.len());
    for (row, signer) in rows.into_iter().zip(signers) {
        let record = &row.record;
        let Some(sender) = operator(app, ctx, record.sender)
            .await?
            .filter(|s| s.tenant == ctx.tenant)
        else {
            report.refuse(
                row.line,
                "forbidden",
                format!("this tenant does not act for {}", record.sender),
            );
            continue;
        };
        if operator(app, ctx, record.recipient).await?.is_none() {
            report.refuse(
                row.line,
                "unknown-operator",
                format!("{} is not registered", record.recipient),
            );
            continue;
        }
        if signer != Some(sender.address) {
            report.refuse(
                row.line,
                "bad-signature",
                format!(
                    "not signed by the sender {} ({})",
                    sender.tadig, sender.address
                ),
            );
            continue;
        }
        let pair = (record.sender, record.recipient);
        if let std::collections::hash_map::Entry::Vacant(slot) = ctx.agreements.entry(pair) {
            slot.insert(app.store.agreements(pair.0, pair.1).await?);
        }
        let agreements = ctx
            .agreements
            .get(&pair)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if let Err(error) = record.validate(agreements, ctx.now_ms) {
            let problem = record_problem(&error);
            report.refuse(row.line, problem.slug(), error.to_string());
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = ctx.last.entry(pair) {
            slot.insert(app.store.last_sequence(pair.0, pair.1).await?);
        }
        let last = ctx.last.get(&pair).copied().flatten();
        if let Err(error) = check_sequence(last, record.sequence) {
            report.refuse(row.line, record_problem(&error).slug(), error.to_string());
            continue;
        }
        ctx.last.insert(pair, Some(record.sequence));
        good.push((
            row.line,
            StoredRecord {
                hash: record_hash(record),
                record: row.record,
                sender_signature: row.signature,
                state: RecordState::Submitted,
                submitted_at_ms: ctx.now_ms,
                deadline_ms: ctx.deadline_ms,
                replaces: None,
                acceptance_signature: None,
                accepted_at_ms: None,
                dispute: None,
                note: None,
                anchor: None,
                anchored: false,
                updated_at_ms: ctx.now_ms,
                version: 0,
            },
        ));
    }
    if ctx.dry_run {
        report.imported += good.len() as u64;
        return Ok(());
    }
    let records: Vec<StoredRecord> = good.iter().map(|(_, r)| r.clone()).collect();
    if app.store.insert_records(&records).await? {
        report.imported += records.len() as u64;
        return Ok(());
    }
    // Something else was stored meanwhile (a concurrent submission, or the
    // same record twice in this batch): one by one, each with its own answer.
    ctx.last.clear();
    for (line, record) in good {
        match app.store.insert_record(&record).await? {
            RecordPut::Created => report.imported += 1,
            RecordPut::Exists => {
                report.refuse(line, "record-exists", "the record was submitted before")
            }
            RecordPut::Sequence(error) => {
                report.refuse(line, record_problem(&error).slug(), error.to_string())
            }
            RecordPut::BadReplacement(reason) => {
                report.refuse(line, "record-bad-replacement", reason)
            }
        }
    }
    Ok(())
}

/// Imports the rows of `body` (see the module docs).
pub async fn import(
    app: &App,
    caller: &Caller,
    format: Format,
    dry_run: bool,
    body: Body,
    bytes_max: u64,
) -> Result<ImportReport, Problem> {
    let now = now_ms();
    let mut ctx = Context {
        tenant: caller.tenant.clone(),
        chain_id: app.chain_id,
        now_ms: now,
        deadline_ms: now.saturating_add(app.config.settlement.dispute_window_ms),
        dry_run,
        operators: HashMap::new(),
        agreements: HashMap::new(),
        last: HashMap::new(),
    };
    let mut report = ImportReport {
        dry_run,
        ..ImportReport::default()
    };
    let mut stream = body.into_data_stream();
    let mut pending: Vec<u8> = Vec::new();
    let mut line_no: u64 = 0;
    let mut received: u64 = 0;
    let mut rows: Vec<Row> = Vec::with_capacity(BATCH_ROWS);
    let mut header_seen = format == Format::Ndjson;
    let mut done = false;
    while !done {
        let chunk = match stream.next().await {
            Some(Ok(chunk)) => chunk,
            Some(Err(error)) => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-body",
                    "Invalid request body",
                    format!("the body broke off after line {line_no}: {error}"),
                ));
            }
            None => {
                done = true;
                axum::body::Bytes::new()
            }
        };
        received += chunk.len() as u64;
        if received > bytes_max {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                format!(
                    "an import is at most limits.import_bytes_max = {bytes_max} bytes; {} rows before line {line_no} were imported",
                    report.imported
                ),
            ));
        }
        pending.extend_from_slice(&chunk);
        if done && !pending.is_empty() && pending.last() != Some(&b'\n') {
            pending.push(b'\n');
        }
        let mut start = 0;
        while let Some(offset) = pending[start..].iter().position(|b| *b == b'\n') {
            let raw = &pending[start..start + offset];
            start += offset + 1;
            line_no += 1;
            let text = match std::str::from_utf8(raw) {
                Ok(text) => text.trim_end_matches('\r'),
                Err(_) => {
                    report.rows += 1;
                    report.refuse(line_no, "invalid-body", "not UTF-8");
                    continue;
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            if !header_seen {
                header_seen = true;
                if text != CSV_HEADER {
                    return Err(Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid-body",
                        "Invalid request body",
                        format!("line 1 must be the header {CSV_HEADER}"),
                    ));
                }
                continue;
            }
            report.rows += 1;
            let parsed = match format {
                Format::Csv => csv_row(text),
                Format::Ndjson => ndjson_row(text),
            };
            match parsed {
                Ok((record, signature)) => rows.push(Row {
                    line: line_no,
                    record,
                    signature,
                }),
                Err(reason) => report.refuse(line_no, "invalid-field", reason),
            }
            if rows.len() == BATCH_ROWS {
                batch(app, &mut ctx, std::mem::take(&mut rows), &mut report).await?;
            }
        }
        pending.drain(..start);
        if pending.len() > LINE_BYTES_MAX {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-body",
                "Invalid request body",
                format!("line {} is longer than {LINE_BYTES_MAX} bytes", line_no + 1),
            ));
        }
    }
    if !rows.is_empty() {
        batch(app, &mut ctx, rows, &mut report).await?;
    }
    report.errors.sort_by_key(|e| e.line);
    Ok(report)
}

/// Query of an import.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// Check every row, store nothing.
    #[serde(rename = "dryRun")]
    dry_run: Option<bool>,
}

/// Import usage records in bulk (the senders' tenant), streamed.
///
/// The body is CSV (`text/csv`) or NDJSON (`application/x-ndjson`), read as
/// it arrives; every row is checked as `POST /v1/settlement/records` checks
/// one, good rows are stored in batches, and refused rows are reported with
/// their line number and problem type without stopping the import (the
/// formats: docs/settlement.md). No `Idempotency-Key`: re-importing a file
/// reports every row already stored as `record-duplicate-sequence`.
#[utoipa::path(
    post, path = "/v1/settlement/records/import", tag = "settlement",
    params(ImportParams),
    request_body(content = String, description = "CSV with the documented header, or NDJSON of SubmitRecord", content_type = "text/csv"),
    responses(
        (status = 200, description = "The import's report", body = ImportReport),
        (status = 400, description = "Not CSV with the header, a line too long, or a broken body", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than limits.import_bytes_max", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither text/csv nor application/x-ndjson", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["settlement:write"])),
)]
pub async fn import_records(
    State(app): State<Arc<App>>,
    caller: Caller,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Body,
) -> Result<axum::Json<ImportReport>, Problem> {
    caller.require(Scope::SettlementWrite)?;
    let params: ImportParams = query(uri.query())?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let format = match media.as_str() {
        "text/csv" => Format::Csv,
        "application/x-ndjson" | "application/jsonl" => Format::Ndjson,
        _ => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "send text/csv or application/x-ndjson",
            ));
        }
    };
    let report = import(
        &app,
        &caller,
        format,
        params.dry_run.unwrap_or(false),
        body,
        app.config.limits.import_bytes_max,
    )
    .await?;
    Ok(axum::Json(report))
}

/// The row parsers, for the fuzz targets in `fuzz/` only (not an API): they
/// are what every line of an untrusted import body goes through.
#[doc(hidden)]
pub mod fuzzing {
    use ledger_core::Signature;
    use ledger_core::settlement::record::UsageRecord;

    /// One CSV data line, as the import parses it.
    pub fn csv_row(line: &str) -> Result<(UsageRecord, Signature), String> {
        super::csv_row(line)
    }

    /// One NDJSON line, as the import parses it.
    pub fn ndjson_row(line: &str) -> Result<(UsageRecord, Signature), String> {
        super::ndjson_row(line)
    }
}
