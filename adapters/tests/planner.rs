//! The timelock planner: worked routes with their numbers, refusals, and
//! properties over random routes (every hop can claim after the preimage
//! appears, the recipient has its window, rounding only widens margins,
//! refusal exactly when a limit is passed, slower engines never get shorter
//! locks).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use adapters::finality::FinalityModel;
use adapters::planner::{LegSpec, PlanError, PlanParams, claim_margin_ms, plan};
use proptest::prelude::*;

const HOUR_MS: u64 = 3_600_000;

fn evm() -> FinalityModel {
    FinalityModel {
        inclusion_ms_max: 60_000,
        confirmations: 12,
        block_interval_ms_max: 15_000,
        clock_drift_ms_max: 15_000,
        time_resolution_ms: 1_000,
    }
}

fn params() -> PlanParams {
    PlanParams {
        now_ms: 1_800_000_000_000,
        reaction_ms_max: 30_000,
        claim_window_ms: 600_000,
        safety_margin_ms: 60_000,
    }
}

#[test]
fn built_in_to_evm_route_by_hand() {
    let built_in = FinalityModel::built_in(5_000, 2_000);
    let legs = [
        LegSpec {
            finality: built_in,
            timelock_ms_max: 24 * HOUR_MS,
        },
        LegSpec {
            finality: evm(),
            timelock_ms_max: 24 * HOUR_MS,
        },
    ];
    let p = params();
    let plan = plan(&legs, &p).unwrap();
    // Set-up: built-in lock final within 5 s + 30 s reaction; EVM lock within 240 s + 30 s.
    assert_eq!(plan.legs[0].lock_by_ms, p.now_ms + 35_000);
    assert_eq!(plan.legs[1].lock_by_ms, p.now_ms + 35_000 + 270_000);
    // Last leg: lock-by + 600 s window + 240 s finality + 15 s drift + 60 s margin, in whole seconds.
    assert_eq!(
        plan.legs[1].expires_at_ms,
        p.now_ms + 305_000 + 600_000 + 240_000 + 15_000 + 60_000
    );
    // First leg: + EVM final 240 s + drift 15 s + reaction 30 s + built-in final 5 s + drift 2 s + margin 60 s.
    assert_eq!(plan.legs[0].margin_ms, 0);
    assert_eq!(plan.legs[1].margin_ms, 352_000);
    assert_eq!(
        plan.legs[0].expires_at_ms,
        plan.legs[1].expires_at_ms + 352_000
    );
    assert_eq!(
        plan.legs[1].expires_at_ms % 1_000,
        0,
        "EVM timelocks are whole seconds"
    );
}

#[test]
fn a_route_too_slow_for_its_limits_is_refused() {
    let legs = [
        LegSpec {
            finality: FinalityModel::built_in(5_000, 2_000),
            timelock_ms_max: 20 * 60_000,
        },
        LegSpec {
            finality: evm(),
            timelock_ms_max: 24 * HOUR_MS,
        },
    ];
    let error = plan(&legs, &params()).unwrap_err();
    assert_eq!(
        error,
        PlanError::TimelockTooLong {
            leg: 0,
            needed_ms: 1_572_000,
            max_ms: 1_200_000,
        }
    );
    assert!(error.to_string().contains("too slow"));
    assert_eq!(plan(&[], &params()), Err(PlanError::NoLegs));
    let many = vec![legs[1]; 17];
    assert_eq!(plan(&many, &params()), Err(PlanError::TooManyLegs));
}

fn finality() -> impl Strategy<Value = FinalityModel> {
    (
        0u64..120_000,
        0u32..64,
        0u64..20_000,
        0u64..30_000,
        prop::sample::select(vec![1u64, 1_000, 60_000]),
    )
        .prop_map(
            |(inclusion, confirmations, interval, drift, resolution)| FinalityModel {
                inclusion_ms_max: inclusion,
                confirmations,
                block_interval_ms_max: interval,
                clock_drift_ms_max: drift,
                time_resolution_ms: resolution,
            },
        )
}

fn route() -> impl Strategy<Value = (Vec<LegSpec>, PlanParams)> {
    (
        prop::collection::vec((finality(), 0u64..48 * HOUR_MS), 1..6),
        0u64..4_000_000_000_000,
        0u64..120_000,
        0u64..3_600_000,
        0u64..600_000,
    )
        .prop_map(|(legs, now, reaction, window, margin)| {
            let legs = legs
                .into_iter()
                .map(|(finality, timelock_ms_max)| LegSpec {
                    finality,
                    timelock_ms_max,
                })
                .collect();
            (
                legs,
                PlanParams {
                    now_ms: now,
                    reaction_ms_max: reaction,
                    claim_window_ms: window,
                    safety_margin_ms: margin,
                },
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_party_can_claim_after_the_preimage_appears((legs, p) in route()) {
        let unlimited: Vec<LegSpec> = legs.iter().map(|l| LegSpec { timelock_ms_max: u64::MAX, ..*l }).collect();
        let plan = plan(&unlimited, &p).unwrap();
        let n = legs.len();
        for i in 0..n - 1 {
            let needed = claim_margin_ms(&legs[i].finality, &legs[i + 1].finality, &p).unwrap();
            prop_assert!(plan.legs[i].expires_at_ms >= plan.legs[i + 1].expires_at_ms + needed);
            prop_assert_eq!(plan.legs[i + 1].margin_ms, plan.legs[i].expires_at_ms - plan.legs[i + 1].expires_at_ms);
        }
        let last = &legs[n - 1].finality;
        prop_assert!(plan.legs[n - 1].expires_at_ms
            >= plan.legs[n - 1].lock_by_ms + p.claim_window_ms + last.final_ms_max() + last.clock_drift_ms_max);
        for (i, leg) in legs.iter().enumerate() {
            prop_assert_eq!(plan.legs[i].expires_at_ms % leg.finality.time_resolution_ms, 0);
            if i > 0 {
                prop_assert!(plan.legs[i].lock_by_ms >= plan.legs[i - 1].lock_by_ms);
            }
        }
    }

    #[test]
    fn refused_exactly_when_a_limit_is_passed((legs, p) in route()) {
        let unlimited: Vec<LegSpec> = legs.iter().map(|l| LegSpec { timelock_ms_max: u64::MAX, ..*l }).collect();
        let full = plan(&unlimited, &p).unwrap();
        let first_too_long = legs
            .iter()
            .zip(&full.legs)
            .position(|(leg, planned)| planned.expires_at_ms - p.now_ms > leg.timelock_ms_max);
        match (plan(&legs, &p), first_too_long) {
            (Ok(limited), None) => prop_assert_eq!(limited, full),
            (Err(PlanError::TimelockTooLong { leg, .. }), Some(expected)) => prop_assert_eq!(leg, expected),
            (other, expected) => prop_assert!(false, "plan {:?} but first leg over its limit {:?}", other, expected),
        }
    }

    #[test]
    fn a_slower_engine_never_gets_shorter_locks((legs, p) in route(), extra in 1u64..100_000) {
        let unlimited: Vec<LegSpec> = legs.iter().map(|l| LegSpec { timelock_ms_max: u64::MAX, ..*l }).collect();
        let fast = plan(&unlimited, &p).unwrap();
        let slow = plan(&unlimited, &PlanParams { reaction_ms_max: p.reaction_ms_max + extra, ..p }).unwrap();
        for (f, s) in fast.legs.iter().zip(&slow.legs) {
            prop_assert!(s.expires_at_ms >= f.expires_at_ms);
        }
    }
}
