//! Fault injection for the crash tests: a setting that names one step of the
//! transfer engine at which the engine halts, so that a test can `kill -9`
//! the process at exactly that step and show that a restart finishes the
//! transfer on every leg.
//!
//! The setting is `transfers.fault_step` (environment
//! `LOCKGATE_FAULT_STEP`), written `<point>:<action>`:
//!
//! | point | where the engine halts |
//! |---|---|
//! | `before-write-ahead` | the action is signed but not yet written ahead to the database |
//! | `after-write-ahead` | the signed action is in the database, not yet submitted to the ledger |
//! | `after-submit` | the ledger committed the action; the transfer's new state is not yet recorded |
//!
//! (on an EVM chain, `before-write-ahead` is before the transaction is sent,
//! `after-write-ahead` right after it was sent; see `crate::evm`)
//! and `<action>` is one of the engine's ledger actions: `target-lock`,
//! `source-claim`, `target-refund`, `source-refund`.
//!
//! On reaching the step the engine prints one line to standard output,
//! `lockgate fault-injection halted at <point>:<action> transfer <id>`, and
//! stops making progress (every other part of the process keeps running) until
//! the process is killed. A production configuration never sets it; the
//! gateway logs a warning at start when it is set.

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use serde::Deserialize;

/// Where in an action the engine halts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// Signed, not yet written ahead.
    BeforeWriteAhead,
    /// Written ahead, not yet submitted.
    AfterWriteAhead,
    /// Committed on the ledger, not yet recorded in the transfer.
    AfterSubmit,
}

impl FaultPoint {
    /// Every point, in the order an action passes them.
    pub const ALL: [FaultPoint; 3] = [
        FaultPoint::BeforeWriteAhead,
        FaultPoint::AfterWriteAhead,
        FaultPoint::AfterSubmit,
    ];

    /// The name used in the setting.
    pub fn name(self) -> &'static str {
        match self {
            FaultPoint::BeforeWriteAhead => "before-write-ahead",
            FaultPoint::AfterWriteAhead => "after-write-ahead",
            FaultPoint::AfterSubmit => "after-submit",
        }
    }
}

/// The engine's ledger actions, as named in the write-ahead log.
pub const ACTIONS: [&str; 4] = [
    "target-lock",
    "source-claim",
    "target-refund",
    "source-refund",
];

/// One named step: a point in one kind of action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultStep {
    /// Where.
    pub point: FaultPoint,
    /// Which action (one of [`ACTIONS`]).
    pub action: &'static str,
}

/// The setting does not name a step.
#[derive(Debug, thiserror::Error)]
#[error(
    "fault step must be <point>:<action> with point one of before-write-ahead, \
     after-write-ahead, after-submit and action one of target-lock, source-claim, \
     target-refund, source-refund; got {0:?}"
)]
pub struct BadFaultStep(String);

impl FromStr for FaultStep {
    type Err = BadFaultStep;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadFaultStep(text.to_string());
        let (point, action) = text.split_once(':').ok_or_else(bad)?;
        let point = FaultPoint::ALL
            .into_iter()
            .find(|p| p.name() == point)
            .ok_or_else(bad)?;
        let action = ACTIONS.into_iter().find(|a| *a == action).ok_or_else(bad)?;
        Ok(FaultStep { point, action })
    }
}

impl<'de> Deserialize<'de> for FaultStep {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for FaultStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.point.name(), self.action)
    }
}

/// Halts the calling task for good when `configured` names this step.
pub async fn reach(
    configured: Option<&FaultStep>,
    point: FaultPoint,
    action: &str,
    transfer_id: &str,
) {
    if matches(configured, point, action, transfer_id) {
        std::future::pending::<()>().await;
    }
}

/// True when `configured` names this step, after announcing the halt (the
/// caller then halts for good).
pub fn matches(
    configured: Option<&FaultStep>,
    point: FaultPoint,
    action: &str,
    transfer_id: &str,
) -> bool {
    let Some(step) = configured else {
        return false;
    };
    if step.point != point || step.action != action {
        return false;
    }
    tracing::warn!(%step, transfer_id, "fault injection: the transfer engine halts here");
    {
        let mut out = std::io::stdout().lock();
        // Best effort: a test waiting for the line times out if it is lost.
        let _ = writeln!(
            out,
            "lockgate fault-injection halted at {step} transfer {transfer_id}"
        );
        let _ = out.flush();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_round_trips_and_nothing_else_parses() {
        for point in FaultPoint::ALL {
            for action in ACTIONS {
                let text = format!("{}:{action}", point.name());
                let step: FaultStep = text.parse().unwrap();
                assert_eq!(step.point, point);
                assert_eq!(step.to_string(), text);
            }
        }
        for bad in [
            "",
            "after-submit",
            "after-submit:",
            ":target-lock",
            "after-submit:target-lock:x",
            "after-submits:target-lock",
            "AFTER-SUBMIT:target-lock",
            "after-submit:issue",
        ] {
            assert!(bad.parse::<FaultStep>().is_err(), "{bad:?} parsed");
        }
    }
}
