//! The timelock planner: every leg's HTLC expiry, derived from each
//! ledger's [`FinalityModel`] and the engine's reaction time, so that every
//! party can always claim after the preimage appears; a route where that
//! cannot hold within each ledger's longest acceptable timelock is refused.
//!
//! A route is a list of legs, source first. On leg `i` a payer locks funds
//! to a payee under one hashlock; the payee of leg `i` is the payer of leg
//! `i + 1` (a connector or a peer gateway), and the payee of the last leg is
//! the recipient. Locks are set up source first; the recipient claims the
//! last leg, which reveals the preimage; every hop then claims the leg
//! before its own with that preimage.
//!
//! With `final(i)` = [`FinalityModel::final_ms_max`] of leg `i`'s ledger,
//! `drift(i)` its clock drift, `R` the engine's worst-case reaction time,
//! `S` the safety margin and `W` the recipient's claim window:
//!
//! - **lock-by** times (the schedule of the set-up): leg `i`'s lock must be
//!   final by `lock_by(i) = now + Σ_{j ≤ i} (final(j) + R)`. The engine must
//!   not lock leg `i + 1` if leg `i`'s lock was not final by `lock_by(i)`:
//!   the later expiries assumed it was.
//! - **last leg**: `E(n-1) = lock_by(n-1) + W + final(n-1) + drift(n-1) + S`:
//!   once every lock is in place the recipient has `W` to submit its claim,
//!   which is then final before the lock expires even with the ledger's
//!   clock running fast.
//! - **every other leg**: `E(i) = E(i+1) + margin(i)` with
//!   `margin(i) = final(i+1) + drift(i+1) + R + final(i) + drift(i) + S`:
//!   if the payee of leg `i + 1` claims at the last moment, the claim (and
//!   the preimage in it) is final on ledger `i + 1` within `final(i+1)` even
//!   by a drifting clock; the hop reacts within `R`; its own claim on ledger
//!   `i` is final within `final(i)`, before leg `i` expires by that ledger's
//!   clock. So a hop that loses the outgoing leg to a claim always wins the
//!   incoming one.
//! - each expiry is rounded up to its ledger's timelock resolution, working
//!   from the last leg back, so rounding only ever widens a margin;
//! - the plan is refused when a leg's expiry is further from now than that
//!   leg's `timelock_ms_max` (the longest lock its ledger or its payer will
//!   hold): the route would tie up liquidity longer than allowed, and no
//!   shorter expiry is safe.

use crate::finality::FinalityModel;

/// Most legs in one route.
pub const LEGS_MAX: usize = 16;

/// One leg of a route, as the planner needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegSpec {
    /// The finality of the leg's ledger.
    pub finality: FinalityModel,
    /// The longest timelock (from now) acceptable on this leg.
    pub timelock_ms_max: u64,
}

/// Inputs that are not per leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanParams {
    /// Now, ms since the Unix epoch.
    pub now_ms: u64,
    /// The engine's worst-case time to notice an event and submit its
    /// reaction (a claim, the next lock).
    pub reaction_ms_max: u64,
    /// Time the recipient gets to claim once every lock is in place.
    pub claim_window_ms: u64,
    /// Extra margin added to every step.
    pub safety_margin_ms: u64,
}

/// The plan of one leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegPlan {
    /// The HTLC's expiry on this leg (ms since the Unix epoch).
    pub expires_at_ms: u64,
    /// This leg's lock must be final by then, or the set-up stops here.
    pub lock_by_ms: u64,
    /// How much earlier than the previous leg this leg expires (0 for the
    /// source leg): the time its payee has to claim the previous leg.
    pub margin_ms: u64,
}

/// A route's plan, source leg first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// One plan per leg.
    pub legs: Vec<LegPlan>,
}

/// Why no safe plan exists.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A route needs at least one leg.
    #[error("a route needs at least one leg")]
    NoLegs,
    /// Too many legs.
    #[error("a route has at most {LEGS_MAX} legs")]
    TooManyLegs,
    /// A leg would have to stay locked longer than it may.
    #[error(
        "leg {leg} would have to stay locked for {needed_ms} ms, longer than its limit of {max_ms} ms: \
         the ledgers on this route are too slow to make every claim safe within the limit"
    )]
    TimelockTooLong {
        /// The leg (0 = source).
        leg: usize,
        /// How long it would have to stay locked.
        needed_ms: u64,
        /// Its limit.
        max_ms: u64,
    },
    /// The times do not fit in 64 bits.
    #[error("the timelocks overflow")]
    Overflow,
}

fn add(a: u64, b: u64) -> Result<u64, PlanError> {
    a.checked_add(b).ok_or(PlanError::Overflow)
}

fn round_up(value: u64, resolution: u64) -> Result<u64, PlanError> {
    if resolution <= 1 {
        return Ok(value);
    }
    let remainder = value % resolution;
    if remainder == 0 {
        Ok(value)
    } else {
        add(value, resolution - remainder)
    }
}

/// The margin between leg `i` and leg `i + 1` (see the module docs).
pub fn claim_margin_ms(
    inner: &FinalityModel,
    outer: &FinalityModel,
    params: &PlanParams,
) -> Result<u64, PlanError> {
    [
        outer.final_ms_max(),
        outer.clock_drift_ms_max,
        params.reaction_ms_max,
        inner.final_ms_max(),
        inner.clock_drift_ms_max,
        params.safety_margin_ms,
    ]
    .into_iter()
    .try_fold(0u64, add)
}

/// Plans a route (see the module docs for the rules).
pub fn plan(legs: &[LegSpec], params: &PlanParams) -> Result<Plan, PlanError> {
    if legs.is_empty() {
        return Err(PlanError::NoLegs);
    }
    if legs.len() > LEGS_MAX {
        return Err(PlanError::TooManyLegs);
    }
    let mut lock_by = Vec::with_capacity(legs.len());
    let mut at = params.now_ms;
    for leg in legs {
        at = add(
            add(at, leg.finality.final_ms_max())?,
            params.reaction_ms_max,
        )?;
        lock_by.push(at);
    }
    let n = legs.len();
    let last = &legs[n - 1].finality;
    let mut expiries = vec![0u64; n];
    let mut margins = vec![0u64; n];
    let last_expiry = [
        params.claim_window_ms,
        last.final_ms_max(),
        last.clock_drift_ms_max,
        params.safety_margin_ms,
    ]
    .into_iter()
    .try_fold(lock_by[n - 1], add)?;
    expiries[n - 1] = round_up(last_expiry, last.time_resolution_ms)?;
    for i in (0..n - 1).rev() {
        let margin = claim_margin_ms(&legs[i].finality, &legs[i + 1].finality, params)?;
        expiries[i] = round_up(
            add(expiries[i + 1], margin)?,
            legs[i].finality.time_resolution_ms,
        )?;
        margins[i + 1] = expiries[i] - expiries[i + 1];
    }
    for (i, leg) in legs.iter().enumerate() {
        let needed_ms = expiries[i] - params.now_ms;
        if needed_ms > leg.timelock_ms_max {
            return Err(PlanError::TimelockTooLong {
                leg: i,
                needed_ms,
                max_ms: leg.timelock_ms_max,
            });
        }
    }
    Ok(Plan {
        legs: (0..n)
            .map(|i| LegPlan {
                expires_at_ms: expiries[i],
                lock_by_ms: lock_by[i],
                margin_ms: margins[i],
            })
            .collect(),
    })
}
