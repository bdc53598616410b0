//! `lockgate bench`: the load generator.
//!
//! It owns one benchmark run against a running gateway, start to end:
//!
//! 1. **Set-up.** Derives `accounts` keys from a seed, registers a fresh
//!    asset and funds every account with one `Issue` each (batches of 1,000),
//!    so the ledger holds `accounts` funded accounts before anything is timed.
//! 2. **Pre-signing.** Every transfer of every phase is built, signed and
//!    serialised to its request body before the clock starts, so the client
//!    spends its CPU on HTTP only.
//! 3. **Baselines, in the same run**: PostgreSQL's own ceiling for one durable
//!    row per transaction (`pgbench` with a one-row `INSERT` script at the same
//!    concurrency, on the gateway's database), the HTTP ceiling (`GET /healthz`
//!    at the same concurrency) and the signature-recovery ceiling (the same
//!    pre-signed transfers recovered on two threads with libsecp256k1, as the
//!    gateway does).
//! 4. **Phases**: `single` (one transfer per `POST /v1/ledger/transactions`),
//!    `batch` (`batch_size` per `POST /v1/ledger/transactions/batch`), and the
//!    `-hot` variant of each, where every transfer credits one of 10 hot
//!    accounts. Each phase reports committed transfers/s (a transfer counts
//!    only once the gateway acknowledged it, which it does only after the
//!    block holding it is committed), latency percentiles per request, and the
//!    gateway's CPU and peak RSS read from `/proc/<pid>`.
//! 5. **Check.** Every account's balance and nonce is read back and compared
//!    with what the acknowledged transfers imply, the asset's supply must
//!    equal what was issued, and (with `--database-url`) the sum of all
//!    balance rows must equal the supply. Any difference fails the run.
//!
//! Senders are split between the connections (connection `w` sends from the
//! accounts `i` with `i % connections == w`), and each connection waits for
//! an answer before its next request, so every sender's nonces arrive in
//! order. In the hot phases the senders stay spread and the recipients are
//! the 10 hot accounts: the omnibus or merchant pattern, where every transfer
//! touches one of a few accounts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use ledger_core::{Address, Amount, AssetCode, ChainId, Scale, SignedTransaction, SigningKey};
use ledger_core::{Transaction, TxBody};
use rayon::prelude::*;
use serde::Serialize;
use sha2::Digest;

use crate::dto::SignedTransactionDto;

/// The number of hot accounts of the `-hot` phases.
pub const HOT_ACCOUNTS: usize = 10;
/// Minor units each account is funded with.
const FUNDING: u128 = 1_000_000_000;
/// Transactions per set-up batch.
const SETUP_BATCH: usize = 1_000;

/// A benchmark phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// One transfer per request, recipients spread.
    Single,
    /// One transfer per request, every recipient one of 10 hot accounts.
    SingleHot,
    /// `batch_size` transfers per request, recipients spread.
    Batch,
    /// `batch_size` transfers per request, recipients hot.
    BatchHot,
}

impl Phase {
    /// Parses `single`, `single-hot`, `batch`, `batch-hot`.
    pub fn parse(name: &str) -> Result<Self, anyhow::Error> {
        Ok(match name {
            "single" => Self::Single,
            "single-hot" => Self::SingleHot,
            "batch" => Self::Batch,
            "batch-hot" => Self::BatchHot,
            other => bail!("unknown phase {other:?} (single, single-hot, batch, batch-hot)"),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::SingleHot => "single-hot",
            Self::Batch => "batch",
            Self::BatchHot => "batch-hot",
        }
    }

    fn hot(self) -> bool {
        matches!(self, Self::SingleHot | Self::BatchHot)
    }

    fn batched(self) -> bool {
        matches!(self, Self::Batch | Self::BatchHot)
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The gateway's base URL.
    pub url: String,
    /// A token with every ledger scope (`lockgate token`).
    pub token: String,
    /// Funded accounts.
    pub accounts: usize,
    /// Transfers per phase.
    pub transfers: usize,
    /// Concurrent connections of the single phases.
    pub connections: usize,
    /// Concurrent connections of the batch phases.
    pub batch_connections: usize,
    /// Transfers per batch request.
    pub batch_size: usize,
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// The gateway's process id, for CPU and RSS.
    pub gateway_pid: Option<u32>,
    /// The gateway's PostgreSQL database, for the pgbench baseline and the
    /// sum-of-balances check.
    pub database_url: Option<String>,
    /// Seconds each throughput baseline runs.
    pub baseline_secs: u64,
    /// Seed of the account keys and of the recipients' choice.
    pub seed: u64,
    /// Accounts read back at the end (all when at least `accounts`).
    pub check_accounts: usize,
}

/// The baselines measured in the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Baselines {
    /// pgbench one-row INSERT, transactions/s, at `connections`.
    pub pgbench_tps: Option<f64>,
    /// pgbench one-row INSERT, transactions/s, at `batch_connections`.
    pub pgbench_batch_tps: Option<f64>,
    /// `GET /healthz` requests/s at `connections`.
    pub http_rps: f64,
    /// Signatures recovered per second on two threads.
    pub recovery_per_s: f64,
}

/// One phase's result.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    /// The phase.
    pub phase: Phase,
    /// Concurrent connections.
    pub connections: usize,
    /// Transfers per request.
    pub per_request: usize,
    /// Transfers acknowledged as committed.
    pub committed: u64,
    /// Transfers refused (each changed nothing).
    pub refused: u64,
    /// The first refusal, for the report.
    pub first_refusal: Option<String>,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Committed transfers per second.
    pub per_second: f64,
    /// Request latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Gateway CPU during the phase, in cores (1.0 = one core busy).
    pub gateway_cores: Option<f64>,
    /// Gateway peak RSS after the phase, MiB.
    pub gateway_peak_rss_mib: Option<f64>,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Funded accounts.
    pub accounts: usize,
    /// Transfers per phase.
    pub transfers: usize,
    /// The baselines.
    pub baselines: Baselines,
    /// The phases.
    pub phases: Vec<PhaseReport>,
    /// Accounts whose balance and nonce were read back and matched.
    pub accounts_checked: usize,
    /// The asset's supply, which matched what was issued.
    pub supply: String,
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Client {
    async fn post(&self, path: &str, body: bytes::Bytes) -> anyhow::Result<(u16, bytes::Bytes)> {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.context("reading the answer")?;
        Ok((status, body))
    }

    async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.context("reading the answer")?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {body}");
        }
        Ok(body)
    }
}

/// A pre-signed transfer and what it does.
struct Planned {
    from: usize,
    to: usize,
    amount: u128,
}

/// A request ready to send: its body and the transfers it carries.
struct Request {
    body: bytes::Bytes,
    transfers: std::ops::Range<usize>,
}

fn key_of(seed: u64, index: u64) -> anyhow::Result<SigningKey> {
    // A valid key is found at the first try with overwhelming probability.
    for attempt in 0u64..16 {
        let mut hasher = sha2::Sha256::new();
        hasher.update(b"lockgate-bench");
        hasher.update(seed.to_le_bytes());
        hasher.update(index.to_le_bytes());
        hasher.update(attempt.to_le_bytes());
        if let Ok(key) = SigningKey::from_bytes(hasher.finalize().into()) {
            return Ok(key);
        }
    }
    Err(anyhow!("no valid key for index {index}"))
}

fn sign(
    chain: ChainId,
    key: &SigningKey,
    nonce: u64,
    body: TxBody,
) -> anyhow::Result<SignedTransaction> {
    Transaction {
        chain_id: chain,
        from: key.address(),
        nonce,
        body,
    }
    .sign(key)
    .map_err(|e| anyhow!("{e}"))
}

fn wire(tx: &SignedTransaction) -> anyhow::Result<Vec<u8>> {
    serde_json::to_vec(&SignedTransactionDto::from_domain(tx)).context("serialising")
}

fn batch_body(items: &[Vec<u8>]) -> bytes::Bytes {
    let mut body = Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 20);
    body.extend_from_slice(b"{\"transactions\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"]}");
    body.into()
}

/// xorshift64*: the recipients' choice, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `utime + stime` of a process, seconds (clock ticks of 1/100 s, as on
/// every Linux this runs on).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields count from after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Peak resident set (VmHWM), MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    f64::from(sorted[index]) / 1000.0
}

/// Runs the benchmark and prints the report as it goes.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    if options.accounts < 2 * HOT_ACCOUNTS {
        bail!("--accounts must be at least {}", 2 * HOT_ACCOUNTS);
    }
    if options.connections == 0 || options.batch_connections == 0 || options.batch_size == 0 {
        bail!("connections and batch size must be at least 1");
    }
    let max_connections = options.connections.max(options.batch_connections);
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(max_connections * 2)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(120))
            .build()
            .context("HTTP client")?,
        url: options.url.trim_end_matches('/').to_string(),
        token: options.token.clone(),
    });

    // Which ledger, and is the database durable?
    let ledgers = client.get_json("/v1/ledgers").await?;
    let chain_id: u64 = ledgers["items"]
        .as_array()
        .and_then(|all| all.iter().find(|l| l["primary"] == true))
        .and_then(|l| l["chainId"].as_str())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no primary ledger in /v1/ledgers: {ledgers}"))?;
    let chain = ChainId::new(chain_id).map_err(|e| anyhow!("chain id: {e}"))?;
    let pool = match &options.database_url {
        Some(url) => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(url)
                .await
                .context("connecting to the gateway's database")?;
            let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
                .fetch_one(&pool)
                .await?;
            if setting != "on" {
                bail!("synchronous_commit is {setting:?}: the figures would not be durable ones");
            }
            println!("database: synchronous_commit = on");
            Some(pool)
        }
        None => None,
    };

    // Keys.
    let started = Instant::now();
    let seed = options.seed;
    let keys: Vec<SigningKey> = (0..options.accounts as u64)
        .into_par_iter()
        .map(|i| key_of(seed, i))
        .collect::<anyhow::Result<_>>()?;
    let addresses: Vec<Address> = keys.iter().map(SigningKey::address).collect();
    let issuer = key_of(seed, u64::MAX)?;
    let code = AssetCode::new(&format!("B{:X}", seed & 0xFF_FFFF_FFFF))
        .map_err(|e| anyhow!("asset code: {e}"))?;
    println!(
        "set-up: {} keys in {:.1} s; asset {code}",
        keys.len(),
        started.elapsed().as_secs_f64()
    );

    // Register and fund.
    let started = Instant::now();
    let register = sign(
        chain,
        &issuer,
        0,
        TxBody::RegisterAsset {
            code,
            scale: Scale::new(2).map_err(|e| anyhow!("{e}"))?,
        },
    )?;
    let (status, body) = client
        .post("/v1/ledger/transactions", wire(&register)?.into())
        .await?;
    if status != 201 {
        bail!(
            "registering {code}: {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let funding: Vec<Vec<u8>> = addresses
        .par_iter()
        .enumerate()
        .map(|(i, to)| {
            wire(&sign(
                chain,
                &issuer,
                i as u64 + 1,
                TxBody::Issue {
                    asset: code,
                    to: *to,
                    amount: Amount::from_minor_units(FUNDING),
                },
            )?)
        })
        .collect::<anyhow::Result<_>>()?;
    for chunk in funding.chunks(SETUP_BATCH) {
        let (status, body) = client
            .post("/v1/ledger/transactions/batch", batch_body(chunk))
            .await?;
        let view: crate::views::BatchView =
            serde_json::from_slice(&body).with_context(|| format!("funding: {status}"))?;
        if let Some(item) = view.results.iter().find(|r| r.status != "committed") {
            bail!("funding refused: {:?}", item.problem);
        }
    }
    drop(funding);
    println!(
        "set-up: {} accounts funded in {:.1} s",
        options.accounts,
        started.elapsed().as_secs_f64()
    );

    // Plan and pre-sign every phase.
    let started = Instant::now();
    let mut nonces = vec![0u64; options.accounts];
    let mut rng = Rng(seed | 1);
    let mut planned_phases = Vec::new();
    for &phase in &options.phases {
        let connections = if phase.batched() {
            options.batch_connections
        } else {
            options.connections
        };
        // Connection w sends from accounts w, w + C, w + 2C, ... in turn.
        let mut per_connection: Vec<Vec<Planned>> = (0..connections).map(|_| Vec::new()).collect();
        let mut cursor = vec![0usize; connections];
        for n in 0..options.transfers {
            let w = n % connections;
            let from = w + connections * (cursor[w] % options.accounts.div_ceil(connections));
            let from = if from >= options.accounts { w } else { from };
            cursor[w] += 1;
            let to = loop {
                let to = if phase.hot() {
                    rng.below(HOT_ACCOUNTS)
                } else {
                    rng.below(options.accounts)
                };
                if to != from {
                    break to;
                }
            };
            per_connection[w].push(Planned {
                from,
                to,
                amount: 1 + u128::from(rng.next() % 100),
            });
        }
        // Nonces in sending order.
        let mut signed_plan = Vec::new();
        for list in per_connection {
            let with_nonces: Vec<(Planned, u64)> = list
                .into_iter()
                .map(|p| {
                    let nonce = nonces[p.from];
                    nonces[p.from] += 1;
                    (p, nonce)
                })
                .collect();
            signed_plan.push(with_nonces);
        }
        let per_request = if phase.batched() {
            options.batch_size
        } else {
            1
        };
        let mut connections_work = Vec::new();
        for list in signed_plan {
            let wires: Vec<Vec<u8>> = list
                .par_iter()
                .map(|(p, nonce)| {
                    wire(&sign(
                        chain,
                        &keys[p.from],
                        *nonce,
                        TxBody::Transfer {
                            asset: code,
                            to: addresses[p.to],
                            amount: Amount::from_minor_units(p.amount),
                        },
                    )?)
                })
                .collect::<anyhow::Result<_>>()?;
            let mut requests = Vec::new();
            let mut start = 0;
            for chunk in wires.chunks(per_request) {
                let body = if phase.batched() {
                    batch_body(chunk)
                } else {
                    bytes::Bytes::from(chunk[0].clone())
                };
                requests.push(Request {
                    body,
                    transfers: start..start + chunk.len(),
                });
                start += chunk.len();
            }
            let transfers: Vec<Planned> = list.into_iter().map(|(p, _)| p).collect();
            connections_work.push((requests, transfers));
        }
        planned_phases.push((phase, connections, per_request, connections_work));
    }
    println!(
        "set-up: {} transfers signed in {:.1} s",
        options.transfers * options.phases.len(),
        started.elapsed().as_secs_f64()
    );

    // Baselines.
    let mut baselines = Baselines {
        recovery_per_s: recovery_ceiling(chain, &keys, &addresses, code, options.baseline_secs)?,
        ..Baselines::default()
    };
    println!(
        "baseline: signature recovery, 2 threads (libsecp256k1): {:.0}/s",
        baselines.recovery_per_s
    );
    baselines.http_rps = http_ceiling(&client, options.connections, options.baseline_secs).await?;
    println!(
        "baseline: HTTP GET /healthz, {} connections: {:.0} requests/s",
        options.connections, baselines.http_rps
    );
    if let Some(url) = &options.database_url {
        let tps = pgbench(url, options.connections, options.baseline_secs)?;
        println!(
            "baseline: pgbench one-row INSERT per transaction, {} connections: {tps:.0} tx/s",
            options.connections
        );
        baselines.pgbench_tps = Some(tps);
        if options.batch_connections != options.connections
            && options.phases.iter().any(|p| p.batched())
        {
            let tps = pgbench(url, options.batch_connections, options.baseline_secs)?;
            println!(
                "baseline: pgbench one-row INSERT per transaction, {} connections: {tps:.0} tx/s",
                options.batch_connections
            );
            baselines.pgbench_batch_tps = Some(tps);
        }
    }

    // Phases.
    let mut committed_flags: Vec<(Vec<Planned>, Vec<bool>)> = Vec::new();
    let mut reports = Vec::new();
    for (phase, connections, per_request, work) in planned_phases {
        let cpu_before = options.gateway_pid.and_then(cpu_seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (requests, transfers) in work {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let path = if phase.batched() {
                    "/v1/ledger/transactions/batch"
                } else {
                    "/v1/ledger/transactions"
                };
                let mut latencies = Vec::with_capacity(requests.len());
                let mut committed = vec![false; transfers.len()];
                let mut first_refusal = None;
                for request in requests {
                    let sent = Instant::now();
                    let (status, body) = client.post(path, request.body).await?;
                    latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                    if phase.batched() {
                        let view: Result<crate::views::BatchView, _> =
                            serde_json::from_slice(&body);
                        match view {
                            Ok(view) if status == 200 => {
                                for item in view.results {
                                    let i = request.transfers.start + item.index as usize;
                                    if item.status == "committed" && i < request.transfers.end {
                                        committed[i] = true;
                                    } else if first_refusal.is_none() {
                                        first_refusal = Some(format!("{:?}", item.problem));
                                    }
                                }
                            }
                            _ => {
                                if first_refusal.is_none() {
                                    first_refusal = Some(format!(
                                        "{status}: {}",
                                        String::from_utf8_lossy(&body)
                                    ));
                                }
                            }
                        }
                    } else if status == 201 {
                        committed[request.transfers.start] = true;
                    } else if first_refusal.is_none() {
                        first_refusal =
                            Some(format!("{status}: {}", String::from_utf8_lossy(&body)));
                    }
                }
                anyhow::Ok((latencies, transfers, committed, first_refusal))
            }));
        }
        let mut latencies = Vec::new();
        let mut committed = 0u64;
        let mut refused = 0u64;
        let mut first_refusal = None;
        for task in tasks {
            let (lat, transfers, flags, refusal) = task.await.context("a connection's task")??;
            latencies.extend(lat);
            committed += flags.iter().filter(|c| **c).count() as u64;
            refused += flags.iter().filter(|c| !**c).count() as u64;
            first_refusal = first_refusal.or(refusal);
            committed_flags.push((transfers, flags));
        }
        let seconds = started.elapsed().as_secs_f64();
        let cpu_after = options.gateway_pid.and_then(cpu_seconds);
        latencies.sort_unstable();
        let report = PhaseReport {
            phase,
            connections,
            per_request,
            committed,
            refused,
            first_refusal,
            seconds,
            per_second: committed as f64 / seconds,
            p50_ms: percentile(&latencies, 50.0),
            p99_ms: percentile(&latencies, 99.0),
            p999_ms: percentile(&latencies, 99.9),
            gateway_cores: cpu_before.zip(cpu_after).map(|(b, a)| (a - b) / seconds),
            gateway_peak_rss_mib: options.gateway_pid.and_then(peak_rss_mib),
        };
        print_phase(&report, &baselines, &reports);
        reports.push(report);
    }

    // Check every account against what was acknowledged.
    let mut expected_balance = vec![FUNDING; options.accounts];
    let mut expected_nonce = vec![0u64; options.accounts];
    for (transfers, flags) in &committed_flags {
        for (planned, committed) in transfers.iter().zip(flags) {
            if *committed {
                expected_balance[planned.from] -= planned.amount;
                expected_balance[planned.to] += planned.amount;
                expected_nonce[planned.from] += 1;
            }
        }
    }
    let started = Instant::now();
    let step = (options.accounts / options.check_accounts.max(1)).max(1);
    let to_check: Vec<usize> = (0..options.accounts).step_by(step).collect();
    let checked = check_accounts(
        &client,
        &to_check,
        &addresses,
        &expected_balance,
        &expected_nonce,
        code,
        options.connections,
    )
    .await?;
    let asset = client
        .get_json(&format!("/v1/ledger/assets/{code}"))
        .await?;
    let supply = asset["supply"].as_str().unwrap_or_default().to_string();
    let issued = FUNDING * options.accounts as u128;
    if supply != issued.to_string() {
        bail!("supply of {code} is {supply}, but {issued} was issued");
    }
    if let Some(pool) = &pool {
        let (sum, rows): (String, i64) = sqlx::query_as(
            "SELECT COALESCE(sum(amount), 0)::text, count(*) FROM balances WHERE chain_id = $1 AND asset = $2",
        )
        .bind(i64::try_from(chain_id).unwrap_or(i64::MAX))
        .bind(code.as_str())
        .fetch_one(pool)
        .await?;
        if sum != supply {
            bail!("the balances of {code} sum to {sum}, but its supply is {supply}");
        }
        println!("check: {rows} balance rows of {code} sum to the supply {supply}");
    }
    println!(
        "check: {checked} accounts' balances and nonces match the acknowledged transfers; supply {supply} = issued ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(Report {
        accounts: options.accounts,
        transfers: options.transfers,
        baselines,
        phases: reports,
        accounts_checked: checked,
        supply,
    })
}

fn print_phase(report: &PhaseReport, baselines: &Baselines, earlier: &[PhaseReport]) {
    let mut ratios = Vec::new();
    if report.phase.batched() {
        ratios.push(format!(
            "{:.2}x signature recovery",
            report.per_second / baselines.recovery_per_s
        ));
    } else {
        if let Some(pg) = baselines.pgbench_tps {
            ratios.push(format!("{:.2}x pgbench", report.per_second / pg));
        }
        ratios.push(format!(
            "{:.2}x HTTP",
            report.per_second / baselines.http_rps
        ));
    }
    if report.phase.hot() {
        let spread = if report.phase.batched() {
            Phase::Batch
        } else {
            Phase::Single
        };
        if let Some(base) = earlier.iter().find(|r| r.phase == spread) {
            ratios.push(format!(
                "{:.2}x spread",
                report.per_second / base.per_second
            ));
        }
    }
    println!(
        "{:<10} C={:<3} {:>4}/req: {:>8.0} committed/s ({}) | latency p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms | {} committed, {} refused in {:.1} s | gateway {} cores, peak RSS {} MiB",
        report.phase.name(),
        report.connections,
        report.per_request,
        report.per_second,
        ratios.join(", "),
        report.p50_ms,
        report.p99_ms,
        report.p999_ms,
        report.committed,
        report.refused,
        report.seconds,
        report
            .gateway_cores
            .map_or("?".into(), |c| format!("{c:.2}")),
        report
            .gateway_peak_rss_mib
            .map_or("?".into(), |m| format!("{m:.0}")),
    );
    if let Some(refusal) = &report.first_refusal {
        println!("           first refusal: {refusal}");
    }
}

fn recovery_ceiling(
    chain: ChainId,
    keys: &[SigningKey],
    addresses: &[Address],
    code: AssetCode,
    secs: u64,
) -> anyhow::Result<f64> {
    let n = 20_000;
    let signed: Vec<SignedTransaction> = (0..n)
        .into_par_iter()
        .map(|i| {
            let from = i % keys.len();
            sign(
                chain,
                &keys[from],
                1_000_000 + i as u64,
                TxBody::Transfer {
                    asset: code,
                    to: addresses[(from + 1) % addresses.len()],
                    amount: Amount::from_minor_units(1),
                },
            )
        })
        .collect::<anyhow::Result<_>>()?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .context("thread pool")?;
    // Rounds over the same signatures until `secs` have passed, like the
    // other baselines: a run of a fraction of a second swung by a quarter
    // from one run to the next on a shared two-core machine.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs.max(1));
    let mut verified = 0usize;
    while Instant::now() < deadline {
        let good = pool.install(|| {
            signed
                .par_iter()
                .filter(|tx| (*tx).clone().verify().is_ok())
                .count()
        });
        if good != n {
            bail!("{} of {n} signatures did not verify", n - good);
        }
        verified += n;
    }
    Ok(verified as f64 / started.elapsed().as_secs_f64())
}

async fn http_ceiling(client: &Arc<Client>, connections: usize, secs: u64) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut count = 0u64;
            while Instant::now() < deadline {
                let response = client
                    .http
                    .get(format!("{}/healthz", client.url))
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("/healthz: {}", response.status());
                }
                response.bytes().await?;
                count += 1;
            }
            anyhow::Ok(count)
        }));
    }
    let started = Instant::now();
    let mut total = 0;
    for task in tasks {
        total += task.await.context("a connection's task")??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64().max(secs as f64))
}

/// pgbench with a one-row INSERT script on the gateway's database.
fn pgbench(url: &str, connections: usize, secs: u64) -> anyhow::Result<f64> {
    let dir = std::env::temp_dir().join(format!("lockgate-pgbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("temporary directory")?;
    let script = dir.join("insert.sql");
    std::fs::write(
        &script,
        "\\set v random(1, 1000000000)\nINSERT INTO lockgate_bench_rows (v, payload) VALUES (:v, repeat('x', 200));\n",
    )
    .context("writing the pgbench script")?;
    let psql = |sql: &str| -> anyhow::Result<()> {
        let status = std::process::Command::new("psql")
            .env("PGOPTIONS", "--client-min-messages=warning")
            .args(["-q", "-X", url, "-c", sql])
            .status()
            .context("running psql")?;
        if !status.success() {
            bail!("psql {sql:?} failed");
        }
        Ok(())
    };
    psql(
        "DROP TABLE IF EXISTS lockgate_bench_rows; CREATE TABLE lockgate_bench_rows (id bigserial PRIMARY KEY, v bigint NOT NULL, payload text NOT NULL)",
    )?;
    let output = std::process::Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &connections.to_string(),
            "-j",
            "2",
            "-T",
            &secs.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .context("running pgbench (Debian: apt-get install postgresql-contrib)")?;
    psql("DROP TABLE IF EXISTS lockgate_bench_rows")?;
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {}{}",
            text,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
        .ok_or_else(|| anyhow!("no tps in pgbench's output: {text}"))
}

async fn check_accounts(
    client: &Arc<Client>,
    to_check: &[usize],
    addresses: &[Address],
    balances: &[u128],
    nonces: &[u64],
    code: AssetCode,
    connections: usize,
) -> anyhow::Result<usize> {
    let mut tasks = Vec::new();
    let shares: Vec<Vec<(usize, Address, u128, u64)>> = (0..connections)
        .map(|w| {
            to_check
                .iter()
                .skip(w)
                .step_by(connections)
                .map(|&i| (i, addresses[i], balances[i], nonces[i]))
                .collect()
        })
        .collect();
    for share in shares {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for (i, address, balance, nonce) in &share {
                let account = client
                    .get_json(&format!("/v1/ledger/accounts/{address}"))
                    .await?;
                let actual = account["balances"]
                    .as_array()
                    .and_then(|b| b.iter().find(|b| b["asset"] == code.as_str()))
                    .and_then(|b| b["amount"].as_str())
                    .unwrap_or("0")
                    .to_string();
                if actual != balance.to_string() {
                    bail!("account {i} ({address}) holds {actual}, expected {balance}");
                }
                if account["nextNonce"].as_str() != Some(nonce.to_string().as_str()) {
                    bail!(
                        "account {i} ({address}) has next nonce {}, expected {nonce}",
                        account["nextNonce"]
                    );
                }
            }
            anyhow::Ok(share.len())
        }));
    }
    let mut checked = 0;
    for task in tasks {
        checked += task.await.context("a checking task")??;
    }
    Ok(checked)
}
