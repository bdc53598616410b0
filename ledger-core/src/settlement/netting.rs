//! Netting: from what operators owe each other (accepted records, credit
//! and debit notes, in one currency) to as few payments as possible.
//!
//! - [`net_positions`]: each operator's receivables minus its payables;
//!   the positions sum to zero.
//! - [`bilateral`]: one payment per pair of operators that owe each other
//!   anything, for the difference.
//! - [`multilateral`]: payments that take every operator to its net
//!   position. First every debtor whose debt equals a creditor's claim pays
//!   that creditor (one payment settles two operators), then the largest
//!   remaining debtor pays the largest remaining creditor until all are
//!   settled. Every payment settles at least one operator and the last
//!   settles two, so `N` operators with a non-zero position need at most
//!   `N − 1` payments. (The true minimum is `N` minus the largest number of
//!   disjoint zero-sum groups, which is NP-hard to find in general; the
//!   exact-match pass finds the two-operator groups.) Ties are broken by
//!   TADIG code, so the result is deterministic.

use std::collections::BTreeMap;

use super::Tadig;

/// `debtor` owes `creditor` `amount` minor units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Obligation {
    /// Who owes.
    pub debtor: Tadig,
    /// Who is owed.
    pub creditor: Tadig,
    /// Minor units.
    pub amount: u128,
}

/// `payer` pays `payee` `amount` minor units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Payment {
    /// Who pays.
    pub payer: Tadig,
    /// Who is paid.
    pub payee: Tadig,
    /// Minor units (more than zero).
    pub amount: u128,
}

/// Netting cannot be done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NettingError {
    /// An amount or a position exceeds what netting can hold (2^127 − 1).
    #[error("an amount or position exceeds 2^127 - 1 minor units")]
    Overflow,
    /// An operator owes itself.
    #[error("{0} cannot owe itself")]
    SelfObligation(Tadig),
    /// Positions that do not sum to zero.
    #[error("net positions must sum to zero")]
    Unbalanced,
}

/// Each operator's net position: what it is owed minus what it owes
/// (positive: it receives). Operators whose position is zero are kept.
pub fn net_positions(obligations: &[Obligation]) -> Result<BTreeMap<Tadig, i128>, NettingError> {
    let mut positions: BTreeMap<Tadig, i128> = BTreeMap::new();
    for o in obligations {
        if o.debtor == o.creditor {
            return Err(NettingError::SelfObligation(o.debtor));
        }
        let amount = i128::try_from(o.amount).map_err(|_| NettingError::Overflow)?;
        let creditor = positions.entry(o.creditor).or_default();
        *creditor = creditor.checked_add(amount).ok_or(NettingError::Overflow)?;
        let debtor = positions.entry(o.debtor).or_default();
        *debtor = debtor.checked_sub(amount).ok_or(NettingError::Overflow)?;
    }
    Ok(positions)
}

/// One payment per pair of operators for the difference of what they owe
/// each other (none for a pair that is even), ordered by payer and payee.
pub fn bilateral(obligations: &[Obligation]) -> Result<Vec<Payment>, NettingError> {
    // Per unordered pair (low, high): what low owes high, minus the reverse.
    let mut pairs: BTreeMap<(Tadig, Tadig), i128> = BTreeMap::new();
    for o in obligations {
        if o.debtor == o.creditor {
            return Err(NettingError::SelfObligation(o.debtor));
        }
        let amount = i128::try_from(o.amount).map_err(|_| NettingError::Overflow)?;
        let (key, signed) = if o.debtor < o.creditor {
            ((o.debtor, o.creditor), amount)
        } else {
            ((o.creditor, o.debtor), -amount)
        };
        let entry = pairs.entry(key).or_default();
        *entry = entry.checked_add(signed).ok_or(NettingError::Overflow)?;
    }
    let mut payments: Vec<Payment> = pairs
        .into_iter()
        .filter(|(_, net)| *net != 0)
        .map(|((low, high), net)| {
            let amount = net.unsigned_abs();
            if net > 0 {
                Payment {
                    payer: low,
                    payee: high,
                    amount,
                }
            } else {
                Payment {
                    payer: high,
                    payee: low,
                    amount,
                }
            }
        })
        .collect();
    payments.sort();
    Ok(payments)
}

/// Payments that take every operator to its net position (see the module
/// docs), ordered as made.
pub fn multilateral(positions: &BTreeMap<Tadig, i128>) -> Result<Vec<Payment>, NettingError> {
    let mut sum: i128 = 0;
    for position in positions.values() {
        sum = sum.checked_add(*position).ok_or(NettingError::Overflow)?;
    }
    if sum != 0 {
        return Err(NettingError::Unbalanced);
    }
    // What each still has to receive (creditors) or pay (debtors).
    let mut creditors: BTreeMap<Tadig, u128> = BTreeMap::new();
    let mut debtors: BTreeMap<Tadig, u128> = BTreeMap::new();
    for (party, position) in positions {
        if *position > 0 {
            creditors.insert(*party, position.unsigned_abs());
        } else if *position < 0 {
            debtors.insert(*party, position.unsigned_abs());
        }
    }
    let mut payments = Vec::new();
    // Pass 1: a debtor owing exactly what a creditor is owed pays it.
    let mut by_amount: BTreeMap<u128, Vec<Tadig>> = BTreeMap::new();
    for (party, amount) in &creditors {
        by_amount.entry(*amount).or_default().push(*party);
    }
    for list in by_amount.values_mut() {
        // Pop from the back: reverse so the lowest code is taken first.
        list.reverse();
    }
    let debtor_list: Vec<(Tadig, u128)> = debtors.iter().map(|(p, a)| (*p, *a)).collect();
    for (debtor, amount) in debtor_list {
        if let Some(creditor) = by_amount.get_mut(&amount).and_then(Vec::pop) {
            payments.push(Payment {
                payer: debtor,
                payee: creditor,
                amount,
            });
            debtors.remove(&debtor);
            creditors.remove(&creditor);
        }
    }
    // Pass 2: the largest debtor pays the largest creditor.
    while let (Some(debtor), Some(creditor)) = (largest(&debtors), largest(&creditors)) {
        let (owed, due) = (debtors[&debtor], creditors[&creditor]);
        let amount = owed.min(due);
        payments.push(Payment {
            payer: debtor,
            payee: creditor,
            amount,
        });
        settle(&mut debtors, debtor, amount);
        settle(&mut creditors, creditor, amount);
    }
    Ok(payments)
}

/// The party with the largest amount (the lowest code among equals).
fn largest(amounts: &BTreeMap<Tadig, u128>) -> Option<Tadig> {
    amounts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(party, _)| *party)
}

fn settle(amounts: &mut BTreeMap<Tadig, u128>, party: Tadig, paid: u128) {
    if let Some(left) = amounts.get_mut(&party) {
        *left -= paid;
        if *left == 0 {
            amounts.remove(&party);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(code: &str) -> Tadig {
        code.parse().unwrap_or(Tadig(*b"XXXX0"))
    }

    fn owes(debtor: &str, creditor: &str, amount: u128) -> Obligation {
        Obligation {
            debtor: t(debtor),
            creditor: t(creditor),
            amount,
        }
    }

    #[test]
    fn a_worked_example() {
        // A owes B 100, B owes C 100, C owes A 30.
        let obligations = [
            owes("AAAA1", "BBBB1", 100),
            owes("BBBB1", "CCCC1", 100),
            owes("CCCC1", "AAAA1", 30),
        ];
        let positions = net_positions(&obligations).unwrap();
        assert_eq!(positions[&t("AAAA1")], -70);
        assert_eq!(positions[&t("BBBB1")], 0);
        assert_eq!(positions[&t("CCCC1")], 70);
        assert_eq!(
            multilateral(&positions).unwrap(),
            vec![Payment {
                payer: t("AAAA1"),
                payee: t("CCCC1"),
                amount: 70
            }]
        );
        assert_eq!(bilateral(&obligations).unwrap().len(), 3);
    }

    #[test]
    fn exact_matches_settle_two_at_once() {
        // Greedy alone would need 3 payments for {-5, -3, +3, +5}'s pairs
        // taken largest first (5->5 then 3->3 happens to be 2); with
        // {-6,-4,+5,+5} it needs 3 (the minimum, no exact matches).
        let mut positions = BTreeMap::new();
        positions.insert(t("AAAA1"), -3);
        positions.insert(t("BBBB1"), -4);
        positions.insert(t("CCCC1"), 3);
        positions.insert(t("DDDD1"), 4);
        let payments = multilateral(&positions).unwrap();
        assert_eq!(payments.len(), 2);
        assert!(payments.contains(&Payment {
            payer: t("AAAA1"),
            payee: t("CCCC1"),
            amount: 3
        }));
    }

    #[test]
    fn refusals() {
        assert_eq!(
            net_positions(&[owes("AAAA1", "AAAA1", 1)]),
            Err(NettingError::SelfObligation(t("AAAA1")))
        );
        assert_eq!(
            net_positions(&[owes("AAAA1", "BBBB1", u128::MAX)]),
            Err(NettingError::Overflow)
        );
        let mut unbalanced = BTreeMap::new();
        unbalanced.insert(t("AAAA1"), 1);
        assert_eq!(multilateral(&unbalanced), Err(NettingError::Unbalanced));
    }
}
