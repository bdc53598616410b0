//! How long a ledger takes to make a transaction final, as its adapter
//! states it. The timelock planner reasons only in these terms, so a new
//! ledger kind needs nothing but an honest model.

/// The finality of one ledger, in worst-case terms. All durations are
/// milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FinalityModel {
    /// Longest time from submitting a transaction to its inclusion in a
    /// block, under the congestion the operator is prepared for.
    pub inclusion_ms_max: u64,
    /// Blocks on top of the including block before a transaction counts as
    /// final (0 for ledgers with immediate finality, such as the built-in
    /// ledger or a BFT chain).
    pub confirmations: u32,
    /// Longest time between two blocks.
    pub block_interval_ms_max: u64,
    /// Largest difference between the ledger's clock (the block timestamps
    /// timelocks are judged by) and true time.
    pub clock_drift_ms_max: u64,
    /// Granularity of the ledger's timelocks (1 for ms, 1000 for EVM's
    /// seconds); expiries are rounded up to it.
    pub time_resolution_ms: u64,
}

impl FinalityModel {
    /// The built-in ledger: a transaction is final when its batch commits,
    /// within `commit_ms_max`; timelocks in ms, judged by the gateway's clock.
    pub const fn built_in(commit_ms_max: u64, clock_drift_ms_max: u64) -> Self {
        Self {
            inclusion_ms_max: commit_ms_max,
            confirmations: 0,
            block_interval_ms_max: 0,
            clock_drift_ms_max,
            time_resolution_ms: 1,
        }
    }

    /// Worst-case time from submitting a transaction to it being final:
    /// inclusion, then `confirmations` further blocks.
    pub fn final_ms_max(&self) -> u64 {
        self.inclusion_ms_max.saturating_add(
            u64::from(self.confirmations).saturating_mul(self.block_interval_ms_max),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_time_adds_confirmations() {
        let evm = FinalityModel {
            inclusion_ms_max: 60_000,
            confirmations: 12,
            block_interval_ms_max: 15_000,
            clock_drift_ms_max: 15_000,
            time_resolution_ms: 1_000,
        };
        assert_eq!(evm.final_ms_max(), 60_000 + 12 * 15_000);
        assert_eq!(FinalityModel::built_in(2_000, 1_000).final_ms_max(), 2_000);
    }
}
