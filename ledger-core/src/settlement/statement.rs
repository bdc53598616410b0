//! Closing a settlement period: from accepted usage records to one
//! statement per operator and currency, with the payments that settle
//! every position.
//!
//! Each record makes its recipient owe its sender the record's total. With
//! a settlement currency, every total is first converted with the recorded
//! FX rate from the record's currency (`amount × numerator / denominator`,
//! rounded half up); without one, each currency is closed on its own. The
//! obligations of a currency are netted (multilaterally, or bilaterally
//! when asked), and each operator's statement lists its records (receivable
//! or payable, in the statement's currency), the two sums, and the payments
//! it makes or receives. The statement's net (receivable − payable) equals
//! what its payments move, so paying the statements settles everyone.

use std::collections::BTreeMap;

use crate::types::AssetCode;

use super::Tadig;
use super::netting::{NettingError, Obligation, Payment, bilateral, multilateral, net_positions};
use super::record::{UsageRecord, round_half_up};

/// `numerator / denominator` units of `to` per unit of `from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FxRate {
    /// The record's currency.
    pub from: AssetCode,
    /// The settlement currency.
    pub to: AssetCode,
    /// Numerator (at least 1).
    pub numerator: u128,
    /// Denominator (at least 1).
    pub denominator: u128,
}

impl FxRate {
    /// `amount` in `to`, rounded half up; `None` on overflow or a zero term.
    pub fn convert(&self, amount: u128) -> Option<u128> {
        if self.numerator == 0 {
            return None;
        }
        round_half_up(amount.checked_mul(self.numerator)?, self.denominator)
    }
}

/// One record on a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatementLine {
    /// The record.
    pub record_hash: [u8; 32],
    /// The other operator.
    pub counterparty: Tadig,
    /// In the statement's currency.
    pub amount: u128,
    /// True when the operator is owed it (it sent the record).
    pub receivable: bool,
}

/// An operator's statement for one period and currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The operator.
    pub operator: Tadig,
    /// The statement's currency.
    pub currency: AssetCode,
    /// Period start (ms, inclusive).
    pub period_start_ms: u64,
    /// Period end (ms, exclusive).
    pub period_end_ms: u64,
    /// Its records, by record hash.
    pub lines: Vec<StatementLine>,
    /// What it is owed in all.
    pub receivable: u128,
    /// What it owes in all.
    pub payable: u128,
    /// The payments it makes or receives.
    pub payments: Vec<Payment>,
    /// The FX rates applied (empty without a settlement currency).
    pub fx_rates: Vec<FxRate>,
}

impl Statement {
    /// `receivable − payable`: positive when the operator is paid.
    pub fn net(&self) -> i128 {
        // Both fit i128: netting refused larger amounts.
        self.receivable as i128 - self.payable as i128
    }
}

/// How a period is closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseTerms {
    /// Period start (ms, inclusive).
    pub period_start_ms: u64,
    /// Period end (ms, exclusive).
    pub period_end_ms: u64,
    /// Net across all operators (true) or per pair (false).
    pub multilateral: bool,
    /// Convert everything into this currency, with `fx_rates`.
    pub settlement_currency: Option<AssetCode>,
    /// Rates from each record currency into the settlement currency.
    pub fx_rates: Vec<FxRate>,
}

/// A period cannot be closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CloseError {
    /// No rate converts a record's currency into the settlement currency.
    #[error("no FX rate from {from} to {to}")]
    NoFxRate {
        /// The record's currency.
        from: AssetCode,
        /// The settlement currency.
        to: AssetCode,
    },
    /// A rate with a zero term, or two rates for one currency.
    #[error("FX rates must have non-zero terms, one per currency, into the settlement currency")]
    BadFxRate,
    /// An amount overflows.
    #[error("an amount overflows")]
    Overflow,
    /// Netting failed.
    #[error(transparent)]
    Netting(#[from] NettingError),
}

/// One record's debt, in the currency it is settled in.
#[derive(Clone, Copy)]
struct Owed {
    hash: [u8; 32],
    debtor: Tadig,
    creditor: Tadig,
    amount: u128,
}

/// Closes the period over `records` (accepted records, each with its hash):
/// one statement per operator and currency, ordered by currency and
/// operator (see the module docs).
pub fn close(
    records: &[([u8; 32], UsageRecord)],
    terms: &CloseTerms,
) -> Result<Vec<Statement>, CloseError> {
    let mut rates: BTreeMap<AssetCode, FxRate> = BTreeMap::new();
    for rate in &terms.fx_rates {
        if rate.numerator == 0
            || rate.denominator == 0
            || Some(rate.to) != terms.settlement_currency
            || rates.insert(rate.from, *rate).is_some()
        {
            return Err(CloseError::BadFxRate);
        }
    }
    let mut by_currency: BTreeMap<AssetCode, Vec<Owed>> = BTreeMap::new();
    let mut used: BTreeMap<AssetCode, FxRate> = BTreeMap::new();
    for (hash, record) in records {
        let (currency, amount) = match terms.settlement_currency {
            None => (record.currency, record.total),
            Some(target) if target == record.currency => (target, record.total),
            Some(target) => {
                let rate = rates.get(&record.currency).ok_or(CloseError::NoFxRate {
                    from: record.currency,
                    to: target,
                })?;
                used.insert(record.currency, *rate);
                (
                    target,
                    rate.convert(record.total).ok_or(CloseError::Overflow)?,
                )
            }
        };
        by_currency.entry(currency).or_default().push(Owed {
            hash: *hash,
            debtor: record.recipient,
            creditor: record.sender,
            amount,
        });
    }
    let fx_rates: Vec<FxRate> = used.into_values().collect();
    let mut statements = Vec::new();
    for (currency, lines) in by_currency {
        let obligations: Vec<Obligation> = lines
            .iter()
            .map(|o| Obligation {
                debtor: o.debtor,
                creditor: o.creditor,
                amount: o.amount,
            })
            .collect();
        let payments = if terms.multilateral {
            multilateral(&net_positions(&obligations)?)?
        } else {
            bilateral(&obligations)?
        };
        let mut per_operator: BTreeMap<Tadig, Statement> = BTreeMap::new();
        let blank = |operator: Tadig| Statement {
            operator,
            currency,
            period_start_ms: terms.period_start_ms,
            period_end_ms: terms.period_end_ms,
            lines: Vec::new(),
            receivable: 0,
            payable: 0,
            payments: Vec::new(),
            fx_rates: fx_rates.clone(),
        };
        for &Owed {
            hash,
            debtor,
            creditor,
            amount,
        } in &lines
        {
            let owed = per_operator
                .entry(creditor)
                .or_insert_with(|| blank(creditor));
            owed.lines.push(StatementLine {
                record_hash: hash,
                counterparty: debtor,
                amount,
                receivable: true,
            });
            owed.receivable = owed
                .receivable
                .checked_add(amount)
                .ok_or(CloseError::Overflow)?;
            let owes = per_operator.entry(debtor).or_insert_with(|| blank(debtor));
            owes.lines.push(StatementLine {
                record_hash: hash,
                counterparty: creditor,
                amount,
                receivable: false,
            });
            owes.payable = owes
                .payable
                .checked_add(amount)
                .ok_or(CloseError::Overflow)?;
        }
        for payment in &payments {
            for party in [payment.payer, payment.payee] {
                if let Some(statement) = per_operator.get_mut(&party) {
                    statement.payments.push(*payment);
                }
            }
        }
        for mut statement in per_operator.into_values() {
            statement.lines.sort_by_key(|l| l.record_hash);
            statements.push(statement);
        }
    }
    Ok(statements)
}
