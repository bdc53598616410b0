//! Usage records and the agreements they are judged by.
//!
//! A usage record is modelled on a TAP3 file's audit summary and the BCE
//! usage data report: what the serving (visited) operator `sender` charges
//! the home operator `recipient` for one `period`, numbered by `sequence`
//! (per sender and recipient, from 1, without gaps), with one line per
//! service: the quantity, the rate applied, and the charge. Then the sum of
//! the charges, the agreement's discount, and the total.
//!
//! **Units.** Voice (originated `voice_mo`, terminated `voice_mt`) in
//! seconds, SMS in messages, data in kilobytes (1,000 bytes). Money in
//! minor units of the record's currency.
//!
//! **Charging rule.** A rate is `price` minor units per `per` units. A
//! line's charge is `quantity × price / per`, rounded half up to a whole
//! minor unit. The discount is `chargesTotal × discountBps / 10000`,
//! rounded half up; when the agreement sets a discount for any service, it
//! is instead the sum over the lines of `charge × bps / 10000`, each rounded
//! half up, with `bps` the service's own discount or else `discountBps`.
//! The total is `chargesTotal − discount`.
//!
//! **Agreement in force.** Of the agreement versions between the two
//! parties in the record's currency whose validity covers the whole period
//! (`validFromMs ≤ periodStartMs` and `periodEndMs ≤ validUntilMs`), the one
//! with the highest version. The record names the version it applied, and
//! it must be that one.

use std::collections::BTreeMap;

use crate::types::AssetCode;

use super::{Service, Tadig};

/// A price: `price` minor units per `per` units of the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate {
    /// Minor units.
    pub price: u128,
    /// Per this many units (at least 1).
    pub per: u64,
}

impl Rate {
    /// The charge for `quantity` units: `quantity × price / per`, rounded
    /// half up; `None` on overflow or a zero `per`.
    pub fn charge(&self, quantity: u64) -> Option<u128> {
        if self.per == 0 {
            return None;
        }
        let numerator = u128::from(quantity).checked_mul(self.price)?;
        round_half_up(numerator, u128::from(self.per))
    }
}

/// `numerator / denominator`, rounded half up; `None` for a zero denominator.
pub fn round_half_up(numerator: u128, denominator: u128) -> Option<u128> {
    if denominator == 0 {
        return None;
    }
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    // remainder * 2 >= denominator, without overflow.
    if remainder >= denominator - remainder {
        quotient.checked_add(1)
    } else {
        Some(quotient)
    }
}

/// One version of the bilateral agreement between two operators: the rates
/// `sender` charges `recipient` per service, in one currency, over a
/// validity period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreement {
    /// The charging (serving, visited) operator.
    pub sender: Tadig,
    /// The charged (home) operator.
    pub recipient: Tadig,
    /// Version, from 1; a later version supersedes an earlier one where both
    /// are valid.
    pub version: u32,
    /// The currency.
    pub currency: AssetCode,
    /// Valid from (ms since the Unix epoch, inclusive).
    pub valid_from_ms: u64,
    /// Valid until (ms, exclusive).
    pub valid_until_ms: u64,
    /// The rate of every service the agreement prices.
    pub rates: BTreeMap<Service, Rate>,
    /// Discount on the sum of the charges, in basis points (0 to 10,000).
    pub discount_bps: u16,
    /// Discounts of single services, in basis points (see the module docs).
    pub service_discount_bps: BTreeMap<Service, u16>,
}

/// Why an agreement is not well-formed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgreementError {
    /// The two parties are the same operator.
    #[error("an agreement is between two different operators")]
    SameParty,
    /// Version 0.
    #[error("versions start at 1")]
    ZeroVersion,
    /// Empty or reversed validity.
    #[error("validUntilMs must be after validFromMs")]
    EmptyValidity,
    /// No rates.
    #[error("an agreement prices at least one service")]
    NoRates,
    /// A rate per zero units.
    #[error("the rate of {0} is per 0 units")]
    ZeroPer(Service),
    /// A discount above 100%.
    #[error("discountBps must be at most 10000")]
    DiscountTooLarge,
    /// A discount for a service the agreement does not price.
    #[error("a discount is set for {0}, which the agreement does not price")]
    DiscountUnpriced(Service),
}

impl Agreement {
    /// Checks the agreement is well-formed.
    pub fn check(&self) -> Result<(), AgreementError> {
        if self.sender == self.recipient {
            return Err(AgreementError::SameParty);
        }
        if self.version == 0 {
            return Err(AgreementError::ZeroVersion);
        }
        if self.valid_until_ms <= self.valid_from_ms {
            return Err(AgreementError::EmptyValidity);
        }
        if self.rates.is_empty() {
            return Err(AgreementError::NoRates);
        }
        if let Some((service, _)) = self.rates.iter().find(|(_, r)| r.per == 0) {
            return Err(AgreementError::ZeroPer(*service));
        }
        if self.discount_bps > 10_000 || self.service_discount_bps.values().any(|b| *b > 10_000) {
            return Err(AgreementError::DiscountTooLarge);
        }
        if let Some(service) = self
            .service_discount_bps
            .keys()
            .find(|s| !self.rates.contains_key(s))
        {
            return Err(AgreementError::DiscountUnpriced(*service));
        }
        Ok(())
    }

    /// The discount on `lines` (whose charges sum to `charges_total`), by
    /// the rule in the module docs.
    pub fn discount(&self, lines: &[ServiceLine], charges_total: u128) -> Option<u128> {
        if self.service_discount_bps.is_empty() {
            return discount_of(charges_total, self.discount_bps);
        }
        let mut sum: u128 = 0;
        for line in lines {
            let bps = self
                .service_discount_bps
                .get(&line.service)
                .copied()
                .unwrap_or(self.discount_bps);
            sum = sum.checked_add(discount_of(line.charge, bps)?)?;
        }
        Some(sum)
    }

    /// True when the agreement's validity covers `[start_ms, end_ms)`.
    pub fn covers(&self, start_ms: u64, end_ms: u64) -> bool {
        self.valid_from_ms <= start_ms && end_ms <= self.valid_until_ms
    }
}

/// The agreement in force for a record (see the module docs): the highest
/// version among `agreements` between `sender` and `recipient` in
/// `currency` that covers the period.
pub fn agreement_in_force<'a>(
    agreements: impl IntoIterator<Item = &'a Agreement>,
    sender: Tadig,
    recipient: Tadig,
    currency: AssetCode,
    period: (u64, u64),
) -> Option<&'a Agreement> {
    agreements
        .into_iter()
        .filter(|a| {
            a.sender == sender
                && a.recipient == recipient
                && a.currency == currency
                && a.covers(period.0, period.1)
        })
        .max_by_key(|a| a.version)
}

/// One service's line of a usage record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceLine {
    /// The service.
    pub service: Service,
    /// Units used (see the module docs).
    pub quantity: u64,
    /// The rate applied.
    pub rate: Rate,
    /// The charge, in minor units.
    pub charge: u128,
}

/// A usage record (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRecord {
    /// The serving (visited) operator, who charges and signs.
    pub sender: Tadig,
    /// The home operator, who is charged and counter-signs.
    pub recipient: Tadig,
    /// From 1, per sender and recipient, without gaps.
    pub sequence: u64,
    /// Period start (ms since the Unix epoch, inclusive).
    pub period_start_ms: u64,
    /// Period end (ms, exclusive).
    pub period_end_ms: u64,
    /// The currency of every amount.
    pub currency: AssetCode,
    /// The agreement version applied.
    pub agreement_version: u32,
    /// One line per service, each service at most once.
    pub lines: Vec<ServiceLine>,
    /// The sum of the lines' charges.
    pub charges_total: u128,
    /// The agreement's discount on `charges_total`.
    pub discount: u128,
    /// `charges_total − discount`: what the recipient owes.
    pub total: u128,
}

/// Why a usage record is refused. Each violation has its own variant (and
/// its own problem type at the API).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Sender and recipient are the same operator.
    #[error("sender and recipient must be different operators")]
    SameParty,
    /// The period is empty or reversed.
    #[error("periodEndMs must be after periodStartMs")]
    EmptyPeriod,
    /// The period ends after the time of submission.
    #[error("the period ends in the future (at {period_end_ms} ms; now is {now_ms} ms)")]
    PeriodInFuture {
        /// The period's end.
        period_end_ms: u64,
        /// The time of the check.
        now_ms: u64,
    },
    /// No line.
    #[error("a usage record has at least one service line")]
    NoLines,
    /// A service appears twice.
    #[error("service {0} appears more than once")]
    DuplicateService(Service),
    /// No agreement covers the period.
    #[error("no agreement between {sender} and {recipient} in {currency} covers the period")]
    NoAgreement {
        /// The record's sender.
        sender: Tadig,
        /// The record's recipient.
        recipient: Tadig,
        /// The record's currency.
        currency: AssetCode,
    },
    /// The record applies another agreement version than the one in force.
    #[error(
        "agreement version {in_force} is in force for the period; the record applies version {applied}"
    )]
    WrongAgreementVersion {
        /// The version in force.
        in_force: u32,
        /// The version the record names.
        applied: u32,
    },
    /// The agreement does not price a service of the record.
    #[error("the agreement does not price {0}")]
    ServiceNotAgreed(Service),
    /// A line's rate is not the agreement's.
    #[error(
        "the rate of {service} is {applied_price} per {applied_per}; the agreement's is {agreed_price} per {agreed_per}"
    )]
    RateMismatch {
        /// The service.
        service: Service,
        /// The record's price.
        applied_price: u128,
        /// The record's unit block.
        applied_per: u64,
        /// The agreement's price.
        agreed_price: u128,
        /// The agreement's unit block.
        agreed_per: u64,
    },
    /// A line's charge is not its quantity at its rate.
    #[error(
        "the charge of {service} must be {expected} (quantity at rate, rounded half up); the record says {stated}"
    )]
    ChargeMismatch {
        /// The service.
        service: Service,
        /// The right charge.
        expected: u128,
        /// The record's charge.
        stated: u128,
    },
    /// `chargesTotal` is not the sum of the charges.
    #[error(
        "chargesTotal must be {expected} (the sum of the lines' charges); the record says {stated}"
    )]
    ChargesTotalMismatch {
        /// The sum.
        expected: u128,
        /// The record's figure.
        stated: u128,
    },
    /// `discount` is not the agreement's discount.
    #[error(
        "discount must be {expected} (by the agreement: {bps} bps of chargesTotal, or its per-service discounts line by line, rounded half up); the record says {stated}"
    )]
    DiscountMismatch {
        /// The right discount.
        expected: u128,
        /// The agreement's basis points.
        bps: u16,
        /// The record's figure.
        stated: u128,
    },
    /// `total` is not `chargesTotal − discount`.
    #[error("total must be {expected} (chargesTotal minus discount); the record says {stated}")]
    TotalMismatch {
        /// The right total.
        expected: u128,
        /// The record's figure.
        stated: u128,
    },
    /// Sequence 0.
    #[error("sequence numbers start at 1")]
    ZeroSequence,
    /// A sequence number already used between the two operators.
    #[error("sequence {0} has already been submitted by this sender to this recipient")]
    DuplicateSequence(u64),
    /// A gap before this sequence number.
    #[error("the next sequence number from this sender to this recipient is {expected}; got {got}")]
    SequenceGap {
        /// The next number.
        expected: u64,
        /// The record's.
        got: u64,
    },
    /// An amount does not fit.
    #[error("an amount overflows")]
    Overflow,
}

impl UsageRecord {
    /// Checks the record's own arithmetic and its agreement (everything but
    /// the sequence, which depends on the records before it: see
    /// [`check_sequence`]). `now_ms` is the time of submission.
    pub fn validate<'a>(
        &self,
        agreements: impl IntoIterator<Item = &'a Agreement>,
        now_ms: u64,
    ) -> Result<&'a Agreement, RecordError> {
        if self.sender == self.recipient {
            return Err(RecordError::SameParty);
        }
        if self.sequence == 0 {
            return Err(RecordError::ZeroSequence);
        }
        if self.period_end_ms <= self.period_start_ms {
            return Err(RecordError::EmptyPeriod);
        }
        if self.period_end_ms > now_ms {
            return Err(RecordError::PeriodInFuture {
                period_end_ms: self.period_end_ms,
                now_ms,
            });
        }
        if self.lines.is_empty() {
            return Err(RecordError::NoLines);
        }
        let mut seen = std::collections::BTreeSet::new();
        for line in &self.lines {
            if !seen.insert(line.service) {
                return Err(RecordError::DuplicateService(line.service));
            }
        }
        let agreement = agreement_in_force(
            agreements,
            self.sender,
            self.recipient,
            self.currency,
            (self.period_start_ms, self.period_end_ms),
        )
        .ok_or(RecordError::NoAgreement {
            sender: self.sender,
            recipient: self.recipient,
            currency: self.currency,
        })?;
        if agreement.version != self.agreement_version {
            return Err(RecordError::WrongAgreementVersion {
                in_force: agreement.version,
                applied: self.agreement_version,
            });
        }
        let mut sum: u128 = 0;
        for line in &self.lines {
            let agreed = agreement
                .rates
                .get(&line.service)
                .ok_or(RecordError::ServiceNotAgreed(line.service))?;
            if *agreed != line.rate {
                return Err(RecordError::RateMismatch {
                    service: line.service,
                    applied_price: line.rate.price,
                    applied_per: line.rate.per,
                    agreed_price: agreed.price,
                    agreed_per: agreed.per,
                });
            }
            let expected = agreed.charge(line.quantity).ok_or(RecordError::Overflow)?;
            if expected != line.charge {
                return Err(RecordError::ChargeMismatch {
                    service: line.service,
                    expected,
                    stated: line.charge,
                });
            }
            sum = sum.checked_add(expected).ok_or(RecordError::Overflow)?;
        }
        if sum != self.charges_total {
            return Err(RecordError::ChargesTotalMismatch {
                expected: sum,
                stated: self.charges_total,
            });
        }
        let discount = agreement
            .discount(&self.lines, sum)
            .ok_or(RecordError::Overflow)?;
        if discount != self.discount {
            return Err(RecordError::DiscountMismatch {
                expected: discount,
                bps: agreement.discount_bps,
                stated: self.discount,
            });
        }
        // Never negative for an agreement that passed `Agreement::check`
        // (discounts of at most 100%); checked all the same.
        let total = sum.checked_sub(discount).ok_or(RecordError::Overflow)?;
        if total != self.total {
            return Err(RecordError::TotalMismatch {
                expected: total,
                stated: self.total,
            });
        }
        Ok(agreement)
    }
}

/// The discount on `charges_total` at `bps` basis points, rounded half up.
pub fn discount_of(charges_total: u128, bps: u16) -> Option<u128> {
    round_half_up(charges_total.checked_mul(u128::from(bps))?, 10_000)
}

/// Checks `sequence` comes next after `last` (the highest sequence number
/// already accepted for submission between the same sender and recipient,
/// `None` before the first), given whether `sequence` was already used.
pub fn check_sequence(last: Option<u64>, sequence: u64) -> Result<(), RecordError> {
    if sequence == 0 {
        return Err(RecordError::ZeroSequence);
    }
    let expected = last.map_or(1, |n| n.saturating_add(1));
    if sequence < expected {
        return Err(RecordError::DuplicateSequence(sequence));
    }
    if sequence > expected {
        return Err(RecordError::SequenceGap {
            expected,
            got: sequence,
        });
    }
    Ok(())
}
