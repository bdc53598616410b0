//! Settlement's money rules: usage record validation (each violation its own
//! error, good records accepted), the sequence rule, and netting properties:
//! positions sum to zero, each operator's net is its receivables minus its
//! payables, multilateral netting needs at most N−1 payments and takes every
//! operator exactly to its net position.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use ledger_core::AssetCode;
use ledger_core::settlement::netting::{Obligation, bilateral, multilateral, net_positions};
use ledger_core::settlement::record::{
    Agreement, Rate, RecordError, ServiceLine, UsageRecord, agreement_in_force, check_sequence,
    round_half_up,
};
use ledger_core::settlement::{Service, Tadig};
use proptest::prelude::*;

fn t(code: &str) -> Tadig {
    code.parse().unwrap()
}

const DAY: u64 = 86_400_000;
const JAN_2026: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const FEB_2026: u64 = JAN_2026 + 31 * DAY;

fn agreement(version: u32, from: u64, until: u64) -> Agreement {
    Agreement {
        sender: t("FRAF1"),
        recipient: t("DEUD2"),
        version,
        currency: AssetCode::new("EUR").unwrap(),
        valid_from_ms: from,
        valid_until_ms: until,
        rates: BTreeMap::from([
            (Service::VoiceMo, Rate { price: 10, per: 60 }),
            (Service::VoiceMt, Rate { price: 2, per: 60 }),
            (Service::Sms, Rate { price: 3, per: 1 }),
            (
                Service::Data,
                Rate {
                    price: 150,
                    per: 1_000_000,
                },
            ),
        ]),
        discount_bps: 250,
        service_discount_bps: BTreeMap::new(),
    }
}

/// A January 2026 record FRAF1 -> DEUD2 priced by `a`.
fn record(a: &Agreement, sequence: u64) -> UsageRecord {
    let quantities = [
        (Service::VoiceMo, 123_457),
        (Service::VoiceMt, 98_765),
        (Service::Sms, 4_321),
        (Service::Data, 987_654_321),
    ];
    let lines: Vec<ServiceLine> = quantities
        .into_iter()
        .map(|(service, quantity)| {
            let rate = a.rates[&service];
            ServiceLine {
                service,
                quantity,
                rate,
                charge: rate.charge(quantity).unwrap(),
            }
        })
        .collect();
    let charges_total: u128 = lines.iter().map(|l| l.charge).sum();
    let discount = round_half_up(charges_total * u128::from(a.discount_bps), 10_000).unwrap();
    UsageRecord {
        sender: t("FRAF1"),
        recipient: t("DEUD2"),
        sequence,
        period_start_ms: JAN_2026,
        period_end_ms: FEB_2026,
        currency: AssetCode::new("EUR").unwrap(),
        agreement_version: a.version,
        lines,
        charges_total,
        discount,
        total: charges_total - discount,
    }
}

#[test]
fn charges_round_half_up() {
    let rate = Rate { price: 10, per: 60 };
    assert_eq!(rate.charge(60), Some(10));
    assert_eq!(rate.charge(3), Some(1)); // 0.5 -> 1
    assert_eq!(rate.charge(2), Some(0)); // 0.33 -> 0
    assert_eq!(rate.charge(9), Some(2)); // 1.5 -> 2
    assert_eq!(Rate { price: 1, per: 0 }.charge(1), None);
    assert_eq!(
        Rate {
            price: u128::MAX,
            per: 1
        }
        .charge(2),
        None
    );
    // The worked record: 123457 s at 10/60 = 20576.17 -> 20576, ...
    let a = agreement(1, JAN_2026, FEB_2026 + 365 * DAY);
    let r = record(&a, 1);
    assert_eq!(r.lines[0].charge, 20_576);
    assert_eq!(r.lines[1].charge, 3_292); // 3292.17
    assert_eq!(r.lines[2].charge, 12_963);
    assert_eq!(r.lines[3].charge, 148_148); // 148148.148
    assert_eq!(r.charges_total, 184_979);
    assert_eq!(r.discount, 4_624); // 4624.475
    assert_eq!(r.total, 180_355);
}

#[test]
fn a_correct_record_is_accepted_under_the_version_in_force() {
    let v1 = agreement(1, JAN_2026 - 365 * DAY, JAN_2026 + 365 * DAY);
    let mut v2 = agreement(2, JAN_2026, JAN_2026 + 365 * DAY);
    v2.rates.insert(Service::Sms, Rate { price: 2, per: 1 });
    let agreements = [v1.clone(), v2.clone()];
    // Version 2 covers January and is the highest: it is in force.
    let in_force = agreement_in_force(
        &agreements,
        t("FRAF1"),
        t("DEUD2"),
        v1.currency,
        (JAN_2026, FEB_2026),
    );
    assert_eq!(in_force.map(|a| a.version), Some(2));
    let good = record(&v2, 1);
    assert_eq!(
        good.validate(&agreements, FEB_2026).map(|a| a.version),
        Ok(2)
    );
    // A record priced with version 1 names the wrong version.
    let stale = record(&v1, 1);
    assert_eq!(
        stale.validate(&agreements, FEB_2026),
        Err(RecordError::WrongAgreementVersion {
            in_force: 2,
            applied: 1
        })
    );
    // December 2025 is covered by version 1 only.
    let mut december = record(&v1, 1);
    december.period_start_ms = JAN_2026 - 31 * DAY;
    december.period_end_ms = JAN_2026;
    assert!(december.validate(&agreements, FEB_2026).is_ok());
}

#[test]
fn every_violation_has_its_own_error() {
    let a = agreement(1, JAN_2026, JAN_2026 + 365 * DAY);
    let agreements = [a.clone()];
    let now = FEB_2026 + DAY;
    let good = record(&a, 1);
    assert!(good.validate(&agreements, now).is_ok());
    let check = |change: &dyn Fn(&mut UsageRecord), expected: RecordError| {
        let mut r = good.clone();
        change(&mut r);
        assert_eq!(r.validate(&agreements, now), Err(expected));
    };
    check(&|r| r.recipient = t("FRAF1"), RecordError::SameParty);
    check(&|r| r.sequence = 0, RecordError::ZeroSequence);
    check(
        &|r| r.period_end_ms = r.period_start_ms,
        RecordError::EmptyPeriod,
    );
    check(
        &|r| r.period_end_ms = now + 1,
        RecordError::PeriodInFuture {
            period_end_ms: now + 1,
            now_ms: now,
        },
    );
    check(&|r| r.lines.clear(), RecordError::NoLines);
    check(
        &|r| r.lines[1].service = Service::VoiceMo,
        RecordError::DuplicateService(Service::VoiceMo),
    );
    check(
        &|r| r.currency = AssetCode::new("USD").unwrap(),
        RecordError::NoAgreement {
            sender: t("FRAF1"),
            recipient: t("DEUD2"),
            currency: AssetCode::new("USD").unwrap(),
        },
    );
    check(
        &|r| r.agreement_version = 7,
        RecordError::WrongAgreementVersion {
            in_force: 1,
            applied: 7,
        },
    );
    check(
        &|r| r.lines[2].rate.price = 4,
        RecordError::RateMismatch {
            service: Service::Sms,
            applied_price: 4,
            applied_per: 1,
            agreed_price: 3,
            agreed_per: 1,
        },
    );
    check(
        &|r| r.lines[0].charge += 1,
        RecordError::ChargeMismatch {
            service: Service::VoiceMo,
            expected: 20_576,
            stated: 20_577,
        },
    );
    check(
        &|r| r.charges_total += 1,
        RecordError::ChargesTotalMismatch {
            expected: 184_979,
            stated: 184_980,
        },
    );
    check(
        &|r| r.discount = 0,
        RecordError::DiscountMismatch {
            expected: 4_624,
            bps: 250,
            stated: 0,
        },
    );
    check(
        &|r| r.total = r.charges_total,
        RecordError::TotalMismatch {
            expected: 180_355,
            stated: 184_979,
        },
    );
    // A service the agreement does not price.
    let mut no_data = a.clone();
    no_data.rates.remove(&Service::Data);
    let r = record(&a, 1);
    assert_eq!(
        r.validate([&no_data], now),
        Err(RecordError::ServiceNotAgreed(Service::Data))
    );
}

#[test]
fn sequence_numbers_have_no_gaps_or_duplicates() {
    assert_eq!(check_sequence(None, 1), Ok(()));
    assert_eq!(
        check_sequence(None, 2),
        Err(RecordError::SequenceGap {
            expected: 1,
            got: 2
        })
    );
    assert_eq!(check_sequence(Some(4), 5), Ok(()));
    assert_eq!(
        check_sequence(Some(4), 4),
        Err(RecordError::DuplicateSequence(4))
    );
    assert_eq!(
        check_sequence(Some(4), 2),
        Err(RecordError::DuplicateSequence(2))
    );
    assert_eq!(
        check_sequence(Some(4), 7),
        Err(RecordError::SequenceGap {
            expected: 5,
            got: 7
        })
    );
    assert_eq!(check_sequence(Some(4), 0), Err(RecordError::ZeroSequence));
}

fn parties(n: usize) -> Vec<Tadig> {
    (0..n).map(|i| t(&format!("OPR{i:02}"))).collect()
}

fn obligations_strategy() -> impl Strategy<Value = (usize, Vec<(usize, usize, u64)>)> {
    (2usize..=12).prop_flat_map(|n| {
        (
            Just(n),
            prop::collection::vec((0..n, 0..n, 1u64..1_000_000), 0..40),
        )
    })
}

proptest! {
    #[test]
    fn netting_conserves_every_position((n, raw) in obligations_strategy()) {
        let ps = parties(n);
        let obligations: Vec<Obligation> = raw
            .iter()
            .filter(|(d, c, _)| d != c)
            .map(|&(d, c, a)| Obligation { debtor: ps[d], creditor: ps[c], amount: u128::from(a) })
            .collect();
        let positions = net_positions(&obligations).unwrap();
        // The positions sum to zero.
        prop_assert_eq!(positions.values().sum::<i128>(), 0);
        // Each is receivables minus payables.
        for (party, position) in &positions {
            let receivables: i128 = obligations.iter().filter(|o| o.creditor == *party).map(|o| o.amount as i128).sum();
            let payables: i128 = obligations.iter().filter(|o| o.debtor == *party).map(|o| o.amount as i128).sum();
            prop_assert_eq!(*position, receivables - payables);
        }
        // Multilateral: at most N-1 payments (N: operators not at zero), all
        // positive, none to oneself, taking everyone exactly to its position.
        let payments = multilateral(&positions).unwrap();
        let nonzero = positions.values().filter(|p| **p != 0).count();
        prop_assert!(payments.len() <= nonzero.saturating_sub(1), "{} payments for {} operators", payments.len(), nonzero);
        let mut after: BTreeMap<Tadig, i128> = BTreeMap::new();
        for p in &payments {
            prop_assert!(p.amount > 0);
            prop_assert_ne!(p.payer, p.payee);
            *after.entry(p.payee).or_default() += p.amount as i128;
            *after.entry(p.payer).or_default() -= p.amount as i128;
        }
        for (party, position) in &positions {
            prop_assert_eq!(after.get(party).copied().unwrap_or(0), *position);
        }
        // Bilateral netting conserves positions too, with at most one
        // payment per pair.
        let pairwise = bilateral(&obligations).unwrap();
        let mut after: BTreeMap<Tadig, i128> = BTreeMap::new();
        let mut pairs = std::collections::BTreeSet::new();
        for p in &pairwise {
            prop_assert!(pairs.insert((p.payer.min(p.payee), p.payer.max(p.payee))));
            *after.entry(p.payee).or_default() += p.amount as i128;
            *after.entry(p.payer).or_default() -= p.amount as i128;
        }
        for (party, position) in &positions {
            prop_assert_eq!(after.get(party).copied().unwrap_or(0), *position);
        }
    }
}

mod close {
    use super::*;
    use ledger_core::settlement::statement::{CloseError, CloseTerms, FxRate, close};

    fn owed(
        sender: &str,
        recipient: &str,
        currency: &str,
        total: u128,
        n: u8,
    ) -> ([u8; 32], UsageRecord) {
        let a = agreement(1, JAN_2026, FEB_2026);
        let mut r = record(&a, 1);
        r.sender = t(sender);
        r.recipient = t(recipient);
        r.currency = AssetCode::new(currency).unwrap();
        r.total = total;
        ([n; 32], r)
    }

    fn terms(settlement: Option<&str>, fx: Vec<FxRate>) -> CloseTerms {
        CloseTerms {
            period_start_ms: JAN_2026,
            period_end_ms: FEB_2026,
            multilateral: true,
            settlement_currency: settlement.map(|c| AssetCode::new(c).unwrap()),
            fx_rates: fx,
        }
    }

    fn eur_usd(numerator: u128, denominator: u128) -> FxRate {
        FxRate {
            from: AssetCode::new("EUR").unwrap(),
            to: AssetCode::new("USD").unwrap(),
            numerator,
            denominator,
        }
    }

    #[test]
    fn three_operators_in_two_currencies_settled_in_usd() {
        let records = [
            owed("FRAF1", "DEUD2", "EUR", 100_000, 1), // DEU owes FRA 1000.00 EUR = 1080.00 USD
            owed("DEUD2", "GBRCN", "USD", 50_000, 2),  // GBR owes DEU 500.00 USD
            owed("GBRCN", "FRAF1", "EUR", 10_001, 3), // FRA owes GBR 100.01 EUR = 108.0108 -> 108.01 USD
        ];
        let statements = close(&records, &terms(Some("USD"), vec![eur_usd(108, 100)])).unwrap();
        assert_eq!(statements.len(), 3);
        let by: BTreeMap<Tadig, _> = statements.iter().map(|s| (s.operator, s)).collect();
        assert_eq!(by[&t("FRAF1")].receivable, 108_000);
        assert_eq!(by[&t("FRAF1")].payable, 10_801);
        assert_eq!(by[&t("DEUD2")].net(), 50_000 - 108_000);
        assert_eq!(by[&t("GBRCN")].net(), 10_801 - 50_000);
        assert!(
            statements
                .iter()
                .all(|s| s.fx_rates == vec![eur_usd(108, 100)])
        );
        // Each statement's payments move exactly its net, and the nets sum to zero.
        let mut total = 0i128;
        for s in &statements {
            let flow: i128 = s
                .payments
                .iter()
                .map(|p| {
                    if p.payee == s.operator {
                        p.amount as i128
                    } else {
                        -(p.amount as i128)
                    }
                })
                .sum();
            assert_eq!(flow, s.net(), "{}", s.operator);
            total += s.net();
        }
        assert_eq!(total, 0);
        // Three operators: at most two payments.
        assert!(by[&t("DEUD2")].payments.len() <= 2);
    }

    #[test]
    fn without_a_settlement_currency_each_currency_closes_alone() {
        let records = [
            owed("FRAF1", "DEUD2", "EUR", 100, 1),
            owed("DEUD2", "FRAF1", "USD", 40, 2),
        ];
        let statements = close(&records, &terms(None, vec![])).unwrap();
        let currencies: Vec<&str> = statements.iter().map(|s| s.currency.as_str()).collect();
        assert_eq!(currencies, ["EUR", "EUR", "USD", "USD"]);
        assert!(statements.iter().all(|s| s.fx_rates.is_empty()));
    }

    #[test]
    fn a_missing_or_bad_rate_is_refused() {
        let records = [owed("FRAF1", "DEUD2", "EUR", 100, 1)];
        assert_eq!(
            close(&records, &terms(Some("USD"), vec![])),
            Err(CloseError::NoFxRate {
                from: AssetCode::new("EUR").unwrap(),
                to: AssetCode::new("USD").unwrap()
            })
        );
        assert_eq!(
            close(&records, &terms(Some("USD"), vec![eur_usd(0, 1)])),
            Err(CloseError::BadFxRate)
        );
        assert_eq!(
            close(
                &records,
                &terms(Some("USD"), vec![eur_usd(1, 1), eur_usd(2, 1)])
            ),
            Err(CloseError::BadFxRate)
        );
        assert_eq!(
            close(&records, &terms(Some("GBP"), vec![eur_usd(1, 1)])),
            Err(CloseError::BadFxRate)
        );
    }

    proptest! {
        #[test]
        fn every_statement_nets_to_its_payments((n, raw) in obligations_strategy(), multilateral in any::<bool>()) {
            let ps = parties(n);
            let records: Vec<([u8; 32], UsageRecord)> = raw
                .iter()
                .enumerate()
                .filter(|(_, (d, c, _))| d != c)
                .map(|(i, &(d, c, a))| {
                    let (_, mut r) = owed("FRAF1", "DEUD2", if i % 3 == 0 { "USD" } else { "EUR" }, u128::from(a), 0);
                    r.sender = ps[c];
                    r.recipient = ps[d];
                    let mut hash = [0u8; 32];
                    hash[..8].copy_from_slice(&(i as u64).to_be_bytes());
                    (hash, r)
                })
                .collect();
            let mut terms = terms(Some("USD"), vec![eur_usd(97, 89)]);
            terms.multilateral = multilateral;
            let statements = close(&records, &terms).unwrap();
            let mut total = 0i128;
            for s in &statements {
                let flow: i128 = s.payments.iter().map(|p| if p.payee == s.operator { p.amount as i128 } else { -(p.amount as i128) }).sum();
                prop_assert_eq!(flow, s.net());
                let lines: i128 = s.lines.iter().map(|l| if l.receivable { l.amount as i128 } else { -(l.amount as i128) }).sum();
                prop_assert_eq!(lines, s.net());
                total += s.net();
            }
            prop_assert_eq!(total, 0);
            // Every record appears on exactly two statements.
            let appearances: usize = statements.iter().map(|s| s.lines.len()).sum();
            prop_assert_eq!(appearances, records.len() * 2);
        }
    }
}

#[test]
fn per_service_discounts_apply_line_by_line() {
    let mut a = agreement(1, JAN_2026, JAN_2026 + 365 * DAY);
    // 10% off data, the 2.5% agreement-wide discount on the rest.
    a.service_discount_bps.insert(Service::Data, 1_000);
    assert_eq!(a.check(), Ok(()));
    let mut r = record(&a, 1);
    // Lines: 20576, 3292, 12963 at 250 bps; 148148 at 1000 bps.
    let expected = 514 + 82 + 324 + 14_815;
    assert_eq!(a.discount(&r.lines, r.charges_total), Some(expected));
    r.discount = expected;
    r.total = r.charges_total - expected;
    assert!(r.validate([&a], FEB_2026).is_ok());
    // The whole-total rule no longer holds for this agreement.
    let mut whole = r.clone();
    whole.discount = round_half_up(whole.charges_total * 250, 10_000).unwrap();
    whole.total = whole.charges_total - whole.discount;
    assert!(matches!(
        whole.validate([&a], FEB_2026),
        Err(RecordError::DiscountMismatch { .. })
    ));
    // A discount above 100%, or for a service not priced, is refused.
    let mut bad = a.clone();
    bad.service_discount_bps.insert(Service::Sms, 10_001);
    assert!(bad.check().is_err());
    let mut unpriced = a.clone();
    unpriced.rates.remove(&Service::VoiceMt);
    unpriced.service_discount_bps.insert(Service::VoiceMt, 100);
    assert!(unpriced.check().is_err());
}
