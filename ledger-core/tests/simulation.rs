//! Seeded simulation: long random runs of valid and invalid transactions in
//! batches, with time moving on, sealed into signed blocks; the invariants of
//! `support/sim.rs` are checked after every batch, and at the end the chain
//! verifier replays all blocks from scratch and must reach the same state.
//!
//! Every run prints its seed. To replay a failure exactly:
//! `LEDGER_SIM_SEED=<seed> cargo test -p ledger-core --test simulation`.
//! `LEDGER_SIM_STEPS` sets the number of batches per seed (default 300).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ledger_core::block::ChainTip;
use ledger_core::verify::{ChainVerifier, ExportedBlock};
use ledger_core::{VerifiedTransaction, seal_block};
use support::sim::{Driver, SplitMix64};
use support::*;

fn run(seed: u64, steps: u64) {
    println!("simulation seed {seed} ({steps} batches): replay with LEDGER_SIM_SEED={seed}");
    let mut rng = SplitMix64(seed);
    let mut driver = Driver::new(10);
    let producer = key(999);
    let mut tip = ChainTip::GENESIS;
    let mut exported = Vec::new();
    let mut applied_total = 0usize;
    for step in 0..steps {
        // Early batches lean on registering and issuing so the rest has funds.
        let size = 1 + (rng.next() % 32) as usize;
        let advance_ms = rng.next() % 2000;
        let txs: Vec<_> = (0..size)
            .map(|_| {
                let mut action = rng.action();
                if step < 20 {
                    action.kind %= 2;
                }
                driver.transaction(action)
            })
            .collect();
        let applied_before = driver.applied.len();
        driver.step(txs, advance_ms);
        let applied: Vec<VerifiedTransaction> = driver.applied[applied_before..]
            .iter()
            .map(|(tx, _)| tx.clone().verify().unwrap())
            .collect();
        applied_total += applied.len();
        let (block, _) = seal_block(
            &ledger_core::BlockContext {
                chain_id: chain(),
                timestamp_ms: driver.now_ms,
            },
            &tip,
            &applied,
            &producer,
        )
        .unwrap();
        tip = ChainTip {
            next_height: tip.next_height + 1,
            last_hash: block.header.header.hash(),
            last_timestamp_ms: driver.now_ms,
        };
        exported.push(ExportedBlock::from_block(&block));
    }
    // The simulation must exercise the interesting paths, not just rejections.
    assert!(
        applied_total > steps as usize,
        "seed {seed}: too few transactions applied"
    );
    println!(
        "seed {seed}: {applied_total} applied; rejections {:?}",
        driver.rejections
    );

    let mut verifier = ChainVerifier::new(chain(), vec![producer.address()]);
    for block in &exported {
        verifier.push_block(block).unwrap_or_else(|fault| {
            panic!("seed {seed}: verifier rejected an honest chain: {fault}")
        });
    }
    let summary = verifier.finish().unwrap();
    assert_eq!(
        summary.state, driver.state,
        "seed {seed}: replay reached another state"
    );
    assert_eq!(summary.transactions as usize, applied_total);
    assert_eq!(summary.tip, tip);
}

#[test]
fn seeded_simulation() {
    let steps = std::env::var("LEDGER_SIM_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    match std::env::var("LEDGER_SIM_SEED") {
        Ok(seed) => run(seed.parse().expect("LEDGER_SIM_SEED is a u64"), steps),
        Err(_) => {
            for seed in [1, 2, 3, 0xdead_beef, 20261125] {
                run(seed, steps);
            }
        }
    }
}
