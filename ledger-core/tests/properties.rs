//! Property tests of the ledger invariants over random streams of valid and
//! invalid transactions (see `support/sim.rs` for the driver and the checks):
//! supply changes only by Issue/Burn, balances plus open locks equal supply
//! (nothing negative, nothing created or lost), an HTLC settles at most once,
//! a signed transaction never applies twice, a rejected transaction leaves the
//! state identical, and a batch equals its transactions applied one by one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use proptest::prelude::*;
use support::sim::{Action, Driver};

fn action() -> impl Strategy<Value = Action> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<u8>(),
    )
        .prop_map(|(kind, from, to, amount, flag)| Action {
            kind,
            from,
            to,
            amount,
            flag,
        })
}

/// Setup actions that register the three assets and fund accounts with
/// them, so that random streams reach the interesting states (locks,
/// claims) quickly. The driver picks the asset of an action from `to % 3`
/// and the account from `to % 6`, so `to` in 0..6 funds every account with
/// one asset each, two accounts per asset.
fn setup(driver: &mut Driver) {
    for asset in 0..3u8 {
        let register = driver.transaction(Action {
            kind: 0,
            from: 0,
            to: asset,
            amount: 0,
            flag: 2 + asset,
        });
        driver.step(vec![register], 0);
    }
    for to in 0..6u8 {
        let issue = driver.transaction(Action {
            kind: 1,
            from: 0,
            to,
            amount: 900,
            flag: 2,
        });
        driver.step(vec![issue], 0);
    }
}

proptest! {
    // Failures print their minimal case; integration tests have no lib.rs
    // beside them for proptest's regression files, so none are written.
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_one_transaction_at_a_time(
        actions in prop::collection::vec((action(), 0u64..1500), 1..120),
    ) {
        let mut driver = Driver::new(6);
        setup(&mut driver);
        for (action, advance_ms) in actions {
            let tx = driver.transaction(action);
            driver.step(vec![tx], advance_ms);
        }
    }

    #[test]
    fn invariants_hold_in_batches(
        batches in prop::collection::vec(prop::collection::vec(action(), 1..24), 1..12),
        advance_ms in 0u64..3000,
    ) {
        let mut driver = Driver::new(6);
        setup(&mut driver);
        for batch in batches {
            let txs = batch.into_iter().map(|a| driver.transaction(a)).collect();
            driver.step(txs, advance_ms);
        }
    }
}
