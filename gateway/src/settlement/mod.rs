//! Roaming settlement at the gateway: the operator registry, versioned
//! agreements, and usage records with their workflow. The money rules
//! (validation, netting, the EIP-712 types) are `ledger_core::settlement`;
//! this module owns who may do what, the workflow, persistence
//! ([`store`]) and the API ([`http`]). Wire formats: `docs/settlement.md`.
//!
//! **Workflow.** The sender (serving operator) submits a record with its
//! EIP-712 signature: `submitted`, with a deadline `settlement.dispute_window_ms`
//! later. Before the deadline the recipient (home operator) either accepts
//! it with its EIP-712 counter-signature (`accepted`) or disputes it with a
//! signed reason, disputed amount and evidence hash (`disputed`). A disputed
//! record is resolved by a corrected record from the sender that names it
//! in `replaces` and takes its sequence number: the disputed one becomes
//! `superseded`, the correction starts as `submitted`.
//!
//! **Anchoring.** An accepted record is anchored on the gateway's primary
//! built-in ledger: an `Anchor` transaction from the gateway's account with
//! `documentHash` = the record hash and the two operators' addresses as
//! parties. The signed transaction is written to the record before it is
//! submitted (write-ahead) and resubmitted unchanged after a crash, by the
//! anchorer task, which takes up every accepted record not yet anchored.
//! `GET /v1/settlement/records/{hash}/anchor` gives the transaction with
//! its inclusion proof under the signed block header, which `ledger-core`
//! checks offline.
//!
//! **Tenants.** Each operator is acted for by one API tenant. A tenant sees
//! the records its operators are party to (404 for the others); only the
//! sender's tenant submits, only the recipient's accepts or disputes (403
//! for the other party). The registry and agreements are managed with the
//! `settlement:admin` scope.

pub mod close;
pub mod http;
pub mod import;
pub mod store;

use std::collections::BTreeMap;
use std::time::Duration;

use ledger_core::settlement::record::{Agreement, Rate, ServiceLine, UsageRecord};
use ledger_core::settlement::{Service, Tadig};
use ledger_core::{Address, AssetCode, Outcome, Rejection, Signature, Transaction, TxBody};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::dto::SignedTransactionDto;
use crate::sequencer::now_ms;
use crate::store::{LedgerStore, StoreError};
use store::SettlementStore;

/// An operator: its TADIG code, name, signing address and API tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// TADIG code.
    pub tadig: Tadig,
    /// Name.
    pub name: String,
    /// The address whose EIP-712 signatures are the operator's.
    pub address: Address,
    /// The API tenant that acts for the operator.
    pub tenant: String,
    /// Registered (ms).
    pub created_at_ms: u64,
}

/// Where a usage record stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordState {
    /// Awaiting the recipient's answer.
    Submitted,
    /// Counter-signed by the recipient.
    Accepted,
    /// Disputed by the recipient.
    Disputed,
    /// Replaced by a corrected record.
    Superseded,
}

impl RecordState {
    /// The name on the wire and in the database.
    pub fn name(self) -> &'static str {
        match self {
            RecordState::Submitted => "submitted",
            RecordState::Accepted => "accepted",
            RecordState::Disputed => "disputed",
            RecordState::Superseded => "superseded",
        }
    }

    /// The state with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            RecordState::Submitted,
            RecordState::Accepted,
            RecordState::Disputed,
            RecordState::Superseded,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// A rate on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateBody {
    /// Minor units.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,38})$")]
    pub price: String,
    /// Per this many units of the service (at most 2^64-1).
    #[schema(pattern = r"^[1-9][0-9]{0,19}$")]
    pub per: String,
    /// In an agreement: this service's own discount in basis points (the
    /// discount is then computed line by line; docs/settlement.md).
    /// Absent in a record's line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 10000)]
    pub discount_bps: Option<u16>,
}

/// One service line on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceLineBody {
    /// `voice_mo`, `voice_mt` (seconds), `sms` (messages), `data` (kilobytes).
    #[schema(pattern = r"^(voice_mo|voice_mt|sms|data)$")]
    pub service: String,
    /// Units used (at most 2^64-1).
    #[schema(pattern = r"^(0|[1-9][0-9]{0,19})$")]
    pub quantity: String,
    /// The rate applied.
    pub rate: RateBody,
    /// Minor units: quantity × price / per, rounded half up.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,38})$")]
    pub charge: String,
}

/// A usage record on the wire: the EIP-712 `UsageRecord` message, with
/// integers as decimal strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UsageRecordBody {
    /// The serving (visited) operator's TADIG code.
    #[schema(pattern = r"^[A-Z]{3}[A-Z0-9]{2}$")]
    pub sender: String,
    /// The home operator's TADIG code.
    #[schema(pattern = r"^[A-Z]{3}[A-Z0-9]{2}$")]
    pub recipient: String,
    /// From 1 per sender and recipient, without gaps.
    #[schema(pattern = r"^[1-9][0-9]{0,18}$")]
    pub sequence: String,
    /// Period start, ms since the Unix epoch (inclusive).
    #[schema(pattern = r"^(0|[1-9][0-9]{0,18})$")]
    pub period_start_ms: String,
    /// Period end, ms (exclusive).
    #[schema(pattern = r"^(0|[1-9][0-9]{0,18})$")]
    pub period_end_ms: String,
    /// The currency (an asset code).
    #[schema(pattern = r"^[A-Z][A-Z0-9-]{0,11}$")]
    pub currency: String,
    /// The agreement version applied.
    #[schema(format = Int64, minimum = 1, maximum = 4294967295_u64)]
    pub agreement_version: u32,
    /// One line per service.
    #[schema(max_items = 4)]
    pub lines: Vec<ServiceLineBody>,
    /// The sum of the charges.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,38})$")]
    pub charges_total: String,
    /// The agreement's discount on `chargesTotal`.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,38})$")]
    pub discount: String,
    /// `chargesTotal − discount`.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,38})$")]
    pub total: String,
}

/// A wire field that does not parse: its JSON pointer and why.
#[derive(Debug, thiserror::Error)]
#[error("{pointer}: {reason}")]
pub struct FieldError {
    /// The JSON pointer.
    pub pointer: String,
    /// Why.
    pub reason: String,
}

fn parse<T: std::str::FromStr>(pointer: &str, text: &str) -> Result<T, FieldError>
where
    T::Err: std::fmt::Display,
{
    // Decimal strings only: no sign, no leading zeros, no spaces.
    if text.is_empty() || text.trim() != text {
        return Err(FieldError {
            pointer: pointer.into(),
            reason: "must not be empty or padded".into(),
        });
    }
    text.parse::<T>().map_err(|e| FieldError {
        pointer: pointer.into(),
        reason: e.to_string(),
    })
}

pub(crate) fn decimal<T: std::str::FromStr>(pointer: &str, text: &str) -> Result<T, FieldError>
where
    T::Err: std::fmt::Display,
{
    if text.starts_with('+') || (text.len() > 1 && text.starts_with('0')) {
        return Err(FieldError {
            pointer: pointer.into(),
            reason: "must be a decimal integer without sign or leading zeros".into(),
        });
    }
    parse(pointer, text)
}

/// A decimal integer the store keeps in a signed 64-bit column (a sequence
/// number or a time in ms): at most 2^63-1, as every such field of the API
/// (`crate::dto::STORED_INTEGER_MAX`). A larger value is the caller's error,
/// refused here, not a failed write later.
pub(crate) fn stored_decimal(pointer: &str, text: &str) -> Result<u64, FieldError> {
    let value: u64 = decimal(pointer, text)?;
    if value > crate::dto::STORED_INTEGER_MAX {
        return Err(FieldError {
            pointer: pointer.into(),
            reason: format!("must be at most {}", crate::dto::STORED_INTEGER_MAX),
        });
    }
    Ok(value)
}

impl UsageRecordBody {
    /// The record, every field checked.
    pub fn to_domain(&self) -> Result<UsageRecord, FieldError> {
        let mut lines = Vec::with_capacity(self.lines.len());
        for (i, line) in self.lines.iter().enumerate() {
            let at = |field: &str| format!("/lines/{i}/{field}");
            if line.rate.discount_bps.is_some() {
                return Err(FieldError {
                    pointer: at("rate/discountBps"),
                    reason: "discounts belong to agreements; a record states its discount once"
                        .into(),
                });
            }
            lines.push(ServiceLine {
                service: parse::<Service>(&at("service"), &line.service)?,
                quantity: decimal(&at("quantity"), &line.quantity)?,
                rate: Rate {
                    price: decimal(&at("rate/price"), &line.rate.price)?,
                    per: decimal(&at("rate/per"), &line.rate.per)?,
                },
                charge: decimal(&at("charge"), &line.charge)?,
            });
        }
        if lines.len() > Service::ALL.len() {
            return Err(FieldError {
                pointer: "/lines".into(),
                reason: "at most one line per service".into(),
            });
        }
        Ok(UsageRecord {
            sender: parse("/sender", &self.sender)?,
            recipient: parse("/recipient", &self.recipient)?,
            sequence: stored_decimal("/sequence", &self.sequence)?,
            period_start_ms: stored_decimal("/periodStartMs", &self.period_start_ms)?,
            period_end_ms: stored_decimal("/periodEndMs", &self.period_end_ms)?,
            currency: parse::<AssetCode>("/currency", &self.currency)?,
            agreement_version: self.agreement_version,
            lines,
            charges_total: decimal("/chargesTotal", &self.charges_total)?,
            discount: decimal("/discount", &self.discount)?,
            total: decimal("/total", &self.total)?,
        })
    }

    /// The wire form of `record`.
    pub fn from_domain(record: &UsageRecord) -> Self {
        Self {
            sender: record.sender.to_string(),
            recipient: record.recipient.to_string(),
            sequence: record.sequence.to_string(),
            period_start_ms: record.period_start_ms.to_string(),
            period_end_ms: record.period_end_ms.to_string(),
            currency: record.currency.to_string(),
            agreement_version: record.agreement_version,
            lines: record
                .lines
                .iter()
                .map(|l| ServiceLineBody {
                    service: l.service.name().into(),
                    quantity: l.quantity.to_string(),
                    rate: RateBody {
                        price: l.rate.price.to_string(),
                        per: l.rate.per.to_string(),
                        discount_bps: None,
                    },
                    charge: l.charge.to_string(),
                })
                .collect(),
            charges_total: record.charges_total.to_string(),
            discount: record.discount.to_string(),
            total: record.total.to_string(),
        }
    }
}

/// A dispute as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisputeBody {
    /// Why, in words (1 to 1,000 characters).
    pub reason: String,
    /// Minor units of the total disputed.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,38})$")]
    pub disputed_amount: String,
    /// SHA-256 of the evidence document (`0x` + 64 hex digits; zeros for none).
    #[schema(pattern = r"^0x[0-9a-f]{64}$")]
    pub evidence_hash: String,
    /// The recipient's EIP-712 signature of the `RecordDispute`.
    #[schema(pattern = r"^0x[0-9a-fA-F]{130}$")]
    pub signature: String,
    /// When it was recorded (ms).
    #[serde(default)]
    #[schema(pattern = r"^(0|[1-9][0-9]{0,18})$")]
    pub disputed_at_ms: String,
}

/// A credit or debit note resolving a dispute: issued and signed by the
/// sender, accepted when the recipient signs the same `RecordNote`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NoteBody {
    /// `credit` (the total owed is lowered by `amount`) or `debit` (raised).
    #[schema(pattern = r"^(credit|debit)$")]
    pub kind: String,
    /// Minor units.
    #[schema(pattern = r"^(0|[1-9][0-9]{0,38})$")]
    pub amount: String,
    /// Why (1 to 1,000 characters).
    pub reason: String,
    /// The sender's EIP-712 signature of the `RecordNote`.
    pub sender_signature: String,
    /// The recipient's signature of the same `RecordNote`, once accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_signature: Option<String>,
}

impl NoteBody {
    /// What the recipient owes with this note applied to `total` (`None`
    /// for a credit larger than the total, or an overflow).
    pub fn apply(&self, total: u128) -> Option<u128> {
        let amount: u128 = self.amount.parse().ok()?;
        match self.kind.as_str() {
            "credit" => total.checked_sub(amount),
            "debit" => total.checked_add(amount),
            _ => None,
        }
    }
}

/// A usage record as the gateway holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// `hashStruct(UsageRecord)`: its identity.
    pub hash: [u8; 32],
    /// The record.
    pub record: UsageRecord,
    /// The sender's signature.
    pub sender_signature: Signature,
    /// Where it stands.
    pub state: RecordState,
    /// Submitted (ms).
    pub submitted_at_ms: u64,
    /// The recipient answers before this (ms).
    pub deadline_ms: u64,
    /// The disputed record this one corrects.
    pub replaces: Option<[u8; 32]>,
    /// The recipient's acceptance signature.
    pub acceptance_signature: Option<Signature>,
    /// Accepted (ms).
    pub accepted_at_ms: Option<u64>,
    /// The dispute.
    pub dispute: Option<DisputeBody>,
    /// The credit or debit note resolving the dispute.
    pub note: Option<NoteBody>,
    /// The anchoring transaction (written ahead of its submission).
    pub anchor: Option<AnchorTx>,
    /// True once the anchoring transaction is committed.
    pub anchored: bool,
    /// Last change (ms).
    pub updated_at_ms: u64,
    /// Optimistic-concurrency version.
    pub version: i64,
}

/// A record's anchoring transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnchorTx {
    /// The ledger.
    pub chain_id: ledger_core::ChainId,
    /// The transaction's hash.
    pub tx_hash: ledger_core::TxHash,
    /// The signed transaction (wire JSON).
    pub signed_tx: String,
}

/// The agreement on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgreementBody {
    /// The charging (serving) operator.
    #[schema(pattern = r"^[A-Z]{3}[A-Z0-9]{2}$")]
    pub sender: String,
    /// The charged (home) operator.
    #[schema(pattern = r"^[A-Z]{3}[A-Z0-9]{2}$")]
    pub recipient: String,
    /// Version: the next after the latest for the two operators and the
    /// currency (1 for the first).
    #[schema(format = Int64, minimum = 1, maximum = 4294967295_u64)]
    pub version: u32,
    /// The currency.
    #[schema(pattern = r"^[A-Z][A-Z0-9-]{0,11}$")]
    pub currency: String,
    /// Valid from (ms, inclusive).
    #[schema(pattern = r"^(0|[1-9][0-9]{0,18})$")]
    pub valid_from_ms: String,
    /// Valid until (ms, exclusive).
    #[schema(pattern = r"^(0|[1-9][0-9]{0,18})$")]
    pub valid_until_ms: String,
    /// The rate of each service priced, by service name: `voice_mo`,
    /// `voice_mt`, `sms` or `data` (any other name is a 400).
    pub rates: BTreeMap<String, RateBody>,
    /// Discount on the sum of the charges, basis points.
    #[schema(minimum = 0, maximum = 10000)]
    pub discount_bps: u16,
}

impl AgreementBody {
    /// The agreement, every field checked (its rules by [`Agreement::check`]).
    pub fn to_domain(&self) -> Result<Agreement, FieldError> {
        let mut rates = BTreeMap::new();
        let mut service_discount_bps = BTreeMap::new();
        for (name, rate) in &self.rates {
            let at = |field: &str| format!("/rates/{name}/{field}");
            let service = parse::<Service>(&format!("/rates/{name}"), name)?;
            if let Some(bps) = rate.discount_bps {
                service_discount_bps.insert(service, bps);
            }
            rates.insert(
                service,
                Rate {
                    price: decimal(&at("price"), &rate.price)?,
                    per: decimal(&at("per"), &rate.per)?,
                },
            );
        }
        Ok(Agreement {
            sender: parse("/sender", &self.sender)?,
            recipient: parse("/recipient", &self.recipient)?,
            version: self.version,
            currency: parse("/currency", &self.currency)?,
            valid_from_ms: stored_decimal("/validFromMs", &self.valid_from_ms)?,
            valid_until_ms: stored_decimal("/validUntilMs", &self.valid_until_ms)?,
            rates,
            discount_bps: self.discount_bps,
            service_discount_bps,
        })
    }

    /// The wire form of `agreement`.
    pub fn from_domain(a: &Agreement) -> Self {
        Self {
            sender: a.sender.to_string(),
            recipient: a.recipient.to_string(),
            version: a.version,
            currency: a.currency.to_string(),
            valid_from_ms: a.valid_from_ms.to_string(),
            valid_until_ms: a.valid_until_ms.to_string(),
            rates: a
                .rates
                .iter()
                .map(|(s, r)| {
                    (
                        s.name().to_string(),
                        RateBody {
                            price: r.price.to_string(),
                            per: r.per.to_string(),
                            discount_bps: a.service_discount_bps.get(s).copied(),
                        },
                    )
                })
                .collect(),
            discount_bps: a.discount_bps,
        }
    }
}

/// Anchors `record` on the primary ledger, resubmitting its written-ahead
/// transaction if there is one (see the module docs); true once committed.
pub async fn anchor(app: &App, record: &StoredRecord) -> Result<bool, StoreError> {
    if record.anchored {
        return Ok(true);
    }
    let chain = app.chain_id;
    let Some(sequencer) = app.producer.sequencer() else {
        // Only the block producer anchors (another replica's anchorer does).
        return Ok(false);
    };
    let key = &app.connector.key;
    let lock = app.account_lock(chain);
    let _serial = lock.lock().await;
    let account = app.store.account(chain, key.address()).await?;
    let mut signed = None;
    if let Some(anchor) = &record.anchor {
        if app
            .store
            .transaction(chain, anchor.tx_hash)
            .await?
            .is_some()
        {
            return mark_anchored(app, record).await;
        }
        let dto: SignedTransactionDto = serde_json::from_str(&anchor.signed_tx)
            .map_err(|e| StoreError::Corrupt(format!("anchor transaction: {e}")))?;
        let tx = dto
            .to_domain()
            .map_err(|e| StoreError::Corrupt(format!("anchor transaction: {e}")))?;
        // Resubmitted unchanged unless its nonce went to something else.
        if tx.transaction.nonce >= account.next_nonce {
            signed = Some(tx);
        }
    }
    let mut current = record.clone();
    let signed = match signed {
        Some(signed) => signed,
        None => {
            let operators = (
                app.store.operator(record.record.sender).await?,
                app.store.operator(record.record.recipient).await?,
            );
            let (Some(sender), Some(recipient)) = operators else {
                return Err(StoreError::Corrupt("a record's operator is missing".into()));
            };
            let parties = ledger_core::Parties::new(if sender.address == recipient.address {
                vec![sender.address]
            } else {
                vec![sender.address, recipient.address]
            })
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let tx = Transaction {
                chain_id: chain,
                from: key.address(),
                nonce: account.next_nonce,
                body: TxBody::Anchor {
                    document_hash: ledger_core::DocumentHash::from_bytes(record.hash),
                    parties,
                },
            };
            let signed = tx
                .sign(key)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            current.anchor = Some(AnchorTx {
                chain_id: chain,
                tx_hash: signed.transaction.hash(),
                signed_tx: serde_json::to_string(&SignedTransactionDto::from_domain(&signed))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            });
            current.updated_at_ms = now_ms();
            current.version = record.version + 1;
            if !app.store.update_record(&current, record.version).await? {
                // Changed meanwhile: the next pass takes it up.
                return Ok(false);
            }
            signed
        }
    };
    let verified = signed
        .verify()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let hash = verified.hash();
    match sequencer.submit(vec![verified]).await {
        Ok(receipt) => match receipt.outcomes.first() {
            Some(Outcome::Applied) => mark_anchored(app, &current).await,
            Some(Outcome::Rejected(Rejection::NonceReplay { .. }))
                if app.store.transaction(chain, hash).await?.is_some() =>
            {
                mark_anchored(app, &current).await
            }
            Some(Outcome::Rejected(rejection)) => {
                tracing::warn!(record = %hex::encode(record.hash), %rejection, "anchor refused; retried");
                Ok(false)
            }
            None => Ok(false),
        },
        Err(error) => {
            tracing::warn!(record = %hex::encode(record.hash), %error, "anchor not submitted; retried");
            Ok(false)
        }
    }
}

async fn mark_anchored(app: &App, record: &StoredRecord) -> Result<bool, StoreError> {
    let next = StoredRecord {
        anchored: true,
        updated_at_ms: now_ms(),
        version: record.version + 1,
        ..record.clone()
    };
    app.store.update_record(&next, record.version).await
}

/// Anchors accepted records not yet anchored, every second, until the
/// process ends (takes up what a crash interrupted).
pub fn spawn_anchorer(app: std::sync::Arc<App>) {
    tokio::spawn(async move {
        loop {
            match app.store.records_to_anchor(64).await {
                Ok(records) => {
                    for record in records {
                        if let Err(error) = anchor(&app, &record).await {
                            tracing::warn!(%error, "anchoring a record failed; retried");
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot list records to anchor"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}
