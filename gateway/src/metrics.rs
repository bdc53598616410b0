//! Prometheus metrics: the process-wide recorder behind the `metrics`
//! facade, the names and labels every metric is recorded under, and the
//! `/metrics` rendering (counters and histograms recorded as things happen,
//! plus gauges read from the database at scrape time).
//!
//! Every metric the gateway exposes (text exposition format 0.0.4):
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `lockgate_http_requests_total` | counter | `method`, `route`, `status` | requests answered; `route` is the route template (`/v1/transfers/{id}`), `unmatched` for unknown paths |
//! | `lockgate_http_request_duration_seconds` | histogram | `method`, `route` | time to the response head |
//! | `lockgate_ledger_transactions_total` | counter | `chain_id`, `outcome` (`applied`, `rejected`) | transactions through the sequencer |
//! | `lockgate_ledger_batch_transactions` | histogram | `chain_id` | transactions per committed batch (one batch = one block) |
//! | `lockgate_ledger_commit_duration_seconds` | histogram | `chain_id` | one batch's commit, prefetch to durable |
//! | `lockgate_ledger_commit_failures_total` | counter | `chain_id` | batches whose commit failed (nothing applied) |
//! | `lockgate_ledger_block_height` | gauge | `chain_id` | height of the last block (-1 before the first; read at scrape time) |
//! | `lockgate_block_producer` | gauge | `chain_id` | 1 while this process produces the ledger's blocks |
//! | `lockgate_transfers` | gauge | `state` | transfers by state (read at scrape time) |
//! | `lockgate_transfers_finished_total` | counter | `state` (`completed`, `refunded`, `failed`, `cancelled`) | transfers that reached an end state in this process |
//! | `lockgate_transfer_duration_seconds` | histogram | `state` | creation to end state |
//! | `lockgate_value_locked` | gauge | `chain_id`, `asset`, `participant` | minor units in open HTLCs on built-in ledgers, by sender (read at scrape time; `f64`, exact below 2^53) |
//! | `lockgate_value_locked_oldest_seconds` | gauge | `chain_id`, `asset`, `participant` | age of the participant's oldest open HTLC |
//! | `lockgate_adapter_call_duration_seconds` | histogram | `adapter` (`builtin`, `evm`, `peer`), `call` | calls the transfer engine makes to a ledger adapter |
//! | `lockgate_adapter_call_errors_total` | counter | `adapter`, `call` | adapter calls that failed (outcome unknown; retried) |
//! | `lockgate_transfer_engine_scans_total` | counter | `cause` (`tick`, `wake`, `commit`) | looks of the transfer engine at the active transfers, by what prompted them: its tick, a transfer created or SATP message accepted here, a block with an HTLC lock, claim or refund committed while it had active transfers of its own |
//! | `lockgate_recovery_runs_total` | counter | `kind` (`satp`), `outcome` | SATP crash-recovery exchanges started by this gateway |
//! | `lockgate_db_pool_connections` | gauge | `state` (`idle`, `in_use`) | database pool connections (read at scrape time) |
//! | `lockgate_db_pool_connections_max` | gauge | | the pool's bound (the block producers' own connections, up to 2 per ledger, are not in this pool) |
//!
//! The participants of `lockgate_value_locked` are the senders of open
//! locks; to bound the series, the 100 largest per ledger and asset are
//! listed and the rest are summed under `participant="other"`.
//!
//! The recorder is process-wide (the `metrics` facade has one global
//! recorder): a process that builds several gateways, as some tests do,
//! renders their metrics together.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Metric names, one place for the recording sites and the docs above.
pub mod name {
    /// See the module table.
    pub const HTTP_REQUESTS: &str = "lockgate_http_requests_total";
    /// See the module table.
    pub const HTTP_DURATION: &str = "lockgate_http_request_duration_seconds";
    /// See the module table.
    pub const LEDGER_TXS: &str = "lockgate_ledger_transactions_total";
    /// See the module table.
    pub const LEDGER_BATCH: &str = "lockgate_ledger_batch_transactions";
    /// See the module table.
    pub const LEDGER_COMMIT: &str = "lockgate_ledger_commit_duration_seconds";
    /// See the module table.
    pub const LEDGER_COMMIT_FAILURES: &str = "lockgate_ledger_commit_failures_total";
    /// See the module table.
    pub const TRANSFERS_FINISHED: &str = "lockgate_transfers_finished_total";
    /// See the module table.
    pub const TRANSFER_DURATION: &str = "lockgate_transfer_duration_seconds";
    /// See the module table.
    pub const ADAPTER_DURATION: &str = "lockgate_adapter_call_duration_seconds";
    /// See the module table.
    pub const ADAPTER_ERRORS: &str = "lockgate_adapter_call_errors_total";
    /// See the module table.
    pub const RECOVERY_RUNS: &str = "lockgate_recovery_runs_total";
    /// See the module table.
    pub const ENGINE_SCANS: &str = "lockgate_transfer_engine_scans_total";
}

/// Seconds: 0.5 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Transactions per batch.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 16384.0,
];
/// Seconds a transfer takes: 100 ms to a day.
const TRANSFER_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder on first use and returns its handle
/// (`None` if another recorder was installed first, e.g. by an embedding
/// program; the gateway then serves only its scrape-time gauges).
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(name::LEDGER_BATCH.to_string()),
                    BATCH_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(name::TRANSFER_DURATION.to_string()),
                        TRANSFER_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), LATENCY_BUCKETS)
                })
                .map(|b| b.build_recorder());
            let recorder = match installed {
                Ok(recorder) => recorder,
                Err(error) => {
                    tracing::error!(%error, "metrics recorder not built");
                    return None;
                }
            };
            let handle = recorder.handle();
            if let Err(error) = metrics::set_global_recorder(recorder) {
                tracing::warn!(%error, "another metrics recorder is installed; /metrics shows gauges only");
                return None;
            }
            // Histograms keep raw samples until upkeep folds them into
            // buckets; without it they would grow without bound.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "metrics upkeep thread not started");
            }
            Some(handle)
        })
        .clone()
}

/// Records one answered HTTP request.
pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let method = method.to_string();
    let route = route.to_string();
    metrics::counter!(name::HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(name::HTTP_DURATION, "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
}

/// Records a committed (or all-rejected) batch.
pub fn batch_committed(chain_id: u64, applied: usize, rejected: usize, elapsed: Duration) {
    let chain = chain_id.to_string();
    metrics::counter!(name::LEDGER_TXS, "chain_id" => chain.clone(), "outcome" => "applied")
        .increment(applied as u64);
    metrics::counter!(name::LEDGER_TXS, "chain_id" => chain.clone(), "outcome" => "rejected")
        .increment(rejected as u64);
    metrics::histogram!(name::LEDGER_BATCH, "chain_id" => chain.clone())
        .record((applied + rejected) as f64);
    metrics::histogram!(name::LEDGER_COMMIT, "chain_id" => chain).record(elapsed.as_secs_f64());
}

/// Records a batch whose commit failed.
pub fn commit_failed(chain_id: u64) {
    metrics::counter!(name::LEDGER_COMMIT_FAILURES, "chain_id" => chain_id.to_string())
        .increment(1);
}

/// Records a transfer reaching an end state.
pub fn transfer_finished(state: &'static str, elapsed_ms: u64) {
    metrics::counter!(name::TRANSFERS_FINISHED, "state" => state).increment(1);
    metrics::histogram!(name::TRANSFER_DURATION, "state" => state)
        .record(elapsed_ms as f64 / 1000.0);
}

/// Records one adapter call.
pub fn adapter_call(adapter: &'static str, call: &'static str, ok: bool, elapsed: Duration) {
    metrics::histogram!(name::ADAPTER_DURATION, "adapter" => adapter, "call" => call)
        .record(elapsed.as_secs_f64());
    if !ok {
        metrics::counter!(name::ADAPTER_ERRORS, "adapter" => adapter, "call" => call).increment(1);
    }
}

/// Records one recovery run.
pub fn recovery_run(kind: &'static str, outcome: &'static str) {
    metrics::counter!(name::RECOVERY_RUNS, "kind" => kind, "outcome" => outcome).increment(1);
}

/// Records one look of the transfer engine at the active transfers.
pub fn engine_scan(cause: &'static str) {
    metrics::counter!(name::ENGINE_SCANS, "cause" => cause).increment(1);
}

/// Escapes a label value for the text format.
pub fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operations_guide_lists_every_metric_as_documented_here() {
        let guide = include_str!("../../docs/operations.md");
        let rows: Vec<&str> = include_str!("metrics.rs")
            .lines()
            .filter(|l| l.starts_with("//! | `lockgate_"))
            .collect();
        assert!(rows.len() >= 18);
        for row in rows {
            assert!(guide.contains(&row[4..]), "docs/operations.md lacks {row}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
