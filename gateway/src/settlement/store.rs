//! Persistence of settlement: operators, agreements and usage records, one
//! implementation for both dialects, generated like `crate::store`'s.

use std::future::Future;

use ledger_core::settlement::Tadig;
use ledger_core::settlement::record::{Agreement, RecordError, check_sequence};
use ledger_core::{Address, ChainId, Signature, TxHash};

use super::{AgreementBody, AnchorTx, Operator, RecordState, StoredRecord, UsageRecordBody};
use crate::store::{
    AnyStore, PgStore, RowGet, SqliteStore, StoreError, bytes, corrupt, sqlite_sql, to_i64, to_u64,
};

/// What registering an operator came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorPut {
    /// Registered.
    Created,
    /// The TADIG code is registered already (as this).
    Exists(Operator),
}

/// What adding an agreement version came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgreementPut {
    /// Added.
    Created,
    /// Not the next version: this one is.
    VersionNotNext {
        /// The next version.
        expected: u32,
    },
}

/// What submitting a record came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordPut {
    /// Stored.
    Created,
    /// The record (the same content) was submitted before.
    Exists,
    /// Its sequence number does not come next.
    Sequence(RecordError),
    /// The record it corrects is not a disputed record of the same two
    /// operators and sequence number.
    BadReplacement(String),
}

/// The settlement store contract.
pub trait SettlementStore: Send + Sync {
    /// Registers an operator unless its TADIG code is taken.
    fn put_operator(
        &self,
        operator: &Operator,
    ) -> impl Future<Output = Result<OperatorPut, StoreError>> + Send;
    /// An operator.
    fn operator(
        &self,
        tadig: Tadig,
    ) -> impl Future<Output = Result<Option<Operator>, StoreError>> + Send;
    /// Every operator, by TADIG code.
    fn operators(&self) -> impl Future<Output = Result<Vec<Operator>, StoreError>> + Send;
    /// Adds an agreement version if it is the next for its two operators
    /// and currency.
    fn put_agreement(
        &self,
        agreement: &Agreement,
        now_ms: u64,
    ) -> impl Future<Output = Result<AgreementPut, StoreError>> + Send;
    /// The agreements from `sender` to `recipient`, every currency and version.
    fn agreements(
        &self,
        sender: Tadig,
        recipient: Tadig,
    ) -> impl Future<Output = Result<Vec<Agreement>, StoreError>> + Send;
    /// Stores a submitted record: its sequence number must come next (or,
    /// for a correction, it supersedes the disputed record it names, in the
    /// same database transaction).
    fn insert_record(
        &self,
        record: &StoredRecord,
    ) -> impl Future<Output = Result<RecordPut, StoreError>> + Send;
    /// A record.
    fn record(
        &self,
        hash: [u8; 32],
    ) -> impl Future<Output = Result<Option<StoredRecord>, StoreError>> + Send;
    /// Records a tenant's operators are party to, newest first, submitted
    /// before the `(submitted_at_ms, hash)` cursor.
    fn records_of_tenant(
        &self,
        tenant: &str,
        before: Option<(u64, [u8; 32])>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<StoredRecord>, StoreError>> + Send;
    /// Writes `record` (whose version is one more than `expected_version`);
    /// false when another writer changed it first.
    fn update_record(
        &self,
        record: &StoredRecord,
        expected_version: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Links a transfer to the payment `payer` -> `payee` in `currency` of
    /// close `close_id`.
    fn put_payment(
        &self,
        payment: &PaymentLink,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The transfers paying the payments of a close, oldest first.
    fn payments(
        &self,
        close_id: &str,
    ) -> impl Future<Output = Result<Vec<PaymentLink>, StoreError>> + Send;
    /// The highest sequence number from `sender` to `recipient`, if any.
    fn last_sequence(
        &self,
        sender: Tadig,
        recipient: Tadig,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
    /// Stores checked, new (non-correcting) records in one database
    /// transaction; false, with nothing stored, when one of them clashes
    /// with a stored record (hash or live sequence number).
    fn insert_records(
        &self,
        records: &[StoredRecord],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Accepted records not yet anchored.
    fn records_to_anchor(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<StoredRecord>, StoreError>> + Send;
    /// Records a close of `[start_ms, end_ms)` takes: not closed before,
    /// their period within it, and accepted, or submitted with the deadline
    /// passed at `now_ms` (deemed accepted).
    fn records_to_close(
        &self,
        start_ms: u64,
        end_ms: u64,
        now_ms: u64,
    ) -> impl Future<Output = Result<Vec<StoredRecord>, StoreError>> + Send;
    /// Stores a close with its statements and marks its records closed (and
    /// the deemed ones accepted at their deadline), in one database
    /// transaction; false (nothing written) when a record changed meanwhile.
    fn put_close(
        &self,
        close: &StoredClose,
        statements: &[StoredStatement],
        records: &[StoredRecord],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// A close.
    fn close(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<StoredClose>, StoreError>> + Send;
    /// The statements of a close, or of a tenant's operators (newest close
    /// first), at most `limit`.
    fn statements(
        &self,
        close_id: Option<&str>,
        tenant: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<StoredStatement>, StoreError>> + Send;
}

/// A transfer paying one payment of a close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentLink {
    /// The transfer.
    pub transfer_id: String,
    /// The close.
    pub close_id: String,
    /// The statement's currency.
    pub currency: String,
    /// Who pays.
    pub payer: Tadig,
    /// Who is paid.
    pub payee: Tadig,
    /// When linked (ms).
    pub created_at_ms: u64,
}

/// A close as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredClose {
    /// `0x` + 64 hex digits (the EIP-712 `closeId`).
    pub id: String,
    /// Its terms (wire JSON).
    pub terms: String,
    /// The gateway address that signed its statements.
    pub signer: Address,
    /// When (ms).
    pub created_at_ms: u64,
}

/// A statement as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStatement {
    /// Its close.
    pub close_id: String,
    /// The operator.
    pub operator: Tadig,
    /// The currency.
    pub currency: String,
    /// The statement (wire JSON, signature included).
    pub body: String,
    /// The gateway's EIP-712 signature of it.
    pub signature: String,
}

/// The columns of a record (the nullable `accepted_at_ms` read as text in
/// both dialects).
const SELECT_RECORD: &str = "SELECT record_hash, body, sender_signature, state, submitted_at_ms, deadline_ms, replaces, acceptance_signature, CAST(accepted_at_ms AS TEXT) AS accepted_at_text, dispute, note, anchor_chain_id, anchor_tx_hash, anchor_signed_tx, anchored, updated_at_ms, version FROM usage_records";

fn tadig(text: &str) -> Result<Tadig, StoreError> {
    text.parse().map_err(corrupt)
}

fn signature(text: &str) -> Result<Signature, StoreError> {
    text.parse().map_err(corrupt)
}

fn operator_from_row(row: &impl RowGet) -> Result<Operator, StoreError> {
    Ok(Operator {
        tadig: tadig(&row.get_string("tadig")?)?,
        name: row.get_string("name")?,
        address: Address::from_bytes(bytes(row.get_bytes("address")?, "address")?),
        tenant: row.get_string("tenant")?,
        created_at_ms: to_u64(row.get_i64("created_at_ms")?, "time")?,
    })
}

fn agreement_from_row(row: &impl RowGet) -> Result<Agreement, StoreError> {
    let rates: std::collections::BTreeMap<String, super::RateBody> =
        serde_json::from_str(&row.get_string("rates")?).map_err(corrupt)?;
    let body = AgreementBody {
        sender: row.get_string("sender")?,
        recipient: row.get_string("recipient")?,
        version: u32::try_from(row.get_i64("version")?).map_err(corrupt)?,
        currency: row.get_string("currency")?,
        valid_from_ms: to_u64(row.get_i64("valid_from_ms")?, "time")?.to_string(),
        valid_until_ms: to_u64(row.get_i64("valid_until_ms")?, "time")?.to_string(),
        rates,
        discount_bps: u16::try_from(row.get_i64("discount_bps")?).map_err(corrupt)?,
    };
    body.to_domain().map_err(corrupt)
}

fn record_from_row(row: &impl RowGet) -> Result<StoredRecord, StoreError> {
    let body: UsageRecordBody = serde_json::from_str(&row.get_string("body")?).map_err(corrupt)?;
    let time = |column: &str| -> Result<u64, StoreError> { to_u64(row.get_i64(column)?, "time") };
    let anchor = match (
        row.get_opt_bytes("anchor_tx_hash")?,
        row.get_opt_string("anchor_signed_tx")?,
    ) {
        (Some(hash), Some(signed_tx)) => Some(AnchorTx {
            chain_id: ChainId::new(to_u64(row.get_i64("anchor_chain_id")?, "chain id")?)
                .map_err(corrupt)?,
            tx_hash: TxHash::from_bytes(bytes(hash, "anchor_tx_hash")?),
            signed_tx,
        }),
        _ => None,
    };
    Ok(StoredRecord {
        hash: bytes(row.get_bytes("record_hash")?, "record_hash")?,
        record: body.to_domain().map_err(corrupt)?,
        sender_signature: signature(&row.get_string("sender_signature")?)?,
        state: RecordState::from_name(&row.get_string("state")?)
            .ok_or_else(|| corrupt("record state"))?,
        submitted_at_ms: time("submitted_at_ms")?,
        deadline_ms: time("deadline_ms")?,
        replaces: row
            .get_opt_bytes("replaces")?
            .map(|b| bytes(b, "replaces"))
            .transpose()?,
        acceptance_signature: row
            .get_opt_string("acceptance_signature")?
            .map(|s| signature(&s))
            .transpose()?,
        accepted_at_ms: row
            .get_opt_string("accepted_at_text")?
            .map(|text| text.parse::<u64>().map_err(corrupt))
            .transpose()?,
        note: row
            .get_opt_string("note")?
            .map(|d| serde_json::from_str(&d).map_err(corrupt))
            .transpose()?,
        dispute: row
            .get_opt_string("dispute")?
            .map(|d| serde_json::from_str(&d).map_err(corrupt))
            .transpose()?,
        anchor,
        anchored: row.get_i64("anchored")? == 1,
        updated_at_ms: time("updated_at_ms")?,
        version: row.get_i64("version")?,
    })
}

macro_rules! impl_settlement_store {
    ($store:ident, $dialect_pg:expr) => {
        impl $store {
            fn ssql(sql: &'static str) -> &'static str {
                if $dialect_pg { sql } else { sqlite_sql(sql) }
            }

            fn select_record(suffix: &'static str) -> &'static str {
                Self::ssql(crate::store::const_format(SELECT_RECORD, suffix))
            }
        }

        impl SettlementStore for $store {
            async fn put_operator(&self, operator: &Operator) -> Result<OperatorPut, StoreError> {
                let inserted = sqlx::query("INSERT INTO settlement_operators (tadig, name, address, tenant, created_at_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tadig) DO NOTHING")
                    .bind(operator.tadig.as_str())
                    .bind(&operator.name)
                    .bind(operator.address.as_bytes().to_vec())
                    .bind(&operator.tenant)
                    .bind(to_i64(operator.created_at_ms, "time")?)
                    .execute(self.pool())
                    .await?;
                if inserted.rows_affected() == 1 {
                    return Ok(OperatorPut::Created);
                }
                let existing = self.operator(operator.tadig).await?.ok_or_else(|| corrupt("operator vanished"))?;
                Ok(OperatorPut::Exists(existing))
            }

            async fn operator(&self, code: Tadig) -> Result<Option<Operator>, StoreError> {
                let row = sqlx::query("SELECT tadig, name, address, tenant, created_at_ms FROM settlement_operators WHERE tadig = $1")
                    .bind(code.as_str())
                    .fetch_optional(self.pool())
                    .await?;
                row.map(|row| operator_from_row(&row)).transpose()
            }

            async fn operators(&self) -> Result<Vec<Operator>, StoreError> {
                let rows = sqlx::query("SELECT tadig, name, address, tenant, created_at_ms FROM settlement_operators ORDER BY tadig")
                    .fetch_all(self.pool())
                    .await?;
                rows.iter().map(operator_from_row).collect()
            }

            async fn put_agreement(&self, a: &Agreement, now_ms: u64) -> Result<AgreementPut, StoreError> {
                let mut db = if $dialect_pg {
                    self.pool().begin().await?
                } else {
                    self.pool().begin_with("BEGIN IMMEDIATE").await?
                };
                let latest = sqlx::query("SELECT COALESCE(MAX(version), 0) AS latest FROM settlement_agreements WHERE sender = $1 AND recipient = $2 AND currency = $3")
                    .bind(a.sender.as_str())
                    .bind(a.recipient.as_str())
                    .bind(a.currency.as_str())
                    .fetch_one(&mut *db)
                    .await?;
                let latest: i64 = sqlx::Row::try_get::<i64, _>(&latest, "latest")?;
                let expected = u32::try_from(latest + 1).map_err(corrupt)?;
                if a.version != expected {
                    db.rollback().await?;
                    return Ok(AgreementPut::VersionNotNext { expected });
                }
                let rates = serde_json::to_string(&AgreementBody::from_domain(a).rates).map_err(corrupt)?;
                let inserted = sqlx::query("INSERT INTO settlement_agreements (sender, recipient, currency, version, valid_from_ms, valid_until_ms, rates, discount_bps, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                    .bind(a.sender.as_str())
                    .bind(a.recipient.as_str())
                    .bind(a.currency.as_str())
                    .bind(i64::from(a.version))
                    .bind(to_i64(a.valid_from_ms, "time")?)
                    .bind(to_i64(a.valid_until_ms, "time")?)
                    .bind(rates)
                    .bind(i64::from(a.discount_bps))
                    .bind(to_i64(now_ms, "time")?)
                    .execute(&mut *db)
                    .await;
                match inserted {
                    Ok(_) => {}
                    // A concurrent writer took the version.
                    Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                        return Ok(AgreementPut::VersionNotNext { expected: expected + 1 });
                    }
                    Err(error) => return Err(error.into()),
                }
                db.commit().await?;
                Ok(AgreementPut::Created)
            }

            async fn agreements(&self, sender: Tadig, recipient: Tadig) -> Result<Vec<Agreement>, StoreError> {
                let rows = sqlx::query("SELECT sender, recipient, currency, version, valid_from_ms, valid_until_ms, rates, discount_bps FROM settlement_agreements WHERE sender = $1 AND recipient = $2 ORDER BY currency, version")
                    .bind(sender.as_str())
                    .bind(recipient.as_str())
                    .fetch_all(self.pool())
                    .await?;
                rows.iter().map(agreement_from_row).collect()
            }

            async fn insert_record(&self, r: &StoredRecord) -> Result<RecordPut, StoreError> {
                let mut db = if $dialect_pg {
                    self.pool().begin().await?
                } else {
                    self.pool().begin_with("BEGIN IMMEDIATE").await?
                };
                let exists = sqlx::query("SELECT 1 AS one FROM usage_records WHERE record_hash = $1")
                    .bind(r.hash.to_vec())
                    .fetch_optional(&mut *db)
                    .await?;
                if exists.is_some() {
                    db.rollback().await?;
                    return Ok(RecordPut::Exists);
                }
                let (sender, recipient, sequence) = (r.record.sender, r.record.recipient, r.record.sequence);
                match r.replaces {
                    None => {
                        let last = sqlx::query("SELECT COALESCE(MAX(sequence), 0) AS last FROM usage_records WHERE sender = $1 AND recipient = $2")
                            .bind(sender.as_str())
                            .bind(recipient.as_str())
                            .fetch_one(&mut *db)
                            .await?;
                        let last: i64 = sqlx::Row::try_get::<i64, _>(&last, "last")?;
                        let last = (last > 0).then(|| to_u64(last, "sequence")).transpose()?;
                        if let Err(error) = check_sequence(last, sequence) {
                            db.rollback().await?;
                            return Ok(RecordPut::Sequence(error));
                        }
                    }
                    Some(replaced) => {
                        let old = sqlx::query(Self::select_record(" WHERE record_hash = $1"))
                            .bind(replaced.to_vec())
                            .fetch_optional(&mut *db)
                            .await?;
                        let old = old.map(|row| record_from_row(&row)).transpose()?;
                        // A record of other operators (or none) is refused in
                        // the same words, so a correction reveals nothing of
                        // other pairs' records.
                        let refusal = match &old {
                            Some(old) if (old.record.sender, old.record.recipient, old.record.sequence) == (sender, recipient, sequence) => {
                                (old.state != RecordState::Disputed).then(|| format!(
                                    "only a disputed record can be replaced; it is {}",
                                    old.state.name()
                                ))
                            }
                            _ => Some("the record it replaces is not a record of the same sender, recipient and sequence number".to_string()),
                        };
                        if let Some(refusal) = refusal {
                            db.rollback().await?;
                            return Ok(RecordPut::BadReplacement(refusal));
                        }
                        let updated = sqlx::query("UPDATE usage_records SET state = 'superseded', updated_at_ms = $2, version = version + 1 WHERE record_hash = $1 AND state = 'disputed'")
                            .bind(replaced.to_vec())
                            .bind(to_i64(r.submitted_at_ms, "time")?)
                            .execute(&mut *db)
                            .await?;
                        if updated.rows_affected() != 1 {
                            db.rollback().await?;
                            return Ok(RecordPut::BadReplacement("the record it replaces changed meanwhile".into()));
                        }
                    }
                }
                let body = serde_json::to_string(&UsageRecordBody::from_domain(&r.record)).map_err(corrupt)?;
                let inserted = sqlx::query(Self::ssql("INSERT INTO usage_records (record_hash, sender, recipient, sequence, currency, period_start_ms, period_end_ms, total, body, sender_signature, state, submitted_at_ms, deadline_ms, replaces, updated_at_ms, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::numeric, $9, $10, $11, $12, $13, $14, $15, $16)"))
                    .bind(r.hash.to_vec())
                    .bind(sender.as_str())
                    .bind(recipient.as_str())
                    .bind(to_i64(sequence, "sequence")?)
                    .bind(r.record.currency.as_str())
                    .bind(to_i64(r.record.period_start_ms, "time")?)
                    .bind(to_i64(r.record.period_end_ms, "time")?)
                    .bind(r.record.total.to_string())
                    .bind(body)
                    .bind(r.sender_signature.to_string())
                    .bind(r.state.name())
                    .bind(to_i64(r.submitted_at_ms, "time")?)
                    .bind(to_i64(r.deadline_ms, "time")?)
                    .bind(r.replaces.map(|h| h.to_vec()))
                    .bind(to_i64(r.updated_at_ms, "time")?)
                    .bind(r.version)
                    .execute(&mut *db)
                    .await;
                match inserted {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                        return Ok(RecordPut::Sequence(RecordError::DuplicateSequence(sequence)));
                    }
                    Err(error) => return Err(error.into()),
                }
                db.commit().await?;
                Ok(RecordPut::Created)
            }

            async fn record(&self, hash: [u8; 32]) -> Result<Option<StoredRecord>, StoreError> {
                let row = sqlx::query(Self::select_record(" WHERE record_hash = $1"))
                    .bind(hash.to_vec())
                    .fetch_optional(self.pool())
                    .await?;
                row.map(|row| record_from_row(&row)).transpose()
            }

            async fn records_of_tenant(&self, tenant: &str, before: Option<(u64, [u8; 32])>, limit: u32) -> Result<Vec<StoredRecord>, StoreError> {
                let (before_ms, before_hash) = match before {
                    Some((ms, hash)) => (to_i64(ms, "time")?, hash.to_vec()),
                    None => (i64::MAX, vec![0xff; 33]),
                };
                let rows = sqlx::query(Self::select_record(" WHERE (sender IN (SELECT tadig FROM settlement_operators WHERE tenant = $1) OR recipient IN (SELECT tadig FROM settlement_operators WHERE tenant = $1)) AND (submitted_at_ms < $2 OR (submitted_at_ms = $2 AND record_hash < $3)) ORDER BY submitted_at_ms DESC, record_hash DESC LIMIT $4"))
                    .bind(tenant)
                    .bind(before_ms)
                    .bind(before_hash)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?;
                rows.iter().map(record_from_row).collect()
            }

            async fn update_record(&self, r: &StoredRecord, expected_version: i64) -> Result<bool, StoreError> {
                let dispute = r.dispute.as_ref().map(serde_json::to_string).transpose().map_err(corrupt)?;
                let updated = sqlx::query("UPDATE usage_records SET state = $2, acceptance_signature = $3, accepted_at_ms = $4, dispute = $5, anchor_chain_id = $6, anchor_tx_hash = $7, anchor_signed_tx = $8, anchored = $9, updated_at_ms = $10, version = $11, note = $13 WHERE record_hash = $1 AND version = $12")
                    .bind(r.hash.to_vec())
                    .bind(r.state.name())
                    .bind(r.acceptance_signature.map(|s| s.to_string()))
                    .bind(r.accepted_at_ms.map(|ms| to_i64(ms, "time")).transpose()?)
                    .bind(dispute)
                    .bind(r.anchor.as_ref().map(|a| to_i64(a.chain_id.get(), "chain id")).transpose()?)
                    .bind(r.anchor.as_ref().map(|a| a.tx_hash.as_bytes().to_vec()))
                    .bind(r.anchor.as_ref().map(|a| a.signed_tx.clone()))
                    .bind(i64::from(r.anchored))
                    .bind(to_i64(r.updated_at_ms, "time")?)
                    .bind(r.version)
                    .bind(expected_version)
                    .bind(r.note.as_ref().map(serde_json::to_string).transpose().map_err(corrupt)?)
                    .execute(self.pool())
                    .await?;
                Ok(updated.rows_affected() == 1)
            }

            async fn put_payment(&self, p: &PaymentLink) -> Result<(), StoreError> {
                sqlx::query("INSERT INTO settlement_payments (transfer_id, close_id, currency, payer, payee, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(&p.transfer_id)
                    .bind(&p.close_id)
                    .bind(&p.currency)
                    .bind(p.payer.as_str())
                    .bind(p.payee.as_str())
                    .bind(to_i64(p.created_at_ms, "time")?)
                    .execute(self.pool())
                    .await?;
                Ok(())
            }

            async fn payments(&self, close_id: &str) -> Result<Vec<PaymentLink>, StoreError> {
                let rows = sqlx::query("SELECT transfer_id, close_id, currency, payer, payee, created_at_ms FROM settlement_payments WHERE close_id = $1 ORDER BY created_at_ms, transfer_id")
                    .bind(close_id)
                    .fetch_all(self.pool())
                    .await?;
                rows.iter()
                    .map(|row| -> Result<PaymentLink, StoreError> {
                        Ok(PaymentLink {
                            transfer_id: row.get_string("transfer_id")?,
                            close_id: row.get_string("close_id")?,
                            currency: row.get_string("currency")?,
                            payer: tadig(&row.get_string("payer")?)?,
                            payee: tadig(&row.get_string("payee")?)?,
                            created_at_ms: to_u64(row.get_i64("created_at_ms")?, "time")?,
                        })
                    })
                    .collect()
            }

            async fn last_sequence(&self, sender: Tadig, recipient: Tadig) -> Result<Option<u64>, StoreError> {
                let row = sqlx::query("SELECT COALESCE(MAX(sequence), 0) AS last FROM usage_records WHERE sender = $1 AND recipient = $2")
                    .bind(sender.as_str())
                    .bind(recipient.as_str())
                    .fetch_one(self.pool())
                    .await?;
                let last: i64 = sqlx::Row::try_get::<i64, _>(&row, "last")?;
                (last > 0).then(|| to_u64(last, "sequence")).transpose()
            }

            async fn insert_records(&self, records: &[StoredRecord]) -> Result<bool, StoreError> {
                // One multi-row INSERT per chunk (15 parameters a row, well
                // under both databases' parameter limits), in one transaction.
                let mut db = self.pool().begin().await?;
                for chunk in records.chunks(500) {
                    let mut sql = String::from("INSERT INTO usage_records (record_hash, sender, recipient, sequence, currency, period_start_ms, period_end_ms, total, body, sender_signature, state, submitted_at_ms, deadline_ms, updated_at_ms, version) VALUES ");
                    for i in 0..chunk.len() {
                        let p = i * 15;
                        if i > 0 {
                            sql.push(',');
                        }
                        let cast = if $dialect_pg { "::numeric" } else { "" };
                        sql.push_str(&format!(
                            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}{cast}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                            p + 1, p + 2, p + 3, p + 4, p + 5, p + 6, p + 7, p + 8, p + 9, p + 10, p + 11, p + 12, p + 13, p + 14, p + 15
                        ));
                    }
                    // Only placeholders are generated: no value enters the SQL text.
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for r in chunk {
                        let body = serde_json::to_string(&UsageRecordBody::from_domain(&r.record)).map_err(corrupt)?;
                        query = query
                            .bind(r.hash.to_vec())
                            .bind(r.record.sender.as_str().to_string())
                            .bind(r.record.recipient.as_str().to_string())
                            .bind(to_i64(r.record.sequence, "sequence")?)
                            .bind(r.record.currency.as_str().to_string())
                            .bind(to_i64(r.record.period_start_ms, "time")?)
                            .bind(to_i64(r.record.period_end_ms, "time")?)
                            .bind(r.record.total.to_string())
                            .bind(body)
                            .bind(r.sender_signature.to_string())
                            .bind(r.state.name())
                            .bind(to_i64(r.submitted_at_ms, "time")?)
                            .bind(to_i64(r.deadline_ms, "time")?)
                            .bind(to_i64(r.updated_at_ms, "time")?)
                            .bind(r.version);
                    }
                    match query.execute(&mut *db).await {
                        Ok(_) => {}
                        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                            db.rollback().await?;
                            return Ok(false);
                        }
                        Err(error) => return Err(error.into()),
                    }
                }
                db.commit().await?;
                Ok(true)
            }

            async fn records_to_close(&self, start_ms: u64, end_ms: u64, now_ms: u64) -> Result<Vec<StoredRecord>, StoreError> {
                let rows = sqlx::query(Self::select_record(" WHERE close_id IS NULL AND period_start_ms >= $1 AND period_end_ms <= $2 AND (state = 'accepted' OR (state = 'submitted' AND deadline_ms <= $3)) ORDER BY record_hash"))
                    .bind(to_i64(start_ms, "time")?)
                    .bind(to_i64(end_ms, "time")?)
                    .bind(to_i64(now_ms, "time")?)
                    .fetch_all(self.pool())
                    .await?;
                rows.iter().map(record_from_row).collect()
            }

            async fn put_close(&self, close: &StoredClose, statements: &[StoredStatement], records: &[StoredRecord]) -> Result<bool, StoreError> {
                let mut db = if $dialect_pg {
                    self.pool().begin().await?
                } else {
                    self.pool().begin_with("BEGIN IMMEDIATE").await?
                };
                sqlx::query("INSERT INTO settlement_closes (id, terms, signer, created_at_ms) VALUES ($1, $2, $3, $4)")
                    .bind(&close.id)
                    .bind(&close.terms)
                    .bind(close.signer.as_bytes().to_vec())
                    .bind(to_i64(close.created_at_ms, "time")?)
                    .execute(&mut *db)
                    .await?;
                for s in statements {
                    sqlx::query("INSERT INTO settlement_statements (close_id, operator, currency, body, signature) VALUES ($1, $2, $3, $4, $5)")
                        .bind(&s.close_id)
                        .bind(s.operator.as_str())
                        .bind(&s.currency)
                        .bind(&s.body)
                        .bind(&s.signature)
                        .execute(&mut *db)
                        .await?;
                }
                for r in records {
                    // Records deemed accepted (the deadline passed unanswered)
                    // become accepted at their deadline.
                    let updated = sqlx::query("UPDATE usage_records SET close_id = $2, state = 'accepted', accepted_at_ms = COALESCE(accepted_at_ms, deadline_ms), updated_at_ms = $3, version = version + 1 WHERE record_hash = $1 AND version = $4 AND close_id IS NULL")
                        .bind(r.hash.to_vec())
                        .bind(&close.id)
                        .bind(to_i64(close.created_at_ms, "time")?)
                        .bind(r.version)
                        .execute(&mut *db)
                        .await?;
                    if updated.rows_affected() != 1 {
                        db.rollback().await?;
                        return Ok(false);
                    }
                }
                db.commit().await?;
                Ok(true)
            }

            async fn close(&self, id: &str) -> Result<Option<StoredClose>, StoreError> {
                let row = sqlx::query("SELECT id, terms, signer, created_at_ms FROM settlement_closes WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.pool())
                    .await?;
                row.map(|row| -> Result<StoredClose, StoreError> {
                    Ok(StoredClose {
                        id: row.get_string("id")?,
                        terms: row.get_string("terms")?,
                        signer: Address::from_bytes(bytes(row.get_bytes("signer")?, "signer")?),
                        created_at_ms: to_u64(row.get_i64("created_at_ms")?, "time")?,
                    })
                })
                .transpose()
            }

            async fn statements(&self, close_id: Option<&str>, tenant: Option<&str>, limit: u32) -> Result<Vec<StoredStatement>, StoreError> {
                let rows = sqlx::query("SELECT s.close_id, s.operator, s.currency, s.body, s.signature FROM settlement_statements s JOIN settlement_closes c ON c.id = s.close_id WHERE ($1 IS NULL OR s.close_id = $1) AND ($2 IS NULL OR s.operator IN (SELECT tadig FROM settlement_operators WHERE tenant = $2)) ORDER BY c.created_at_ms DESC, s.currency, s.operator LIMIT $3")
                    .bind(close_id)
                    .bind(tenant)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?;
                rows.iter()
                    .map(|row| -> Result<StoredStatement, StoreError> {
                        Ok(StoredStatement {
                            close_id: row.get_string("close_id")?,
                            operator: tadig(&row.get_string("operator")?)?,
                            currency: row.get_string("currency")?,
                            body: row.get_string("body")?,
                            signature: row.get_string("signature")?,
                        })
                    })
                    .collect()
            }

            async fn records_to_anchor(&self, limit: u32) -> Result<Vec<StoredRecord>, StoreError> {
                let rows = sqlx::query(Self::select_record(" WHERE state = 'accepted' AND anchored = 0 ORDER BY accepted_at_ms LIMIT $1"))
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?;
                rows.iter().map(record_from_row).collect()
            }
        }
    };
}

impl_settlement_store!(PgStore, true);
impl_settlement_store!(SqliteStore, false);

use crate::store::delegate;

impl SettlementStore for AnyStore {
    async fn put_operator(&self, operator: &Operator) -> Result<OperatorPut, StoreError> {
        delegate!(self, s => s.put_operator(operator))
    }
    async fn operator(&self, tadig: Tadig) -> Result<Option<Operator>, StoreError> {
        delegate!(self, s => s.operator(tadig))
    }
    async fn operators(&self) -> Result<Vec<Operator>, StoreError> {
        delegate!(self, s => s.operators())
    }
    async fn put_agreement(
        &self,
        agreement: &Agreement,
        now_ms: u64,
    ) -> Result<AgreementPut, StoreError> {
        delegate!(self, s => s.put_agreement(agreement, now_ms))
    }
    async fn agreements(
        &self,
        sender: Tadig,
        recipient: Tadig,
    ) -> Result<Vec<Agreement>, StoreError> {
        delegate!(self, s => s.agreements(sender, recipient))
    }
    async fn insert_record(&self, record: &StoredRecord) -> Result<RecordPut, StoreError> {
        delegate!(self, s => s.insert_record(record))
    }
    async fn record(&self, hash: [u8; 32]) -> Result<Option<StoredRecord>, StoreError> {
        delegate!(self, s => s.record(hash))
    }
    async fn records_of_tenant(
        &self,
        tenant: &str,
        before: Option<(u64, [u8; 32])>,
        limit: u32,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        delegate!(self, s => s.records_of_tenant(tenant, before, limit))
    }
    async fn update_record(
        &self,
        record: &StoredRecord,
        expected_version: i64,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.update_record(record, expected_version))
    }
    async fn records_to_anchor(&self, limit: u32) -> Result<Vec<StoredRecord>, StoreError> {
        delegate!(self, s => s.records_to_anchor(limit))
    }
    async fn put_payment(&self, payment: &PaymentLink) -> Result<(), StoreError> {
        delegate!(self, s => s.put_payment(payment))
    }
    async fn payments(&self, close_id: &str) -> Result<Vec<PaymentLink>, StoreError> {
        delegate!(self, s => s.payments(close_id))
    }
    async fn last_sequence(
        &self,
        sender: Tadig,
        recipient: Tadig,
    ) -> Result<Option<u64>, StoreError> {
        delegate!(self, s => s.last_sequence(sender, recipient))
    }
    async fn insert_records(&self, records: &[StoredRecord]) -> Result<bool, StoreError> {
        delegate!(self, s => s.insert_records(records))
    }
    async fn records_to_close(
        &self,
        start_ms: u64,
        end_ms: u64,
        now_ms: u64,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        delegate!(self, s => s.records_to_close(start_ms, end_ms, now_ms))
    }
    async fn put_close(
        &self,
        close: &StoredClose,
        statements: &[StoredStatement],
        records: &[StoredRecord],
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.put_close(close, statements, records))
    }
    async fn close(&self, id: &str) -> Result<Option<StoredClose>, StoreError> {
        delegate!(self, s => s.close(id))
    }
    async fn statements(
        &self,
        close_id: Option<&str>,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredStatement>, StoreError> {
        delegate!(self, s => s.statements(close_id, tenant, limit))
    }
}
