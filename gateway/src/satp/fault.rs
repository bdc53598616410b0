//! Fault injection for the SATP crash tests: `satp.fault_step` (environment
//! `LOCKGATE_SATP_FAULT_STEP`) names one protocol step at which this
//! gateway halts, so a test can `kill -9` it exactly there. Written
//! `<point>:<message>`, with `<message>` a message type's short name
//! (`lock-assert-msg`, `commit-ready-msg`, ...) and `<point>`:
//!
//! | point | side | where the gateway halts |
//! |---|---|---|
//! | `after-write-ahead` | client | the message is signed and stored, not yet sent |
//! | `after-send` | client | the peer answered; the answer is not yet stored |
//! | `after-receive` | server | the message is verified and its work done (a lock made); the answer is not yet stored or sent |
//! | `after-store` | server | the answer is stored, not yet sent |
//!
//! On reaching the step the gateway prints
//! `lockgate fault-injection halted at <point>:<message> session <id>` on
//! standard output and that task never resumes (the process keeps serving
//! everything else) until the process is killed.

use std::io::Write;
use std::str::FromStr;

use adapters::satp::messages::FLOW;

/// A named step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SatpFault {
    /// One of the points in the module docs.
    pub point: &'static str,
    /// The message type's short name.
    pub message: String,
}

/// The setting names no step.
#[derive(Debug, thiserror::Error)]
#[error(
    "must be <point>:<message> with point one of after-write-ahead, after-send, after-receive, \
     after-store and message a SATP message type such as lock-assert-msg"
)]
pub struct BadSatpFault;

/// The points.
pub const POINTS: [&str; 4] = [
    "after-write-ahead",
    "after-send",
    "after-receive",
    "after-store",
];

impl FromStr for SatpFault {
    type Err = BadSatpFault;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (point, message) = text.split_once(':').ok_or(BadSatpFault)?;
        let point = POINTS
            .into_iter()
            .find(|p| *p == point)
            .ok_or(BadSatpFault)?;
        let known = FLOW.iter().any(|(name, _)| *name == message) || message == "session-abort-msg";
        if !known {
            return Err(BadSatpFault);
        }
        Ok(Self {
            point,
            message: message.to_string(),
        })
    }
}

/// Halts forever when `fault` names this step.
pub async fn reach(fault: Option<&SatpFault>, point: &str, message: &str, session_id: &str) {
    if fault.is_some_and(|f| f.point == point && f.message == message) {
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "lockgate fault-injection halted at {point}:{message} session {session_id}"
            );
            let _ = out.flush();
        }
        std::future::pending::<()>().await;
    }
}
